// CPU matrix products. float32 goes to oneDNN matmul primitives, created once per
// geometry (dims + strides) and cached, so a training step creates none after its
// first pass. With matmul_precision() == bf16 the float32 operands are read from bf16
// copies (weights: views of the arena's one bf16 copy per Bf16WeightScope; activations:
// a copy per product unless the caller passes one from to_bf16) and multiplied with
// fp32 accumulation into the fp32 output. float64 is a plain-loop reference.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <dnnl.hpp>
#include <mutex>
#include <unordered_map>

#include "../kernel_contracts.h"
#include "bf16_bits.h"
#include "cpu_backend.h"
#include "strided_loop.h"
#include "txl/backend/precision.h"
#include "txl/backend/profiler.h"

namespace txl::cpu {

namespace {

struct CachedMatmul {
  dnnl::matmul prim;
  dnnl::memory::desc weights_md;  // the layout the primitive reads its second operand in
};

struct DnnlContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mu;
  std::unordered_map<std::string, CachedMatmul> cache;
  std::unordered_map<std::string, dnnl::reorder> reorders;
  // The parameter arena in bf16 (see Bf16WeightScope): converted in one pass when a
  // scope first multiplies by a weight, kept across scopes.
  Tensor arena_bf16;
  const void* arena_source = nullptr;
  uint64_t arena_generation = 0;
  // Written by an optimizer update (bf16_copy_for_update) rather than converted here:
  // valid only for a scope opened after_update.
  bool from_update = false;
  MatmulCacheStats stats;
};

DnnlContext& dnnl_ctx() {
  static DnnlContext ctx;
  return ctx;
}

// oneDNN wants a plain row- or column-major matrix in the last two dims.
bool inner_matrix_ok(const Tensor& t) {
  const auto& st = t.strides();
  const auto& sh = t.shape();
  size_t n = st.size();
  return (st[n - 1] == 1 || sh[n - 1] == 1) || (st[n - 2] == 1 || sh[n - 2] == 1);
}

// Geometry of an operand padded to `nd` dims; stride-0 (expanded) batch dims become
// size 1 so oneDNN broadcasts them itself.
void padded_geometry(const Tensor& t, size_t nd, dnnl::memory::dims& dims, dnnl::memory::dims& strides) {
  dims.assign(nd, 1);
  strides.assign(nd, 0);
  size_t lead = nd - t.shape().size();
  for (size_t d = 0; d < t.shape().size(); ++d) {
    dims[lead + d] = t.shape()[d];
    strides[lead + d] = t.strides()[d];
    if (d + 2 < t.shape().size() && t.strides()[d] == 0) dims[lead + d] = 1;
  }
  // Size-1 dims get the stride a dense layout would give them.
  for (size_t d = nd; d-- > 0;) {
    if (dims[d] == 1) {
      int64_t s = 1;
      for (size_t e = d + 1; e < nd; ++e) s = std::max<int64_t>(s, strides[e] * dims[e]);
      strides[d] = s;
    }
  }
}

std::string geometry_key(const dnnl::memory::dims& a, const dnnl::memory::dims& as, const dnnl::memory::dims& b,
                         const dnnl::memory::dims& bs, const dnnl::memory::dims& c, bool bias) {
  std::string k = bias ? "bias|" : "|";
  for (const auto* v : {&a, &as, &b, &bs, &c}) {
    for (auto x : *v) k += std::to_string(x) + ",";
    k += "|";
  }
  return k;
}

dnnl::memory::desc dense_desc(const dnnl::memory::dims& dims, dnnl::memory::data_type type) {
  dnnl::memory::dims strides(dims.size());
  int64_t s = 1;
  for (size_t d = dims.size(); d-- > 0;) strides[d] = s, s *= dims[d];
  return dnnl::memory::desc(dims, type, strides);
}

// A dense bf16 copy of an fp32 operand (any strides) by a cached oneDNN reorder.
Tensor to_bf16_reorder(DnnlContext& ctx, const Tensor& t, const dnnl::memory::desc& from,
                       const dnnl::memory::desc& to, const dnnl::memory::dims& dims) {
  Shape shape(dims.begin(), dims.end());
  Tensor out = Tensor::empty(shape, DType::bf16);
  std::string key = "reorder|";
  for (auto x : dims) key += std::to_string(x) + ",";
  key += "|";
  for (auto x : from.data.format_desc.blocking.strides) key += std::to_string(x) + ",";
  dnnl::reorder r;
  {
    std::lock_guard<std::mutex> lock(ctx.mu);
    auto it = ctx.reorders.find(key);
    if (it == ctx.reorders.end()) {
      r = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, from, ctx.engine, to));
      ctx.reorders.emplace(key, r);
      ctx.stats.created++;
    } else {
      r = it->second;
    }
  }
  dnnl::memory src(from, ctx.engine, t.raw_data()), dst(to, ctx.engine, out.raw_data());
  r.execute(ctx.stream, src, dst);
  return out;
}

