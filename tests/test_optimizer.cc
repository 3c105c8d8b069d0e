// Optimizers, clipping and schedules against their closed forms (PyTorch's formulas),
// computed here in double precision by hand.
#include <algorithm>
#include <cmath>
#include <functional>

#include "gradcheck.h"
#include "txl/nn/parameters.h"
#include "txl/train/optimizer.h"

using namespace txl;
using namespace txl::testing;

namespace {

struct Fixture {
  ParameterSet params;
  std::vector<double> w0 = {0.5, -1.0, 2.0, 0.25};
  std::vector<double> g = {0.1, -0.3, 0.05, 1.5};
  Fixture() {
    params.declare("a", {2});
    params.declare("b", {2});
    params.finalize(DType::f64);
    std::copy(w0.begin(), w0.end(), params.flat_data().data<double>());
  }
  void set_grad() { std::copy(g.begin(), g.end(), params.flat_grad().data<double>()); }
  std::vector<double> weights() { return params.flat_data().to_doubles(); }
};

}  // namespace

TEST_CASE("Adam and AdamW follow PyTorch's update over several steps", "[optimizer]") {
  for (const char* name : {"adam", "adamw"}) {
    Fixture f;
    OptimizerConfig c;
    c.name = name;
    c.lr = 0.01;
    c.betas = {0.8, 0.9};
    c.eps = 1e-6;
    c.weight_decay = 0.1;
    auto opt = make_optimizer(c, f.params);
    std::vector<double> w = f.w0, m(4, 0), v(4, 0);
    for (int t = 1; t <= 3; ++t) {
      f.set_grad();
      opt->step(f.params, c.lr);
      for (int i = 0; i < 4; ++i) {
        double gi = f.g[i];
        if (std::string(name) == "adamw")
          w[i] *= 1 - c.lr * c.weight_decay;
        else
          gi += c.weight_decay * w[i];
        m[i] = 0.8 * m[i] + 0.2 * gi;
        v[i] = 0.9 * v[i] + 0.1 * gi * gi;
        const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.9, t)) + c.eps;
        w[i] -= c.lr / (1 - std::pow(0.8, t)) * m[i] / denom;
      }
    }
    auto got = f.weights();
    for (int i = 0; i < 4; ++i) REQUIRE(got[i] == Approx(w[i]).epsilon(1e-12));
    REQUIRE(opt->steps_taken() == 3);
  }
}

TEST_CASE("Adagrad follows PyTorch's update", "[optimizer]") {
  Fixture f;
  OptimizerConfig c;
  c.name = "adagrad";
  c.lr = 0.07;
  c.eps = 1e-10;
  auto opt = make_optimizer(c, f.params);
  std::vector<double> w = f.w0, s(4, 0);
  for (int t = 1; t <= 3; ++t) {
    f.set_grad();
    opt->step(f.params, c.lr);
    for (int i = 0; i < 4; ++i) {
      s[i] += f.g[i] * f.g[i];
      w[i] -= c.lr * f.g[i] / (std::sqrt(s[i]) + c.eps);
    }
  }
  auto got = f.weights();
  for (int i = 0; i < 4; ++i) REQUIRE(got[i] == Approx(w[i]).epsilon(1e-12));
}

TEST_CASE("optimizer state round-trips and rejects a mismatch", "[optimizer]") {
  Fixture f;
  OptimizerConfig c;
  auto a = make_optimizer(c, f.params);
  f.set_grad();
  a->step(f.params, 0.1);
  auto state = a->state();
  std::map<std::string, Tensor> m(state.begin(), state.end());
  auto b = make_optimizer(c, f.params);
  b->load_state(m, "test");
  REQUIRE(b->steps_taken() == 1);
  OptimizerConfig ada;
  ada.name = "adagrad";
  auto wrong = make_optimizer(ada, f.params);
  REQUIRE_THROWS_WITH(wrong->load_state(m, "ckpt/optimizer.safetensors"),
                      Catch::Contains("ckpt/optimizer.safetensors") && Catch::Contains("adagrad.sum"));
}

TEST_CASE("global-norm clipping matches clip_grad_norm_", "[optimizer]") {
  Fixture f;
  f.set_grad();
  double norm = 0;
  for (double g : f.g) norm += g * g;
  norm = std::sqrt(norm);
  REQUIRE(clip_grad_norm(f.params, 0.0) == Approx(norm));  // measure only
  REQUIRE(clip_grad_norm(f.params, 10.0) == Approx(norm));  // below the bound: untouched
  REQUIRE(f.params.flat_grad().to_doubles() == f.g);
  clip_grad_norm(f.params, 0.5);
  auto g = f.params.flat_grad().to_doubles();
  for (int i = 0; i < 4; ++i) REQUIRE(g[i] == Approx(f.g[i] * 0.5 / (norm + 1e-6)).epsilon(1e-12));
}

