// CUDA backend against the CPU backend: every op's forward values and input gradients
// on random inputs, strided and broadcast views included (f64 to 1e-10, f32 to 1e-5,
// bf16 products to 1e-2: bf16 keeps 8 mantissa bits, and K-term dot products of values
// near 1 round to about 2^-8 relative each). Tagged [gpu]: each test says
// "no CUDA device" and returns where none is present (ctest then reports it skipped).
#include <cmath>
#include <functional>

#include "gpu_skip.h"
#include "gradcheck.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/bench/train_bench.h"
#include "txl/config/config.h"
#include "txl/models/language_model.h"
#include "txl/ops/attention.h"
#include "txl/train/optimizer.h"

using namespace txl;
using namespace txl::testing;

namespace {

// The device under test: cuda:0, except while the CPU run of the cases below swaps in
// the CPU (TargetScope).
Device kGpu{DeviceType::cuda, 0};

struct TargetScope {
  explicit TargetScope(Device d) : prev(kGpu) { kGpu = d; }
  ~TargetScope() { kGpu = prev; }
  Device prev;
};

using CaseBody = void (*)();
std::vector<std::pair<const char*, CaseBody>>& gpu_cases() {
  static std::vector<std::pair<const char*, CaseBody>> cases;
  return cases;
}
struct RegisterCase {
  RegisterCase(const char* name, CaseBody body) { gpu_cases().emplace_back(name, body); }
};

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Run {
  Tensor out;
  std::vector<Tensor> grads;  // on the host
};

// f on copies of the host inputs placed on `device`; floating inputs are leaves whose
// gradients of sum(f * w) (w fixed random weights) come back to the host.
Run run_on(Device device, const Fn& f, const std::vector<Tensor>& inputs, bool grads) {
  std::vector<Tensor> xs;
  for (const Tensor& h : inputs) {
    Tensor x = device.is_cpu() ? contiguous_copy(h).detach() : h.to(device);
    if (grads && is_floating(x.dtype())) x.set_requires_grad(true);
    xs.push_back(x);
  }
  Run r;
  r.out = f(xs);
  if (grads) {
    Generator gen(99);
    Tensor w = Tensor::randn(r.out.shape(), gen, r.out.dtype()).to(device);
    backward(sum(mul(r.out, w)));
    for (const Tensor& x : xs)
      r.grads.push_back(x.requires_grad() && x.grad().defined() ? x.grad().to(cpu_device()) : Tensor());
  }
  r.out = r.out.to(cpu_device());
  return r;
}

// Forward values and input gradients of f on the GPU match the CPU's within tol
// (relative to max(1, |cpu value|)).
void require_same_on_gpu(const Fn& f, const std::vector<Tensor>& inputs, double tol, bool grads = true) {
  Run cpu = run_on(cpu_device(), f, inputs, grads);
  Run gpu = run_on(kGpu, f, inputs, grads);
  INFO("forward");
  REQUIRE(gpu.out.dtype() == cpu.out.dtype());
  REQUIRE(max_rel_diff(gpu.out, cpu.out) <= tol);
  for (size_t i = 0; i < cpu.grads.size(); ++i) {
    INFO("gradient of input " << i);
    REQUIRE(cpu.grads[i].defined() == gpu.grads[i].defined());
    if (cpu.grads[i].defined()) REQUIRE(max_rel_diff(gpu.grads[i], cpu.grads[i]) <= tol);
  }
}

Tensor randn(const Shape& s, uint64_t seed, DType dt, double scale = 1.0) {
  Generator g(seed);
  return Tensor::randn(s, g, dt, scale);
}

Tensor positive(const Shape& s, uint64_t seed, DType dt) {
  Generator g(seed);
  return Tensor::rand(s, g, dt, 0.5, 2.0);
}

}  // namespace

// A [gpu] test case whose body is also run, with the CPU as the device under test, by
// the CPU test at the end of this file: CI has no GPU, and that run at least executes
// every case's CPU half and harness (shapes, which ops are differentiable).
#define GPU_CASE(fn, name)                        \
  static void fn();                               \
  static const RegisterCase fn##_case{name, &fn}; \
  TEST_CASE(name, "[gpu]") {                      \
    TXL_REQUIRE_GPU();                            \
    fn();                                         \
  }                                               \
  static void fn()

TEST_CASE("a CUDA tensor without a device is one clear error", "[cuda]") {
  if (have_gpu()) return;
  REQUIRE_THROWS_WITH(Tensor::zeros({2, 3}, DType::f32, kGpu), Catch::Matchers::Contains("cuda:0"));
}

