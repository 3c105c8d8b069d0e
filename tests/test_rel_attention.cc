// The fused Transformer-XL attention probabilities against the unfused composition of
// the reference (_rel_shift by pad/reshape, scale, masked_fill, softmax), forward and
// backward, plus a float64 finite-difference check and the mask precondition.
#include <cmath>
#include <limits>

#include "backend/cpu/block_gemm.h"
#include "gradcheck.h"
#include "native_bf16.h"
#include "txl/backend/precision.h"
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

namespace {

// The unfused attention core, as relative_attention composes it without the fused op.
Tensor unfused_core(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& rk, const Tensor& u,
                    const Tensor& w, const Tensor& mask, double scale) {
  Tensor ac = matmul(permute(add(q, u), {1, 2, 0, 3}), permute(k, {1, 2, 3, 0}));
  Tensor bd = matmul(permute(add(q, w), {1, 2, 0, 3}), permute(rk, {1, 2, 0}));
  Tensor vec = matmul(unfused(ac, bd, mask, scale), permute(v, {1, 2, 0, 3}));
  return permute(vec, {2, 0, 1, 3});
}

// The fused op on separate keys and values, stacked as it takes them.
Tensor fused_core(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& rk, const Tensor& u,
                  const Tensor& w, const Tensor& mask, double scale) {
  return fused_rel_attention(q, concat({unsqueeze(k, 2), unsqueeze(v, 2)}, 2), rk, u, w, mask, scale);
}

struct CoreCase {
  int64_t T, M, B, H, Dh;
  bool same;
};

std::vector<Tensor> core_inputs(const CoreCase& c, uint64_t seed, DType dt) {
  const int64_t K = c.T + c.M;
  std::vector<Tensor> in = {randn64({c.T, c.B, c.H, c.Dh}, seed), randn64({K, c.B, c.H, c.Dh}, seed + 1),
                            randn64({K, c.B, c.H, c.Dh}, seed + 2), randn64({K, c.H, c.Dh}, seed + 3),
                            randn64({c.H, c.Dh}, seed + 4),        randn64({c.H, c.Dh}, seed + 5)};
  for (auto& t : in) t = to_dtype(t, dt);
  return in;
}

}  // namespace

TEST_CASE("fused_rel_attention equals the unfused ops, forward and every gradient", "[attention]") {
  // T = 70 spans two query blocks of 64; M = 0 has no memory; same_length masks far keys;
  // Dh = 35 leaves a partial vector after two full ones; K = 1024 keys pad the backward's
  // transposed accumulators off a 4 KB row stride.
  for (const CoreCase& c :
       std::vector<CoreCase>{{5, 7, 2, 3, 4, false}, {6, 0, 1, 2, 3, false}, {4, 6, 2, 2, 4, true},
                             {70, 30, 1, 2, 4, false}, {70, 5, 2, 1, 3, true}, {66, 20, 1, 1, 35, false},
                             {64, 960, 1, 2, 16, false}}) {
    INFO("T " << c.T << " M " << c.M << " same_length " << c.same);
    const Tensor mask = causal_mask(c.T, c.M, c.same, 5);
    const double scale = 0.4;
    for (DType dt : {DType::f64, DType::f32}) {
      std::vector<Tensor> a = core_inputs(c, 11, dt), b = core_inputs(c, 11, dt);
      for (auto& t : a) t.set_requires_grad();
      for (auto& t : b) t.set_requires_grad();
      Tensor y1 = fused_core(a[0], a[1], a[2], a[3], a[4], a[5], mask, scale);
      Tensor y2 = unfused_core(b[0], b[1], b[2], b[3], b[4], b[5], mask, scale);
      const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
      REQUIRE(y1.shape() == y2.shape());
      REQUIRE(max_abs_diff(y1, y2) <= tol);
      Tensor wgt = to_dtype(randn64(y1.shape(), 9), dt);
      backward(sum(mul(y1, wgt)));
      backward(sum(mul(y2, wgt)));
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("input " << i << " dtype " << dtype_name(dt));
        REQUIRE(max_rel_diff(a[i].grad(), b[i].grad()) <= tol);
      }
    }
  }
}

TEST_CASE("fused_rel_attention gradient check, including strided inputs", "[attention][grad]") {
  const Tensor mask = causal_mask(3, 2, false, 0);
  gradcheck([mask](auto& in) { return fused_core(in[0], in[1], in[2], in[3], in[4], in[5], mask, 0.6); },
            core_inputs({3, 2, 2, 2, 3, false}, 21, DType::f64));
  // q and kv as views of one [*, B, 3 * H * Dh] projection (queries over the last rows,
  // keys and values over all), rk as a view with a padded row stride.
  gradcheck(
      [mask](auto& in) {
        Tensor qkv = reshape(in[0], {5, 2, 3, 2, 3});
        Tensor q = narrow(squeeze(narrow(qkv, 2, 0, 1), 2), 0, 2, 3), kv = narrow(qkv, 2, 1, 2);
        Tensor rk = narrow(in[1], 2, 1, 3);
        return fused_rel_attention(q, kv, rk, in[2], in[3], mask, 0.6);
      },
      {randn64({5, 2, 18}, 31), randn64({5, 2, 4}, 32), randn64({2, 3}, 33), randn64({2, 3}, 34)});
}

