#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "txl/attention/attention.h"
#include "txl/core/error.h"
#include "txl/core/suggest.h"
#include "txl/ops/nn_ops.h"

namespace txl {

namespace {

// Function-local so registration from other translation units' static initialisers
// never runs before the map exists.
std::map<std::string, AttentionSpec>& registry() {
  static std::map<std::string, AttentionSpec> specs;
  return specs;
}

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& [name, spec] : registry()) out.push_back(name);
  return out;
}

const OptionValue& option_value(const ModelConfig& cfg, const std::string& key) {
  auto it = cfg.attention.options.find(key);
  if (it != cfg.attention.options.end()) return it->second;
  const OptionSpec* spec = attention_spec(cfg.attention.type).option(key);
  TXL_CHECK(spec, "model.attention: variant {} has no key {}", cfg.attention.type, key);
  return spec->default_value;
}

template <class T>
T option_as(const ModelConfig& cfg, const std::string& key) {
  const OptionValue& v = option_value(cfg, key);
  const T* x = std::get_if<T>(&v);
  TXL_CHECK(x, "model.attention.{}: wrong type {}", key, option_value_text(v));
  return *x;
}

}  // namespace

void ParamTable::add(const std::string& name, const Shape& shape, ParamInit init) {
  shapes_.emplace_back(name, shape);
  inits_.push_back(init);
}

Tensor ForwardContext::drop(const Tensor& x, double p) {
  if (!training || p == 0.0) return x;
  Tensor y = dropout(x, p, true, seed, counter);
  counter += static_cast<uint64_t>(x.numel());
  return y;
}

const OptionSpec* AttentionSpec::option(const std::string& key) const {
  for (const auto& o : options)
    if (o.name == key) return &o;
  return nullptr;
}

bool register_attention(AttentionSpec spec) {
  auto name = spec.name;
  auto [it, inserted] = registry().emplace(name, std::move(spec));
  if (!inserted) {
    fmt::print(stderr, "txl: attention variant '{}' is registered twice\n", name);
    std::abort();
  }
  return true;
}

const AttentionSpec* find_attention(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : &it->second;
}

const AttentionSpec& attention_spec(const std::string& name) {
  if (const AttentionSpec* s = find_attention(name)) return *s;
  auto all = names();
  std::string list;
  for (size_t i = 0; i < all.size(); ++i) list += (i ? ", " : "") + all[i];
  TXL_FAIL("unknown attention type '{}'{}; registered variants: {}", name, did_you_mean(name, all), list);
}

std::vector<const AttentionSpec*> registered_attentions() {
  std::vector<const AttentionSpec*> out;
  for (const auto& [name, spec] : registry()) out.push_back(&spec);
  return out;
}

void resolve_attention_defaults(ModelConfig& cfg) {
  const AttentionSpec& spec = attention_spec(cfg.attention.type);
  for (const auto& o : spec.options) cfg.attention.options.emplace(o.name, o.default_value);
}

int64_t attention_int(const ModelConfig& cfg, const std::string& key) { return option_as<int64_t>(cfg, key); }
double attention_double(const ModelConfig& cfg, const std::string& key) { return option_as<double>(cfg, key); }
bool attention_bool(const ModelConfig& cfg, const std::string& key) { return option_as<bool>(cfg, key); }
std::string attention_string(const ModelConfig& cfg, const std::string& key) {
  return option_as<std::string>(cfg, key);
}

std::string caps_text(const AttentionCaps& c) {
  std::vector<std::string> on;
  if (c.causal_exact) on.push_back("causal_exact");
  if (c.segment_memory) on.push_back("segment_memory");
  if (c.persistent_memory) on.push_back("persistent_memory");
  if (c.compressed_memory) on.push_back("compressed_memory");
  if (c.aux_loss) on.push_back("aux_loss");
  if (c.incremental_decoding) on.push_back("incremental_decoding");
  std::string out;
  for (size_t i = 0; i < on.size(); ++i) out += (i ? ", " : "") + on[i];
  return out.empty() ? "none" : out;
}

}  // namespace txl
