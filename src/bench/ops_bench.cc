// Validates nothing itself (the tests do); times the engine's kernels on the shapes a
// Transformer-XL layer uses and prints them against ceilings measured in the same run:
// oneDNN's own GEMM peak on a large square product, and a parallel memcpy.
#include "txl/bench/ops_bench.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <dnnl.hpp>
#include <random>

#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/core/allocator.h"
#include "txl/core/threads.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

template <class F>
double median_ms(int repeats, F&& f) {
  f();  // warm-up: primitive creation, page faults, allocator
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

double memcpy_gbps(int repeats, size_t bytes) {
  // The op moves `bytes` in total (read + write); memcpy of bytes/2 moves the same.
  size_t half = std::max<size_t>(bytes / 2, 64);
  std::vector<char> src(half, 1), dst(half);
  double ms = median_ms(repeats, [&] {
#pragma omp parallel
    {
      int t = omp_get_thread_num(), nt = omp_get_num_threads();
      size_t chunk = (half + nt - 1) / nt, b = std::min(half, chunk * t), e = std::min(half, b + chunk);
      std::memcpy(dst.data() + b, src.data() + b, e - b);
    }
  });
  return 2.0 * half / (ms * 1e6);
}

struct LayerShape {
  const char* name;
  int64_t d_model, n_head, d_inner, tgt_len, mem_len, batch;
};

struct Gemm {
  std::string name;
  int64_t batch, m, k, n;
  bool b_transposed;  // weights stored (out, in) as in the model
};

std::vector<Gemm> layer_gemms(const LayerShape& s) {
  const int64_t D = s.d_model, H = s.n_head, Dh = D / H, T = s.tgt_len, K = s.tgt_len + s.mem_len, B = s.batch;
  return {
      {"qkv_net  [mem;x]W^T", 1, K * B, D, 3 * H * Dh, true},
      {"r_net    R W_r^T", 1, K, D, H * Dh, true},
      {"scores   (q+u) k^T", B * H, T, Dh, K, true},
      {"attn_vec P v", B * H, T, K, Dh, false},
      {"o_net", 1, T * B, H * Dh, D, true},
      {"ff1", 1, T * B, D, s.d_inner, true},
      {"ff2", 1, T * B, s.d_inner, D, true},
  };
}

// One product's operands; bf16 copies (made here, once) when the run is bf16, so that
// only the product is timed.
std::pair<Tensor, Tensor> gemm_operands(const Gemm& g, Generator& gen, bool bf16) {
  Tensor a = Tensor::randn({g.batch, g.m, g.k}, gen);
  Tensor b = g.b_transposed ? transpose(Tensor::randn({g.batch, g.n, g.k}, gen), 1, 2)
                            : Tensor::randn({g.batch, g.k, g.n}, gen);
  if (bf16) return {backend_of(a).to_bf16(a), backend_of(b).to_bf16(b)};
  return {a, b};
}

// The product timed twice: on one operand set repeated (operands stay in cache, as in
// the peak measurement), and over operand sets taken in turn that together exceed the
// caches (each product reads operands that other work has evicted, as in a model).
json bench_gemm(const Gemm& g, int repeats, double peak, bool bf16) {
  Generator gen(1);
  auto [a, b] = gemm_operands(g, gen, bf16);
  const double flops = 2.0 * g.batch * g.m * g.n * g.k;
  const int sets = cold_set_count(a, b, g.batch * g.m * g.n);
  std::vector<std::pair<Tensor, Tensor>> cold;
  for (int i = 0; i < sets; ++i) cold.push_back(gemm_operands(g, gen, bf16));
  // Each cold product writes an output buffer last touched a round earlier (the one the
  // previous set's assignment released), not the one the last product wrote.
  std::vector<Tensor> outs(sets);
  auto cold_round = [&] {
    for (int i = 0; i < sets; ++i) outs[i] = matmul(cold[i].first, cold[i].second);
  };
  // The two are timed in alternation, so that a drift in the machine's speed falls on
  // both rather than on one. The in-cache product writes one output of its own, outside
  // the pool, so that the pool's most recent buffer stays one a cold product wrote a
  // round earlier.
  std::vector<double> hot_t, cold_t;
  Tensor hot_out = matmul(a, b);
  cold_round();
  for (int r = 0; r < std::max(3, repeats / 4); ++r) {
    hot_t.push_back(median_ms(4, [&] { backend_of(a).matmul_into(a, b, hot_out); }));
    const auto t0 = Clock::now();
    cold_round();
    cold_t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / sets);
  }
  std::sort(hot_t.begin(), hot_t.end());
  std::sort(cold_t.begin(), cold_t.end());
  const double ms = hot_t[hot_t.size() / 2], cold_ms = cold_t[cold_t.size() / 2];
  return {{"name", g.name},
          {"batch", g.batch},
          {"m", g.m},
          {"k", g.k},
          {"n", g.n},
          {"b_transposed", g.b_transposed},
          {"ms", ms},
          {"gflops", flops / (ms * 1e6)},
          {"frac_peak", flops / (ms * 1e6) / peak},
          {"cold_sets", sets},
          {"cold_ms", cold_ms},
          {"cold_gflops", flops / (cold_ms * 1e6)},
          {"cold_frac_peak", flops / (cold_ms * 1e6) / peak}};
}

}  // namespace

