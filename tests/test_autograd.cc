// The tape itself: accumulation, detach, no_grad, diamonds, freed graphs and
// gradient-shape errors. Expected gradients are closed forms.
#include <cmath>

#include "gradcheck.h"

using namespace txl;
using namespace txl::testing;

TEST_CASE("a tensor used twice accumulates both gradients", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({3}, {0.5, -1.0, 2.0}).set_requires_grad();
  backward(sum(add(mul(x, x), x)));  // d/dx (x^2 + x) = 2x + 1
  REQUIRE(x.grad().to_doubles() == std::vector<double>{2.0, -1.0, 5.0});
}

TEST_CASE("gradients accumulate across backward calls into leaves", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({2}, {1.0, 3.0}).set_requires_grad();
  backward(sum(mul_scalar(x, 3.0)));
  backward(sum(mul(x, x)));
  REQUIRE(x.grad().to_doubles() == std::vector<double>{3.0 + 2.0, 3.0 + 6.0});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("detach stops gradients", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({2}, {2.0, -3.0}).set_requires_grad();
  Tensor d = x.detach();
  REQUIRE_FALSE(d.requires_grad());
  REQUIRE(d.same_storage(x));
  backward(sum(mul(x, d)));  // only the first factor is differentiated: grad = x
  REQUIRE(x.grad().to_doubles() == std::vector<double>{2.0, -3.0});
}

TEST_CASE("no_grad records nothing and restores the mode", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({2}, {1.0, 2.0}).set_requires_grad();
  {
    NoGradGuard ng;
    REQUIRE_FALSE(grad_enabled());
    Tensor y = exp(mul(x, x));
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE(y.grad_fn() == nullptr);
  }
  REQUIRE(grad_enabled());
  Tensor y = exp(x);
  REQUIRE(y.requires_grad());
  REQUIRE(y.grad_fn() != nullptr);
}

TEST_CASE("a diamond-shaped graph sums both paths", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({3}, {0.1, -0.4, 0.7}).set_requires_grad();
  Tensor a = mul_scalar(x, 2.0);
  Tensor b = mul_scalar(a, 3.0);
  Tensor c = tanh(a);
  backward(sum(add(b, c)));
  auto g = x.grad().to_doubles();
  std::vector<double> xs{0.1, -0.4, 0.7};
  for (size_t i = 0; i < xs.size(); ++i) {
    double t = std::tanh(2 * xs[i]);
    REQUIRE(g[i] == Approx(2.0 * (3.0 + 1.0 - t * t)).epsilon(1e-14));
  }
}

TEST_CASE("backward twice over a freed graph is an error and retain_graph allows it", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({2}, {1.0, 2.0}).set_requires_grad();
  Tensor y = sum(exp(x));
  backward(y);
  REQUIRE_THROWS_WITH(backward(y), Catch::Contains("freed") && Catch::Contains("retain_graph"));

  Tensor z = sum(mul(x, x));
  x.zero_grad();
  backward(z, Tensor(), /*retain_graph=*/true);
  backward(z);
  REQUIRE(x.grad().to_doubles() == std::vector<double>{4.0, 8.0});
}

TEST_CASE("gradient shape mismatches are reported", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({2, 2}, {1, 2, 3, 4}).set_requires_grad();
  Tensor y = exp(x);
  REQUIRE_THROWS_WITH(backward(y), Catch::Contains("not a scalar"));
  REQUIRE_THROWS_WITH(backward(y, Tensor::ones({3}, DType::f64)), Catch::Contains("[3]") && Catch::Contains("[2, 2]"));

  // A node whose backward returns the wrong shape is caught before accumulation.
  Tensor out = mul_scalar(x.detach(), 1.0);
  record(out, "bad_op", {&x}, [](const Tensor&) { return std::vector<Tensor>{Tensor::ones({5}, DType::f64)}; });
  REQUIRE_THROWS_WITH(backward(sum(out)), Catch::Contains("bad_op") && Catch::Contains("[5]") &&
                                              Catch::Contains("[2, 2]"));
}

TEST_CASE("an intermediate that no backward reads is freed after the forward", "[autograd]") {
  // The tape keeps what the backward closures save, not every op's inputs: the scores
  // of the unfused attention before their softmax are such intermediates (they doubled
  // its memory on a GPU while the tape held them).
  Tensor x = Tensor::from_vector<double>({3}, {1, 2, 3}).set_requires_grad();
  std::weak_ptr<Storage> seen;  // the memory, whichever tensors share it
  Tensor y;
  {
    Tensor a = add(x, x);  // its node saves nothing, nor does sum's
    seen = a.impl().storage;
    y = sum(a);
  }
  REQUIRE(seen.expired());
  backward(y);
  REQUIRE(x.grad().to_doubles() == std::vector<double>{2, 2, 2});
  // What a backward does read stays: exp saves its output.
  Tensor z;
  {
    Tensor e = exp(x);
    seen = e.impl().storage;
    z = sum(e);
  }
  REQUIRE_FALSE(seen.expired());
  // A diamond (one intermediate read twice by an op that saves neither input) routes
  // both gradients to the intermediate's producer through the edges alone, also when
  // the graph is kept for a second backward.
  x.zero_grad();
  Tensor w;
  {
    Tensor a = mul_scalar(x, 3.0);
    w = sum(add(a, a));
  }
  backward(w, Tensor(), /*retain_graph=*/true);
  backward(w);
  REQUIRE(x.grad().to_doubles() == std::vector<double>{12, 12, 12});
}

TEST_CASE("freeing the graph releases saved tensors", "[autograd]") {
  Tensor x = randn64({64, 64}, 3).set_requires_grad();
  Tensor y = sum(tanh(mul(x, x)));
  std::weak_ptr<Node> node = y.grad_fn();
  REQUIRE(node.lock()->inputs.size() == 1);
  backward(y);
  REQUIRE(node.lock()->released);
  REQUIRE(node.lock()->inputs.empty());
}
