// The txl command line end to end on a tiny model: train / resume / eval / generate /
// info, and the one-line errors for bad configs, data and checkpoints.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "reference_runner.h"
#include "txl/io/safetensors.h"
#include "txl/models/language_model.h"
#include "txl/train/checkpoint.h"

using namespace txl;
using namespace txl::testing;
using json = nlohmann::json;
using txl::testing::metrics_events;
namespace fs = std::filesystem;

namespace {

const std::string kTxl = std::string(TXL_BINARY_DIR) + "/bin/txl --threads 2";

std::string tiny_setup(const std::string& name, const std::string& extra = "") {
  const std::string dir = scratch_dir(name);
  write_corpus_prefix(dir, 20000);
  std::ofstream(dir + "/tiny.yaml") << "data: {path: " << dir << "/data.txt, split: [0.9, 0.1, 0.0], vocab: chars}\n"
                                    << "model: {n_layer: 2, n_head: 2, d_model: 16, d_head: 8, d_inner: 32, "
                                       "dropout: 0.1, dropatt: 0.1, tgt_len: 8, mem_len: 8}\n"
                                    << "train: {batch_size: 4, steps: 20, log_interval: 1, seed: 3, clip: 0.5, "
                                       "checkpoint_interval: 10,\n"
                                       "        optimizer: {name: adam, lr: 3.0e-3}, schedule: {name: constant, "
                                       "warmup_steps: 4}}\n"
                                    << "eval: {interval: 10, batch_size: 2}\n" << extra;
  return dir;
}

// Runs a command that must fail; returns its combined output.
std::string run_failing(const std::string& cmd) {
  std::string out;
  const int rc = run_status(cmd, &out);
  INFO(cmd << "\n" << out);
  REQUIRE(rc != 0);
  return out;
}

}  // namespace

TEST_CASE("txl --help lists the subcommands", "[cli]") {
  std::string out = run_command(kTxl + " --help");
  for (const char* cmd : {"train", "eval", "generate", "info", "bench ops", "bench train"})
    REQUIRE(out.find(cmd) != std::string::npos);
}

TEST_CASE("train writes a run directory and resume continues exactly", "[cli][slow]") {
  const std::string dir = tiny_setup("resume");
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/full");
  // The same run stopped after 10 steps, then resumed to 20 (a constant schedule, so
  // the shorter first leg does not change the learning rates).
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/split train.steps=10");
  run_command(kTxl + " train --resume " + dir + "/split train.steps=20");

  for (const char* f : {"config.yaml", "metrics.jsonl", "checkpoints/last/model.safetensors",
                        "checkpoints/last/optimizer.safetensors", "checkpoints/best/model.safetensors"})
    REQUIRE(fs::exists(dir + "/full/" + f));
  auto full = metrics_events(dir + "/full", "train"), split = metrics_events(dir + "/split", "train");
  REQUIRE(full.size() == 20);
  REQUIRE(split.size() == 20);
  for (size_t i = 0; i < full.size(); ++i) {
    INFO("step " << i + 1);
    REQUIRE(split[i]["step"] == full[i]["step"]);
    REQUIRE(split[i]["loss"].get<double>() == full[i]["loss"].get<double>());
  }
  auto a = load_safetensors(dir + "/full/checkpoints/last/model.safetensors");
  auto b = load_safetensors(dir + "/split/checkpoints/last/model.safetensors");
  for (const auto& [name, t] : a) REQUIRE(t.to_doubles() == b.at(name).to_doubles());
  // Training loss went down; the log interval of 1 gives every step.
  REQUIRE(full.back()["loss"].get<double>() < full.front()["loss"].get<double>());
}

