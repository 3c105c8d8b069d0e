// The fast float32 kernels (oneDNN matmul, vectorised OpenMP loops) against the float64
// reference path on the same inputs, forward and backward.
// Tolerance: float32 rounds at u = 6e-8 per operation. Elementwise ops and row kernels
// (softmax, layer norm, cross-entropy) stay within a few u relative (checked at 1e-5
// of max(1, |ref|)); a length-K dot product has error ~ sqrt(K)·u·sum|a_i b_i|, so
// matmul results are compared relative to the scale K of sum|a_i b_i| with unit inputs.
#include <omp.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "gradcheck.h"

using namespace txl;
using namespace txl::testing;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on f64 inputs and on their f32 casts; compares outputs and input gradients.
void compare_paths(const Fn& f, const std::vector<Tensor>& inputs64, double tol) {
  std::vector<Tensor> in64, in32;
  for (const Tensor& x : inputs64) {
    in64.push_back(contiguous_copy(x).set_requires_grad());
    in32.push_back(to_dtype(x, DType::f32).set_requires_grad());
  }
  Tensor y64 = f(in64), y32 = f(in32);
  INFO("forward");
  REQUIRE(max_rel_diff(to_dtype(y32.detach(), DType::f64), y64.detach()) <= tol);
  Generator gen(7);
  Tensor w64 = Tensor::randn(y64.shape(), gen, DType::f64);
  backward(sum(mul(y64, w64)));
  backward(sum(mul(y32, to_dtype(w64, DType::f32))));
  for (size_t i = 0; i < in64.size(); ++i) {
    INFO("gradient of input " << i);
    REQUIRE(max_rel_diff(to_dtype(in32[i].grad(), DType::f64), in64[i].grad()) <= tol);
  }
}

}  // namespace

TEST_CASE("f32 matmul (oneDNN) matches the f64 reference", "[f32]") {
  for (int64_t K : {7, 64, 512}) {
    const double tol = 1e-6 * K;  // ~ u * K, with slack for the summation order
    compare_paths([](auto& in) { return matmul(in[0], in[1]); }, {randn64({33, K}, 1), randn64({K, 17}, 2)}, tol);
    compare_paths([](auto& in) { return matmul(in[0], transpose(in[1], 1, 2)); },
                  {randn64({3, 20, K}, 3), randn64({3, 9, K}, 4)}, tol);
    compare_paths([](auto& in) { return matmul(in[0], in[1]); }, {randn64({2, 3, 5, K}, 5), randn64({K, 6}, 6)}, tol);
    compare_paths([](auto& in) { return linear(in[0], in[1], in[2]); },
                  {randn64({4, 6, K}, 7), randn64({10, K}, 8), randn64({10}, 9)}, tol);
  }
}

