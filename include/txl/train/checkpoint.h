// Checkpoint directories: config.yaml, vocab.json, model.safetensors (reference
// parameter names), and for training checkpoints optimizer.safetensors, mems.safetensors
// and trainer_state.json. A directory is written beside its target and renamed into
// place, so a reader sees the old checkpoint or the new one, never a mix. A run keeps
// checkpoints/step_NNNNNNNN/ directories with the symlinks last and best pointing at them.
#pragma once
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "txl/config/config.h"
#include "txl/data/vocab.h"
#include "txl/models/language_model.h"
#include "txl/train/optimizer.h"

namespace txl {

struct TrainerState {
  int64_t step = 0;           // updates done
  int64_t epoch = 0;
  int64_t data_position = 0;  // batcher row of the next batch
  int64_t tokens_seen = 0;
  double elapsed_s = 0.0;     // training wall time so far
  double best_val_bpc = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);
};

struct TrainingSnapshot {
  const Optimizer* optimizer = nullptr;
  const TrainerState* state = nullptr;
  const std::vector<std::vector<Tensor>>* mems = nullptr;  // one memory set per batch chunk
};

void save_checkpoint(const std::string& dir, const Config& cfg, const Vocab& vocab, const LanguageModel& model,
                     const TrainingSnapshot& training = {});

struct Checkpoint {
  std::string dir;
  Config config;
  Vocab vocab;
  std::unique_ptr<LanguageModel> model;
  bool has_training_state = false;
  TrainerState state;
  std::map<std::string, Tensor> optimizer_state;
  std::vector<std::vector<Tensor>> mems;
};

// Points the symlink `link` at `target` (a name in the same directory) atomically: a new
// link is made beside it and renamed over the old one.
void point_symlink(const std::string& link, const std::string& target);
// Removes step_* checkpoints beyond the newest `keep`; never what last or best point to.
void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep);

// Whether `path` exists, following links; a link that loops (last -> last) or a path
// that cannot be examined is refused with one line naming it, not a filesystem_error.
bool checkpoint_path_exists(const std::string& path);
// `path` is a checkpoint directory, or a run directory (its best checkpoint, else its last).
std::string resolve_checkpoint_dir(const std::string& path);
Checkpoint load_checkpoint(const std::string& path, DType dtype = DType::f32);
// Copies named weights into the model, checking names, shapes and finiteness.
void load_weights(LanguageModel& model, const std::map<std::string, Tensor>& weights, const std::string& source);

// `from`'s weights in a model built from `cfg` (the same architecture; lengths, dropout
// and runtime attention options may differ: --init, --resume, eval overrides).
std::unique_ptr<LanguageModel> rebuild_model(const ModelConfig& cfg, const LanguageModel& from,
                                             const std::string& source);

}  // namespace txl
