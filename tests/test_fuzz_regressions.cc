// Replays, in the normal build, every input under tests/fuzz/regressions/<harness>/
// (inputs that once crashed a fuzz harness, kept after the fix) and every seed under
// tests/fuzz/corpus/<harness>/ through the same harness body the fuzzer runs
// (tests/fuzz/fuzz_<harness>.h): each must load or throw txl::Error, nothing else.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_checkpoint.h"
#include "fuzz/fuzz_config.h"
#include "fuzz/fuzz_corpus.h"

namespace {

namespace fs = std::filesystem;
using Body = void (*)(const uint8_t*, size_t);

std::vector<fs::path> files_under(const std::string& rel) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(TXL_SOURCE_DIR) / "tests/fuzz" / rel;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Feeds each file to `body`; returns "file: message" for each one rejected with a txl::Error.
std::vector<std::string> replay(Body body, const std::vector<fs::path>& files) {
  std::vector<std::string> rejected;
  for (const auto& p : files) {
    INFO("input " << p.string());
    std::ifstream f(p, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    const std::string bytes = ss.str();
    try {
      body(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const txl::Error& e) {
      // A clean, one-message rejection is what bad input should get.
      rejected.push_back(p.filename().string() + ": " + e.what());
    } catch (const std::exception& e) {
      FAIL("not a txl::Error: " << e.what());
    }
  }
  return rejected;
}

void replay_harness(const std::string& name, Body body) {
  const auto regressions = files_under("regressions/" + name);
  const auto seeds = files_under("corpus/" + name);
  CHECK(!seeds.empty());
  replay(body, regressions);
  replay(body, seeds);
}

}  // namespace

TEST_CASE("fuzz regressions and seeds: config loader") { replay_harness("config", txl::fuzz::fuzz_config); }

TEST_CASE("fuzz regressions and seeds: checkpoint reader") {
  replay_harness("checkpoint", txl::fuzz::fuzz_checkpoint);
}

TEST_CASE("fuzz regressions and seeds: corpus reader") { replay_harness("corpus", txl::fuzz::fuzz_corpus); }

TEST_CASE("fuzz seeds of the checkpoint and corpus readers load") {
  // These seeds are valid inputs: each must load, so the fuzzer starts from inputs that
  // reach deep into the readers (a format change that breaks them shows up here).
  for (const auto& [name, body] : {std::pair<std::string, Body>{"checkpoint", txl::fuzz::fuzz_checkpoint},
                                   std::pair<std::string, Body>{"corpus", txl::fuzz::fuzz_corpus}}) {
    INFO("harness " << name);
    const auto seeds = files_under("corpus/" + name);
    REQUIRE(!seeds.empty());
    const auto rejected = replay(body, seeds);
    for (const auto& r : rejected) FAIL_CHECK("a seed was rejected: " << r);
  }
}
