// Float64 gradient checks for the gather and layout ops: index_select and embedding with
// repeated indices (scatter-add backward), concat / split / stack along outer, middle and
// last axes, and constant padding; plus forward values of each.
#include "gradcheck.h"

using namespace txl;
using namespace txl::testing;

namespace {
using In = std::vector<Tensor>;
Tensor ids64(const Shape& s, const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(s, v); }
}  // namespace

TEST_CASE("grad: index_select with repeated indices", "[grad]") {
  SECTION("axis 0") {
    Tensor idx = ids64({5}, {2, 0, 2, 1, 2});
    gradcheck([idx](const In& in) { return index_select(in[0], 0, idx); }, {randn64({3, 4}, 1)});
    Tensor x = randn64({3, 4}, 2);
    auto xv = x.to_doubles(), yv = index_select(x, 0, idx).to_doubles();
    for (int k = 0; k < 5; ++k)
      for (int c = 0; c < 4; ++c) REQUIRE(yv[k * 4 + c] == xv[static_cast<size_t>(idx.to_doubles()[k]) * 4 + c]);
  }
  SECTION("axis 1 of a 3-D tensor") {
    Tensor idx = ids64({4}, {1, 1, 0, 3});
    gradcheck([idx](const In& in) { return index_select(in[0], 1, idx); }, {randn64({2, 4, 3}, 3)});
    gradcheck([idx](const In& in) { return index_select(in[0], -2, idx); }, {randn64({2, 4, 3}, 4)});
  }
  SECTION("i32 index, non-contiguous input") {
    Tensor idx = Tensor::from_vector<int32_t>({3}, {2, 2, 0});
    gradcheck([idx](const In& in) { return index_select(transpose(in[0], 0, 1), 1, idx); }, {randn64({3, 4}, 5)});
  }
  SECTION("gradient counts repeats") {
    Tensor x = randn64({3, 2}, 6);
    x.set_requires_grad(true);
    backward(sum(index_select(x, 0, ids64({4}, {2, 0, 2, 2}))));
    REQUIRE(x.grad().to_doubles() == std::vector<double>{1, 1, 0, 0, 3, 3});
  }
}

TEST_CASE("grad: embedding with repeated ids", "[grad]") {
  Tensor ids = ids64({2, 3}, {1, 4, 1, 0, 1, 4});
  gradcheck([ids](const In& in) { return embedding(in[0], ids); }, {randn64({5, 3}, 11)});
  Tensor w = randn64({5, 3}, 12);
  Tensor y = embedding(w, ids);
  REQUIRE(y.shape() == Shape{2, 3, 3});
  auto wv = w.to_doubles(), yv = y.to_doubles(), iv = ids.to_doubles();
  for (int p = 0; p < 6; ++p)
    for (int d = 0; d < 3; ++d) REQUIRE(yv[p * 3 + d] == wv[static_cast<int>(iv[p]) * 3 + d]);
  // 1-D ids, i32.
  Tensor ids32 = Tensor::from_vector<int32_t>({4}, {3, 3, 3, 0});
  gradcheck([ids32](const In& in) { return embedding(in[0], ids32); }, {randn64({4, 2}, 13)});
}

TEST_CASE("grad: concat of three inputs", "[grad]") {
  SECTION("axis 0") {
    gradcheck([](const In& in) { return concat({in[0], in[1], in[2]}, 0); },
              {randn64({1, 3}, 21), randn64({2, 3}, 22), randn64({3, 3}, 23)});
  }
  SECTION("middle axis") {
    gradcheck([](const In& in) { return concat({in[0], in[1], in[2]}, 1); },
              {randn64({2, 1, 4}, 24), randn64({2, 3, 4}, 25), randn64({2, 2, 4}, 26)});
  }
  SECTION("last axis (-1), non-contiguous inputs") {
    gradcheck([](const In& in) { return concat({transpose(in[0], 0, 1), in[1], narrow(in[2], 1, 1, 2)}, -1); },
              {randn64({2, 3}, 27), randn64({3, 1}, 28), randn64({3, 4}, 29)});
  }
  SECTION("a constant input between two that need grad") {
    Tensor c = randn64({2, 2}, 30);
    gradcheck([c](const In& in) { return concat({in[0], c, in[1]}, 1); }, {randn64({2, 1}, 31), randn64({2, 3}, 32)});
  }
  SECTION("the same tensor twice") {
    gradcheck([](const In& in) { return concat({in[0], in[0], in[0]}, 0); }, {randn64({2, 2}, 33)});
  }
  SECTION("forward values") {
    Tensor a = Tensor::from_vector<double>({2, 1}, {1, 2});
    Tensor b = Tensor::from_vector<double>({2, 2}, {3, 4, 5, 6});
    Tensor c = Tensor::from_vector<double>({2, 1}, {7, 8});
    Tensor y = concat({a, b, c}, 1);
    REQUIRE(y.shape() == Shape{2, 4});
    REQUIRE(y.to_doubles() == std::vector<double>{1, 3, 4, 7, 2, 5, 6, 8});
  }
}