// fp32 -> bf16, round to nearest even (NaN stays NaN).
void convert_to_bf16(const float* src, uint16_t* dst, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 1 << 15)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_bits(src[i]);
}

// The bf16 copy of an fp32 operand: same strides when its span is dense (one pass of
// conversion), else a dense copy by a cached oneDNN reorder. Returns the copy and sets
// `desc` to its memory descriptor.
Tensor to_bf16(DnnlContext& ctx, const Tensor& t, const dnnl::memory::desc& from, const dnnl::memory::dims& dims,
               const dnnl::memory::dims& strides, dnnl::memory::desc& desc) {
  if (fills_span(t.shape(), t.strides())) {
    Tensor out = Tensor::empty({t.numel()}, DType::bf16);
    convert_to_bf16(static_cast<const float*>(t.raw_data()), static_cast<uint16_t*>(out.raw_data()), t.numel());
    desc = dnnl::memory::desc(dims, dnnl::memory::data_type::bf16, strides);
    return out;
  }
  desc = dense_desc(dims, dnnl::memory::data_type::bf16);
  return to_bf16_reorder(ctx, t, from, desc, dims);
}

// The context's bf16 arena copy, sized for an arena of n floats (allocated only when the
// arena's size changes).
Tensor& arena_copy(DnnlContext& ctx, int64_t n) {
  if (!ctx.arena_bf16.defined() || ctx.arena_bf16.numel() != n) ctx.arena_bf16 = Tensor::empty({n}, DType::bf16);
  return ctx.arena_bf16;
}

// A weight under a Bf16WeightScope as a view of the arena's bf16 copy (same offset and
// strides), converted once per scope for every product that reads a weight.
Tensor scoped_weight_bf16(const Tensor& w) {
  auto& ctx = dnnl_ctx();
  std::lock_guard<std::mutex> lock(ctx.mu);
  if (ctx.arena_source != bf16_weight_arena() || ctx.arena_generation != bf16_weight_generation() ||
      (ctx.from_update && !scope_after_update())) {
    profiler::Scope p("to_bf16_weights");
    const Storage& arena = *w.impl().storage;
    const int64_t n = static_cast<int64_t>(arena.bytes() / sizeof(float));
    convert_to_bf16(static_cast<const float*>(arena.data()), static_cast<uint16_t*>(arena_copy(ctx, n).raw_data()), n);
    ctx.arena_source = bf16_weight_arena();
    ctx.arena_generation = bf16_weight_generation();
    ctx.from_update = false;
  }
  return Tensor::view_of(ctx.arena_bf16, w.shape(), w.strides(), w.offset());
}

// Whether a matrix operand is stored column-major (its last dim strided).
bool column_major(const Tensor& t) { return t.shape().back() > 1 && t.strides().back() != 1; }

profiler::ProductShape product_shape(const Tensor& a, const Tensor& b, const Tensor& out, bool bias, bool relu) {
  const size_t nd = out.shape().size();
  profiler::ProductShape s;
  s.m = out.shape()[nd - 2];
  s.n = out.shape()[nd - 1];
  s.k = a.shape().back();
  s.batch = out.numel() / std::max<int64_t>(1, s.m * s.n);
  s.a_transposed = column_major(a);
  s.b_transposed = column_major(b);
  s.bias = bias;
  s.relu = relu;
  s.bf16_out = out.dtype() == DType::bf16;
  return s;
}

// The primitive description of c = a x b (+ bias when bias_md is given, relu as a post-op);
// user_scratchpad: the caller passes the scratchpad (several threads run one primitive).
dnnl::matmul::primitive_desc matmul_desc(const DnnlContext& ctx, const dnnl::memory::desc& a_md,
                                         const dnnl::memory::desc& b_md, const dnnl::memory::desc* bias_md,
                                         const dnnl::memory::desc& c_md, bool relu, bool user_scratchpad) {
  dnnl::primitive_attr attr;
  if (user_scratchpad) attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  return dnnl::matmul::primitive_desc(
      bias_md ? dnnl::matmul::desc(a_md, b_md, *bias_md, c_md) : dnnl::matmul::desc(a_md, b_md, c_md), attr,
      ctx.engine);
}

