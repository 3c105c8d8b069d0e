// The training loop of `txl train`, following kimiyoung's train.py: contiguous stream
// batches, memories carried per batch chunk, mean token loss, backward, global-norm
// clip, optimizer step with the scheduled learning rate.
#include "txl/train/trainer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/config/load.h"
#include "txl/core/device_memory.h"
#include "txl/core/threads.h"
#include "txl/data/batcher.h"
#include "txl/data/corpus.h"
#include "txl/dist/communicator.h"
#include "txl/dist/gradient_buckets.h"
#include "txl/io/safetensors.h"
#include "txl/ops/ops.h"
#include "txl/train/checkpoint.h"
#include "txl/train/evaluate.h"

namespace txl {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

int64_t max_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

bool is_architecture_key(const ModelConfig& ckpt, const std::string& key) {
  return LanguageModel::is_architecture_key(ckpt, key);
}

// The model.* keys a YAML file and the overrides set explicitly.
std::set<std::string> explicit_model_keys(const std::string& path, const std::vector<std::string>& overrides) {
  std::set<std::string> keys;
  YAML::Node root = YAML::LoadFile(path);
  if (root["model"] && root["model"].IsMap())
    for (const auto& kv : root["model"]) {
      const std::string k = kv.first.as<std::string>();
      if (k == "attention" && kv.second.IsMap())
        for (const auto& a : kv.second) keys.insert("attention." + a.first.as<std::string>());
      else
        keys.insert(k);
    }
  for (const std::string& o : overrides)
    if (o.rfind("model.", 0) == 0) keys.insert(o.substr(6, o.find('=') - 6));
  return keys;
}

// --init: the checkpoint's architecture with the run's non-architecture settings.
ModelConfig merge_init_model(const ModelConfig& ckpt, const ModelConfig& run, const std::set<std::string>& set_keys,
                             const std::string& ckpt_dir) {
  ModelConfig out = ckpt;
  const std::vector<std::pair<std::string, std::pair<double, double>>> arch = {
      {"n_layer", {double(ckpt.n_layer), double(run.n_layer)}}, {"n_head", {double(ckpt.n_head), double(run.n_head)}},
      {"d_model", {double(ckpt.d_model), double(run.d_model)}}, {"d_head", {double(ckpt.d_head), double(run.d_head)}},
      {"d_inner", {double(ckpt.d_inner), double(run.d_inner)}},
      {"pre_lnorm", {double(ckpt.pre_lnorm), double(run.pre_lnorm)}}};
  for (const auto& [key, values] : arch)
    TXL_CHECK(!set_keys.count(key) || values.first == values.second,
              "model.{}: the config says {} but the --init checkpoint {} was trained with {}; leave it out or match it",
              key, values.second, ckpt_dir, values.first);
  TXL_CHECK(!set_keys.count("attention.type") || run.attention.type == ckpt.attention.type,
            "model.attention.type: the config says {} but the --init checkpoint {} is {}; leave it out or match it",
            run.attention.type, ckpt_dir, ckpt.attention.type);
  for (const std::string& key : set_keys) {
    if (!key.starts_with("attention.") || key == "attention.type") continue;
    const std::string name = key.substr(10);
    auto theirs = ckpt.attention.options.find(name);
    auto ours = run.attention.options.find(name);
    if (ours == run.attention.options.end() || theirs == ckpt.attention.options.end()) continue;
    if (!is_architecture_key(ckpt, key))
      out.attention.options[name] = ours->second;
    else
      TXL_CHECK(ours->second == theirs->second,
                "model.{}: the config says {} but the --init checkpoint {} was trained with {}; leave it out or match it",
                key, option_value_text(ours->second), ckpt_dir, option_value_text(theirs->second));
  }
  if (set_keys.count("dropout")) out.dropout = run.dropout;
  if (set_keys.count("dropatt")) out.dropatt = run.dropatt;
  if (set_keys.count("tgt_len")) out.tgt_len = run.tgt_len;
  if (set_keys.count("mem_len")) out.mem_len = run.mem_len;
  if (set_keys.count("same_length")) out.same_length = run.same_length;
  if (set_keys.count("clamp_len")) out.clamp_len = run.clamp_len;
  return out;
}

std::string default_run_dir(const Config& cfg) {
  std::string name = cfg.run.name;
  if (name.empty()) {
    std::time_t now = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
    name = buf;
  }
  return (fs::path("runs") / name).string();
}

// Only the root rank of a data-parallel job writes metrics (enabled = false elsewhere).
class MetricsLog {
 public:
  MetricsLog(const std::string& path, bool enabled) : path_(path), enabled_(enabled) {
    if (!enabled_) return;
    out_.open(path, std::ios::app);
    TXL_CHECK(out_.good(), "{}: cannot open for writing", path);
  }
  void write(const nlohmann::json& j) {
    if (!enabled_) return;
    out_ << j.dump() << "\n";
    out_.flush();
    TXL_CHECK(out_.good(), "{}: write failed (disk full?)", path_);
  }

