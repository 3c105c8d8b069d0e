#include "txl/bench/train_bench.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "backend/cpu/cpu_backend.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/backend/profiler.h"
#include "txl/bench/ops_bench.h"
#include "txl/core/allocator.h"
#include "txl/core/device_memory.h"
#include "txl/core/threads.h"
#include "txl/models/language_model.h"
#include "txl/ops/ops.h"
#include "txl/train/optimizer.h"

namespace txl {

namespace {

// The part of the step a profiled kernel belongs to.
const char* profile_category(std::string name) {
  if (const auto bwd = name.find(" ("); bwd != std::string::npos) name.resize(bwd);
  if (name == "matmul") return "GEMM";
  if (name == "to_bf16" || name == "to_bf16_weights") return "bf16 conversion";
  if (name == "rel_attn_probs" || name == "fused_rel_attention" || name == "fused_span_attention" ||
      name == "softmax" || name == "triangle_mask")
    return "attention";
  if (name == "cross_entropy") return "loss";
  if (name == "optimizer" || name == "clip_grad_norm") return "optimizer";
  return "elementwise/norm/copies";
}

struct ProductRates {
  double alone = 0.0, cold = 0.0;  // GFLOP/s
};

// One product of the step measured by itself two ways, timed by the same profiler hook
// as the step's products (the library's execution only), on random operands in the
// step's layout, converted to bf16 beforehand when the step multiplies in bf16:
//   alone: one operand set repeated, so operands and output stay in cache;
//   cold:  operand sets taken in turn that together exceed the caches (cold_set_count),
//          each product writing an output buffer last touched a round earlier, as a
//          step's products read activations that other work evicted and write buffers
//          freed long before.
// What oneDNN reaches on that shape by itself, against which the step's rate can be read.
ProductRates product_rates(const profiler::ProductShape& s) {
  NoGradGuard no_grad;
  Generator gen(5);
  const bool bf16 = matmul_precision() == MatmulPrecision::bf16;
  auto stored = [&](int64_t rows, int64_t cols, bool transposed) {
    Shape shape = transposed ? Shape{cols, rows} : Shape{rows, cols};
    if (s.batch > 1) shape.insert(shape.begin(), s.batch);
    return Tensor::randn(shape, gen);
  };
  const Tensor a_src = stored(s.m, s.k, s.a_transposed), b_src = stored(s.k, s.n, s.b_transposed);
  const Tensor bias = s.bias ? Tensor::randn({s.n}, gen) : Tensor();
  // A copy of a random operand at an address of its own, in the step's layout and dtype.
  auto operand = [&](const Tensor& src, bool transposed) {
    Tensor t = contiguous_copy(src);
    if (transposed) t = transpose(t, -1, -2);
    return bf16 ? backend_of(t).to_bf16(t) : t;
  };
  using Set = std::pair<Tensor, Tensor>;
  auto timed_gflops = [&](const std::vector<Set>& sets, int rounds) {
    std::vector<Tensor> outs(sets.size());
    auto round = [&] {
      for (size_t i = 0; i < sets.size(); ++i)
        outs[i] = backend_of(sets[i].first).matmul(sets[i].first, sets[i].second, bias, s.relu, s.bf16_out);
    };
    for (int i = 0; i < 2; ++i) round();  // primitive creation, first touch
    profiler::reset();
    profiler::set_enabled(true);
    for (int i = 0; i < rounds; ++i) round();
    profiler::set_enabled(false);
    const auto rows = profiler::product_snapshot();
    profiler::reset();
    if (rows.empty() || rows.front().seconds <= 0) return 0.0;
    return s.flops() * rows.front().calls / rows.front().seconds * 1e-9;
  };
  ProductRates r;
  const Set hot{operand(a_src, s.a_transposed), operand(b_src, s.b_transposed)};
  r.alone = timed_gflops({hot}, 10);
  std::vector<Set> cold(static_cast<size_t>(
      cold_set_count(hot.first, hot.second, s.batch * s.m * s.n, s.bf16_out ? DType::bf16 : DType::f32)));
  for (Set& set : cold) set = {operand(a_src, s.a_transposed), operand(b_src, s.b_transposed)};
  r.cold = timed_gflops(cold, 3);
  return r;
}

// The step's products by geometry, largest first; the first `measured` rows also with
// their rates alone and cold (each a separate measurement).
nlohmann::json product_table(const std::vector<profiler::ProductEntry>& rows, int repeats, double peak,
                             size_t measured) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& e = rows[i];
    const auto& s = e.shape;
    const double flops = s.flops() * e.calls;
    nlohmann::json row = {{"product", s.str()},
                          {"batch", s.batch},
                          {"m", s.m},
                          {"k", s.k},
                          {"n", s.n},
                          {"a_transposed", s.a_transposed},
                          {"b_transposed", s.b_transposed},
                          {"backward", e.backward},
                          {"calls_per_step", static_cast<double>(e.calls) / repeats},
                          {"ms_per_step", e.seconds * 1e3 / repeats},
                          {"gflops", flops / e.seconds * 1e-9},
                          {"frac_peak", flops / e.seconds * 1e-9 / peak}};
    if (i < measured) {
      const ProductRates r = product_rates(s);
      // The cold sets went back to the pool, which keeps them; a dozen products of
      // different sizes would hold gigabytes.
      HostAllocator::instance().empty_cache();
      row["alone_gflops"] = r.alone;
      row["cold_gflops"] = r.cold;
    }
    out.push_back(row);
  }
  return out;
}

