// Kernel-level time accounting: when on, backend_for() hands out a decorator that
// times every kernel call by name (forward and backward passes apart), so
// `txl bench train --profile` can say where a step's time goes. Off, it costs nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "txl/core/device.h"

namespace txl::profiler {

struct Entry {
  std::string name;  // kernel name, with " (bwd)" when called from a backward pass
  int64_t calls = 0;
  double seconds = 0.0;
  double flops = 0.0;  // for matrix products
};

// Profiling of the kernels that run on `device`. A GPU runs them asynchronously, so
// then each scope waits for the device at both ends: its row is the kernel's own time
// (plus one launch), not the time to enqueue it.
void set_enabled(bool on, Device device = {});
bool enabled();
void reset();
std::vector<Entry> snapshot();  // sorted by time, largest first

// A matrix product's geometry: C[m, n] = op(A) op(B), op(A) [m, k], op(B) [k, n], over
// `batch` matrices; an operand stored column-major is read transposed.
struct ProductShape {
  int64_t batch = 1, m = 0, k = 0, n = 0;
  bool a_transposed = false, b_transposed = false, bias = false, relu = false, bf16_out = false;
  bool operator<(const ProductShape& o) const;
  std::string str() const;  // "512x512x2048 B^T +bias +relu" (m x k x n)
  double flops() const { return 2.0 * static_cast<double>(batch * m * k * n); }
};

struct ProductEntry {
  ProductShape shape;
  bool backward = false;
  int64_t calls = 0;
  double seconds = 0.0;  // the library's execution only, without operand conversions
};

// The CPU products record each call's geometry and execution time here when profiling
// is on, so a profile can say which products fall short and by how much.
void add_product(const ProductShape& shape, double seconds);
std::vector<ProductEntry> product_snapshot();  // sorted by time, largest first

// Marks the current thread as running a backward pass (set by the tape).
void set_in_backward(bool on);

// Times one named region when profiling is on (used for the optimizer and clipping).
// Times are exclusive: a region's row leaves out the regions profiled inside it.
class Scope {
 public:
  explicit Scope(const char* name, double flops = 0.0);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  double flops_;
  int64_t start_ns_ = -1;
  int64_t outer_nested_ns_ = 0;  // the enclosing scope's nested time so far
};

}  // namespace txl::profiler
