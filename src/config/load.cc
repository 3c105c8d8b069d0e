// The config loader. One table lists every key (its path, the Config member it
// fills, its allowed range or values); reading YAML, applying overrides, range
// checks, did-you-mean suggestions and writing YAML back are all driven by it.
// A Loader collects every problem and throws them together as one ConfigError.
// Relative data paths in a YAML file are resolved against the file's directory
// when the file exists there; otherwise they stay relative to the current
// directory. Overrides and config_from_yaml_string take paths as written.
#include "txl/config/load.h"

#include "txl/attention/attention.h"
#include "txl/core/suggest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <variant>

namespace txl {

ConfigError::ConfigError(const std::string& source, std::vector<std::string> problems)
    : Error([&] {
        // One problem, one line; several are listed a line each under the heading.
        std::string msg = "config error in " + source + ":";
        if (problems.size() == 1) return msg + " " + problems.front();
        for (const auto& p : problems) msg += "\n  " + p;
        return msg;
      }()),
      problems_(std::move(problems)) {}

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- the key table

enum class Range { any, positive, non_negative, at_least_minus_one, probability, fraction };

using Pair = std::array<double, 2>;
using Triple = std::array<double, 3>;
using FieldRef = std::variant<int64_t*, double*, bool*, std::string*, Pair*, Triple*>;

struct Field {
  std::string path;
  FieldRef (*ref)(Config&);
  Range range = Range::any;
  std::vector<std::string> choices;  // allowed values of a string key; empty: any
};

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

Field key(std::string path, FieldRef (*ref)(Config&), Range range = Range::any,
          std::vector<std::string> choices = {}) {
  return Field{std::move(path), ref, range, std::move(choices)};
}

#define TXL_KEY(PATH, MEMBER, ...) \
  key(PATH, [](Config& c) -> FieldRef { return &c.MEMBER; } __VA_OPT__(, ) __VA_ARGS__)

const std::vector<Field>& fields() {
  using R = Range;
  static const std::vector<Field> table = {
      TXL_KEY("data.path", data.path),
      TXL_KEY("data.split", data.split, R::fraction),
      TXL_KEY("data.train", data.train),
      TXL_KEY("data.valid", data.valid),
      TXL_KEY("data.test", data.test),
      TXL_KEY("data.vocab", data.vocab, R::any, {"bytes", "chars"}),
      TXL_KEY("model.n_layer", model.n_layer, R::positive),
      TXL_KEY("model.n_head", model.n_head, R::positive),
      TXL_KEY("model.d_model", model.d_model, R::positive),
      TXL_KEY("model.d_head", model.d_head, R::positive),
      TXL_KEY("model.d_inner", model.d_inner, R::non_negative),
      TXL_KEY("model.dropout", model.dropout, R::probability),
      TXL_KEY("model.dropatt", model.dropatt, R::probability),
      TXL_KEY("model.tgt_len", model.tgt_len, R::positive),
      TXL_KEY("model.mem_len", model.mem_len, R::non_negative),
      TXL_KEY("model.pre_lnorm", model.pre_lnorm),
      TXL_KEY("model.same_length", model.same_length),
      TXL_KEY("model.clamp_len", model.clamp_len),
      TXL_KEY("model.init_std", model.init_std, R::positive),
      TXL_KEY("model.attention.type", model.attention.type),  // its other keys: the variant's schema
      TXL_KEY("train.batch_size", train.batch_size, R::positive),
      TXL_KEY("train.steps", train.steps, R::positive),
      TXL_KEY("train.seed", train.seed, R::non_negative),
      TXL_KEY("train.log_interval", train.log_interval, R::positive),
      TXL_KEY("train.clip", train.clip, R::non_negative),
      TXL_KEY("train.batch_chunk", train.batch_chunk, R::positive),
      TXL_KEY("train.max_time", train.max_time, R::non_negative),
      TXL_KEY("train.checkpoint_interval", train.checkpoint_interval, R::non_negative),
      TXL_KEY("train.keep_checkpoints", train.keep_checkpoints, R::positive),
      TXL_KEY("train.on_nonfinite", train.on_nonfinite, R::any, {"skip", "rewind", "stop"}),
      TXL_KEY("train.max_rewinds", train.max_rewinds, R::non_negative),
      TXL_KEY("train.precision", train.precision, R::any, {"fp32", "bf16", "auto"}),
      TXL_KEY("train.device", train.device, R::any, {"cpu", "cuda"}),
      TXL_KEY("train.allreduce_bucket_mb", train.allreduce_bucket_mb, R::positive),
      TXL_KEY("train.optimizer.name", train.optimizer.name, R::any, {"adam", "adamw", "adagrad"}),
      TXL_KEY("train.optimizer.lr", train.optimizer.lr, R::positive),
      TXL_KEY("train.optimizer.betas", train.optimizer.betas, R::probability),
      TXL_KEY("train.optimizer.eps", train.optimizer.eps, R::positive),
      TXL_KEY("train.optimizer.weight_decay", train.optimizer.weight_decay, R::non_negative),
      TXL_KEY("train.optimizer.clip", train.optimizer.clip, R::non_negative),
      TXL_KEY("train.schedule.name", train.schedule.name, R::any, {"constant", "cosine", "inv_sqrt"}),
      TXL_KEY("train.schedule.warmup_steps", train.schedule.warmup_steps, R::non_negative),
      TXL_KEY("train.schedule.min_lr", train.schedule.min_lr, R::non_negative),
      TXL_KEY("eval.interval", eval.interval, R::non_negative),
      TXL_KEY("eval.batch_size", eval.batch_size, R::positive),
      TXL_KEY("eval.tgt_len", eval.tgt_len, R::non_negative),
      TXL_KEY("eval.mem_len", eval.mem_len, R::at_least_minus_one),
      TXL_KEY("eval.max_tokens", eval.max_tokens, R::non_negative),
      TXL_KEY("run.name", run.name),
      TXL_KEY("run.dir", run.dir),
      TXL_KEY("run.threads", run.threads, R::non_negative),
  };
  return table;
}

#undef TXL_KEY

const Field* find_field(const std::string& path) {
  for (const auto& f : fields())
    if (f.path == path) return &f;
  return nullptr;
}

bool is_section(const std::string& path) {
  if (path.empty()) return true;
  for (const auto& f : fields())
    if (f.path.starts_with(path + ".")) return true;
  return false;
}

std::string join_path(const std::string& section, const std::string& key) {
  return section.empty() ? key : section + "." + key;
}

std::string last_component(const std::string& path) {
  auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

// The direct keys of a section, in table order.
std::vector<std::string> child_keys(const std::string& section) {
  std::vector<std::string> keys;
  std::string prefix = section.empty() ? "" : section + ".";
  for (const auto& f : fields()) {
    if (!f.path.starts_with(prefix)) continue;
    std::string key = f.path.substr(prefix.size());
    key = key.substr(0, key.find('.'));
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  return keys;
}

// Every known path: leaves and sections.
std::vector<std::string> all_paths() {
  std::vector<std::string> paths;
  for (const auto& f : fields()) {
    std::string p;
    for (size_t dot = f.path.find('.'); dot != std::string::npos; dot = f.path.find('.', dot + 1)) {
      p = f.path.substr(0, dot);
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
    }
    paths.push_back(f.path);
  }
  return paths;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

// ---------------------------------------------------------------- did you mean

// Known paths within a small edit distance of `path` (the closest ones only).
std::vector<std::string> close_paths(const std::string& path) {
  size_t limit = last_component(path).size() <= 4 ? 1 : 2;
  size_t best = limit + 1;
  std::vector<std::string> found;
  for (const auto& p : all_paths()) {
    size_t d = edit_distance(path, p);
    if (d < best) best = d, found.clear();
    if (d == best) found.push_back(p);
  }
  return found;
}

// Known paths whose last component is the unknown path's (a key in the wrong section).
std::vector<std::string> same_name_paths(const std::string& path) {
  std::vector<std::string> found;
  for (const auto& p : all_paths())
    if (edit_distance(last_component(p), last_component(path)) == 0) found.push_back(p);
  return found;
}

std::string unknown_key_message(const std::string& path) {
  std::string parent;  // the deepest known prefix of `path`
  for (size_t dot = path.find('.'); dot != std::string::npos; dot = path.find('.', dot + 1)) {
    std::string prefix = path.substr(0, dot);
    if (find_field(prefix)) return "unknown key; " + prefix + " takes a value and has no keys";
    if (!is_section(prefix)) break;
    parent = prefix;
  }
  auto near = close_paths(path);
  if (near.empty()) near = same_name_paths(path);
  if (!near.empty()) return "unknown key; did you mean " + join(near, " or ") + "?";
  return fmt::format("unknown key; valid keys {} are {}", parent.empty() ? "at the top level" : "of " + parent,
                     join(child_keys(parent), ", "));
}

const std::string kAttentionSection = "model.attention";
constexpr int64_t kMaxModelSize = 1'000'000'000;  // largest n_layer, d_model, ..., tgt_len, mem_len

// ---------------------------------------------------------------- values

std::string format_double(double v) {
  // Always with a '.', so that YAML 1.1 readers (PyYAML) also see a float: 1.0e-08.
  std::string s = fmt::format("{}", v);
  if (!std::isfinite(v) || s.find('.') != std::string::npos) return s;
  auto e = s.find('e');
  return e == std::string::npos ? s + ".0" : s.insert(e, ".0");
}

template <size_t N>
std::string format_list(const std::array<double, N>& a) {
  std::string out = "[";
  for (size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += format_double(a[i]);
  }
  out += "]";
  return out;
}

std::string quote_text(const std::string& s) { return "\"" + s + "\""; }

// Appends n in flow style to out, stopping once out passes `budget` characters: a value
// built from nested aliases can stand for billions of elements.
void flow_text(const YAML::Node& n, std::string& out, size_t budget) {
  if (out.size() > budget) return;
  if (!n.IsDefined() || n.IsNull()) {
    out += "null";
  } else if (n.IsScalar()) {
    out += n.Tag() == "!" ? quote_text(n.Scalar()) : n.Scalar();
  } else {
    const bool seq = n.IsSequence();
    out += seq ? "[" : "{";
    bool first = true;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (out.size() > budget) break;
      if (!first) out += ", ";
      first = false;
      if (seq) {
        flow_text(*it, out, budget);
      } else {
        flow_text(it->first, out, budget);
        out += ": ";
        flow_text(it->second, out, budget);
      }
    }
    out += seq ? "]" : "}";
  }
}

// A YAML node as the user wrote it, for "got ..." in messages (long values cut short).
std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing (null)";
  constexpr size_t kMaxShown = 120;
  std::string text;
  flow_text(n, text, kMaxShown);
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + " ...";
  if (n.IsScalar()) return text;
  return (n.IsSequence() ? "a list " : "a mapping ") + text;
}

bool is_plain_scalar(const YAML::Node& n) { return n.IsScalar() && n.Tag() != "!"; }

template <class T>
std::optional<T> parse_number(const YAML::Node& n) {
  if (!is_plain_scalar(n)) return std::nullopt;
  std::string s = n.Scalar();
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.erase(0, 1);
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if constexpr (std::is_floating_point_v<T>)
    if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(const YAML::Node& n) {
  if (!is_plain_scalar(n)) return std::nullopt;
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// Offset of the first byte of `s` that is not valid UTF-8, as YAML text must be and as
// config_to_yaml can write back (yaml-cpp's emitter turns malformed sequences, overlong
// forms, surrogates, code points past U+10FFFF and U+xFFFE / U+xFFFF into U+FFFD).
std::optional<size_t> invalid_utf8_at(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMinOfLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinOfLength[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp & 0xFFFE) == 0xFFFE) return i;
    i += n;
  }
  return std::nullopt;
}

std::optional<std::string> parse_string(const YAML::Node& n) {
  if (n.IsNull()) return std::string();
  if (n.IsScalar() && !invalid_utf8_at(n.Scalar())) return n.Scalar();
  return std::nullopt;
}

template <size_t N>
std::optional<std::array<double, N>> parse_list(const YAML::Node& n) {
  if (!n.IsSequence() || n.size() != N) return std::nullopt;
  std::array<double, N> a{};
  for (size_t i = 0; i < N; ++i) {
    auto v = parse_number<double>(n[i]);
    if (!v) return std::nullopt;
    a[i] = *v;
  }
  return a;
}

bool in_range(Range r, double v) {
  switch (r) {
    case Range::any: return true;
    case Range::positive: return v > 0;
    case Range::non_negative: return v >= 0;
    case Range::at_least_minus_one: return v >= -1;
    case Range::probability: return v >= 0 && v < 1;
    case Range::fraction: return v >= 0 && v <= 1;
  }
  return true;
}

std::string integer_text(Range r) {
  switch (r) {
    case Range::positive: return "a positive integer";
    case Range::non_negative: return "a non-negative integer";
    case Range::at_least_minus_one: return "an integer >= -1";
    default: return "an integer";
  }
}

// The bounds of a number, as a suffix: " in [0, 1)".
std::string number_bounds(Range r) {
  switch (r) {
    case Range::positive: return " > 0";
    case Range::non_negative: return " >= 0";
    case Range::at_least_minus_one: return " >= -1";
    case Range::probability: return " in [0, 1)";
    case Range::fraction: return " in [0, 1]";
    default: return "";
  }
}

std::string number_text(Range r) {
  switch (r) {
    case Range::positive: return "a positive number";
    case Range::non_negative: return "a non-negative number";
    default: return "a number" + number_bounds(r);
  }
}

// What a key accepts, for "expected ..." in messages.
std::string expected_text(const Field& f) {
  static Config scratch;
  return std::visit(overloaded{
                        [&](int64_t*) { return integer_text(f.range); },
                        [&](double*) { return number_text(f.range); },
                        [&](bool*) { return std::string("true or false"); },
                        [&](std::string*) {
                          return f.choices.empty() ? std::string("a string") : "one of " + join(f.choices, ", ");
                        },
                        [&](auto* a) {
                          return fmt::format("a list of {} numbers{}", a->size(), number_bounds(f.range));
                        },
                    },
                    f.ref(scratch));
}

// The value of a key if it breaks the key's range or choices, formatted for "got ...".
std::optional<std::string> out_of_range(const Field& f, Config& cfg) {
  return std::visit(overloaded{
                        [&](int64_t* v) -> std::optional<std::string> {
                          if (in_range(f.range, static_cast<double>(*v))) return std::nullopt;
                          return std::to_string(*v);
                        },
                        [&](double* v) -> std::optional<std::string> {
                          if (std::isfinite(*v) && in_range(f.range, *v)) return std::nullopt;
                          return format_double(*v);
                        },
                        [&](bool*) -> std::optional<std::string> { return std::nullopt; },
                        [&](std::string* v) -> std::optional<std::string> {
                          if (f.choices.empty() || std::count(f.choices.begin(), f.choices.end(), *v))
                            return std::nullopt;
                          return quote_text(*v);
                        },
                        [&](auto* a) -> std::optional<std::string> {
                          for (double v : *a)
                            if (!std::isfinite(v) || !in_range(f.range, v)) return format_list(*a);
                          return std::nullopt;
                        },
                    },
                    f.ref(cfg));
}

// Stores a YAML value into a key's member; false (member untouched) on a wrong type.
bool store(const YAML::Node& n, FieldRef ref) {
  auto put = [](auto* dst, const auto& parsed) {
    if (parsed) *dst = *parsed;
    return parsed.has_value();
  };
  return std::visit(overloaded{
                        [&](int64_t* v) { return put(v, parse_number<int64_t>(n)); },
                        [&](double* v) { return put(v, parse_number<double>(n)); },
                        [&](bool* v) { return put(v, parse_bool(n)); },
                        [&](std::string* v) { return put(v, parse_string(n)); },
                        [&](Pair* v) { return put(v, parse_list<2>(n)); },
                        [&](Triple* v) { return put(v, parse_list<3>(n)); },
                    },
                    ref);
}

void emit_value(YAML::Emitter& out, FieldRef ref) {
  std::visit(overloaded{
                 [&](int64_t* v) { out << *v; },
                 [&](double* v) { out << format_double(*v); },
                 [&](bool* v) { out << *v; },
                 [&](std::string* v) { out << YAML::DoubleQuoted << *v; },
                 [&](auto* a) {
                   out << YAML::Flow << YAML::BeginSeq;
                   for (double v : *a) out << format_double(v);
                   out << YAML::EndSeq;
                 },
             },
             ref);
}

void emit_section(YAML::Emitter& out, Config& cfg, const std::string& section) {
  out << YAML::BeginMap;
  for (const auto& key : child_keys(section)) {
    std::string path = join_path(section, key);
    out << YAML::Key << key << YAML::Value;
    if (const Field* f = find_field(path))
      emit_value(out, f->ref(cfg));
    else
      emit_section(out, cfg, path);
  }
  if (section == kAttentionSection)
    for (const auto& [key, value] : cfg.model.attention.options) {
      out << YAML::Key << key << YAML::Value;
      std::visit(overloaded{
                     [&](bool v) { out << v; },
                     [&](int64_t v) { out << v; },
                     [&](double v) { out << format_double(v); },
                     [&](const std::string& v) { out << YAML::DoubleQuoted << v; },
                 },
                 value);
    }
  out << YAML::EndMap;
}

// ---------------------------------------------------------------- the loader

// "key.path=value" -> {"key.path", "value"}; nullopt without '=' or key.
std::optional<std::pair<std::string, std::string>> split_override(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos) return std::nullopt;
  std::string key = text.substr(0, eq);
  key.erase(0, key.find_first_not_of(" \t"));
  key.erase(key.find_last_not_of(" \t") + 1);
  if (key.empty()) return std::nullopt;
  return std::make_pair(key, text.substr(eq + 1));
}

class Loader {
 public:
  explicit Loader(Config cfg, bool require_data_source = true)
      : cfg_(std::move(cfg)), require_data_source_(require_data_source) {}

