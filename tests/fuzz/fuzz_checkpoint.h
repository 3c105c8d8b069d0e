// Harness body: the checkpoint reader.
//
// Input: a mode byte, then the payload.
//   mode % 4 == 0  payload is a safetensors file            -> load_safetensors
//   mode % 4 == 1  payload is vocab.json                    -> Vocab::load
//   mode % 4 == 2  payload is trainer_state.json            -> TrainerState::from_json
//   mode % 4 == 3  next byte picks one file of a valid tiny training checkpoint
//                  (config.yaml, vocab.json, model.safetensors, trainer_state.json,
//                  optimizer.safetensors, mems.safetensors); the payload replaces it
//                  -> load_checkpoint, then the optimizer's load_state (what resume does)
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_common.h"
#include "txl/config/load.h"
#include "txl/io/safetensors.h"
#include "txl/train/checkpoint.h"
#include "txl/train/optimizer.h"

namespace txl::fuzz {

inline constexpr const char* kCheckpointFiles[6] = {"config.yaml",        "vocab.json",
                                                    "model.safetensors",  "trainer_state.json",
                                                    "optimizer.safetensors", "mems.safetensors"};

// The files of a tiny valid training checkpoint (1 layer, d_model 8), made once with
// save_checkpoint, in kCheckpointFiles order.
inline const std::vector<std::string>& base_checkpoint_files() {
  static const std::vector<std::string> files = [] {
    const Config cfg = config_from_yaml_string(
        "model: {n_layer: 1, n_head: 2, d_model: 8, d_head: 4, d_inner: 16, tgt_len: 4, mem_len: 4}\n"
        "train: {batch_size: 2, steps: 1}\n",
        "tiny checkpoint", {}, /*require_data_source=*/false);
    const Vocab vocab = Vocab::chars("hello, fuzz\n");
    LanguageModel model(cfg.model, vocab.size());
    model.init_weights(1);
    auto opt = make_optimizer(cfg.train.optimizer, model.params());
    TrainerState st;
    st.step = 3;
    st.tokens_seen = 24;
    std::vector<std::vector<Tensor>> mems(1);
    for (int64_t l = 0; l <= cfg.model.n_layer; ++l)
      mems[0].push_back(Tensor::zeros({cfg.model.mem_len, cfg.train.batch_size, cfg.model.d_model}));
    const auto dir = scratch_dir() / "base_checkpoint";
    save_checkpoint(dir.string(), cfg, vocab, model, TrainingSnapshot{opt.get(), &st, &mems});
    std::vector<std::string> out;
    for (const char* name : kCheckpointFiles) {
      std::ifstream f(dir / name, std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      out.push_back(ss.str());
    }
    return out;
  }();
  return files;
}

inline void fuzz_checkpoint(const uint8_t* data, size_t size) {
  if (size < 1) return;
  const int mode = data[0] % 4;
  const auto dir = scratch_dir();
  if (mode == 0) {
    write_bytes(dir / "fuzz.safetensors", data + 1, size - 1);
    std::map<std::string, std::string> meta;
    load_safetensors((dir / "fuzz.safetensors").string(), &meta);
  } else if (mode == 1) {
    write_bytes(dir / "vocab.json", data + 1, size - 1);
    Vocab::load((dir / "vocab.json").string());
  } else if (mode == 2) {
    auto j = nlohmann::json::parse(data + 1, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return;
    TrainerState::from_json(j, "trainer_state.json");
  } else {
    if (size < 2) return;
    const auto& base = base_checkpoint_files();
    const size_t which = data[1] % 6;
    const auto ck = dir / "checkpoint";
    std::filesystem::create_directories(ck);
    for (size_t i = 0; i < 6; ++i) {
      if (i == which)
        write_bytes(ck / kCheckpointFiles[i], data + 2, size - 2);
      else
        write_bytes(ck / kCheckpointFiles[i], base[i]);
    }
    Checkpoint loaded = load_checkpoint(ck.string());
    auto opt = make_optimizer(loaded.config.train.optimizer, loaded.model->params());
    if (loaded.has_training_state) opt->load_state(loaded.optimizer_state, "optimizer.safetensors");
  }
}

}  // namespace txl::fuzz
