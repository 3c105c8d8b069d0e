// Float64 gradient checks for matmul (batched, broadcast, transposed operands), linear,
// softmax / log_softmax, layer_norm, cross_entropy and dropout, plus forward values of
// softmax, layer_norm, cross_entropy and matmul against plain loops, and triu/tril masks.
#include <cmath>
#include <limits>

#include "gradcheck.h"
#include "txl/backend/precision.h"

using namespace txl;
using namespace txl::testing;

namespace {

using In = std::vector<Tensor>;

// Standard normal values with `offset` added to row `row` of the last-axis rows.
Tensor rows_with_offset(const Shape& s, uint64_t seed, int64_t row, double offset) {
  std::vector<double> v = randn64(s, seed).to_doubles();
  const int64_t n = s.back();
  for (int64_t i = 0; i < n; ++i) v[row * n + i] += offset;
  return Tensor::from_vector<double>(s, v);
}

Tensor targets64(const Shape& s, const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(s, v); }

// Reference log-softmax of each length-n row of v, by hand.
std::vector<double> ref_log_softmax(const std::vector<double>& v, int64_t n) {
  std::vector<double> out(v.size());
  for (size_t r = 0; r * n < v.size(); ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i) m = std::max(m, v[r * n + i]);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(v[r * n + i] - m);
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = v[r * n + i] - m - std::log(s);
  }
  return out;
}

void require_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << " got " << got[i] << " want " << want[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i])));
  }
}

std::vector<double> b8_values(const Tensor& m) {
  REQUIRE(m.dtype() == DType::b8);
  return m.to_doubles();
}

}  // namespace

// ---------------------------------------------------------------- matmul / linear

TEST_CASE("grad: matmul", "[grad]") {
  auto mm = [](const In& in) { return matmul(in[0], in[1]); };
  SECTION("2-D") { gradcheck(mm, {randn64({3, 4}, 1), randn64({4, 5}, 2)}); }
  SECTION("batched 3-D") { gradcheck(mm, {randn64({2, 3, 4}, 3), randn64({2, 4, 5}, 4)}); }
  SECTION("(2,3,4,5) x (5,6): shared weight") { gradcheck(mm, {randn64({2, 3, 4, 5}, 5), randn64({5, 6}, 6)}); }
  SECTION("(2,1,4,5) x (3,5,6): broadcast batch dims") {
    gradcheck(mm, {randn64({2, 1, 4, 5}, 7), randn64({3, 5, 6}, 8)});
  }
  SECTION("(3,4) x (2,4,5): 2-D left operand broadcast over the batch") {
    gradcheck(mm, {randn64({3, 4}, 9), randn64({2, 4, 5}, 10)});
  }
  SECTION("2-D, both operands transposed") {
    gradcheck([](const In& in) { return matmul(transpose(in[0], 0, 1), transpose(in[1], 0, 1)); },
              {randn64({4, 3}, 11), randn64({5, 4}, 12)});
  }
  SECTION("batched, transposed left operand") {
    gradcheck([](const In& in) { return matmul(transpose(in[0], -1, -2), in[1]); },
              {randn64({2, 4, 3}, 13), randn64({2, 4, 5}, 14)});
  }
  SECTION("permuted 4-D x transposed 2-D") {
    gradcheck([](const In& in) { return matmul(permute(in[0], {1, 0, 2, 3}), transpose(in[1], 0, 1)); },
              {randn64({3, 2, 4, 5}, 15), randn64({6, 5}, 16)});
  }
  SECTION("broadcast batch with a transposed right operand") {
    gradcheck([](const In& in) { return matmul(in[0], transpose(in[1], -1, -2)); },
              {randn64({2, 1, 4, 5}, 17), randn64({3, 6, 5}, 18)});
  }
  SECTION("expanded (stride-0) batch dims") {
    gradcheck([](const In& in) { return matmul(expand(in[0], {2, 3, 4}), expand(in[1], {2, 4, 5})); },
              {randn64({3, 4}, 23), randn64({1, 4, 5}, 24)});
  }
  SECTION("non-contiguous views passed directly") {
    Tensor a = randn64({4, 6}, 19), b = randn64({3, 5}, 20);
    gradcheck(mm, {narrow(a, 1, 1, 5), transpose(b, 0, 1)});  // (4, 5) x (5, 3)
  }
}

