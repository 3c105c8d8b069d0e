// Keys and values in bf16 for the fused attention kernels. In bf16 runs the key and value
// products write them in bf16 (linear / linear_rows with operand_only), because the
// fused kernels only ever read them rounded to bf16. These tests hold that promise:
// bf16 keys and values must give exactly what fp32 keys and values holding the same
// (rounded) values give, in every output and gradient, on both the packed AMX path and
// the fp32 block products (where they are widened); packing a bf16 operand must equal
// packing its fp32 values; and the products feeding the kernel in bf16 must leave the
// whole composition bit for bit as before.
#include <cstring>
#include <random>

#include "backend/cpu/amx_gemm.h"
#include "backend/cpu/block_gemm.h"
#include "bf16_round.h"
#include "gradcheck.h"
#include "native_bf16.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/ops/attention.h"

using namespace txl;
using namespace txl::testing;

namespace {

// The fp32 tensor of t's values rounded to bf16.
Tensor rounded_f32(const Tensor& t) {
  std::vector<float> v;
  for (double x : t.to_doubles()) v.push_back(round_bf16(static_cast<float>(x)));
  return Tensor::from_vector<float>(t.shape(), v);
}

Tensor as_bf16(const Tensor& t) { return backend_of(t).to_bf16(contiguous_copy(t)); }

void require_same_bits(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.to_doubles() == b.to_doubles());
}

// bf16 holds exactly the bytes to_bf16 makes of fp32.
void require_rounded(const Tensor& fp32, const Tensor& bf16) {
  REQUIRE(bf16.dtype() == DType::bf16);
  REQUIRE(bf16.shape() == fp32.shape());
  const Tensor rounded = backend_of(fp32).to_bf16(fp32);
  REQUIRE(std::memcmp(rounded.raw_data(), bf16.raw_data(), 2 * static_cast<size_t>(fp32.numel())) == 0);
}

Tensor causal_mask(int64_t T, int64_t K) {
  std::vector<uint8_t> m(static_cast<size_t>(T * K));
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < K; ++j) m[static_cast<size_t>(i * K + j)] = j > K - T + i;
  return Tensor::from_vector<uint8_t>({T, K}, m);
}

struct Result {
  Tensor out;
  std::vector<Tensor> grads;
};

// Runs f over copies of inputs (all f32, each taking a gradient) with inputs kv_slots
// given to f in bf16, and returns the output and every gradient.
template <class F>
Result run_core(const std::vector<Tensor>& inputs, bool bf16_kv, const std::vector<size_t>& kv_slots, F&& f) {
  std::vector<Tensor> leaves, args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const bool kv = std::find(kv_slots.begin(), kv_slots.end(), i) != kv_slots.end();
    leaves.push_back((kv ? rounded_f32(inputs[i]) : contiguous_copy(inputs[i])).set_requires_grad());
    // A bf16 copy has no tape edge: its gradient is taken from the op's own.
    args.push_back(kv && bf16_kv ? as_bf16(leaves.back()) : leaves.back());
  }
  Result r;
  r.out = f(args);
  const Tensor wgt = to_dtype(randn64(r.out.shape(), 77), DType::f32);
  backward(sum(mul(r.out, wgt)));
  for (size_t i = 0; i < leaves.size(); ++i) {
    const bool kv = std::find(kv_slots.begin(), kv_slots.end(), i) != kv_slots.end();
    r.grads.push_back(kv && bf16_kv ? Tensor() : leaves[i].grad());
  }
  return r;
}

}  // namespace

