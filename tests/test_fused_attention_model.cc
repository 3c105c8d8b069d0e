// model.attention.fused: whole models with the fused attention core against the same
// models built from the unfused ops — losses, memories and every parameter gradient
// over several segments, for transformer_xl (post-LN, pre-LN, same_length),
// compressive (its reconstruction loss reads the attention's q, k, v) and
// adaptive_span (learned spans, fixed span, persistent memory).
#include "gradcheck.h"
#include "native_bf16.h"
#include "backend/cpu/block_gemm.h"
#include "txl/backend/precision.h"
#include "txl/models/language_model.h"

using namespace txl;
using namespace txl::testing;

namespace {

Tensor stream_tokens(int64_t T, int64_t B, int64_t s, int64_t V) {
  std::vector<int64_t> v(static_cast<size_t>(T * B));
  uint64_t x = 0x2545F4914F6CDD1Dull * static_cast<uint64_t>(s + 3);
  for (auto& t : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    t = static_cast<int64_t>(x % static_cast<uint64_t>(V));
  }
  return Tensor::from_vector<int64_t>({T, B}, v);
}

struct RunResult {
  std::vector<std::vector<double>> losses, mems;
  std::map<std::string, std::vector<double>> grads;
};

RunResult run(ModelConfig mc, bool fused, DType dt, int64_t segments = 3) {
  mc.attention.options["fused"] = fused;
  LanguageModel model(mc, 13, dt);
  model.init_weights(5);
  RunResult r;
  std::vector<Tensor> state;
  Tensor objective;
  for (int64_t s = 0; s < segments; ++s) {
    ForwardResult out = model.forward(stream_tokens(mc.tgt_len, 2, s, 13), stream_tokens(mc.tgt_len, 2, s + 7, 13),
                                      state, ForwardOptions{true, 17 + static_cast<uint64_t>(s)});
    r.losses.push_back(out.loss.to_doubles());
    for (const auto& m : out.mems) r.mems.push_back(m.to_doubles());
    Tensor seg = mean(out.loss);
    if (out.aux_loss.defined()) seg = add(seg, out.aux_loss);
    objective = objective.defined() ? add(objective, seg) : seg;
    state = out.mems;
  }
  backward(objective);
  for (const auto& [name, p] : model.params().named())
    if (p.grad().defined()) r.grads[name] = p.grad().to_doubles();
  return r;
}

double max_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (size_t j = 0; j < a[i].size(); ++j) m = std::max(m, std::abs(a[i][j] - b[i][j]) / std::max(1.0, std::abs(b[i][j])));
  }
  return m;
}

ModelConfig base_config() {
  ModelConfig mc;
  mc.n_layer = 2;
  mc.n_head = 2;
  mc.d_model = 8;
  mc.d_head = 4;
  mc.d_inner = 16;
  mc.tgt_len = 6;
  mc.mem_len = 5;
  mc.dropout = 0.1;  // drawn identically on both paths: dropatt is the only draw they differ in
  mc.init_std = 0.3;
  return mc;
}

void check_same(const ModelConfig& mc, DType dt, double tol) {
  RunResult f = run(mc, true, dt), u = run(mc, false, dt);
  REQUIRE(max_diff(f.losses, u.losses) <= tol);
  REQUIRE(max_diff(f.mems, u.mems) <= tol);
  REQUIRE(f.grads.size() == u.grads.size());
  for (const auto& [name, g] : u.grads) {
    INFO(name);
    REQUIRE(f.grads.count(name));
    REQUIRE(max_diff({f.grads[name]}, {g}) <= tol);
  }
}

}  // namespace

TEST_CASE("fused attention trains the same model as the unfused ops", "[attention][txl]") {
  for (int variant = 0; variant < 5; ++variant) {
    ModelConfig mc = base_config();
    mc.pre_lnorm = variant == 1;
    mc.same_length = variant == 2;
    mc.clamp_len = variant == 2 ? 3 : -1;
    if (variant >= 3) {
      // most_used reads the probabilities of segments that evict memories, so those
      // run unfused and the others fused.
      mc.attention.type = "compressive";
      mc.attention.options = {{"cmem_len", int64_t{4}},
                              {"rate", int64_t{2}},
                              {"compression", std::string(variant == 3 ? "conv" : "most_used")}};
    }
    INFO("variant " << variant);
    check_same(mc, DType::f64, 1e-11);
    check_same(mc, DType::f32, 2e-4);
  }
}

TEST_CASE("dropatt in training takes the unfused path", "[attention][txl]") {
  // Dropout on the probabilities needs them as a tensor, so fused: true runs the very
  // same ops as fused: false.
  ModelConfig mc = base_config();
  mc.dropatt = 0.2;
  RunResult f = run(mc, true, DType::f32), u = run(mc, false, DType::f32);
  REQUIRE(max_diff(f.losses, u.losses) == 0.0);
  for (const auto& [name, g] : u.grads) REQUIRE(max_diff({f.grads[name]}, {g}) == 0.0);
}

namespace {

// Spans start at init * S with a ramp of R: with S = 80 the window is trimmed to 64 or
// kept whole, and the cache carries across segments.
ModelConfig span_model(bool adapt, int64_t pers, double init) {
  ModelConfig mc;
  mc.n_layer = 2;
  mc.n_head = 2;
  mc.d_model = 8;
  mc.d_head = 4;
  mc.d_inner = pers > 0 ? 0 : 16;
  mc.tgt_len = 6;
  mc.init_std = 0.3;
  mc.dropout = 0.0;  // with dropout, training runs unfused (checked below)
  mc.attention.type = "adaptive_span";
  mc.attention.options = {{"span", int64_t{80}}, {"adapt_span", adapt},         {"ramp", int64_t{8}},
                          {"init", init},        {"span_loss", 1e-3},           {"cache", true},
                          {"pers_mem_size", pers}};
  return mc;
}

}  // namespace