TEST_CASE("matmul forward matches loops with broadcast batch dims", "[grad]") {
  Tensor a = randn64({2, 1, 3, 4}, 21), b = randn64({3, 4, 2}, 22);
  Tensor y = matmul(a, transpose(transpose(b, 1, 2), 1, 2));
  REQUIRE(y.shape() == Shape{2, 3, 3, 2});
  auto av = a.to_doubles(), bv = b.to_doubles(), yv = y.to_doubles();
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int m = 0; m < 3; ++m)
        for (int n = 0; n < 2; ++n) {
          double s = 0;
          for (int k = 0; k < 4; ++k) s += av[(i * 3 + m) * 4 + k] * bv[(j * 4 + k) * 2 + n];
          want.push_back(s);
        }
  require_close(yv, want, 1e-13);
}

TEST_CASE("grad: linear_relu", "[grad]") {
  gradcheck([](const In& in) { return linear_relu(in[0], in[1], in[2]); },
            {randn64({2, 3, 4}, 51), randn64({5, 4}, 52), randn64({5}, 53)});
  gradcheck([](const In& in) { return linear_relu(in[0], in[1]); }, {randn64({3, 4}, 54), randn64({6, 4}, 55)});
}

TEST_CASE("linear_relu equals relu(linear) in f32, fp32 and bf16 products alike", "[grad][bf16]") {
  for (MatmulPrecision prec : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    if (prec == MatmulPrecision::bf16 && !cpu_has_native_bf16()) continue;
    PrecisionScope scope(prec);
    Tensor x = to_dtype(randn64({7, 16}, 61), DType::f32), w = to_dtype(randn64({24, 16}, 62), DType::f32),
           b = to_dtype(randn64({24}, 63), DType::f32);
    Tensor x1 = contiguous_copy(x).set_requires_grad(), w1 = contiguous_copy(w).set_requires_grad(),
           b1 = contiguous_copy(b).set_requires_grad();
    Tensor x2 = contiguous_copy(x).set_requires_grad(), w2 = contiguous_copy(w).set_requires_grad(),
           b2 = contiguous_copy(b).set_requires_grad();
    Tensor y1 = linear_relu(x1, w1, b1), y2 = relu(linear(x2, w2, b2));
    REQUIRE(max_abs_diff(y1, y2) <= 1e-6);
    Tensor g = to_dtype(randn64(y1.shape(), 64), DType::f32);
    backward(sum(mul(y1, g)));
    backward(sum(mul(y2, g)));
    REQUIRE(max_abs_diff(x1.grad(), x2.grad()) <= 1e-5);
    REQUIRE(max_abs_diff(w1.grad(), w2.grad()) <= 1e-5);
    REQUIRE(max_abs_diff(b1.grad(), b2.grad()) <= 1e-5);
  }
}

TEST_CASE("grad: linear", "[grad]") {
  SECTION("with bias, 3-D input") {
    gradcheck([](const In& in) { return linear(in[0], in[1], in[2]); },
              {randn64({2, 3, 4}, 31), randn64({5, 4}, 32), randn64({5}, 33)});
  }
  SECTION("without bias, 3-D input") {
    gradcheck([](const In& in) { return linear(in[0], in[1]); }, {randn64({2, 3, 4}, 34), randn64({5, 4}, 35)});
  }
  SECTION("non-contiguous input") {
    gradcheck([](const In& in) { return linear(transpose(in[0], 0, 1), in[1], in[2]); },
              {randn64({3, 2, 4}, 36), randn64({5, 4}, 37), randn64({5}, 38)});
  }
  SECTION("forward is x W^T + b") {
    Tensor x = randn64({2, 3}, 39), w = randn64({4, 3}, 40), b = randn64({4}, 41);
    auto xv = x.to_doubles(), wv = w.to_doubles(), bv = b.to_doubles();
    std::vector<double> want;
    for (int i = 0; i < 2; ++i)
      for (int o = 0; o < 4; ++o) {
        double s = bv[o];
        for (int k = 0; k < 3; ++k) s += xv[i * 3 + k] * wv[o * 3 + k];
        want.push_back(s);
      }
    require_close(linear(x, w, b).to_doubles(), want, 1e-13);
  }
}

