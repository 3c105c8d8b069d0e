// The attention registry and model.attention in configs: variants are chosen by name,
// their keys are typed and range-checked with did-you-mean errors, capabilities the
// rest of the config relies on are enforced, and a variant registered from its own file
// (here: one defined in this test) is picked up by the loader and the model unchanged.
#include <catch2/catch.hpp>

#include <algorithm>

#include "gradcheck.h"
#include "txl/attention/attention.h"
#include "txl/config/load.h"
#include "txl/models/language_model.h"
#include "txl/ops/ops.h"

using namespace txl;

namespace {

// A variant without memory: plain causal softmax attention inside the segment, defined
// entirely here to show that a variant needs nothing but its own file.
class CausalOnlyPass : public AttentionPass {
 public:
  CausalOnlyPass(const ModelConfig& c, const ParameterSet& p) : c_(c), p_(p) {}
  Tensor layer(int64_t l, const Tensor& x, const std::function<Tensor(const Tensor&)>& norm, ForwardContext&) override {
    const int64_t T = x.shape()[0], B = x.shape()[1], H = c_.n_head, Dh = c_.d_head;
    Tensor qkv = linear(norm(x), p_.get("layers." + std::to_string(l) + ".dec_attn.qkv_net.weight"));
    auto parts = split(qkv, {H * Dh, H * Dh, H * Dh}, 2);
    auto heads = [&](const Tensor& t) { return permute(reshape(t, {T, B, H, Dh}), {1, 2, 0, 3}); };
    Tensor s = mul_scalar(matmul(heads(parts[0]), transpose(heads(parts[1]), 2, 3)), 1.0 / std::sqrt(double(Dh)));
    Tensor a = softmax(masked_fill(s, triu_mask(T, T, 1), -INFINITY));
    Tensor out = reshape(permute(matmul(a, heads(parts[2])), {2, 0, 1, 3}), {T, B, H * Dh});
    return linear(out, p_.get("layers." + std::to_string(l) + ".dec_attn.o_net.weight"));
  }
  std::vector<Tensor> next_state(const std::vector<Tensor>&) override { return {}; }

 private:
  const ModelConfig& c_;
  const ParameterSet& p_;
};

class CausalOnly : public Attention {
 public:
  explicit CausalOnly(const ModelConfig& c) : c_(c) {}
  void declare_layer(int64_t l, ParamTable& t) const override {
    const int64_t HD = c_.n_head * c_.d_head;
    t.add("layers." + std::to_string(l) + ".dec_attn.qkv_net.weight", {3 * HD, c_.d_model}, ParamInit::normal(0, 0.1));
    t.add("layers." + std::to_string(l) + ".dec_attn.o_net.weight", {c_.d_model, HD}, ParamInit::normal(0, 0.1));
  }
  std::unique_ptr<AttentionPass> begin(const ParameterSet& p, const std::vector<Tensor>&, int64_t, int64_t,
                                       ForwardContext&) const override {
    return std::make_unique<CausalOnlyPass>(c_, p);
  }
  int64_t formula_parameter_count(int64_t V) const override { return 0; }
  double attention_flops_per_token(const ParameterSet&) const override { return 0; }

