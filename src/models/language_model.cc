// The layer stack around a registered attention variant. Written with the
// differentiable ops so backward comes from the tape; comments cite the references.
#include "txl/models/language_model.h"

#include <cmath>

#include "txl/core/rng.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

constexpr double kLayerNormEps = 1e-5;  // both references use nn.LayerNorm's default

std::string layer_key(int64_t l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }

}  // namespace

// The reference state-dict names of the stack's own parameters, per style.
struct LanguageModel::Names {
  static const char* embedding(StackStyle s) { return s == StackStyle::txl ? "word_emb.emb_layers.0.weight" : "in_emb.weight"; }
  static std::string ln1(StackStyle s, int64_t l, const char* wb) {
    return layer_key(l, s == StackStyle::txl ? "dec_attn.layer_norm." : "norm1.") + wb;
  }
  static std::string ln2(StackStyle s, int64_t l, const char* wb) {
    return layer_key(l, s == StackStyle::txl ? "pos_ff.layer_norm." : "norm2.") + wb;
  }
  static std::string fc1(StackStyle s, int64_t l, const char* wb) {
    return layer_key(l, s == StackStyle::txl ? "pos_ff.CoreNet.0." : "ff.fc1.") + wb;
  }
  static std::string fc2(StackStyle s, int64_t l, const char* wb) {
    return layer_key(l, s == StackStyle::txl ? "pos_ff.CoreNet.3." : "ff.fc2.") + wb;
  }
};

LanguageModel::LanguageModel(const ModelConfig& cfg, int64_t vocab_size, DType dtype)
    : cfg_(cfg), vocab_(vocab_size), dtype_(dtype), spec_(&::txl::attention_spec(cfg.attention.type)) {
  resolve_attention_defaults(cfg_);
  attn_ = spec_->make(cfg_);
  const ParamTable table = parameter_table(cfg_, vocab_size, spec_->style, *attn_);
  for (const auto& [name, shape] : table.shapes()) params_.declare(name, shape);
  inits_ = table.inits();
  params_.finalize(dtype);
}

ParamTable LanguageModel::parameter_table(const ModelConfig& cfg, int64_t vocab_size, StackStyle style,
                                          const Attention& attn) {
  const int64_t D = cfg.d_model, F = cfg.d_inner, V = vocab_size;
  const double std = cfg.init_std;
  // TXL: weights N(0, init_std), LN weights N(1, init_std), biases 0 (MODELS.md §1.10).
  // Seq: PyTorch defaults, Linear U(+-1/sqrt(fan_in)), Embedding N(0, 1), LN 1 / 0 (§2.7).
  const bool txl = style == StackStyle::txl;
  auto weight = [&](int64_t fan_in) { return txl ? ParamInit::normal(0, std) : ParamInit::uniform(1.0 / std::sqrt(fan_in)); };
  auto bias = [&](int64_t fan_in) { return txl ? ParamInit::constant(0) : ParamInit::uniform(1.0 / std::sqrt(fan_in)); };
  const ParamInit ln_w = txl ? ParamInit::normal(1, std) : ParamInit::constant(1);
  const ParamInit ln_b = ParamInit::constant(0);

  ParamTable table;
  attn.declare_shared(table);
  table.add(Names::embedding(style), {V, D}, txl ? ParamInit::normal(0, std) : ParamInit::normal(0, 1));
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    attn.declare_layer(l, table);
    table.add(Names::ln1(style, l, "weight"), {D}, ln_w);
    table.add(Names::ln1(style, l, "bias"), {D}, ln_b);
    if (!attn.has_feed_forward()) continue;
    table.add(Names::fc1(style, l, "weight"), {F, D}, weight(D));
    table.add(Names::fc1(style, l, "bias"), {F}, bias(D));
    table.add(Names::fc2(style, l, "weight"), {D, F}, weight(F));
    table.add(Names::fc2(style, l, "bias"), {D}, bias(F));
    table.add(Names::ln2(style, l, "weight"), {D}, ln_w);
    table.add(Names::ln2(style, l, "bias"), {D}, ln_b);
  }
  if (txl) {
    table.add("crit.out_layers.0.bias", {V}, ParamInit::constant(0));
  } else {
    table.add("out_emb.weight", {V, D}, weight(D));
    table.add("out_emb.bias", {V}, bias(D));
  }
  return table;
}

std::vector<std::pair<std::string, Shape>> LanguageModel::parameter_shapes(const ModelConfig& cfg, int64_t vocab_size) {
  ModelConfig c = cfg;
  resolve_attention_defaults(c);
  const AttentionSpec& spec = ::txl::attention_spec(c.attention.type);
  return parameter_table(c, vocab_size, spec.style, *spec.make(c)).shapes();
}

bool LanguageModel::is_architecture_key(const ModelConfig& cfg, const std::string& key) {
  static const char* const kArchitecture[] = {"n_layer", "n_head", "d_model", "d_head", "d_inner", "pre_lnorm",
                                              "attention", "attention.type"};
  for (const char* k : kArchitecture)
    if (key == k) return true;
  if (!key.starts_with("attention.")) return false;
  const OptionSpec* o = ::txl::attention_spec(cfg.attention.type).option(key.substr(10));
  return !o || !o->runtime;
}