TEST_CASE("an operand packed from bf16 values equals the one packed from their fp32 values", "[bf16][attention]") {
  TXL_SKIP_UNLESS(txl::cpu::amx_bf16_available(), "skipped: this CPU has no AMX-BF16");
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{128, 32}, {77, 64}, {300, 17}, {5, 3}}) {
    INFO("rows " << rows << " cols " << cols);
    const int64_t ld = cols + 6;
    std::vector<float> X(static_cast<size_t>(rows * ld));
    std::vector<uint16_t> Xb(X.size());
    for (size_t i = 0; i < X.size(); ++i) {
      X[i] = round_bf16(nd(rng));
      uint32_t u;
      std::memcpy(&u, &X[i], 4);
      Xb[i] = static_cast<uint16_t>(u >> 16);
    }
    // Both forms as a product's B: X itself ([rows, cols]) and X^T ([cols, rows]).
    for (bool transposed : {false, true}) {
      txl::cpu::PackedOperand from_f32, from_bf16;
      if (transposed) {
        from_f32.pack_transposed(X.data(), ld, rows, cols);
        from_bf16.pack_transposed(Xb.data(), ld, rows, cols);
      } else {
        from_f32.pack(X.data(), ld, rows, cols);
        from_bf16.pack(Xb.data(), ld, rows, cols);
      }
      const int64_t K = from_f32.rows(), N = from_f32.cols(), M = 19;
      REQUIRE(from_bf16.rows() == K);
      REQUIRE(from_bf16.cols() == N);
      std::vector<float> A(static_cast<size_t>(M * K)), C1(static_cast<size_t>(M * N)), C2(C1.size());
      for (float& a : A) a = nd(rng);
      txl::cpu::amx_gemm<false>(M, N, K, A.data(), K, from_f32, 0, 0, C1.data(), N, false);
      txl::cpu::amx_gemm<false>(M, N, K, A.data(), K, from_bf16, 0, 0, C2.data(), N, false);
      INFO("transposed " << transposed);
      REQUIRE(C1 == C2);
    }
  }
}

TEST_CASE("fused_rel_attention reads bf16 keys and values as exactly their values", "[bf16][attention]") {
  // fp32 precision: the block products are fp32 and the bf16 keys are widened into their
  // panels; bf16 precision: packed as they are on AMX (or widened without it).
  const int64_t T = 70, M = 30, K = T + M, B = 2, H = 2, Dh = 32;
  const std::vector<Tensor> inputs = {
      to_dtype(randn64({T, B, H, Dh}, 1), DType::f32), to_dtype(randn64({K, B, 2, H, Dh}, 2), DType::f32),
      to_dtype(randn64({K, H, Dh}, 4), DType::f32), to_dtype(randn64({H, Dh}, 5), DType::f32),
      to_dtype(randn64({H, Dh}, 6), DType::f32)};
  const Tensor mask = causal_mask(T, K);
  auto core = [&](const std::vector<Tensor>& a) { return fused_rel_attention(a[0], a[1], a[2], a[3], a[4], mask, 0.2); };
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    PrecisionScope scope(p);
    INFO("bf16 precision " << (p == MatmulPrecision::bf16));
    const Result f = run_core(inputs, false, {1}, core), b = run_core(inputs, true, {1}, core);
    require_same_bits(f.out, b.out);
    for (size_t i : {0, 2, 3, 4}) {
      INFO("gradient " << i);
      require_same_bits(f.grads[i], b.grads[i]);
    }
  }
  // The keys' and values' own gradient, taken from the op with bf16 inputs, is that of
  // fp32 inputs too (it is in the queries' dtype).
  PrecisionScope scope(MatmulPrecision::bf16);
  RelAttentionInputs f32_in{inputs[0], rounded_f32(inputs[1]), inputs[2], inputs[3], inputs[4]};
  RelAttentionInputs b16_in = f32_in;
  b16_in.kv = as_bf16(f32_in.kv);
  Backend& be = backend_of(inputs[0]);
  const FusedRelAttention fwd = be.fused_rel_attention(f32_in, mask, 0.2);
  const Tensor g = to_dtype(randn64(fwd.out.shape(), 8), DType::f32);
  const RelAttentionGrads gf = be.fused_rel_attention_backward(f32_in, mask, 0.2, fwd.lse, g);
  const RelAttentionGrads gb = be.fused_rel_attention_backward(b16_in, mask, 0.2, fwd.lse, g);
  REQUIRE(gb.kv.dtype() == DType::f32);
  require_same_bits(gf.kv, gb.kv);
  // bf16 keys and values serve fp32 queries only.
  RelAttentionInputs f64_in{to_dtype(inputs[0], DType::f64), b16_in.kv, to_dtype(inputs[2], DType::f64),
                            to_dtype(inputs[3], DType::f64), to_dtype(inputs[4], DType::f64)};
  REQUIRE_THROWS_WITH(be.fused_rel_attention(f64_in, mask, 0.2),
                      Catch::Contains("fused_rel_attention: keys and values are bf16; expected f64"));
}