 private:
  std::string path_;
  bool enabled_;
  std::ofstream out_;
};

// Non-root ranks of a data-parallel job stay silent on stdout (errors still go to stderr).
class QuietUnlessRoot {
 public:
  explicit QuietUnlessRoot(bool root) : saved_(root ? nullptr : std::cout.rdbuf(nullptr)) {}
  ~QuietUnlessRoot() {
    if (saved_) std::cout.rdbuf(saved_);
  }

 private:
  std::streambuf* saved_;
};

// The segment state of the chunks this rank trains, gathered into the full per-chunk
// list on the root (checkpoints hold every chunk's state, so any process count or
// batch_chunk that gives the same number of chunks resumes them).
std::vector<std::vector<Tensor>> gather_state(Communicator& comm, const std::vector<std::vector<Tensor>>& mems,
                                              int64_t first, int64_t count) {
  if (comm.size() == 1) return mems;
  NamedTensors mine;
  for (int64_t c = first; c < first + count; ++c)
    for (size_t l = 0; l < mems[c].size(); ++l) mine.emplace_back(fmt::format("{}/{}", c, l), mems[c][l]);
  std::vector<std::string> parts = comm.gather(encode_safetensors(mine), 0);
  std::vector<std::vector<Tensor>> all(mems.size());
  for (size_t r = 0; r < parts.size(); ++r)
    for (const auto& [name, t] : decode_safetensors(parts[r], fmt::format("rank {} state", r))) {
      const size_t slash = name.find('/');
      const size_t c = std::stoul(name.substr(0, slash)), l = std::stoul(name.substr(slash + 1));
      if (all[c].size() <= l) all[c].resize(l + 1);
      all[c][l] = t;
    }
  return all;
}

// SIGINT / SIGTERM: the first asks the loop to finish its step, checkpoint and exit;
// a second SIGINT exits at once (every file is written atomically, so nothing tears).
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.load() != 0 && sig == SIGINT) _exit(130);
  g_stop_signal.store(sig);
}

