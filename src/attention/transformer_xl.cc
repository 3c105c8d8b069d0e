// transformer_xl: kimiyoung's RelPartialLearnableMultiHeadAttn (MODELS.md §1.3-§1.9):
// sinusoidal relative positions R over [memory; segment] with the rel-shift, content
// bias u = r_w_bias and position bias v = r_r_bias shared by all layers, memories of
// the per-layer inputs (mem_len, same_length, clamp_len come from the model section).
#include <cmath>

#include "txl/attention/attention.h"
#include "txl/ops/attention.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

std::string layer_key(int64_t l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }

class TxlPass : public AttentionPass {
 public:
  TxlPass(const ModelConfig& cfg, const ParameterSet& params, const std::vector<Tensor>& mems, int64_t T,
          ForwardContext& ctx)
      : cfg_(cfg), params_(params), mems_(mems), T_(T), M_(mems.empty() ? 0 : mems[0].shape()[0]) {
    TXL_CHECK(mems.empty() || static_cast<int64_t>(mems.size()) == cfg.n_layer + 1,
              "transformer_xl: expected {} memories, got {}", cfg.n_layer + 1, mems.size());
    mask_ = attention_mask();
    r_ = ctx.drop(positional(M_ + T_), cfg_.dropout);
  }

  Tensor layer(int64_t l, const Tensor& w, const std::function<Tensor(const Tensor&)>& norm,
               ForwardContext& ctx) override {
    const int64_t T = w.shape()[0], B = w.shape()[1], H = cfg_.n_head, Dh = cfg_.d_head, HD = H * Dh;
    Tensor cat = M_ > 0 ? concat({mems_[l], w}, 0) : w;
    const int64_t K = cat.shape()[0];
    cat = norm(cat);  // pre-LN normalises the memories too

    Tensor w_heads = linear(cat, p(layer_key(l, "dec_attn.qkv_net.weight")));  // [K, B, 3HD]
    Tensor r_head_k = reshape(linear(r_, p(layer_key(l, "dec_attn.r_net.weight"))), {K, H, Dh});
    std::vector<Tensor> qkv = split(w_heads, {HD, HD, HD}, 2);
    Tensor q = reshape(narrow(qkv[0], 0, K - T, T), {T, B, H, Dh});  // queries of the segment only
    Tensor k = reshape(qkv[1], {K, B, H, Dh});
    Tensor v = reshape(qkv[2], {K, B, H, Dh});

    // Scores in [B, H, T, K]: content term with u = r_w_bias, position term with v = r_r_bias.
    Tensor ac = matmul(permute(add(q, p("r_w_bias")), {1, 2, 0, 3}), permute(k, {1, 2, 3, 0}));
    Tensor bd = matmul(permute(add(q, p("r_r_bias")), {1, 2, 0, 3}), permute(r_head_k, {1, 2, 0}));
    // softmax(mask(scale * (AC + rel_shift(BD)))) fused: the reference's _rel_shift
    // garbage entries are exactly the ones the causal mask removes.
    Tensor prob = ctx.drop(rel_attn_probs(ac, bd, mask_, 1.0 / std::sqrt(static_cast<double>(Dh))), cfg_.dropatt);

    Tensor vec = matmul(prob, permute(v, {1, 2, 0, 3}));  // [B, H, T, Dh]
    vec = reshape(permute(vec, {2, 0, 1, 3}), {T, B, HD});
    return ctx.drop(linear(vec, p(layer_key(l, "dec_attn.o_net.weight"))), cfg_.dropout);
  }

  // The reference's _update_mems: L + 1 detached inputs, end = mlen + qlen,
  // beg = max(0, end - mem_len).
  std::vector<Tensor> next_state(const std::vector<Tensor>& hids) override {
    std::vector<Tensor> out;
    if (cfg_.mem_len <= 0) return out;
    NoGradGuard no_grad;
    const int64_t end = M_ + T_, beg = std::max<int64_t>(0, end - cfg_.mem_len);
    for (size_t l = 0; l < hids.size(); ++l) {
      Tensor cat = M_ > 0 ? concat({mems_[l], hids[l].detach()}, 0) : hids[l].detach();
      out.push_back(contiguous_copy(narrow(cat, 0, beg, end - beg)));
    }
    return out;
  }

 private:
  const Tensor& p(const std::string& name) const { return params_.get(name); }

