// The fused Transformer-XL attention probabilities against the unfused composition of
// the reference (_rel_shift by pad/reshape, scale, masked_fill, softmax), forward and
// backward, plus a float64 finite-difference check and the mask precondition.
#include <limits>

#include "gradcheck.h"
#include "txl/ops/attention.h"

using namespace txl;
using namespace txl::testing;

namespace {

// kimiyoung's _rel_shift: pad a zero column on the left, view [K+1, T], drop row 0.
Tensor rel_shift_reference(const Tensor& x) {
  const int64_t nd = x.dim(), T = x.shape()[nd - 2], K = x.shape()[nd - 1];
  std::vector<std::pair<int64_t, int64_t>> pads(nd, {0, 0});
  pads[nd - 1] = {1, 0};
  Shape s = x.shape();
  s[nd - 2] = K + 1;
  s[nd - 1] = T;
  return reshape(narrow(reshape(pad(x, pads), s), nd - 2, 1, K), x.shape());
}

Tensor unfused(const Tensor& ac, const Tensor& bd, const Tensor& mask, double scale) {
  Tensor score = mul_scalar(add(ac, rel_shift_reference(bd)), scale);
  return softmax(masked_fill(score, mask, -std::numeric_limits<double>::infinity()));
}

Tensor causal_mask(int64_t T, int64_t M, bool same_length, int64_t mem_len) {
  const int64_t K = T + M;
  std::vector<uint8_t> m(T * K);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < K; ++j) {
      const int64_t delta = M + i - j;
      m[i * K + j] = delta < 0 || (same_length && delta >= mem_len);
    }
  return Tensor::from_vector<uint8_t>({T, K}, m);
}

}  // namespace

TEST_CASE("fused rel_attn_probs equals the reference composition", "[attention]") {
  for (auto [T, M, same] : std::vector<std::tuple<int64_t, int64_t, bool>>{{5, 0, false}, {5, 7, false}, {4, 6, true}, {6, 3, true}}) {
    Tensor ac = randn64({2, 3, T, T + M}, 1, 2.0), bd = randn64({2, 3, T, T + M}, 2, 2.0);
    Tensor mask = causal_mask(T, M, same, 5);
    {
      Tensor a1 = contiguous_copy(ac).set_requires_grad(), b1 = contiguous_copy(bd).set_requires_grad();
      Tensor a2 = contiguous_copy(ac).set_requires_grad(), b2 = contiguous_copy(bd).set_requires_grad();
      Tensor p1 = rel_attn_probs(a1, b1, mask, 0.35), p2 = unfused(a2, b2, mask, 0.35);
      REQUIRE(max_rel_diff(p1, p2) <= 1e-14);
      Tensor w = randn64(p1.shape(), 3);
      backward(sum(mul(p1, w)));
      backward(sum(mul(p2, w)));
      REQUIRE(max_rel_diff(a1.grad(), a2.grad()) <= 1e-13);
      REQUIRE(max_rel_diff(b1.grad(), b2.grad()) <= 1e-13);
    }
  }
}

TEST_CASE("fused rel_attn_probs gradient check", "[attention][grad]") {
  Tensor mask = causal_mask(4, 3, false, 0);
  gradcheck([mask](auto& in) { return rel_attn_probs(in[0], in[1], mask, 0.5); },
            {randn64({2, 4, 7}, 5), randn64({2, 4, 7}, 6)});
  // Non-contiguous inputs.
  gradcheck([mask](auto& in) { return rel_attn_probs(transpose(in[0], 0, 1), in[1], mask, 0.5); },
            {randn64({4, 2, 7}, 7), randn64({2, 4, 7}, 8)});
}

TEST_CASE("rel_attn_probs rejects a mask that leaves shift garbage visible", "[attention]") {
  Tensor ac = randn64({1, 3, 5}, 1), bd = randn64({1, 3, 5}, 2);
  Tensor open = Tensor::zeros({3, 5}, DType::b8);
  REQUIRE_THROWS_WITH(rel_attn_probs(ac, bd, open, 1.0), Catch::Contains("must be masked"));
}
