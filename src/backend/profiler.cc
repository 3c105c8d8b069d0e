// The profiling decorator around a device backend and the time table it fills.
#include "txl/backend/profiler.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>

#include "cpu/cpu_backend.h"
#include "device_registry.h"

namespace txl::profiler {

namespace {
bool g_enabled = false;
Device g_sync_device{};  // the CPU: nothing to wait for
thread_local bool t_in_backward = false;
std::mutex g_mu;
std::map<std::string, Entry> g_table;
std::map<std::pair<ProductShape, bool>, ProductEntry> g_products;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void add(const char* name, int64_t ns, double flops) {
  std::string key = t_in_backward ? std::string(name) + " (bwd)" : std::string(name);
  std::lock_guard<std::mutex> lock(g_mu);
  Entry& e = g_table[key];
  e.name = key;
  e.calls++;
  e.seconds += static_cast<double>(ns) * 1e-9;
  e.flops += flops;
}
}  // namespace

void set_enabled(bool on, Device device) {
  g_enabled = on;
  g_sync_device = on ? device : Device{};
}
bool enabled() { return g_enabled; }
void set_in_backward(bool on) { t_in_backward = on; }

void reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_table.clear();
  g_products.clear();
}

bool ProductShape::operator<(const ProductShape& o) const {
  return std::tie(batch, m, k, n, a_transposed, b_transposed, bias, relu, bf16_out) <
         std::tie(o.batch, o.m, o.k, o.n, o.a_transposed, o.b_transposed, o.bias, o.relu, o.bf16_out);
}

std::string ProductShape::str() const {
  std::string s = batch > 1 ? std::to_string(batch) + " x " : "";
  s += std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
  if (a_transposed) s += " A^T";
  if (b_transposed) s += " B^T";
  if (bias) s += " +bias";
  if (relu) s += " +relu";
  if (bf16_out) s += " ->bf16";
  return s;
}

void add_product(const ProductShape& shape, double seconds) {
  std::lock_guard<std::mutex> lock(g_mu);
  ProductEntry& e = g_products[{shape, t_in_backward}];
  e.shape = shape;
  e.backward = t_in_backward;
  e.calls++;
  e.seconds += seconds;
}

namespace {
// A table's rows, largest time first.
template <class Table>
auto rows_by_time(const Table& table) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<typename Table::mapped_type> out;
  for (const auto& [k, e] : table) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
  return out;
}
}  // namespace

std::vector<ProductEntry> product_snapshot() { return rows_by_time(g_products); }

std::vector<Entry> snapshot() { return rows_by_time(g_table); }

// Time of the finished scopes nested in this thread's innermost open scope, so that
// each row counts its own time only (a kernel that calls profiled kernels, or the
// arena's bf16 conversion done inside the step's first matmul).
thread_local int64_t t_nested_ns = 0;

Scope::Scope(const char* name, double flops) : name_(name), flops_(flops) {
  if (g_enabled) {
    if (!g_sync_device.is_cpu()) synchronize(g_sync_device);
    outer_nested_ns_ = t_nested_ns;
    t_nested_ns = 0;
    start_ns_ = now_ns();
  }
}
Scope::~Scope() {
  if (start_ns_ < 0) return;
  if (!g_sync_device.is_cpu()) synchronize(g_sync_device);
  const int64_t total = now_ns() - start_ns_;
  add(name_, total - t_nested_ns, flops_);
  t_nested_ns = outer_nested_ns_ + total;
}

}  // namespace txl::profiler

