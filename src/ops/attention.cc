// Forward and backward of the fused attention ops; kernels live in the backend.
#include "txl/ops/attention.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"

namespace txl {

namespace {

// Whether a fused core whose caller allows it (operands_only) writes its output and its
// q / k / v gradients in bf16: a CPU run of bf16 products with fp32 queries.
bool bf16_operands(const Tensor& q, bool operands_only) {
  return operands_only && matmul_precision() == MatmulPrecision::bf16 && q.device().is_cpu() &&
         q.dtype() == DType::f32;
}

}  // namespace

Tensor rel_attn_probs(const Tensor& ac, const Tensor& bd_raw, const Tensor& mask, double scale) {
  Tensor p = backend_of(ac).rel_attn_probs(ac, bd_raw, mask, scale);
  if (needs_record({&ac, &bd_raw})) {
    record(p, "rel_attn_probs", {&ac, &bd_raw}, [pd = p.detach(), md = mask.detach(), scale](const Tensor& g) {
      auto [gac, gbd] = backend_of(g).rel_attn_probs_backward(pd, g, md, scale);
      return std::vector<Tensor>{gac, gbd};
    });
  }
  return p;
}

Tensor fused_rel_attention(const Tensor& q, const Tensor& kv, const Tensor& rk, const Tensor& u, const Tensor& w,
                           const Tensor& mask, double scale, bool operands_only) {
  RelAttentionInputs in{q.detach(), kv.detach(), rk.detach(), u.detach(), w.detach()};
  in.bf16_operands = bf16_operands(q, operands_only);
  FusedRelAttention res = backend_of(q).fused_rel_attention(in, mask, scale);
  if (needs_record({&q, &kv, &rk, &u, &w})) {
    record(res.out, "fused_rel_attention", {&q, &kv, &rk, &u, &w},
           [in, md = mask.detach(), lse = res.lse, scale](const Tensor& g) {
             RelAttentionGrads gr = backend_of(g).fused_rel_attention_backward(in, md, scale, lse, g);
             return std::vector<Tensor>{gr.q, gr.kv, gr.rk, gr.u, gr.w};
           });
  }
  return res.out;
}

Tensor fused_span_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pe, const Tensor& ramp,
                            const Tensor& pk, const Tensor& pv, double scale, bool operands_only) {
  auto cut = [](const Tensor& t) { return t.defined() ? t.detach() : Tensor(); };
  SpanAttentionInputs in{q.detach(), k.detach(), v.detach(), pe.detach(), cut(ramp), cut(pk), cut(pv)};
  in.bf16_operands = bf16_operands(q, operands_only);
  FusedSpanAttention res = backend_of(q).fused_span_attention(in, scale);
  if (needs_record({&q, &k, &v, &pe, &ramp, &pk, &pv})) {
    FusedSpanAttention saved{Tensor(), res.lse, res.denom};
    record(res.out, "fused_span_attention", {&q, &k, &v, &pe, &ramp, &pk, &pv}, [in, saved, scale](const Tensor& g) {
      SpanAttentionGrads gr = backend_of(g).fused_span_attention_backward(in, scale, saved, g);
      return std::vector<Tensor>{gr.q, gr.k, gr.v, gr.pe, gr.ramp, gr.pk, gr.pv};
    });
  }
  return res.out;
}

}  // namespace txl