TEST_CASE("eval, generate and info work on a trained run", "[cli][slow]") {
  const std::string dir = tiny_setup("evalgen");
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run train.steps=10");
  json e = json::parse(run_command(kTxl + " eval " + dir + "/run --json"));
  for (const char* k : {"nll", "bpc", "ppl", "tokens"}) REQUIRE(e.contains(k));
  REQUIRE(e["bpc"].get<double>() == Approx(e["nll"].get<double>() / std::log(2.0)));
  REQUIRE(e["ppl"].get<double>() == Approx(std::exp(e["nll"].get<double>())));
  // The last eval event of training scored the same split with the same settings.
  auto evals = metrics_events(dir + "/run", "eval");
  REQUIRE(e["nll"].get<double>() == Approx(evals.back()["loss"].get<double>()).epsilon(1e-9));
  json all = json::parse(run_command(kTxl + " eval " + dir + "/run --data " + dir + "/data.txt --split all "
                                     "--batch-size 3 --tgt-len 5 --mem-len 11 --json"));
  REQUIRE(all["tokens"].get<int64_t>() == (20000 / 3 - 1) * 3);
  // Scored on the run's device and precision (this run: cpu, fp32) unless told otherwise;
  // bf16 products move the score by rounding only.
  REQUIRE(e["device"] == "cpu");
  REQUIRE(e["precision"] == "fp32");
  json bf16 = json::parse(run_command(kTxl + " eval " + dir + "/run --precision bf16 --json"));
  REQUIRE(bf16["precision"] == "bf16");
  REQUIRE(bf16["nll"].get<double>() != e["nll"].get<double>());
  REQUIRE(bf16["nll"].get<double>() == Approx(e["nll"].get<double>()).epsilon(1e-2));
  REQUIRE(run_failing(kTxl + " eval " + dir + "/run --precision fp16").find("--precision: expected fp32, bf16 or auto") !=
          std::string::npos);
  REQUIRE(run_failing(kTxl + " eval " + dir + "/run --device tpu").find("--device: expected cpu or cuda") !=
          std::string::npos);

  std::string text = run_command(kTxl + " generate " + dir + "/run --prompt \"ROMEO:\" --tokens 40 --seed 1");
  REQUIRE(text.rfind("ROMEO:", 0) == 0);
  REQUIRE(text.size() >= 46);
  REQUIRE(text == run_command(kTxl + " generate " + dir + "/run --prompt \"ROMEO:\" --tokens 40 --seed 1"));

  std::string info = run_command(kTxl + " info " + dir + "/run");
  REQUIRE(info.find("closed form") != std::string::npos);
  REQUIRE(info.find("match") != std::string::npos);
  REQUIRE(info.find("step 10") != std::string::npos);
}

TEST_CASE("gradient accumulation over batch chunks follows the unchunked run", "[cli][slow]") {
  // Batch columns are independent streams with their own memories, so two chunks of 2
  // columns give the same mean loss and gradients as one batch of 4, up to rounding.
  const std::string dir = tiny_setup("chunks");
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/one train.steps=8 model.dropout=0.0 "
              "model.dropatt=0.0 eval.interval=0");
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/two train.steps=8 model.dropout=0.0 "
              "model.dropatt=0.0 eval.interval=0 train.batch_chunk=2");
  auto one = metrics_events(dir + "/one", "train"), two = metrics_events(dir + "/two", "train");
  REQUIRE(one.size() == 8);
  REQUIRE(two.size() == 8);
  for (size_t i = 0; i < one.size(); ++i)
    REQUIRE(two[i]["loss"].get<double>() == Approx(one[i]["loss"].get<double>()).epsilon(1e-5));
}

TEST_CASE("train --init fine-tunes from a checkpoint and refuses a different architecture", "[cli][slow]") {
  const std::string dir = tiny_setup("init");
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run train.steps=1 eval.interval=0");
  // A config without a model section takes the checkpoint's architecture.
  std::ofstream(dir + "/ft.yaml") << "data: {path: " << dir << "/data.txt, vocab: chars}\n"
                                  << "train: {batch_size: 2, steps: 2, log_interval: 1}\neval: {interval: 0}\n";
  run_command(kTxl + " train " + dir + "/ft.yaml --init " + dir + "/run/checkpoints/last run.dir=" + dir +
              "/ft model.dropout=0.0 model.mem_len=4");
  REQUIRE(metrics_events(dir + "/ft", "train").size() == 2);
  std::string out = run_failing(kTxl + " train " + dir + "/ft.yaml --init " + dir + "/run/checkpoints/last run.dir=" +
                                dir + "/ft2 model.d_model=32");
  REQUIRE(out.find("model.d_model") != std::string::npos);
  REQUIRE(out.find("--init") != std::string::npos);
}

TEST_CASE("incremental decoding with memory equals a full forward", "[cli]") {
  // Generation feeds one token at a time with the memory carried; with enough memory
  // each position's logits must equal those of one forward over the whole sequence.
  ModelConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  c.d_head = 8;
  c.d_inner = 32;
  c.tgt_len = 12;
  c.mem_len = 12;
  LanguageModel m(c, 20, DType::f64);
  m.init_weights(4);
  NoGradGuard ng;
  std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
  ForwardOptions fo;
  fo.want_logits = true;
  fo.want_loss = false;
  Tensor full = m.forward(Tensor::from_vector<int64_t>({12, 1}, ids), Tensor(), {}, fo).logits;
  std::vector<Tensor> mems;
  for (int64_t t = 0; t < 12; ++t) {
    ForwardResult r = m.forward(Tensor::from_vector<int64_t>({1, 1}, {ids[t]}), Tensor(), mems, fo);
    mems = r.mems;
    REQUIRE(max_rel_diff(r.logits, narrow(full, 0, t, 1)) <= 1e-12);
  }
}