 private:
  ModelConfig c_;
};

AttentionSpec causal_only_spec() {
  AttentionSpec s;
  s.name = "test_causal_only";
  s.summary = "test-only: causal attention within the segment, no memory";
  s.options = {{"window", int64_t{16}, 1, 4096, {}, "unused"}, {"kind", std::string("a"), {}, {}, {"a", "b"}, "unused"}};
  s.make = [](const ModelConfig& c) -> std::unique_ptr<Attention> { return std::make_unique<CausalOnly>(c); };
  return s;
}

TXL_REGISTER_ATTENTION(causal_only_spec);

std::vector<std::string> problems_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    config_from_yaml_string("data: {path: x}\n" + yaml, "test.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

bool has(const std::vector<std::string>& problems, const std::string& line) {
  for (const auto& p : problems)
    if (p == line) return true;
  for (const auto& p : problems) UNSCOPED_INFO("problem: " << p);
  return false;
}

}  // namespace

TEST_CASE("registry: every variant is listed with its keys", "[attention]") {
  std::vector<std::string> names;
  for (const AttentionSpec* s : registered_attentions()) names.push_back(s->name);
  CHECK(std::find(names.begin(), names.end(), "transformer_xl") != names.end());
  CHECK(std::find(names.begin(), names.end(), "adaptive_span") != names.end());
  CHECK(std::find(names.begin(), names.end(), "test_causal_only") != names.end());
  REQUIRE(attention_spec("adaptive_span").option("span_loss"));
  CHECK(attention_spec("adaptive_span").caps.aux_loss);
  CHECK_THROWS_WITH(attention_spec("adaptve_span"), Catch::Contains("did you mean adaptive_span?"));
  // Shortened or misspelt-and-shortened names find the variant through its prefix.
  CHECK_THROWS_WITH(attention_spec("transformr"), Catch::Contains("did you mean transformer_xl?"));
  CHECK_THROWS_WITH(attention_spec("compress"), Catch::Contains("did you mean compressive?"));
  CHECK_THROWS_WITH(attention_spec("xyz"), !Catch::Contains("did you mean"));
}

TEST_CASE("model.attention: unknown types and keys, wrong types and ranges get one line each", "[attention][config]") {
  std::string registered;
  for (const AttentionSpec* s : registered_attentions()) registered += (registered.empty() ? "" : ", ") + s->name;
  CHECK(registered.find("test_causal_only") != std::string::npos);
  CHECK(has(problems_of("model: {attention: {type: adaptve_span}}\n"),
            "model.attention.type: unknown attention type \"adaptve_span\" (did you mean adaptive_span?); registered "
            "variants: " + registered));
  CHECK(has(problems_of("model: {attention: {type: adaptive_span, spna: 64}}\n"),
            "model.attention.spna: unknown key for attention type adaptive_span (did you mean span?); its keys are "
            "type, span, adapt_span, ramp, init, span_loss, cache, pers_mem_size, fused"));
  CHECK(has(problems_of("model: {attention: {type: adaptive_span, span: lots}}\n"),
            "model.attention.span: expected an integer in [1, 1000000000], got lots"));
  CHECK(has(problems_of("model: {attention: {type: adaptive_span, init: 1.5}}\n"),
            "model.attention.init: expected a number in [0, 1], got 1.5"));
  CHECK(has(problems_of("model: {attention: {type: test_causal_only, mem_len: 8, kind: c}}\n", {}),
            "model.attention.mem_len: unknown key for attention type test_causal_only; its keys are type, window, kind"));
  CHECK(has(problems_of("model: {mem_len: 0, attention: {type: test_causal_only, kind: c}}\n"),
            "model.attention.kind: expected one of a, b, got \"c\""));
  // Keys of one variant under another.
  CHECK(has(problems_of("model: {attention: {span: 64}}\n"),
            "model.attention.span: unknown key for attention type transformer_xl; its keys are type, fused"));
  // Cross-key rules of the variant.
  CHECK(has(problems_of("model: {d_model: 128, n_head: 4, d_head: 16, attention: {type: adaptive_span}}\n"),
            "model.d_head: adaptive_span needs n_head * d_head == d_model (4 * 16 != 128)"));
  // Overrides are checked the same way and named.
  CHECK(has(problems_of("model: {attention: {type: adaptive_span}}\n", {"model.attention.ramp=0"}),
            "<override> model.attention.ramp=0: expected an integer in [1, 1000000000], got 0"));
}

TEST_CASE("model.attention: a capability the config needs and the variant lacks is refused", "[attention][config]") {
  CHECK(has(problems_of("model: {mem_len: 16, attention: {type: test_causal_only}}\n"),
            "model.mem_len: attention type test_causal_only has no segment memory (capability segment_memory); set "
            "model.mem_len: 0"));
  CHECK(problems_of("model: {mem_len: 0, attention: {type: test_causal_only}}\n").empty());
  // A compressed memory fed by no memory.
  CHECK(has(problems_of("model: {mem_len: 0, attention: {type: compressive, cmem_len: 16}}\n"),
            "model.mem_len: compressive compresses what leaves the memory; with mem_len 0 nothing ever does (set "
            "mem_len > 0, or cmem_len 0 for plain Transformer-XL)"));
}

TEST_CASE("model.attention: defaults resolve, overrides apply, YAML round-trips", "[attention][config]") {
  Config c = config_from_yaml_string("data: {path: x}\nmodel: {attention: {span: 512, type: adaptive_span}}\n",
                                     "test.yaml", {"model.attention.span_loss=2e-6"});
  CHECK(c.model.attention.type == "adaptive_span");
  CHECK(std::get<int64_t>(c.model.attention.options.at("span")) == 512);
  CHECK(std::get<double>(c.model.attention.options.at("span_loss")) == 2e-6);
  CHECK(std::get<int64_t>(c.model.attention.options.at("ramp")) == 32);  // default filled in
  CHECK(config_from_yaml_string(config_to_yaml(c), "roundtrip") == c);
  // Changing the type of a loaded config drops the old variant's resolved keys; in a
  // YAML file that still lists them they are errors.
  Config t = c;
  apply_overrides(t, {"model.attention.type=transformer_xl"});
  CHECK(t.model.attention.options == std::map<std::string, OptionValue>{{"fused", true}});
  CHECK(has(problems_of("model: {attention: {type: adaptive_span, span: 64}}\n", {"model.attention.type=transformer_xl"}),
            "model.attention.span: unknown key for attention type transformer_xl; its keys are type, fused"));
}

TEST_CASE("a variant registered from its own file builds and trains in the stack", "[attention]") {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 8;
  c.d_head = 4;
  c.d_inner = 16;
  c.mem_len = 0;
  c.attention.type = "test_causal_only";
  LanguageModel m(c, 7, DType::f64);
  m.init_weights(2);
  Tensor ids = Tensor::from_vector<int64_t>({5, 2}, {1, 2, 3, 4, 5, 6, 0, 1, 2, 3});
  ForwardResult r = m.forward(ids, ids, {}, {});
  backward(mean(r.loss));
  CHECK(r.mems.empty());
  CHECK(m.params().get("layers.1.dec_attn.qkv_net.weight").grad().defined());
}
