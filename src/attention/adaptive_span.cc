// adaptive_span: facebookresearch/adaptive-span SeqAttention + AdaptiveSpan (+
// PersistentMemory for all-attention), MODELS.md §2-§3. Learned relative key
// embeddings key_pe shared by all layers and heads, the unskew/skew band geometry (a
// token never attends to itself), the soft ramp mask with a learned span per head
// applied after the softmax and renormalised, the span loss, the clamp of spans after
// each step, trimming of keys to the largest current span (multiples of 64), the
// adaptive cache, zero caches at the start, and optional persistent key/value vectors
// in a joint softmax with the feed-forward sublayers removed.
#include <algorithm>
#include <cmath>

#include "txl/attention/attention.h"
#include "txl/backend/precision.h"
#include "txl/ops/attention.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

std::string layer_key(int64_t l, const std::string& rest) { return "layers." + std::to_string(l) + "." + rest; }
std::string span_key(int64_t l) { return layer_key(l, "attn.attn.adaptive_span._mask.current_val"); }
std::string pers_key(int64_t l, const char* kv) { return layer_key(l, "attn.attn.persistent_memory.") + kv; }

struct SpanOptions {
  int64_t S, R, N;
  double init, loss;
  bool adapt, cache;
  explicit SpanOptions(const ModelConfig& c)
      : S(attention_int(c, "span")),
        R(attention_int(c, "ramp")),
        N(attention_int(c, "pers_mem_size")),
        init(attention_double(c, "init")),
        loss(attention_double(c, "span_loss")),
        adapt(attention_bool(c, "adapt_span")),
        cache(attention_bool(c, "cache")) {}
};

// The trim length and cache size of one layer from its spans z' (adaptive_span.py
// get_trim_len / get_cache_size).
struct LayerGeometry {
  int64_t trim = 0;   // distances dropped from the far end, a multiple of 64
  int64_t cache = 0;  // rows of the cache carried to the next block
};

LayerGeometry geometry(const SpanOptions& o, const std::vector<double>& z) {
  LayerGeometry g{0, o.S};
  if (!o.adapt) return g;
  const double zmax = *std::max_element(z.begin(), z.end());
  const int64_t max_size =
      std::clamp<int64_t>(static_cast<int64_t>(std::ceil(zmax * static_cast<double>(o.S))) + o.R, 0, o.S);
  g.trim = std::min(o.S - 1, o.S - max_size) / 64 * 64;
  if (o.cache) g.cache = std::min(o.S, o.S - g.trim + 64);
  return g;
}

std::vector<double> host_values(const Tensor& t) { return t.detach().to_doubles(); }

class SpanPass : public AttentionPass {
 public:
  SpanPass(const ModelConfig& cfg, const SpanOptions& o, const ParameterSet& params, const std::vector<Tensor>& state,
           int64_t T, int64_t B)
      : cfg_(cfg), o_(o), params_(params), T_(T) {
    const int64_t L = cfg.n_layer;
    TXL_CHECK(state.empty() || static_cast<int64_t>(state.size()) == L,
              "adaptive_span: expected {} caches, got {}", L, state.size());
    for (int64_t l = 0; l < L; ++l) {
      geo_.push_back(geometry(o, o.adapt ? host_values(params.get(span_key(l))) : std::vector<double>{0.0}));
      // Caches start as zeros (main.py / full_eval), so early queries see zero keys.
      caches_.push_back(state.empty() ? Tensor::zeros({geo_[l].cache, B, cfg.d_model}, params.dtype(), params.device()) : state[l]);
    }
  }

