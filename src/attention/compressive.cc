// compressive: the Compressive Transformer (Rae et al. 2019, MODELS.md §4, paper
// Alg. 1 and 2) on Transformer-XL's relative attention. Each layer attends over
// [compressed memory; memory; segment] with TXL distances by slot index; the rows that
// leave the memory FIFO are compressed by f_c at rate c (mean/max pool, conv, dilated
// conv, most-used) and appended to the compressed memory; the compressor is trained
// only by the attention-reconstruction loss, whose inputs and attention weights are
// stop-gradient. With cmem_len 0 it is transformer_xl bit for bit. Decisions and their
// reasons: docs/models.md, "Compressive Transformer".
#include <algorithm>
#include <cmath>
#include <numeric>

#include "attention/relative_attention.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

enum class Compression { mean_pool, max_pool, conv, dilated_conv, most_used };

Compression parse_compression(const std::string& s) {
  if (s == "mean_pool") return Compression::mean_pool;
  if (s == "max_pool") return Compression::max_pool;
  if (s == "conv") return Compression::conv;
  if (s == "dilated_conv") return Compression::dilated_conv;
  TXL_CHECK(s == "most_used", "compressive: unknown compression {}", s);
  return Compression::most_used;
}

std::string compress_key(int64_t l, const char* wb) { return layer_key(l, std::string("dec_attn.compress.") + wb); }

struct CompressiveOptions {
  int64_t n_cm, c;
  Compression fn;
  bool recon;
  double recon_weight;
  explicit CompressiveOptions(const ModelConfig& cfg)
      : n_cm(attention_int(cfg, "cmem_len")),
        c(attention_int(cfg, "rate")),
        fn(parse_compression(attention_string(cfg, "compression"))),
        recon(attention_string(cfg, "recon_loss") == "attention"),
        recon_weight(attention_double(cfg, "recon_weight")) {}
  bool has_parameters() const { return fn == Compression::conv || fn == Compression::dilated_conv; }
  // Rows past the evicted block that f_c reads (dilated_conv's last taps).
  int64_t lookahead() const { return fn == Compression::dilated_conv ? c * (c - 1) : 0; }
};

// softmax(q k^T / sqrt(Dh)) v per head, no mask, no positions, no biases: the
// content-only attention of Alg. 2. q [B, H, T, Dh]; k, v [S, B, H * Dh] -> [B, H, T, Dh].
Tensor content_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t S = k.shape()[0], B = k.shape()[1], H = q.shape()[1], Dh = q.shape()[3];
  Tensor kh = permute(reshape(k, {S, B, H, Dh}), {1, 2, 3, 0});
  Tensor vh = permute(reshape(v, {S, B, H, Dh}), {1, 2, 0, 3});
  return matmul(softmax(mul_scalar(matmul(q, kh), 1.0 / std::sqrt(static_cast<double>(Dh)))), vh);
}

class CompressivePass : public AttentionPass {
 public:
  CompressivePass(const ModelConfig& cfg, const CompressiveOptions& o, const ParameterSet& params,
                  const std::vector<Tensor>& state, int64_t T, ForwardContext& ctx)
      : cfg_(cfg), o_(o), params_(params), T_(T) {
    const size_t L = static_cast<size_t>(cfg.n_layer);
    TXL_CHECK(state.empty() || state.size() == L + 1 || state.size() == 2 * L + 1,
              "compressive: expected 0, {} or {} state tensors, got {}", L + 1, 2 * L + 1, state.size());
    if (!state.empty()) mems_.assign(state.begin(), state.begin() + static_cast<int64_t>(L) + 1);
    M_ = mems_.empty() ? 0 : mems_[0].shape()[0];
    // A state without compressed memories (cmem_len was 0) starts them empty; a longer
    // one than cmem_len (a shorter setting at eval) keeps its newest rows.
    if (state.size() == 2 * L + 1 && o.n_cm > 0)
      for (size_t l = 0; l < L; ++l) {
        const Tensor& cm = state[L + 1 + l];
        const int64_t n = std::min(cm.shape()[0], o.n_cm);
        cms_.push_back(n == cm.shape()[0] ? cm : narrow(cm, 0, cm.shape()[0] - n, n));
      }
    C_ = cms_.empty() ? 0 : cms_[0].shape()[0];
    // Only whole groups of c leave the memory; the remainder waits in it (docs/models.md).
    const int64_t overflow = M_ + T_ - cfg.mem_len;
    E_ = o.n_cm > 0 && overflow > 0 ? overflow / o.c * o.c : 0;
    new_cms_.resize(L);
    const int64_t K = C_ + M_ + T_;
    mask_ = relative_mask(T_, K, cfg_.same_length, cfg_.mem_len + o.n_cm).to(params_.device());
    // Read by every layer's r_net product: in the form they read it, made once.
    r_ = matmul_operand(ctx.drop(
        sinusoid_positions(K, cfg_.d_model, cfg_.clamp_len, params_.dtype()).to(params_.device()), cfg_.dropout));
  }

