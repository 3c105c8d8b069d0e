// Tensor basics: factories, views without copies, contiguous(), the allocator cache.
#include "gradcheck.h"
#include "txl/core/allocator.h"

using namespace txl;
using namespace txl::testing;

TEST_CASE("views share storage and index correctly", "[tensor]") {
  Tensor x = Tensor::from_vector<double>({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor t = transpose(x, 0, 1);
  REQUIRE(t.same_storage(x));
  REQUIRE_FALSE(t.is_contiguous());
  REQUIRE(t.to_doubles() == std::vector<double>{0, 3, 1, 4, 2, 5});
  Tensor n = narrow(x, 1, 1, 2);
  REQUIRE(n.same_storage(x));
  REQUIRE(n.to_doubles() == std::vector<double>{1, 2, 4, 5});
  Tensor e = expand(narrow(x, 0, 1, 1), {4, 3});
  REQUIRE(e.strides()[0] == 0);
  REQUIRE(e.to_doubles() == std::vector<double>{3, 4, 5, 3, 4, 5, 3, 4, 5, 3, 4, 5});
  Tensor c = contiguous(t);
  REQUIRE(c.is_contiguous());
  REQUIRE_FALSE(c.same_storage(x));
  REQUIRE(c.to_doubles() == t.to_doubles());
  Tensor r = reshape(x, {3, 2});
  REQUIRE(r.same_storage(x));
  REQUIRE(unsqueeze(x, 0).shape() == Shape{1, 2, 3});
  REQUIRE(squeeze(unsqueeze(x, 2), 2).shape() == Shape{2, 3});
}

TEST_CASE("reshape of a non-viewable layout copies, of a viewable one does not", "[tensor]") {
  Tensor x = randn64({4, 6}, 1);
  Tensor t = transpose(x, 0, 1);  // (6, 4) non-contiguous
  Tensor merged = reshape(t, {24});
  REQUIRE_FALSE(merged.same_storage(x));
  REQUIRE(merged.to_doubles() == t.to_doubles());
  Tensor split_dim = reshape(t, {2, 3, 4});  // splits the strided dim: still a view
  REQUIRE(split_dim.same_storage(x));
  REQUIRE(split_dim.to_doubles() == t.to_doubles());
}

TEST_CASE("caching allocator serves repeated shapes from its cache", "[tensor]") {
  auto& a = HostAllocator::instance();
  { Tensor warm = Tensor::empty({1000, 37}); }
  AllocatorStats before = a.stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({1000, 37});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
  AllocatorStats after = a.stats();
  REQUIRE(after.misses == before.misses);
  REQUIRE(after.hits == before.hits + 10);
}

TEST_CASE("shape errors name the op and the shapes", "[tensor]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  REQUIRE_THROWS_WITH(add(a, b), Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
  REQUIRE_THROWS_WITH(matmul(a, b), Catch::Contains("matmul") && Catch::Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(add(a, Tensor::zeros({2, 3}, DType::f64)), Catch::Contains("dtype"));
  Tensor w = Tensor::zeros({5, 3});
  Tensor ids = Tensor::from_vector<int64_t>({2}, {1, 7});
  REQUIRE_THROWS_WITH(embedding(w, ids), Catch::Contains("index 7") && Catch::Contains("[0, 5)"));
}

TEST_CASE("elementwise kernels split long rows across threads: every element once, as a scalar loop", "[tensor]") {
  // Contiguous operands merge into one row of n elements, and [2, n] into two rows:
  // both are split into pieces for the threads. Odd lengths leave a short last piece.
  for (const Shape& s : {Shape{100003}, Shape{2, 70001}, Shape{3, 5, 9001}}) {
    INFO(shape_str(s));
    Generator g(7);
    Tensor a = Tensor::randn(s, g, DType::f64), b = Tensor::randn(s, g, DType::f64);
    const std::vector<double> av = a.to_doubles(), bv = b.to_doubles();
    const std::vector<double> sum = add(a, b).to_doubles(), prod = mul(a, b).to_doubles(),
                              ex = exp(a).to_doubles();
    Tensor acc = contiguous_copy(a);
    add_(acc, b);
    const std::vector<double> accv = acc.to_doubles(), copied = to_dtype(a, DType::f32).to_doubles();
    Tensor filled = Tensor::full(s, 0.5, DType::f64);
    double filled_sum = 0;
    for (double v : filled.to_doubles()) filled_sum += v;
    CHECK(filled_sum == 0.5 * static_cast<double>(av.size()));
    size_t bad = 0;
    for (size_t i = 0; i < av.size(); ++i) {
      bad += sum[i] != av[i] + bv[i];
      bad += prod[i] != av[i] * bv[i];
      bad += accv[i] != av[i] + bv[i];
      bad += ex[i] != std::exp(av[i]);
      bad += copied[i] != static_cast<double>(static_cast<float>(av[i]));
    }
    CHECK(bad == 0);
  }
}
