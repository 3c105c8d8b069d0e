// Transformer-XL forward, written with the differentiable ops so backward comes from
// the tape. Follows MODELS.md §1 line by line; comments cite the reference behaviour.
#include "txl/models/transformer_xl.h"

#include <cmath>
#include <limits>

#include "txl/ops/attention.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {
std::string layer_key(int64_t l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }
}  // namespace

// Per-forward state: dropout settings and the running counter that gives every dropout
// site its own slice of the counter-based random stream.
struct TransformerXL::Ctx {
  bool training;
  uint64_t seed;
  uint64_t counter = 0;
  Tensor drop(const Tensor& x, double p) {
    if (!training || p == 0.0) return x;
    Tensor y = dropout(x, p, true, seed, counter);
    counter += static_cast<uint64_t>(x.numel());
    return y;
  }
};

TransformerXL::TransformerXL(const ModelConfig& cfg, int64_t vocab_size, DType dtype)
    : cfg_(cfg), vocab_(vocab_size), dtype_(dtype) {
  TXL_CHECK(cfg.d_model % 2 == 0, "model.d_model: must be even for sinusoidal positions, got {}", cfg.d_model);
  const int64_t D = cfg.d_model, HD = cfg.n_head * cfg.d_head, F = cfg.d_inner;
  params_.declare("r_w_bias", {cfg.n_head, cfg.d_head});
  params_.declare("r_r_bias", {cfg.n_head, cfg.d_head});
  params_.declare("word_emb.emb_layers.0.weight", {vocab_size, D});
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    params_.declare(layer_key(l, "dec_attn.qkv_net.weight"), {3 * HD, D});
    params_.declare(layer_key(l, "dec_attn.o_net.weight"), {D, HD});
    params_.declare(layer_key(l, "dec_attn.layer_norm.weight"), {D});
    params_.declare(layer_key(l, "dec_attn.layer_norm.bias"), {D});
    params_.declare(layer_key(l, "dec_attn.r_net.weight"), {HD, D});
    params_.declare(layer_key(l, "pos_ff.CoreNet.0.weight"), {F, D});
    params_.declare(layer_key(l, "pos_ff.CoreNet.0.bias"), {F});
    params_.declare(layer_key(l, "pos_ff.CoreNet.3.weight"), {D, F});
    params_.declare(layer_key(l, "pos_ff.CoreNet.3.bias"), {D});
    params_.declare(layer_key(l, "pos_ff.layer_norm.weight"), {D});
    params_.declare(layer_key(l, "pos_ff.layer_norm.bias"), {D});
  }
  params_.declare("crit.out_layers.0.bias", {vocab_size});
  params_.finalize(dtype);
}

int64_t TransformerXL::parameter_count(const ModelConfig& c, int64_t V) {
  const int64_t D = c.d_model, HD = c.n_head * c.d_head, F = c.d_inner;
  return c.n_layer * (5 * D * HD + D * F + F + F * D + D + 4 * D) + V * D + V + 2 * HD;
}

void TransformerXL::init_weights(uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  for (auto& [name, t] : params_.named()) {
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool is_ln_weight = name.find("layer_norm.weight") != std::string::npos;
    Tensor v;
    if (is_bias) {
      v = Tensor::zeros(t.shape(), dtype_);
    } else {
      // Linear, embedding and r biases ~ N(0, init_std); LayerNorm weights ~ N(1, init_std).
      v = Tensor::randn(t.shape(), gen, dtype_, cfg_.init_std);
      if (is_ln_weight) v = add_scalar(v, 1.0);
    }
    Tensor dst = t.detach();
    copy_(dst, v);
  }
}

void TransformerXL::set_lengths(int64_t mem_len, bool same_length, int64_t clamp_len) {
  cfg_.mem_len = mem_len;
  cfg_.same_length = same_length;
  cfg_.clamp_len = clamp_len;
}

// R [klen, D]: [sin | cos] halves over the descending positions klen-1 .. 0, clamped.
Tensor TransformerXL::positional(int64_t klen) const {
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
  return to_dtype(Tensor::from_vector<double>({klen, D}, r), dtype_);
}