TEST_CASE("fused_rel_attention: a fully masked row attends to nothing", "[attention]") {
  // same_length with window 0 masks every key of every query; float32 runs the
  // vectorised row kernels (lse = -inf in the backward).
  const Tensor mask = Tensor::full({2, 4}, 1.0, DType::b8);
  for (DType dt : {DType::f64, DType::f32}) {
    INFO(dtype_name(dt));
    std::vector<Tensor> in = core_inputs({2, 2, 1, 1, 3, true}, 41, dt);
    for (auto& t : in) t.set_requires_grad();
    Tensor y = fused_core(in[0], in[1], in[2], in[3], in[4], in[5], mask, 1.0);
    REQUIRE(max_abs_diff(y, Tensor::zeros(y.shape(), dt)) == 0.0);
    backward(sum(y));
    for (auto& t : in) REQUIRE(max_abs_diff(t.grad(), Tensor::zeros(t.shape(), dt)) == 0.0);
  }
}

TEST_CASE("fused_rel_attention: a row whose every score overflows to -inf gets no NaN", "[attention]") {
  // q . k = -3e40 is -inf in float32 for every key: the forward gives the row nothing
  // (lse = -inf), and the backward must not form exp(-inf - -inf).
  const int64_t T = 2, M = 1, K = T + M, Dh = 3;
  const Tensor mask = causal_mask(T, M, false, 0);
  Tensor q = Tensor::full({T, 1, 1, Dh}, 1e20, DType::f32), k = Tensor::full({K, 1, 1, Dh}, -1e20, DType::f32);
  Tensor v = to_dtype(randn64({K, 1, 1, Dh}, 61), DType::f32), rk = Tensor::zeros({K, 1, Dh}, DType::f32);
  Tensor u = Tensor::zeros({1, Dh}, DType::f32), w = Tensor::zeros({1, Dh}, DType::f32);
  std::vector<Tensor> in = {q, k, v, rk, u, w};
  for (auto& t : in) t.set_requires_grad();
  Tensor y = fused_core(in[0], in[1], in[2], in[3], in[4], in[5], mask, 1.0);
  REQUIRE(max_abs_diff(y, Tensor::zeros(y.shape(), DType::f32)) == 0.0);
  backward(sum(y));
  for (auto& t : in)
    for (double g : t.grad().to_doubles()) REQUIRE(std::isfinite(g));
}

namespace {

// ||a - b|| / ||b||: bf16 rounds every product operand to 8 bits, so elementwise
// comparisons of small entries say nothing; a wrong block offset or stride would move
// the whole tensor by O(1).
double rel_norm_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_dtype(a, DType::f64).to_doubles(), y = to_dtype(b, DType::f64).to_doubles();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace

TEST_CASE("fused_rel_attention in bf16 equals the unfused bf16 ops, 1024 keys included", "[attention][bf16]") {
  // With AMX both sides round the same operands to bf16 and differ in fp32 summation
  // order; without it the fused block products stay fp32 (see the model-level test).
  // 1,024 keys make the backward pad its accumulators' rows on the AMX path too; an odd
  // T gives a block whose position rows start at an odd row of the packed rk.
  TXL_REQUIRE_BF16();
  PrecisionScope bf16(MatmulPrecision::bf16);
  const double tol = txl::cpu::BlockGemm::for_run().bf16() ? 1e-3 : 6e-2;
  for (const CoreCase& c :
       std::vector<CoreCase>{{64, 960, 1, 2, 16, false}, {70, 30, 2, 2, 32, false}, {75, 40, 1, 2, 32, false}}) {
    INFO("T " << c.T << " M " << c.M);
    const Tensor mask = causal_mask(c.T, c.M, c.same, 0);
    std::vector<Tensor> a = core_inputs(c, 51, DType::f32), b = core_inputs(c, 51, DType::f32);
    for (auto& t : a) t.set_requires_grad();
    for (auto& t : b) t.set_requires_grad();
    Tensor y1 = fused_core(a[0], a[1], a[2], a[3], a[4], a[5], mask, 0.125);
    Tensor y2 = unfused_core(b[0], b[1], b[2], b[3], b[4], b[5], mask, 0.125);
    CHECK(rel_norm_diff(y1, y2) <= tol);
    Tensor wgt = to_dtype(randn64(y1.shape(), 9), DType::f32);
    backward(sum(mul(y1, wgt)));
    backward(sum(mul(y2, wgt)));
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("input " << i);
      CHECK(rel_norm_diff(a[i].grad(), b[i].grad()) <= tol);
    }
  }
}

TEST_CASE("fused_rel_attention rejects a mask that leaves shift garbage visible", "[attention]") {
  const Tensor open = Tensor::zeros({3, 5}, DType::b8);
  std::vector<Tensor> in = core_inputs({3, 2, 1, 1, 2, false}, 3, DType::f64);
  REQUIRE_THROWS_WITH(fused_core(in[0], in[1], in[2], in[3], in[4], in[5], open, 1.0),
                      Catch::Contains("fused_rel_attention: key 3 of query 0 must be masked"));
}