TEST_CASE("grad: linear_rows", "[grad]") {
  // The rows before x are fixed (no gradient); the product reads them with x's values.
  const Tensor fixed = randn64({2, 3, 4}, 42);
  gradcheck(
      [&](const In& in) {
        return linear_rows(concat({fixed, in[0].detach()}, 0), in[0], in[1]);
      },
      {randn64({3, 3, 4}, 43), randn64({5, 4}, 44)});
  // No fixed rows: plain linear.
  gradcheck([](const In& in) { return linear_rows(in[0].detach(), in[0], in[1]); },
            {randn64({2, 4}, 45), randn64({3, 4}, 46)});
}

TEST_CASE("linear_rows equals linear over the concatenation, fp32 and bf16 products alike", "[grad][bf16]") {
  for (MatmulPrecision prec : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    if (prec == MatmulPrecision::bf16 && !cpu_has_native_bf16()) continue;
    PrecisionScope scope(prec);
    const Tensor mem = to_dtype(randn64({6, 2, 16}, 71), DType::f32);
    const Tensor x = to_dtype(randn64({5, 2, 16}, 72), DType::f32), w = to_dtype(randn64({24, 16}, 73), DType::f32);
    Tensor x1 = contiguous_copy(x).set_requires_grad(), w1 = contiguous_copy(w).set_requires_grad();
    Tensor x2 = contiguous_copy(x).set_requires_grad(), w2 = contiguous_copy(w).set_requires_grad();
    Tensor y1 = linear_rows(concat({mem, x1.detach()}, 0), x1, w1), y2 = linear(concat({mem, x2}, 0), w2);
    REQUIRE(y1.shape() == Shape{11, 2, 24});
    REQUIRE(max_abs_diff(y1, y2) == 0.0);
    Tensor g = to_dtype(randn64(y1.shape(), 74), DType::f32);
    backward(sum(mul(y1, g)));
    backward(sum(mul(y2, g)));
    REQUIRE(max_abs_diff(x1.grad(), x2.grad()) <= 1e-5);
    REQUIRE(max_abs_diff(w1.grad(), w2.grad()) <= 1e-5);
    // The rows in the form products read them (bf16 copy made once): the same numbers.
    Tensor x3 = contiguous_copy(x).set_requires_grad(), w3 = contiguous_copy(w).set_requires_grad();
    const Tensor rows = matmul_operand(concat({mem, x3.detach()}, 0));
    REQUIRE(rows.dtype() == (prec == MatmulPrecision::bf16 ? DType::bf16 : DType::f32));
    Tensor y3 = linear_rows(rows, x3, w3);
    REQUIRE(max_abs_diff(y1, y3) == 0.0);
    backward(sum(mul(y3, g)));
    REQUIRE(max_abs_diff(x1.grad(), x3.grad()) == 0.0);
    REQUIRE(max_abs_diff(w1.grad(), w3.grad()) == 0.0);
  }
}

TEST_CASE("matmul_operand refuses a tensor whose gradient its copy would cut", "[grad]") {
  Tensor x = randn64({3, 4}, 80).set_requires_grad();
  REQUIRE_THROWS_WITH(matmul_operand(x), Catch::Contains("gradient"));
  REQUIRE(matmul_operand(x.detach()).raw_data() == x.raw_data());  // f64: nothing to convert
  NoGradGuard no_grad;                                             // nothing to cut
  REQUIRE(matmul_operand(x).raw_data() == x.raw_data());
}

TEST_CASE("matmul_operand of a permuted tensor is a dense copy the products reshape", "[grad][bf16]") {
  if (!cpu_has_native_bf16()) return;
  PrecisionScope scope(MatmulPrecision::bf16);
  const Tensor t = permute(to_dtype(randn64({4, 3, 8}, 81), DType::f32), {1, 0, 2});  // [3, 4, 8], fills its span
  const Tensor w = to_dtype(randn64({5, 8}, 82), DType::f32);
  const Tensor op = matmul_operand(t);
  REQUIRE(op.dtype() == DType::bf16);
  REQUIRE(op.is_contiguous());
  REQUIRE(max_abs_diff(linear(op, w), linear(t, w)) == 0.0);
}