  // R [klen, D]: [sin | cos] halves over the descending positions klen-1 .. 0, clamped.
  Tensor positional(int64_t klen) const {
    const int64_t D = cfg_.d_model, half = D / 2;
    std::vector<double> r(static_cast<size_t>(klen * D));
    for (int64_t c = 0; c < klen; ++c) {
      double pos = static_cast<double>(klen - 1 - c);
      if (cfg_.clamp_len > 0) pos = std::min(pos, static_cast<double>(cfg_.clamp_len));
      for (int64_t k = 0; k < half; ++k) {
        double inv_freq = 1.0 / std::pow(10000.0, static_cast<double>(2 * k) / static_cast<double>(D));
        r[c * D + k] = std::sin(pos * inv_freq);
        r[c * D + half + k] = std::cos(pos * inv_freq);
      }
    }
    return to_dtype(Tensor::from_vector<double>({klen, D}, r), params_.dtype());
  }

  // True = masked. Default: key j is masked for query i iff j > mlen + i. same_length
  // also masks the keys more than mem_len back, exactly as the reference builds it.
  Tensor attention_mask() const {
    const int64_t qlen = T_, mlen = M_, klen = mlen + qlen;
    std::vector<uint8_t> m(static_cast<size_t>(qlen * klen));
    const int64_t mask_len = klen - cfg_.mem_len;
    const int64_t shift = mask_len > 0 ? qlen - mask_len : qlen;
    for (int64_t i = 0; i < qlen; ++i)
      for (int64_t j = 0; j < klen; ++j) {
        bool masked = j - i >= 1 + mlen;
        if (cfg_.same_length) masked = masked || j - i <= -shift;
        m[i * klen + j] = masked;
      }
    return Tensor::from_vector<uint8_t>({qlen, klen}, m);
  }

  const ModelConfig& cfg_;
  const ParameterSet& params_;
  const std::vector<Tensor>& mems_;
  int64_t T_, M_;
  Tensor mask_, r_;
};

class TxlAttention : public Attention {
 public:
  explicit TxlAttention(const ModelConfig& cfg) : cfg_(cfg) {}

  void declare_shared(ParamTable& t) const override {
    t.add("r_w_bias", {cfg_.n_head, cfg_.d_head}, ParamInit::normal(0, cfg_.init_std));
    t.add("r_r_bias", {cfg_.n_head, cfg_.d_head}, ParamInit::normal(0, cfg_.init_std));
  }
  void declare_layer(int64_t l, ParamTable& t) const override {
    const int64_t D = cfg_.d_model, HD = cfg_.n_head * cfg_.d_head;
    const ParamInit w = ParamInit::normal(0, cfg_.init_std);
    t.add(layer_key(l, "dec_attn.qkv_net.weight"), {3 * HD, D}, w);
    t.add(layer_key(l, "dec_attn.o_net.weight"), {D, HD}, w);
    t.add(layer_key(l, "dec_attn.r_net.weight"), {HD, D}, w);
  }
  std::unique_ptr<AttentionPass> begin(const ParameterSet& params, const std::vector<Tensor>& state, int64_t T,
                                       int64_t B, ForwardContext& ctx) const override {
    return std::make_unique<TxlPass>(cfg_, params, state, T, ctx);
  }
  int64_t formula_parameter_count(int64_t V) const override {
    const int64_t D = cfg_.d_model, HD = cfg_.n_head * cfg_.d_head, F = cfg_.d_inner;
    return cfg_.n_layer * (5 * D * HD + D * F + F + F * D + D + 4 * D) + V * D + V + 2 * HD;
  }
  // Per token and layer: content and position scores over M + T keys, the weighted sum.
  double attention_flops_per_token(const ParameterSet&) const override {
    const double keys = static_cast<double>(cfg_.mem_len + cfg_.tgt_len);
    return 2.0 * 3.0 * keys * static_cast<double>(cfg_.n_head * cfg_.d_head);
  }

 private:
  ModelConfig cfg_;
};

AttentionSpec transformer_xl_spec() {
  AttentionSpec s;
  s.name = "transformer_xl";
  s.summary = "relative multi-head attention over [memory; segment] (Transformer-XL)";
  s.reference = "kimiyoung/transformer-xl RelPartialLearnableMultiHeadAttn, MODELS.md §1";
  s.caps.segment_memory = true;
  s.caps.incremental_decoding = true;
  s.style = StackStyle::txl;
  s.check = [](const ModelConfig& c) {
    std::vector<ConfigProblem> out;
    if (c.d_model % 2 != 0)
      out.push_back({"model.d_model", "must be even for sinusoidal positions, got " + std::to_string(c.d_model)});
    if (c.d_inner <= 0) out.push_back({"model.d_inner", "expected a positive integer, got " + std::to_string(c.d_inner)});
    return out;
  };
  s.make = [](const ModelConfig& c) -> std::unique_ptr<Attention> { return std::make_unique<TxlAttention>(c); };
  return s;
}

TXL_REGISTER_ATTENTION(transformer_xl_spec);

}  // namespace

}  // namespace txl
