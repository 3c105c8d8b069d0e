// The fused Transformer-XL attention core on the CPU (contract in backend.h). One task
// per (batch, head); a task walks its query rows in blocks of kBlockRows and keeps the
// block's scores in a per-thread buffer, so no [B, H, T, K] tensor exists. Products
// inside a block are single-threaded (the tasks are the parallelism) and run through
// BlockGemm: small_gemm's register tiles in fp32, AMX tiles in bf16 runs. A library
// GEMM per block cost more in call and packing overhead than the block's arithmetic
// (Dh = 32-64). Each task prepares k, rk and v once for the path that runs: [Dh, K]
// fp32 panels, so that every product reads its second operand row by row, or packed
// bf16 tiles.
//
// Causality limits the work: rows [i0, i1) see keys j <= K - T + i only, so a block
// computes the first Kv = K - T + i1 key columns, and the position term of those
// keys reads rk rows [T - i1, K): bd_blk[r, c] = (q + w) . rk[T - i1 + c], and query
// i = i0 + r at key j reads bd_blk[r, j + (i1 - 1 - i)].
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "block_gemm.h"
#include "cpu_backend.h"
#include "fast_exp.h"
#include "key_value_dtype.h"
#include "panels.h"
#include "score_rows.h"

namespace txl::cpu {

namespace {

constexpr int64_t kBlockRows = 64;

// Geometry of the operands: row strides (between positions) and the offsets of batch
// b / head h, in elements; the values sit v_off elements after the keys in kv.
struct Layout {
  int64_t T, K, B, H, Dh;
  int64_t q_row, q_b, q_h, k_row, k_b, k_h, v_off, r_row, r_h;
};

Layout layout_of(RelAttentionInputs& in, const Tensor& mask, const char* op) {
  TXL_CHECK(in.q.dim() == 4 && in.kv.dim() == 5 && in.rk.dim() == 3,
            "{}: expected q [T, B, H, Dh], kv [K, B, 2, H, Dh], rk [K, H, Dh], got {} {} {}", op,
            shape_str(in.q.shape()), shape_str(in.kv.shape()), shape_str(in.rk.shape()));
  const int64_t T = in.q.shape()[0], B = in.q.shape()[1], H = in.q.shape()[2], Dh = in.q.shape()[3];
  const int64_t K = in.kv.shape()[0];
  TXL_CHECK(in.kv.shape() == Shape({K, B, 2, H, Dh}) && in.rk.shape() == Shape({K, H, Dh}) &&
                in.u.shape() == Shape({H, Dh}) && in.w.shape() == Shape({H, Dh}),
            "{}: shapes do not agree: q {} kv {} rk {} u {} w {}", op, shape_str(in.q.shape()),
            shape_str(in.kv.shape()), shape_str(in.rk.shape()), shape_str(in.u.shape()), shape_str(in.w.shape()));
  const DType dt = in.q.dtype();
  for (const Tensor* t : {&in.rk, &in.u, &in.w})
    TXL_CHECK(t->dtype() == dt, "{}: dtype mismatch ({} vs {})", op, dtype_name(t->dtype()), dtype_name(dt));
  check_key_value_dtype(in.kv, dt, op);
  TXL_CHECK(K >= T, "{}: key length {} is shorter than query length {}", op, K, T);
  TXL_CHECK(mask.dtype() == DType::b8 && mask.shape() == Shape({T, K}), "{}: mask must be b8 [{}, {}], got {} {}", op,
            T, K, dtype_name(mask.dtype()), shape_str(mask.shape()));
  in.q = inner_contiguous_of(in.q);
  in.kv = inner_contiguous_of(in.kv);
  in.rk = inner_contiguous_of(in.rk);
  in.u = contiguous_of(in.u);
  in.w = contiguous_of(in.w);
  const auto& qs = in.q.strides();
  const auto& ks = in.kv.strides();
  const auto& rs = in.rk.strides();
  return {T, K, B, H, Dh, qs[0], qs[1], qs[2], ks[0], ks[1], ks[3], ks[2], rs[0], rs[1]};
}

// Per-thread scratch of one block: scores / probabilities, the position term, the
// probabilities' gradient, and q + u, q + w for the block's rows. Thread-local and
// only ever grown, so steady-state steps allocate nothing here.
template <class T>
struct Scratch {
  // kt, vt: [Dh, K] panels of one task; kc, vc [K, Dh] and goc [T, Dh]: its rows of
  // k, v and the output gradient packed densely (their own row strides span every head
  // and batch row, and walking them evicts L1 sets).
  std::vector<T> s, bd, dp, qu, qw, dqu, tmp, kt, vt, kc, vc, goc;
  // The backward's task-long accumulators of dk, dv and drk, transposed ([Dh, K] with
  // leading dimension transposed_ld(K)): each block adds (q + u)^T ds and the like, whose
  // small first operand is the one transposed, and the task writes them back once.
  std::vector<T> dkt, dvt, drkt;
  // With bf16 gradients, a task's dk or dv rows in fp32 before they are rounded.
  std::vector<T> grad_rows;
  // Per row of the block: the forward's score maximum, the backward's sum_j p dp.
  std::vector<T> row_max, row_dot;
  // In bf16 runs, the packed copies of the panels the block products read (BlockGemm).
  PackedOperand kt_p, vt_p, kc_p, vc_p;
  void size_for(const Layout& g) {
    const size_t n = static_cast<size_t>(kBlockRows * g.K), d = static_cast<size_t>(kBlockRows * g.Dh);
    const size_t panel = static_cast<size_t>(g.Dh * g.K);
    kt.resize(panel);
    vt.resize(panel);
    kc.resize(panel);
    vc.resize(panel);
    goc.resize(static_cast<size_t>(g.T * g.Dh));
    s.resize(n);
    bd.resize(n);
    dp.resize(n);
    qu.resize(d);
    qw.resize(d);
    dqu.resize(d);
    tmp.resize(d);
    row_max.resize(kBlockRows);
    row_dot.resize(kBlockRows);
  }
  void size_accumulators(const Layout& g, bool bf16_grads) {  // the backward's only
    const size_t acc = static_cast<size_t>(g.Dh * transposed_ld(g.K));
    dkt.resize(acc);
    dvt.resize(acc);
    drkt.resize(acc);
    if (bf16_grads) grad_rows.resize(static_cast<size_t>(g.K * g.Dh));
  }
};

// Scores of rows [i0, i1) of task (b, h): the content term into sc.s and the position
// term into sc.bd over the block's Kv visible keys (sc.kt holds the task's k panel, rkt /
// rkt_p its head's rk panel, fp32 / packed); then finish(r, s, b, m, visible) combines
// row r in one pass: s is its content row, b its position row already shifted, m its
// mask row, and keys from `visible` on are causally hidden.
template <class T, class Finish>
void block_scores(const BlockGemm& bg, const Layout& g, const T* q, const T* rkt, const PackedOperand& rkt_p,
                  const T* u, const T* w, const uint8_t* mask, int64_t i0, int64_t i1, Scratch<T>& sc,
                  Finish&& finish) {
  const int64_t n = i1 - i0, Kv = g.K - g.T + i1, Dh = g.Dh;
  for (int64_t r = 0; r < n; ++r) {
    const T* qr = q + (i0 + r) * g.q_row;
#pragma omp simd
    for (int64_t d = 0; d < Dh; ++d) {
      sc.qu[r * Dh + d] = qr[d] + u[d];
      sc.qw[r * Dh + d] = qr[d] + w[d];
    }
  }
  bg.mul<false>(n, Kv, Dh, sc.qu.data(), Dh, sc.kt.data(), g.K, sc.kt_p, 0, 0, sc.s.data(), Kv, false);
  bg.mul<false>(n, Kv, Dh, sc.qw.data(), Dh, rkt + (g.T - i1), g.K, rkt_p, 0, g.T - i1, sc.bd.data(), Kv, false);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = i0 + r;
    finish(r, sc.s.data() + r * Kv, sc.bd.data() + r * Kv + (i1 - 1 - i), mask + i * g.K, g.K - g.T + i + 1);
  }
}

// rk is shared by the batch: each head's panels are made once, by the threads of the
// enclosing parallel region, for the tasks that follow (the omp for's barrier): the fp32
// [Dh, K] panel, or in bf16 runs the packed rk^T and, when rk_heads is given, rk.
template <class T>
void prepare_rk_heads(const BlockGemm& bg, const Layout& g, const T* pr, T* rk_panels,
                      std::vector<PackedOperand>& rkt_heads, std::vector<PackedOperand>* rk_heads) {
#pragma omp for schedule(static)
  for (int64_t h = 0; h < g.H; ++h) {
    const T* rk = pr + h * g.r_h;
    if (!bg.packs<T>()) {
      transpose_panel(rk, g.r_row, g.K, g.Dh, rk_panels + h * g.Dh * g.K);
      continue;
    }
    bg.pack_transposed(rkt_heads[static_cast<size_t>(h)], rk, g.r_row, g.K, g.Dh);
    if (rk_heads) bg.pack((*rk_heads)[static_cast<size_t>(h)], rk, g.r_row, g.K, g.Dh);  // fp32 form: rk itself
  }
}

// KV: the element type of k and v, T or (for T = float) bf16 bits.
template <class T, class KV>
void forward_kernel(const BlockGemm& bg, const Layout& g, const RelAttentionInputs& in, const Tensor& mask, T scale,
                    Tensor& out, Tensor& lse, T* rk_panels) {
  const T *pq = in.q.data<T>(), *pr = in.rk.data<T>();
  const KV *pk = key_value_data<KV>(in.kv), *pv = pk + g.v_off;
  const T *pu = in.u.data<T>(), *pw = in.w.data<T>();
  const uint8_t* pm = mask.data<uint8_t>();
  // bf16_operands: the output rounded to bf16 (T = float), through the block buffer tmp.
  const bool bf16_out = out.dtype() == DType::bf16;
  T* po = bf16_out ? nullptr : out.data<T>();
  uint16_t* po_b = bf16_out ? static_cast<uint16_t*>(out.raw_data()) : nullptr;
  T* pl = lse.data<T>();
  const int64_t tasks = g.B * g.H, o_row = g.B * g.H * g.Dh;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  std::vector<PackedOperand> rkt_heads(static_cast<size_t>(g.H));
#pragma omp parallel
  {
    thread_local Scratch<T> sc;
    sc.size_for(g);
    prepare_rk_heads<T>(bg, g, pr, rk_panels, rkt_heads, nullptr);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / g.H, h = t % g.H;
      const T* q = pq + b * g.q_b + h * g.q_h;
      const KV* k = pk + b * g.k_b + h * g.k_h;
      const KV* v = pv + b * g.k_b + h * g.k_h;
      const T* rkt = rk_panels + h * g.Dh * g.K;
      const int64_t o_off = (b * g.H + h) * g.Dh;
      T* l = pl + t * g.T;
      bg.prepare_transposed(sc.kt, sc.kt_p, k, g.k_row, g.K, g.Dh);
      bg.prepare_rows(sc.vc, sc.vc_p, v, g.k_row, g.K, g.Dh);
      const PackedOperand& rkt_p = rkt_heads[static_cast<size_t>(h)];
      for (int64_t i0 = 0; i0 < g.T; i0 += kBlockRows) {
        const int64_t i1 = std::min(g.T, i0 + kBlockRows), n = i1 - i0, Kv = g.K - g.T + i1;
        // Scaled, masked scores and their row maxima in one pass.
        block_scores(bg, g, q, rkt, rkt_p, pu + h * g.Dh, pw + h * g.Dh, pm, i0, i1, sc,
                     [&](int64_t r, T* s, const T* b, const uint8_t* m, int64_t visible) {
                       sc.row_max[r] = masked_scores_row(s, b, m, visible, scale);
                       std::fill(s + visible, s + Kv, neg_inf);
                     });
        for (int64_t r = 0; r < n; ++r) {
          T* s = sc.s.data() + r * Kv;
          const T mx = sc.row_max[r];
          if (mx == neg_inf) {  // every key masked: the row attends to nothing
            std::fill(s, s + Kv, T(0));
            l[i0 + r] = mx;
            continue;
          }
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < Kv; ++j) {
            const T e = fast_exp(s[j] - mx);  // exp(-inf) = 0 for the masked keys
            s[j] = e;
            sum += e;
          }
          const T inv = T(1) / sum;
#pragma omp simd
          for (int64_t j = 0; j < Kv; ++j) s[j] *= inv;
          l[i0 + r] = mx + std::log(sum);
        }
        T* o = bf16_out ? sc.tmp.data() : po + o_off + i0 * o_row;
        const int64_t ld = bf16_out ? g.Dh : o_row;
        bg.mul<false>(n, g.Dh, Kv, sc.s.data(), Kv, sc.vc.data(), g.Dh, sc.vc_p, 0, 0, o, ld, false);
        if constexpr (std::is_same_v<T, float>) {
          if (bf16_out) round_rows_to_bf16(o, g.Dh, n, g.Dh, po_b + o_off + i0 * o_row, o_row);
        }
      }
    }
  }
}