TEST_CASE("linear_rows refuses rows that are not the concatenation's tail or that need a gradient", "[grad]") {
  Tensor x = randn64({3, 4}, 75).set_requires_grad(), w = randn64({5, 4}, 76);
  REQUIRE_THROWS_WITH(linear_rows(concat({randn64({2, 4}, 77), x}, 0), x, w), Catch::Contains("must not require"));
  REQUIRE_THROWS_WITH(linear_rows(randn64({2, 4}, 78), x, w), Catch::Contains("trailing rows"));
  REQUIRE_THROWS_WITH(linear_rows(randn64({6, 3}, 79), x, w), Catch::Contains("trailing rows"));
}

// ---------------------------------------------------------------- softmax family

TEST_CASE("grad: softmax", "[grad]") {
  gradcheck([](const In& in) { return softmax(in[0]); }, {rows_with_offset({3, 5}, 51, 1, 50.0)});
  gradcheck([](const In& in) { return softmax(in[0]); }, {randn64({2, 3, 4}, 52)});
  gradcheck([](const In& in) { return softmax(transpose(in[0], 0, 1)); }, {randn64({4, 3}, 53)});
  gradcheck([](const In& in) { return softmax(in[0]); }, {randn64({1}, 54)});
}

TEST_CASE("grad: log_softmax", "[grad]") {
  gradcheck([](const In& in) { return log_softmax(in[0]); }, {rows_with_offset({3, 5}, 61, 1, 50.0)});
  gradcheck([](const In& in) { return log_softmax(in[0]); }, {randn64({2, 3, 4}, 62)});
  gradcheck([](const In& in) { return log_softmax(transpose(in[0], 0, 1)); }, {randn64({4, 3}, 63)});
}

TEST_CASE("softmax and log_softmax forward values match a hand computation", "[grad]") {
  // Row 1 is offset by +50 and row 2 by -800: a naive exp would overflow / underflow.
  std::vector<double> v = randn64({3, 5}, 71).to_doubles();
  for (int i = 0; i < 5; ++i) v[5 + i] += 50.0, v[10 + i] -= 800.0;
  Tensor x = Tensor::from_vector<double>({3, 5}, v);
  std::vector<double> ls = ref_log_softmax(v, 5), sm(ls.size());
  for (size_t i = 0; i < ls.size(); ++i) sm[i] = std::exp(ls[i]);
  require_close(log_softmax(x).to_doubles(), ls, 1e-13);
  require_close(softmax(x).to_doubles(), sm, 1e-13);
  // Rows sum to 1 and the offset does not change the result.
  auto y = softmax(x).to_doubles();
  for (int r = 0; r < 3; ++r) {
    double s = 0;
    for (int i = 0; i < 5; ++i) s += y[r * 5 + i];
    REQUIRE(std::abs(s - 1.0) < 1e-14);
  }
  std::vector<double> shifted(v.begin() + 5, v.begin() + 10);
  for (double& t : shifted) t -= 50.0;
  Tensor y_shift = softmax(Tensor::from_vector<double>({5}, shifted));
  require_close(narrow(softmax(x), 0, 1, 1).to_doubles(), y_shift.to_doubles(), 1e-13);
  // A fixed example: softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6].
  Tensor small = Tensor::from_vector<double>({3}, {0.0, std::log(2.0), std::log(3.0)});
  require_close(softmax(small).to_doubles(), {1.0 / 6, 2.0 / 6, 3.0 / 6}, 1e-15);
}

// ---------------------------------------------------------------- layer norm

