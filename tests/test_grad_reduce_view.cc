// Float64 finite-difference gradient checks for sum / mean / max over single, several
// and all axes with and without keepdim, and for every view op (reshape, permute,
// transpose, narrow, expand, unsqueeze, squeeze, contiguous, flatten), contiguous or not.
#include "gradcheck.h"

using namespace txl;
using namespace txl::testing;

namespace {

using In = std::vector<Tensor>;
using ReduceFn = Tensor (*)(const Tensor&, const std::vector<int64_t>&, bool);

struct ReduceCase {
  std::vector<int64_t> axes;
  bool keepdim;
  Shape expect;  // output shape for a (2, 3, 4) input
};

const std::vector<ReduceCase> kReduceCases = {
    {{1}, false, {2, 4}},       {{1}, true, {2, 1, 4}},       {{-1}, false, {2, 3}},
    {{0}, false, {3, 4}},       {{0}, true, {1, 3, 4}},       {{0, 1}, false, {4}},
    {{0, 2}, false, {3}},       {{2, 0}, true, {1, 3, 1}},    {{}, false, {}},
    {{}, true, {1, 1, 1}},      {{0, 1, 2}, false, {}},
};

// Every axes/keepdim case on a contiguous input, then on non-contiguous views.
void check_reduce(ReduceFn op) {
  uint64_t seed = 100;
  for (const ReduceCase& c : kReduceCases) {
    INFO("axes size " << c.axes.size() << (c.axes.empty() ? "" : " first " + std::to_string(c.axes[0]))
                      << " keepdim " << c.keepdim);
    Tensor x = randn64({2, 3, 4}, seed++);
    REQUIRE(op(x, c.axes, c.keepdim).shape() == c.expect);
    gradcheck([op, c](const In& in) { return op(in[0], c.axes, c.keepdim); }, {x});
    // The same reduction of a permuted (non-contiguous) view of a (4, 2, 3) leaf.
    gradcheck([op, c](const In& in) { return op(permute(in[0], {1, 2, 0}), c.axes, c.keepdim); },
              {randn64({4, 2, 3}, seed++)});
  }
  Tensor base = randn64({3, 6}, seed++);
  gradcheck([op](const In& in) { return op(in[0], {0}, false); }, {narrow(base, 1, 1, 4)});
}

}  // namespace

TEST_CASE("grad: sum", "[grad]") { check_reduce(&sum); }
TEST_CASE("grad: mean", "[grad]") { check_reduce(&mean); }
TEST_CASE("grad: max (inputs without ties)", "[grad]") { check_reduce(&max); }

TEST_CASE("max shares the gradient equally among tied maxima", "[grad]") {
  Tensor x = Tensor::from_vector<double>({2, 3}, {1, 3, 3, 2, 0, -1});
  x.set_requires_grad(true);
  Tensor y = max(x, {1});
  REQUIRE(y.to_doubles() == std::vector<double>{3, 2});
  backward(sum(y));
  REQUIRE(x.grad().to_doubles() == std::vector<double>{0, 0.5, 0.5, 1, 0, 0});
}

TEST_CASE("grad: reshape", "[grad]") {
  auto r = [](Shape s) { return [s](const In& in) { return reshape(in[0], s); }; };
  gradcheck(r({6, 4}), {randn64({2, 3, 4}, 1)});
  gradcheck(r({4, -1, 2}), {randn64({2, 3, 4}, 2)});
  gradcheck(r({24}), {randn64({2, 3, 4}, 3)});
  gradcheck(r({1, 2, 1, 3}), {randn64({6}, 4)});
  gradcheck(r({}), {randn64({1, 1}, 5)});
  // Of a transposed (3, 2, 4) view: merging the strided dims copies, splitting the last one is a view.
  gradcheck([](const In& in) { return reshape(transpose(in[0], 0, 1), {6, 4}); }, {randn64({2, 3, 4}, 6)});
  gradcheck([](const In& in) { return reshape(transpose(in[0], 0, 1), {3, 8}); }, {randn64({2, 3, 4}, 7)});
  gradcheck([](const In& in) { return reshape(transpose(in[0], 0, 1), {3, 2, 2, 2}); }, {randn64({2, 3, 4}, 8)});
  gradcheck([](const In& in) { return reshape(narrow(in[0], 1, 1, 2), {-1}); }, {randn64({3, 4}, 9)});
  Tensor base = randn64({4, 3}, 10);
  gradcheck(r({2, 6}), {transpose(base, 0, 1)});
}

