// Backend::linear_output_grad (ReLU backward, bias gradient and the products' bf16 copy
// in one pass) against the same three results composed from the separate kernels:
// the gradient and its bf16 copy bit for bit (one rounding rule), the bias gradient to
// fp32 summation order; inputs contiguous and strided, with and without the ReLU.
#include "gradcheck.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/ops/ops.h"

using namespace txl;
using namespace txl::testing;

namespace {

void check_against_composition(const Tensor& gy, const Tensor& y, bool bf16) {
  Backend& be = backend_of(gy);
  const Tensor g = y.defined() ? be.unary_backward(UnaryOp::relu, y, y, gy, {}) : gy;
  const Tensor gb = be.reduce(ReduceOp::sum, g, {0}, false);
  LinearOutputGrad r = be.linear_output_grad(gy, y, bf16, true);
  REQUIRE(r.g.shape() == gy.shape());
  REQUIRE(r.g.is_contiguous());
  if (bf16) {
    REQUIRE(r.g.dtype() == DType::bf16);
    Tensor expect = be.to_bf16(contiguous(g));
    REQUIRE(std::memcmp(r.g.raw_data(), expect.raw_data(), static_cast<size_t>(g.numel()) * 2) == 0);
  } else {
    REQUIRE(r.g.to_doubles() == g.to_doubles());
  }
  const auto a = r.bias_grad.to_doubles(), b = gb.to_doubles();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(b[i]).epsilon(1e-5).margin(1e-5));
  // Without the bias gradient nothing else changes.
  LinearOutputGrad no_bias = be.linear_output_grad(gy, y, bf16, false);
  REQUIRE_FALSE(no_bias.bias_grad.defined());
}

}  // namespace

TEST_CASE("linear_output_grad equals ReLU backward, column sum and bf16 copy composed", "[nn]") {
  Generator gen(3);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor gy = to_dtype(Tensor::randn({67, 130}, gen), dt);
    Tensor y = to_dtype(Tensor::randn({67, 130}, gen), dt);  // about half the ReLU's outputs are zero
    y = relu(y);
    for (bool with_relu : {true, false}) {
      const Tensor yy = with_relu ? y : Tensor();
      check_against_composition(gy, yy, false);
      // strided: a transposed view of a [130, 67] gradient
      Tensor gt = transpose(contiguous(transpose(gy, 0, 1)), 0, 1);
      REQUIRE_FALSE(gt.is_contiguous());
      check_against_composition(gt, yy, false);
      if (dt == DType::f32) {
        check_against_composition(gy, yy, true);
        check_against_composition(gt, yy, true);
      }
    }
  }
}

TEST_CASE("linear_output_grad refuses operands that do not fit", "[nn]") {
  Generator gen(4);
  Backend& be = backend_of(Tensor::zeros({1}));
  Tensor gy = Tensor::randn({4, 5}, gen);
  REQUIRE_THROWS_WITH(be.linear_output_grad(gy, Tensor::randn({4, 6}, gen), false, true),
                      Catch::Contains("linear_output_grad"));
  REQUIRE_THROWS_WITH(be.linear_output_grad(to_dtype(gy, DType::f64), Tensor(), true, true),
                      Catch::Contains("bf16"));
  REQUIRE_THROWS_WITH(be.linear_output_grad(Tensor::randn({2, 2, 5}, gen), Tensor(), false, true),
                      Catch::Contains("[R, N]"));
}