// True = masked. Default: key j is masked for query i iff j > mlen + i. same_length
// also masks the keys more than mem_len back, exactly as the reference builds it.
Tensor TransformerXL::attention_mask(int64_t qlen, int64_t mlen) const {
  const int64_t klen = mlen + qlen;
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


Tensor TransformerXL::attention(int64_t l, const Tensor& w, const Tensor& r, const Tensor& mem, const Tensor& mask,
                                Ctx& ctx) const {
  const int64_t T = w.shape()[0], B = w.shape()[1], H = cfg_.n_head, Dh = cfg_.d_head, HD = H * Dh;
  Tensor cat = mem.defined() && mem.shape()[0] > 0 ? concat({mem, w}, 0) : w;
  const int64_t K = cat.shape()[0];
  const Tensor& ln_w = p(layer_key(l, "dec_attn.layer_norm.weight"));
  const Tensor& ln_b = p(layer_key(l, "dec_attn.layer_norm.bias"));
  if (cfg_.pre_lnorm) cat = layer_norm(cat, ln_w, ln_b, 1e-5);  // memories normalised too

  Tensor w_heads = linear(cat, p(layer_key(l, "dec_attn.qkv_net.weight")));  // [K, B, 3HD]
  Tensor r_head_k = reshape(linear(r, p(layer_key(l, "dec_attn.r_net.weight"))), {K, H, Dh});
  std::vector<Tensor> qkv = split(w_heads, {HD, HD, HD}, 2);
  Tensor q = reshape(narrow(qkv[0], 0, K - T, T), {T, B, H, Dh});  // queries of the segment only
  Tensor k = reshape(qkv[1], {K, B, H, Dh});
  Tensor v = reshape(qkv[2], {K, B, H, Dh});

  // Scores in [B, H, T, K]: content term with u = r_w_bias, position term with v = r_r_bias.
  Tensor ac = matmul(permute(add(q, p("r_w_bias")), {1, 2, 0, 3}), permute(k, {1, 2, 3, 0}));
  Tensor bd = matmul(permute(add(q, p("r_r_bias")), {1, 2, 0, 3}), permute(r_head_k, {1, 2, 0}));
  // softmax(mask(scale * (AC + rel_shift(BD)))) fused: the reference's _rel_shift
  // garbage entries are exactly the ones the causal mask removes.
  Tensor prob = ctx.drop(rel_attn_probs(ac, bd, mask, 1.0 / std::sqrt(static_cast<double>(Dh))), cfg_.dropatt);

  Tensor vec = matmul(prob, permute(v, {1, 2, 0, 3}));  // [B, H, T, Dh]
  vec = reshape(permute(vec, {2, 0, 1, 3}), {T, B, HD});
  Tensor out = ctx.drop(linear(vec, p(layer_key(l, "dec_attn.o_net.weight"))), cfg_.dropout);
  return cfg_.pre_lnorm ? add(w, out) : layer_norm(add(w, out), ln_w, ln_b, 1e-5);
}

Tensor TransformerXL::feed_forward(int64_t l, const Tensor& x, Ctx& ctx) const {
  const Tensor& ln_w = p(layer_key(l, "pos_ff.layer_norm.weight"));
  const Tensor& ln_b = p(layer_key(l, "pos_ff.layer_norm.bias"));
  Tensor in = cfg_.pre_lnorm ? layer_norm(x, ln_w, ln_b, 1e-5) : x;
  Tensor h = ctx.drop(relu(linear(in, p(layer_key(l, "pos_ff.CoreNet.0.weight")), p(layer_key(l, "pos_ff.CoreNet.0.bias")))),
                      cfg_.dropout);
  Tensor core = ctx.drop(linear(h, p(layer_key(l, "pos_ff.CoreNet.3.weight")), p(layer_key(l, "pos_ff.CoreNet.3.bias"))),
                         cfg_.dropout);
  return cfg_.pre_lnorm ? add(x, core) : layer_norm(add(x, core), ln_w, ln_b, 1e-5);
}

std::vector<Tensor> TransformerXL::update_mems(const std::vector<Tensor>& hids, const std::vector<Tensor>& mems,
                                               int64_t mlen, int64_t qlen) const {
  std::vector<Tensor> out;
  if (cfg_.mem_len <= 0) return out;
  NoGradGuard no_grad;
  const int64_t end = mlen + qlen, beg = std::max<int64_t>(0, end - cfg_.mem_len);
  for (size_t l = 0; l < hids.size(); ++l) {
    Tensor cat = mlen > 0 ? concat({mems[l], hids[l].detach()}, 0) : hids[l].detach();
    out.push_back(contiguous_copy(narrow(cat, 0, beg, end - beg)));
  }
  return out;
}

ForwardResult TransformerXL::forward(const Tensor& input, const Tensor& target, const std::vector<Tensor>& mems,
                                     const ForwardOptions& opt) const {
  TXL_CHECK(input.dim() == 2 && is_integer(input.dtype()), "transformer_xl: input must be [T, B] of ids, got {} {}",
            dtype_name(input.dtype()), shape_str(input.shape()));
  TXL_CHECK(mems.empty() || static_cast<int64_t>(mems.size()) == cfg_.n_layer + 1,
            "transformer_xl: expected {} memories, got {}", cfg_.n_layer + 1, mems.size());
  const int64_t T = input.shape()[0];
  const int64_t M = mems.empty() ? 0 : mems[0].shape()[0];
  Ctx ctx{opt.training, opt.seed};

  const Tensor& emb = p("word_emb.emb_layers.0.weight");
  Tensor h = mul_scalar(embedding(emb, input), std::sqrt(static_cast<double>(cfg_.d_model)));
  Tensor mask = attention_mask(T, M);
  h = ctx.drop(h, cfg_.dropout);
  Tensor r = ctx.drop(positional(M + T), cfg_.dropout);

  std::vector<Tensor> hids{h};
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    h = attention(l, h, r, mems.empty() ? Tensor() : mems[l], mask, ctx);
    h = feed_forward(l, h, ctx);
    hids.push_back(h);
  }
  ForwardResult out;
  Tensor z = ctx.drop(h, cfg_.dropout);
  Tensor logits = linear(z, emb, p("crit.out_layers.0.bias"));
  if (opt.want_logits) out.logits = logits;
  if (opt.want_loss && target.defined()) out.loss = cross_entropy(logits, target, Reduction::none);
  out.mems = update_mems(hids, mems, M, T);
  return out;
}

}  // namespace txl