template <class T, class KV>
void backward_kernel(const BlockGemm& bg, const Layout& g, const RelAttentionInputs& in, const Tensor& mask, T scale,
                     const Tensor& lse, const Tensor& gout, RelAttentionGrads& gr, Tensor& grk_parts, Tensor& gu_parts,
                     Tensor& gw_parts, T* rk_panels) {
  const T *pq = in.q.data<T>(), *pr = in.rk.data<T>();
  const KV *pk = key_value_data<KV>(in.kv), *pv = pk + g.v_off;
  const T *pu = in.u.data<T>(), *pw = in.w.data<T>();
  const uint8_t* pm = mask.data<uint8_t>();
  const T* pl = lse.data<T>();
  const T* pgo = gout.data<T>();
  // bf16_operands: dq and dkv rounded to bf16 as they are written (T = float).
  const bool bf16_grads = gr.q.dtype() == DType::bf16;
  T *gq = bf16_grads ? nullptr : gr.q.data<T>(), *gk = bf16_grads ? nullptr : gr.kv.data<T>();
  uint16_t* gq_b = bf16_grads ? static_cast<uint16_t*>(gr.q.raw_data()) : nullptr;
  uint16_t* gk_b = bf16_grads ? static_cast<uint16_t*>(gr.kv.raw_data()) : nullptr;
  T *grk = grk_parts.data<T>(), *gup = gu_parts.data<T>(), *gwp = gw_parts.data<T>();
  const int64_t tasks = g.B * g.H, Dh = g.Dh, HD = g.H * g.Dh, row = g.B * HD, ldt = transposed_ld(g.K);
  // rk's two packed forms per head (as rk^T for the scores, as rk for dq), shared by the
  // batch's tasks.
  std::vector<PackedOperand> rkt_heads(static_cast<size_t>(g.H)), rk_heads(static_cast<size_t>(g.H));
#pragma omp parallel
  {
    thread_local Scratch<T> sc;
    sc.size_for(g);
    sc.size_accumulators(g, bf16_grads);
    std::vector<T>& dp = sc.dp;
    prepare_rk_heads(bg, g, pr, rk_panels, rkt_heads, &rk_heads);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / g.H, h = t % g.H;
      const T* q = pq + b * g.q_b + h * g.q_h;
      const KV* k = pk + b * g.k_b + h * g.k_h;
      const KV* v = pv + b * g.k_b + h * g.k_h;
      const T* rk = pr + h * g.r_h;
      const T* rkt = rk_panels + h * Dh * g.K;
      const T* go = pgo + (b * g.H + h) * Dh;
      const T* l = pl + t * g.T;
      // Gradients are dense ([T, B, H, Dh], [K, B, 2, H, Dh]); this task owns the (b, h)
      // slices of gq and of both halves of gkv, and of its batch's partial grk / gu / gw.
      const int64_t q_off = (b * g.H + h) * Dh, k_off = 2 * b * HD + h * Dh;
      T* dq = bf16_grads ? nullptr : gq + q_off;
      T* dk = bf16_grads ? nullptr : gk + k_off;
      T* dv = bf16_grads ? nullptr : dk + HD;
      T* drk = grk + b * g.K * HD + h * Dh;
      T* du = gup + (b * g.H + h) * Dh;
      T* dw = gwp + (b * g.H + h) * Dh;
      bg.prepare_transposed(sc.kt, sc.kt_p, k, g.k_row, g.K, Dh);
      bg.prepare_transposed(sc.vt, sc.vt_p, v, g.k_row, g.K, Dh);
      bg.prepare_rows(sc.kc, sc.kc_p, k, g.k_row, g.K, Dh);
      const PackedOperand &rkt_p = rkt_heads[static_cast<size_t>(h)], &rk_p = rk_heads[static_cast<size_t>(h)];
      pack_rows(go, row, g.T, Dh, sc.goc.data());
      std::fill(sc.dkt.begin(), sc.dkt.end(), T(0));
      std::fill(sc.dvt.begin(), sc.dvt.end(), T(0));
      std::fill(sc.drkt.begin(), sc.drkt.end(), T(0));
      for (int64_t i0 = 0; i0 < g.T; i0 += kBlockRows) {
        const int64_t i1 = std::min(g.T, i0 + kBlockRows), n = i1 - i0, Kv = g.K - g.T + i1;
        // dp = gout v^T first, so that the pass recomputing p = exp(s - lse) also forms
        // each row's sum_j p dp.
        bg.mul<false>(n, Kv, Dh, sc.goc.data() + i0 * Dh, Dh, sc.vt.data(), g.K, sc.vt_p, 0, 0, dp.data(), Kv, false);
        block_scores(bg, g, q, rkt, rkt_p, pu + h * Dh, pw + h * Dh, pm, i0, i1, sc,
                     [&](int64_t r, T* s, const T* b, const uint8_t* m, int64_t visible) {
                       // lse = -inf: the forward saw no finite score (every key masked, or
                       // an overflow) and gave the row p = 0; exp(-inf - -inf) would be NaN.
                       const T lr = l[i0 + r];
                       const int64_t live = lr == -std::numeric_limits<T>::infinity() ? 0 : visible;
                       sc.row_dot[r] = masked_probs_row(s, b, m, dp.data() + r * Kv, live, scale, lr);
                       std::fill(s + live, s + Kv, T(0));
                     });
        // dv^T += gout^T p
        bg.mul<true>(Dh, Kv, n, sc.goc.data() + i0 * Dh, Dh, sc.s.data(), Kv, sc.dvt.data(), ldt, true);
        // ds = p * (dp - sum_j p dp) * scale: the gradient of the content term; the
        // position term's is the same values shifted back into bd_blk's columns.
        std::fill(sc.bd.begin(), sc.bd.begin() + n * Kv, T(0));
        for (int64_t r = 0; r < n; ++r) {
          const int64_t i = i0 + r, visible = g.K - g.T + i + 1, shift = i1 - 1 - i;
          T* p = sc.s.data() + r * Kv;
          const T* d = dp.data() + r * Kv;
          const T dot = sc.row_dot[r];
          T* bd = sc.bd.data() + r * Kv + shift;
#pragma omp simd
          for (int64_t j = 0; j < visible; ++j) {
            const T ds = p[j] * (d[j] - dot) * scale;
            p[j] = ds;
            bd[j] = ds;
          }
        }
        // dq = ds k + dbd rk; du, dw are their row sums.
        bg.mul<false>(n, Dh, Kv, sc.s.data(), Kv, sc.kc.data(), Dh, sc.kc_p, 0, 0, sc.dqu.data(), Dh, false);
        bg.mul<false>(n, Dh, Kv, sc.bd.data(), Kv, rk + (g.T - i1) * g.r_row, g.r_row, rk_p, g.T - i1, 0, sc.tmp.data(),
                      Dh, false);
        for (int64_t r = 0; r < n; ++r) {
          const T* a = sc.dqu.data() + r * Dh;
          T* c = sc.tmp.data() + r * Dh;
#pragma omp simd
          for (int64_t d = 0; d < Dh; ++d) {
            du[d] += a[d];
            dw[d] += c[d];
            c[d] += a[d];  // dq's row
          }
          if constexpr (std::is_same_v<T, float>) {
            if (bf16_grads) {
              round_rows_to_bf16(c, Dh, 1, Dh, gq_b + q_off + (i0 + r) * row, row);
              continue;
            }
          }
          std::copy(c, c + Dh, dq + (i0 + r) * row);
        }
        // dk^T += (q + u)^T ds; drk^T[:, T - i1 ..] += (q + w)^T dbd, with the q + u and
        // q + w that block_scores left in qu / qw.
        bg.mul<true>(Dh, Kv, n, sc.qu.data(), Dh, sc.s.data(), Kv, sc.dkt.data(), ldt, true);
        bg.mul<true>(Dh, Kv, n, sc.qw.data(), Dh, sc.bd.data(), Kv, sc.drkt.data() + (g.T - i1), ldt, true);
      }
      if constexpr (std::is_same_v<T, float>) {
        if (bf16_grads) {
          untranspose_panel_bf16(sc.dkt.data(), ldt, Dh, g.K, sc.grad_rows.data(), gk_b + k_off, 2 * row);
          untranspose_panel_bf16(sc.dvt.data(), ldt, Dh, g.K, sc.grad_rows.data(), gk_b + k_off + HD, 2 * row);
        }
      }
      if (!bf16_grads) {
        untranspose_panel(sc.dkt.data(), ldt, Dh, g.K, dk, 2 * row);
        untranspose_panel(sc.dvt.data(), ldt, Dh, g.K, dv, 2 * row);
      }
      untranspose_panel(sc.drkt.data(), ldt, Dh, g.K, drk, HD);
    }
  }
}

}  // namespace