TEST_CASE("clip_grad_norms measures each parameter once, and Adagrad's per-tensor clip uses those norms",
          "[optimizer]") {
  Fixture f;
  f.set_grad();
  const double a2 = 0.1 * 0.1 + 0.3 * 0.3, b2 = 0.05 * 0.05 + 1.5 * 1.5, norm = std::sqrt(a2 + b2);
  GradientNorms n = clip_grad_norms(f.params, 0.5);
  const double coef = 0.5 / (norm + 1e-6);
  REQUIRE(n.total == Approx(norm).epsilon(1e-14));
  REQUIRE(n.squared.size() == 2);
  REQUIRE(n.squared[0] == Approx(a2 * coef * coef).epsilon(1e-12));  // after the clip
  REQUIRE(n.squared[1] == Approx(b2 * coef * coef).epsilon(1e-12));

  // Adagrad with its per-tensor clip: the caller's norms give the very same update as
  // measuring them again; with weight decay the clip measures g + wd w, so it does.
  for (double wd : {0.0, 0.01}) {
    OptimizerConfig c;
    c.name = "adagrad";
    c.lr = 0.1;
    c.clip = 0.2;
    c.weight_decay = wd;
    Fixture own, given;
    auto o1 = make_optimizer(c, own.params), o2 = make_optimizer(c, given.params);
    for (int step = 0; step < 3; ++step) {
      own.set_grad();
      given.set_grad();
      GradientNorms n2 = clip_grad_norms(given.params, 0.0);
      o1->step(own.params, c.lr);
      o2->step(given.params, c.lr, &n2);
    }
    INFO("weight decay " << wd);
    REQUIRE(given.weights() == own.weights());
    // and a wrong list would have changed it: the norms are really read
    Fixture wrong;
    auto o3 = make_optimizer(c, wrong.params);
    wrong.set_grad();
    GradientNorms tiny;
    tiny.squared = {1e-6, 1e-6};
    o3->step(wrong.params, c.lr, &tiny);
    Fixture ref;
    auto o4 = make_optimizer(c, ref.params);
    ref.set_grad();
    o4->step(ref.params, c.lr);
    if (wd == 0.0)
      REQUIRE(wrong.weights() != ref.weights());
    else
      REQUIRE(wrong.weights() == ref.weights());
  }
}

TEST_CASE("the clip's coefficient applied by the optimizer step equals clipping the gradients first", "[optimizer]") {
  // float32 over 1,037 weights (vector loops and their tails): gradient_norms leaves the
  // gradients alone and hands the coefficient to the step, which must update exactly as
  // clip_grad_norms (scaling the gradients in place) followed by the same step does.
  auto make = [] {
    ParameterSet p;
    p.declare("a", {1000});
    p.declare("b", {37});
    p.finalize(DType::f32);
    float* w = p.flat_data().data<float>();
    for (int64_t i = 0; i < p.numel(); ++i) w[i] = std::sin(0.37 * i);
    return p;
  };
  auto set_grad = [](ParameterSet& p, int step) {
    float* g = p.flat_grad().data<float>();
    for (int64_t i = 0; i < p.numel(); ++i) g[i] = static_cast<float>(std::cos(0.11 * i + step) * (1 + i % 7));
  };
  for (const char* name : {"adam", "adamw", "adagrad"})
    for (double wd : {0.0, 0.01})
      for (double max_norm : {0.5, 1e6}) {  // clipping, and a bound the norm stays under
        OptimizerConfig c;
        c.name = name;
        c.lr = 0.01;
        c.weight_decay = wd;
        ParameterSet clipped = make(), folded = make();
        auto o1 = make_optimizer(c, clipped), o2 = make_optimizer(c, folded);
        for (int step = 0; step < 3; ++step) {
          set_grad(clipped, step);
          set_grad(folded, step);
          const std::vector<double> g_before = folded.flat_grad().to_doubles();
          const GradientNorms n1 = clip_grad_norms(clipped, max_norm);
          const GradientNorms n2 = gradient_norms(folded, max_norm);
          INFO(name << " weight decay " << wd << " max_norm " << max_norm << " step " << step);
          REQUIRE(folded.flat_grad().to_doubles() == g_before);  // measured only
          REQUIRE(n2.total == n1.total);
          REQUIRE(n2.squared == n1.squared);
          REQUIRE(n1.scale == 1.0);
          if (max_norm < n2.total)
            REQUIRE(n2.scale == Approx(max_norm / (n2.total + 1e-6)).epsilon(1e-15));
          else
            REQUIRE(n2.scale == 1.0);
          o1->step(clipped, c.lr, &n1);
          o2->step(folded, c.lr, &n2);
          REQUIRE(folded.flat_data().to_doubles() == clipped.flat_data().to_doubles());
        }
      }
}