TEST_CASE("fused_span_attention reads bf16 keys and values as exactly their values", "[bf16][attention]") {
  // Learned-span ramp and persistent memory on; M = 100 spans two blocks of 64 rows.
  const int64_t Mq = 100, L = 24, B = 2, H = 2, Dh = 16, N = 3;
  std::vector<double> ramp(static_cast<size_t>(H * L));
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = 0.3 + 0.7 * static_cast<double>(i % 7) / 6.0;
  const std::vector<Tensor> inputs = {to_dtype(randn64({Mq, B, H, Dh}, 11), DType::f32),
                                      to_dtype(randn64({L + Mq, B, H, Dh}, 12), DType::f32),
                                      to_dtype(randn64({L + Mq, B, H, Dh}, 13), DType::f32),
                                      to_dtype(randn64({Dh, L}, 14), DType::f32),
                                      Tensor::from_vector<float>({H, L}, std::vector<float>(ramp.begin(), ramp.end())),
                                      to_dtype(randn64({H, Dh, N}, 15), DType::f32),
                                      to_dtype(randn64({H, N, Dh}, 16), DType::f32)};
  auto core = [](const std::vector<Tensor>& a) {
    return fused_span_attention(a[0], a[1], a[2], a[3], a[4], a[5], a[6], 0.25);
  };
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    PrecisionScope scope(p);
    INFO("bf16 precision " << (p == MatmulPrecision::bf16));
    const Result f = run_core(inputs, false, {1, 2}, core), b = run_core(inputs, true, {1, 2}, core);
    require_same_bits(f.out, b.out);
    for (size_t i : {0, 3, 4, 5, 6}) {
      INFO("gradient " << i);
      require_same_bits(f.grads[i], b.grads[i]);
    }
  }
}

TEST_CASE("the attention's operands in bf16 leave the layer bit for bit unchanged", "[bf16][attention]") {
  // What relative_attention does in a bf16 run: the key and value product over
  // [memory; segment] writes bf16 for the fused core, and the core writes its output (for
  // o_net) and the gradients of the queries and keys/values (for their products) in
  // bf16. Against fp32 throughout: the same o_net output and the same gradients of the
  // segment and of every weight, exactly, where the core's block products run on AMX
  // (without it they would be fp32 products of the unrounded fp32 keys).
  TXL_REQUIRE_BF16();
  PrecisionScope probe(MatmulPrecision::bf16);
  TXL_SKIP_UNLESS(txl::cpu::BlockGemm::for_run().bf16(), "skipped: the fused attention's AMX block products are off");
  const int64_t T = 64, Mem = 64, K = T + Mem, B = 3, H = 4, Dh = 32, D = 128, HD = H * Dh;
  const Tensor mem = to_dtype(randn64({Mem, B, D}, 21), DType::f32);
  const Tensor pos = to_dtype(randn64({K, D}, 28), DType::f32);
  const std::vector<Tensor> init = {
      to_dtype(randn64({T, B, D}, 22), DType::f32),       to_dtype(randn64({3 * HD, D}, 23, 0.1), DType::f32),
      to_dtype(randn64({HD, D}, 24, 0.1), DType::f32),    to_dtype(randn64({H, Dh}, 25), DType::f32),
      to_dtype(randn64({H, Dh}, 26), DType::f32),         to_dtype(randn64({D, HD}, 29, 0.1), DType::f32)};
  const Tensor mask = causal_mask(T, K);
  auto run = [&](bool operands) {
    std::vector<Tensor> p;
    for (const Tensor& t : init) p.push_back(contiguous_copy(t).set_requires_grad());
    const Tensor rows = concat_operand({mem, p[0].detach()});
    Tensor q = linear_rows(narrow(rows, 0, Mem, T), p[0], narrow(p[1], 0, 0, HD));
    Tensor kv = linear_rows(rows, p[0], narrow(p[1], 0, HD, 2 * HD), operands);
    REQUIRE(kv.dtype() == (operands ? DType::bf16 : DType::f32));
    Tensor rk = reshape(linear(matmul_operand(pos), p[2]), {K, H, Dh});
    Tensor vec = fused_rel_attention(reshape(q, {T, B, H, Dh}), reshape(kv, {K, B, 2, H, Dh}), rk, p[3], p[4], mask,
                                     0.125, operands);
    REQUIRE(vec.dtype() == (operands ? DType::bf16 : DType::f32));
    Result r;
    r.out = linear(reshape(vec, {T, B, HD}), p[5]);
    backward(sum(mul(r.out, to_dtype(randn64(r.out.shape(), 27), DType::f32))));
    for (const Tensor& t : p) r.grads.push_back(t.grad());
    return r;
  };
  const Result f = run(false), b = run(true);
  require_same_bits(f.out, b.out);
  for (size_t i = 0; i < init.size(); ++i) {
    INFO("gradient " << i);
    require_same_bits(f.grads[i], b.grads[i]);
  }
}

