// Adaptive span and all-attention against our float64 PyTorch reference
// (scripts/reference/adaptive_span_ref.py `case`, itself checked bit-for-bit against
// facebookresearch/adaptive-span): per-token losses, caches after each block and the
// gradient of every parameter with the span loss in the objective, with trimming,
// adaptive cache, persistent memory, and none of them. Plus the closed forms: mask
// ramp values, trim and cache sizes, parameter counts, the span clamp.
#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "reference_runner.h"
#include "txl/io/safetensors.h"
#include "txl/models/language_model.h"
#include "txl/train/checkpoint.h"

using namespace txl;
using namespace txl::testing;

namespace {

ModelConfig span_config(int64_t L, int64_t H, int64_t D, int64_t F, int64_t M, int64_t S, bool adapt, int64_t R,
                        double init, double loss, bool cache, int64_t N) {
  ModelConfig mc;
  mc.n_layer = L;
  mc.n_head = H;
  mc.d_model = D;
  mc.d_head = D / H;
  mc.d_inner = F;
  mc.tgt_len = M;
  mc.attention.type = "adaptive_span";
  mc.attention.options = {{"span", S},       {"adapt_span", adapt}, {"ramp", R},           {"init", init},
                          {"span_loss", loss}, {"cache", cache},     {"pers_mem_size", N}};
  return mc;
}

struct CaseResult {
  double loss = 0, cache = 0, grad = 0, objective = 0;
  int64_t losses = 0, caches = 0, grads = 0;
};

CaseResult run_case(const std::string& name, const std::string& flags) {
  const std::string dir = scratch_dir("as_case_" + name);
  run_command("/usr/bin/python3 " + source_path("scripts/reference/adaptive_span_ref.py") + " case --out " + dir +
              " --segments 3 --seed 5 " + flags);
  auto tensors = load_safetensors(dir + "/case.safetensors");
  std::ifstream jf(dir + "/case.json");
  nlohmann::json info = nlohmann::json::parse(jf);
  ModelConfig mc = span_config(info["n_layer"], info["n_head"], info["d_model"], info["d_inner"], info["tgt_len"],
                               info["attn_span"], info["adapt_span"], info["adapt_span_ramp"], info["adapt_span_init"],
                               info["adapt_span_loss"], info["adapt_span_cache"], info["pers_mem_size"]);
  LanguageModel model(mc, info["vocab"].get<int64_t>(), DType::f64);
  std::map<std::string, Tensor> weights;
  for (const auto& [k, t] : tensors)
    if (k.rfind("param/", 0) == 0) weights[k.substr(6)] = t;
  load_weights(model, weights, dir);

  CaseResult r;
  std::vector<Tensor> state;
  Tensor objective;
  for (int s = 0; s < info["segments"].get<int>(); ++s) {
    const std::string ss = std::to_string(s);
    ForwardOptions fo;
    fo.training = false;
    ForwardResult out = model.forward(tensors.at("input/" + ss), tensors.at("target/" + ss), state, fo);
    r.loss = std::max(r.loss, max_abs_diff(out.loss.detach(), tensors.at("loss/" + ss)));
    r.losses += out.loss.numel();
    REQUIRE(static_cast<int64_t>(out.mems.size()) == mc.n_layer);
    for (size_t l = 0; l < out.mems.size(); ++l) {
      r.cache = std::max(r.cache, max_abs_diff(out.mems[l], tensors.at("cache/" + ss + "/" + std::to_string(l))));
      r.caches++;
    }
    // The span loss is a training-only term; in eval mode the model leaves it out, so
    // build it the way the trainer receives it from a training forward.
    ForwardOptions train_fo;
    train_fo.training = true;  // dropout is 0: same numbers, plus the aux loss
    Tensor aux = model.forward(tensors.at("input/" + ss), tensors.at("target/" + ss), state, train_fo).aux_loss;
    Tensor seg = mean(out.loss);
    if (aux.defined()) {
      REQUIRE(std::abs(aux.item() - tensors.at("span_loss/" + ss).to_doubles()[0]) <= 1e-12);
      seg = add(seg, aux);
    }
    objective = objective.defined() ? add(objective, seg) : seg;
    state = out.mems;
  }
  r.objective = std::abs(objective.item() - info["objective_J"].get<double>());
  backward(objective);
  for (const auto& [pname, p] : model.params().named()) {
    // The aux-loss forward also recorded: its gradient reaches only current_val
    // through the span loss, which is exactly the term the reference adds once.
    r.grad = std::max(r.grad, max_abs_diff(p.grad(), tensors.at("grad/" + pname)));
    r.grads++;
  }
  return r;
}

void require_close(const CaseResult& r) {
  INFO("loss " << r.loss << " cache " << r.cache << " grad " << r.grad << " J " << r.objective);
  CHECK(r.losses > 0);
  CHECK(r.caches > 0);
  CHECK(r.grads > 0);
  CHECK(r.loss <= 1e-10);
  CHECK(r.cache <= 1e-10);
  CHECK(r.grad <= 1e-9);
  CHECK(r.objective <= 1e-10);
}

}  // namespace

