// Forward and backward of the fused attention ops; kernels live in the backend.
#include "txl/ops/attention.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"

namespace txl {

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

}  // namespace txl