TEST_CASE("train.device: cuda without a visible GPU is one clear error", "[cuda]") {
  REQUIRE(training_device("cpu", 3) == cpu_device());
  if (have_gpu()) return;
  REQUIRE_THROWS_WITH(training_device("cuda", 0), Catch::Matchers::Contains("train.device: cuda, but"));
}

GPU_CASE(gpu_case_1, "cuda: host round trips, fills, strided and dtype-converting copies") {
  Tensor h = randn({3, 4, 5}, 1, DType::f64);
  Tensor d = h.to(kGpu);
  REQUIRE(d.device() == kGpu);
  REQUIRE(max_abs_diff(d.to(cpu_device()), h) == 0.0);
  // A strided device view to the host, and a host view to the device.
  Tensor dt = permute(d, {2, 0, 1});
  REQUIRE(max_abs_diff(dt.to(cpu_device()), permute(h, {2, 0, 1})) == 0.0);
  REQUIRE(max_abs_diff(narrow(h, 1, 1, 2).to(kGpu).to(cpu_device()), narrow(h, 1, 1, 2)) == 0.0);
  REQUIRE(max_abs_diff(to_dtype(d, DType::f32).to(cpu_device()), to_dtype(h, DType::f32)) == 0.0);
  REQUIRE(Tensor::full({4}, 2.5, DType::f32, kGpu).to_doubles() == std::vector<double>(4, 2.5));
  REQUIRE(Tensor::zeros({3}, DType::i64, kGpu).to_doubles() == std::vector<double>(3, 0.0));
  // contiguous_copy is not differentiable (it makes plain storage), so values only.
  require_same_on_gpu([](const std::vector<Tensor>& x) { return contiguous_copy(transpose(x[0], 0, 2)); }, {h}, 0.0,
                      /*grads=*/false);
}

GPU_CASE(gpu_case_2, "cuda: unary ops and their gradients match the CPU") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    Tensor x = randn({4, 6}, 2, dt), p = positive({4, 6}, 3, dt);
    std::vector<std::pair<const char*, Fn>> cases = {
        {"neg", [](const std::vector<Tensor>& v) { return neg(v[0]); }},
        {"exp", [](const std::vector<Tensor>& v) { return exp(v[0]); }},
        {"tanh", [](const std::vector<Tensor>& v) { return tanh(v[0]); }},
        {"sigmoid", [](const std::vector<Tensor>& v) { return sigmoid(v[0]); }},
        {"relu", [](const std::vector<Tensor>& v) { return relu(v[0]); }},
        {"gelu", [](const std::vector<Tensor>& v) { return gelu(v[0]); }},
        {"gelu_tanh", [](const std::vector<Tensor>& v) { return gelu(v[0], true); }},
        {"add_scalar", [](const std::vector<Tensor>& v) { return add_scalar(v[0], 0.25); }},
        {"mul_scalar", [](const std::vector<Tensor>& v) { return mul_scalar(transpose(v[0], 0, 1), -1.5); }},
        {"clamp", [](const std::vector<Tensor>& v) { return clamp(v[0], -0.5, 0.7); }},
    };
    for (auto& [name, f] : cases) {
      INFO(name << " " << dtype_name(dt));
      require_same_on_gpu(f, {x}, tol);
    }
    std::vector<std::pair<const char*, Fn>> positive_cases = {
        {"log", [](const std::vector<Tensor>& v) { return log(v[0]); }},
        {"sqrt", [](const std::vector<Tensor>& v) { return sqrt(v[0]); }},
        {"rsqrt", [](const std::vector<Tensor>& v) { return rsqrt(v[0]); }},
        {"pow", [](const std::vector<Tensor>& v) { return pow(v[0], 1.7); }},
    };
    for (auto& [name, f] : positive_cases) {
      INFO(name << " " << dtype_name(dt));
      require_same_on_gpu(f, {p}, tol);
    }
  }
}

