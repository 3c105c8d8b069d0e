// The fused adaptive-span attention core on the CPU (contract in backend.h). One task
// per (batch, head); a task walks its queries in blocks of n rows. Rows [i0, i1) see
// keys [i0, i1 + L - 1): a block multiplies its queries with those Kb = n + L - 1 keys
// and reads its band out of the product (row r, window column j is key r + j of the
// block), the same trick as the reference's unskew without the padded tensor. Scores,
// softmax, ramp and renormalisation stay in per-thread buffers; the forward keeps each
// row's log-sum-exp and renormaliser, and the backward recomputes the probabilities.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "block_gemm.h"
#include "cpu_backend.h"
#include "fast_exp.h"
#include "key_value_dtype.h"
#include "panels.h"

namespace txl::cpu {

namespace {

constexpr double kRampEps = 1e-8;  // adaptive_span.py adds it to the renormaliser

struct Geometry {
  int64_t M, L, LK, B, H, Dh, N;  // LK = L + M keys
  int64_t q_row, q_b, q_h, k_row, k_b, k_h, v_row, v_b, v_h, pe_row;
  int64_t block;  // query rows per block
};

Geometry geometry_of(SpanAttentionInputs& in, const char* op) {
  TXL_CHECK(in.q.dim() == 4 && in.k.dim() == 4 && in.v.dim() == 4 && in.pe.dim() == 2,
            "{}: expected q [M, B, H, Dh], k, v [L + M, B, H, Dh], pe [Dh, L], got {} {} {} {}", op,
            shape_str(in.q.shape()), shape_str(in.k.shape()), shape_str(in.v.shape()), shape_str(in.pe.shape()));
  const int64_t M = in.q.shape()[0], B = in.q.shape()[1], H = in.q.shape()[2], Dh = in.q.shape()[3];
  const int64_t L = in.pe.shape()[1], LK = L + M;
  TXL_CHECK(L >= 1 && in.k.shape() == Shape({LK, B, H, Dh}) && in.v.shape() == in.k.shape() && in.pe.shape()[0] == Dh,
            "{}: shapes do not agree: q {} k {} v {} pe {}", op, shape_str(in.q.shape()), shape_str(in.k.shape()),
            shape_str(in.v.shape()), shape_str(in.pe.shape()));
  TXL_CHECK(!in.ramp.defined() || in.ramp.shape() == Shape({H, L}), "{}: ramp {} for {} heads and window {}", op,
            in.ramp.defined() ? shape_str(in.ramp.shape()) : "", H, L);
  TXL_CHECK(in.pk.defined() == in.pv.defined(), "{}: persistent keys and values come together", op);
  const int64_t N = in.pk.defined() ? in.pk.shape()[2] : 0;
  TXL_CHECK(!in.pk.defined() || (in.pk.shape() == Shape({H, Dh, N}) && in.pv.shape() == Shape({H, N, Dh})),
            "{}: persistent keys {} / values {} do not fit {} heads of {}", op,
            in.pk.defined() ? shape_str(in.pk.shape()) : "", in.pv.defined() ? shape_str(in.pv.shape()) : "", H, Dh);
  const DType dt = in.q.dtype();
  for (const Tensor* t : {&in.pe, &in.ramp, &in.pk, &in.pv})
    TXL_CHECK(!t->defined() || t->dtype() == dt, "{}: dtype mismatch ({} vs {})", op, dtype_name(t->dtype()),
              dtype_name(dt));
  check_key_value_dtypes(in.k, in.v, dt, op);
  in.q = inner_contiguous_of(in.q);
  in.k = inner_contiguous_of(in.k);
  in.v = inner_contiguous_of(in.v);
  in.pe = inner_contiguous_of(in.pe);
  if (in.ramp.defined()) in.ramp = contiguous_of(in.ramp);
  if (in.pk.defined()) in.pk = contiguous_of(in.pk), in.pv = contiguous_of(in.pv);
  const auto &qs = in.q.strides(), &ks = in.k.strides(), &vs = in.v.strides();
  // Long windows make each block's buffers n x (n + L): fewer rows keep them near L2.
  // Either one block covers every row or blocks are 32 or 64 rows, so block offsets
  // are even: BlockGemm reads the packed value and key rows at them (no fp32 panel).
  const int64_t block = std::min<int64_t>(M, L > 2048 ? 32 : 64);
  return {M,    L, LK, B, H, Dh, N, qs[0], qs[1], qs[2], ks[0], ks[1], ks[2], vs[0], vs[1], vs[2], in.pe.strides()[0],
          block};
}

// Per-thread buffers of one block (rows x columns): band scores / probabilities in the
// full-key layout (n x Kb), the position term (n x L), persistent scores (n x N), and
// the task's packed panels.
template <class T>
struct SpanScratch {
  std::vector<T> full, pos, pers, grad_full, qc, kt, kc, vt, vc, pkt, pvt, goc, gpers, ds_pos;
  // The backward's dk and dv of one task, transposed ([Dh, LK], leading dimension
  // transposed_ld(LK)): each block adds q^T ds and go^T a, whose transposed operand is
  // the small [n, Dh] one rather than the [n, Kb] scores.
  std::vector<T> dkt, dvt;
  // With bf16 operands (bf16_operands): a block's output or dq rows, and a task's dk or
  // dv rows, in fp32 before they are rounded.
  std::vector<T> blk, grad_rows;
  // In bf16 runs, the packed copies of the panels the block products read (BlockGemm).
  PackedOperand kt_p, kc_p, vt_p, vc_p, pe_p, pet_p;
  void size_for(const Geometry& g) {
    const size_t n = static_cast<size_t>(g.block), kb = static_cast<size_t>(g.block + g.L - 1);
    const size_t lk = static_cast<size_t>(g.LK), dh = static_cast<size_t>(g.Dh), N = static_cast<size_t>(g.N);
    full.resize(n * kb);
    grad_full.resize(n * kb);
    pos.resize(n * static_cast<size_t>(g.L));
    pers.resize(n * std::max<size_t>(N, 1));
    gpers.resize(n * std::max<size_t>(N, 1));
    ds_pos.resize(n * static_cast<size_t>(g.L));
    qc.resize(n * dh);
    kt.resize(dh * lk);
    kc.resize(lk * dh);
    vt.resize(dh * lk);
    vc.resize(lk * dh);
    pkt.resize(std::max<size_t>(N, 1) * dh);
    pvt.resize(std::max<size_t>(N, 1) * dh);
    goc.resize(static_cast<size_t>(g.M) * dh);
    blk.resize(n * dh);
  }
  void size_accumulators(const Geometry& g, bool bf16_grads) {  // the backward's only
    const size_t acc = static_cast<size_t>(g.Dh * transposed_ld(g.LK));
    dkt.resize(acc);
    dvt.resize(acc);
    if (bf16_grads) grad_rows.resize(static_cast<size_t>(g.LK * g.Dh));
  }
};

// Probabilities of rows [i0, i0 + n) of one task: fills sc.pos with the window's final
// weights a_j (after ramp and renormalisation) and sc.pers with the persistent ones,
// and sc.full with a_j at column r + j. With `stats` it records each row's lse and
// renormaliser; otherwise it recomputes from them. p (before the ramp) is returned in
// sc.grad_full's band when keep_p is set (the backward needs it for the ramp's gradient).
template <class T>
void block_probs(const BlockGemm& bg, const Geometry& g, const T* q, const T* pe, const T* ramp, const T* pk, T scale,
                 int64_t i0, int64_t n, SpanScratch<T>& sc, T* lse, T* denom, bool stats) {
  const int64_t L = g.L, Kb = n + L - 1, Dh = g.Dh, N = g.N;
  pack_rows(q + i0 * g.q_row, g.q_row, n, Dh, sc.qc.data());
  bg.mul<false>(n, Kb, Dh, sc.qc.data(), Dh, sc.kt.data() + i0, g.LK, sc.kt_p, 0, i0, sc.full.data(), Kb, false);
  bg.mul<false>(n, L, Dh, sc.qc.data(), Dh, pe, g.pe_row, sc.pe_p, 0, 0, sc.pos.data(), L, false);
  if (N > 0) bg.mul<false>(n, N, Dh, sc.qc.data(), Dh, pk, N, sc.pers.data(), N, false);
  for (int64_t r = 0; r < n; ++r) {
    T* s = sc.pos.data() + r * L;  // becomes the window's weights
    T* f = sc.full.data() + r * Kb;
    T* sp = sc.pers.data() + r * N;
    const T* band = f + r;
#pragma omp simd
    for (int64_t j = 0; j < L; ++j) s[j] = (band[j] + s[j]) * scale;
    for (int64_t m = 0; m < N; ++m) sp[m] *= scale;
    T lr, dr;
    if (stats) {
      T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < L; ++j) mx = s[j] > mx ? s[j] : mx;
      for (int64_t m = 0; m < N; ++m) mx = std::max(mx, sp[m]);
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < L; ++j) sum += fast_exp(s[j] - mx);
      for (int64_t m = 0; m < N; ++m) sum += fast_exp(sp[m] - mx);
      lr = mx + std::log(sum);
      lse[i0 + r] = lr;
    } else {
      lr = lse[i0 + r];
    }
#pragma omp simd
    for (int64_t j = 0; j < L; ++j) s[j] = fast_exp(s[j] - lr);
    for (int64_t m = 0; m < N; ++m) sp[m] = fast_exp(sp[m] - lr);
    if (ramp) {
      if (stats) {
        T c = 0;
#pragma omp simd reduction(+ : c)
        for (int64_t j = 0; j < L; ++j) c += s[j] * ramp[j];
        for (int64_t m = 0; m < N; ++m) c += sp[m];
        denom[i0 + r] = c + static_cast<T>(kRampEps);
      }
      dr = denom[i0 + r];
    } else {
      dr = T(1);
      if (stats) denom[i0 + r] = dr;
    }
    // The band of grad_full keeps p (pre-ramp) for the backward's ramp gradient.
    T* pkeep = sc.grad_full.data() + r * Kb + r;
    std::fill(f, f + Kb, T(0));
    const T inv = T(1) / dr;
#pragma omp simd
    for (int64_t j = 0; j < L; ++j) {
      pkeep[j] = s[j];
      const T a = (ramp ? s[j] * ramp[j] : s[j]) * inv;
      s[j] = a;
      f[r + j] = a;
    }
    for (int64_t m = 0; m < N; ++m) sp[m] *= inv;
  }
}