TEST_CASE("adaptive span equals the reference: trimming, adaptive cache, span loss", "[adaptive_span][reference]") {
  TXL_REQUIRE_TORCH();
  require_close(run_case("adapt", "--adapt_span_loss 0.01"));
}

TEST_CASE("adaptive span equals the reference: no adaptive cache, spans near the maximum", "[adaptive_span][reference]") {
  TXL_REQUIRE_TORCH();
  require_close(run_case("nocache", "--no_adapt_span_cache --span_init_hi 1.0 --adapt_span_loss 0.001"));
}

TEST_CASE("adaptive span equals the reference: fixed span (no adapt_span)", "[adaptive_span][reference]") {
  TXL_REQUIRE_TORCH();
  require_close(run_case("fixed", "--no_adapt_span --attn_span 24"));
}

TEST_CASE("all-attention equals the reference: persistent memory, no feed-forward", "[adaptive_span][reference]") {
  TXL_REQUIRE_TORCH();
  require_close(run_case("pers", "--pers_mem_size 4 --n_head 4 --batch 3 --adapt_span_loss 0.01"));
  require_close(run_case("pers_fixed", "--pers_mem_size 5 --no_adapt_span --attn_span 16"));
}

TEST_CASE("adaptive span: parameter counts equal MODELS.md §9.2", "[adaptive_span]") {
  // enwik8 (12L/512/2048/8 heads, S 8192, V 205) and the 18-layer all-attention model.
  CHECK(LanguageModel::parameter_count(span_config(12, 8, 512, 2048, 512, 8192, true, 32, 0, 0, true, 0), 205) ==
        38538541);
  CHECK(LanguageModel::parameter_count(span_config(24, 8, 768, 4096, 512, 8192, true, 32, 0, 0, true, 0), 205) ==
        208910221);
  CHECK(LanguageModel::parameter_count(span_config(18, 8, 512, 1, 512, 8192, true, 32, 0, 0, true, 1024), 205) ==
        38501725);
  CHECK(LanguageModel::parameter_count(span_config(36, 8, 512, 1, 512, 8192, true, 32, 0, 0, true, 2048), 205) ==
        114017773);
  ModelConfig small = span_config(2, 2, 16, 20, 8, 192, true, 32, 0, 0, true, 3);
  LanguageModel m(small, 13, DType::f64);
  CHECK(m.params().numel() == LanguageModel::parameter_count(small, 13));
  CHECK_FALSE(m.params().contains("layers.0.ff.fc1.weight"));  // all-attention drops the FF sublayer
}

TEST_CASE("adaptive span: cache sizes follow the learned spans (trim multiple of 64, +64 cache)", "[adaptive_span]") {
  // S = 8192, all z' = 0: max_size = R = 32, trim 8128, cache 128 (MODELS.md §2.5).
  auto cache_after = [](double z, bool cache) {
    ModelConfig mc = span_config(1, 2, 8, 8, 16, 8192, true, 32, z, 0, cache, 0);
    LanguageModel m(mc, 5, DType::f64);
    m.init_weights(1);
    Tensor ids = Tensor::zeros({16, 1}, DType::i64);
    return m.forward(ids, ids, {}, {}).mems.at(0).shape()[0];
  };
  CHECK(cache_after(0.0, true) == 128);
  // z' = 0.1: max_size = ceil(819.2) + 32 = 852, trim floor((8192 - 852) / 64) * 64 = 7296, cache 960.
  CHECK(cache_after(0.1, true) == 960);
  CHECK(cache_after(0.1, false) == 8192);
  CHECK(cache_after(1.0, true) == 8192);
}

TEST_CASE("adaptive span: spans are clamped to [0, 1] after a step", "[adaptive_span]") {
  ModelConfig mc = span_config(2, 2, 8, 8, 4, 64, true, 8, 0.5, 0, true, 0);
  LanguageModel m(mc, 5, DType::f64);
  m.init_weights(1);
  Tensor z = m.params().get("layers.1.attn.attn.adaptive_span._mask.current_val").detach();
  copy_(z, Tensor::from_vector<double>({2, 1, 1}, {-0.25, 1.5}));
  m.after_step();
  CHECK(z.to_doubles() == std::vector<double>{0.0, 1.0});
}
