// The bf16 copy of the weights that an optimizer update writes in its own pass
// (Backend::adam_update's w_bf16), which bf16 products then read instead of converting
// the parameter arena again: the copy is the updated weights rounded to nearest even,
// a scope reads it only when opened after_update with nothing in between, and training
// with it takes exactly the steps that converting the arena every step takes.
#include <cstring>

#include "gradcheck.h"
#include "native_bf16.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/models/language_model.h"
#include "txl/nn/parameters.h"
#include "txl/ops/ops.h"
#include "txl/train/optimizer.h"

using namespace txl;
using namespace txl::testing;

namespace {

// Round to nearest, ties to even, from the float's bits: the test's own reference.
uint16_t rne_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t lower = u & 0xFFFFu, upper = u >> 16;
  if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) return static_cast<uint16_t>(upper + 1);
  return static_cast<uint16_t>(upper);
}

float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> floats_of(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

std::vector<uint16_t> bits_of(const Tensor& t) {
  const uint16_t* p = static_cast<const uint16_t*>(t.raw_data());
  return std::vector<uint16_t>(p, p + t.numel());
}

void fill_from(const Tensor& dst, const Tensor& src) {
  auto v = src.to_doubles();
  float* p = dst.data<float>();
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
}

Tensor tokens(Generator& gen) {
  auto u = Tensor::rand({12, 2}, gen).to_doubles();
  std::vector<int64_t> ids(u.size());
  for (size_t i = 0; i < u.size(); ++i) ids[i] = static_cast<int64_t>(u[i] * 11) % 11;
  return Tensor::from_vector<int64_t>({12, 2}, ids);
}

}  // namespace

TEST_CASE("an optimizer update's bf16 copy is the updated weights rounded to nearest even", "[bf16][optimizer]") {
  Backend& be = backend_for(Device{});
  Generator gen(21);
  // Odd lengths at odd offsets: the copy's unaligned head and tail, and (100003) a body
  // long enough for every thread.
  for (int64_t n : {int64_t{37}, int64_t{1029}, int64_t{100003}}) {
    for (int kind = 0; kind < 3; ++kind) {
      INFO("n " << n << " update " << (kind == 0 ? "adam" : kind == 1 ? "adamw" : "adagrad"));
      auto arena = [&](double stddev) { return narrow(Tensor::randn({n + 8}, gen, DType::f32, stddev), 0, 3, n); };
      Tensor w0 = arena(1.0), g = arena(0.1), m0 = arena(0.01), v_root = arena(0.1), v0 = mul(v_root, v_root);
      Tensor w_plain = contiguous_copy(w0), w_fused = contiguous_copy(w0);
      Tensor m_plain = contiguous_copy(m0), m_fused = contiguous_copy(m0), v_plain = contiguous_copy(v0),
             v_fused = contiguous_copy(v0);
      Tensor copy_buffer = Tensor::empty({n + 5}, DType::bf16);
      std::memset(copy_buffer.raw_data(), 0x77, static_cast<size_t>(n + 5) * 2);
      Tensor copy = narrow(copy_buffer, 0, 5, n);
      if (kind < 2) {
        AdamHyper h;
        h.lr = 1e-2, h.beta1 = 0.9, h.beta2 = 0.999, h.eps = 1e-8, h.weight_decay = 0.01;
        h.step_size = h.lr / (1 - 0.9), h.bias_correction2_sqrt = std::sqrt(1 - 0.999), h.decoupled = kind == 1;
        be.adam_update(w_plain, g, m_plain, v_plain, h, Tensor());
        be.adam_update(w_fused, g, m_fused, v_fused, h, copy);
      } else {
        be.adagrad_update(w_plain, g, v_plain, 0.05, 1e-10, 0.0, Tensor());
        be.adagrad_update(w_fused, g, v_fused, 0.05, 1e-10, 0.0, copy);
      }
      // The copy leaves the update itself alone.
      REQUIRE(floats_of(w_fused) == floats_of(w_plain));
      REQUIRE(floats_of(m_fused) == floats_of(m_plain));
      REQUIRE(floats_of(v_fused) == floats_of(v_plain));
      REQUIRE(floats_of(w_fused) != floats_of(contiguous_copy(w0)));  // the weights did move
      const auto w = floats_of(w_fused);
      const auto c = bits_of(copy);
      int64_t rounded_up = 0;
      for (int64_t i = 0; i < n; ++i) {
        INFO("element " << i << " w " << w[i]);
        REQUIRE(c[i] == rne_bf16(w[i]));
        rounded_up += std::abs(bf16_value(c[i])) > std::abs(w[i]);
      }
      if (n > 1000) CHECK(rounded_up > 0);  // not merely truncated
    }
  }
  // A copy that does not fit is refused with the operation's name.
  Tensor w = Tensor::zeros({16}), s = Tensor::zeros({16});
  REQUIRE_THROWS_WITH(be.adagrad_update(w, w, s, 0.1, 1e-10, 0.0, Tensor::empty({15}, DType::bf16)),
                      Catch::Contains("adagrad_update: the bf16 copy"));
  REQUIRE_THROWS_WITH(be.adagrad_update(w, w, s, 0.1, 1e-10, 0.0, Tensor::zeros({16})),
                      Catch::Contains("adagrad_update: the bf16 copy"));
}