// All the step's products together: their time and rate in the step, and what the same
// products would take at their rates alone and cold (rows measured both ways; the others
// counted at their step rate). The cold total is the ceiling for products that read and
// write out of cache, the alone total the ceiling if the step kept everything in cache.
nlohmann::json product_totals(const nlohmann::json& table, double peak) {
  double flops = 0, step_ms = 0, alone_ms = 0, cold_ms = 0;
  int measured = 0;
  for (const auto& row : table) {
    const double ms = row["ms_per_step"].get<double>(), gflops = row["gflops"].get<double>();
    flops += ms * 1e-3 * gflops * 1e9;
    step_ms += ms;
    const bool both = row.value("alone_gflops", 0.0) > 0 && row.value("cold_gflops", 0.0) > 0;
    measured += both ? 1 : 0;
    alone_ms += both ? ms * gflops / row["alone_gflops"].get<double>() : ms;
    cold_ms += both ? ms * gflops / row["cold_gflops"].get<double>() : ms;
  }
  auto frac = [&](double ms) { return ms > 0 ? flops / (ms * 1e-3) * 1e-9 / peak : 0.0; };
  return {{"ms_per_step", step_ms},        {"frac_peak", frac(step_ms)},
          {"alone_ms_per_step", alone_ms}, {"alone_frac_peak", frac(alone_ms)},
          {"cold_ms_per_step", cold_ms},   {"cold_frac_peak", frac(cold_ms)},
          {"rows_measured", measured}};
}

}  // namespace