int64_t LanguageModel::parameter_count(const ModelConfig& cfg, int64_t vocab_size) {
  ModelConfig c = cfg;
  resolve_attention_defaults(c);
  return ::txl::attention_spec(c.attention.type).make(c)->formula_parameter_count(vocab_size);
}

void LanguageModel::init_weights(uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  const auto& named = params_.named();
  for (size_t i = 0; i < named.size(); ++i) {
    const Tensor& t = named[i].second;
    const ParamInit& init = inits_[i];
    Tensor v;
    switch (init.kind) {
      case ParamInit::Kind::constant: v = Tensor::full(t.shape(), init.a, dtype_); break;
      case ParamInit::Kind::normal: v = add_scalar(Tensor::randn(t.shape(), gen, dtype_, init.b), init.a); break;
      case ParamInit::Kind::uniform: v = Tensor::rand(t.shape(), gen, dtype_, init.a, init.b); break;
    }
    Tensor dst = t.detach();
    copy_(dst, v);
  }
}

void LanguageModel::set_lengths(int64_t mem_len, bool same_length, int64_t clamp_len) {
  cfg_.mem_len = mem_len;
  cfg_.same_length = same_length;
  cfg_.clamp_len = clamp_len;
  if (spec_->check)
    for (const auto& problem : spec_->check(cfg_)) TXL_FAIL("{}: {}", problem.key, problem.message);
  attn_ = spec_->make(cfg_);
}

Tensor LanguageModel::feed_forward(int64_t l, const Tensor& x, ForwardContext& ctx) const {
  const StackStyle s = spec_->style;
  const Tensor& ln_w = p(Names::ln2(s, l, "weight"));
  const Tensor& ln_b = p(Names::ln2(s, l, "bias"));
  const bool pre = cfg_.pre_lnorm;
  Tensor in = pre ? layer_norm(x, ln_w, ln_b, kLayerNormEps) : x;
  // Without dropout here, fc2's product is the only reader of h: h may be its bf16 copy.
  const bool dropped = ctx.training && cfg_.dropout > 0.0;
  Tensor h =
      ctx.drop(linear_relu(in, p(Names::fc1(s, l, "weight")), p(Names::fc1(s, l, "bias")), /*operand_only=*/!dropped),
               cfg_.dropout);
  Tensor core = linear(h, p(Names::fc2(s, l, "weight")), p(Names::fc2(s, l, "bias")));
  if (s == StackStyle::txl) core = ctx.drop(core, cfg_.dropout);  // TransformerSeq has no dropout after fc2
  return pre ? add(x, core) : add_layer_norm(x, core, ln_w, ln_b, kLayerNormEps);
}

ForwardResult LanguageModel::forward(const Tensor& input, const Tensor& target, const std::vector<Tensor>& mems,
                                     const ForwardOptions& opt) const {
  TXL_CHECK(input.dim() == 2 && is_integer(input.dtype()), "model: input must be [T, B] of ids, got {} {}",
            dtype_name(input.dtype()), shape_str(input.shape()));
  const int64_t T = input.shape()[0], B = input.shape()[1];
  const StackStyle s = spec_->style;
  const bool txl = s == StackStyle::txl;
  ForwardContext ctx{opt.training, opt.seed};

  const Tensor& emb = p(Names::embedding(s));
  Tensor h = embedding(emb, input);
  if (txl) h = ctx.drop(mul_scalar(h, std::sqrt(static_cast<double>(cfg_.d_model))), cfg_.dropout);
  std::unique_ptr<AttentionPass> pass = attn_->begin(params_, mems, T, B, ctx);

  std::vector<Tensor> hids{h};
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const Tensor& ln_w = p(Names::ln1(s, l, "weight"));
    const Tensor& ln_b = p(Names::ln1(s, l, "bias"));
    const bool pre = cfg_.pre_lnorm;
    auto norm = [&](const Tensor& t) { return pre ? layer_norm(t, ln_w, ln_b, kLayerNormEps) : t; };
    Tensor a = pass->layer(l, h, norm, ctx);
    h = pre ? add(h, a) : add_layer_norm(h, a, ln_w, ln_b, kLayerNormEps);
    if (attn_->has_feed_forward()) h = feed_forward(l, h, ctx);
    hids.push_back(h);
  }
  ForwardResult out;
  Tensor logits = txl ? linear(ctx.drop(h, cfg_.dropout), emb, p("crit.out_layers.0.bias"))
                      : linear(h, p("out_emb.weight"), p("out_emb.bias"));
  if (opt.want_logits) out.logits = logits;
  if (opt.want_loss && target.defined()) out.loss = cross_entropy(logits, target, Reduction::none);
  if (opt.training) out.aux_loss = pass->aux_loss();
  out.mems = pass->next_state(hids);
  return out;
}

}  // namespace txl
