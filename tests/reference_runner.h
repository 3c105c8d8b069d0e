// Runs our PyTorch reference scripts (scripts/reference, Debian's python3-torch) from
// tests. When torch is not installed the calling test is skipped with a message.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "skip.h"

namespace txl::testing {

inline bool torch_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return ok;
}

#define TXL_REQUIRE_TORCH()                          \
  TXL_SKIP_UNLESS(::txl::testing::torch_available(), \
                  "skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch)")

// The checkout and the build the tests came from; the environment's TXL_SOURCE_DIR and
// TXL_BINARY_DIR name them instead where the tests run elsewhere (scripts/gpu_check.sh
// with a bundle built on another machine).
inline std::string source_dir() {
  const char* env = std::getenv("TXL_SOURCE_DIR");
  return env && *env ? env : TXL_SOURCE_DIR;
}
inline std::string binary_dir() {
  const char* env = std::getenv("TXL_BINARY_DIR");
  return env && *env ? env : TXL_BINARY_DIR;
}
inline std::string source_path(const std::string& rel) { return source_dir() + "/" + rel; }

// A fresh directory under the temp dir, unique per process and name.
inline std::string scratch_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("txl_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// Runs a shell command that may fail; returns its exit status (-1 if killed by a
// signal) and its combined output in *output.
inline int run_status(const std::string& cmd, std::string* output) {
  const std::string out_file = scratch_dir("cmd_status") + "/out.txt";
  const int rc = std::system((cmd + " > " + out_file + " 2>&1").c_str());
  std::ifstream f(out_file);
  output->assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Runs a shell command; returns its combined output. REQUIREs exit status 0.
inline std::string run_command(const std::string& cmd) {
  std::string out;
  const int rc = run_status(cmd, &out);
  INFO("command: " << cmd << "\noutput:\n" << out);
  REQUIRE(rc == 0);
  return out;
}

// The first `bytes` bytes of the bundled tiny-shakespeare written to dir/name; returns the path.
inline std::string write_corpus_prefix(const std::string& dir, size_t bytes, const std::string& name = "data.txt") {
  std::ifstream in(source_path("third_party/tinyshakespeare/tinyshakespeare.txt"), std::ios::binary);
  std::string text(bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(bytes));
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The events of one kind ("train", "eval", ...) from a run's metrics.jsonl, in order.
// The last line of a command's output parsed as JSON (our scripts print their result there).
inline nlohmann::json last_json_line(const std::string& out) {
  auto end = out.find_last_not_of("\n ");
  auto start = out.rfind('\n', end);
  const size_t from = start == std::string::npos ? 0 : start + 1;
  return nlohmann::json::parse(out.substr(from, end - from + 1));
}

inline std::vector<nlohmann::json> metrics_events(const std::string& run, const std::string& kind) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["event"] == kind) out.push_back(j);
  }
  return out;
}

}  // namespace txl::testing