TEST_CASE("a scope multiplies by the update's bf16 copy only when opened after_update, with nothing in between",
          "[bf16]") {
  TXL_REQUIRE_BF16();
  PrecisionScope bf16(MatmulPrecision::bf16);
  ParameterSet params;
  params.declare("w", {32, 24});
  params.declare("z", {3});
  params.finalize(DType::f32);
  Generator gen(4);
  fill_from(params.get("w"), Tensor::randn({32, 24}, gen));
  auto rounded = [](const Tensor& w) {
    auto v = floats_of(contiguous(w));
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_value(rne_bf16(v[i]));
    return Tensor::from_vector<float>(w.shape(), r);
  };
  // x holds bf16 values, so the product of x with bf16 weights is exact in float64 and
  // the bf16 product differs from it only by fp32 accumulation; another w is off by
  // order one.
  const Tensor x = rounded(Tensor::randn({9, 32}, gen));
  auto expect_product = [&](const Tensor& w_values, const char* what) {
    Tensor exact = matmul(to_dtype(x, DType::f64), to_dtype(w_values, DType::f64));
    Tensor got = matmul(x, params.get("w"));
    auto gv = got.to_doubles(), ev = exact.to_doubles();
    double worst = 0;
    for (size_t i = 0; i < gv.size(); ++i) worst = std::max(worst, std::abs(gv[i] - ev[i]) / (1 + std::abs(ev[i])));
    INFO(what << ": worst relative difference " << worst);
    CHECK(worst < 1e-5);
  };
  // An "update" that leaves the arena as it is but writes other weights into the copy:
  // which one a product reads shows whether the scope converted the arena.
  const Tensor other = Tensor::randn({32, 24}, gen);
  auto fake_update = [&] {
    Tensor copy = bf16_copy_for_update(params.flat_data());
    REQUIRE(copy.defined());
    const auto o = floats_of(other);
    uint16_t* c = static_cast<uint16_t*>(copy.raw_data()) + params.get("w").offset();
    for (size_t i = 0; i < o.size(); ++i) c[i] = rne_bf16(o[i]);
    bf16_copy_updated(params.flat_data());
  };
  const Tensor arena_w = contiguous_copy(params.get("w"));

  fake_update();
  {
    Bf16WeightScope hold(params.flat_data(), /*after_update=*/true);
    expect_product(rounded(other), "after_update: the update's copy");
  }
  fake_update();
  {
    Bf16WeightScope hold(params.flat_data());
    expect_product(rounded(arena_w), "a plain scope: the arena converted");
  }
  fake_update();
  { Bf16WeightScope evaluation(params.flat_data()); }  // a scope in between (an evaluation)
  {
    Bf16WeightScope hold(params.flat_data(), /*after_update=*/true);
    expect_product(rounded(arena_w), "after_update, but a scope came between: the arena converted");
  }
  // bf16_copy_refresh rounds a changed view into the pending copy; elsewhere the copy
  // keeps what the update wrote.
  fake_update();
  Tensor rows = narrow(params.get("w"), 0, 0, 10);
  fill_from(rows, Tensor::randn({10, 24}, gen));
  bf16_copy_refresh(rows);
  Tensor mixed = contiguous_copy(other);
  Tensor mixed_rows = narrow(mixed, 0, 0, 10);
  copy_(mixed_rows, rows);
  {
    Bf16WeightScope hold(params.flat_data(), /*after_update=*/true);
    expect_product(rounded(mixed), "after a refresh of rows 0-9");
  }
  // In fp32 runs, on views of an arena or on part of one, there is no copy to write.
  {
    PrecisionScope fp32(MatmulPrecision::fp32);
    CHECK_FALSE(bf16_copy_for_update(params.flat_data()).defined());
  }
  CHECK_FALSE(bf16_copy_for_update(params.get("w")).defined());
}