bool split_product(DnnlContext& ctx, const std::string& key, const dnnl::memory::desc& a_md,
                   const dnnl::memory::desc& w_md, const dnnl::memory::desc& c_md, const dnnl::memory::desc& bias_md,
                   bool relu, const void* pa, const void* pb, const Tensor& bias, Tensor& out,
                   const profiler::ProductShape& shape);

void matmul_f32(const Tensor& a_in, const Tensor& b_in, const Tensor& bias, bool relu, Tensor& out) {
  const bool bf16_products = matmul_precision() == MatmulPrecision::bf16;
  const Tensor a = bf16_products && is_scoped_weight(a_in) ? scoped_weight_bf16(a_in) : a_in;
  const Tensor b = bf16_products && is_scoped_weight(b_in) ? scoped_weight_bf16(b_in) : b_in;
  const size_t nd = out.shape().size();
  dnnl::memory::dims ad, as, bd, bs;
  padded_geometry(a, nd, ad, as);
  padded_geometry(b, nd, bd, bs);
  dnnl::memory::dims cd(out.shape().begin(), out.shape().end());
  dnnl::memory::dims cs(out.strides().begin(), out.strides().end());
  using dt = dnnl::memory::data_type;
  const bool bf16_out = out.dtype() == DType::bf16;
  dnnl::memory::desc a_md(ad, dt::f32, as), b_md(bd, dt::f32, bs), c_md(cd, bf16_out ? dt::bf16 : dt::f32, cs);
  dnnl::memory::desc bias_md;
  if (bias.defined()) {
    dnnl::memory::dims bias_dims(nd, 1);
    bias_dims[nd - 1] = cd[nd - 1];
    dnnl::memory::dims bias_strides(nd, 1);
    bias_md = dnnl::memory::desc(bias_dims, dt::f32, bias_strides);
  }

  auto& ctx = dnnl_ctx();
  // Operands that arrive as bf16 (CpuBackend::to_bf16) are read as they are.
  const bool pre_a = a.dtype() == DType::bf16, pre_b = b.dtype() == DType::bf16;
  const bool bf16 = matmul_precision() == MatmulPrecision::bf16 || pre_a || pre_b;
  if (pre_a) a_md = dnnl::memory::desc(ad, dt::bf16, as);
  if (pre_b) b_md = dnnl::memory::desc(bd, dt::bf16, bs);
  TXL_CHECK(bf16 || !bf16_out, "matmul: a bf16 output is for bf16 products only");
  std::string key = (bf16 ? "bf16" : "f32") + geometry_key(ad, as, bd, bs, cd, bias.defined()) + (relu ? "relu|" : "") +
                    (bf16_out ? "out:bf16|" : "");
  // bf16: the products read bf16 copies of both operands.
  Tensor a16 = pre_a ? a : Tensor(), b16 = pre_b ? b : Tensor();
  dnnl::memory::desc a_md_f32 = a_md, b_md_f32 = b_md;
  if (bf16) {
    profiler::Scope p("to_bf16");
    if (!pre_a) a16 = to_bf16(ctx, a, a_md_f32, ad, as, a_md);
    if (!pre_b) b16 = to_bf16(ctx, b, b_md_f32, bd, bs, b_md);
    // "span": the copy has the operand's own strides (made here or by to_bf16).
    key += pre_a || a16.dim() == 1 ? "a:span|" : "a:dense|";
    key += pre_b || b16.dim() == 1 ? "b:span|" : "b:dense|";
  }
  // b_md is the layout the primitives read (explicit strides, never "any").
  if (nd == 2 &&
      split_product(ctx, key, a_md, b_md, c_md, bias_md, relu, bf16 ? a16.raw_data() : a.raw_data(),
                    bf16 ? b16.raw_data() : b.raw_data(), bias, out,
                    profiler::enabled() ? product_shape(a, b, out, bias.defined(), relu) : profiler::ProductShape{}))
    return;
  CachedMatmul cached;
  {
    std::lock_guard<std::mutex> lock(ctx.mu);
    auto it = ctx.cache.find(key);
    if (it != ctx.cache.end()) {
      cached = it->second;
      ctx.stats.reused++;
    } else {
      try {
        const auto pd = matmul_desc(ctx, a_md, b_md, bias.defined() ? &bias_md : nullptr, c_md, relu, false);
        cached = CachedMatmul{dnnl::matmul(pd), pd.weights_desc()};
      } catch (const dnnl::error& e) {
        TXL_FAIL("matmul: oneDNN cannot create a primitive for {} x {} ({})", shape_str(a.shape()),
                 shape_str(b.shape()), e.what());
      }
      ctx.cache.emplace(key, cached);
      ctx.stats.created++;
    }
  }
  dnnl::memory bm(cached.weights_md, ctx.engine, bf16 ? b16.raw_data() : b.raw_data());
  dnnl::matmul prim = cached.prim;
  dnnl::memory am(a_md, ctx.engine, bf16 ? a16.raw_data() : a.raw_data()), cm(c_md, ctx.engine, out.raw_data());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, ctx.engine, bias.raw_data()));
  const bool profiled = profiler::enabled();
  const auto start = profiled ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  prim.execute(ctx.stream, args);
  ctx.stream.wait();
  if (profiled)
    profiler::add_product(product_shape(a, b, out, bias.defined(), relu),
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

// TXL_PRODUCT_SPLIT=0 leaves every product to oneDNN's own threading (for side-by-side
// measurements).
bool product_split_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TXL_PRODUCT_SPLIT");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

// A 2-D product split between the threads, each running a primitive planned for one
// thread on its part, so that the data a thread reads is what it wrote (the rows the
// elementwise kernels give it: thread t of n owns rows [M t / n, M (t + 1) / n)):
// - by rows, when A is row-major (forward and input-gradient products): thread t
//   multiplies its rows of A into its rows of C;
// - by K, when A is column-major (A^T: a weight gradient, K running over the rows of
//   the activations) and C is small (64K elements at most): thread t multiplies its K
//   rows into a partial product, and the threads then add the partials into C, each
//   over its rows of C.
// oneDNN's own split of these small products moved every activation row between the
// cores' caches. Returns false (nothing done) where neither applies.
struct SplitPart {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, scratch;
};

bool split_product(DnnlContext& ctx, const std::string& key, const dnnl::memory::desc& a_md,
                   const dnnl::memory::desc& w_md, const dnnl::memory::desc& c_md, const dnnl::memory::desc& bias_md,
                   bool relu, const void* pa, const void* pb, const Tensor& bias, Tensor& out,
                   const profiler::ProductShape& shape) {
  const int nt = omp_get_max_threads();
  if (nt < 2 || omp_in_parallel() || !product_split_enabled()) return false;
  const auto& ad = a_md.data;
  const auto& bd = w_md.data;
  const int64_t M = ad.dims[0], K = ad.dims[1], N = c_md.data.dims[1];
  const int64_t a_rs = ad.format_desc.blocking.strides[0], a_cs = ad.format_desc.blocking.strides[1];
  const int64_t b_rs = bd.format_desc.blocking.strides[0], b_cs = bd.format_desc.blocking.strides[1];
  const int64_t c_rs = c_md.data.format_desc.blocking.strides[0], c_cs = c_md.data.format_desc.blocking.strides[1];
  if (bd.format_kind != dnnl_blocked || c_cs != 1) return false;
  using dt = dnnl::memory::data_type;
  const auto c_type = static_cast<dt>(c_md.data.data_type);
  // Only where moving the rows costs about as much as multiplying them: a row's work is
  // K x N. On the enwik8 shapes (K x N >= 512 x 512, weight gradients of 512 x 512)
  // oneDNN's own split measured as fast or faster.
  const bool by_rows = a_cs == 1 && M >= 64 * nt && K * N <= (int64_t{1} << 17);
  const bool by_k = !by_rows && a_rs == 1 && K >= 128 * nt && M * N <= (int64_t{1} << 16) && !bias.defined() && !relu &&
                    c_type == dt::f32;
  if (!by_rows && !by_k) return false;
  const int64_t extent = by_rows ? M : K;
  auto begin = [&](int t) { return extent * t / nt; };
  const auto a_type = static_cast<dt>(ad.data_type), b_type = static_cast<dt>(bd.data_type);
  const size_t a_elem = a_type == dt::bf16 ? 2 : 4, b_elem = b_type == dt::bf16 ? 2 : 4;
  const size_t c_elem = c_type == dt::bf16 ? 2 : 4;
  auto part_for = [&](int64_t n) {
    const std::string k = key + (by_rows ? "rows:" : "k:") + std::to_string(n) + "|";
    static std::unordered_map<std::string, SplitPart> parts;
    std::lock_guard<std::mutex> lock(ctx.mu);
    auto it = parts.find(k);
    if (it != parts.end()) return it->second;
    SplitPart p;
    p.a = dnnl::memory::desc({by_rows ? n : M, by_rows ? K : n}, a_type, {a_rs, a_cs});
    p.b = by_rows ? w_md : dnnl::memory::desc({n, N}, b_type, {b_rs, b_cs});
    // A K part's partial is dense; a row part writes straight into C.
    p.c = by_rows ? dnnl::memory::desc({n, N}, c_type, {c_rs, 1}) : dnnl::memory::desc({M, N}, dt::f32, {N, 1});
    // Planned for the one thread that runs it (in a parallel region oneDNN uses one); the
    // pool's size comes back however creation ends.
    struct OneThread {
      int saved = omp_get_max_threads();
      OneThread() { omp_set_num_threads(1); }
      ~OneThread() { omp_set_num_threads(saved); }
    };
    try {
      const OneThread planning;
      const auto pd = matmul_desc(ctx, p.a, p.b, bias.defined() ? &bias_md : nullptr, p.c, relu, true);
      p.prim = dnnl::matmul(pd);
      p.scratch = pd.scratchpad_desc();
    } catch (const dnnl::error& e) {
      TXL_FAIL("matmul: oneDNN cannot create a primitive for a {}-row part of {} x {} x {} ({})", n, M, K, N, e.what());
    }
    parts.emplace(k, p);
    ctx.stats.created++;
    return p;
  };
  std::vector<SplitPart> plan(static_cast<size_t>(nt));
  for (int t = 0; t < nt; ++t) plan[static_cast<size_t>(t)] = part_for(begin(t + 1) - begin(t));
  std::vector<float*> partials(static_cast<size_t>(nt));
  const bool profiled = profiler::enabled();
  const auto start = profiled ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  bool short_team = false;
  // Thread t's part; with the K split, the threads then add the partials (a barrier
  // between, reached by every thread of the team).
  auto run_part = [&](int t) {
    const int64_t i0 = begin(t);
    const SplitPart& p = plan[static_cast<size_t>(t)];
    thread_local dnnl::stream stream{dnnl_ctx().engine};
    thread_local std::vector<uint8_t> scratch;
    thread_local std::vector<float> partial;  // only ever grown: steady-state steps allocate nothing
    if (scratch.size() < p.scratch.get_size()) scratch.resize(p.scratch.get_size());
    const char* a0 = static_cast<const char*>(pa);
    const char* b0 = static_cast<const char*>(pb);
    void* c = static_cast<char*>(out.raw_data()) + (by_rows ? i0 * c_rs * static_cast<int64_t>(c_elem) : 0);
    if (by_rows) {
      a0 += i0 * a_rs * static_cast<int64_t>(a_elem);
    } else {
      a0 += i0 * a_cs * static_cast<int64_t>(a_elem);
      b0 += i0 * b_rs * static_cast<int64_t>(b_elem);
      if (partial.size() < static_cast<size_t>(M * N)) partial.resize(static_cast<size_t>(M * N));
      c = partial.data();
      partials[static_cast<size_t>(t)] = partial.data();
    }
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, dnnl::memory(p.a, ctx.engine, const_cast<char*>(a0))},
        {DNNL_ARG_WEIGHTS, dnnl::memory(p.b, ctx.engine, const_cast<char*>(b0))},
        {DNNL_ARG_DST, dnnl::memory(p.c, ctx.engine, c)},
        {DNNL_ARG_SCRATCHPAD, dnnl::memory(p.scratch, ctx.engine, scratch.data())}};
    if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, ctx.engine, bias.raw_data()));
    p.prim.execute(stream, args);
    stream.wait();
    if (!by_k) return;