  Tensor layer(int64_t l, const Tensor& x, const std::function<Tensor(const Tensor&)>&, ForwardContext& ctx) override {
    const int64_t M = T_, B = x.shape()[1], H = cfg_.n_head, Dh = cfg_.d_head, D = cfg_.d_model, S = o_.S;
    const Tensor& cache = caches_[l];
    const int64_t c = cache.shape()[0], t = geo_[l].trim, Lw = S - t;
    // trim_memory: keep the last S - t cache rows; a short cache is left-padded with zeros.
    // The reference projects the whole cache and then drops rows; projections are
    // row-wise, so dropping them first gives the same keys for less work.
    const int64_t tc = t - (S - c);
    Tensor kept = tc > 0 ? narrow(cache, 0, tc, c - tc) : cache;
    // Keys and values over [kept cache; x], [min(c, Lw) + M, B, D]; the cache rows take
    // no gradient, so none is formed for them (linear_rows).
    const bool cached = kept.shape()[0] > 0;
    Tensor full = cached ? concat_operand({kept, x.detach()}) : x;  // read by both products
    // Dropout on the weights needs them as a tensor: training with dropout runs unfused.
    // The fused kernel is CPU-only. Where it multiplies in bf16 it reads keys and values
    // only rounded to bf16, so their products write them so (unless they are padded
    // below, which bf16 does not support); in a bf16 run it writes its output (for
    // proj_out) and the q, k, v gradients (for their products) in bf16.
    const bool fused = attention_bool(cfg_, "fused") && (!ctx.training || cfg_.dropout == 0.0) && x.device().is_cpu();
    const bool kv_operands = fused && tc >= 0 && fused_attention_rounds_to_bf16();
    auto project = [&](const Tensor& w) {
      return cached ? linear_rows(full, x, w, kv_operands) : linear(x, w, Tensor(), kv_operands);
    };
    Tensor q = linear(x, p(layer_key(l, "attn.proj_query.weight")));
    Tensor k = project(p(layer_key(l, "attn.proj_key.weight")));
    Tensor v = project(p(layer_key(l, "attn.proj_val.weight")));
    if (tc < 0) {
      k = pad(k, {{-tc, 0}});
      v = pad(v, {{-tc, 0}});
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
    Tensor pe = narrow(reshape(p("key_pe"), {Dh, S}), 1, t, Lw);  // [Dh, Lw]: column j serves distance Lw - j
    Tensor pk = o_.N > 0 ? mul_scalar(p(pers_key(l, "key")), std::sqrt(static_cast<double>(Dh))) : Tensor();  // [H, Dh, N]
    Tensor pv = o_.N > 0 ? mul_scalar(p(pers_key(l, "val")), std::sqrt(static_cast<double>(o_.N))) : Tensor();  // [H, N, Dh]
    if (fused) {
      Tensor out = fused_span_attention(reshape(q, {M, B, H, Dh}), reshape(k, {Lw + M, B, H, Dh}),
                                        reshape(v, {Lw + M, B, H, Dh}), pe, o_.adapt ? mask(l, t, Lw) : Tensor(), pk,
                                        pv, scale, /*operands_only=*/tc >= 0);
      return linear(reshape(out, {M, B, D}), p(layer_key(l, "attn.proj_out.weight")));
    }
    Tensor qh = permute(reshape(q, {M, B, H, Dh}), {1, 2, 0, 3});  // [B, H, M, Dh]
    Tensor kh = permute(reshape(k, {Lw + M, B, H, Dh}), {1, 2, 3, 0});  // [B, H, Dh, Lw + M]
    Tensor vh = permute(reshape(v, {Lw + M, B, H, Dh}), {1, 2, 0, 3});  // [B, H, Lw + M, Dh]

    // Column j of the band is distance Lw - j; key_pe column S - d serves distance d.
    Tensor cont = band(matmul(qh, kh), Lw);                                  // [B, H, M, Lw]
    Tensor scores = add(cont, matmul(qh, pe));
    if (o_.N > 0) {
      scores = concat({scores, matmul(qh, unsqueeze(pk, 0))}, 3);
    }
    Tensor a = softmax(mul_scalar(scores, scale));
    Tensor ac = o_.N > 0 ? narrow(a, 3, 0, Lw) : a;
    Tensor ap = o_.N > 0 ? narrow(a, 3, Lw, o_.N) : Tensor();
    if (o_.adapt) {
      ac = mul(ac, reshape(mask(l, t, Lw), {1, H, 1, Lw}));
      Tensor denom = sum(ac, {3}, true);
      if (o_.N > 0) denom = add(denom, sum(ap, {3}, true));
      denom = add_scalar(denom, 1e-8);
      ac = div(ac, denom);
      if (o_.N > 0) ap = div(ap, denom);
    }
    ac = ctx.drop(ac, cfg_.dropout);
    Tensor out = matmul(unband(ac, Lw + M), vh);  // [B, H, M, Dh]
    if (o_.N > 0) {
      out = add(out, matmul(ctx.drop(ap, cfg_.dropout), unsqueeze(pv, 0)));
    }
    out = reshape(permute(out, {2, 0, 1, 3}), {M, B, D});
    return linear(out, p(layer_key(l, "attn.proj_out.weight")));
  }

  // The next cache from the layer input: the last cs - M old rows and the block, or the
  // last cs rows of the block (models.py: computed before the layer runs).
  std::vector<Tensor> next_state(const std::vector<Tensor>& hids) override {
    NoGradGuard no_grad;
    std::vector<Tensor> out;
    const int64_t M = T_;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      const int64_t cs = geo_[l].cache, c = caches_[l].shape()[0];
      Tensor h = hids[l].detach();
      if (cs > M) {
        const int64_t keep = std::min(c, cs - M);
        out.push_back(contiguous_copy(concat({narrow(caches_[l], 0, c - keep, keep), h}, 0)));
      } else {
        out.push_back(contiguous_copy(narrow(h, 0, M - cs, cs)));
      }
    }
    return out;
  }