FusedRelAttention CpuBackend::fused_rel_attention(const RelAttentionInputs& in_, const Tensor& mask_in, double scale) {
  RelAttentionInputs in = in_;
  Tensor mask = contiguous_of(mask_in);
  const Layout g = layout_of(in, mask, "fused_rel_attention");
  check_rel_shift_mask(mask, g.T, g.K, "fused_rel_attention");
  FusedRelAttention res;
  const bool bf16_out = in.bf16_operands && in.q.dtype() == DType::f32;
  res.out = Tensor::empty({g.T, g.B, g.H, g.Dh}, bf16_out ? DType::bf16 : in.q.dtype(), in.q.device());
  res.lse = Tensor::empty({g.B, g.H, g.T}, in.q.dtype(), in.q.device());
  if (res.out.numel() == 0) return res;
  dispatch_float(in.q.dtype(), "fused_rel_attention", [&](auto tag) {
    using T = decltype(tag);
    Tensor panels = Tensor::empty({g.H, g.Dh, g.K}, in.q.dtype(), in.q.device());
    with_key_value_type<T>(in.kv, [&](auto kv) {
      forward_kernel<T, decltype(kv)>(BlockGemm::for_run(), g, in, mask, static_cast<T>(scale), res.out, res.lse,
                                      panels.data<T>());
    });
  });
  return res;
}