#pragma omp barrier
    // The partials summed in thread order, the same for every row.
    for (int64_t r = M * t / nt; r < M * (t + 1) / nt; ++r) {
      float* dst = out.data<float>() + r * c_rs;
      const float* first = partials[0] + r * N;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) dst[j] = first[j];
      for (int u = 1; u < nt; ++u) {
        const float* src = partials[static_cast<size_t>(u)] + r * N;
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) dst[j] += src[j];
      }
    }
  };
  // The runtime may give a smaller team than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC): then
  // no thread runs a part (every thread sees the same team size) and oneDNN runs it all.
#pragma omp parallel num_threads(nt)
  {
    if (omp_get_num_threads() == nt) {
      run_part(omp_get_thread_num());
    } else {
#pragma omp single nowait
      short_team = true;
    }
  }
  if (short_team) return false;
  {
    std::lock_guard<std::mutex> lock(ctx.mu);
    ctx.stats.split++;
  }
  if (profiled)
    profiler::add_product(shape, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return true;
}

template <class T>
void matmul_reference(const Tensor& a, const Tensor& b, const Tensor& bias, Tensor& out) {
  const size_t nd = out.shape().size();
  const int64_t M = out.shape()[nd - 2], N = out.shape()[nd - 1], K = a.shape().back();
  Shape batch(out.shape().begin(), out.shape().end() - 2);
  Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Strides a_bst = broadcast_strides(a_batch, Strides(a.strides().begin(), a.strides().end() - 2), batch);
  Strides b_bst = broadcast_strides(b_batch, Strides(b.strides().begin(), b.strides().end() - 2), batch);
  const int64_t nb = numel_of(batch);
  const int64_t am = a.strides()[a.dim() - 2], ak = a.strides()[a.dim() - 1];
  const int64_t bk = b.strides()[b.dim() - 2], bn = b.strides()[b.dim() - 1];
  const T* pa = static_cast<const T*>(a.impl().storage->data()) + a.offset();
  const T* pb = static_cast<const T*>(b.impl().storage->data()) + b.offset();
  T* pc = out.data<T>();
  const T* pbias = bias.defined() ? bias.data<T>() : nullptr;
#pragma omp parallel for collapse(2) schedule(static) if (nb * M * N * K > kParallelGrain)
  for (int64_t bi = 0; bi < nb; ++bi) {
    for (int64_t i = 0; i < M; ++i) {
      int64_t rem = bi, aoff = 0, boff = 0;
      for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
        int64_t idx = rem % batch[d];
        rem /= batch[d];
        aoff += idx * a_bst[d];
        boff += idx * b_bst[d];
      }
      T* crow = pc + (bi * M + i) * N;
      for (int64_t j = 0; j < N; ++j) crow[j] = pbias ? pbias[j] : T(0);
      for (int64_t k = 0; k < K; ++k) {
        const T av = pa[aoff + i * am + k * ak];
        const T* brow = pb + boff + k * bk;
        for (int64_t j = 0; j < N; ++j) crow[j] += av * brow[j * bn];
      }
    }
  }
}

}  // namespace

