// End-to-end: a tiny MLP trained with SGD by the engine (float32, oneDNN) follows,
// step by step, the losses of an independent float64 implementation written here in
// plain loops (its own forward, backward and update; no engine code).
// Also checks that a repeated training step creates no oneDNN primitives and no
// allocator misses after its first pass.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "gradcheck.h"
#include "txl/core/allocator.h"

using namespace txl;
using namespace txl::testing;

namespace {

constexpr int N = 32, IN = 4, HID = 16, OUT = 3, STEPS = 60;
constexpr double LR = 0.5;

struct Data {
  std::vector<double> x;   // N x IN
  std::vector<int64_t> y;  // N
  std::vector<double> w1, b1, w2, b2;
};

Data make_data() {
  Data d;
  Generator g(42);
  d.x = Tensor::randn({N, IN}, g, DType::f64).to_doubles();
  for (int i = 0; i < N; ++i) {  // a learnable rule: class from the sign pattern
    double s = d.x[i * IN] + 0.5 * d.x[i * IN + 1] - d.x[i * IN + 2];
    d.y.push_back(s > 0.5 ? 2 : (s < -0.5 ? 0 : 1));
  }
  d.w1 = Tensor::randn({HID, IN}, g, DType::f64, 0.5).to_doubles();
  d.b1 = std::vector<double>(HID, 0.0);
  d.w2 = Tensor::randn({OUT, HID}, g, DType::f64, 0.5).to_doubles();
  d.b2 = std::vector<double>(OUT, 0.0);
  return d;
}

// Independent float64 reference: forward, manual backward, SGD; returns each step's loss.
std::vector<double> reference_losses(Data d) {
  std::vector<double> losses;
  for (int step = 0; step < STEPS; ++step) {
    std::vector<double> h(N * HID), gw1(HID * IN, 0), gb1(HID, 0), gw2(OUT * HID, 0), gb2(OUT, 0);
    double loss = 0;
    for (int n = 0; n < N; ++n) {
      for (int j = 0; j < HID; ++j) {
        double a = d.b1[j];
        for (int i = 0; i < IN; ++i) a += d.w1[j * IN + i] * d.x[n * IN + i];
        h[n * HID + j] = std::tanh(a);
      }
      double z[OUT], m = -1e300, s = 0;
      for (int k = 0; k < OUT; ++k) {
        z[k] = d.b2[k];
        for (int j = 0; j < HID; ++j) z[k] += d.w2[k * HID + j] * h[n * HID + j];
        m = std::max(m, z[k]);
      }
      for (int k = 0; k < OUT; ++k) s += std::exp(z[k] - m);
      loss += (m + std::log(s) - z[d.y[n]]) / N;
      double dh[HID] = {0};
      for (int k = 0; k < OUT; ++k) {
        double dz = (std::exp(z[k] - m) / s - (k == d.y[n] ? 1.0 : 0.0)) / N;
        gb2[k] += dz;
        for (int j = 0; j < HID; ++j) {
          gw2[k * HID + j] += dz * h[n * HID + j];
          dh[j] += dz * d.w2[k * HID + j];
        }
      }
      for (int j = 0; j < HID; ++j) {
        double da = dh[j] * (1 - h[n * HID + j] * h[n * HID + j]);
        gb1[j] += da;
        for (int i = 0; i < IN; ++i) gw1[j * IN + i] += da * d.x[n * IN + i];
      }
    }
    losses.push_back(loss);
    for (size_t i = 0; i < d.w1.size(); ++i) d.w1[i] -= LR * gw1[i];
    for (size_t i = 0; i < d.b1.size(); ++i) d.b1[i] -= LR * gb1[i];
    for (size_t i = 0; i < d.w2.size(); ++i) d.w2[i] -= LR * gw2[i];
    for (size_t i = 0; i < d.b2.size(); ++i) d.b2[i] -= LR * gb2[i];
  }
  return losses;
}

Tensor f32(const std::vector<double>& v, const Shape& s) { return to_dtype(Tensor::from_vector<double>(s, v), DType::f32); }

}  // namespace

TEST_CASE("a tiny MLP trained by the engine follows a float64 reference", "[training]") {
  Data d = make_data();
  std::vector<double> expected = reference_losses(d);
  Tensor x = f32(d.x, {N, IN});
  Tensor y = Tensor::from_vector<int64_t>({N}, d.y);
  std::vector<Tensor> params = {f32(d.w1, {HID, IN}), f32(d.b1, {HID}), f32(d.w2, {OUT, HID}), f32(d.b2, {OUT})};
  for (auto& p : params) p.set_requires_grad();

  cpu::MatmulCacheStats after_first{};
  AllocatorStats alloc_after_first{};
  for (int step = 0; step < STEPS; ++step) {
    Tensor h = tanh(linear(x, params[0], params[1]));
    Tensor loss = cross_entropy(linear(h, params[2], params[3]), y);
    INFO("step " << step);
    // float32 forward/backward over 60 steps: relative drift stays below 1e-4.
    REQUIRE(loss.item() == Approx(expected[step]).epsilon(1e-4));
    backward(loss);
    for (auto& p : params) {
      Tensor g = p.grad();
      scale_(g, -LR);
      add_(p, g);
      p.zero_grad();
    }
    if (step == 1) {
      after_first = cpu::matmul_cache_stats();
      alloc_after_first = HostAllocator::instance().stats();
    }
  }
  REQUIRE(expected.back() < 0.5 * expected.front());  // it learned something
  // Steps after the first two reuse every primitive and every cached block.
  REQUIRE(cpu::matmul_cache_stats().created == after_first.created);
  REQUIRE(HostAllocator::instance().stats().misses == alloc_after_first.misses);
}