TEST_CASE("grad: add_layer_norm (x, residual, gamma and beta)", "[grad]") {
  gradcheck([](const In& in) { return add_layer_norm(in[0], in[1], in[2], in[3]); },
            {randn64({2, 3, 5}, 71), randn64({2, 3, 5}, 72), add_scalar(randn64({5}, 73, 0.3), 1.0), randn64({5}, 74)});
  // A strided residual, and the same tensor as both summands.
  gradcheck([](const In& in) { return add_layer_norm(in[0], transpose(in[1], 0, 1), in[2], in[3], 1e-3); },
            {randn64({4, 2, 3}, 75), randn64({2, 4, 3}, 76), randn64({3}, 77), randn64({3}, 78)});
  gradcheck([](const In& in) { return add_layer_norm(in[0], in[0], in[1], in[2]); },
            {randn64({3, 4}, 79), randn64({4}, 80), randn64({4}, 69)});
}

TEST_CASE("add_layer_norm equals layer_norm(add) in f32, forward and backward", "[grad]") {
  Tensor x = to_dtype(randn64({6, 2, 32}, 61), DType::f32), r = to_dtype(randn64({6, 2, 32}, 62), DType::f32);
  Tensor g = to_dtype(add_scalar(randn64({32}, 63, 0.2), 1.0), DType::f32), b = to_dtype(randn64({32}, 64), DType::f32);
  std::vector<Tensor> a = {contiguous_copy(x), contiguous_copy(r), contiguous_copy(g), contiguous_copy(b)};
  std::vector<Tensor> c = {contiguous_copy(x), contiguous_copy(r), contiguous_copy(g), contiguous_copy(b)};
  for (auto& t : a) t.set_requires_grad();
  for (auto& t : c) t.set_requires_grad();
  Tensor y1 = add_layer_norm(a[0], a[1], a[2], a[3]), y2 = layer_norm(add(c[0], c[1]), c[2], c[3]);
  REQUIRE(max_abs_diff(y1, y2) <= 1e-6);
  Tensor w = to_dtype(randn64(y1.shape(), 65), DType::f32);
  backward(sum(mul(y1, w)));
  backward(sum(mul(y2, w)));
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(max_abs_diff(a[i].grad(), c[i].grad()) <= 1e-5);
}

TEST_CASE("grad: layer_norm (x, gamma and beta)", "[grad]") {
  auto ln = [](const In& in) { return layer_norm(in[0], in[1], in[2]); };
  gradcheck(ln, {randn64({2, 3, 5}, 81), add_scalar(randn64({5}, 82, 0.3), 1.0), randn64({5}, 83)});
  gradcheck([](const In& in) { return layer_norm(transpose(in[0], 0, 1), in[1], in[2], 1e-3); },
            {randn64({4, 2, 3}, 84), randn64({3}, 85), randn64({3}, 86)});
  // gamma and beta as strided views.
  gradcheck([](const In& in) { return layer_norm(in[0], narrow(in[1], 0, 1, 4), squeeze(narrow(in[2], 1, 1, 1), 1)); },
            {randn64({3, 4}, 90), randn64({6}, 94), randn64({4, 2}, 95)});
  // A row with a large common offset: the centred variance keeps it well conditioned.
  gradcheck(ln, {rows_with_offset({2, 4}, 87, 0, 20.0), randn64({4}, 88), randn64({4}, 89)});
}

TEST_CASE("layer_norm forward values match a hand computation", "[grad]") {
  const int64_t rows = 3, n = 4;
  const double eps = 1e-5;
  Tensor x = randn64({rows, n}, 91, 2.0), g = randn64({n}, 92), b = randn64({n}, 93);
  auto xv = x.to_doubles(), gv = g.to_doubles(), bv = b.to_doubles();
  std::vector<double> want;
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mu += xv[r * n + i];
    mu /= n;
    for (int64_t i = 0; i < n; ++i) var += (xv[r * n + i] - mu) * (xv[r * n + i] - mu);
    var /= n;  // biased variance, as in PyTorch
    for (int64_t i = 0; i < n; ++i) want.push_back((xv[r * n + i] - mu) / std::sqrt(var + eps) * gv[i] + bv[i]);
  }
  require_close(layer_norm(x, g, b, eps).to_doubles(), want, 1e-12);
  // A fixed example: x = [1, 2, 3, 4], gamma 1, beta 0, eps 0 -> (x - 2.5) / sqrt(1.25).
  Tensor x1 = Tensor::from_vector<double>({4}, {1, 2, 3, 4});
  Tensor ones = Tensor::ones({4}, DType::f64), zeros = Tensor::zeros({4}, DType::f64);
  const double s = std::sqrt(1.25);
  require_close(layer_norm(x1, ones, zeros, 0.0).to_doubles(), {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, 1e-14);
}