TEST_CASE("bad inputs give one clear error line and a non-zero exit", "[cli]") {
  const std::string dir = tiny_setup("bad");
  std::string out = run_failing(kTxl + " train " + dir + "/tiny.yaml model.dmodel=4");
  REQUIRE(out.find("model.dmodel") != std::string::npos);
  REQUIRE(out.find("did you mean model.d_model") != std::string::npos);
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml model.dropout=1.5 run.dir=" + dir + "/r1");
  REQUIRE(out.find("model.dropout") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir + "/r1"));
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml model.n_layer");  // an override without its value
  REQUIRE(out.find("'model.n_layer' after the config") != std::string::npos);
  out = run_failing(kTxl + " train " + dir + "/missing.yaml");
  REQUIRE(out.find("missing.yaml") != std::string::npos);
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml data.path=" + dir + "/nope.txt run.dir=" + dir + "/r2");
  REQUIRE(out.find("nope.txt") != std::string::npos);
  std::ofstream(dir + "/empty.txt").close();
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml data.path=" + dir + "/empty.txt run.dir=" + dir + "/r3");
  REQUIRE(out.find("empty.txt") != std::string::npos);
  out = run_failing(kTxl + " eval " + dir + "/no_such_checkpoint");
  REQUIRE(out.find("no_such_checkpoint") != std::string::npos);

  // A run directory is never silently replaced.
  run_command(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run train.steps=2");
  const auto before = fs::last_write_time(dir + "/run/metrics.jsonl");
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run train.steps=2");
  REQUIRE(out.find("--resume") != std::string::npos);
  REQUIRE(fs::last_write_time(dir + "/run/metrics.jsonl") == before);
  // --overwrite replaces it only once the new run's data has loaded: bad data keeps it.
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/run --overwrite data.path=" + dir +
                    "/nope.txt");
  REQUIRE(out.find("nope.txt") != std::string::npos);
  REQUIRE(fs::last_write_time(dir + "/run/metrics.jsonl") == before);

  // Splits too short for their streams are refused before training, naming file and keys.
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml model.tgt_len=5000 run.dir=" + dir + "/r4");
  REQUIRE(out.find("the training split of " + dir + "/data.txt has 18000 tokens") != std::string::npos);
  REQUIRE(out.find("train.batch_size 4 streams of model.tgt_len 5000") != std::string::npos);
  out = run_failing(kTxl + " train " + dir + "/tiny.yaml eval.batch_size=1500 run.dir=" + dir + "/r5");
  REQUIRE(out.find("the validation split of " + dir + "/data.txt has 2000 tokens") != std::string::npos);
  REQUIRE(out.find("eval.batch_size 1500") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir + "/r4"));
  REQUIRE_FALSE(fs::exists(dir + "/r5"));

  // Corrupt and truncated checkpoints are refused by name.
  const std::string ck = dir + "/run/checkpoints/last/model.safetensors";
  std::string bytes = read_file(ck, "test");
  std::ofstream(ck, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  out = run_failing(kTxl + " eval " + dir + "/run/checkpoints/last");
  REQUIRE(out.find("model.safetensors") != std::string::npos);
  std::ofstream(ck, std::ios::binary) << "garbage";
  out = run_failing(kTxl + " info " + dir + "/run/checkpoints/last");
  REQUIRE(out.find("model.safetensors") != std::string::npos);
  // Every failure above is a single error line, not a crash.
  REQUIRE(std::count(out.begin(), out.end(), '\n') == 1);
  REQUIRE(out.rfind("error: ", 0) == 0);
}

TEST_CASE("bench ops --bf16 times each layer product in cache and cold, against the bf16 peak",
          "[cli][slow][serial]") {
  const json r = json::parse(run_command(kTxl + " bench ops --quick --bf16 --json"));
  CHECK(r["precision"] == "bf16");
  CHECK(r["peak_gflops"].get<double>() > 0);
  REQUIRE(!r["gemm"].empty());
  for (const auto& g : r["gemm"]) {
    INFO(g["name"].get<std::string>());
    CHECK(g["cold_sets"].get<int>() >= 2);
    CHECK(g["gflops"].get<double>() > 0);
    CHECK(g["cold_gflops"].get<double>() > 0);
    // Both rates describe one product: per-product times, not per pass over the sets.
    CHECK(g["cold_ms"].get<double>() < 50 * g["ms"].get<double>());
  }
}
