// Saving and loading checkpoint directories; every failure names the file and what
// was expected.
#include "txl/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <optional>

#include "txl/config/load.h"
#include "txl/io/safetensors.h"
#include "txl/ops/ops.h"

namespace txl {

namespace fs = std::filesystem;

namespace {

// "mem/<chunk>/<layer>" -> (chunk, layer); nullopt for any other name.
std::optional<std::pair<size_t, size_t>> mem_indices(const std::string& name) {
  if (!name.starts_with("mem/")) return std::nullopt;
  const char* end = name.data() + name.size();
  size_t c = 0, l = 0;
  const auto r1 = std::from_chars(name.data() + 4, end, c);
  if (r1.ec != std::errc() || r1.ptr == end || *r1.ptr != '/') return std::nullopt;
  const auto r2 = std::from_chars(r1.ptr + 1, end, l);
  if (r2.ec != std::errc() || r2.ptr != end) return std::nullopt;
  return std::make_pair(c, l);
}

// The metadata key of model.safetensors that holds config.yaml's CRC-32.
constexpr const char* kConfigChecksumKey = "config_crc32";

// Whether config.yaml describes the model model.safetensors holds, checked before that
// model is built: a corrupt or foreign config must not make the loader allocate a huge
// model, or loop over a huge n_layer, only to find that the shapes differ.
void check_config_matches_weights(const ModelConfig& cfg, int64_t vocab_size,
                                  const std::map<std::string, Tensor>& weights, const std::string& config_path,
                                  const std::string& weights_path) {
  std::set<size_t> layers;  // the l of every "layers.<l>." name
  for (const auto& [name, t] : weights) {
    if (!name.starts_with("layers.")) continue;
    size_t l = 0;
    const auto r = std::from_chars(name.data() + 7, name.data() + name.size(), l);
    if (r.ec == std::errc() && r.ptr != name.data() + 7) layers.insert(l);
  }
  TXL_CHECK(static_cast<size_t>(cfg.n_layer) == layers.size(),
            "{}: model.n_layer is {} but {} holds {} layer(s); the config does not belong to these weights",
            config_path, cfg.n_layer, weights_path, layers.size());
  for (const auto& [name, shape] : LanguageModel::parameter_shapes(cfg, vocab_size)) {
    auto it = weights.find(name);
    TXL_CHECK(it != weights.end(), "{}: missing parameter '{}' (expected shape {})", weights_path, name,
              shape_str(shape));
    TXL_CHECK(it->second.shape() == shape, "{}: parameter '{}' has shape {}, the model needs {}", weights_path, name,
              shape_str(it->second.shape()), shape_str(shape));
  }
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  return {{"format", "txl-trainer-state-1"}, {"step", step}, {"epoch", epoch}, {"data_position", data_position},
          {"tokens_seen", tokens_seen}, {"elapsed_s", elapsed_s},
          {"best_val_bpc", std::isfinite(best_val_bpc) ? nlohmann::json(best_val_bpc) : nlohmann::json(nullptr)},
          {"best_step", best_step}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  TrainerState s;
  // Typed reads: get<int64_t>() of a JSON float (1e300) would be an undefined conversion.
  auto integer = [&](const char* key, int64_t min) {
    const auto& v = j.at(key);
    TXL_CHECK(v.is_number_integer() && v.get<int64_t>() >= min, "{}: corrupt trainer state ({} must be an integer >= {}, got {})",
              source, key, min, v.dump());
    return v.get<int64_t>();
  };
  auto number = [&](const char* key) {
    const auto& v = j.at(key);
    TXL_CHECK(v.is_number(), "{}: corrupt trainer state ({} must be a number, got {})", source, key, v.dump());
    return v.get<double>();
  };
  try {
    TXL_CHECK(j.is_object() && j.value("format", "") == "txl-trainer-state-1", "{}: unknown trainer state format",
              source);
    s.step = integer("step", 0);
    s.epoch = integer("epoch", 0);
    s.data_position = integer("data_position", 0);
    s.tokens_seen = integer("tokens_seen", 0);
    s.elapsed_s = number("elapsed_s");
    if (!j.at("best_val_bpc").is_null()) s.best_val_bpc = number("best_val_bpc");
    s.best_step = integer("best_step", -1);
  } catch (const nlohmann::json::exception& e) {
    TXL_FAIL("{}: corrupt trainer state ({})", source, e.what());
  }
  return s;
}

void save_checkpoint(const std::string& dir, const Config& cfg, const Vocab& vocab, const LanguageModel& model,
                     const TrainingSnapshot& training) {
  const fs::path target(dir);
  const fs::path tmp = target.string() + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  TXL_CHECK(!ec, "{}: cannot create checkpoint directory ({})", tmp.string(), ec.message());
  try {

  NamedTensors weights;
  for (const auto& [name, t] : model.params().named()) {
    TXL_CHECK(std::isfinite(sum(to_dtype(t.detach(), DType::f64)).item()),
              "checkpoint: parameter {} holds a non-finite value; refusing to write {}", name, dir);
    weights.emplace_back(name, t.detach());
  }
  // The weights carry config.yaml's checksum: a truncated or edited config would load
  // as defaults for its missing keys and train on with another recipe.
  const std::string config_text = config_to_yaml(cfg);
  save_safetensors(
      (tmp / "model.safetensors").string(), weights,
      {{"format", "txl-transformer-xl-1"}, {kConfigChecksumKey, crc32_hex(config_text.data(), config_text.size())}});
  write_file_atomic((tmp / "config.yaml").string(), config_text);
  write_file_atomic((tmp / "vocab.json").string(), vocab.to_json().dump(1) + "\n");
  if (training.state) {
    save_safetensors((tmp / "optimizer.safetensors").string(), training.optimizer->state());
    NamedTensors mem_tensors;
    if (training.mems)
      for (size_t c = 0; c < training.mems->size(); ++c)
        for (size_t l = 0; l < (*training.mems)[c].size(); ++l)
          mem_tensors.emplace_back("mem/" + std::to_string(c) + "/" + std::to_string(l), (*training.mems)[c][l]);
    save_safetensors((tmp / "mems.safetensors").string(), mem_tensors);
    write_file_atomic((tmp / "trainer_state.json").string(), training.state->to_json().dump(1) + "\n");
  }
  } catch (...) {
    fs::remove_all(tmp, ec);  // a half-written checkpoint never stays behind
    throw;
  }
  // Swap the finished directory into place; the old one is removed only afterwards.
  const fs::path old = target.string() + ".old-" + std::to_string(::getpid());
  if (fs::exists(target)) {
    fs::rename(target, old, ec);
    TXL_CHECK(!ec, "{}: cannot move the previous checkpoint aside ({})", dir, ec.message());
  }
  fs::rename(tmp, target, ec);
  TXL_CHECK(!ec, "{}: cannot move the new checkpoint into place ({})", dir, ec.message());
  fs::remove_all(old, ec);
}

void point_symlink(const std::string& link, const std::string& target) {
  const fs::path l(link);
  const fs::path tmp = l.string() + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp, ec);
  TXL_CHECK(!ec, "{}: cannot create a symlink ({})", tmp.string(), ec.message());
  fs::rename(tmp, l, ec);
  TXL_CHECK(!ec, "{}: cannot update the symlink ({})", link, ec.message());
  const int fd = ::open(l.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep) {
  const fs::path d(checkpoints_dir);
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(d))  // links first: following one that loops throws
    if (!e.is_symlink() && e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0 &&
        e.path().filename().string().find('.') == std::string::npos)
      steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  std::set<std::string> protect;
  for (const char* link : {"last", "best"}) {
    std::error_code ec;
    fs::path t = fs::read_symlink(d / link, ec);
    if (!ec) protect.insert(t.filename().string());
  }
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i)
    if (!protect.count(steps[i])) fs::remove_all(d / steps[i]);
}

bool checkpoint_path_exists(const std::string& path) {
  std::error_code ec;
  const bool there = fs::exists(path, ec);
  TXL_CHECK(!ec, "{}: {}", path,
            ec == std::errc::too_many_symbolic_link_levels
                ? "a symbolic link that loops; point it at a directory (checkpoints/last and best: a step_NNNNNNNN "
                  "checkpoint) or remove it"
                : "cannot be read (" + ec.message() + ")");
  return there;
}

std::string resolve_checkpoint_dir(const std::string& path) {
  const fs::path p(path);
  TXL_CHECK(checkpoint_path_exists(path), "{}: no such checkpoint or run directory", path);
  TXL_CHECK(fs::is_directory(p), "{}: expected a checkpoint or run directory, got a file", path);
  if (fs::exists(p / "model.safetensors")) return p.string();
  for (const char* sub : {"checkpoints/best", "checkpoints/last"})
    if (checkpoint_path_exists((p / sub).string()) && fs::exists(p / sub / "model.safetensors"))
      return (p / sub).string();
  TXL_FAIL("{}: not a checkpoint (no model.safetensors) and not a run directory with checkpoints/best or "
           "checkpoints/last",
           path);
}

void load_weights(LanguageModel& model, const std::map<std::string, Tensor>& weights, const std::string& source) {
  NoGradGuard no_grad;
  for (const auto& [name, param] : model.params().named()) {
    auto it = weights.find(name);
    TXL_CHECK(it != weights.end(), "{}: missing parameter '{}' (expected shape {})", source, name,
              shape_str(param.shape()));
    TXL_CHECK(it->second.shape() == param.shape(), "{}: parameter '{}' has shape {}, the model needs {}", source, name,
              shape_str(it->second.shape()), shape_str(param.shape()));
    TXL_CHECK(is_floating(it->second.dtype()), "{}: parameter '{}' has dtype {}, expected a float", source, name,
              dtype_name(it->second.dtype()));
    TXL_CHECK(std::isfinite(sum(to_dtype(it->second, DType::f64)).item()), "{}: parameter '{}' holds non-finite values",
              source, name);
    Tensor dst = param.detach();
    copy_(dst, it->second);
  }
  for (const auto& [name, t] : weights)
    TXL_CHECK(model.params().contains(name), "{}: unexpected parameter '{}' (not part of this model)", source, name);
}

std::unique_ptr<LanguageModel> rebuild_model(const ModelConfig& cfg, const LanguageModel& from,
                                             const std::string& source) {
  auto model = std::make_unique<LanguageModel>(cfg, from.vocab_size(), from.dtype());
  std::map<std::string, Tensor> weights;
  for (const auto& [name, t] : from.params().named()) weights[name] = t.detach();
  load_weights(*model, weights, source);
  return model;
}

Checkpoint load_checkpoint(const std::string& path, DType dtype) {
  Checkpoint ck;
  ck.dir = resolve_checkpoint_dir(path);
  const fs::path d(ck.dir);
  const std::string config_path = (d / "config.yaml").string(), weights_path = (d / "model.safetensors").string();
  const std::string config_text = read_file(config_path, "checkpoint config");
  std::map<std::string, std::string> meta;
  const auto weights = load_safetensors(weights_path, &meta);
  if (auto it = meta.find(kConfigChecksumKey); it != meta.end()) {  // checkpoints written before it have none
    const std::string actual = crc32_hex(config_text.data(), config_text.size());
    TXL_CHECK(it->second == actual,
              "{}: checksum mismatch with the one {} holds (stored {}, computed {}): the file is truncated, corrupt "
              "or edited; give changes as key=value overrides instead",
              config_path, weights_path, it->second, actual);
  }
  ck.config = config_from_yaml_string(config_text, config_path, {}, /*require_data_source=*/false);
  ck.vocab = Vocab::load((d / "vocab.json").string());
  check_config_matches_weights(ck.config.model, ck.vocab.size(), weights, config_path, weights_path);
  ck.model = std::make_unique<LanguageModel>(ck.config.model, ck.vocab.size(), dtype);
  load_weights(*ck.model, weights, weights_path);
  if (fs::exists(d / "trainer_state.json")) {
    ck.has_training_state = true;
    const std::string sp = (d / "trainer_state.json").string();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(sp, "trainer state"));
    } catch (const nlohmann::json::exception& e) {
      TXL_FAIL("{}: corrupt trainer state ({})", sp, e.what());
    }
    ck.state = TrainerState::from_json(j, sp);
    ck.optimizer_state = load_safetensors((d / "optimizer.safetensors").string());
    auto mems = load_safetensors((d / "mems.safetensors").string());
    for (const auto& [name, t] : mems) {
      const auto idx = mem_indices(name);
      // Indices below the number of tensors (they are dense), so a name cannot ask for a huge vector.
      TXL_CHECK(idx && idx->first < mems.size() && idx->second < mems.size(),
                "{}: unexpected tensor '{}' (expected mem/<chunk>/<layer>)", (d / "mems.safetensors").string(), name);
      const auto [c, l] = *idx;
      if (ck.mems.size() <= c) ck.mems.resize(c + 1);
      if (ck.mems[c].size() <= l) ck.mems[c].resize(l + 1);
      ck.mems[c][l] = to_dtype(t, dtype);
    }
    for (size_t c = 0; c < ck.mems.size(); ++c)
      for (size_t l = 0; l < ck.mems[c].size(); ++l)
        TXL_CHECK(ck.mems[c][l].defined(), "{}: tensor 'mem/{}/{}' is missing", (d / "mems.safetensors").string(), c,
                  l);
  }
  return ck;
}

}  // namespace txl