struct SignalHandlers {
  struct sigaction old_int {}, old_term {};
  SignalHandlers() {
    g_stop_signal.store(0);
    // A file-size limit (ulimit -f) must fail the write with EFBIG, reported with the
    // file's name, rather than kill the process.
    std::signal(SIGXFSZ, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~SignalHandlers() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

// Test hook: TXL_FAULT_NAN_STEPS=5,9 makes the gradient norm of those steps NaN, once
// each per process, so the on_nonfinite policies can be exercised end to end.
struct FaultInjection {
  std::set<int64_t> pending;
  FaultInjection() {
    if (const char* env = std::getenv("TXL_FAULT_NAN_STEPS")) {
      std::stringstream ss(env);
      for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) pending.insert(std::stoll(item));
    }
  }
  bool nan_at(int64_t step) { return pending.erase(step) > 0; }
};

// Refuses, before allocating anything, a model whose weights, gradients and optimizer
// state alone exceed this machine's memory: the allocation would exhaust it or take
// minutes to fail. The count is the Transformer-XL layer's (the variants add little to
// it): projections, feed-forward, embedding and softmax.
void check_model_fits(const ModelConfig& m, int64_t vocab, const std::string& optimizer, Device device) {
  const double hd = static_cast<double>(m.n_head) * static_cast<double>(m.d_head), d = static_cast<double>(m.d_model);
  const double per_layer = 4.0 * d * hd + 2.0 * d * static_cast<double>(m.d_inner);
  const double params = static_cast<double>(m.n_layer) * per_layer + 2.0 * d * static_cast<double>(vocab);
  // Host bytes a parameter: weights, gradients and the optimizer's state (Adam two
  // moments, Adagrad one); a GPU run holds at most the weights and gradients here.
  const double per_param = !device.is_cpu() ? 8.0 : optimizer == "adagrad" ? 12.0 : 16.0;
  const double bytes = per_param * params;
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  TXL_CHECK(memory <= 0 || bytes <= memory,
            "model: about {:.3g} parameters ({:.1f} GiB of host memory with gradients and optimizer state) do not "
            "fit in this machine's {:.1f} GiB; lower model.n_layer ({}), model.d_model ({}), model.n_head x "
            "model.d_head ({} x {}) or model.d_inner ({})",
            params, bytes / (1 << 30), memory / (1 << 30), m.n_layer, m.d_model, m.n_head, m.d_head, m.d_inner);
}

// An exclusive lock on a run directory (flock on RUN/.lock) for the life of the object.
class RunLock {
 public:
  explicit RunLock(const std::string& run_dir) {
    const std::string path = (fs::path(run_dir) / ".lock").string();
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // another user's lock file
    // A file system without locks (some NFS, FUSE or Lustre mounts) still trains, unguarded.
    if (fd_ < 0) {
      spdlog::warn("{}: cannot open the run's lock file ({}); training without it", path, std::strerror(errno));
      return;
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    TXL_CHECK(err != EWOULDBLOCK,
              "{}: another txl process is training in this run directory; wait for it or stop it first", run_dir);
    spdlog::warn("{}: cannot lock the run directory ({}); training without the lock", run_dir, std::strerror(err));
  }
  ~RunLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// --overwrite deletes the directory: only a txl run's, and never one that holds the
// working directory.
void check_replaceable_run(const std::string& run_dir) {
  std::error_code ec;
  fs::path dir = fs::weakly_canonical(run_dir, ec);
  if (ec) dir = fs::absolute(run_dir).lexically_normal();
  const fs::path cwd = fs::current_path();
  const auto [end, _] = std::mismatch(dir.begin(), dir.end(), cwd.begin(), cwd.end());
  TXL_CHECK(end != dir.end(), "{}: --overwrite would delete the working directory or one that holds it", run_dir);
  // A run: checkpoints/ and its config, or a run stopped before it wrote its config
  // (nothing but checkpoints/, metrics and hidden files: the lock, temporary files).
  bool run = fs::is_directory(fs::path(run_dir) / "checkpoints");
  if (run && !fs::is_regular_file(fs::path(run_dir) / "config.yaml"))
    for (const auto& e : fs::directory_iterator(run_dir)) {
      const std::string n = e.path().filename().string();
      run = run && (n == "checkpoints" || n == "metrics.jsonl" || n.starts_with("."));
    }
  TXL_CHECK(run,
            "{}: not a txl run (no config.yaml and checkpoints/), so --overwrite will not delete it; choose another "
            "run.dir",
            run_dir);
}

uint64_t dropout_seed(int64_t run_seed, int64_t step, int64_t chunk) {
  return counter_hash(static_cast<uint64_t>(run_seed), 7, static_cast<uint64_t>(step) * 1024 + chunk);
}

}  // namespace

int run_training(const TrainOptions& opt) {
  Communicator& comm = world();
  const bool root = comm.is_root();
  QuietUnlessRoot quiet(root);
  Config cfg;
  Vocab vocab;
  std::unique_ptr<LanguageModel> model;
  TrainerState st;
  std::map<std::string, Tensor> optimizer_state;
  std::vector<std::vector<Tensor>> mems;
  std::string run_dir;
  bool replace_run_dir = false;  // --overwrite of an existing run directory

  if (!opt.resume_dir.empty()) {
    run_dir = opt.resume_dir;
    const fs::path last = fs::path(run_dir) / "checkpoints" / "last";
    TXL_CHECK(checkpoint_path_exists(run_dir) && fs::is_directory(run_dir), "--resume {}: no such run directory",
              run_dir);
    TXL_CHECK(checkpoint_path_exists(last.string()) && fs::is_directory(last),
              "--resume {}: no checkpoints/last in this directory (not a txl run, or it never saved)", run_dir);
    TXL_CHECK(fs::exists(last / "trainer_state.json"),
              "--resume {}: checkpoints/last has no trainer_state.json (deleted, or a weights-only checkpoint): it "
              "cannot be resumed, only evaluated",
              run_dir);
    Checkpoint ck = load_checkpoint(last.string());
    cfg = ck.config;
    for (const std::string& o : opt.overrides) {
      std::string key = o.substr(0, o.find('='));
      TXL_CHECK(!(key.rfind("model.", 0) == 0 && is_architecture_key(cfg.model, key.substr(6))),
                "{}: cannot change the architecture of a run being resumed", key);
    }
    apply_overrides(cfg, opt.overrides, "--resume " + run_dir);
    // Keys a resume cannot honour: it trains in the directory it resumes, with the
    // checkpoint's vocabulary and weights. Compared after the overrides, so a key given
    // inside a section (data={vocab: bytes}) is caught too; config.yaml would record it.
    auto unchanged = [&](const char* key, bool same, const std::string& because) {
      TXL_CHECK(same, "--resume {}: {} cannot change on a resume, which {}", run_dir, key, because);
    };
    std::error_code ec;
    unchanged("run.dir", cfg.run.dir == ck.config.run.dir || fs::equivalent(cfg.run.dir, run_dir, ec),
              "continues in the run directory given to --resume; copy that directory and resume the copy instead");
    unchanged("run.name", cfg.run.name == ck.config.run.name, "continues in the run directory given to --resume");
    unchanged("data.vocab", cfg.data.vocab == ck.config.data.vocab,
              "keeps the checkpoint's vocabulary (" + ck.vocab.kind() + ")");
    unchanged("model.init_std", cfg.model.init_std == ck.config.model.init_std,
              "continues from the checkpoint's weights (model.init_std only draws a new run's)");
    // A variant's initial values (adaptive span's model.attention.init) only set up a new
    // run's parameters: the resume continues from the checkpoint's.
    const auto initial = [](const Config& c) {
      const auto it = c.model.attention.options.find("init");
      return it == c.model.attention.options.end() ? std::string() : option_value_text(it->second);
    };
    unchanged("model.attention.init", initial(cfg) == initial(ck.config),
              "continues from the checkpoint's spans (model.attention.init only sets a new run's)");
    vocab = ck.vocab;
    model = rebuild_model(cfg.model, *ck.model, ck.dir);
    st = ck.state;
    // Equal: a finished run (its final evaluation and checkpoint are redone); below: a
    // request to train backwards.
    TXL_CHECK(cfg.train.steps >= st.step,
              "--resume {}: train.steps {} is below the checkpoint's step {}; nothing to train (raise train.steps)",
              run_dir, cfg.train.steps, st.step);
    optimizer_state = std::move(ck.optimizer_state);
    mems = std::move(ck.mems);
  } else {
    cfg = load_config(opt.config_path, opt.overrides);
    if (!opt.init_checkpoint.empty()) {
      Checkpoint ck = load_checkpoint(opt.init_checkpoint);
      cfg.model = merge_init_model(ck.config.model, cfg.model, explicit_model_keys(opt.config_path, opt.overrides),
                                   ck.dir);
      TXL_CHECK(cfg.data.vocab == ck.vocab.kind(), "data.vocab: the config says {} but the --init checkpoint uses {}",
                cfg.data.vocab, ck.vocab.kind());
      vocab = ck.vocab;
      model = rebuild_model(cfg.model, *ck.model, ck.dir);
    }
    run_dir = cfg.run.dir.empty() ? default_run_dir(cfg) : cfg.run.dir;
    if (fs::exists(run_dir)) {
      TXL_CHECK(fs::is_directory(run_dir), "{}: exists and is not a directory; choose another run.dir", run_dir);
      if (!fs::is_empty(run_dir)) {
        TXL_CHECK(opt.overwrite,
                  "{}: run directory exists; use --resume {} to continue it or --overwrite to replace it", run_dir,
                  run_dir);
        check_replaceable_run(run_dir);
        replace_run_dir = true;  // only once the data and model have loaded
      }
    }
  }
  // Ranks share the host's cores unless told otherwise.
  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(cfg.run.threads);
  if (threads == 0 && comm.local_size() > 1 && !std::getenv("TXL_NUM_THREADS"))
    threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()) / comm.local_size(), 1, thread_limit());
  configure_threads(threads);
  const Device device = training_device(cfg.train.device, comm.local_rank());
  const MatmulPrecision precision = resolve_precision(cfg.train.precision, device);
  PrecisionScope precision_scope(precision);

  Corpus corpus = vocab.size() > 0 ? load_corpus(cfg.data, vocab) : load_corpus(cfg.data);
  if (vocab.size() == 0) vocab = corpus.vocab;
  if (!model) {
    check_model_fits(cfg.model, vocab.size(), cfg.train.optimizer.name, device);
    model = std::make_unique<LanguageModel>(cfg.model, vocab.size());
    model->init_weights(static_cast<uint64_t>(cfg.train.seed));
  }
  TXL_CHECK(model->vocab_size() == vocab.size(), "model vocabulary {} does not match the data vocabulary {}",
            model->vocab_size(), vocab.size());
  // Weights are initialised or loaded on the host, then move to this process's device;
  // memories saved in a checkpoint follow them.
  model->to(device);
  auto to_device = [&](std::vector<std::vector<Tensor>>& state) {
    for (auto& chunk : state)
      for (Tensor& t : chunk) t = t.to(device);
  };
  to_device(mems);
  // Every split the run reads is long enough, checked before the first step (not at the
  // first evaluation, hours in).
  auto split_of = [&](const char* name, const std::string& file) {
    return fmt::format("the {} split of {}", name, file.empty() ? cfg.data.path : file);
  };
  TXL_CHECK(static_cast<int64_t>(corpus.train.size()) / cfg.train.batch_size > cfg.model.tgt_len,
            "data: {} has {} tokens, too few for train.batch_size {} streams of model.tgt_len {} (needs at least {})",
            split_of("training", cfg.data.train), corpus.train.size(), cfg.train.batch_size, cfg.model.tgt_len,
            cfg.train.batch_size * (cfg.model.tgt_len + 1));
  const int64_t eval_tgt = cfg.eval.tgt_len > 0 ? cfg.eval.tgt_len : cfg.model.tgt_len;
  // No validation tokens: the run is not evaluated, and its summary says so instead of
  // "best valid bpc inf"; evaluations asked for by eval.interval are refused here.
  const std::string no_valid =
      !corpus.valid.empty() ? ""
      : cfg.data.path.empty()
          ? "no data.valid file is given"
          : fmt::format("{} is empty (data.split [{}, {}, {}])", split_of("validation", cfg.data.valid),
                        cfg.data.split[0], cfg.data.split[1], cfg.data.split[2]);
  TXL_CHECK(no_valid.empty() || cfg.eval.interval == 0,
            "eval.interval {}: {}, so there is nothing to evaluate; {} or set eval.interval: 0", cfg.eval.interval,
            no_valid, cfg.data.path.empty() ? "give data.valid" : "give data.split a validation fraction");
  if (!corpus.valid.empty())
    check_eval_tokens(*model, static_cast<int64_t>(corpus.valid.size()), cfg.eval.batch_size, eval_tgt,
                      "data: " + split_of("validation", cfg.data.valid), "eval.batch_size",
                      cfg.eval.tgt_len > 0 ? "eval.tgt_len" : "model.tgt_len");
  // Every rank has looked at the run directory before the root creates or replaces it
  // (a rank that looked later would find the root's new directory and refuse it).
  comm.barrier();
  // One process trains in a run directory at a time: a second one (a resume of a run
  // still going, or an --overwrite of it) stops here. The lock lives as long as the process.
  std::unique_ptr<RunLock> lock, old_lock;
  if (root && (replace_run_dir || !opt.resume_dir.empty())) lock = std::make_unique<RunLock>(run_dir);
  if (replace_run_dir && root) {
    old_lock = std::move(lock);  // held until the new directory's is
    fs::remove_all(run_dir);
  }

  if (root) {
    std::error_code ec;
    fs::create_directories(fs::path(run_dir) / "checkpoints", ec);
    TXL_CHECK(!ec, "{}: cannot create the run directory ({})", run_dir, ec.message());
    if (!lock) lock = std::make_unique<RunLock>(run_dir);
    old_lock.reset();
  }
  comm.barrier();
  MetricsLog metrics((fs::path(run_dir) / "metrics.jsonl").string(), root);

  ParameterSet& params = model->params();
  auto optimizer = make_optimizer(cfg.train.optimizer, params);
  if (!optimizer_state.empty()) optimizer->load_state(optimizer_state, run_dir + "/checkpoints/last/optimizer.safetensors");
  // Written once everything the run reads has loaded: a resume that fails leaves the
  // run's config as it was (a new run stopped before this is still a run to
  // check_replaceable_run).
  if (root) write_file_atomic((fs::path(run_dir) / "config.yaml").string(), config_to_yaml(cfg));

  // Data parallel: the batch's streams are cut into world x batch_chunk chunks and rank
  // r trains chunks [r * batch_chunk, (r + 1) * batch_chunk); with one process and
  // batch_chunk = world x k this is the same computation (dropout keyed by chunk).
  const int64_t B = cfg.train.batch_size, local_chunks = cfg.train.batch_chunk;
  const int64_t chunks = local_chunks * comm.size(), first_chunk = local_chunks * comm.rank();
  TXL_CHECK(B % chunks == 0, "train.batch_size ({}) must be divisible by processes ({}) x train.batch_chunk ({})", B,
            comm.size(), local_chunks);
  const int64_t bc = B / chunks;
  StreamBatcher batches(corpus.train, B, cfg.model.tgt_len);
  batches.set_position(st.data_position);
  mems.resize(static_cast<size_t>(chunks));

  // Gradients are summed over ranks in buckets, each started as soon as the last
  // backward of the step has finished its parameters.
  std::unique_ptr<GradientBuckets> buckets;
  if (comm.size() > 1)
    buckets = std::make_unique<GradientBuckets>(params, gradient_communicator(device),
                                                cfg.train.allreduce_bucket_mb * 1e6);
  const int64_t n_params = params.numel();
  std::cout << fmt::format("txl train: {} parameters, vocab {} ({}), {} train tokens, run dir {}\n", n_params,
                           vocab.size(), vocab.kind(), corpus.train.size(), run_dir);
  std::cout << fmt::format("device: {}; precision: {} matrix products (train.precision: {}), fp32 weights and "
                           "optimizer\n",
                           device.str(), precision_name(precision), cfg.train.precision);
  if (comm.size() > 1)
    std::cout << fmt::format("data parallel: {} processes ({}), {} streams each, gradients all-reduced by {} in {} "
                             "buckets overlapped with backward\n",
                             comm.size(), comm.name(), B / comm.size(), gradient_communicator(device).name(),
                             buckets->bucket_count());
  std::cout << std::flush;

  // Step checkpoints are immutable directories; last and best are symlinks moved
  // atomically once the directory they name is complete on disk.
  const fs::path ck_dir = fs::path(run_dir) / "checkpoints";
  // Leftovers of a run killed while writing (temporary directories and links).
  for (const auto& e : fs::directory_iterator(ck_dir)) {
    if (!root) break;
    const std::string n = e.path().filename().string();
    if (n.find(".tmp-") != std::string::npos || n.find(".old-") != std::string::npos) fs::remove_all(e.path());
  }
  int64_t saved_step = -1;
  auto save_step = [&](bool best) {
    const std::string name = fmt::format("step_{:08d}", st.step);
    if (saved_step != st.step) {
      auto all = gather_state(comm, mems, first_chunk, local_chunks);  // collective
      if (root) {
        save_checkpoint((ck_dir / name).string(), cfg, vocab, *model, TrainingSnapshot{optimizer.get(), &st, &all});
        point_symlink((ck_dir / "last").string(), name);
      }
      saved_step = st.step;
    }
    if (!root) return;
    if (best) point_symlink((ck_dir / "best").string(), name);
    prune_checkpoints(ck_dir.string(), cfg.train.keep_checkpoints);
  };
  auto run_eval = [&]() -> bool {
    if (corpus.valid.empty()) return false;
    const int64_t M = cfg.eval.mem_len >= 0 ? cfg.eval.mem_len : cfg.model.mem_len;
    model->set_lengths(M, cfg.model.same_length, cfg.model.clamp_len);
    EvalResult r = evaluate(*model, corpus.valid, cfg.eval.batch_size, eval_tgt, cfg.eval.max_tokens,
                            split_of("validation", cfg.data.valid));
    model->set_lengths(cfg.model.mem_len, cfg.model.same_length, cfg.model.clamp_len);
    const bool best = r.bpc() < st.best_val_bpc;
    if (best) {
      st.best_val_bpc = r.bpc();
      st.best_step = st.step;
    }
    metrics.write({{"event", "eval"}, {"step", st.step}, {"split", "valid"}, {"loss", r.nll}, {"bpc", r.bpc()},
                   {"ppl", r.ppl()}, {"tokens", r.tokens}, {"elapsed_s", st.elapsed_s}, {"eval_seconds", r.seconds}});
    std::cout << fmt::format("eval  step {} | valid loss {:.4f} | bpc {:.4f} | ppl {:.3f} | {} tokens in {:.1f}s{}\n",
                             st.step, r.nll, r.bpc(), r.ppl(), r.tokens, r.seconds, best ? " | best" : "")
              << std::flush;
    save_step(best);
    return true;
  };
  SignalHandlers signals;
  FaultInjection fault_injection;
  int64_t rewinds = 0, skipped = 0;

  double interval_loss = 0.0, interval_aux = 0.0;
  int64_t interval_steps = 0, interval_tokens = 0;
  double interval_time = 0.0;
  bool evaluated_at_end = false;
  const double max_time = cfg.train.max_time;
  while (st.step < cfg.train.steps && (max_time <= 0 || st.elapsed_s < max_time)) {
    Tensor input, target;
    if (!batches.next(input, target)) {  // end of the data: a new epoch with empty memories
      batches.reset();
      for (auto& m : mems) m.clear();
      st.epoch++;
      continue;
    }
    input = input.to(device);
    target = target.to(device);
    const auto t0 = Clock::now();
    params.zero_grad();
    const int64_t T = input.shape()[0];
    double step_loss = 0.0, step_aux = 0.0;
    // Weights hold still from here to the optimizer step: bf16 products convert each once,
    // or read the copy the last update wrote (only it and after_step changed them since).
    std::optional<Bf16WeightScope> weight_scope(std::in_place, params.flat_data(), /*after_update=*/true);
    for (int64_t c = first_chunk; c < first_chunk + local_chunks; ++c) {
      Tensor in_c = chunks > 1 ? narrow(input, 1, c * bc, bc) : input;
      Tensor tg_c = chunks > 1 ? narrow(target, 1, c * bc, bc) : target;
      ForwardOptions fo{true, dropout_seed(cfg.train.seed, st.step, c)};
      ForwardResult out = model->forward(in_c, tg_c, mems[c], fo);
      Tensor loss = mean(out.loss);
      step_loss += loss.item() / static_cast<double>(chunks);
      // The variant's auxiliary loss (span loss) joins the objective, not the reported nll.
      Tensor objective = out.aux_loss.defined() ? add(loss, out.aux_loss) : loss;
      if (out.aux_loss.defined()) step_aux += out.aux_loss.item() / static_cast<double>(chunks);
      const bool last_chunk = c == first_chunk + local_chunks - 1;
      if (buckets && last_chunk) buckets->begin_step();
      backward(chunks > 1 ? mul_scalar(objective, 1.0 / static_cast<double>(chunks)) : objective, Tensor(), false,
               buckets && last_chunk ? buckets->hook() : LeafReadyFn{});
      mems[c] = std::move(out.mems);
    }
    weight_scope.reset();
    if (comm.size() > 1) {
      buckets->finish();
      std::vector<double> v{step_loss, step_aux};
      comm.all_reduce_sum(v);
      step_loss = v[0];
      step_aux = v[1];
    }
    const GradientNorms norms = gradient_norms(params, cfg.train.clip);  // the optimizer applies the clip
    double gnorm = norms.total;
    if (fault_injection.nan_at(st.step + 1)) gnorm = std::nan("");
    if (!std::isfinite(step_loss) || !std::isfinite(gnorm)) {
      const std::string what = fmt::format("step {}: non-finite loss ({}) or gradient norm ({})", st.step + 1,
                                           step_loss, gnorm);
      metrics.write({{"event", "nonfinite"}, {"step", st.step + 1}, {"action", cfg.train.on_nonfinite}});
      const bool can_rewind = cfg.train.on_nonfinite == "rewind" && rewinds < cfg.train.max_rewinds &&
                              fs::exists(ck_dir / "last");
      if (cfg.train.on_nonfinite == "skip") {
        // The batch is consumed, the update is not applied; memories come from the
        // failed forward, so start the streams afresh.
        skipped++;
        st.data_position = batches.position();
        for (auto& m : mems) m.clear();
        std::cout << what << "; skipped (" << skipped << " so far)\n" << std::flush;
        continue;
      }
      if (can_rewind) {
        // Back to the last good checkpoint's weights, optimizer and memories; the data
        // keeps moving forward so the offending batch is not replayed.
        Checkpoint ck = load_checkpoint((ck_dir / "last").string());
        load_weights(*model, [&] {
          std::map<std::string, Tensor> w;
          for (const auto& [n, t] : ck.model->params().named()) w[n] = t.detach();
          return w;
        }(), ck.dir);
        optimizer->load_state(ck.optimizer_state, ck.dir + "/optimizer.safetensors");
        mems = std::move(ck.mems);
        mems.resize(static_cast<size_t>(chunks));
        to_device(mems);
        const int64_t position = batches.position();
        st = ck.state;
        st.data_position = position;
        rewinds++;
        std::cout << what << "; rewound to step " << st.step << " (" << rewinds << " of " << cfg.train.max_rewinds
                  << " rewinds)\n" << std::flush;
        continue;
      }
      TXL_FAIL("{}; stopping (train.on_nonfinite: {}). Nothing non-finite was saved; the last good checkpoint is "
               "{}/checkpoints/last. Lower train.optimizer.lr, set train.clip, or set train.on_nonfinite: skip",
               what, cfg.train.on_nonfinite == "rewind" ? "rewind, out of rewinds" : cfg.train.on_nonfinite, run_dir);
    }
    const double lr = scheduled_lr(cfg.train.schedule, cfg.train.optimizer.lr, st.step + 1, cfg.train.steps);
    optimizer->step(params, lr, &norms);
    model->after_step();
    st.step++;
    st.tokens_seen += T * B;
    st.data_position = batches.position();
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    int stop_signal = g_stop_signal.load();
    if (comm.size() > 1) {
      // Every rank takes the same decisions: the mean step time drives max_time, and a
      // signal received by any rank stops all of them at this step.
      std::vector<double> v{dt / comm.size(), stop_signal == SIGINT ? 1.0 : 0.0, stop_signal == SIGTERM ? 1.0 : 0.0};
      comm.all_reduce_sum(v);
      dt = v[0];
      stop_signal = v[1] > 0 ? SIGINT : v[2] > 0 ? SIGTERM : 0;
    }
    st.elapsed_s += dt;
    interval_loss += step_loss * T;
    interval_aux += step_aux;
    interval_tokens += T * B;
    interval_time += dt;
    interval_steps++;
    evaluated_at_end = false;

    if (st.step % cfg.train.log_interval == 0) {
      const double loss = interval_loss / (static_cast<double>(interval_tokens) / B);
      const double tps = interval_tokens / std::max(interval_time, 1e-9);
      const double per_step = st.elapsed_s / std::max<int64_t>(1, st.step);
      double eta = (cfg.train.steps - st.step) * per_step;
      if (max_time > 0) eta = std::min(eta, max_time - st.elapsed_s);
      nlohmann::json event = {{"event", "train"}, {"step", st.step}, {"loss", loss}, {"bpc", loss / std::log(2.0)},
                              {"lr", lr}, {"tokens_per_s", tps}, {"grad_norm", gnorm}, {"elapsed_s", st.elapsed_s},
                              {"epoch", st.epoch}};
      // The variant's auxiliary loss (span loss, compressive reconstruction), per step.
      if (model->attention_spec().caps.aux_loss) event["aux_loss"] = interval_aux / interval_steps;
      metrics.write(event);
      std::cout << fmt::format("step {}/{} | loss {:.4f} | bpc {:.4f} | lr {:.3e} | {:.0f} tok/s | elapsed {} | eta {}\n",
                               st.step, cfg.train.steps, loss, loss / std::log(2.0), lr, tps, hms(st.elapsed_s), hms(eta))
                << std::flush;
      interval_loss = interval_aux = 0.0;
      interval_tokens = interval_steps = 0;
      interval_time = 0.0;
    }
    if (cfg.eval.interval > 0 && st.step % cfg.eval.interval == 0) {
      evaluated_at_end = run_eval();
      save_step(false);
    } else if (cfg.train.checkpoint_interval > 0 && st.step % cfg.train.checkpoint_interval == 0) {
      save_step(false);
    }
    if (const int sig = stop_signal; sig != 0) {
      save_step(false);
      std::cout << fmt::format("\n{} at step {}: checkpoint saved in {}\nresume with: txl train --resume {}\n",
                               sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", st.step,
                               (ck_dir / fmt::format("step_{:08d}", st.step)).string(), run_dir)
                << std::flush;
      return sig == SIGINT ? 130 : 143;
    }
  }
  if (!evaluated_at_end) run_eval();
  save_step(false);
  {
    // One summary line for side-by-side tables (scripts/compare_families.sh).
    nlohmann::json summary = {{"event", "summary"},
                              {"step", st.step},
                              {"attention", cfg.model.attention.type},
                              {"parameters", params.numel()},
                              {"tokens_per_s", st.elapsed_s > 0 ? st.tokens_seen / st.elapsed_s : 0.0},
                              {"elapsed_s", st.elapsed_s},
                              // The training device's tensors at their peak.
                              {"peak_bytes", memory_stats(device).peak_bytes_in_use},
                              {"max_rss_bytes", max_rss_bytes()},
                              {"attention_flops_per_token", model->attention().attention_flops_per_token(params)},
                              {"best_val_bpc", st.best_val_bpc}};
    for (const auto& [what, per_layer] : model->attention().report(params)) {
      double total = 0;
      int64_t n = 0;
      for (const auto& layer : per_layer)
        for (double v : layer) total += v, ++n;
      summary["mean_" + what] = n ? total / static_cast<double>(n) : 0.0;
      summary[what] = per_layer;
    }
    metrics.write(summary);
  }
  std::cout << fmt::format("done: {} steps, {} training time; {}; run dir {}\n", st.step, hms(st.elapsed_s),
                           no_valid.empty()
                               ? fmt::format("best valid bpc {:.4f} at step {}", st.best_val_bpc, st.best_step)
                               : "not evaluated: " + no_valid,
                           run_dir);
  return 0;
}

}  // namespace txl
