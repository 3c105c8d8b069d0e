// Transformer-XL against our own float64 PyTorch reference (scripts/reference/
// mem_transformer_ref.py `case`): per-token losses, memories after each segment and
// the gradient of every parameter, for post-LN, pre-LN, same_length and clamp_len.
// Plus the closed-form invariants: parameter count and memory lengths.
#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "reference_runner.h"
#include "txl/io/safetensors.h"
#include "txl/models/language_model.h"
#include "txl/train/checkpoint.h"

using namespace txl;
using namespace txl::testing;

namespace {

struct CaseResult {
  double max_loss_diff = 0, max_mem_diff = 0, max_grad_diff = 0;
  int64_t losses = 0, mems = 0, grads = 0;
};

CaseResult run_case(const std::string& name, const std::string& flags) {
  const std::string dir = scratch_dir("txl_case_" + name);
  run_command("/usr/bin/python3 " + source_path("scripts/reference/mem_transformer_ref.py") + " case --out " + dir +
              " --n_layer 2 --n_head 3 --d_model 12 --d_head 4 --d_inner 20 --vocab 11 --tgt_len 5 --batch 2 "
              "--segments 3 --seed 7 " + flags);
  auto tensors = load_safetensors(dir + "/case.safetensors");
  std::ifstream jf(dir + "/case.json");
  nlohmann::json info = nlohmann::json::parse(jf);

  ModelConfig mc;
  mc.n_layer = info["n_layer"];
  mc.n_head = info["n_head"];
  mc.d_model = info["d_model"];
  mc.d_head = info["d_head"];
  mc.d_inner = info["d_inner"];
  mc.tgt_len = info["tgt_len"];
  mc.mem_len = info["mem_len"];
  mc.pre_lnorm = info["pre_lnorm"];
  mc.same_length = info["same_length"];
  mc.clamp_len = info["clamp_len"];
  LanguageModel model(mc, info["vocab"].get<int64_t>(), DType::f64);
  std::map<std::string, Tensor> weights;
  for (const auto& [k, t] : tensors)
    if (k.rfind("param/", 0) == 0 && k != "param/crit.out_layers.0.weight") weights[k.substr(6)] = t;
  load_weights(model, weights, dir);

  CaseResult r;
  std::vector<Tensor> mems;
  Tensor objective;
  const int segments = info["segments"];
  for (int s = 0; s < segments; ++s) {
    const std::string ss = std::to_string(s);
    ForwardResult out = model.forward(tensors.at("input/" + ss), tensors.at("target/" + ss), mems, {});
    r.max_loss_diff = std::max(r.max_loss_diff, max_abs_diff(out.loss.detach(), tensors.at("loss/" + ss)));
    r.losses += out.loss.numel();
    for (size_t l = 0; l < out.mems.size(); ++l) {
      r.max_mem_diff = std::max(r.max_mem_diff, max_abs_diff(out.mems[l], tensors.at("mem/" + ss + "/" + std::to_string(l))));
      r.mems++;
    }
    Tensor seg = mean(out.loss);
    objective = objective.defined() ? add(objective, seg) : seg;
    mems = out.mems;
  }
  backward(objective);
  for (const auto& [name, p] : model.params().named()) {
    r.max_grad_diff = std::max(r.max_grad_diff, max_abs_diff(p.grad(), tensors.at("grad/" + name)));
    r.grads++;
  }
  return r;
}

}  // namespace

TEST_CASE("parameter count equals the closed form and the published count", "[txl]") {
  ModelConfig base;
  base.n_layer = 12;
  base.n_head = 8;
  base.d_model = 512;
  base.d_head = 64;
  base.d_inner = 2048;
  REQUIRE(LanguageModel::parameter_count(base, 204) == 41055436);  // MODELS.md §9.1
  ModelConfig small;
  small.n_layer = 2;
  small.n_head = 3;
  small.d_model = 12;
  small.d_head = 4;
  small.d_inner = 20;
  LanguageModel m(small, 11, DType::f64);
  REQUIRE(m.params().numel() == LanguageModel::parameter_count(small, 11));
}

TEST_CASE("memory length grows to mem_len and stays there", "[txl]") {
  ModelConfig c;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_model = 8;
  c.d_head = 4;
  c.d_inner = 16;
  c.tgt_len = 5;
  c.mem_len = 7;
  LanguageModel m(c, 10, DType::f64);
  m.init_weights(1);
  NoGradGuard ng;
  std::vector<Tensor> mems;
  Tensor ids = Tensor::from_vector<int64_t>({5, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 0});
  std::vector<int64_t> lengths;
  for (int s = 0; s < 3; ++s) {
    mems = m.forward(ids, ids, mems, {}).mems;
    REQUIRE(mems.size() == 2);
    lengths.push_back(mems[0].shape()[0]);
    REQUIRE(mems[0].shape() == Shape{lengths.back(), 2, 8});
  }
  REQUIRE(lengths == std::vector<int64_t>{5, 7, 7});  // MODELS.md §1.7
}

TEST_CASE("Transformer-XL matches the float64 PyTorch reference (post-LN, memory)", "[txl][reference]") {
  TXL_REQUIRE_TORCH();
  CaseResult r = run_case("post", "--mem_len 7");
  CHECK(r.losses == 3 * 5 * 2);
  CHECK(r.mems == 3 * 3);
  CHECK(r.max_loss_diff <= 1e-9);
  CHECK(r.max_mem_diff <= 1e-9);
  CHECK(r.max_grad_diff <= 1e-9);
}

TEST_CASE("Transformer-XL matches the reference with pre_lnorm", "[txl][reference]") {
  TXL_REQUIRE_TORCH();
  CaseResult r = run_case("pre", "--mem_len 7 --pre_lnorm");
  CHECK(r.max_loss_diff <= 1e-9);
  CHECK(r.max_mem_diff <= 1e-9);
  CHECK(r.max_grad_diff <= 1e-9);
}

TEST_CASE("Transformer-XL matches the reference with same_length and clamp_len", "[txl][reference]") {
  TXL_REQUIRE_TORCH();
  CaseResult a = run_case("same", "--mem_len 6 --same_length");
  CHECK(a.max_loss_diff <= 1e-9);
  CHECK(a.max_grad_diff <= 1e-9);
  CaseResult b = run_case("clamp", "--mem_len 7 --clamp_len 3");
  CHECK(b.max_loss_diff <= 1e-9);
  CHECK(b.max_grad_diff <= 1e-9);
  CaseResult c = run_case("nomem", "--mem_len 0");
  CHECK(c.mems == 0);
  CHECK(c.max_loss_diff <= 1e-9);
  CHECK(c.max_grad_diff <= 1e-9);
}