GPU_CASE(gpu_case_3, "cuda: broadcast binary ops, where, equal and masked_fill match the CPU") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    INFO(dtype_name(dt));
    Tensor a = randn({3, 1, 5}, 4, dt), b = randn({4, 5}, 5, dt), c = positive({4, 5}, 6, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return add(v[0], v[1]); }, {a, b}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return sub(v[0], transpose(v[1], 0, 1)); },
                        {randn({5, 4}, 7, dt), b}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, {a, b}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return div(v[0], v[1]); }, {a, c}, tol);
    Tensor mask = Tensor::from_vector<uint8_t>({4, 1}, {1, 0, 0, 1});
    require_same_on_gpu([](const std::vector<Tensor>& v) { return where(v[2], v[0], v[1]); }, {b, c, mask}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return masked_fill(v[0], v[1], -1e9); }, {b, mask}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return to_dtype(equal(v[0], v[1]), DType::f32); },
                        {b, contiguous_copy(b)}, 0.0, false);
    // In place, with a broadcast operand.
    require_same_on_gpu(
        [](const std::vector<Tensor>& v) {
          Tensor y = contiguous_copy(v[0]).detach();
          add_(y, v[1]);
          return y;
        },
        {b, randn({5}, 8, dt)}, tol, false);
  }
}

GPU_CASE(gpu_case_4, "cuda: sum, mean and max over axes match the CPU") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    INFO(dtype_name(dt));
    Tensor x = randn({3, 4, 70}, 9, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return sum(v[0]); }, {x}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return sum(v[0], {0, 1}); }, {x}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return mean(v[0], {2}, true); }, {x}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return sum(permute(v[0], {2, 0, 1}), {1}); }, {x}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return max(v[0], {1}); }, {x}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return max(v[0], {0, 2}, true); }, {x}, tol);
    // Leading axes of a contiguous tensor (bias gradients): the column-chunk kernels, with
    // more rows than one chunk holds.
    Tensor tall = randn({700, 3, 5}, 35, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return sum(v[0], {0}); }, {tall}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return max(v[0], {0, 1}); }, {tall}, tol);
  }
}

GPU_CASE(gpu_case_5, "cuda: batched, broadcast and transposed products and linear layers match the CPU") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    INFO(dtype_name(dt));
    Tensor a = randn({2, 3, 5, 7}, 10, dt), b = randn({3, 7, 4}, 11, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {a, b}, tol);
    // Transposed operands (column-major in memory) and a permuted batch.
    require_same_on_gpu(
        [](const std::vector<Tensor>& v) { return matmul(transpose(v[0], -1, -2), transpose(v[1], -1, -2)); },
        {randn({3, 7, 5}, 12, dt), randn({3, 4, 7}, 13, dt)}, tol);
    require_same_on_gpu(
        [](const std::vector<Tensor>& v) {
          return matmul(permute(v[0], {1, 0, 2, 3}), v[1]);
        },
        {randn({3, 2, 5, 7}, 14, dt), randn({7, 6}, 15, dt)}, tol);
    Tensor x = randn({6, 8}, 16, dt), w = randn({5, 8}, 17, dt), bias = randn({5}, 18, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return linear_relu(v[0], v[1], v[2]); }, {x, w, bias}, tol);
  }
}

GPU_CASE(gpu_case_6, "cuda: bf16 products use fp32 accumulation like the CPU's") {
  PrecisionScope bf16(MatmulPrecision::bf16);
  Tensor x = randn({16, 64}, 19, DType::f32, 0.5), w = randn({32, 64}, 20, DType::f32, 0.5);
  Tensor bias = randn({32}, 21, DType::f32);
  require_same_on_gpu([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias}, 1e-2);
  require_same_on_gpu([](const std::vector<Tensor>& v) { return matmul(v[0], transpose(v[1], 0, 1)); },
                      {x, randn({32, 64}, 22, DType::f32, 0.5)}, 1e-2);
}

GPU_CASE(gpu_case_7, "cuda: softmax, layer norm and cross-entropy match the CPU") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    INFO(dtype_name(dt));
    Tensor x = randn({5, 3, 300}, 23, dt, 3.0);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return softmax(v[0]); }, {x}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return log_softmax(transpose(v[0], 0, 1)); }, {x}, tol);
    Tensor g = randn({300}, 24, dt), b = randn({300}, 25, dt), r = randn({5, 3, 300}, 26, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); }, {x, g, b}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return add_layer_norm(v[0], v[3], v[1], v[2]); },
                        {x, g, b, r}, tol);
    Tensor logits = randn({7, 11}, 27, dt, 2.0);
    Tensor targets = Tensor::from_vector<int64_t>({7}, {0, 3, 10, -100, 5, 5, 1});
    require_same_on_gpu([](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1]); }, {logits, targets}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], Reduction::none); },
                        {logits, to_dtype(targets, DType::i32)}, tol);
  }
}