  Tensor layer(int64_t l, const Tensor& w, const std::function<Tensor(const Tensor&)>& norm,
               ForwardContext& ctx) override {
    const SegmentRows rows =
        segment_rows({C_ > 0 ? cms_[l] : Tensor(), M_ > 0 ? mems_[l] : Tensor()}, w, norm, cfg_.pre_lnorm);
    // The reconstruction loss reads the attention's own q, k and v.
    RelativeAttentionOutput a =
        relative_attention(cfg_, params_, l, rows.cat, rows.segment, T_, r_, mask_, ctx,
                           E_ > 0 && o_.fn == Compression::most_used, E_ > 0 && reconstructs(ctx));
    // f_c reads the first E rows of [memory; segment] (and the dilated convolution's
    // lookahead): the attention has already built its own [cm; m; x].
    if (E_ > 0) compress(l, stacked_rows(M_ > 0 ? mems_[l] : Tensor(), w, 0, E_ + o_.lookahead()), a, ctx);
    return a.out;
  }

  // Memories as transformer_xl (cmem_len 0: exactly its rule), else the rows after
  // the E evicted ones; then the compressed memories, newest cmem_len rows.
  std::vector<Tensor> next_state(const std::vector<Tensor>& hids) override {
    std::vector<Tensor> out;
    if (o_.n_cm == 0 && cfg_.mem_len <= 0) return out;
    const int64_t end = M_ + T_, beg = o_.n_cm == 0 ? std::max<int64_t>(0, end - cfg_.mem_len) : E_;
    for (size_t l = 0; l < hids.size(); ++l)
      out.push_back(memory_window(M_ > 0 ? mems_[l] : Tensor(), hids[l], beg, end - beg));
    if (o_.n_cm == 0) return out;
    NoGradGuard no_grad;
    const int64_t B = hids[0].shape()[1], D = cfg_.d_model;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      std::vector<Tensor> parts;
      if (C_ > 0) parts.push_back(cms_[l]);
      if (new_cms_[l].defined()) parts.push_back(new_cms_[l]);
      Tensor cm = parts.empty()       ? Tensor::zeros({0, B, D}, params_.dtype(), params_.device())
                  : parts.size() == 1 ? parts[0]
                                      : concat(parts, 0);
      const int64_t n = cm.shape()[0], keep = std::min(n, o_.n_cm);
      out.push_back(contiguous_copy(narrow(cm, 0, n - keep, keep)));
    }
    return out;
  }

  // recon_weight * sum over layers of the mean squared reconstruction error.
  Tensor aux_loss() override { return recon_.defined() ? mul_scalar(recon_, o_.recon_weight) : Tensor(); }

 private:
  const Tensor& p(const std::string& name) const { return params_.get(name); }

  // old_mem = the first E rows of [memory; segment] (stop-gradient; mx holds them and,
  // for the dilated convolution, its lookahead rows after them). Its compression
  // becomes the state; in training it also feeds the reconstruction loss.
  // Whether this pass adds the attention-reconstruction loss (Alg. 2).
  bool reconstructs(const ForwardContext& ctx) const { return ctx.training && o_.recon && o_.has_parameters(); }

  void compress(int64_t l, const Tensor& mx, const RelativeAttentionOutput& a, ForwardContext& ctx) {
    if (!reconstructs(ctx)) {
      NoGradGuard no_grad;
      new_cms_[l] = contiguous_copy(f_c(l, mx, a.prob));
      return;
    }
    Tensor new_cm = f_c(l, mx, a.prob);
    new_cms_[l] = contiguous_copy(new_cm.detach());
    // Alg. 2 with the layer's q, k, v weights, all stop-gradient so only f_c learns. The
    // queries of the segment and the keys/values of old_mem are the attention's own
    // projections (rows C + M .. and C .. C + E of [cm; m; x]), detached.
    const int64_t B = mx.shape()[1], H = cfg_.n_head, Dh = cfg_.d_head, HD = H * Dh;
    Tensor q = permute(reshape(a.q.detach(), {T_, B, H, Dh}), {1, 2, 0, 3});
    Tensor target = content_attention(q, narrow(a.k.detach(), 0, C_, E_), narrow(a.v.detach(), 0, C_, E_));
    Tensor cm_in = new_cm;
    if (cfg_.pre_lnorm)  // the attention sees LN(cm), with the layer's (here detached) LN
      cm_in = layer_norm(new_cm, p(layer_key(l, "dec_attn.layer_norm.weight")).detach(),
                         p(layer_key(l, "dec_attn.layer_norm.bias")).detach(), 1e-5);
    Tensor wqkv = p(layer_key(l, "dec_attn.qkv_net.weight")).detach();
    Tensor approx =
        content_attention(q, linear(cm_in, narrow(wqkv, 0, HD, HD)), linear(cm_in, narrow(wqkv, 0, 2 * HD, HD)));
    Tensor diff = sub(target, approx);
    Tensor term = mean(mul(diff, diff));
    recon_ = recon_.defined() ? add(recon_, term) : term;
  }

  // f_c over the evicted rows mx[0, E) (E a multiple of c) -> [E / c, B, D].
  Tensor f_c(int64_t l, const Tensor& mx, const Tensor& prob) const {
    const int64_t c = o_.c, n = E_ / c, B = mx.shape()[1], D = mx.shape()[2];
    Tensor groups = reshape(narrow(mx, 0, 0, E_), {n, c, B, D});  // group g = rows g*c .. g*c + c - 1
    switch (o_.fn) {
      case Compression::mean_pool:
        return mean(groups, {1});
      case Compression::max_pool:
        return max(groups, {1});
      case Compression::conv: {
        // Conv1d(D, D, kernel c, stride c): weight[o, j*D + i] = conv.weight[o, i, j].
        Tensor flat = reshape(permute(groups, {0, 2, 1, 3}), {n, B, c * D});
        return linear(flat, p(compress_key(l, "weight")), p(compress_key(l, "bias")));
      }
      case Compression::dilated_conv: {
        // Kernel c, stride c, dilation c + 1: slot g reads row j of group g + j, j < c.
        Tensor ext = reshape(narrow(mx, 0, 0, E_ + o_.lookahead()), {n + c - 1, c, B, D});
        std::vector<Tensor> taps;
        for (int64_t j = 0; j < c; ++j) taps.push_back(reshape(narrow(narrow(ext, 0, j, n), 1, j, 1), {n, B, D}));
        return linear(concat(taps, 2), p(compress_key(l, "weight")), p(compress_key(l, "bias")));
      }
      case Compression::most_used:
        return most_used(mx, prob, n);
    }
    return Tensor();
  }

  // Per batch column, the n evicted rows that received the most attention in this
  // segment (probability mass averaged over heads and queries), in stream order.
  Tensor most_used(const Tensor& mx, const Tensor& prob, int64_t n) const {
    NoGradGuard no_grad;
    const int64_t B = mx.shape()[1], K = prob.shape()[3];
    std::vector<double> usage = mean(prob.detach(), {1, 2}).to_doubles();  // [B, K]
    std::vector<Tensor> columns;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> rows(static_cast<size_t>(E_));
      std::iota(rows.begin(), rows.end(), 0);
      auto used = [&](int64_t r) { return usage[static_cast<size_t>(b * K + C_ + r)]; };
      std::stable_sort(rows.begin(), rows.end(), [&](int64_t x, int64_t y) { return used(x) > used(y); });
      rows.resize(static_cast<size_t>(n));
      std::sort(rows.begin(), rows.end());
      Tensor idx = Tensor::from_vector<int64_t>({n}, rows).to(mx.device());
      columns.push_back(index_select(narrow(narrow(mx, 0, 0, E_), 1, b, 1), 0, idx));
    }
    return concat(columns, 1);
  }

  const ModelConfig& cfg_;
  const CompressiveOptions& o_;
  const ParameterSet& params_;
  int64_t T_, M_ = 0, C_ = 0, E_ = 0;
  std::vector<Tensor> mems_, cms_, new_cms_;
  Tensor mask_, r_, recon_;
};