nlohmann::json run_train_bench(const Config& cfg, int64_t vocab_size, int warmup, int repeats, bool profile) {
  const Device device = training_device(cfg.train.device, 0);
  const MatmulPrecision precision = resolve_precision(cfg.train.precision, device);
  PrecisionScope precision_scope(precision);
  LanguageModel model(cfg.model, vocab_size);
  model.init_weights(static_cast<uint64_t>(cfg.train.seed));
  model.to(device);
  auto optimizer = make_optimizer(cfg.train.optimizer, model.params());
  const int64_t T = cfg.model.tgt_len, B = cfg.train.batch_size;
  Generator gen(3);
  std::vector<int64_t> ids(static_cast<size_t>((T + 1) * B));
  for (auto& v : ids) v = static_cast<int64_t>(uniform01(counter_hash(1, 9, gen.take(1))) * vocab_size);
  Tensor input = Tensor::from_vector<int64_t>({T, B}, std::vector<int64_t>(ids.begin(), ids.begin() + T * B));
  Tensor target = Tensor::from_vector<int64_t>({T, B}, std::vector<int64_t>(ids.begin() + B, ids.end())).to(device);
  input = input.to(device);
  std::vector<Tensor> mems;
  auto step = [&](int64_t i) {
    model.params().zero_grad();
    ForwardResult out;
    {
      Bf16WeightScope weights_hold_still(model.params().flat_data(), /*after_update=*/true);
      out = model.forward(input, target, mems, ForwardOptions{true, static_cast<uint64_t>(i)});
      backward(out.aux_loss.defined() ? add(mean(out.loss), out.aux_loss) : mean(out.loss));
    }
    GradientNorms norms;
    {
      profiler::Scope p("clip_grad_norm");
      norms = gradient_norms(model.params(), cfg.train.clip);
    }
    {
      profiler::Scope p("optimizer");
      optimizer->step(model.params(), 1e-4, &norms);
      model.after_step();
    }
    mems = std::move(out.mems);
    synchronize(device);  // a GPU step is timed when its kernels have finished
  };
  // Enough warm-up steps to fill the memory to mem_len, so timed steps see full length.
  const int64_t fill = cfg.model.mem_len > 0 ? (cfg.model.mem_len + T - 1) / T : 0;
  for (int64_t i = 0; i < std::max<int64_t>(warmup, fill + 1); ++i) step(i);
  HostAllocator::instance().reset_counters();
  const AllocatorStats before = memory_stats(device);
  const uint64_t primitives_before = cpu::matmul_cache_stats().created;
  profiler::reset();
  profiler::set_enabled(profile, device);
  std::vector<double> ms;
  // The ceiling for "% of peak": oneDNN's own product rate, measured before and after
  // every timed step (outside its timing), and its median taken. This CPU's matrix
  // throughput drifts by 2-3x over minutes, so one measurement before or after the
  // steps can land in another phase than the steps ran in.
  std::vector<double> peaks;
  auto measure_peak = [&] {  // raw oneDNN calls: nothing the profiler times
    if (profile && device.is_cpu()) peaks.push_back(dnnl_peak_gflops(3, 1024, precision));
  };
  measure_peak();
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step(1000 + i);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    measure_peak();
  }
  profiler::set_enabled(false);
  const uint64_t primitives_created = cpu::matmul_cache_stats().created - primitives_before;
  double total_ms = 0;
  for (double m : ms) total_ms += m;
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  // Hits and misses of the timed steps (a device's counters run from process start, so
  // the warm-up's are taken off; the host's were reset); a device's peak is the run's.
  AllocatorStats st = memory_stats(device);
  st.hits -= before.hits;
  st.misses -= before.misses;
  nlohmann::json prof = nlohmann::json::array();
  if (profile) {
    // A GPU's product rate holds still between steps: measured once, after the steps
    // and their memory statistics, so its operands count in neither.
    if (peaks.empty()) peaks.push_back(device_peak_gflops(device, 10, 8192, precision));
    std::sort(peaks.begin(), peaks.end());
    const double peak = peaks[peaks.size() / 2];
    double accounted = 0;
    std::map<std::string, double> category_ms;
    const auto entries = profiler::snapshot();
    // Rows are exclusive times (profiler::Scope), so every second is counted once.
    for (const auto& e : entries) {
      const double own_s = e.seconds;
      const double ms_step = own_s * 1e3 / repeats;
      accounted += ms_step;
      category_ms[profile_category(e.name)] += ms_step;
      nlohmann::json row = {{"name", e.name},
                            {"calls_per_step", static_cast<double>(e.calls) / repeats},
                            {"ms_per_step", ms_step},
                            {"share", own_s * 1e3 / total_ms}};
      if (e.flops > 0) {
        row["gflops"] = e.flops / own_s * 1e-9;
        row["frac_peak"] = e.flops / own_s * 1e-9 / peak;
      }
      prof.push_back(row);
    }
    const double mean_ms = total_ms / repeats;
    category_ms["other (autograd, allocation, views)"] = mean_ms - accounted;
    prof.push_back({{"name", "other (autograd, allocation, views)"},
                    {"calls_per_step", 0},
                    {"ms_per_step", mean_ms - accounted},
                    {"share", (mean_ms - accounted) / mean_ms}});
    nlohmann::json categories = nlohmann::json::array();
    for (const auto& [name, ms_step] : category_ms)
      categories.push_back({{"name", name}, {"ms_per_step", ms_step}, {"share", ms_step / mean_ms}});
    std::sort(categories.begin(), categories.end(),
              [](const nlohmann::json& a, const nlohmann::json& b) { return a["ms_per_step"] > b["ms_per_step"]; });
    // Taken before product_table's own measurements reset the profiler.
    const auto products = profiler::product_snapshot();
    const nlohmann::json table = product_table(products, repeats, peak, 12);
    prof = {{"kernels", prof},
            {"products", table},
            {"products_total", product_totals(table, peak)},
            {"categories", categories},
            {"peak_gflops", peak},
            {"peak_gflops_min", peaks.front()},
            {"peak_gflops_max", peaks.back()},
            {"peak_precision", precision_name(precision)},
            {"peak_source", device.is_cpu() ? "oneDNN" : "cuBLAS"},
            {"peak_measured", device.is_cpu() ? "between the steps" : "after the steps, 8192^3 random"},
            {"mean_ms_per_step", mean_ms}};
  }
  return {{"profile", prof},
          {"ms_per_step", med},
          {"tokens_per_s", T * B / (med / 1000.0)},
          {"min_ms", ms.front()},
          {"max_ms", ms.back()},
          {"repeats", repeats},
          {"threads", num_threads()},
          {"tokens_per_step", T * B},
          {"parameters", model.params().numel()},
          {"attention", cfg.model.attention.type},
          {"precision", precision_name(precision)},
          {"device", device.str()},
          {"attention_flops_per_token", model.attention().attention_flops_per_token(model.params())},
          // Model FLOPs of a training step per token: 6 per parameter (forward and both
          // backward products) plus 3x the attention's forward FLOPs in every layer.
          {"train_flops_per_token", 6.0 * static_cast<double>(model.params().numel()) +
                                        3.0 * static_cast<double>(cfg.model.n_layer) *
                                            model.attention().attention_flops_per_token(model.params())},
          {"allocator_hits", st.hits},
          {"allocator_misses", st.misses},
          {"primitives_created", primitives_created},
          {"peak_bytes", st.peak_bytes_in_use}};
}