TEST_CASE("learning-rate schedules", "[optimizer]") {
  ScheduleConfig s;
  s.name = "cosine";
  s.warmup_steps = 10;
  s.min_lr = 1e-4;
  REQUIRE(scheduled_lr(s, 1e-3, 1, 110) == Approx(1e-4));
  REQUIRE(scheduled_lr(s, 1e-3, 10, 110) == Approx(1e-3));
  REQUIRE(scheduled_lr(s, 1e-3, 60, 110) == Approx(1e-4 + 0.5 * 9e-4));
  REQUIRE(scheduled_lr(s, 1e-3, 110, 110) == Approx(1e-4));
  REQUIRE(scheduled_lr(s, 1e-3, 500, 110) == Approx(1e-4));  // past the end: the floor
  s.name = "constant";
  REQUIRE(scheduled_lr(s, 1e-3, 5, 110) == Approx(5e-4));
  REQUIRE(scheduled_lr(s, 1e-3, 50, 110) == Approx(1e-3));
  s.name = "inv_sqrt";
  REQUIRE(scheduled_lr(s, 1e-3, 5, 110) == Approx(1e-3 * 5 / std::pow(10.0, 1.5)));
  REQUIRE(scheduled_lr(s, 1e-3, 40, 110) == Approx(1e-3 / std::sqrt(40.0)));
}

TEST_CASE("zero_grad without a fill: first gradients overwrite, unused parameters read zero", "[optimizer][autograd]") {
  ParameterSet params;
  params.declare("used", {3});
  params.declare("unused", {2});
  params.finalize(DType::f64);
  Tensor used = params.get("used"), unused = params.get("unused");
  std::copy_n(std::vector<double>{1, 2, 3}.begin(), 3, used.data<double>());
  for (int step = 0; step < 2; ++step) {
    // Leave stale values in the arena, as a previous step would.
    std::fill_n(params.flat_grad().data<double>(), 5, 7.0);
    params.zero_grad();
    backward(sum(mul(used, used)));  // d/dx = 2x
    backward(sum(used));             // a second arrival adds: 2x + 1
    CHECK(used.grad().to_doubles() == std::vector<double>{3, 5, 7});
    CHECK(unused.grad().to_doubles() == std::vector<double>{0, 0});
    CHECK(params.flat_grad().to_doubles() == std::vector<double>{3, 5, 7, 0, 0});
  }
}

TEST_CASE("a linear's weight gradient written straight into the arena equals the accumulated one",
          "[optimizer][autograd]") {
  ParameterSet params;
  params.declare("w", {3, 4});
  params.declare("v", {3, 3});
  params.finalize(DType::f64);
  Tensor w = params.get("w"), v = params.get("v");
  {
    NoGradGuard ng;
    Tensor w0 = randn64({3, 4}, 5), v0 = randn64({3, 3}, 6);
    Tensor wd = w.detach(), vd = v.detach();
    copy_(wd, w0);
    copy_(vd, v0);
  }
  Tensor x = randn64({5, 4}, 7);
  auto loss = [&] { return sum(mul(linear(linear(x, w), v), linear(x, w))); };  // w used twice
  // Reference: gradients accumulated by the tape into fresh slots.
  w.zero_grad();
  v.zero_grad();
  backward(loss());
  const std::vector<double> gw = w.grad().to_doubles(), gv = v.grad().to_doubles();
  for (int step = 0; step < 2; ++step) {
    std::fill_n(params.flat_grad().data<double>(), 21, 3.0);  // stale values
    params.zero_grad();
    backward(loss());
    REQUIRE(max_rel_diff(w.grad(), Tensor::from_vector<double>({3, 4}, gw)) <= 1e-14);
    REQUIRE(max_rel_diff(v.grad(), Tensor::from_vector<double>({3, 3}, gv)) <= 1e-14);
  }
}

TEST_CASE("slices of a parameter add their gradients straight into its arena window", "[optimizer][autograd]") {
  ParameterSet params;
  params.declare("w", {6, 4});
  params.finalize(DType::f64);
  Tensor w = params.get("w");
  {
    NoGradGuard ng;
    Tensor wd = w.detach();
    copy_(wd, randn64({6, 4}, 8));
  }
  Tensor x = randn64({5, 4}, 9), x6 = randn64({5, 6}, 10);
  // q, k and v rows of one weight, k used twice; rows 4 and 5 get no gradient.
  auto rows = [&] {
    Tensor q = linear(x, narrow(w, 0, 0, 2)), k = linear(x, narrow(w, 0, 2, 1)), v = linear(x, narrow(w, 0, 3, 1));
    return add(sum(mul(q, q)), sum(mul(add(k, k), v)));
  };
  // Windows of columns, the first in the middle: columns 0 and 3 get no gradient.
  auto columns = [&] {
    Tensor a = matmul(x6, narrow(w, 1, 1, 1)), b = matmul(x6, narrow(w, 1, 2, 1));
    return sum(mul(a, add(a, b)));
  };
  for (const auto& loss : {std::function<Tensor()>(rows), std::function<Tensor()>(columns)}) {
    w.zero_grad();  // reference: the tape's zero-filled full-shape gradients, summed
    backward(loss());
    const std::vector<double> want = w.grad().to_doubles();
    REQUIRE(std::count(want.begin(), want.end(), 0.0) >= 8);
    for (int step = 0; step < 2; ++step) {
      std::fill_n(params.flat_grad().data<double>(), 24, 3.0);  // stale values
      params.zero_grad();
      backward(loss());
      REQUIRE(w.grad().to_doubles() == want);
    }
  }
}
