// The kernel profiler behind `txl bench train --profile`: each row is the region's own
// time, so rows add up to the step without counting nested regions twice.
#include <catch2/catch.hpp>
#include <chrono>

#include "txl/backend/profiler.h"

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