std::string format_train_profile(const nlohmann::json& r) {
  const auto& p = r["profile"];
  std::string s = fmt::format(
      "profile: mean {:.2f} ms/step over {} steps; {} {} peak {:.1f} GFLOP/s (median of {:.1f}-{:.1f}, "
      "measured {})\n",
      p["mean_ms_per_step"].get<double>(), r["repeats"].get<int>(), p.value("peak_source", "oneDNN"),
      p["peak_precision"].get<std::string>(), p["peak_gflops"].get<double>(), p.value("peak_gflops_min", 0.0),
      p.value("peak_gflops_max", 0.0), p.value("peak_measured", "between the steps"));
  s += fmt::format("{:<40} {:>10} {:>7}\n", "part of the step", "ms/step", "share");
  for (const auto& c : p["categories"])
    s += fmt::format("{:<40} {:>10.3f} {:>6.1f}%\n", c["name"].get<std::string>(), c["ms_per_step"].get<double>(),
                     100 * c["share"].get<double>());
  s += "\n";
  s +=
      fmt::format("{:<40} {:>8} {:>10} {:>7} {:>9} {:>7}\n", "kernel", "calls", "ms/step", "share", "GFLOP/s", "%peak");
  for (const auto& k : p["kernels"]) {
    s += fmt::format("{:<40} {:>8.1f} {:>10.3f} {:>6.1f}%", k["name"].get<std::string>(),
                     k["calls_per_step"].get<double>(), k["ms_per_step"].get<double>(), 100 * k["share"].get<double>());
    if (k.contains("gflops"))
      s += fmt::format(" {:>9.1f} {:>6.1f}%", k["gflops"].get<double>(), 100 * k["frac_peak"].get<double>());
    s += "\n";
  }
  if (p.contains("products") && !p["products"].empty()) {
    s += fmt::format("\n{:<40} {:>8} {:>10} {:>9} {:>7} {:>9} {:>9} {:>7}\n", "product m x k x n (CPU, own time)",
                     "calls", "ms/step", "GFLOP/s", "%peak", "alone", "cold", "ratio");
    for (const auto& k : p["products"]) {
      const std::string name = k["product"].get<std::string>() + (k["backward"].get<bool>() ? " (bwd)" : "");
      s += fmt::format("{:<40} {:>8.1f} {:>10.3f} {:>9.1f} {:>6.1f}%", name, k["calls_per_step"].get<double>(),
                       k["ms_per_step"].get<double>(), k["gflops"].get<double>(), 100 * k["frac_peak"].get<double>());
      if (k.value("alone_gflops", 0.0) > 0 && k.value("cold_gflops", 0.0) > 0)
        s += fmt::format(" {:>9.1f} {:>9.1f} {:>7.2f}", k["alone_gflops"].get<double>(), k["cold_gflops"].get<double>(),
                         k["gflops"].get<double>() / k["cold_gflops"].get<double>());
      s += "\n";
    }
    s += "alone: the same product by itself, operands and output in cache; cold: over operand sets and outputs\n"
         "together beyond the caches; ratio: the step's rate / cold\n";
    if (p.contains("products_total")) {
      const auto& t = p["products_total"];
      s += fmt::format(
          "all products: {:.3f} ms/step at {:.1f}% of peak; at their rates alone {:.3f} ms ({:.1f}%), cold {:.3f} ms "
          "({:.1f}%) (the largest {} measured, the rest at their step rate)\n",
          t["ms_per_step"].get<double>(), 100 * t["frac_peak"].get<double>(), t["alone_ms_per_step"].get<double>(),
          100 * t["alone_frac_peak"].get<double>(), t["cold_ms_per_step"].get<double>(),
          100 * t["cold_frac_peak"].get<double>(), t["rows_measured"].get<int>());
    }
  }
  return s;
}

}  // namespace txl