TEST_CASE("fused adaptive-span attention trains the same model as the unfused ops", "[attention][adaptive_span]") {
  struct Case {
    bool adapt;
    int64_t pers;
    double init;
  };
  for (const Case& c : std::vector<Case>{{true, 0, 0.05}, {true, 0, 0.9}, {false, 0, 0.0}, {true, 3, 0.3}}) {
    INFO("adapt " << c.adapt << " persistent " << c.pers << " init " << c.init);
    ModelConfig mc = span_model(c.adapt, c.pers, c.init);
    for (DType dt : {DType::f64, DType::f32}) {
      RunResult f = run(mc, true, dt, 4), u = run(mc, false, dt, 4);
      const double tol = dt == DType::f64 ? 1e-11 : 2e-4;
      REQUIRE(max_diff(f.losses, u.losses) <= tol);
      REQUIRE(max_diff(f.mems, u.mems) <= tol);
      for (const auto& [name, g] : u.grads) {
        INFO(name << " " << dtype_name(dt));
        REQUIRE(f.grads.count(name));
        REQUIRE(max_diff({f.grads[name]}, {g}) <= tol);
      }
    }
  }
}

TEST_CASE("adaptive span with dropout in training takes the unfused path", "[attention][adaptive_span]") {
  ModelConfig mc = span_model(true, 0, 0.3);
  mc.dropout = 0.2;
  RunResult f = run(mc, true, DType::f32), u = run(mc, false, DType::f32);
  REQUIRE(max_diff(f.losses, u.losses) == 0.0);
  for (const auto& [name, g] : u.grads) REQUIRE(max_diff({f.grads[name]}, {g}) == 0.0);
}

namespace {

// ||a - b|| / ||b|| over all rows: bf16 rounds each product operand to 8 bits, so
// elementwise comparisons of small entries are meaningless; a wrong block offset or
// packing would move the whole tensor by O(1).
double rel_norm_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (size_t j = 0; j < a[i].size(); ++j) num += (a[i][j] - b[i][j]) * (a[i][j] - b[i][j]), den += b[i][j] * b[i][j];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// With AMX both paths round the same operands to bf16 and differ only in fp32
// summation order (measured: at most 1e-4 for post-LN Transformer-XL and adaptive span;
// 1.0e-3 for compressive and, pre-LN, whose memories take gradients through the layer
// norm, 2.3e-3 for r_net's gradient, the same as before the bf16 keys and values);
// without it the fused products stay fp32 (measured: up to 2.3e-2 against the unfused
// bf16 products).
void check_same_bf16(const ModelConfig& mc, double amx_tol = 1e-3) {
  PrecisionScope bf16(MatmulPrecision::bf16);
  const double tol = txl::cpu::BlockGemm::for_run().bf16() ? amx_tol : 6e-2;
  RunResult f = run(mc, true, DType::f32, 2), u = run(mc, false, DType::f32, 2);
  CHECK(rel_norm_diff(f.losses, u.losses) <= tol);
  CHECK(rel_norm_diff(f.mems, u.mems) <= tol);
  REQUIRE(f.grads.size() == u.grads.size());
  for (const auto& [name, g] : u.grads) {
    INFO(name);
    REQUIRE(f.grads.count(name));
    CHECK(rel_norm_diff({f.grads[name]}, {g}) <= tol);
  }
}

}  // namespace

TEST_CASE("fused attention in bf16 (AMX block products) trains the same model as the unfused bf16 ops",
          "[attention][bf16]") {
  // Queries longer than one block of 64 rows, so the blocks read the packed key,
  // value and position panels at offsets; an odd length gives odd position-row offsets.
  TXL_REQUIRE_BF16();
  INFO("AMX available: " << txl::cpu::amx_bf16_available());
  for (int64_t tgt : {70, 69}) {
    ModelConfig mc = base_config();
    mc.d_model = 32;
    mc.d_head = 16;
    mc.d_inner = 64;
    mc.tgt_len = tgt;
    mc.mem_len = 40;
    mc.dropout = 0.0;
    mc.init_std = 0.1;
    INFO("transformer_xl tgt_len " << tgt);
    check_same_bf16(mc);
    // Pre-LN (the projections read the normalised [memory; segment] with its gradient)
    // and compressive with its reconstruction loss (which reads the attention's fp32 q,
    // k, v while the core's gradients are bf16).
    ModelConfig pre = mc;
    pre.pre_lnorm = true;
    INFO("transformer_xl pre-LN tgt_len " << tgt);
    check_same_bf16(pre, 5e-3);
    ModelConfig cmp = mc;
    cmp.attention.type = "compressive";
    cmp.attention.options = {{"cmem_len", int64_t{20}}, {"rate", int64_t{2}}, {"compression", std::string("conv")}};
    INFO("compressive conv tgt_len " << tgt);
    check_same_bf16(cmp, 3e-3);
    ModelConfig span = span_model(true, 3, 0.3);
    span.d_model = 32;
    span.d_head = 16;
    span.d_inner = 0;
    span.tgt_len = tgt;
    INFO("adaptive_span with persistent vectors, tgt_len " << tgt);
    check_same_bf16(span);
  }
}