class CompressiveAttention : public Attention {
 public:
  explicit CompressiveAttention(const ModelConfig& cfg) : cfg_(cfg), o_(cfg) {}

  void declare_shared(ParamTable& t) const override { declare_relative_shared(cfg_, t); }
  void declare_layer(int64_t l, ParamTable& t) const override {
    declare_relative_layer(cfg_, l, t);
    if (!o_.has_parameters()) return;
    const int64_t D = cfg_.d_model;
    t.add(compress_key(l, "weight"), {D, o_.c * D}, ParamInit::normal(0, cfg_.init_std));
    t.add(compress_key(l, "bias"), {D}, ParamInit::constant(0));
  }
  std::unique_ptr<AttentionPass> begin(const ParameterSet& params, const std::vector<Tensor>& state, int64_t T,
                                       int64_t B, ForwardContext& ctx) const override {
    return std::make_unique<CompressivePass>(cfg_, o_, params, state, T, ctx);
  }
  // transformer_xl's count plus c*D*D + D per layer for the convolutions.
  int64_t formula_parameter_count(int64_t V) const override {
    const int64_t D = cfg_.d_model, F = cfg_.d_inner;
    const int64_t compressor = o_.has_parameters() ? o_.c * D * D + D : 0;
    return cfg_.n_layer * (relative_layer_parameter_count(cfg_) + D * F + F + F * D + D + 4 * D + compressor) + V * D +
           V + relative_shared_parameter_count(cfg_);
  }
  // As transformer_xl over cmem_len + mem_len + T keys; the compressor and the
  // training-only reconstruction loss are projections and are not counted.
  double attention_flops_per_token(const ParameterSet&) const override {
    const double keys = static_cast<double>(o_.n_cm + cfg_.mem_len + cfg_.tgt_len);
    return 2.0 * 3.0 * keys * static_cast<double>(cfg_.n_head * cfg_.d_head);
  }

