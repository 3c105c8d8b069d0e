// transformer_xl: kimiyoung's RelPartialLearnableMultiHeadAttn (MODELS.md §1.3-§1.9):
// sinusoidal relative positions R over [memory; segment] with the rel-shift, content
// bias u = r_w_bias and position bias v = r_r_bias shared by all layers, memories of
// the per-layer inputs (mem_len, same_length, clamp_len come from the model section).
// The attention itself is in relative_attention.{h,cc}, shared with compressive.
#include <algorithm>

#include "attention/relative_attention.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

class TxlPass : public AttentionPass {
 public:
  TxlPass(const ModelConfig& cfg, const ParameterSet& params, const std::vector<Tensor>& mems, int64_t T,
          ForwardContext& ctx)
      : cfg_(cfg), params_(params), mems_(mems), T_(T), M_(mems.empty() ? 0 : mems[0].shape()[0]) {
    TXL_CHECK(mems.empty() || static_cast<int64_t>(mems.size()) == cfg.n_layer + 1,
              "transformer_xl: expected {} memories, got {}", cfg.n_layer + 1, mems.size());
    mask_ = relative_mask(T_, M_ + T_, cfg_.same_length, cfg_.mem_len).to(params_.device());
    // Read by every layer's r_net product: in the form they read it, made once.
    r_ = matmul_operand(ctx.drop(
        sinusoid_positions(M_ + T_, cfg_.d_model, cfg_.clamp_len, params_.dtype()).to(params_.device()), cfg_.dropout));
  }

  Tensor layer(int64_t l, const Tensor& w, const std::function<Tensor(const Tensor&)>& norm,
               ForwardContext& ctx) override {
    const SegmentRows rows = segment_rows({M_ > 0 ? mems_[l] : Tensor()}, w, norm, cfg_.pre_lnorm);
    return relative_attention(cfg_, params_, l, rows.cat, rows.segment, T_, r_, mask_, ctx).out;
  }

  // The reference's _update_mems: L + 1 detached inputs, end = mlen + qlen,
  // beg = max(0, end - mem_len).
  std::vector<Tensor> next_state(const std::vector<Tensor>& hids) override {
    std::vector<Tensor> out;
    if (cfg_.mem_len <= 0) return out;
    const int64_t end = M_ + T_, beg = std::max<int64_t>(0, end - cfg_.mem_len);
    for (size_t l = 0; l < hids.size(); ++l)
      out.push_back(memory_window(M_ > 0 ? mems_[l] : Tensor(), hids[l], beg, end - beg));
    return out;
  }

 private:
  const ModelConfig& cfg_;
  const ParameterSet& params_;
  const std::vector<Tensor>& mems_;
  int64_t T_, M_;
  Tensor mask_, r_;
};

class TxlAttention : public Attention {
 public:
  explicit TxlAttention(const ModelConfig& cfg) : cfg_(cfg) {}

  void declare_shared(ParamTable& t) const override { declare_relative_shared(cfg_, t); }
  void declare_layer(int64_t l, ParamTable& t) const override { declare_relative_layer(cfg_, l, t); }
  std::unique_ptr<AttentionPass> begin(const ParameterSet& params, const std::vector<Tensor>& state, int64_t T,
                                       int64_t B, ForwardContext& ctx) const override {
    return std::make_unique<TxlPass>(cfg_, params, state, T, ctx);
  }
  int64_t formula_parameter_count(int64_t V) const override {
    const int64_t D = cfg_.d_model, F = cfg_.d_inner;
    return cfg_.n_layer * (relative_layer_parameter_count(cfg_) + D * F + F + F * D + D + 4 * D) + V * D + V +
           relative_shared_parameter_count(cfg_);
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
  s.options = {fused_attention_option()};
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
