// The kernel profiler behind `txl bench train --profile`: each row is the region's own
// time, so rows add up to the step without counting nested regions twice.
#include <catch2/catch.hpp>
#include <chrono>

#include "txl/autograd/node.h"
#include "txl/backend/profiler.h"
#include "txl/ops/ops.h"

using namespace txl;

namespace {

// Busy-waits (sleeping can overshoot by more than the margins below on a loaded machine).
void spin_ms(double ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms);
  while (std::chrono::steady_clock::now() < end) {
  }
}

const profiler::Entry& entry(const std::vector<profiler::Entry>& rows, const std::string& name) {
  for (const auto& e : rows)
    if (e.name == name) return e;
  FAIL("no profiler row " << name);
  return rows.front();
}

}  // namespace

TEST_CASE("profiler rows are exclusive: a nested region's time is left out of its parent's", "[profiler]") {
  profiler::reset();
  profiler::set_enabled(true);
  {
    profiler::Scope outer("outer region");
    spin_ms(25);
    {
      profiler::Scope inner("inner region", 1e6);
      spin_ms(60);
    }
    spin_ms(15);
  }
  {
    profiler::Scope after("region after");  // nesting state does not leak into the next region
    spin_ms(10);
  }
  profiler::set_enabled(false);
  const auto rows = profiler::snapshot();
  const double outer = entry(rows, "outer region").seconds, inner = entry(rows, "inner region").seconds,
               after = entry(rows, "region after").seconds;
  // Inclusive timing would give outer >= 100 ms.
  CHECK(outer >= 0.040);
  CHECK(outer < 0.080);
  CHECK(inner >= 0.060);
  CHECK(after >= 0.010);
  CHECK(after < 0.050);
  CHECK(entry(rows, "inner region").flops == 1e6);
  profiler::reset();
}

TEST_CASE("profiler scopes record nothing while profiling is off", "[profiler]") {
  profiler::reset();
  { profiler::Scope s("unprofiled region"); }
  for (const auto& e : profiler::snapshot()) CHECK(e.name != "unprofiled region");
}

TEST_CASE("profiled CPU products record their geometry: a linear layer's forward and both backward products",
          "[profiler]") {
  Generator gen(4);
  Tensor x = Tensor::randn({6, 8}, gen).set_requires_grad();
  Tensor w = Tensor::randn({5, 8}, gen).set_requires_grad();
  Tensor b = Tensor::randn({5}, gen).set_requires_grad();
  profiler::reset();
  profiler::set_enabled(true);
  Tensor y = linear(x, w, b);  // y = x W^T + b: 6x8x5, W read transposed, bias fused
  backward(sum(y));            // dx = g W: 6x5x8; dW = g^T x: 5x6x8, g read transposed
  profiler::set_enabled(false);
  const auto rows = profiler::product_snapshot();
  auto find = [&](const std::string& name, bool bwd) {
    for (const auto& e : rows)
      if (e.shape.str() == name && e.backward == bwd) return e;
    FAIL("no product row " << name << (bwd ? " (bwd)" : ""));
    return rows.front();
  };
  CHECK(rows.size() == 3);
  const auto fwd = find("6x8x5 B^T +bias", false), dx = find("6x5x8", true), dw = find("5x6x8 A^T", true);
  for (const auto& e : {fwd, dx, dw}) {
    CHECK(e.calls == 1);
    CHECK(e.seconds > 0);
  }
  // Execution only: within the products' own rows of the kernel table.
  double products = fwd.seconds + dx.seconds + dw.seconds, kernels = 0;
  for (const auto& e : profiler::snapshot())
    if (e.name.rfind("matmul", 0) == 0 || e.name.rfind("linear", 0) == 0) kernels += e.seconds;
  CHECK(products <= kernels);
  profiler::reset();
  CHECK(profiler::product_snapshot().empty());
  { Tensor unprofiled = linear(x.detach(), w.detach()); }
  CHECK(profiler::product_snapshot().empty());
}
