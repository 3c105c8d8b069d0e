// Float64 finite-difference gradient checks for the elementwise ops: binary ops with
// broadcasting, scalar-shaped and non-contiguous operands, the unary ops and their
// derivative kernels, where / masked_fill with broadcast b8 masks.
#include <cmath>

#include "gradcheck.h"

using namespace txl;
using namespace txl::testing;

namespace {

using In = std::vector<Tensor>;
using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
using MakeFn = std::function<Tensor(const Shape&, uint64_t)>;

// f64 tensor whose values are fn(z) for standard normal draws z.
template <class F>
Tensor mapped64(const Shape& s, uint64_t seed, F fn) {
  std::vector<double> v = randn64(s, seed).to_doubles();
  for (double& x : v) x = fn(x);
  return Tensor::from_vector<double>(s, v);
}

// |x| > gap everywhere: keeps divisors and relu inputs away from 0.
Tensor away_from_zero(const Shape& s, uint64_t seed, double gap = 0.1) {
  return mapped64(s, seed, [gap](double z) { return z >= 0 ? z + gap : z - gap; });
}

// Values in [0.2, ...): inputs of log / sqrt / rsqrt / fractional pow.
Tensor positive64(const Shape& s, uint64_t seed) {
  return mapped64(s, seed, [](double z) { return 0.2 + std::abs(z); });
}

// Every broadcasting / layout case of a binary op; b is kept away from 0 for div.
void check_binary(BinaryFn op) {
  auto f = [op](const In& in) { return op(in[0], in[1]); };
  SECTION("same shape") { gradcheck(f, {randn64({2, 3}, 1), away_from_zero({2, 3}, 2)}); }
  SECTION("(3,1,4) with (2,4)") { gradcheck(f, {randn64({3, 1, 4}, 3), away_from_zero({2, 4}, 4)}); }
  SECTION("(2,4) with (3,1,4)") { gradcheck(f, {randn64({2, 4}, 5), away_from_zero({3, 1, 4}, 6)}); }
  SECTION("size-1 dims on both sides (2,1,3) with (1,4,1)") {
    gradcheck(f, {randn64({2, 1, 3}, 7), away_from_zero({1, 4, 1}, 8)});
  }
  SECTION("scalar-shaped right operand") { gradcheck(f, {randn64({2, 3}, 9), away_from_zero({}, 10)}); }
  SECTION("scalar-shaped left operand") { gradcheck(f, {randn64({}, 11), away_from_zero({2, 3}, 12)}); }
  SECTION("both scalar-shaped") { gradcheck(f, {randn64({}, 13), away_from_zero({}, 14)}); }
  SECTION("transpose of a leaf inside f") {
    gradcheck([op](const In& in) { return op(transpose(in[0], 0, 1), in[1]); },
              {randn64({4, 3}, 15), away_from_zero({3, 4}, 16)});
  }
  SECTION("narrow of a leaf inside f, broadcast against a column") {
    gradcheck([op](const In& in) { return op(in[0], narrow(in[1], 1, 1, 3)); },
              {randn64({2, 1}, 17), away_from_zero({2, 5}, 18)});
  }
  SECTION("both operands non-contiguous and broadcast") {
    gradcheck([op](const In& in) { return op(permute(in[0], {2, 0, 1}), narrow(in[1], 0, 1, 1)); },
              {randn64({2, 3, 4}, 19), away_from_zero({3, 3}, 20)});
  }
  SECTION("non-contiguous views passed directly as inputs") {
    Tensor a = randn64({4, 3}, 21), b = away_from_zero({3, 6}, 22);
    gradcheck(f, {transpose(a, 0, 1), narrow(b, 1, 2, 4)});
  }
  SECTION("the same tensor on both sides") {
    gradcheck([op](const In& in) { return op(in[0], in[0]); }, {away_from_zero({2, 3}, 23)});
  }
}

// A unary op on contiguous, non-contiguous and scalar-shaped inputs drawn by make.
void check_unary(const std::function<Tensor(const Tensor&)>& op, const MakeFn& make) {
  gradcheck([op](const In& in) { return op(in[0]); }, {make({2, 3, 4}, 31)});
  gradcheck([op](const In& in) { return op(transpose(in[0], 0, 2)); }, {make({4, 3, 2}, 32)});
  gradcheck([op](const In& in) { return op(narrow(in[0], 1, 1, 2)); }, {make({3, 4}, 33)});
  gradcheck([op](const In& in) { return op(in[0]); }, {make({}, 34)});
  Tensor base = make({5, 3}, 35);
  gradcheck([op](const In& in) { return op(in[0]); }, {transpose(base, 0, 1)});
}

const MakeFn kNormal = [](const Shape& s, uint64_t seed) { return randn64(s, seed); };
const MakeFn kPositive = [](const Shape& s, uint64_t seed) { return positive64(s, seed); };
const MakeFn kAwayFromZero = [](const Shape& s, uint64_t seed) { return away_from_zero(s, seed); };

}  // namespace

TEST_CASE("grad: add", "[grad]") { check_binary(&add); }
TEST_CASE("grad: sub", "[grad]") { check_binary(&sub); }
TEST_CASE("grad: mul", "[grad]") { check_binary(&mul); }
TEST_CASE("grad: div", "[grad]") { check_binary(&div); }