TEST_CASE("grad: split", "[grad]") {
  const std::vector<int64_t> sizes = {1, 2, 1};
  for (size_t part = 0; part < sizes.size(); ++part) {
    INFO("part " << part);
    gradcheck([&sizes, part](const In& in) { return split(in[0], sizes, 1)[part]; }, {randn64({2, 4, 3}, 41)});
  }
  // All parts used together, with different weights per part.
  gradcheck([&sizes](const In& in) {
    auto p = split(in[0], sizes, 1);
    return add(mul(p[0], p[2]), mul_scalar(p[1], 3.0));
  }, {randn64({2, 4, 3}, 42)});
  gradcheck([](const In& in) {
    auto p = split(transpose(in[0], 0, 1), {2, 1}, -1);
    return mul(p[0], narrow(p[0], 1, 1, 1) + p[1]);
  }, {randn64({3, 4}, 43)});
  Tensor x = Tensor::from_vector<double>({2, 3}, {0, 1, 2, 3, 4, 5});
  auto p = split(x, {2, 1}, 1);
  REQUIRE(p.size() == 2);
  REQUIRE(p[0].to_doubles() == std::vector<double>{0, 1, 3, 4});
  REQUIRE(p[1].to_doubles() == std::vector<double>{2, 5});
  REQUIRE_THROWS_WITH(split(x, {2, 2}, 1), Catch::Contains("split"));
}

TEST_CASE("grad: stack", "[grad]") {
  for (int64_t axis : {0, 1, 2, -1}) {
    INFO("axis " << axis);
    gradcheck([axis](const In& in) { return stack({in[0], in[1], in[2]}, axis); },
              {randn64({2, 3}, 51), randn64({2, 3}, 52), randn64({2, 3}, 53)});
  }
  gradcheck([](const In& in) { return stack({transpose(in[0], 0, 1), in[1]}, 1); },
            {randn64({3, 2}, 54), randn64({2, 3}, 55)});
  Tensor a = Tensor::from_vector<double>({2}, {1, 2}), b = Tensor::from_vector<double>({2}, {3, 4});
  REQUIRE(stack({a, b}, 0).to_doubles() == std::vector<double>{1, 2, 3, 4});
  REQUIRE(stack({a, b}, 1).shape() == Shape{2, 2});
  REQUIRE(stack({a, b}, 1).to_doubles() == std::vector<double>{1, 3, 2, 4});
}

TEST_CASE("grad: pad", "[grad]") {
  const std::vector<std::pair<int64_t, int64_t>> pads = {{1, 2}, {0, 3}};
  gradcheck([&pads](const In& in) { return pad(in[0], pads, 1.5); }, {randn64({2, 3, 4}, 61)});
  gradcheck([](const In& in) { return pad(in[0], {{2, 0}, {1, 1}}, -0.5); }, {randn64({2, 3}, 62)});
  gradcheck([](const In& in) { return pad(transpose(in[0], 0, 1), {{1, 1}, {2, 1}}, 2.0); }, {randn64({3, 2}, 63)});
  // Forward: x sits in the window [1, 3) x [0, 3) x [0, 4); the rest is the pad value.
  Tensor x = randn64({2, 3, 4}, 64);
  Tensor y = pad(x, pads, 1.5);
  REQUIRE(y.shape() == Shape{5, 6, 4});
  auto xv = x.to_doubles(), yv = y.to_doubles();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j)
      for (int k = 0; k < 4; ++k) {
        const bool inside = i >= 1 && i < 3 && j < 3;
        const double want = inside ? xv[((i - 1) * 3 + j) * 4 + k] : 1.5;
        REQUIRE(yv[(i * 6 + j) * 4 + k] == want);
      }
}