GPU_CASE(gpu_case_8, "cuda: gathers, scatters, layout ops, dropout and masks match the CPU") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    INFO(dtype_name(dt));
    Tensor table = randn({9, 6}, 28, dt);
    // Repeated ids: the backward's scatter-add sums several rows into one.
    Tensor ids = Tensor::from_vector<int64_t>({2, 4}, {1, 3, 3, 8, 0, 1, 1, 1});
    require_same_on_gpu([](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); }, {table, ids}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return index_select(v[0], 1, v[1]); },
                        {table, Tensor::from_vector<int32_t>({3}, {5, 0, 5})}, tol);
    Tensor a = randn({2, 3}, 29, dt), b = randn({4, 3}, 30, dt);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return concat({v[0], v[1]}, 0); }, {a, b}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return pad(v[0], {{1, 2}, {0, 1}}, 0.5); }, {a}, tol);
    require_same_on_gpu([](const std::vector<Tensor>& v) { return dropout(v[0], 0.3, true, 7, 100); }, {b}, tol);
  }
  Run cpu = run_on(
      cpu_device(), [](const std::vector<Tensor>&) { return to_dtype(triu_mask(5, 7, 2), DType::f32); }, {}, false);
  Tensor gpu = backend_for(kGpu).triangle_mask(5, 7, 2, true, kGpu);
  REQUIRE(max_abs_diff(to_dtype(gpu.to(cpu_device()), DType::f32), cpu.out) == 0.0);
}

GPU_CASE(gpu_case_9, "cuda: Transformer-XL attention probabilities match the CPU") {
  const int64_t T = 5, M = 3, K = T + M;
  Tensor mask = triu_mask(T, K, 1 + M);
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
    INFO(dtype_name(dt));
    Tensor ac = randn({2, 3, T, K}, 31, dt), bd = randn({2, 3, T, K}, 32, dt);
    require_same_on_gpu([&](const std::vector<Tensor>& v) { return rel_attn_probs(v[0], v[1], mask, 0.35); }, {ac, bd},
                        tol);
  }
}

TEST_CASE("cuda: operands on different devices and CPU-only kernels are clear errors", "[gpu]") {
  TXL_REQUIRE_GPU();
  Tensor a = randn({2, 2}, 33, DType::f32).to(kGpu), b = randn({2, 2}, 34, DType::f32);
  REQUIRE_THROWS_WITH(add(a, b), Catch::Matchers::Contains("cpu"));
  RelAttentionInputs in{a, a, a, a, a};
  REQUIRE_THROWS_WITH(backend_for(kGpu).fused_rel_attention(in, Tensor(), 1.0),
                      Catch::Matchers::Contains("fused_rel_attention"));
}

namespace {

Tensor token_block(int64_t T, int64_t B, int64_t s, int64_t V) {
  std::vector<int64_t> v(static_cast<size_t>(T * B));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>((i * 7 + static_cast<size_t>(s) * 13 + 3) % V);
  return Tensor::from_vector<int64_t>({T, B}, v);
}

struct StepResult {
  std::vector<double> losses, grads, weights;
};

// Three segments (memories carried), one backward over their summed objective, one
// optimizer step; losses, the gradient arena and the updated weights come back.
StepResult train_step(const ModelConfig& mc, const OptimizerConfig& oc, Device device, DType dt) {
  LanguageModel model(mc, 11, dt);
  model.init_weights(5);
  model.to(device);
  auto opt = make_optimizer(oc, model.params());
  StepResult r;
  std::vector<Tensor> state;
  Tensor objective;
  model.params().zero_grad();
  for (int64_t s = 0; s < 3; ++s) {
    ForwardResult out =
        model.forward(token_block(mc.tgt_len, 2, s, 11).to(device), token_block(mc.tgt_len, 2, s + 5, 11).to(device),
                      state, ForwardOptions{true, 17 + static_cast<uint64_t>(s)});
    for (double v : out.loss.to_doubles()) r.losses.push_back(v);
    Tensor seg = mean(out.loss);
    if (out.aux_loss.defined()) seg = add(seg, out.aux_loss);
    objective = objective.defined() ? add(objective, seg) : seg;
    state = out.mems;
  }
  backward(objective);
  clip_grad_norm(model.params(), 0.5);
  r.grads = model.params().flat_grad().to_doubles();
  opt->step(model.params(), 1e-2);
  model.after_step();
  r.weights = model.params().flat_data().to_doubles();
  return r;
}

double worst(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i)
    m = std::max(m, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  return m;
}

}  // namespace