// KV: the element type of k and v, T or (for T = float) bf16 bits.
template <class T, class KV>
void forward_kernel(const BlockGemm& bg, const Geometry& g, const SpanAttentionInputs& in, T scale,
                    FusedSpanAttention& res) {
  const T *pq = in.q.data<T>(), *ppe = in.pe.data<T>();
  const KV *pk = key_value_data<KV>(in.k), *pv = key_value_data<KV>(in.v);
  const T* pramp = in.ramp.defined() ? in.ramp.data<T>() : nullptr;
  const T* ppk = in.pk.defined() ? in.pk.data<T>() : nullptr;
  const T* ppv = in.pv.defined() ? in.pv.data<T>() : nullptr;
  // bf16_operands: the output rounded to bf16 (T = float), through the block buffer.
  const bool bf16_out = res.out.dtype() == DType::bf16;
  T *po = bf16_out ? nullptr : res.out.data<T>(), *pl = res.lse.data<T>(), *pd = res.denom.data<T>();
  uint16_t* po_b = bf16_out ? static_cast<uint16_t*>(res.out.raw_data()) : nullptr;
  const int64_t tasks = g.B * g.H, Dh = g.Dh, N = g.N, o_row = g.B * g.H * Dh;
#pragma omp parallel
  {
    thread_local SpanScratch<T> sc;
    sc.size_for(g);
    bg.pack(sc.pe_p, ppe, g.pe_row, Dh, g.L);  // shared by every task
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / g.H, h = t % g.H;
      const T* q = pq + b * g.q_b + h * g.q_h;
      bg.prepare_transposed(sc.kt, sc.kt_p, pk + b * g.k_b + h * g.k_h, g.k_row, g.LK, Dh);
      bg.prepare_rows(sc.vc, sc.vc_p, pv + b * g.v_b + h * g.v_h, g.v_row, g.LK, Dh);
      const int64_t o_off = (b * g.H + h) * Dh;
      for (int64_t i0 = 0; i0 < g.M; i0 += g.block) {
        const int64_t n = std::min(g.block, g.M - i0), Kb = n + g.L - 1;
        block_probs(bg, g, q, ppe, pramp ? pramp + h * g.L : nullptr, ppk ? ppk + h * Dh * N : nullptr, scale, i0, n,
                    sc, pl + t * g.M, pd + t * g.M, true);
        T* o = bf16_out ? sc.blk.data() : po + o_off + i0 * o_row;
        const int64_t ld = bf16_out ? Dh : o_row;
        bg.mul<false>(n, Dh, Kb, sc.full.data(), Kb, sc.vc.data() + i0 * Dh, Dh, sc.vc_p, i0, 0, o, ld, false);
        if (N > 0) bg.mul<false>(n, Dh, N, sc.pers.data(), N, ppv + h * N * Dh, Dh, o, ld, true);
        if constexpr (std::is_same_v<T, float>) {
          if (bf16_out) round_rows_to_bf16(o, Dh, n, Dh, po_b + o_off + i0 * o_row, o_row);
        }
      }
    }
  }
}