// 2-D products large enough are run as one part per thread (matmul.cc, split_product):
// by rows of a row-major A (row counts not a multiple of the threads), and by K for A^T
// (a weight gradient) with the partials summed after.
TEST_CASE("f32 products split between the threads match the f64 reference", "[f32]") {
  const ThreadCount two(2);  // the shapes below are split between two threads
  const uint64_t before = cpu::matmul_cache_stats().split;
  // Forward and input gradient by rows, weight gradient (K = 301 rows) by K.
  compare_paths([](auto& in) { return linear(in[0], in[1], in[2]); },
                {randn64({301, 96}, 1), randn64({70, 96}, 2), randn64({70}, 3)}, 1e-6 * 301);
  compare_paths([](auto& in) { return matmul(transpose(in[0], 0, 1), in[1]); },
                {randn64({700, 50}, 4), randn64({700, 40}, 5)}, 1e-6 * 700);
  // The fused ReLU (forward), and a weight gradient written into its slot of a larger
  // buffer (matmul_into, as the gradient arena), nothing outside it.
  Tensor x = randn64({257, 64}, 6), w = randn64({33, 64}, 7), bias = randn64({33}, 8);
  Tensor y64 = linear_relu(x, w, bias);
  Tensor y32 = linear_relu(to_dtype(x, DType::f32), to_dtype(w, DType::f32), to_dtype(bias, DType::f32));
  REQUIRE(max_rel_diff(to_dtype(y32, DType::f64), y64) <= 1e-6 * 64);
  Tensor arena = Tensor::zeros({100, 40}, DType::f32);
  Tensor slot = narrow(arena, 0, 10, 64);
  backend_for(cpu_device())
      .matmul_into(transpose(to_dtype(randn64({700, 64}, 9), DType::f32), 0, 1),
                   to_dtype(randn64({700, 40}, 10), DType::f32), slot);
  Tensor ref = matmul(transpose(randn64({700, 64}, 9), 0, 1), randn64({700, 40}, 10));
  REQUIRE(max_rel_diff(to_dtype(contiguous(slot), DType::f64), ref) <= 1e-6 * 700);
  for (Tensor rest : {narrow(arena, 0, 0, 10), narrow(arena, 0, 74, 26)})
    for (double v : rest.to_doubles()) REQUIRE(v == 0.0);
  if (omp_get_max_threads() == 2) CHECK(cpu::matmul_cache_stats().split >= before + 6);
}

TEST_CASE("f32 elementwise and reductions match the f64 reference", "[f32]") {
  const double tol = 1e-5;
  Tensor a = randn64({37, 129}, 11), b = randn64({129}, 12), pos = add_scalar(mul(a, a), 0.5);
  compare_paths([](auto& in) { return mul(add(in[0], in[1]), sub(in[0], in[1])); }, {a, b}, tol);
  compare_paths([](auto& in) { return div(tanh(in[0]), add_scalar(exp(in[1]), 1.0)); }, {a, b}, tol);
  compare_paths([](auto& in) { return add(sigmoid(in[0]), gelu(in[0], true)); }, {a}, tol);
  compare_paths([](auto& in) { return add(gelu(in[0]), relu(in[0])); }, {a}, tol);
  compare_paths([](auto& in) { return add(log(in[0]), add(sqrt(in[0]), rsqrt(in[0]))); }, {pos}, tol);
  compare_paths([](auto& in) { return add(pow(in[0], 1.5), clamp(in[0], 0.7, 2.0)); }, {pos}, tol);
  compare_paths([](auto& in) { return sum(in[0], {0}); }, {a}, tol);
  compare_paths([](auto& in) { return mean(in[0], {1}, true); }, {a}, tol);
  compare_paths([](auto& in) { return max(in[0], {1}); }, {a}, tol);
  compare_paths([](auto& in) { return sum(transpose(in[0], 0, 1), {1}); }, {a}, tol);
}

TEST_CASE("f32 softmax, layer norm and cross-entropy match the f64 reference", "[f32]") {
  const double tol = 1e-5;
  compare_paths([](auto& in) { return softmax(in[0]); }, {randn64({48, 200}, 21, 3.0)}, tol);
  compare_paths([](auto& in) { return log_softmax(in[0]); }, {randn64({48, 200}, 22, 3.0)}, tol);
  compare_paths([](auto& in) { return layer_norm(in[0], in[1], in[2]); },
                {randn64({50, 128}, 23), add_scalar(randn64({128}, 24, 0.1), 1.0), randn64({128}, 25)}, tol);
  // Enough rows for the threads and many row chunks of gamma's and beta's gradient sums.
  compare_paths([](auto& in) { return layer_norm(in[0], in[1], in[2]); },
                {randn64({1000, 128}, 27), add_scalar(randn64({128}, 28, 0.1), 1.0), randn64({128}, 29)}, tol);
  std::vector<int64_t> t(96);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int64_t>((i * 37) % 256);
  Tensor targets = Tensor::from_vector<int64_t>({96}, t);
  compare_paths([targets](auto& in) { return cross_entropy(in[0], targets); }, {randn64({96, 256}, 26, 2.0)}, tol);
}
