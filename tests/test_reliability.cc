// Reliability of training runs: checksummed checkpoints, step checkpoints behind atomic
// last/best links, SIGTERM/SIGINT stops that checkpoint and resume, the on_nonfinite
// policies (driven by the TXL_FAULT_NAN_STEPS test hook), and the SIGKILL crash test.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "gradcheck.h"
#include "reference_runner.h"
#include "txl/config/load.h"
#include "txl/io/safetensors.h"

using namespace txl;
using namespace txl::testing;
using json = nlohmann::json;
using txl::testing::metrics_events;
namespace fs = std::filesystem;

namespace {

const std::string kTxl = std::string(TXL_BINARY_DIR) + "/bin/txl --threads 2";

std::string tiny(const std::string& name, int steps) {
  const std::string dir = scratch_dir(name);
  write_corpus_prefix(dir, 20000);
  std::ofstream(dir + "/tiny.yaml") << "data: {path: " << dir << "/data.txt, vocab: chars}\n"
                                    << "model: {n_layer: 2, n_head: 2, d_model: 16, d_head: 8, d_inner: 32, "
                                       "tgt_len: 8, mem_len: 8}\n"
                                    << "train: {batch_size: 4, steps: " << steps
                                    << ", log_interval: 1, checkpoint_interval: 2, keep_checkpoints: 2}\n"
                                    << "eval: {interval: 0, batch_size: 2, max_tokens: 100}\n";
  return dir;
}

}  // namespace

TEST_CASE("checkpoints keep the newest step directories behind last/best links", "[reliability]") {
  const std::string dir = tiny("layout", 8);
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run");
  const fs::path ck = dir + "/run/checkpoints";
  REQUIRE(fs::is_symlink(ck / "last"));
  REQUIRE(fs::read_symlink(ck / "last").string() == "step_00000008");
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(ck))
    if (!e.is_symlink()) steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  // keep_checkpoints 2, plus whatever best points to (validation ran at the end: step 8).
  REQUIRE(steps == std::vector<std::string>{"step_00000006", "step_00000008"});
}

TEST_CASE("a corrupted checkpoint is refused by its checksum", "[reliability]") {
  const std::string dir = tiny("checksum", 2);
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run");
  const std::string file = dir + "/run/checkpoints/last/model.safetensors";
  std::string bytes = read_file(file, "test");
  bytes[bytes.size() - 3] ^= 0x40;  // flip one bit inside the last tensor's data
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  REQUIRE_THROWS_WITH(load_safetensors(file), Catch::Contains("checksum mismatch") && Catch::Contains(file));
  std::string out;
  REQUIRE(run_status(kTxl + " eval " + dir + "/run/checkpoints/last", &out) == 1);
  REQUIRE(out.find("checksum mismatch") != std::string::npos);
}

TEST_CASE("a header that lies about sizes is refused", "[reliability]") {
  const std::string dir = scratch_dir("lying_header");
  save_safetensors(dir + "/t.safetensors", {{"w", Tensor::ones({4, 4})}});
  std::string bytes = read_file(dir + "/t.safetensors", "test");
  const auto at = bytes.find("[4,4]");
  REQUIRE(at != std::string::npos);
  bytes.replace(at, 5, "[8,4]");
  std::ofstream(dir + "/t.safetensors", std::ios::binary | std::ios::trunc) << bytes;
  REQUIRE_THROWS_WITH(load_safetensors(dir + "/t.safetensors"), Catch::Contains("does not fit its shape"));
}