struct SpanParts {  // per-task / per-batch partial gradients of the shared inputs
  Tensor pe, ramp, pk, pv;
};

template <class T, class KV>
void backward_kernel(const BlockGemm& bg, const Geometry& g, const SpanAttentionInputs& in, T scale,
                     const FusedSpanAttention& fwd, const Tensor& gout, SpanAttentionGrads& gr, SpanParts& parts,
                     const Tensor& pe_t) {
  const T *pq = in.q.data<T>(), *ppe = in.pe.data<T>();
  const KV *pk = key_value_data<KV>(in.k), *pv = key_value_data<KV>(in.v);
  const T* pramp = in.ramp.defined() ? in.ramp.data<T>() : nullptr;
  const T* ppk = in.pk.defined() ? in.pk.data<T>() : nullptr;
  const T* ppv = in.pv.defined() ? in.pv.data<T>() : nullptr;
  // block_probs only reads lse and denom here (stats = false).
  T *pl = fwd.lse.data<T>(), *pd = fwd.denom.data<T>();
  const T *pgo = gout.data<T>(), *pet = pe_t.data<T>();
  // bf16_operands: dq, dk and dv rounded to bf16 as they are written (T = float).
  const bool bf16_grads = gr.q.dtype() == DType::bf16;
  T *gq = bf16_grads ? nullptr : gr.q.data<T>(), *gk = bf16_grads ? nullptr : gr.k.data<T>(),
    *gv = bf16_grads ? nullptr : gr.v.data<T>();
  uint16_t* gq_b = bf16_grads ? static_cast<uint16_t*>(gr.q.raw_data()) : nullptr;
  uint16_t* gk_b = bf16_grads ? static_cast<uint16_t*>(gr.k.raw_data()) : nullptr;
  uint16_t* gv_b = bf16_grads ? static_cast<uint16_t*>(gr.v.raw_data()) : nullptr;
  T* gpe = parts.pe.data<T>();
  T* gramp = pramp ? parts.ramp.data<T>() : nullptr;
  T* gpk = ppk ? parts.pk.data<T>() : nullptr;
  T* gpv = ppv ? parts.pv.data<T>() : nullptr;
  const int64_t tasks = g.B * g.H, Dh = g.Dh, N = g.N, L = g.L, row = g.B * g.H * Dh, ldt = transposed_ld(g.LK);
#pragma omp parallel
  {
    thread_local SpanScratch<T> sc;
    sc.size_for(g);
    sc.size_accumulators(g, bf16_grads);
    std::vector<T>& gpers = sc.gpers;
    std::vector<T>& ds_pos = sc.ds_pos;
    bg.pack(sc.pe_p, ppe, g.pe_row, Dh, L);  // shared by every task
    bg.pack(sc.pet_p, pet, Dh, L, Dh);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / g.H, h = t % g.H;
      const T* q = pq + b * g.q_b + h * g.q_h;
      const KV* k = pk + b * g.k_b + h * g.k_h;
      const KV* v = pv + b * g.v_b + h * g.v_h;
      const T* ramp = pramp ? pramp + h * L : nullptr;
      const T* pkh = ppk ? ppk + h * Dh * N : nullptr;
      bg.prepare_transposed(sc.kt, sc.kt_p, k, g.k_row, g.LK, Dh);
      bg.prepare_rows(sc.kc, sc.kc_p, k, g.k_row, g.LK, Dh);
      bg.prepare_transposed(sc.vt, sc.vt_p, v, g.v_row, g.LK, Dh);
      pack_rows(pgo + (b * g.H + h) * Dh, row, g.M, Dh, sc.goc.data());
      if (N > 0) {
        transpose_panel(pkh, N, Dh, N, sc.pkt.data());                // [N, Dh]
        transpose_panel(ppv + h * N * Dh, Dh, N, Dh, sc.pvt.data());  // [Dh, N]
      }
      const int64_t qkv_off = (b * g.H + h) * Dh;
      T* dpe = gpe + t * Dh * L;
      T* dramp = gramp ? gramp + t * L : nullptr;
      T* dpk = gpk ? gpk + t * Dh * N : nullptr;
      T* dpv = gpv ? gpv + t * N * Dh : nullptr;
      std::fill(sc.dkt.begin(), sc.dkt.end(), T(0));
      std::fill(sc.dvt.begin(), sc.dvt.end(), T(0));
      for (int64_t i0 = 0; i0 < g.M; i0 += g.block) {
        const int64_t n = std::min(g.block, g.M - i0), Kb = n + L - 1;
        block_probs(bg, g, q, ppe, ramp, pkh, scale, i0, n, sc, pl + t * g.M, pd + t * g.M, false);
        const T* go = sc.goc.data() + i0 * Dh;
        // Gradients of the weights: u (window, full layout) and w (persistent).
        // grad_full's band holds p; read it out before the product overwrites it.
        for (int64_t r = 0; r < n; ++r) std::copy_n(sc.grad_full.data() + r * Kb + r, L, ds_pos.data() + r * L);
        bg.mul<true>(Dh, Kb, n, go, Dh, sc.full.data(), Kb, sc.dvt.data() + i0, ldt, true);
        if (N > 0) bg.mul<true>(N, Dh, n, sc.pers.data(), N, go, Dh, dpv, Dh, true);
        bg.mul<false>(n, Kb, Dh, go, Dh, sc.vt.data() + i0, g.LK, sc.vt_p, 0, i0, sc.grad_full.data(), Kb, false);
        if (N > 0) bg.mul<false>(n, N, Dh, go, Dh, sc.pvt.data(), N, gpers.data(), N, false);
        for (int64_t r = 0; r < n; ++r) {
          const T* a = sc.pos.data() + r * L;  // final weights
          const T* ap = sc.pers.data() + r * N;
          T* p = ds_pos.data() + r * L;             // p in, ds out
          T* u = sc.grad_full.data() + r * Kb + r;  // dL/da_j in, ds_j out (band of full)
          T* w = gpers.data() + r * N;
          const T dr = pd[t * g.M + i0 + r];
          // Renormalisation a = c / D (c = p * ramp, D = sum c + sum pp + eps): then the
          // ramp, then the softmax over window and persistent scores together.
          T dot = 0;
          if (ramp) {
            T s1 = 0;
#pragma omp simd reduction(+ : s1)
            for (int64_t j = 0; j < L; ++j) s1 += u[j] * a[j];
            for (int64_t m = 0; m < N; ++m) s1 += w[m] * ap[m];
            const T inv = T(1) / dr, dd = -s1 * inv;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < L; ++j) {
              const T dc = u[j] * inv + dd;
              dramp[j] += dc * p[j];
              u[j] = dc * ramp[j];  // dL/dp_j
              dot += p[j] * u[j];
            }
            for (int64_t m = 0; m < N; ++m) {
              w[m] = w[m] * inv + dd;    // dL/dpp_m
              dot += ap[m] * dr * w[m];  // pp_m = ap_m * D
            }
          } else {
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < L; ++j) dot += p[j] * u[j];
            for (int64_t m = 0; m < N; ++m) dot += ap[m] * w[m];
          }
#pragma omp simd
          for (int64_t j = 0; j < L; ++j) {
            const T ds = p[j] * (u[j] - dot) * scale;
            p[j] = ds;
            u[j] = ds;
          }
          for (int64_t m = 0; m < N; ++m) {
            const T pp = ramp ? ap[m] * dr : ap[m];
            w[m] = pp * (w[m] - dot) * scale;
          }
          // Only the band of grad_full carries ds; the rest must be zero for the products.
          T* f = sc.grad_full.data() + r * Kb;
          std::fill(f, f + r, T(0));
          std::fill(f + r + L, f + Kb, T(0));
        }
        // dq = ds_full k + ds_pos pe^T + ds_pers pk^T
        T* dq_rows = bf16_grads ? sc.blk.data() : gq + qkv_off + i0 * row;
        const int64_t ldq = bf16_grads ? Dh : row;
        bg.mul<false>(n, Dh, Kb, sc.grad_full.data(), Kb, sc.kc.data() + i0 * Dh, Dh, sc.kc_p, i0, 0, dq_rows, ldq,
                      false);
        bg.mul<false>(n, Dh, L, ds_pos.data(), L, pet, Dh, sc.pet_p, 0, 0, dq_rows, ldq, true);
        if (N > 0) bg.mul<false>(n, Dh, N, gpers.data(), N, sc.pkt.data(), Dh, dq_rows, ldq, true);
        if constexpr (std::is_same_v<T, float>) {
          if (bf16_grads) round_rows_to_bf16(dq_rows, Dh, n, Dh, gq_b + qkv_off + i0 * row, row);
        }
        // dk += ds_full^T q (as dk^T += q^T ds_full); dpe += q^T ds_pos; dpk += q^T ds_pers
        bg.mul<true>(Dh, Kb, n, sc.qc.data(), Dh, sc.grad_full.data(), Kb, sc.dkt.data() + i0, ldt, true);
        bg.mul<true>(Dh, L, n, sc.qc.data(), Dh, ds_pos.data(), L, dpe, L, true);
        if (N > 0) bg.mul<true>(Dh, N, n, sc.qc.data(), Dh, gpers.data(), N, dpk, N, true);
      }
      if constexpr (std::is_same_v<T, float>) {
        if (bf16_grads) {
          untranspose_panel_bf16(sc.dkt.data(), ldt, Dh, g.LK, sc.grad_rows.data(), gk_b + qkv_off, row);
          untranspose_panel_bf16(sc.dvt.data(), ldt, Dh, g.LK, sc.grad_rows.data(), gv_b + qkv_off, row);
          continue;
        }
      }
      untranspose_panel(sc.dkt.data(), ldt, Dh, g.LK, gk + qkv_off, row);
      untranspose_panel(sc.dvt.data(), ldt, Dh, g.LK, gv + qkv_off, row);
    }
  }
}

}  // namespace

