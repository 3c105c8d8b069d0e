// The run configuration: one typed struct per YAML section. Key names follow the
// reference implementations' own words. Loading, validation and writing back live in
// config/load.h (src/config/load.cc); every other part of txl reads these structs,
// never YAML.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "txl/attention/options.h"

namespace txl {

struct DataConfig {
  std::string path;                        // one text file, split by `split`
  std::array<double, 3> split{0.9, 0.1, 0.0};  // train / valid / test fractions (sum <= 1)
  std::string train, valid, test;          // separate files instead of path+split
  std::string vocab = "chars";             // "bytes" (256 ids) or "chars" (from train split)

  bool operator==(const DataConfig&) const = default;
};

struct ModelConfig {
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;
  int64_t d_head = 32;
  int64_t d_inner = 512;
  double dropout = 0.0;
  double dropatt = 0.0;
  int64_t tgt_len = 64;
  int64_t mem_len = 64;
  bool pre_lnorm = false;
  bool same_length = false;
  int64_t clamp_len = -1;  // <= 0: no clamping
  double init_std = 0.02;
  AttentionConfig attention;  // model.attention: type + that variant's keys (attention/attention.h)

  bool operator==(const ModelConfig&) const = default;
};

struct OptimizerConfig {
  std::string name = "adam";  // adam | adamw | adagrad
  double lr = 2.5e-4;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  double clip = 0.0;  // adagrad only: per-parameter-tensor step clip (AdagradWithGradClip); 0 = off

  bool operator==(const OptimizerConfig&) const = default;
};

struct ScheduleConfig {
  std::string name = "cosine";  // constant | cosine | inv_sqrt
  int64_t warmup_steps = 0;
  double min_lr = 0.0;

  bool operator==(const ScheduleConfig&) const = default;
};

struct TrainConfig {
  int64_t batch_size = 12;
  int64_t steps = 1000;
  int64_t seed = 1111;
  int64_t log_interval = 50;
  double clip = 0.25;          // global gradient-norm clip; 0 = off
  int64_t batch_chunk = 1;     // gradient accumulation over this many batch chunks
  double max_time = 0.0;       // seconds of training; 0 = no limit (steps still apply)
  int64_t checkpoint_interval = 0;  // steps between checkpoints; 0 = only at eval/end
  int64_t keep_checkpoints = 3;     // newest step checkpoints kept (the best one is kept too)
  std::string on_nonfinite = "stop";  // non-finite loss or gradient norm: skip | rewind | stop
  int64_t max_rewinds = 3;          // rewinds allowed before on_nonfinite=rewind stops
  std::string precision = "fp32";   // matrix products: fp32 | bf16 (fp32 accumulation) | auto
  std::string device = "cpu";       // cpu | cuda (each process takes its host's GPU cuda:local_rank)
  double allreduce_bucket_mb = 4.0; // data parallel: gradients are all-reduced in buckets of this size
  OptimizerConfig optimizer;
  ScheduleConfig schedule;

  bool operator==(const TrainConfig&) const = default;
};

struct EvalConfig {
  int64_t interval = 0;     // steps between validations; 0 = only at the end
  int64_t batch_size = 10;
  int64_t tgt_len = 0;      // 0 = model.tgt_len
  int64_t mem_len = -1;     // -1 = model.mem_len
  int64_t max_tokens = 0;   // score only the first N tokens of the split; 0 = all

  bool operator==(const EvalConfig&) const = default;
};

struct RunConfig {
  std::string name;         // empty: a timestamp
  std::string dir;          // the run directory itself; empty: runs/<name>
  int64_t threads = 0;      // 0: TXL_NUM_THREADS or all cores

  bool operator==(const RunConfig&) const = default;
};

struct Config {
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  EvalConfig eval;
  RunConfig run;

  bool operator==(const Config&) const = default;
};

}  // namespace txl
