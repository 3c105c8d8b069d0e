// `txl train`: builds or restores a run (config, vocabulary, model, optimizer, data
// position, memories), trains with progress lines and metrics.jsonl, validates at
// eval.interval, and keeps checkpoints/last and checkpoints/best in the run directory.
#pragma once
#include <string>
#include <vector>

namespace txl {

struct TrainOptions {
  std::string config_path;             // YAML (absent with --resume)
  std::vector<std::string> overrides;  // key.path=value
  std::string resume_dir;              // --resume RUN_DIR
  std::string init_checkpoint;         // --init CHECKPOINT (fresh optimizer)
  bool overwrite = false;              // --overwrite an existing run directory
  int threads = 0;                     // --threads (0: config, env, or all cores)
};

// Returns the process exit code.
int run_training(const TrainOptions& opt);

}  // namespace txl