  // Parses YAML text and applies it; false on a syntax error (already reported).
  bool apply_yaml_text(const std::string& text, const std::string& source) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      std::string where = e.mark.is_null() ? source : fmt::format("{}:{}:{}", source, e.mark.line + 1, e.mark.column + 1);
      problems_.push_back(where + ": invalid YAML: " + e.msg);
      return false;
    }
    guarded([&] { apply_node("", root); });
    return true;
  }

  void apply_override(const std::string& text) {
    auto kv = split_override(text);
    if (!kv) return problems_.push_back("<override> " + text + ": expected key.path=value");
    override_ = text;
    guarded([&] {
      YAML::Node value;
      try {
        value = YAML::Load(kv->second);
      } catch (const YAML::ParserException& e) {
        return report(kv->first, "cannot parse the value as YAML: " + e.msg);
      }
      apply_node(kv->first, value);
    });
    override_.clear();
  }

  void resolve_data_paths(const fs::path& base_dir) {
    if (base_dir.empty()) return;
    for (std::string* p : {&cfg_.data.path, &cfg_.data.train, &cfg_.data.valid, &cfg_.data.test}) {
      if (p->empty() || fs::path(*p).is_absolute()) continue;
      std::error_code ec;
      fs::path there = base_dir / *p;
      if (fs::exists(there, ec)) *p = there.lexically_normal().string();
    }
  }

  void validate() {
    bool model_ok = true;  // every model.* key has a value of the right type and range
    for (const auto& f : fields()) {
      if (bad_.count(f.path)) {
        model_ok = model_ok && !f.path.starts_with("model.");
        continue;
      }
      if (auto got = out_of_range(f, cfg_)) {
        report(f.path, "expected " + expected_text(f) + ", got " + *got);
        model_ok = model_ok && !f.path.starts_with("model.");
      }
    }
    // Model sizes share the attention options' bound, so that the variants' own checks
    // and shape arithmetic (n_head * d_head, ...) stay far from int64 overflow.
    for (const char* key : {"model.n_layer", "model.n_head", "model.d_model", "model.d_head", "model.d_inner",
                            "model.tgt_len", "model.mem_len"}) {
      const int64_t v = *std::get<int64_t*>(find_field(key)->ref(cfg_));
      if (bad_.count(key) || v <= kMaxModelSize) continue;
      report(key, fmt::format("expected at most {}, got {}", kMaxModelSize, v));
      model_ok = false;
    }
    // clamp_len: -1 (or 0) is no clamping; lower values were accepted once and acted as
    // -1. Checked, like run.name below, where a user gives the value (a config, or an
    // override of a resume or evaluation), not in a checkpoint's stored config.
    if (user_set("model.clamp_len") && !bad_.count("model.clamp_len") && cfg_.model.clamp_len < -1)
      report("model.clamp_len",
             fmt::format("expected an integer >= -1 (-1: no clamping), got {}", cfg_.model.clamp_len));
    // runs/NAME must stay below runs/, since --overwrite deletes it. Checked where a user
    // gives a config, not in a checkpoint's stored one: runs saved before the rule load.
    const std::string& name = cfg_.run.name;
    if (require_data_source_ && !bad_.count("run.name") && !name.empty()) {
      bool below_runs = name.front() != '/';
      for (const auto& part : fs::path(name)) below_runs = below_runs && part != "." && part != "..";
      if (!below_runs)
        report("run.name", fmt::format("expected a name below runs/ (no '.', '..' or leading '/'), got \"{}\"; "
                                       "give a path as run.dir",
                                       name));
    }
    validate_data();
    validate_train();
    validate_attention(model_ok);
  }

  Config finish(const std::string& source) {
    if (!problems_.empty()) throw ConfigError(source, std::move(problems_));
    return cfg_;
  }

 private:
  // Whether a user gave the key: a config (every key it sets) or, over a checkpoint's
  // stored config, an override. Rules added after runs were saved apply to these only.
  bool user_set(const std::string& key) const {
    return require_data_source_ ? given_.count(key) > 0 : origin_.count(key) > 0;
  }

  // Runs `fn`, turning any yaml-cpp failure into a reported problem.
  template <class Fn>
  void guarded(Fn&& fn) {
    try {
      fn();
    } catch (const YAML::Exception& e) {
      problems_.push_back("YAML error: " + e.msg);
    }
  }

  void apply_node(const std::string& path, const YAML::Node& node) {
    if (path.starts_with(kAttentionSection + ".") && path != kAttentionSection + ".type") {
      // A variant's own key: checked against its schema once the type is known (validate).
      attention_raw_[path.substr(kAttentionSection.size() + 1)] = {YAML::Clone(node), override_};
      return;
    }
    if (const Field* f = find_field(path)) {
      const std::string type_before = cfg_.model.attention.type;
      set_field(*f, node);
      if (cfg_.model.attention.type != type_before) cfg_.model.attention.options.clear();
      return;
    }
    if (!is_section(path)) return report(path, unknown_key_message(path));
    if (node.IsNull()) return;  // an empty section keeps its defaults
    if (!node.IsMap())
      return report(path, fmt::format("expected a mapping with keys {}, got {}", join(child_keys(path), ", "),
                                      describe(node)));
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        report(path, "expected a key name, got " + describe(kv.first));
        continue;
      }
      std::string child = join_path(path, kv.first.Scalar());
      if (!seen.insert(child).second) {
        report(child, "duplicate key");
        continue;
      }
      apply_node(child, kv.second);
    }
  }

  void set_field(const Field& f, const YAML::Node& node) {
    if (std::holds_alternative<std::string*>(f.ref(cfg_)) && node.IsScalar())
      if (auto at = invalid_utf8_at(node.Scalar())) {
        bad_.insert(f.path);
        return report(f.path, fmt::format("expected UTF-8 text, got byte 0x{:02x} at offset {}",
                                          static_cast<unsigned char>(node.Scalar()[*at]), *at));
      }
    if (!store(node, f.ref(cfg_))) {
      bad_.insert(f.path);
      return report(f.path, "expected " + expected_text(f) + ", got " + describe(node));
    }
    bad_.erase(f.path);
    given_.insert(f.path);
    if (override_.empty())
      origin_.erase(f.path);
    else
      origin_[f.path] = override_;
  }

  void validate_data() {
    const DataConfig& d = cfg_.data;
    bool has_path = !d.path.empty(), has_train = !d.train.empty();
    if (has_path && has_train)
      report("data", "give either data.path (one file, split by data.split) or data.train, not both");
    if (!has_path && !has_train && require_data_source_)
      report("data", "one of data.path or data.train is required");
    if (!has_train && !d.valid.empty()) report("data.valid", "only allowed together with data.train");
    if (!has_train && !d.test.empty()) report("data.test", "only allowed together with data.train");
    if (bad_.count("data.split") || out_of_range(*find_field("data.split"), cfg_)) return;
    double sum = d.split[0] + d.split[1] + d.split[2];
    if (sum > 1 + 1e-9)
      report("data.split", fmt::format("fractions must sum to <= 1, got {} (sum {})", format_list(d.split), sum));
    if (d.split[0] <= 0)
      report("data.split", fmt::format("the train fraction must be > 0, got {}", format_list(d.split)));
  }

  void validate_train() {
    const TrainConfig& t = cfg_.train;
    if (t.batch_size > 0 && t.batch_chunk > 0 && t.batch_size % t.batch_chunk != 0)
      report("train.batch_chunk",
             fmt::format("must divide train.batch_size ({}), got {}", t.batch_size, t.batch_chunk));
    if (t.optimizer.clip > 0 && t.optimizer.name != "adagrad")
      report("train.optimizer.clip", fmt::format("the per-tensor step clip is Adagrad's (AdagradWithGradClip); with {} "
                                                 "use train.clip (global gradient norm), got {}",
                                                 t.optimizer.name, format_double(t.optimizer.clip)));
    if (t.optimizer.lr > 0 && t.schedule.min_lr > t.optimizer.lr)
      report("train.schedule.min_lr", fmt::format("must be <= train.optimizer.lr ({}), got {}",
                                                  format_double(t.optimizer.lr), format_double(t.schedule.min_lr)));
  }

  std::optional<OptionValue> parse_option(const OptionSpec& spec, const YAML::Node& n) {
    return std::visit(overloaded{
                          [&](bool) -> std::optional<OptionValue> { return parse_bool(n); },
                          [&](int64_t) -> std::optional<OptionValue> { return parse_number<int64_t>(n); },
                          [&](double) -> std::optional<OptionValue> { return parse_number<double>(n); },
                          [&](const std::string&) -> std::optional<OptionValue> {
                            if (!n.IsScalar() || invalid_utf8_at(n.Scalar())) return std::nullopt;
                            return n.Scalar();
                          },
                      },
                      spec.default_value);
  }

  // model.attention: the type must be registered, its keys in the variant's schema with
  // values of the right type and range, the variant's own cross-key rules, and what the
  // rest of the config asks of it among its capabilities.
  // `model_ok`: false when a model.* key is already reported; the variant's own checks
  // then wait for a config whose sizes are in range.
  void validate_attention(bool model_ok) {
    auto raw = std::move(attention_raw_);
    attention_raw_.clear();
    AttentionConfig& a = cfg_.model.attention;
    const AttentionSpec* spec = find_attention(a.type);
    std::vector<std::string> registered;
    for (const AttentionSpec* s : registered_attentions()) registered.push_back(s->name);
    if (!spec) {
      if (!bad_.count(kAttentionSection + ".type"))
        report(kAttentionSection + ".type", fmt::format("unknown attention type {}{}; registered variants: {}",
                                                        quote_text(a.type), did_you_mean(a.type, registered),
                                                        join(registered, ", ")));
      return;
    }
    std::vector<std::string> keys{"type"};
    for (const auto& o : spec->options) keys.push_back(o.name);
    auto unknown = [&](const std::string& key) {
      return fmt::format("unknown key for attention type {}{}; its keys are {}", a.type, did_you_mean(key, keys),
                         join(keys, ", "));
    };
    for (const auto& [key, value] : a.options)
      if (!spec->option(key)) report(kAttentionSection + "." + key, unknown(key));
    for (auto& [key, entry] : raw) {
      const std::string path = kAttentionSection + "." + key;
      override_ = entry.second;
      const OptionSpec* o = spec->option(key);
      if (!o) {
        report(path, unknown(key));
      } else if (auto v = parse_option(*o, entry.first)) {
        a.options[key] = *v;
        if (override_.empty()) origin_.erase(path); else origin_[path] = override_;
      } else {
        report(path, "expected " + option_expected_text(*o) + ", got " + describe(entry.first));
        bad_.insert(path);
      }
      override_.clear();
    }
    resolve_attention_defaults(cfg_.model);
    for (const auto& o : spec->options) {
      const std::string path = kAttentionSection + "." + o.name;
      if (bad_.count(path)) continue;
      std::string problem = option_problem(o, a.options.at(o.name));
      if (!problem.empty()) {
        report(path, problem);
        model_ok = false;
      }
    }
    if (spec->check && model_ok)
      for (const auto& p : spec->check(cfg_.model)) report(p.key, p.message);
    // Variants scored in whole blocks attend over caches their own keys size (adaptive
    // span's span): the Transformer-XL memory length does not apply. A positive one that
    // a user gives is refused rather than ignored, and the resolved config says 0.
    if (spec->eval_whole_blocks) {
      for (const auto& [key, value] :
           {std::pair{"model.mem_len", cfg_.model.mem_len}, {"eval.mem_len", cfg_.eval.mem_len}})
        if (user_set(key) && !bad_.count(key) && value > 0)
          report(key, fmt::format("does not apply to attention type {}, which attends over caches its own keys size "
                                  "(see txl attention show {}); remove it or set 0 (a run's config.yaml written before "
                                  "this check holds the old default, 64)",
                                  a.type, a.type));
      cfg_.model.mem_len = 0;
    }
    if (cfg_.model.mem_len > 0 && !spec->caps.segment_memory)
      report("model.mem_len", fmt::format("attention type {} has no segment memory (capability segment_memory); "
                                          "set model.mem_len: 0",
                                          a.type));
  }

  // One problem line; keys set by an override are reported as "<override> k=v: ...".
  void report(const std::string& path, const std::string& msg) {
    std::string where = path.empty() ? "(top level)" : path;
    std::string ovr = override_;
    if (ovr.empty() && origin_.count(path)) ovr = origin_[path];
    if (ovr.empty()) return problems_.push_back(where + ": " + msg);
    if (split_override(ovr)->first == path) return problems_.push_back("<override> " + ovr + ": " + msg);
    problems_.push_back("<override> " + ovr + ": " + where + ": " + msg);
  }

  Config cfg_;
  bool require_data_source_ = true;  // false for a checkpoint's stored config
  std::vector<std::string> problems_;
  std::set<std::string> bad_;                  // keys whose given value had the wrong type
  std::set<std::string> given_;                // keys a config or an override set
  std::map<std::string, std::string> origin_;  // key -> the override that last set it
  std::string override_;                       // the override being applied, if any
  // model.attention.<key> as written (node, override text), resolved in validate().
  std::map<std::string, std::pair<YAML::Node, std::string>> attention_raw_;
};

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw ConfigError(path, {"cannot read " + path + ": no such file"});
  if (fs::is_directory(path, ec)) throw ConfigError(path, {"cannot read " + path + ": it is a directory"});
  // A FIFO or device would block or never end.
  if (!fs::is_regular_file(path, ec)) throw ConfigError(path, {"cannot read " + path + ": not a regular file"});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, {"cannot read " + path + ": " + std::strerror(errno)});
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path, {"cannot read " + path + ": read failed"});
  return text.str();
}