TEST_CASE("SIGTERM finishes the step, checkpoints, exits 143 and resume completes the run", "[reliability][slow]") {
  const std::string dir = tiny("sigterm", 100000);
  const std::string run = dir + "/run";
  const std::string log = dir + "/log.txt";
  std::system(("(" + kTxl + " train " + dir + "/tiny.yaml run.dir=" + run + " > " + log +
               " 2>&1; echo $? > " + dir + "/rc) & echo $! > " + dir + "/pid").c_str());
  // Wait until training is under way, then ask it to stop.
  for (int i = 0; i < 200 && metrics_events(run, "train").size() < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(metrics_events(run, "train").size() >= 5);
  // Only the txl process (its command line starts with the binary), not the wrapping shell.
  std::system(("pkill -TERM -f '^" + std::string(TXL_BINARY_DIR) + "/bin/txl .*run.dir=" + run + "'").c_str());
  for (int i = 0; i < 200 && !fs::exists(dir + "/rc"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(read_file(dir + "/rc", "rc").rfind("143", 0) == 0);
  const std::string out = read_file(log, "log");
  REQUIRE(out.find("terminated (SIGTERM)") != std::string::npos);
  REQUIRE(out.find("txl train --resume " + run) != std::string::npos);
  const int64_t stopped = metrics_events(run, "train").back()["step"];
  REQUIRE(fs::read_symlink(run + "/checkpoints/last").string() == fmt::format("step_{:08d}", stopped));
  run_command(kTxl + " train --resume " + run + " train.steps=" + std::to_string(stopped + 3));
  REQUIRE(metrics_events(run, "train").back()["step"] == stopped + 3);
}

TEST_CASE("on_nonfinite: stop, skip and rewind", "[reliability][slow]") {
  const std::string dir = tiny("nonfinite", 10);
  std::string out;
  // stop: one clear line, non-zero exit, the checkpoint of step 4 is intact.
  REQUIRE(run_status("TXL_FAULT_NAN_STEPS=5 " + kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/stop", &out) ==
          1);
  REQUIRE(out.find("step 5: non-finite") != std::string::npos);
  REQUIRE(fs::read_symlink(dir + "/stop/checkpoints/last").string() == "step_00000004");
  // skip: the run finishes; the skipped step is recorded and not counted as an update.
  run_command("TXL_FAULT_NAN_STEPS=5 " + kTxl + " train " + dir + "/tiny.yaml train.on_nonfinite=skip run.dir=" + dir +
              "/skip");
  REQUIRE(metrics_events(dir + "/skip", "nonfinite").size() == 1);
  REQUIRE(metrics_events(dir + "/skip", "train").back()["step"] == 10);
  // rewind: back to step 4's checkpoint, then on to the end.
  out = run_command("TXL_FAULT_NAN_STEPS=7 " + kTxl + " train " + dir +
                    "/tiny.yaml train.on_nonfinite=rewind run.dir=" + dir + "/rewind");
  REQUIRE(out.find("rewound to step 6") != std::string::npos);
  REQUIRE(metrics_events(dir + "/rewind", "train").back()["step"] == 10);
  // rewind with no rewinds left stops.
  REQUIRE(run_status("TXL_FAULT_NAN_STEPS=7 " + kTxl + " train " + dir +
                         "/tiny.yaml train.on_nonfinite=rewind train.max_rewinds=0 run.dir=" + dir + "/norewind",
                     &out) == 1);
  REQUIRE(out.find("out of rewinds") != std::string::npos);
}

TEST_CASE("SIGKILL at random moments never loses or corrupts a run (20 trials)", "[reliability][slow]") {
  const std::string out = run_command("bash " + source_path("scripts/kill_test.sh") + " 20");
  REQUIRE(out.find("survived 20/20") != std::string::npos);
}

TEST_CASE("a full disk fails the checkpoint with one line and keeps the last good one", "[reliability][slow]") {
  const std::string dir = tiny("fulldisk", 2);
  const std::string run = dir + "/run";
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + run);
  // ulimit -f caps every file this process writes (bash counts 1024-byte blocks): the
  // weights of the next checkpoint (27 KB) do not fit, as on a full disk.
  std::string out;
  REQUIRE(run_status("ulimit -f 20; " + kTxl + " train --resume " + run + " train.steps=4", &out) == 1);
  // Progress lines go to stdout; the failure is one error line at the end.
  const auto err = out.find("error: ");
  REQUIRE(err != std::string::npos);
  REQUIRE(out.find('\n', err) == out.size() - 1);
  REQUIRE(out.find("write failed") != std::string::npos);
  REQUIRE(out.find("previous file is untouched") != std::string::npos);
  REQUIRE(fs::read_symlink(run + "/checkpoints/last").string() == "step_00000002");
  for (const auto& e : fs::directory_iterator(run + "/checkpoints"))
    REQUIRE(e.path().filename().string().find(".tmp-") == std::string::npos);  // nothing half-written left
  run_command(kTxl + " eval " + run + "/checkpoints/last --json");
  // With space again, the run resumes from the intact checkpoint.
  run_command(kTxl + " train --resume " + run + " train.steps=4");
  REQUIRE(fs::read_symlink(run + "/checkpoints/last").string() == "step_00000004");
}

TEST_CASE("an unwritable run directory fails with one line and keeps the last good checkpoint", "[reliability][slow]") {
  // The suite runs as root, which writes through any permission bits; a read-only
  // directory is only read-only to an unprivileged user, so txl runs as `nobody` here.
  TXL_SKIP_UNLESS(std::system("setpriv --reuid=65534 --regid=65534 --clear-groups true > /dev/null 2>&1") == 0,
                  "skipped: setpriv cannot drop to uid 65534 on this machine (needs root and util-linux)");
  const std::string dir = tiny("readonly", 2);
  // A copy of the binary in the scratch directory: the build tree may sit where nobody
  // cannot reach it (a clone under /root).
  fs::copy_file(std::string(TXL_BINARY_DIR) + "/bin/txl", dir + "/txl");
  const std::string run = dir + "/run";
  REQUIRE(std::system(("chown -R 65534:65534 " + dir).c_str()) == 0);
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups " + dir + "/txl --threads 2";
  run_command(as_nobody + " train " + dir + "/tiny.yaml run.dir=" + run);
  REQUIRE(fs::read_symlink(run + "/checkpoints/last").string() == "step_00000002");

  // The checkpoint directory turns read-only: the next checkpoint cannot be written.
  fs::permissions(run + "/checkpoints", fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                  fs::perm_options::remove);
  std::string out;
  REQUIRE(run_status(as_nobody + " train --resume " + run + " train.steps=4", &out) == 1);
  const auto err = out.find("error: ");
  REQUIRE(err != std::string::npos);
  REQUIRE(out.find('\n', err) == out.size() - 1);  // one line, the last
  REQUIRE(out.find(run + "/checkpoints") != std::string::npos);
  REQUIRE(out.find("Permission denied") != std::string::npos);
  REQUIRE(fs::read_symlink(run + "/checkpoints/last").string() == "step_00000002");
  run_command(as_nobody + " eval " + run + "/checkpoints/last --json");

  // A new run under a read-only parent is refused before any training.
  fs::create_directories(dir + "/ro");
  REQUIRE(std::system(("chown 65534:65534 " + dir + "/ro && chmod 555 " + dir + "/ro").c_str()) == 0);
  REQUIRE(run_status(as_nobody + " train " + dir + "/tiny.yaml run.dir=" + dir + "/ro/run", &out) == 1);
  REQUIRE(out.rfind("error: ", 0) == 0);
  REQUIRE(out.find(dir + "/ro/run: cannot create the run directory (Permission denied)") != std::string::npos);
  REQUIRE(std::count(out.begin(), out.end(), '\n') == 1);
  REQUIRE(!fs::exists(dir + "/ro/run"));

  // Writable again: the run resumes from the intact checkpoint.
  fs::permissions(run + "/checkpoints", fs::perms::owner_write, fs::perm_options::add);
  run_command(as_nobody + " train --resume " + run + " train.steps=4");
  REQUIRE(fs::read_symlink(run + "/checkpoints/last").string() == "step_00000004");
}

namespace {

// A command that must fail with one error line naming `what`; returns that line.
std::string refused(const std::string& cmd, const std::string& what) {
  std::string out;
  const int rc = run_status(cmd, &out);
  INFO("command: " << cmd << "\noutput:\n" << out);
  CHECK(rc == 1);
  CHECK(out.rfind("error: ", 0) == 0);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  CHECK(out.find(what) != std::string::npos);
  return out;
}

std::string file_bytes(const std::string& path) { return read_file(path, "test"); }

}  // namespace

TEST_CASE("train --overwrite replaces txl runs only: never a plain directory, a file or the working directory",
          "[reliability]") {
  const std::string dir = tiny("overwrite_guard", 2);
  const std::string train = kTxl + " train " + dir + "/tiny.yaml";
  // A directory of someone's files, and the working directory with a run in it.
  fs::create_directories(dir + "/notes");
  std::ofstream(dir + "/notes/thesis.tex") << "years of work\n";
  refused(train + " run.dir=" + dir + "/notes --overwrite", "not a txl run");
  REQUIRE(file_bytes(dir + "/notes/thesis.tex") == "years of work\n");
  refused("cd " + dir + " && " + train + " run.dir=. --overwrite", "working directory");
  refused("cd " + dir + "/notes && " + train + " run.dir=.. --overwrite", "working directory");
  REQUIRE(fs::exists(dir + "/tiny.yaml"));
  // run.name is a name under runs/, not a path out of it.
  for (const char* name : {"..", ".", "../escaped", "a/../..", "/tmp/x"})
    refused("cd " + dir + " && " + train + " run.name=" + name + " --overwrite", "run.name");
  REQUIRE(file_bytes(dir + "/notes/thesis.tex") == "years of work\n");
  std::ofstream(dir + "/plain_file") << "x";
  refused(train + " run.dir=" + dir + "/plain_file", "is not a directory");
  // A real run is replaced.
  run_command(train + " run.dir=" + dir + "/run");
  run_command(train + " run.dir=" + dir + "/run --overwrite");
}

TEST_CASE("a resume that fails leaves the run as it was", "[reliability]") {
  const std::string dir = tiny("resume_guard", 4);
  const std::string run = dir + "/run";
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + run);
  const std::string config = file_bytes(run + "/config.yaml"), metrics = file_bytes(run + "/metrics.jsonl");
  // The optimizer state does not fit the new optimizer: refused after config.yaml would
  // have been rewritten with the new name.
  refused(kTxl + " train --resume " + run + " train.steps=6 train.optimizer.name=adagrad", "adagrad");
  // Nothing left to train, and two contradicting options.
  refused(kTxl + " train --resume " + run + " train.steps=3", "below the checkpoint's step 4");
  refused(kTxl + " train --resume " + run + " train.steps=6 --overwrite", "--overwrite");
  REQUIRE(file_bytes(run + "/config.yaml") == config);
  REQUIRE(file_bytes(run + "/metrics.jsonl") == metrics);
  // The checkpoint's config.yaml is covered by a checksum in model.safetensors: cut in
  // half (its later keys would load as defaults and train on with another recipe), it
  // is refused by resume, eval and generate alike.
  const std::string ck_config = run + "/checkpoints/last/config.yaml", text = file_bytes(ck_config);
  std::ofstream(ck_config, std::ios::trunc) << text.substr(0, text.size() / 2);
  refused(kTxl + " train --resume " + run + " train.steps=6", "checksum mismatch");
  refused(kTxl + " eval " + run + "/checkpoints/last", "checksum mismatch");
  refused(kTxl + " generate " + run + "/checkpoints/last --tokens 5", "checksum mismatch");
  std::ofstream(ck_config, std::ios::trunc) << text;
  run_command(kTxl + " train --resume " + run + " train.steps=6");
}

TEST_CASE("one process trains in a run directory at a time", "[reliability]") {
  const std::string dir = tiny("run_lock", 100000);
  const std::string run = dir + "/run";
  // A long run in the background; a resume of it while it trains is refused.
  const std::string pid_file = dir + "/pid";
  REQUIRE(
      std::system((kTxl + " train " + dir + "/tiny.yaml run.dir=" + run + " > /dev/null 2>&1 & echo $! > " + pid_file)
                      .c_str()) == 0);
  for (int i = 0; i < 600 && !fs::exists(run + "/checkpoints/last/trainer_state.json"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(fs::exists(run + "/checkpoints/last/trainer_state.json"));
  refused(kTxl + " train --resume " + run + " train.steps=200000", "another txl process");
  refused(kTxl + " train " + dir + "/tiny.yaml run.dir=" + run + " --overwrite", "another txl process");
  REQUIRE(std::system(("kill $(cat " + pid_file + ")").c_str()) == 0);
  for (int i = 0; i < 600 && std::system(("kill -0 $(cat " + pid_file + ") 2> /dev/null").c_str()) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

TEST_CASE("sizes that cannot run are refused up front with one line", "[reliability]") {
  const std::string dir = tiny("sizes", 2);
  const std::string train = kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run";
  refused(train + " model.d_inner=1000000000", "model.d_inner");
  refused(train + " model.n_layer=100000000", "model.n_layer");
  refused(std::string(TXL_BINARY_DIR) + "/bin/txl --threads 100000 train " + dir + "/tiny.yaml", "--threads");
  refused("TXL_NUM_THREADS=100000 " + std::string(TXL_BINARY_DIR) + "/bin/txl train " + dir + "/tiny.yaml",
          "TXL_NUM_THREADS");
  // Beyond a long, strtol's clamped value used to be what the line showed.
  refused(
      "TXL_NUM_THREADS=99999999999999999999 " + std::string(TXL_BINARY_DIR) + "/bin/txl train " + dir + "/tiny.yaml",
      "TXL_NUM_THREADS: expected 1 to ");
  // OMP_THREAD_LIMIT caps every team: a pool beyond it runs teams smaller than oneDNN
  // plans its products for (the test process's fp32 products came out wrong that way).
  // Beyond it is refused; the default pool stays within it and trains the same run.
  refused("OMP_THREAD_LIMIT=1 " + std::string(TXL_BINARY_DIR) + "/bin/txl --threads 2 info --system",
          "--threads / run.threads: expected 1 to 1 threads (OMP_THREAD_LIMIT is 1), got 2");
  const json limited = last_json_line(run_command(
      "OMP_THREAD_LIMIT=1 " + std::string(TXL_BINARY_DIR) + "/bin/txl train " + dir + "/tiny.yaml run.dir=" + dir +
      "/limited && " + std::string(TXL_BINARY_DIR) + "/bin/txl eval " + dir + "/limited --json"));
  const json full = last_json_line(run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/full && " +
                                               kTxl + " eval " + dir + "/full --json"));
  CHECK(std::abs(limited["nll"].get<double>() - full["nll"].get<double>()) < 1e-4);  // the same run, 1 thread or 2
  CHECK(refused("TXL_NUM_THREADS=99999999999999999999 " + std::string(TXL_BINARY_DIR) + "/bin/txl info --system",
                "got 99999999999999999999")
            .find("9223372036854775807") == std::string::npos);
  refused(kTxl + " generate " + dir + "/nothing --seed abc", "--seed");
  // Adaptive span scores whole blocks of tgt_len: a split shorter than one block per
  // stream would score nothing (a NaN loss), in training and in txl eval.
  const std::string span = std::string(" model.mem_len=0 model.attention.type=adaptive_span") +
                           " model.attention.span=16 train.optimizer.name=adagrad train.optimizer.lr=0.07 run.dir=";
  refused(kTxl + " train " + dir + "/tiny.yaml" + span + dir + "/span_short eval.tgt_len=5000", "eval.batch_size");
  run_command(kTxl + " train " + dir + "/tiny.yaml" + span + dir + "/span");
  refused(kTxl + " eval " + dir + "/span --tgt-len 5000", "--tgt-len 5000");
}

TEST_CASE("eval refuses --mem-len for an attention type that scores whole blocks from its own caches",
          "[reliability]") {
  const std::string dir = tiny("span_mem_len", 2);
  run_command(kTxl + " train " + dir + "/tiny.yaml model.mem_len=0 model.attention.type=adaptive_span " +
              "model.attention.span=16 train.optimizer.name=adagrad train.optimizer.lr=0.07 run.dir=" + dir + "/span");
  // Adaptive span attends over caches its span sizes; a memory length would be ignored.
  refused(kTxl + " eval " + dir + "/span --mem-len 16", "--mem-len: does not apply to attention type adaptive_span");
  // So in training: a memory length a config or an override gives is refused (it was
  // ignored), and the run's resolved config says 0, so that it can be trained again.
  const std::string span_train = kTxl + " train " + dir + "/tiny.yaml model.attention.type=adaptive_span " +
                                 "model.attention.span=16 train.optimizer.name=adagrad run.dir=" + dir + "/span2";
  refused(span_train, "model.mem_len: does not apply to attention type adaptive_span");  // tiny.yaml's 8
  refused(span_train + " model.mem_len=0 eval.mem_len=16",
          "eval.mem_len=16: does not apply to attention type adaptive_span");
  refused(kTxl + " eval " + dir + "/span model.mem_len=16", "model.mem_len=16: does not apply");
  REQUIRE(!fs::exists(dir + "/span2"));
  // Without the key the resolved memory length is 0 (it was model.mem_len's default, 64),
  // so a run's config.yaml trains again as it is.
  REQUIRE(load_config(dir + "/span/config.yaml").model.mem_len == 0);
  std::ofstream(dir + "/span.yaml") << "data: {path: " << dir << "/data.txt, vocab: chars}\n"
                                    << "model: {n_layer: 1, n_head: 2, d_model: 16, d_head: 8, d_inner: 32, "
                                       "tgt_len: 8, attention: {type: adaptive_span, span: 16}}\n";
  REQUIRE(load_config(dir + "/span.yaml").model.mem_len == 0);
  run_command(kTxl + " train " + dir + "/span/config.yaml train.steps=1 run.dir=" + dir + "/span3");
  run_command(kTxl + " eval " + dir + "/span --tgt-len 16");
  // The initial span only sets up a new run's parameters; a resume continues the
  // checkpoint's (it used to record the override in config.yaml and ignore it).
  const std::string config = file_bytes(dir + "/span/config.yaml");
  refused(kTxl + " train --resume " + dir + "/span train.steps=4 model.attention.init=0.5", "model.attention.init");
  REQUIRE(file_bytes(dir + "/span/config.yaml") == config);
  run_command(kTxl + " train --resume " + dir + "/span train.steps=4 model.attention.span_loss=0.001");
  // Transformer-XL carries a memory of mem_len: the flag applies.
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/txl");
  const json r = last_json_line(run_command(kTxl + " eval " + dir + "/txl --mem-len 16 --json"));
  REQUIRE(r["mem_len"] == 16);
}

TEST_CASE("bytes after the last tensor's data are refused as corrupt", "[reliability]") {
  const std::string dir = tiny("trailing_bytes", 2);
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run");
  // Every file a checkpoint holds ends where its last tensor does, and still loads.
  const std::string ck = dir + "/run/checkpoints/last";
  for (const char* name : {"model", "optimizer", "mems"}) load_safetensors(ck + "/" + name + ".safetensors");
  save_safetensors(dir + "/empty.safetensors", {});
  REQUIRE(load_safetensors(dir + "/empty.safetensors").empty());
  // Appended bytes: no checksum covers them, so before this they loaded as if absent.
  const std::string file = ck + "/model.safetensors";
  std::ofstream(file, std::ios::binary | std::ios::app) << "appended";
  REQUIRE_THROWS_WITH(load_safetensors(file), Catch::Contains(file) && Catch::Contains("8 bytes after"));
  refused(kTxl + " eval " + ck, file + ": corrupt safetensors file (8 bytes after");
}

TEST_CASE("a resume refuses the overrides it cannot honour and keeps the ones it does", "[reliability]") {
  const std::string dir = tiny("resume_fixed_keys", 2);
  const std::string run = dir + "/run", resume = kTxl + " train --resume " + run + " train.steps=4";
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + run);
  const std::string config = file_bytes(run + "/config.yaml");
  // The run directory is the one resumed, the vocabulary and the initial weights the
  // checkpoint's: each of these used to be written to config.yaml and otherwise ignored.
  refused(resume + " run.dir=" + dir + "/elsewhere", "run.dir");
  refused(resume + " run.name=elsewhere", "run.name");
  refused(resume + " data.vocab=bytes", "data.vocab");
  refused(resume + " model.init_std=0.5", "model.init_std");
  refused(resume + " 'data={vocab: bytes}'", "data.vocab");  // the same key, given as a section
  REQUIRE(!fs::exists(dir + "/elsewhere"));
  REQUIRE(file_bytes(run + "/config.yaml") == config);
  // What a resume does honour still goes through, and so does run.dir naming the run itself.
  run_command(resume + " run.dir=" + dir + "/./run eval.interval=1 train.optimizer.lr=1e-3");
  REQUIRE(metrics_events(run, "eval").back()["step"] == 4);
}

TEST_CASE("an empty validation split: eval.interval is refused up front, a run without it is not evaluated",
          "[reliability]") {
  const std::string dir = tiny("empty_valid", 2);
  const std::string train = kTxl + " train " + dir + "/tiny.yaml 'data.split=[1,0,0]'";
  // Periodic evaluation of nothing used to train on and report "best valid bpc inf".
  const std::string line = refused(train + " eval.interval=1 run.dir=" + dir + "/r1", "eval.interval 1");
  REQUIRE(line.find("data.split") != std::string::npos);
  REQUIRE(!fs::exists(dir + "/r1"));
  // Without eval.interval the run trains and says it was not evaluated.
  const std::string out = run_command(train + " run.dir=" + dir + "/r2");
  REQUIRE(out.find("bpc inf") == std::string::npos);
  REQUIRE(out.find("not evaluated: the validation split of " + dir + "/data.txt is empty") != std::string::npos);
  REQUIRE(metrics_events(dir + "/r2", "eval").empty());
}

TEST_CASE("integer flags out of range are refused, not clamped", "[reliability]") {
  const std::string dir = tiny("flag_range", 2);
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run");
  const std::string eval = kTxl + " eval " + dir + "/run ";
  // Beyond int64: strtoll clamped it to 9223372036854775807 and scored with that.
  refused(eval + "--batch-size 99999999999999999999",
          "--batch-size: expected an integer from 1 to 2147483647, got '99999999999999999999'");
  refused(eval + "--tgt-len 9223372036854775808", "--tgt-len: expected an integer from 1 to");
  refused(eval + "--mem-len -99999999999999999999", "--mem-len: expected an integer from 0 to");
  refused(eval + "--clamp-len 3000000000", "--clamp-len: expected an integer from -1 to");
  refused(kTxl + " generate " + dir + "/run --tokens 99999999999999999999", "--tokens");
  refused(std::string(TXL_BINARY_DIR) + "/bin/txl --threads 99999999999999999999 info --system", "--threads");
  refused(eval + "--batch-size +-2", "--batch-size: expected an integer from 1 to");
  refused(eval + "--batch-size 2x", "--batch-size: expected an integer from 1 to");
  // In range, the same flags work, with a leading '+' as strtol took it.
  run_command(eval + "--batch-size 2 --tgt-len 8 --mem-len 8 --clamp-len -1");
  run_command(eval + "--batch-size +2 --tgt-len +8");
}

TEST_CASE("a checkpoints/last or best link that loops gets one line naming it", "[reliability]") {
  const std::string dir = tiny("link_loop", 2);
  const std::string run = dir + "/run", last = run + "/checkpoints/last", best = run + "/checkpoints/best";
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + run);
  const fs::path good = fs::read_symlink(last);
  // last -> last: each reader used to stop with "filesystem error: status: Too many levels of symbolic links".
  fs::remove(last);
  fs::create_symlink("last", last);
  refused(kTxl + " train --resume " + run + " train.steps=4", last + ": a symbolic link that loops");
  refused(kTxl + " eval " + last, last + ": a symbolic link that loops");
  refused(kTxl + " info " + last, last + ": a symbolic link that loops");
  fs::remove(last);
  fs::create_symlink(good, last);
  // best -> best: a run directory is read through best first; resume does not read it
  // and trains on past it (pruning looks at the links without following them).
  fs::remove(best);
  fs::create_symlink("best", best);
  refused(kTxl + " eval " + run, best + ": a symbolic link that loops");
  run_command(kTxl + " train --resume " + run + " train.steps=4");
  REQUIRE(fs::read_symlink(last).string() == "step_00000004");
}

TEST_CASE("model.clamp_len below -1 is refused in a user's config, and loads from a checkpoint's", "[reliability]") {
  const std::string dir = tiny("clamp_len", 2);
  const std::string train = kTxl + " train " + dir + "/tiny.yaml";
  refused(train + " model.clamp_len=-5 run.dir=" + dir + "/r1",
          "<override> model.clamp_len=-5: expected an integer >= -1 (-1: no clamping), got -5");
  REQUIRE(!fs::exists(dir + "/r1"));
  std::ofstream(dir + "/clamp.yaml") << "data: {path: " << dir << "/data.txt}\nmodel: {clamp_len: -2}\n";
  refused(kTxl + " train " + dir + "/clamp.yaml run.dir=" + dir + "/r2", "model.clamp_len: expected an integer >= -1");
  // Given on the command line of a resume or an evaluation, it is the user's value too.
  run_command(train + " run.dir=" + dir + "/run");
  refused(kTxl + " train --resume " + dir + "/run train.steps=4 model.clamp_len=-5", "model.clamp_len");
  refused(kTxl + " eval " + dir + "/run model.clamp_len=-5", "model.clamp_len");
  // A checkpoint's stored config is exempt, as from the run.name rule: runs saved
  // before the rule keep loading (negative values never clamped).
  const Config stored = config_from_yaml_string("model: {clamp_len: -7}\n", "config.yaml", {}, false);
  REQUIRE(stored.model.clamp_len == -7);
}
