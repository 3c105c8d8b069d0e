// Transformer-XL's relative attention, shared by transformer_xl and compressive
// (see relative_attention.h). Written with the differentiable ops: either the one
// fused_rel_attention op, or matmuls around rel_attn_probs (rel-shift, mask, softmax).
#include "attention/relative_attention.h"

#include <cmath>

#include "txl/backend/precision.h"
#include "txl/ops/attention.h"
#include "txl/ops/ops.h"

namespace txl {

std::string layer_key(int64_t l, const std::string& rest) { return "layers." + std::to_string(l) + "." + rest; }

void declare_relative_shared(const ModelConfig& cfg, ParamTable& t) {
  t.add("r_w_bias", {cfg.n_head, cfg.d_head}, ParamInit::normal(0, cfg.init_std));
  t.add("r_r_bias", {cfg.n_head, cfg.d_head}, ParamInit::normal(0, cfg.init_std));
}

void declare_relative_layer(const ModelConfig& cfg, int64_t l, ParamTable& t) {
  const int64_t D = cfg.d_model, HD = cfg.n_head * cfg.d_head;
  const ParamInit w = ParamInit::normal(0, cfg.init_std);
  t.add(layer_key(l, "dec_attn.qkv_net.weight"), {3 * HD, D}, w);
  t.add(layer_key(l, "dec_attn.o_net.weight"), {D, HD}, w);
  t.add(layer_key(l, "dec_attn.r_net.weight"), {HD, D}, w);
}

int64_t relative_shared_parameter_count(const ModelConfig& cfg) { return 2 * cfg.n_head * cfg.d_head; }
int64_t relative_layer_parameter_count(const ModelConfig& cfg) { return 5 * cfg.d_model * cfg.n_head * cfg.d_head; }

Tensor sinusoid_positions(int64_t klen, int64_t D, int64_t clamp_len, DType dtype) {
  const int64_t half = D / 2;
  std::vector<double> r(static_cast<size_t>(klen * D));
  for (int64_t c = 0; c < klen; ++c) {
    double pos = static_cast<double>(klen - 1 - c);
    if (clamp_len > 0) pos = std::min(pos, static_cast<double>(clamp_len));
    for (int64_t k = 0; k < half; ++k) {
      double inv_freq = 1.0 / std::pow(10000.0, static_cast<double>(2 * k) / static_cast<double>(D));
      r[c * D + k] = std::sin(pos * inv_freq);
      r[c * D + half + k] = std::cos(pos * inv_freq);
    }
  }
  return to_dtype(Tensor::from_vector<double>({klen, D}, r), dtype);
}

Tensor relative_mask(int64_t qlen, int64_t klen, bool same_length, int64_t window) {
  std::vector<uint8_t> m(static_cast<size_t>(qlen * klen));
  const int64_t mlen = klen - qlen;
  for (int64_t i = 0; i < qlen; ++i)
    for (int64_t j = 0; j < klen; ++j) {
      const int64_t delta = mlen + i - j;
      m[i * klen + j] = delta < 0 || (same_length && delta >= window);
    }
  return Tensor::from_vector<uint8_t>({qlen, klen}, m);
}

bool use_fused_attention(const ModelConfig& cfg, bool need_prob, const ForwardContext& ctx, Device device) {
  // Dropout on the probabilities needs them as a tensor.
  return attention_bool(cfg, "fused") && !need_prob && (!ctx.training || cfg.dropatt == 0.0) && device.is_cpu();
}

RelativeAttentionOutput relative_attention(const ModelConfig& cfg, const ParameterSet& params, int64_t l,
                                           const Tensor& cat, const Tensor& segment, int64_t T, const Tensor& r,
                                           const Tensor& mask, ForwardContext& ctx, bool need_prob, bool need_kv) {
  const int64_t K = cat.shape()[0], B = cat.shape()[1], H = cfg.n_head, Dh = cfg.d_head, HD = H * Dh;
  auto p = [&](const std::string& name) -> const Tensor& { return params.get(name); };
  RelativeAttentionOutput res;
  // qkv_net's rows are the q, k and v projections. The reference projects every row of
  // cat with all of them and keeps the queries of the last T rows; separate products give
  // the same values without computing the K - T unused queries, and without a split
  // whose backward zero-fills a full-width [K, B, 3HD] gradient per piece and sums them.
  // The fused core takes keys and values stacked, so its k and v rows (adjacent in
  // qkv_net) are one product of twice the width, with one gradient.
  const Tensor& w_qkv = p(layer_key(l, "dec_attn.qkv_net.weight"));  // [3HD, D]
  const bool fused = use_fused_attention(cfg, need_prob, ctx, cat.device());
  // Where the fused core multiplies in bf16 it reads keys and values only rounded to
  // bf16: their product then writes them so (unless the caller reads them).
  const bool kv_operands = fused && !need_kv && fused_attention_rounds_to_bf16();
  // The rows before the segment take no gradient: with a segment, the key and value
  // products form input gradients for the segment's rows only.
  const Tensor rows = segment.defined() ? matmul_operand(cat) : cat;  // segment_rows made it already
  auto project = [&](const Tensor& from, const Tensor& weight, bool operands) {
    return segment.defined() ? linear_rows(from, segment, weight, operands) : linear(from, weight, Tensor(), operands);
  };
  // cat's last T rows are the segment's values: the queries read them from rows too.
  const Tensor q_proj = project(K == T ? rows : narrow(rows, 0, K - T, T), narrow(w_qkv, 0, 0, HD), false);
  // The fused core gives q a bf16 gradient in bf16 runs, which nothing else may add to.
  res.q = fused ? q_proj.detach() : q_proj;
  Tensor kv;  // [K, B, 2HD] (fused)
  if (fused) {
    kv = project(rows, narrow(w_qkv, 0, HD, 2 * HD), kv_operands);
    if (need_kv) {
      res.k = narrow(kv.detach(), 2, 0, HD);
      res.v = narrow(kv.detach(), 2, HD, HD);
    }
  } else {
    res.k = project(rows, narrow(w_qkv, 0, HD, HD), false);
    res.v = project(rows, narrow(w_qkv, 0, 2 * HD, HD), false);
  }
  Tensor r_head_k = reshape(linear(r, p(layer_key(l, "dec_attn.r_net.weight"))), {K, H, Dh});
  Tensor q = reshape(q_proj, {T, B, H, Dh});

  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  Tensor vec;  // [T, B, HD]
  if (fused) {
    // The core's output feeds o_net only, and the gradients of q and kv reach only their
    // products (the caller reads q and kv detached, if at all).
    vec = reshape(fused_rel_attention(q, reshape(kv, {K, B, 2, H, Dh}), r_head_k, p("r_w_bias"), p("r_r_bias"), mask,
                                      scale, /*operands_only=*/true),
                  {T, B, HD});
  } else {
    Tensor k = reshape(res.k, {K, B, H, Dh});
    Tensor v = reshape(res.v, {K, B, H, Dh});
    // Scores in [B, H, T, K]: content term with u = r_w_bias, position term with v = r_r_bias.
    Tensor ac = matmul(permute(add(q, p("r_w_bias")), {1, 2, 0, 3}), permute(k, {1, 2, 3, 0}));
    Tensor bd = matmul(permute(add(q, p("r_r_bias")), {1, 2, 0, 3}), permute(r_head_k, {1, 2, 0}));
    // softmax(mask(scale * (AC + rel_shift(BD)))) fused: the reference's _rel_shift
    // garbage entries are exactly the ones the causal mask removes.
    res.prob = rel_attn_probs(ac, bd, mask, scale);
    Tensor prob = ctx.drop(res.prob, cfg.dropatt);
    vec = matmul(prob, permute(v, {1, 2, 0, 3}));  // [B, H, T, Dh]
    vec = reshape(permute(vec, {2, 0, 1, 3}), {T, B, HD});
  }
  res.out = ctx.drop(linear(vec, p(layer_key(l, "dec_attn.o_net.weight"))), cfg.dropout);
  return res;
}

SegmentRows segment_rows(const std::vector<Tensor>& parts, const Tensor& w,
                         const std::function<Tensor(const Tensor&)>& norm, bool pre_lnorm) {
  std::vector<Tensor> rows;
  for (const Tensor& t : parts)
    if (t.defined() && t.shape()[0] > 0) rows.push_back(t);
  if (rows.empty()) return {norm(w), Tensor()};
  if (pre_lnorm) {
    rows.push_back(w);
    return {norm(concat(rows, 0)), Tensor()};
  }
  rows.push_back(w.detach());
  return {concat_operand(rows), w};  // the products read it only in their precision
}

Tensor stacked_rows(const Tensor& mem, const Tensor& h, int64_t beg, int64_t len) {
  NoGradGuard no_grad;
  const int64_t m = mem.defined() ? mem.shape()[0] : 0;
  if (beg >= m) return narrow(h.detach(), 0, beg - m, len);
  if (beg + len <= m) return narrow(mem.detach(), 0, beg, len);
  return concat({narrow(mem.detach(), 0, beg, m - beg), narrow(h.detach(), 0, 0, beg + len - m)}, 0);
}

Tensor memory_window(const Tensor& mem, const Tensor& h, int64_t beg, int64_t len) {
  // Copied once: straight from h or mem when the window lies in one of them (with
  // mem_len = tgt_len it is all of h); a concatenation is already fresh.
  Tensor rows = stacked_rows(mem, h, beg, len);
  const bool view = rows.same_storage(h) || (mem.defined() && rows.same_storage(mem));
  if (!view) return rows;
  NoGradGuard no_grad;
  return contiguous_copy(rows);
}

}  // namespace txl