int cold_set_count(const Tensor& a, const Tensor& b, int64_t output_elements, DType output) {
  const double set_bytes = static_cast<double>(a.numel() * dtype_size(a.dtype()) + b.numel() * dtype_size(b.dtype()) +
                                               output_elements * dtype_size(output));
  // At least two sets, and at most 4,096 (a set of a few KB); otherwise about 256 MB for
  // every product, so cold means the same distance for small products as for large ones.
  return static_cast<int>(std::clamp(256e6 / set_bytes, 2.0, 4096.0));
}

namespace {

json bench_memop(const std::string& op, const std::string& pass, const Shape& shape, double bytes, double ms,
                 double copy_gbps) {
  double gbps = bytes / (ms * 1e6);
  return {{"op", op}, {"pass", pass}, {"shape", shape},           {"bytes", bytes},
          {"ms", ms}, {"gbps", gbps}, {"memcpy_gbps", copy_gbps}, {"frac_memcpy", gbps / copy_gbps}};
}

}  // namespace

double dnnl_peak_gflops(int repeats, int n, MatmulPrecision precision) {
  using dt = dnnl::memory::data_type;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  // bf16: bf16 inputs, fp32 output, as the engine's bf16 matmuls run.
  const bool bf16 = precision == MatmulPrecision::bf16;
  const dt in = bf16 ? dt::bf16 : dt::f32;
  dnnl::memory::desc in_md({n, n}, in, dnnl::memory::format_tag::ab);
  dnnl::memory::desc out_md({n, n}, dt::f32, dnnl::memory::format_tag::ab);
  dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(in_md, in_md, out_md), eng));
  dnnl::memory a(in_md, eng), b(in_md, eng), c(out_md, eng);
  // Random operands, as a model's products read: AMX multiplies all-zero bf16 tiles
  // 10-17% faster than random ones here (fp32 is unaffected), a rate no product of a
  // model reaches (device_peak_gflops makes the same choice on a GPU). Filled here rather
  // than by the engine's ops, which the profiler and the allocator counters would see.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (dnnl::memory* m : {&a, &b}) {
    void* p = m->get_data_handle();
    for (int64_t i = 0; i < int64_t{n} * n; ++i) {
      const float v = uniform(rng);
      if (bf16) {
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(bits >> 16);  // any bf16 near v will do
      } else {
        static_cast<float*>(p)[i] = v;
      }
    }
  }
  double ms = median_ms(repeats, [&] {
    prim.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
  });
  return 2.0 * n * n * n / (ms * 1e6);
}