Tensor CpuBackend::to_bf16(const Tensor& x_in) {
  TXL_CHECK(x_in.dtype() == DType::f32, "to_bf16: expected an f32 tensor, got {}", dtype_name(x_in.dtype()));
  // Strides are kept when the copy can still be read by a product (a unit stride in one
  // of the last two dims); otherwise, or for a sparse view, the copy is dense.
  const bool keep = fills_span(x_in.shape(), x_in.strides()) && (x_in.dim() < 2 || inner_matrix_ok(x_in));
  Tensor x = keep ? x_in : contiguous_of(x_in);
  Tensor buf = Tensor::empty({x.numel()}, DType::bf16, x.device());
  convert_to_bf16(static_cast<const float*>(x.raw_data()), static_cast<uint16_t*>(buf.raw_data()), x.numel());
  return Tensor::view_of(buf, x.shape(), x.strides(), 0);
}

MatmulCacheStats matmul_cache_stats() {
  auto& ctx = dnnl_ctx();
  std::lock_guard<std::mutex> lock(ctx.mu);
  return ctx.stats;
}

// out = a x b (+ bias, relu); out is dense and already shaped.
void CpuBackend::product_into(const Tensor& a_in, const Tensor& b_in, const Tensor& bias, bool relu, Tensor& out) {
  if (out.numel() == 0) return;
  if (a_in.shape().back() == 0) {
    fill(out, 0.0);
    if (bias.defined()) binary_inplace(BinaryOp::add, out, bias);
    if (relu) {
      Tensor r = unary(UnaryOp::relu, out, {});
      copy(r, out);
    }
    return;
  }
  switch (out.dtype()) {
    case DType::bf16:  // an fp32 product's output rounded to bf16 (matmul's bf16_out)
    case DType::f32: {
      TXL_CHECK((a_in.dtype() == DType::f32 || inner_matrix_ok(a_in)) && (b_in.dtype() == DType::f32 || inner_matrix_ok(b_in)),
                "matmul: a bf16 operand needs a unit stride in one of its last two dims");
      Tensor a = inner_matrix_ok(a_in) ? a_in : contiguous_of(a_in);
      Tensor b = inner_matrix_ok(b_in) ? b_in : contiguous_of(b_in);
      matmul_f32(a, b, bias, relu, out);
      break;
    }
    case DType::f64: {
      matmul_reference<double>(a_in, b_in, bias, out);
      if (relu) {
        Tensor r = unary(UnaryOp::relu, out, {});
        copy(r, out);
      }
      break;
    }
    default: TXL_FAIL("matmul: unsupported dtype {}", dtype_name(a_in.dtype()));
  }
}