TEST_CASE("reshape of strided and expanded views keeps row-major order", "[grad]") {
  // Views of a (4, 6) leaf: transposed, narrowed, expanded, with size-1 dims.
  Tensor x = randn64({4, 6}, 91);
  std::vector<Tensor> views = {transpose(x, 0, 1),
                               narrow(x, 1, 1, 4),
                               narrow(transpose(x, 0, 1), 0, 2, 4),
                               unsqueeze(transpose(x, 0, 1), 1),
                               expand(narrow(x, 0, 1, 1), {4, 6}),
                               expand(unsqueeze(narrow(x, 1, 2, 1), 0), {2, 4, 2}),
                               permute(reshape(x, {2, 2, 3, 2}), {2, 0, 3, 1})};
  for (size_t v = 0; v < views.size(); ++v) {
    const Tensor& t = views[v];
    const int64_t n = t.numel();
    std::vector<Shape> targets = {{n}, {n / 2, 2}, {2, n / 2}, {1, n, 1}, {2, 1, n / 4, 2}};
    for (const Shape& s : targets) {
      INFO("view " << v << " target " << shape_str(s));
      Tensor r = reshape(t, s);
      REQUIRE(r.shape() == s);
      REQUIRE(r.to_doubles() == t.to_doubles());
    }
  }
  gradcheck([](const In& in) { return reshape(expand(in[0], {3, 4}), {2, 6}); }, {randn64({3, 1}, 92)});
  gradcheck([](const In& in) { return reshape(expand(in[0], {3, 4}), {3, 2, 2}); }, {randn64({3, 1}, 93)});
  gradcheck([](const In& in) { return reshape(permute(in[0], {2, 0, 1}), {2, 12}); }, {randn64({2, 3, 4}, 94)});
}

TEST_CASE("grad: permute", "[grad]") {
  gradcheck([](const In& in) { return permute(in[0], {2, 0, 1}); }, {randn64({2, 3, 4}, 11)});
  gradcheck([](const In& in) { return permute(in[0], {-1, 0, 1}); }, {randn64({2, 3, 4}, 12)});
  // A permute of a permute, then an op that reads the strided result.
  gradcheck([](const In& in) { return exp(permute(permute(in[0], {1, 2, 0}), {0, 2, 1})); },
            {randn64({2, 3, 4}, 13)});
}

TEST_CASE("grad: transpose", "[grad]") {
  gradcheck([](const In& in) { return transpose(in[0], 0, 2); }, {randn64({2, 3, 4}, 21)});
  gradcheck([](const In& in) { return transpose(in[0], -1, -2); }, {randn64({2, 3, 4}, 22)});
  gradcheck([](const In& in) { return mul(transpose(in[0], 0, 1), in[0]); }, {randn64({3, 3}, 23)});
}

TEST_CASE("grad: narrow", "[grad]") {
  gradcheck([](const In& in) { return narrow(in[0], 1, 1, 2); }, {randn64({2, 4, 3}, 31)});
  gradcheck([](const In& in) { return narrow(in[0], -1, 0, 1); }, {randn64({2, 4, 3}, 32)});
  gradcheck([](const In& in) { return narrow(narrow(in[0], 0, 1, 2), 1, 2, 2); }, {randn64({4, 5}, 33)});
  // Two overlapping windows of the same leaf: gradients add where they overlap.
  gradcheck([](const In& in) { return add(narrow(in[0], 1, 0, 3), narrow(in[0], 1, 1, 3)); },
            {randn64({2, 4}, 34)});
  gradcheck([](const In& in) { return narrow(transpose(in[0], 0, 1), 0, 1, 2); }, {randn64({3, 4}, 35)});
}