double device_peak_gflops(Device device, int repeats, int n, MatmulPrecision precision) {
  if (device.is_cpu()) return dnnl_peak_gflops(repeats, n, precision);
  Backend& be = backend_for(device);
  // Random operands: a GPU multiplies zeros measurably faster (it draws less power).
  Generator gen(11);
  Tensor a = Tensor::randn({n, n}, gen).to(device), b = Tensor::randn({n, n}, gen).to(device);
  if (precision == MatmulPrecision::bf16) {  // bf16 inputs, fp32 output, as the engine's products
    a = be.to_bf16(a);
    b = be.to_bf16(b);
  }
  const double ms = median_ms(repeats, [&] {
    be.matmul(a, b, Tensor(), false);
    synchronize(device);
  });
  return 2.0 * n * n * n / (ms * 1e6);
}

json run_ops_bench(const OpsBenchOptions& opt) {
  NoGradGuard no_grad;
  const int reps = opt.repeats;
  json out;
  out["threads"] = num_threads();
  const MatmulPrecision precision = opt.bf16 ? MatmulPrecision::bf16 : MatmulPrecision::fp32;
  PrecisionScope precision_scope(precision);
  const double peak = dnnl_peak_gflops(std::max(3, reps / 4), opt.quick ? 512 : 2048, precision);
  out["precision"] = precision_name(precision);
  out["peak_gflops"] = peak;
  if (!opt.bf16) out["peak_gflops_f32"] = peak;
  out["peak_shape"] = opt.quick ? 512 : 2048;

  std::vector<LayerShape> shapes = {{"d128_t64_b12", 128, 4, 512, 64, 64, 12},
                                    {"d128_t512_b12", 128, 4, 512, 512, 512, 12},
                                    {"d512_t64_b12", 512, 8, 2048, 64, 64, 12},
                                    {"d512_t512_b1", 512, 8, 2048, 512, 512, 1}};
  if (opt.quick) shapes.resize(1);
  out["gemm"] = json::array();
  for (const auto& s : shapes)
    for (const auto& g : layer_gemms(s)) {
      json r = bench_gemm(g, reps, peak, opt.bf16);
      r["layer"] = s.name;
      out["gemm"].push_back(r);
    }

  out["memops"] = json::array();
  Generator gen(2);
  // Row ops on the two shapes that matter most: the attention scores (softmax) and
  // the hidden states / logits of the d128 default model and the d512 base model.
  struct RowCase {
    Shape scores, hidden, logits;
  };
  std::vector<RowCase> cases = {{{12 * 4 * 64, 128}, {64 * 12, 128}, {64 * 12, 256}},
                                {{8 * 512, 1024}, {512 * 4, 512}, {512 * 4, 256}}};
  if (opt.quick) cases.resize(1);
  for (const auto& c : cases) {
    {
      Tensor x = Tensor::randn(c.scores, gen);
      double bytes = 2.0 * x.numel() * 4;
      double cp = memcpy_gbps(reps, static_cast<size_t>(bytes));
      Tensor y = softmax(x);
      out["memops"].push_back(bench_memop("softmax", "fwd", c.scores, bytes, median_ms(reps, [&] { softmax(x); }), cp));
      double bytes_b = 3.0 * x.numel() * 4;
      double cpb = memcpy_gbps(reps, static_cast<size_t>(bytes_b));
      out["memops"].push_back(bench_memop("softmax", "bwd", c.scores, bytes_b,
                                          median_ms(reps, [&] { backend_of(y).softmax_last_backward(y, x, false); }),
                                          cpb));
    }
    {
      Tensor x = Tensor::randn(c.hidden, gen);
      const int64_t D = c.hidden.back();
      Tensor g = Tensor::ones({D}), b = Tensor::zeros({D});
      double bytes = 2.0 * x.numel() * 4;
      double cp = memcpy_gbps(reps, static_cast<size_t>(bytes));
      out["memops"].push_back(
          bench_memop("layer_norm", "fwd", c.hidden, bytes, median_ms(reps, [&] { layer_norm(x, g, b); }), cp));
      LayerNormResult r = backend_of(x).layer_norm(x, Tensor(), g, b, 1e-5);
      double bytes_b = 3.0 * x.numel() * 4;
      double cpb = memcpy_gbps(reps, static_cast<size_t>(bytes_b));
      out["memops"].push_back(bench_memop(
          "layer_norm", "bwd", c.hidden, bytes_b,
          median_ms(reps, [&] { backend_of(x).layer_norm_backward(x, Tensor(), g, r.mean, r.rstd, x); }), cpb));
    }
    {
      Tensor logits = Tensor::randn(c.logits, gen);
      const int64_t N = c.logits[0], V = c.logits[1];
      std::vector<int64_t> t(N);
      for (int64_t i = 0; i < N; ++i) t[i] = (i * 7) % V;
      Tensor targets = Tensor::from_vector<int64_t>({N}, t);
      double bytes = 1.0 * logits.numel() * 4;
      double cp = memcpy_gbps(reps, static_cast<size_t>(bytes));
      out["memops"].push_back(bench_memop("cross_entropy", "fwd", c.logits, bytes,
                                          median_ms(reps, [&] { cross_entropy(logits, targets); }), cp));
      CrossEntropyResult r = backend_of(logits).cross_entropy(logits, targets, kIgnoreIndex);
      Tensor rows = Tensor::full({N}, 1.0 / N);
      double bytes_b = 2.0 * logits.numel() * 4;
      double cpb = memcpy_gbps(reps, static_cast<size_t>(bytes_b));
      out["memops"].push_back(bench_memop(
          "cross_entropy", "bwd", c.logits, bytes_b,
          median_ms(reps,
                    [&] { backend_of(logits).cross_entropy_backward(logits, targets, r.lse, rows, kIgnoreIndex); }),
          cpb));
    }
  }
  AllocatorStats st = HostAllocator::instance().stats();
  out["allocator"] = {{"hits", st.hits}, {"misses", st.misses}};
  return out;
}