Tensor CpuBackend::matmul(const Tensor& a_in, const Tensor& b_in, const Tensor& bias_in, bool relu, bool bf16_out) {
  DType out_type;
  Shape out_shape = matmul_result_shape(a_in, b_in, out_type);
  Tensor bias = bias_in.defined() ? contiguous_of(bias_in) : bias_in;
  check_matmul_bias(bias, b_in, out_type);
  TXL_CHECK(!bf16_out || out_type == DType::f32, "matmul: a bf16 output rounds an fp32 product, not {}",
            dtype_name(out_type));
  if (bf16_out && a_in.shape().back() == 0) return to_bf16(matmul(a_in, b_in, bias, relu));  // nothing to multiply
  Tensor out = Tensor::empty(out_shape, bf16_out ? DType::bf16 : out_type, a_in.device());
  product_into(a_in, b_in, bias, relu, out);
  return out;
}

void CpuBackend::matmul_into(const Tensor& a, const Tensor& b, Tensor& out) {
  DType out_type;
  Shape out_shape = matmul_result_shape(a, b, out_type);
  check_matmul_destination(out, out_shape, out_type);
  product_into(a, b, Tensor(), false, out);
}

}  // namespace txl::cpu

// The bf16 arena copy's side of an optimizer update (precision.h).
namespace txl {

Tensor bf16_copy_for_update(const Tensor& arena) {
  if (matmul_precision() != MatmulPrecision::bf16 || !arena.defined() || !arena.device().is_cpu() ||
      arena.dtype() != DType::f32 || !arena.is_contiguous() || arena.offset() != 0 ||
      arena.numel() * static_cast<int64_t>(sizeof(float)) != static_cast<int64_t>(arena.impl().storage->bytes()))
    return Tensor();
  auto& ctx = cpu::dnnl_ctx();
  std::lock_guard<std::mutex> lock(ctx.mu);
  // The update writes every element (it covers the whole arena) before bf16_copy_updated.
  Tensor& copy = cpu::arena_copy(ctx, arena.numel());
  ctx.arena_source = nullptr;  // half-written until bf16_copy_updated
  return Tensor::view_of(copy, arena.shape(), arena.strides(), 0);
}

void bf16_copy_updated(const Tensor& arena) {
  auto& ctx = cpu::dnnl_ctx();
  std::lock_guard<std::mutex> lock(ctx.mu);
  ctx.arena_source = arena.impl().storage.get();
  // Current for the next scope, if nothing opens or closes one before it.
  ctx.arena_generation = bf16_weight_generation() + 1;
  ctx.from_update = true;
}

void bf16_copy_refresh(const Tensor& weights) {
  auto& ctx = cpu::dnnl_ctx();
  std::lock_guard<std::mutex> lock(ctx.mu);
  const bool pending = ctx.from_update && ctx.arena_source == weights.impl().storage.get() &&
                       ctx.arena_generation == bf16_weight_generation() + 1;
  if (!pending) return;  // no update copy to keep current: the next scope converts anyway
  if (weights.dtype() != DType::f32 || !weights.is_contiguous()) {
    ctx.arena_source = nullptr;
    return;
  }
  cpu::convert_to_bf16(static_cast<const float*>(weights.raw_data()),
                       static_cast<uint16_t*>(ctx.arena_bf16.raw_data()) + weights.offset(), weights.numel());
}

}  // namespace txl