TEST_CASE("training on the update's bf16 copy takes exactly the steps of converting the arena every step",
          "[bf16][optimizer]") {
  TXL_REQUIRE_BF16();
  PrecisionScope bf16(MatmulPrecision::bf16);
  // Adaptive span clamps its spans after each step (spans from 0 go below it), so the
  // copy also needs after_step's refresh; Transformer-XL with Adam, span with Adagrad.
  ModelConfig span;
  span.n_layer = 2, span.n_head = 2, span.d_model = 16, span.d_head = 8, span.d_inner = 32, span.tgt_len = 12;
  span.dropout = 0.0, span.init_std = 0.2;
  span.attention.type = "adaptive_span";
  span.attention.options = {{"span", int64_t{40}}, {"adapt_span", true}, {"ramp", int64_t{8}},         {"init", 0.0},
                            {"span_loss", 1e-2},   {"cache", true},      {"pers_mem_size", int64_t{0}}};
  ModelConfig xl = span;
  xl.attention.type = "transformer_xl";
  xl.attention.options.clear();
  xl.mem_len = 12;
  for (const auto& [mc, opt] : {std::pair{span, std::string("adagrad")}, std::pair{xl, std::string("adam")}}) {
    INFO(mc.attention.type << " with " << opt);
    auto train = [&, mc = mc, opt = opt](bool after_update) {
      LanguageModel model(mc, 11);
      model.init_weights(9);
      OptimizerConfig oc;
      oc.name = opt;
      oc.lr = 0.05;
      oc.clip = opt == "adagrad" ? 0.03 : 0.0;
      auto optimizer = make_optimizer(oc, model.params());
      std::vector<double> losses;
      std::vector<Tensor> mems;
      Generator gen(2);
      for (int step = 0; step < 5; ++step) {
        model.params().zero_grad();
        ForwardResult out;
        {
          Bf16WeightScope hold(model.params().flat_data(), after_update);
          out = model.forward(tokens(gen), tokens(gen), mems, ForwardOptions{true, static_cast<uint64_t>(step)});
          backward(out.aux_loss.defined() ? add(mean(out.loss), out.aux_loss) : mean(out.loss));
        }
        losses.push_back(mean(out.loss).item());
        const GradientNorms norms = clip_grad_norms(model.params(), 0.5);
        optimizer->step(model.params(), oc.lr, &norms);
        model.after_step();
        mems = out.mems;
      }
      return std::pair{losses, floats_of(model.params().flat_data())};
    };
    const auto [converted_losses, converted_w] = train(false);
    const auto [copied_losses, copied_w] = train(true);
    CHECK(copied_losses == converted_losses);
    CHECK(copied_w == converted_w);
    CHECK(converted_losses.front() != converted_losses.back());  // it trained
  }
}