std::string format_ops_bench(const json& r) {
  std::string s = fmt::format(
      "threads {}; oneDNN {} peak {:.1f} GFLOP/s ({}^3 matmul, operands in cache); \"cold\": the same product "
      "over operand sets and outputs taken in turn, together larger than the caches\n\n",
      r["threads"].get<int>(), r.value("precision", std::string("fp32")), r["peak_gflops"].get<double>(),
      r["peak_shape"].get<int>());
  s += fmt::format("{:<14} {:<22} {:>5} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7} {:>10} {:>7}\n", "layer", "gemm", "batch",
                   "m", "k", "n", "ms", "GFLOP/s", "%peak", "cold GF/s", "%peak");
  for (const auto& g : r["gemm"])
    s += fmt::format("{:<14} {:<22} {:>5} {:>6} {:>6} {:>6} {:>9.4f} {:>9.1f} {:>6.1f}% {:>10.1f} {:>6.1f}%\n",
                     g["layer"].get<std::string>(), g["name"].get<std::string>(), g["batch"].get<int64_t>(),
                     g["m"].get<int64_t>(), g["k"].get<int64_t>(), g["n"].get<int64_t>(), g["ms"].get<double>(),
                     g["gflops"].get<double>(), 100 * g["frac_peak"].get<double>(), g["cold_gflops"].get<double>(),
                     100 * g["cold_frac_peak"].get<double>());
  s += fmt::format("\n{:<14} {:<4} {:<14} {:>9} {:>8} {:>11} {:>9}\n", "op", "pass", "shape", "ms", "GB/s",
                   "memcpy GB/s", "%memcpy");
  for (const auto& m : r["memops"]) {
    auto shape = m["shape"].get<std::vector<int64_t>>();
    s += fmt::format("{:<14} {:<4} {:<14} {:>9.4f} {:>8.1f} {:>11.1f} {:>8.1f}%\n", m["op"].get<std::string>(),
                     m["pass"].get<std::string>(), fmt::format("{}x{}", shape[0], shape[1]), m["ms"].get<double>(),
                     m["gbps"].get<double>(), m["memcpy_gbps"].get<double>(), 100 * m["frac_memcpy"].get<double>());
  }
  s += fmt::format("\nallocator: {} hits, {} misses\n", r["allocator"]["hits"].get<uint64_t>(),
                   r["allocator"]["misses"].get<uint64_t>());
  return s;
}

}  // namespace txl
