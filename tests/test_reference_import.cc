// End-to-end against our PyTorch reference (scripts/reference/mem_transformer_ref.py):
//  - scripts/import_reference.py turns a reference state_dict into a checkpoint that
//    `txl eval` scores equal to the reference's own eval.py-style loss (1e-4 relative),
//    for post-LN, pre-LN, same_length + clamp_len, and a longer evaluation memory;
//  - `txl train --init` from the same weights follows the reference training loop's
//    per-step losses (1e-4 relative);
//  - bad state dicts get one clear error line and a non-zero exit.
#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "reference_runner.h"

using namespace txl::testing;
using json = nlohmann::json;

namespace {

const std::string kRef = "/usr/bin/python3 " + source_path("scripts/reference/mem_transformer_ref.py");
const std::string kImport = "/usr/bin/python3 " + source_path("scripts/import_reference.py");
const std::string kTxl = std::string(TXL_BINARY_DIR) + "/bin/txl --threads 1";

void compare_eval(const std::string& name, const std::string& arch, const std::string& eval_flags_ref,
                  const std::string& eval_flags_txl) {
  const std::string dir = scratch_dir("import_" + name);
  const std::string data = write_corpus_prefix(dir, 6000, "corpus.txt");
  run_command(kRef + " save-random --out " + dir + "/state.pt --vocab 256 --init_std 0.1 --seed 3 " + arch);
  run_command(kImport + " transformer-xl " + dir + "/state.pt " + dir + "/ckpt --vocab bytes " + arch);
  json ref = last_json_line(run_command(kRef + " eval --state " + dir + "/state.pt --data " + data + " --dtype float64 " + arch +
                                        " " + eval_flags_ref));
  json ours = last_json_line(run_command(kTxl + " eval " + dir + "/ckpt --data " + data + " --split all --json " +
                                         eval_flags_txl));
  INFO("reference " << ref.dump() << "\ntxl " << ours.dump());
  REQUIRE(ours["tokens"].get<int64_t>() == ref["tokens"].get<int64_t>());
  REQUIRE(std::abs(ours["nll"].get<double>() - ref["nll"].get<double>()) <= 1e-4 * ref["nll"].get<double>());
}

const std::string kArch = "--n_layer 2 --n_head 2 --d_model 32 --d_head 16 --d_inner 64 --tgt_len 16 --mem_len 16";

}  // namespace

TEST_CASE("imported reference model: txl eval equals the reference eval (post-LN)", "[reference][import]") {
  TXL_REQUIRE_TORCH();
  compare_eval("post", kArch, "--batch-size 4 --tgt-len 16 --mem-len 16", "--batch-size 4 --tgt-len 16 --mem-len 16");
}

TEST_CASE("imported reference model: pre-LN, same_length and clamp_len", "[reference][import]") {
  TXL_REQUIRE_TORCH();
  compare_eval("pre", kArch + " --pre_lnorm", "--batch-size 3 --tgt-len 16 --mem-len 16",
               "--batch-size 3 --tgt-len 16 --mem-len 16");
  compare_eval("same", kArch + " --same_length --clamp_len 10",
               "--batch-size 4 --tgt-len 12 --mem-len 20 --same-length --clamp-len 10",
               "--batch-size 4 --tgt-len 12 --mem-len 20 --same-length --clamp-len 10");
}

TEST_CASE("imported reference model: longer memory at evaluation", "[reference][import]") {
  TXL_REQUIRE_TORCH();
  compare_eval("longmem", kArch, "--batch-size 2 --tgt-len 8 --mem-len 48", "--batch-size 2 --tgt-len 8 --mem-len 48");
}