 private:
  ModelConfig cfg_;
  CompressiveOptions o_;
};

AttentionSpec compressive_spec() {
  AttentionSpec s;
  s.name = "compressive";
  s.summary = "Transformer-XL attention over [compressed memory; memory; segment] (Compressive Transformer)";
  s.reference = "Rae et al. 2019 (arXiv 1911.05507) Alg. 1-2 on kimiyoung's relative attention, MODELS.md §4";
  s.caps.segment_memory = true;
  s.caps.compressed_memory = true;
  s.caps.aux_loss = true;
  s.caps.incremental_decoding = true;
  s.style = StackStyle::txl;
  s.options = {
      {"cmem_len", int64_t{0}, 0, 1e9, {}, "compressed memory slots per layer (n_cm); 0 is transformer_xl", true},
      {"rate", int64_t{3}, 1, 1e9, {}, "compression rate c: c evicted memories become one slot"},
      {"compression",
       std::string("conv"),
       -INFINITY,
       INFINITY,
       {"mean_pool", "max_pool", "conv", "dilated_conv", "most_used"},
       "compression function f_c"},
      {"recon_loss",
       std::string("attention"),
       -INFINITY,
       INFINITY,
       {"attention", "none"},
       "train f_c with the attention-reconstruction loss (Alg. 2), or not at all",
       true},
      {"recon_weight", 1.0, 0.0, INFINITY, {}, "coefficient of the reconstruction loss (reaches only f_c)", true},
      {"positions",
       std::string("slot"),
       -INFINITY,
       INFINITY,
       {"slot"},
       "relative positions over [cm; m; x]: one TXL step per slot"},
      fused_attention_option(),
  };
  s.check = [](const ModelConfig& c) {
    std::vector<ConfigProblem> out;
    if (c.d_model % 2 != 0)
      out.push_back({"model.d_model", "must be even for sinusoidal positions, got " + std::to_string(c.d_model)});
    if (c.d_inner <= 0)
      out.push_back({"model.d_inner", "expected a positive integer, got " + std::to_string(c.d_inner)});
    if (attention_int(c, "cmem_len") > 0 && c.mem_len == 0)
      out.push_back({"model.mem_len", "compressive compresses what leaves the memory; with mem_len 0 nothing ever "
                                      "does (set mem_len > 0, or cmem_len 0 for plain Transformer-XL)"});
    const int64_t rate = attention_int(c, "rate");
    if (attention_string(c, "compression") == "dilated_conv" && attention_int(c, "cmem_len") > 0 &&
        c.mem_len < rate * (rate - 1))
      out.push_back({"model.mem_len", "dilated_conv reads rate * (rate - 1) = " + std::to_string(rate * (rate - 1)) +
                                          " rows past the evicted ones; mem_len must be at least that, got " +
                                          std::to_string(c.mem_len)});
    return out;
  };
  s.make = [](const ModelConfig& c) -> std::unique_ptr<Attention> { return std::make_unique<CompressiveAttention>(c); };
  return s;
}

TXL_REGISTER_ATTENTION(compressive_spec);

}  // namespace

}  // namespace txl