namespace txl {

namespace {

// FLOPs of one [rows x visible keys x Dh] product of the fused attention, over all
// (batch, head) pairs; query i sees K - T + i + 1 keys.
double fused_attention_flops(const RelAttentionInputs& in) {
  const double T = static_cast<double>(in.q.shape()[0]), K = static_cast<double>(in.kv.shape()[0]);
  const double pairs = static_cast<double>(in.q.shape()[1] * in.q.shape()[2]);
  return 2.0 * pairs * static_cast<double>(in.q.shape()[3]) * (T * (K - T) + T * (T + 1) / 2);
}

// FLOPs of one [rows x window x Dh] product of the fused span attention (band and
// persistent keys), over all (batch, head) pairs.
double span_attention_flops(const SpanAttentionInputs& in) {
  const double M = static_cast<double>(in.q.shape()[0]), L = static_cast<double>(in.pe.shape()[1]);
  const double N = in.pk.defined() ? static_cast<double>(in.pk.shape()[2]) : 0.0;
  const double pairs = static_cast<double>(in.q.shape()[1] * in.q.shape()[2]);
  return 2.0 * pairs * static_cast<double>(in.q.shape()[3]) * M * (L + N);
}

// Forwards every kernel to the wrapped backend inside a timing scope.
class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : in_(inner) {}
  const char* name() const override { return in_.name(); }
  void copy(const Tensor& s, Tensor& d) override {
    profiler::Scope p("copy");
    in_.copy(s, d);
  }
  void fill(Tensor& d, double v) override {
    profiler::Scope p("fill");
    in_.fill(d, v);
  }
  Tensor unary(UnaryOp op, const Tensor& x, UnaryParams q) override {
    profiler::Scope p(unary_name(op));
    return in_.unary(op, x, q);
  }
  Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, UnaryParams q) override {
    profiler::Scope p(unary_name(op));
    return in_.unary_backward(op, x, y, gy, q);
  }
  Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) override {
    profiler::Scope p(binary_name(op));
    return in_.binary(op, a, b);
  }
  void binary_inplace(BinaryOp op, Tensor& a, const Tensor& b) override {
    profiler::Scope p(op == BinaryOp::add ? "add_ (accumulate)" : "binary_inplace");
    in_.binary_inplace(op, a, b);
  }
  Tensor equal(const Tensor& a, const Tensor& b) override {
    profiler::Scope p("equal");
    return in_.equal(a, b);
  }
  Tensor where(const Tensor& m, const Tensor& a, const Tensor& b) override {
    profiler::Scope p("where");
    return in_.where(m, a, b);
  }
  Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) override {
    profiler::Scope p(op == ReduceOp::sum ? "sum" : "max");
    return in_.reduce(op, x, axes, keepdim);
  }
  Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias, bool relu, bool bf16_out) override {
    const double batch = static_cast<double>(numel_of(broadcast_shapes(
        Shape(a.shape().begin(), a.shape().end() - 2), Shape(b.shape().begin(), b.shape().end() - 2), "matmul")));
    profiler::Scope p("matmul", 2.0 * batch * a.shape()[a.dim() - 2] * a.shape().back() * b.shape().back());
    return in_.matmul(a, b, bias, relu, bf16_out);
  }
  void matmul_into(const Tensor& a, const Tensor& b, Tensor& out) override {
    profiler::Scope p("matmul", 2.0 * static_cast<double>(out.numel()) * static_cast<double>(a.shape().back()));
    in_.matmul_into(a, b, out);
  }
  Tensor to_bf16(const Tensor& x) override {
    profiler::Scope p("to_bf16");
    return in_.to_bf16(x);
  }
  LinearOutputGrad linear_output_grad(const Tensor& gy, const Tensor& y, bool bf16, bool bias_grad) override {
    profiler::Scope p("linear_output_grad");
    return in_.linear_output_grad(gy, y, bf16, bias_grad);
  }
  Tensor softmax_last(const Tensor& x, bool log) override {
    profiler::Scope p("softmax");
    return in_.softmax_last(x, log);
  }
  Tensor softmax_last_backward(const Tensor& y, const Tensor& gy, bool log) override {
    profiler::Scope p("softmax");
    return in_.softmax_last_backward(y, gy, log);
  }
  LayerNormResult layer_norm(const Tensor& x, const Tensor& res, const Tensor& g, const Tensor& b,
                             double eps) override {
    profiler::Scope p("layer_norm");
    return in_.layer_norm(x, res, g, b, eps);
  }
  LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& res, const Tensor& g, const Tensor& m,
                                     const Tensor& r, const Tensor& gy) override {
    profiler::Scope p("layer_norm");
    return in_.layer_norm_backward(x, res, g, m, r, gy);
  }
  CrossEntropyResult cross_entropy(const Tensor& l, const Tensor& t, int64_t ig) override {
    profiler::Scope p("cross_entropy");
    return in_.cross_entropy(l, t, ig);
  }
  Tensor cross_entropy_backward(const Tensor& l, const Tensor& t, const Tensor& lse, const Tensor& g,
                                int64_t ig) override {
    profiler::Scope p("cross_entropy");
    return in_.cross_entropy_backward(l, t, lse, g, ig);
  }
  Tensor index_select(const Tensor& x, int64_t axis, const Tensor& idx) override {
    profiler::Scope p("index_select");
    return in_.index_select(x, axis, idx);
  }
  void index_add(Tensor& d, int64_t axis, const Tensor& idx, const Tensor& s) override {
    profiler::Scope p("index_add");
    in_.index_add(d, axis, idx, s);
  }
  Tensor dropout_mask(const Shape& s, double pr, uint64_t seed, uint64_t c, DType dt, Device dev) override {
    profiler::Scope p("dropout_mask");
    return in_.dropout_mask(s, pr, seed, c, dt, dev);
  }
  Tensor triangle_mask(int64_t r, int64_t c, int64_t d, bool u, Device dev) override {
    profiler::Scope p("triangle_mask");
    return in_.triangle_mask(r, c, d, u, dev);
  }
  Tensor rel_attn_probs(const Tensor& ac, const Tensor& bd, const Tensor& m, double s) override {
    profiler::Scope p("rel_attn_probs");
    return in_.rel_attn_probs(ac, bd, m, s);
  }
  std::pair<Tensor, Tensor> rel_attn_probs_backward(const Tensor& pr, const Tensor& gp, const Tensor& m,
                                                    double s) override {
    profiler::Scope p("rel_attn_probs");
    return in_.rel_attn_probs_backward(pr, gp, m, s);
  }
  // Counted as its products: content and position scores and the weighted sum over the
  // visible keys (forward), twice that plus the recomputed scores (backward).
  FusedSpanAttention fused_span_attention(const SpanAttentionInputs& in, double s) override {
    profiler::Scope p("fused_span_attention", 3.0 * span_attention_flops(in));
    return in_.fused_span_attention(in, s);
  }
  SpanAttentionGrads fused_span_attention_backward(const SpanAttentionInputs& in, double s, const FusedSpanAttention& f,
                                                   const Tensor& g) override {
    profiler::Scope p("fused_span_attention", 7.0 * span_attention_flops(in));
    return in_.fused_span_attention_backward(in, s, f, g);
  }
  FusedRelAttention fused_rel_attention(const RelAttentionInputs& in, const Tensor& m, double s) override {
    profiler::Scope p("fused_rel_attention", 3.0 * fused_attention_flops(in));
    return in_.fused_rel_attention(in, m, s);
  }
  RelAttentionGrads fused_rel_attention_backward(const RelAttentionInputs& in, const Tensor& m, double s,
                                                 const Tensor& lse, const Tensor& g) override {
    profiler::Scope p("fused_rel_attention", 8.0 * fused_attention_flops(in));
    return in_.fused_rel_attention_backward(in, m, s, lse, g);
  }

  // Timed by the callers' "optimizer" and "clip_grad_norm" scopes.
  void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamHyper& h,
                   const Tensor& w_bf16) override {
    in_.adam_update(w, g, m, v, h, w_bf16);
  }
  void adagrad_update(Tensor& w, const Tensor& g, Tensor& s, double lr, double eps, double wd,
                      const Tensor& w_bf16) override {
    in_.adagrad_update(w, g, s, lr, eps, wd, w_bf16);
  }
  double squared_norm(const Tensor& x, const Tensor& y, double a) override { return in_.squared_norm(x, y, a); }

 private:
  Backend& in_;
};

}  // namespace

// A profiled device backend's scopes wait for the device that profiling was enabled
// for (profiler::set_enabled), since GPU kernels run asynchronously.
Backend& backend_for(Device device) {
  static cpu::CpuBackend cpu_backend;
  static ProfilingBackend profiled_cpu(cpu_backend);
  if (device.is_cpu()) return profiler::enabled() ? static_cast<Backend&>(profiled_cpu) : cpu_backend;
  Backend* b = registered_backend(device.type);
  TXL_CHECK(b != nullptr, "no backend for device {} in this build (configure with -DTXL_CUDA=ON)", device.str());
  TXL_CHECK(device.index >= 0 && device.index < device_count(device.type),
            "device {} is not present: this machine has {} CUDA device(s)", device.str(), device_count(device.type));
  if (!profiler::enabled()) return *b;
  static ProfilingBackend profiled_device(*b);
  return profiled_device;
}

}  // namespace txl