TEST_CASE("import_reference rejects bad state dicts with one clear line", "[reference][import]") {
  TXL_REQUIRE_TORCH();
  const std::string dir = scratch_dir("import_bad");
  run_command(kRef + " save-random --out " + dir + "/state.pt --vocab 256 " + kArch);
  auto expect_failure = [&](const std::string& cmd, const std::string& needle) {
    std::string err;
    const int rc = run_status(cmd, &err);
    INFO(cmd << "\n" << err);
    REQUIRE(rc != 0);
    REQUIRE(err.find(needle) != std::string::npos);
  };
  // Wrong architecture flags: a shape mismatch names the key.
  expect_failure(kImport + " transformer-xl " + dir + "/state.pt " + dir + "/o1 --vocab bytes " +
                     "--n_layer 2 --n_head 2 --d_model 32 --d_head 16 --d_inner 128 --tgt_len 16 --mem_len 16",
                 "pos_ff.CoreNet.0.weight");
  // More layers than saved: a missing key.
  expect_failure(kImport + " transformer-xl " + dir + "/state.pt " + dir + "/o2 --vocab bytes " +
                     "--n_layer 3 --n_head 2 --d_model 32 --d_head 16 --d_inner 64 --tgt_len 16 --mem_len 16",
                 "layers.2");
  // A vocabulary that does not fit bytes.
  run_command(kRef + " save-random --out " + dir + "/small_vocab.pt --vocab 204 " + kArch);
  expect_failure(kImport + " transformer-xl " + dir + "/small_vocab.pt " + dir + "/o3 --vocab bytes " + kArch,
                 "vocabulary does not fit");
  // Not a state dict at all.
  std::ofstream(dir + "/garbage.pt") << "not a torch file";
  expect_failure(kImport + " transformer-xl " + dir + "/garbage.pt " + dir + "/o4 --vocab bytes " + kArch, "garbage.pt");
}

TEST_CASE("txl train --init follows the reference training loop step by step", "[reference][train]") {
  TXL_REQUIRE_TORCH();
  const std::string dir = scratch_dir("train_follow");
  const std::string data = write_corpus_prefix(dir, 8000, "corpus.txt");
  run_command(kRef + " save-random --out " + dir + "/state.pt --vocab 256 --init_std 0.05 --seed 5 " + kArch);
  run_command(kImport + " transformer-xl " + dir + "/state.pt " + dir + "/ckpt --vocab bytes " + kArch);
  std::ofstream(dir + "/finetune.yaml") << "data:\n  path: " << data
                                        << "\n  split: [1.0, 0.0, 0.0]\n  vocab: bytes\n"
                                           "train:\n  batch_size: 4\n  steps: 30\n  log_interval: 1\n  clip: 0.25\n"
                                           "  optimizer: {name: adam, lr: 2.0e-3, betas: [0.9, 0.999], eps: 1.0e-8}\n"
                                           "  schedule: {name: cosine, warmup_steps: 5, min_lr: 1.0e-4}\n"
                                           "run:\n  dir: " << dir << "/run\n";
  run_command(kTxl + " train " + dir + "/finetune.yaml --init " + dir + "/ckpt");
  json ref = last_json_line(run_command(kRef + " train-steps --state " + dir + "/state.pt --data " + data +
                                        " --steps 30 --batch-size 4 --tgt-len 16 --mem-len 16 --lr 2e-3 --warmup 5 "
                                        "--max-step 30 --min-lr 1e-4 --clip 0.25 --dtype float32 " + kArch));
  std::vector<double> ours;
  for (const json& j : metrics_events(dir + "/run", "train")) ours.push_back(j["loss"].get<double>());
  auto theirs = ref["losses"].get<std::vector<double>>();
  REQUIRE(ours.size() == 30);
  REQUIRE(theirs.size() == 30);
  for (size_t i = 0; i < ours.size(); ++i) {
    INFO("step " << i + 1 << ": txl " << ours[i] << " reference " << theirs[i]);
    REQUIRE(std::abs(ours[i] - theirs[i]) <= 1e-4 * theirs[i]);
  }
  REQUIRE(theirs.back() < theirs.front() - 0.5);  // the run actually trains
}