TEST_CASE("fused_rel_attention's bf16 operands are its fp32 results rounded", "[bf16][attention]") {
  // The backend contract of bf16_operands, on any CPU: the output and the gradients of q
  // and kv are the fp32 ones rounded to bf16 (byte for byte); the others are unchanged.
  const int64_t T = 70, M = 30, K = T + M, B = 2, H = 2, Dh = 32;
  RelAttentionInputs in{to_dtype(randn64({T, B, H, Dh}, 41), DType::f32),
                        to_dtype(randn64({K, B, 2, H, Dh}, 42), DType::f32),
                        to_dtype(randn64({K, H, Dh}, 43), DType::f32), to_dtype(randn64({H, Dh}, 44), DType::f32),
                        to_dtype(randn64({H, Dh}, 45), DType::f32)};
  const Tensor mask = causal_mask(T, K);
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    PrecisionScope scope(p);
    INFO("bf16 precision " << (p == MatmulPrecision::bf16));
    Backend& be = backend_of(in.q);
    RelAttentionInputs ops = in;
    ops.bf16_operands = true;
    const FusedRelAttention f = be.fused_rel_attention(in, mask, 0.2), o = be.fused_rel_attention(ops, mask, 0.2);
    require_rounded(f.out, o.out);
    require_same_bits(f.lse, o.lse);
    const Tensor g = to_dtype(randn64(f.out.shape(), 46), DType::f32);
    const RelAttentionGrads gf = be.fused_rel_attention_backward(in, mask, 0.2, f.lse, g);
    const RelAttentionGrads go = be.fused_rel_attention_backward(ops, mask, 0.2, f.lse, g);
    require_rounded(gf.q, go.q);
    require_rounded(gf.kv, go.kv);
    require_same_bits(gf.rk, go.rk);
    require_same_bits(gf.u, go.u);
    require_same_bits(gf.w, go.w);
  }
}

TEST_CASE("fused_span_attention's bf16 operands are its fp32 results rounded", "[bf16][attention]") {
  // As for fused_rel_attention, with the ramp and persistent memory on and two blocks of 64 rows.
  const int64_t Mq = 100, L = 24, B = 2, H = 2, Dh = 16, N = 3;
  std::vector<float> ramp(static_cast<size_t>(H * L));
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = 0.3f + 0.7f * static_cast<float>(i % 7) / 6.0f;
  SpanAttentionInputs in{to_dtype(randn64({Mq, B, H, Dh}, 51), DType::f32),
                         to_dtype(randn64({L + Mq, B, H, Dh}, 52), DType::f32),
                         to_dtype(randn64({L + Mq, B, H, Dh}, 53), DType::f32),
                         to_dtype(randn64({Dh, L}, 54), DType::f32),
                         Tensor::from_vector<float>({H, L}, ramp),
                         to_dtype(randn64({H, Dh, N}, 55), DType::f32),
                         to_dtype(randn64({H, N, Dh}, 56), DType::f32)};
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    PrecisionScope scope(p);
    INFO("bf16 precision " << (p == MatmulPrecision::bf16));
    Backend& be = backend_of(in.q);
    SpanAttentionInputs ops = in;
    ops.bf16_operands = true;
    const FusedSpanAttention f = be.fused_span_attention(in, 0.25), o = be.fused_span_attention(ops, 0.25);
    require_rounded(f.out, o.out);
    require_same_bits(f.lse, o.lse);
    require_same_bits(f.denom, o.denom);
    const Tensor g = to_dtype(randn64(f.out.shape(), 57), DType::f32);
    const SpanAttentionGrads gf = be.fused_span_attention_backward(in, 0.25, f, g);
    const SpanAttentionGrads go = be.fused_span_attention_backward(ops, 0.25, f, g);
    require_rounded(gf.q, go.q);
    require_rounded(gf.k, go.k);
    require_rounded(gf.v, go.v);
    for (const auto& [a, b] : {std::pair{gf.pe, go.pe}, {gf.ramp, go.ramp}, {gf.pk, go.pk}, {gf.pv, go.pv}})
      require_same_bits(a, b);
  }
}