  // lambda * S * mean over heads of z', summed over layers (adaptive_span.py).
  Tensor aux_loss() override {
    if (!o_.adapt || o_.loss == 0.0) return Tensor();
    Tensor total;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      Tensor term = mul_scalar(mean(p(span_key(l))), o_.loss * static_cast<double>(o_.S));
      total = total.defined() ? add(total, term) : term;
    }
    return total;
  }

 private:
  const Tensor& p(const std::string& name) const { return params_.get(name); }

  // m(d) = clamp((template + z' S) / R + 1, 0, 1) over the retained window, template =
  // linspace(1 - S, 0, S) (its last Lw entries): [H, Lw].
  Tensor mask(int64_t l, int64_t t, int64_t Lw) const {
    std::vector<double> tmpl(static_cast<size_t>(Lw));
    for (int64_t j = 0; j < Lw; ++j) tmpl[j] = static_cast<double>(1 - o_.S + t + j);
    Tensor templ = to_dtype(Tensor::from_vector<double>({1, Lw}, tmpl), params_.dtype()).to(params_.device());
    Tensor z = reshape(p(span_key(l)), {cfg_.n_head, 1});
    Tensor m = add(templ, mul_scalar(z, static_cast<double>(o_.S)));
    return clamp(add_scalar(mul_scalar(m, 1.0 / static_cast<double>(o_.R)), 1.0), 0.0, 1.0);
  }

  const ModelConfig& cfg_;
  const SpanOptions& o_;
  const ParameterSet& params_;
  int64_t T_;
  std::vector<LayerGeometry> geo_;
  std::vector<Tensor> caches_;
};

class SpanAttention : public Attention {
 public:
  explicit SpanAttention(const ModelConfig& cfg) : cfg_(cfg), o_(cfg) {}

  void declare_shared(ParamTable& t) const override {
    t.add("key_pe", {1, cfg_.d_head, o_.S}, ParamInit::normal(0, 1));
  }
  void declare_layer(int64_t l, ParamTable& t) const override {
    const int64_t D = cfg_.d_model, H = cfg_.n_head, Dh = cfg_.d_head;
    const ParamInit w = ParamInit::uniform(1.0 / std::sqrt(static_cast<double>(D)));
    if (o_.adapt) t.add(span_key(l), {H, 1, 1}, ParamInit::constant(o_.init));
    for (const char* proj : {"proj_query", "proj_key", "proj_val", "proj_out"})
      t.add(layer_key(l, std::string("attn.") + proj + ".weight"), {D, D}, w);
    if (o_.N > 0) {
      t.add(pers_key(l, "key"), {H, Dh, o_.N}, ParamInit::normal(0, 1.0 / std::sqrt(static_cast<double>(Dh))));
      t.add(pers_key(l, "val"), {H, o_.N, Dh}, ParamInit::normal(0, 1.0 / std::sqrt(static_cast<double>(o_.N))));
    }
  }
  bool has_feed_forward() const override { return o_.N == 0; }

  std::unique_ptr<AttentionPass> begin(const ParameterSet& params, const std::vector<Tensor>& state, int64_t T,
                                       int64_t B, ForwardContext&) const override {
    return std::make_unique<SpanPass>(cfg_, o_, params, state, T, B);
  }