// ---------------------------------------------------------------- cross-entropy

TEST_CASE("grad: cross_entropy on 2-D logits with ignore_index", "[grad]") {
  Tensor t = targets64({4}, {1, kIgnoreIndex, 4, 0});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    INFO("reduction " << static_cast<int>(red));
    gradcheck([t, red](const In& in) { return cross_entropy(in[0], t, red); }, {randn64({4, 5}, 101)});
    gradcheck([t, red](const In& in) { return cross_entropy(transpose(in[0], 0, 1), t, red); },
              {randn64({5, 4}, 102)});
  }
  // A custom ignore_index and i32 targets.
  Tensor t32 = Tensor::from_vector<int32_t>({4}, {2, 3, -1, 2});
  gradcheck([t32](const In& in) { return cross_entropy(in[0], t32, Reduction::mean, -1); }, {randn64({4, 5}, 103)});
}

TEST_CASE("grad: cross_entropy on 3-D logits with ignore_index", "[grad]") {
  Tensor t = targets64({2, 3}, {0, 3, kIgnoreIndex, kIgnoreIndex, 2, 1});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    INFO("reduction " << static_cast<int>(red));
    gradcheck([t, red](const In& in) { return cross_entropy(in[0], t, red); }, {randn64({2, 3, 4}, 111)});
    // One very confident row (+50 on one logit) keeps the log-sum-exp stable.
    gradcheck([t, red](const In& in) { return cross_entropy(in[0], t, red); },
              {rows_with_offset({2, 3, 4}, 112, 4, 50.0)});
  }
  REQUIRE(cross_entropy(randn64({2, 3, 4}, 113), t, Reduction::none).shape() == Shape{2, 3});
  REQUIRE(cross_entropy(randn64({2, 3, 4}, 114), t, Reduction::mean).shape() == Shape{});
}

TEST_CASE("cross_entropy forward values match a hand computation", "[grad]") {
  const int64_t N = 5, V = 4;
  Tensor logits = randn64({N, V}, 121, 2.0);
  std::vector<int64_t> tv = {3, kIgnoreIndex, 0, 2, kIgnoreIndex};
  Tensor t = targets64({N}, tv);
  std::vector<double> lv = logits.to_doubles(), ls = ref_log_softmax(lv, V), per_row;
  double total = 0;
  int counted = 0;
  for (int64_t i = 0; i < N; ++i) {
    double l = tv[i] == kIgnoreIndex ? 0.0 : -ls[i * V + tv[i]];
    per_row.push_back(l);
    total += l;
    counted += tv[i] != kIgnoreIndex;
  }
  require_close(cross_entropy(logits, t, Reduction::none).to_doubles(), per_row, 1e-13);
  require_close(cross_entropy(logits, t, Reduction::sum).to_doubles(), {total}, 1e-13);
  require_close(cross_entropy(logits, t, Reduction::mean).to_doubles(), {total / counted}, 1e-13);
  // A fixed example: uniform logits over V classes give ln V.
  Tensor uniform = Tensor::zeros({2, 4}, DType::f64);
  require_close(cross_entropy(uniform, targets64({2}, {1, 3})).to_doubles(), {std::log(4.0)}, 1e-15);
  // Every target ignored: mean is 0 and so is the gradient.
  Tensor x = randn64({2, 4}, 122);
  x.set_requires_grad(true);
  Tensor y = cross_entropy(x, targets64({2}, {kIgnoreIndex, kIgnoreIndex}));
  REQUIRE(y.item() == 0.0);
  backward(y);
  for (double gx : x.grad().to_doubles()) REQUIRE(gx == 0.0);
}

// ---------------------------------------------------------------- dropout