Config load_text(const std::string& text, const std::string& source, const fs::path& base_dir,
                 const std::vector<std::string>& overrides, bool require_data_source = true) {
  Loader loader{Config{}, require_data_source};
  if (!loader.apply_yaml_text(text, source)) return loader.finish(source);
  loader.resolve_data_paths(base_dir);
  for (const auto& o : overrides) loader.apply_override(o);
  loader.validate();
  return loader.finish(source);
}

}  // namespace

Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  return load_text(read_file(yaml_path), yaml_path, fs::path(yaml_path).parent_path(), overrides);
}

Config config_from_yaml_string(const std::string& text, const std::string& source_name,
                               const std::vector<std::string>& overrides, bool require_data_source) {
  return load_text(text, source_name, fs::path(), overrides, require_data_source);
}

void apply_overrides(Config& cfg, const std::vector<std::string>& overrides, const std::string& source) {
  Loader loader{cfg, false};
  for (const auto& o : overrides) loader.apply_override(o);
  loader.validate();
  cfg = loader.finish(source);
}

void validate_config(const Config& cfg, const std::string& source) {
  Loader loader{cfg};
  loader.validate();
  loader.finish(source);
}

std::string config_to_yaml(const Config& cfg) {
  Config copy = cfg;
  YAML::Emitter out;
  out.SetIndent(2);
  emit_section(out, copy, "");
  return "# txl config, fully resolved: every key, defaults included\n" + std::string(out.c_str()) + "\n";
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& f : fields()) keys.push_back(f.path);
  return keys;
}

}  // namespace txl