  // trainer.py: z' <- clamp(z', 0, 1) after every optimizer step.
  void after_step(ParameterSet& params) const override {
    if (!o_.adapt) return;
    NoGradGuard no_grad;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      Tensor z = params.get(span_key(l)).detach();
      copy_(z, clamp(z, 0.0, 1.0));
      bf16_copy_refresh(z);
    }
  }

  int64_t formula_parameter_count(int64_t V) const override {
    const int64_t D = cfg_.d_model, F = cfg_.d_inner, H = o_.adapt ? cfg_.n_head : 0, N = o_.N;
    const int64_t layer = N > 0 ? 4 * D * D + 2 * D * N + 2 * D + H : 4 * D * D + 2 * D * F + F + D + 4 * D + H;
    return cfg_.n_layer * layer + 2 * V * D + V + cfg_.d_head * o_.S;
  }

  // Scores over the trimmed window plus the block (the band is cut from a full
  // product), the position term, the weighted sum, and the persistent vectors.
  double attention_flops_per_token(const ParameterSet& params) const override {
    double total = 0.0;
    const double D = static_cast<double>(cfg_.d_model), M = static_cast<double>(cfg_.tgt_len);
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      const double Lw = static_cast<double>(o_.S - geometry(o_, spans(params, l)).trim);
      total += 2.0 * D * (2.0 * (Lw + M) + Lw + 2.0 * static_cast<double>(o_.N));
    }
    return total / static_cast<double>(cfg_.n_layer);
  }

  std::vector<std::pair<std::string, std::vector<std::vector<double>>>> report(
      const ParameterSet& params) const override {
    if (!o_.adapt) return {};
    std::vector<std::vector<double>> per_layer;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      std::vector<double> z = spans(params, l);
      for (double& v : z) v *= static_cast<double>(o_.S);
      per_layer.push_back(z);
    }
    return {{"span", per_layer}};
  }

 private:
  std::vector<double> spans(const ParameterSet& params, int64_t l) const {
    return o_.adapt ? host_values(params.get(span_key(l))) : std::vector<double>{0.0};
  }

  ModelConfig cfg_;
  SpanOptions o_;
};

AttentionSpec adaptive_span_spec() {
  AttentionSpec s;
  s.name = "adaptive_span";
  s.summary = "learned span per head over a cache, optional persistent memory (adaptive span, all-attention)";
  s.reference = "facebookresearch/adaptive-span TransformerSeq, MODELS.md §2-§3";
  s.caps.segment_memory = true;
  s.caps.persistent_memory = true;
  s.caps.aux_loss = true;
  s.caps.incremental_decoding = true;
  s.style = StackStyle::seq;
  s.eval_whole_blocks = true;
  s.options = {
      {"span", int64_t{1024}, 1, 1e9, {}, "maximum span S (distances a query may attend to)"},
      {"adapt_span", true, -INFINITY, INFINITY, {}, "learn a span per head (else every head sees S)"},
      {"ramp", int64_t{32}, 1, 1e9, {}, "length R of the soft mask's ramp"},
      {"init", 0.0, 0.0, 1.0, {}, "initial span as a fraction z' of S", true},
      {"span_loss", 0.0, 0.0, INFINITY, {}, "coefficient lambda of the span loss lambda * S * mean(z')", true},
      {"cache", true, -INFINITY, INFINITY, {}, "shrink the cache to the largest current span (adapt-span-cache)", true},
      {"pers_mem_size", int64_t{0}, 0, 1e9, {}, "persistent key/value vectors per head; > 0 removes the FF sublayers"},
      fused_attention_option(),
  };
  s.check = [](const ModelConfig& c) {
    std::vector<ConfigProblem> out;
    if (c.n_head * c.d_head != c.d_model)
      out.push_back({"model.d_head", "adaptive_span needs n_head * d_head == d_model (" + std::to_string(c.n_head) +
                                         " * " + std::to_string(c.d_head) + " != " + std::to_string(c.d_model) + ")"});
    if (attention_int(c, "pers_mem_size") == 0 && c.d_inner <= 0)
      out.push_back({"model.d_inner", "expected a positive integer (the feed-forward size), got " + std::to_string(c.d_inner)});
    if (c.pre_lnorm) out.push_back({"model.pre_lnorm", "adaptive_span is post-LN only (TransformerSeq); set false"});
    if (c.same_length) out.push_back({"model.same_length", "not used by adaptive_span; set false"});
    if (c.clamp_len > 0) out.push_back({"model.clamp_len", "not used by adaptive_span; remove it"});
    if (c.dropatt != 0.0)
      out.push_back({"model.dropatt", "adaptive_span drops attention probabilities with model.dropout; set 0"});
    return out;
  };
  s.make = [](const ModelConfig& c) -> std::unique_ptr<Attention> { return std::make_unique<SpanAttention>(c); };
  return s;
}

TXL_REGISTER_ATTENTION(adaptive_span_spec);

}  // namespace

}  // namespace txl