FusedSpanAttention CpuBackend::fused_span_attention(const SpanAttentionInputs& in_, double scale) {
  SpanAttentionInputs in = in_;
  const Geometry g = geometry_of(in, "fused_span_attention");
  const DType dt = in.q.dtype();
  FusedSpanAttention res;
  const bool bf16_out = in.bf16_operands && dt == DType::f32;
  res.out = Tensor::empty({g.M, g.B, g.H, g.Dh}, bf16_out ? DType::bf16 : dt, in.q.device());
  res.lse = Tensor::empty({g.B, g.H, g.M}, dt, in.q.device());
  res.denom = Tensor::empty({g.B, g.H, g.M}, dt, in.q.device());
  if (res.out.numel() == 0) return res;
  dispatch_float(dt, "fused_span_attention", [&](auto tag) {
    using T = decltype(tag);
    with_key_value_type<T>(in.k, [&](auto kv) {
      forward_kernel<T, decltype(kv)>(BlockGemm::for_run(), g, in, static_cast<T>(scale), res);
    });
  });
  return res;
}

SpanAttentionGrads CpuBackend::fused_span_attention_backward(const SpanAttentionInputs& in_, double scale,
                                                             const FusedSpanAttention& fwd_in, const Tensor& gout_in) {
  SpanAttentionInputs in = in_;
  const Geometry g = geometry_of(in, "fused_span_attention_backward");
  FusedSpanAttention fwd{fwd_in.out, contiguous_of(fwd_in.lse), contiguous_of(fwd_in.denom)};
  Tensor gout = contiguous_of(gout_in);
  TXL_CHECK(gout.shape() == in.q.shape(), "fused_span_attention_backward: gradient {} does not fit q {}",
            shape_str(gout.shape()), shape_str(in.q.shape()));
  const DType dt = in.q.dtype();
  const Device dev = in.q.device();
  const int64_t tasks = g.B * g.H;
  SpanAttentionGrads gr;
  // dq, dk and dv in bf16 for products that read only that (bf16_operands).
  const DType operand_dt = in.bf16_operands && dt == DType::f32 ? DType::bf16 : dt;
  const bool run = in.q.numel() > 0 && tasks > 0;
  gr.q = run ? Tensor::empty(in.q.shape(), operand_dt, dev) : Tensor::zeros(in.q.shape(), operand_dt, dev);
  // Every element of k's and v's gradients is written (untranspose_panel) when there
  // are queries; with none they are zero.
  gr.k = g.M > 0 ? Tensor::empty(in.k.shape(), operand_dt, dev) : Tensor::zeros(in.k.shape(), operand_dt, dev);
  gr.v = g.M > 0 ? Tensor::empty(in.v.shape(), operand_dt, dev) : Tensor::zeros(in.v.shape(), operand_dt, dev);
  // pe is shared by every task, the ramp and persistent vectors by the batch: each task
  // accumulates its own part, summed below.
  SpanParts parts;
  parts.pe = Tensor::zeros({g.B, g.H, g.Dh, g.L}, dt, dev);
  if (in.ramp.defined()) parts.ramp = Tensor::zeros({g.B, g.H, g.L}, dt, dev);
  if (in.pk.defined()) {
    parts.pk = Tensor::zeros({g.B, g.H, g.Dh, g.N}, dt, dev);
    parts.pv = Tensor::zeros({g.B, g.H, g.N, g.Dh}, dt, dev);
  }
  Tensor pe_t = contiguous_of(Tensor::view_of(in.pe, {g.L, g.Dh}, {1, in.pe.strides()[0]}, in.pe.offset()));
  if (run) {
    dispatch_float(dt, "fused_span_attention_backward", [&](auto tag) {
      using T = decltype(tag);
      with_key_value_type<T>(in.k, [&](auto kv) {
        backward_kernel<T, decltype(kv)>(BlockGemm::for_run(), g, in, static_cast<T>(scale), fwd, gout, gr, parts,
                                         pe_t);
      });
    });
  }
  gr.pe = reduce(ReduceOp::sum, parts.pe, {0, 1}, false);
  if (in.ramp.defined()) gr.ramp = reduce(ReduceOp::sum, parts.ramp, {0}, false);
  if (in.pk.defined()) {
    gr.pk = reduce(ReduceOp::sum, parts.pk, {0}, false);
    gr.pv = reduce(ReduceOp::sum, parts.pv, {0}, false);
  }
  return gr;
}

}  // namespace txl::cpu
