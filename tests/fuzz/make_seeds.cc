// Writes the seed corpora of the fuzz harnesses into DIR/{config,checkpoint,corpus}/:
// the shipped configs (some with overrides), the files of a tiny valid training
// checkpoint in every harness mode, and short texts in every corpus mode. The seeds
// are checked in (tests/fuzz/corpus/); rerun when a file format changes:
//   build-fuzz/bin/fuzz_make_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz_checkpoint.h"

namespace fs = std::filesystem;
using txl::fuzz::base_checkpoint_files;
using txl::fuzz::write_bytes;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void seed(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  write_bytes(dir / name, bytes);
}

std::string header(std::initializer_list<int> bytes) {
  std::string h;
  for (int b : bytes) h.push_back(static_cast<char>(b));
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const fs::path out(argv[1]);
  const fs::path src(TXL_SOURCE_DIR);

  // config: every shipped config, one with overrides, a checkpoint's resolved config.
  const fs::path cfg_dir = out / "config";
  for (const auto& e : fs::directory_iterator(src / "configs"))
    if (e.path().extension() == ".yaml") seed(cfg_dir, e.path().filename().string(), slurp(e.path()));
  seed(cfg_dir, "overrides.yaml",
       slurp(src / "configs/shakespeare_txl.yaml") +
           "\n%%\ntrain.optimizer.betas=[0.9, 0.99]\nmodel.mem_len=0\neval.mem_len=-1\ndata.vocab=bytes\n");
  seed(cfg_dir, "attention_override.yaml",
       "data: {path: x.txt}\nmodel: {mem_len: 0}\n%%\nmodel.attention.type=adaptive_span\n"
       "model.attention.span_loss=0.000002\n");
  const auto& files = base_checkpoint_files();
  seed(cfg_dir, "checkpoint_config.yaml", files[0]);

  // checkpoint: each file alone in its mode, and each one as the fuzzed file of a checkpoint.
  const fs::path ck_dir = out / "checkpoint";
  seed(ck_dir, "model.safetensors", header({0}) + files[2]);
  seed(ck_dir, "optimizer.safetensors", header({0}) + files[4]);
  seed(ck_dir, "mems.safetensors", header({0}) + files[5]);
  seed(ck_dir, "vocab_chars.json", header({1}) + files[1]);
  seed(ck_dir, "vocab_bytes.json", header({1}) + txl::Vocab::bytes().to_json().dump() + "\n");
  seed(ck_dir, "trainer_state.json", header({2}) + files[3]);
  for (int i = 0; i < 6; ++i)
    seed(ck_dir, std::string("checkpoint_") + txl::fuzz::kCheckpointFiles[i], header({3, i}) + files[i]);

  // corpus: a slice of tiny-shakespeare and short texts in every mode.
  const fs::path co_dir = out / "corpus";
  const std::string shakespeare = slurp(src / "third_party/tinyshakespeare/tinyshakespeare.txt").substr(0, 1500);
  const std::string fox = "the quick brown fox jumps over the lazy dog\nthe lazy dog sleeps\n";
  std::string foxes;
  for (int i = 0; i < 20; ++i) foxes += fox;
  seed(co_dir, "split_chars.txt", header({0, 180, 20, 0}) + foxes);
  seed(co_dir, "split_bytes.txt", header({4, 160, 20, 20}) + shakespeare);
  seed(co_dir, "separate_files.txt", header({5, 200, 128, 3}) + shakespeare);
  seed(co_dir, "separate_train_only.txt", header({1, 255, 0, 0}) + fox);
  seed(co_dir, "tokens_chars.txt", header({2, 0, 5, 1}) + fox);
  seed(co_dir, "tokens_bytes.txt", header({2, 1, 7, 2}) + shakespeare.substr(0, 200));
  seed(co_dir, "split_fixed_vocab.txt", header({3, 180, 20, 0}) + fox + fox);
  seed(co_dir, "tiny.txt", header({0, 200, 0, 0}) + "ab");
  std::printf("seeds written under %s\n", out.c_str());
  return 0;
}