TEST_CASE("grad: add_scalar", "[grad]") {
  check_unary([](const Tensor& x) { return add_scalar(x, 2.5); }, kNormal);
}
TEST_CASE("grad: mul_scalar", "[grad]") {
  check_unary([](const Tensor& x) { return mul_scalar(x, -1.75); }, kNormal);
}
TEST_CASE("grad: neg", "[grad]") {
  check_unary([](const Tensor& x) { return neg(x); }, kNormal);
}
TEST_CASE("grad: exp", "[grad]") {
  check_unary([](const Tensor& x) { return exp(x); }, kNormal);
}
TEST_CASE("grad: log", "[grad]") {
  check_unary([](const Tensor& x) { return log(x); }, kPositive);
}
TEST_CASE("grad: tanh", "[grad]") {
  check_unary([](const Tensor& x) { return tanh(x); }, kNormal);
}
TEST_CASE("grad: sigmoid", "[grad]") {
  check_unary([](const Tensor& x) { return sigmoid(x); }, kNormal);
}
TEST_CASE("grad: relu", "[grad]") {
  check_unary([](const Tensor& x) { return relu(x); }, kAwayFromZero);
}
TEST_CASE("grad: gelu exact (erf)", "[grad]") {
  check_unary([](const Tensor& x) { return gelu(x, false); },
              [](const Shape& s, uint64_t seed) { return randn64(s, seed, 2.0); });
}
TEST_CASE("grad: gelu tanh approximation", "[grad]") {
  check_unary([](const Tensor& x) { return gelu(x, true); },
              [](const Shape& s, uint64_t seed) { return randn64(s, seed, 2.0); });
}
TEST_CASE("grad: sqrt", "[grad]") {
  check_unary([](const Tensor& x) { return sqrt(x); }, kPositive);
}
TEST_CASE("grad: rsqrt", "[grad]") {
  check_unary([](const Tensor& x) { return rsqrt(x); }, kPositive);
}
TEST_CASE("grad: pow with a scalar exponent", "[grad]") {
  for (double e : {2.5, -1.5, 0.5, 3.0}) {
    INFO("exponent " << e);
    check_unary([e](const Tensor& x) { return pow(x, e); }, kPositive);
  }
  // Integer exponents are defined on negative inputs too.
  check_unary([](const Tensor& x) { return pow(x, 2.0); }, kNormal);
  check_unary([](const Tensor& x) { return pow(x, 3.0); }, kNormal);
}
TEST_CASE("grad: clamp", "[grad]") {
  const double lo = -0.5, hi = 0.7;
  // Values at least 0.05 away from both kinks, on both sides of each.
  MakeFn make = [=](const Shape& s, uint64_t seed) {
    return mapped64(s, seed, [=](double z) {
      if (std::abs(z - lo) < 0.05) z = lo - 0.1;
      if (std::abs(z - hi) < 0.05) z = hi + 0.1;
      return z;
    });
  };
  check_unary([=](const Tensor& x) { return clamp(x, lo, hi); }, make);
  Tensor x = Tensor::from_vector<double>({5}, {-2.0, -0.4, 0.0, 0.6, 3.0});
  REQUIRE(clamp(x, lo, hi).to_doubles() == std::vector<double>{-0.5, -0.4, 0.0, 0.6, 0.7});
}

TEST_CASE("grad: where with a broadcast b8 mask", "[grad]") {
  Tensor mask = Tensor::from_vector<uint8_t>({2, 1, 4}, {1, 0, 0, 1, 0, 1, 1, 0});
  auto f = [mask](const In& in) { return where(mask, in[0], in[1]); };
  SECTION("a (3,4), b (2,3,4)") { gradcheck(f, {randn64({3, 4}, 41), randn64({2, 3, 4}, 42)}); }
  SECTION("a scalar-shaped, b (3,1)") { gradcheck(f, {randn64({}, 43), randn64({3, 1}, 44)}); }
  SECTION("non-contiguous operands") {
    gradcheck([mask](const In& in) { return where(mask, transpose(in[0], 0, 1), narrow(in[1], 2, 1, 4)); },
              {randn64({4, 3}, 45), randn64({2, 3, 6}, 46)});
  }
  SECTION("forward values") {
    Tensor a = Tensor::from_vector<double>({4}, {1, 2, 3, 4});
    Tensor b = Tensor::from_vector<double>({2, 1}, {-1, -2});
    Tensor m = Tensor::from_vector<uint8_t>({4}, {1, 0, 0, 1});
    REQUIRE(where(m, a, b).to_doubles() == std::vector<double>{1, -1, -1, 4, 1, -2, -2, 4});
  }
}

TEST_CASE("grad: masked_fill with a broadcast b8 mask", "[grad]") {
  Tensor mask = Tensor::from_vector<uint8_t>({3, 1}, {0, 1, 0});
  gradcheck([mask](const In& in) { return masked_fill(in[0], mask, -3.5); }, {randn64({2, 3, 4}, 51)});
  Tensor row_mask = Tensor::from_vector<uint8_t>({4}, {1, 0, 1, 0});
  gradcheck([row_mask](const In& in) { return masked_fill(transpose(in[0], 0, 1), row_mask, 7.0); },
            {randn64({4, 3}, 52)});
  // Forward: filled where the mask is set, x elsewhere; the gradient is 0 where filled.
  Tensor x = randn64({3, 4}, 53);
  x.set_requires_grad(true);
  Tensor y = masked_fill(x, row_mask, -3.5);
  auto xv = x.to_doubles(), yv = y.to_doubles();
  for (int64_t i = 0; i < 12; ++i) REQUIRE(yv[i] == ((i % 4) % 2 == 0 ? -3.5 : xv[i]));
  backward(sum(y));
  auto gv = x.grad().to_doubles();
  for (int64_t i = 0; i < 12; ++i) REQUIRE(gv[i] == ((i % 4) % 2 == 0 ? 0.0 : 1.0));
  REQUIRE_THROWS_WITH(masked_fill(randn64({3}, 54), mask, 0.0), Catch::Contains("masked_fill"));
}