TEST_CASE("grad: expand", "[grad]") {
  gradcheck([](const In& in) { return expand(in[0], {2, 3, 4}); }, {randn64({3, 1}, 41)});
  gradcheck([](const In& in) { return expand(in[0], {3, 4}); }, {randn64({1, 4}, 42)});
  gradcheck([](const In& in) { return expand(in[0], {2, 3}); }, {randn64({}, 43)});
  gradcheck([](const In& in) { return exp(expand(narrow(in[0], 0, 1, 1), {3, 4})); }, {randn64({2, 4}, 44)});
  gradcheck([](const In& in) { return expand(transpose(in[0], 0, 1), {2, 3, 4}); }, {randn64({1, 3}, 45)});
}

TEST_CASE("grad: unsqueeze", "[grad]") {
  for (int64_t axis : {0, 1, 2, -1}) {
    INFO("axis " << axis);
    gradcheck([axis](const In& in) { return unsqueeze(in[0], axis); }, {randn64({2, 3}, 51)});
    gradcheck([axis](const In& in) { return unsqueeze(transpose(in[0], 0, 1), axis); }, {randn64({3, 2}, 52)});
  }
  REQUIRE(unsqueeze(randn64({2, 3}, 53), -1).shape() == Shape{2, 3, 1});
}

TEST_CASE("grad: squeeze", "[grad]") {
  gradcheck([](const In& in) { return squeeze(in[0], 1); }, {randn64({2, 1, 3}, 61)});
  gradcheck([](const In& in) { return squeeze(in[0], -1); }, {randn64({2, 3, 1}, 62)});
  gradcheck([](const In& in) { return squeeze(permute(in[0], {2, 1, 0}), 1); }, {randn64({2, 1, 3}, 63)});
  REQUIRE_THROWS_WITH(squeeze(randn64({2, 3}, 64), 0), Catch::Contains("squeeze"));
}

TEST_CASE("grad: contiguous", "[grad]") {
  gradcheck([](const In& in) {
    Tensor c = contiguous(transpose(in[0], 0, 1));
    REQUIRE(c.is_contiguous());
    return c;
  }, {randn64({3, 4}, 71)});
  gradcheck([](const In& in) { return contiguous(in[0]); }, {randn64({3, 4}, 72)});
  gradcheck([](const In& in) { return mul(contiguous(narrow(in[0], 1, 1, 2)), in[1]); },
            {randn64({3, 4}, 73), randn64({3, 2}, 74)});
}

TEST_CASE("grad: flatten", "[grad]") {
  gradcheck([](const In& in) { return flatten(in[0]); }, {randn64({2, 3, 2}, 81)});
  gradcheck([](const In& in) { return flatten(permute(in[0], {2, 0, 1})); }, {randn64({2, 3, 2}, 82)});
}

TEST_CASE("band and unband: adaptive span's unskew / skew by direct indexing", "[grad]") {
  // Values against the definition y[i, j] = x[i, i + j] and its transpose placement.
  Tensor x = randn64({2, 3, 6}, 41);
  Tensor b = band(x, 4);
  REQUIRE(b.shape() == Shape{2, 3, 4});
  auto xv = x.to_doubles(), bv = b.to_doubles();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) REQUIRE(bv[(n * 3 + i) * 4 + j] == xv[(n * 3 + i) * 6 + i + j]);
  Tensor u = unband(b, 6);
  auto uv = u.to_doubles();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t k = 0; k < 6; ++k) {
        const int64_t j = k - i;
        REQUIRE(uv[(n * 3 + i) * 6 + k] == (j >= 0 && j < 4 ? bv[(n * 3 + i) * 4 + j] : 0.0));
      }
  CHECK_THROWS(band(x, 5));  // needs K >= M - 1 + W
  gradcheck([](const In& in) { return band(in[0], 3); }, {randn64({2, 4, 6}, 42)});
  gradcheck([](const In& in) { return band(transpose(in[0], 1, 2), 2); }, {randn64({2, 5, 3}, 43)});
  gradcheck([](const In& in) { return unband(in[0], 7); }, {randn64({2, 4, 4}, 44)});
  gradcheck([](const In& in) { return unband(narrow(in[0], 1, 1, 3), 5); }, {randn64({3, 4}, 45)});
}