TEST_CASE("grad: dropout in training mode (fixed seed and counter)", "[grad]") {
  const double p = 0.3;
  gradcheck([p](const In& in) { return dropout(in[0], p, true, 7, 100); }, {randn64({4, 5}, 131)});
  gradcheck([p](const In& in) { return dropout(transpose(in[0], 0, 1), p, true, 7, 100); }, {randn64({5, 4}, 132)});
  // Each element is dropped or scaled by 1 / (1 - p), reproducibly for the same (seed, counter).
  Tensor x = randn64({8, 8}, 133);
  auto xv = x.to_doubles(), y1 = dropout(x, p, true, 7, 100).to_doubles(), y2 = dropout(x, p, true, 7, 100).to_doubles();
  auto y3 = dropout(x, p, true, 7, 164).to_doubles();
  REQUIRE(y1 == y2);
  REQUIRE(y1 != y3);
  int dropped = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (y1[i] == 0.0) {
      ++dropped;
    } else {
      REQUIRE(std::abs(y1[i] - xv[i] / (1 - p)) <= 1e-15 * std::abs(y1[i]));
    }
  }
  REQUIRE(dropped > 5);
  REQUIRE(dropped < 40);
}

TEST_CASE("dropout is the identity when not training", "[grad]") {
  Tensor x = randn64({3, 4}, 141);
  Tensor y = dropout(x, 0.5, false, 7, 0);
  REQUIRE(y.to_doubles() == x.to_doubles());
  REQUIRE(dropout(x, 0.0, true, 7, 0).to_doubles() == x.to_doubles());
  gradcheck([](const In& in) { return dropout(in[0], 0.5, false, 7, 0); }, {randn64({3, 4}, 142)});
  Tensor z = randn64({2, 3}, 143);
  z.set_requires_grad(true);
  backward(sum(dropout(z, 0.5, false, 1, 2)));
  REQUIRE(z.grad().to_doubles() == std::vector<double>(6, 1.0));
}

// ---------------------------------------------------------------- triangular masks

TEST_CASE("triu_mask and tril_mask follow torch.triu / torch.tril", "[grad]") {
  // torch.triu(torch.ones(3, 4), diagonal=d) and torch.tril(...), written out.
  REQUIRE(b8_values(triu_mask(3, 4)) == std::vector<double>{1, 1, 1, 1,  //
                                                           0, 1, 1, 1,  //
                                                           0, 0, 1, 1});
  REQUIRE(b8_values(triu_mask(3, 4, 1)) == std::vector<double>{0, 1, 1, 1,  //
                                                              0, 0, 1, 1,  //
                                                              0, 0, 0, 1});
  REQUIRE(b8_values(triu_mask(3, 4, -1)) == std::vector<double>{1, 1, 1, 1,  //
                                                               1, 1, 1, 1,  //
                                                               0, 1, 1, 1});
  REQUIRE(b8_values(tril_mask(3, 4)) == std::vector<double>{1, 0, 0, 0,  //
                                                           1, 1, 0, 0,  //
                                                           1, 1, 1, 0});
  REQUIRE(b8_values(tril_mask(3, 4, 1)) == std::vector<double>{1, 1, 0, 0,  //
                                                              1, 1, 1, 0,  //
                                                              1, 1, 1, 1});
  REQUIRE(b8_values(tril_mask(3, 4, -1)) == std::vector<double>{0, 0, 0, 0,  //
                                                               1, 0, 0, 0,  //
                                                               1, 1, 0, 0});
  // Tall shape: torch.triu(torch.ones(4, 2)) and torch.tril(torch.ones(4, 2)).
  REQUIRE(triu_mask(4, 2).shape() == Shape{4, 2});
  REQUIRE(b8_values(triu_mask(4, 2)) == std::vector<double>{1, 1, 0, 1, 0, 0, 0, 0});
  REQUIRE(b8_values(tril_mask(4, 2)) == std::vector<double>{1, 0, 1, 1, 1, 1, 1, 1});
  // The causal use: masked_fill above the diagonal, then softmax, gives a lower-triangular matrix.
  Tensor scores = randn64({3, 3}, 151);
  auto attn = softmax(masked_fill(scores, triu_mask(3, 3, 1), -std::numeric_limits<double>::infinity())).to_doubles();
  REQUIRE(attn[0] == 1.0);
  REQUIRE(attn[1] == 0.0);
  REQUIRE(attn[2] == 0.0);
  REQUIRE(attn[5] == 0.0);
}