RelAttentionGrads CpuBackend::fused_rel_attention_backward(const RelAttentionInputs& in_, const Tensor& mask_in,
                                                           double scale, const Tensor& lse_in, const Tensor& gout_in) {
  RelAttentionInputs in = in_;
  Tensor mask = contiguous_of(mask_in), lse = contiguous_of(lse_in), gout = contiguous_of(gout_in);
  const Layout g = layout_of(in, mask, "fused_rel_attention_backward");
  TXL_CHECK(gout.shape() == in.q.shape() && lse.shape() == Shape({g.B, g.H, g.T}),
            "fused_rel_attention_backward: gradient {} / lse {} do not fit q {}", shape_str(gout.shape()),
            shape_str(lse.shape()), shape_str(in.q.shape()));
  const DType dt = in.q.dtype();
  const Device dev = in.q.device();
  RelAttentionGrads gr;
  // Each task writes its whole (b, h) slice of the kv and rk gradients; with no
  // queries there are no tasks, and those gradients are zero.
  auto slices = [&](const Shape& shape) {
    return in.q.numel() > 0 ? Tensor::empty(shape, dt, dev) : Tensor::zeros(shape, dt, dev);
  };
  // dq and dkv in bf16 for products that read only that (bf16_operands).
  const DType operand_dt = in.bf16_operands && dt == DType::f32 ? DType::bf16 : dt;
  gr.q = Tensor::empty(in.q.shape(), operand_dt, dev);
  gr.kv = in.q.numel() > 0 ? Tensor::empty(in.kv.shape(), operand_dt, dev) : Tensor::zeros(in.kv.shape(), operand_dt, dev);
  // rk, u and w are shared by the batch: each batch row accumulates its own part.
  Tensor grk_parts = slices({g.B, g.K, g.H, g.Dh});
  Tensor gu_parts = Tensor::zeros({g.B, g.H, g.Dh}, dt, dev);
  Tensor gw_parts = Tensor::zeros({g.B, g.H, g.Dh}, dt, dev);
  if (gr.q.numel() > 0) {
    dispatch_float(dt, "fused_rel_attention_backward", [&](auto tag) {
      using T = decltype(tag);
      Tensor panels = Tensor::empty({g.H, g.Dh, g.K}, dt, dev);
      with_key_value_type<T>(in.kv, [&](auto kv) {
        backward_kernel<T, decltype(kv)>(BlockGemm::for_run(), g, in, mask, static_cast<T>(scale), lse, gout, gr,
                                         grk_parts, gu_parts, gw_parts, panels.data<T>());
      });
    });
  }
  gr.rk = reduce(ReduceOp::sum, grk_parts, {0}, false);
  gr.u = reduce(ReduceOp::sum, gu_parts, {0}, false);
  gr.w = reduce(ReduceOp::sum, gw_parts, {0}, false);
  return gr;
}

}  // namespace txl::cpu