GPU_CASE(gpu_case_10, "cuda: a training step of every family matches the CPU") {
  for (int family = 0; family < 4; ++family) {
    ModelConfig mc;
    mc.n_layer = 2;
    mc.n_head = 2;
    mc.d_model = 8;
    mc.d_head = 4;
    mc.d_inner = 16;
    mc.tgt_len = 6;
    mc.mem_len = 5;
    mc.dropout = 0.1;  // the same counter-based masks on both devices
    mc.dropatt = family == 0 ? 0.1 : 0.0;
    mc.init_std = 0.3;
    OptimizerConfig oc;
    oc.name = "adam";
    if (family == 1) {
      mc.attention.type = "compressive";
      mc.attention.options = {{"cmem_len", int64_t{4}}, {"rate", int64_t{2}}, {"compression", std::string("conv")}};
    } else if (family >= 2) {
      mc.attention.type = "adaptive_span";
      mc.attention.options = {{"span", int64_t{16}}, {"ramp", int64_t{4}}, {"init", 0.5}, {"span_loss", 0.01}};
      if (family == 3) {
        mc.d_inner = 0;
        mc.attention.options["pers_mem_size"] = int64_t{4};
      }
      oc.name = "adagrad";
      oc.clip = 0.03;
    }
    // A first Adam / Adagrad step with a tiny eps is nearly sign(g): a gradient within
    // rounding of zero could flip a weight by 2 lr between devices. eps = 1 keeps the
    // step proportional to g, so the weights compare as tightly as the gradients.
    oc.eps = 1.0;
    INFO("family " << family << " (" << mc.attention.type << ")");
    for (DType dt : {DType::f64, DType::f32}) {
      INFO(dtype_name(dt));
      const double tol = dt == DType::f64 ? 1e-9 : 2e-4;
      StepResult cpu = train_step(mc, oc, cpu_device(), dt), gpu = train_step(mc, oc, kGpu, dt);
      REQUIRE(worst(gpu.losses, cpu.losses) <= tol);
      REQUIRE(worst(gpu.grads, cpu.grads) <= tol);
      REQUIRE(worst(gpu.weights, cpu.weights) <= tol);
    }
  }
}

GPU_CASE(gpu_case_11, "cuda: a profiled training step times each kernel on the device") {
  // A GPU runs kernels asynchronously: unless the profiler waits for the device around
  // each one, a product's row times its launch, and its rate comes out above the
  // device's own peak many times over.
  Config cfg;
  cfg.model.n_layer = 2;
  cfg.model.n_head = 4;
  cfg.model.d_model = 256;
  cfg.model.d_head = 64;
  cfg.model.d_inner = 2048;
  cfg.model.tgt_len = 128;
  cfg.model.mem_len = 128;
  cfg.model.dropout = 0.0;
  cfg.train.device = kGpu.is_cpu() ? "cpu" : "cuda";
  cfg.train.precision = "fp32";
  cfg.train.batch_size = 8;
  const nlohmann::json r = run_train_bench(cfg, 64, 1, 3, /*profile=*/true);
  const nlohmann::json& p = r["profile"];
  REQUIRE(p["peak_gflops"].get<double>() > 0);
  int products = 0;
  for (const auto& k : p["kernels"]) {
    if (!k.contains("frac_peak")) continue;
    INFO(k.dump());
    CHECK(k["frac_peak"].get<double>() <= 1.25);
    ++products;
  }
  REQUIRE(products > 0);
  // Exclusive rows: the kernels' own times fit in the measured step (a nested or
  // double-counted row would push them past it).
  double kernels_ms = 0;
  for (const auto& k : p["kernels"])
    if (k["name"].get<std::string>().rfind("other", 0) != 0) kernels_ms += k["ms_per_step"].get<double>();
  REQUIRE(kernels_ms > 0);
  REQUIRE(kernels_ms <= 1.02 * p["mean_ms_per_step"].get<double>());
}

TEST_CASE("the gpu test cases run with the CPU as the device under test", "[cuda]") {
  // CPU against CPU: this checks the cases' own code (their CPU half, shapes, gradients
  // asked of differentiable ops), not CUDA. Two cases once failed on the first GPU run
  // for reasons this would have caught.
  TargetScope on_cpu(cpu_device());
  REQUIRE(gpu_cases().size() >= 11);
  for (const auto& [name, body] : gpu_cases()) {
    INFO(name);
    body();
  }
}
