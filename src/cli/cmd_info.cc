// `txl info --system`: what this build and this machine offer.
#include <dnnl.hpp>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/core/error.h"
#include "txl/config/load.h"
#include "txl/core/threads.h"
#include "txl/io/safetensors.h"
#include "txl/train/checkpoint.h"

namespace txl::cli {

namespace {
const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}
}  // namespace

namespace {

int checkpoint_info(const std::string& path) {
  Checkpoint ck = load_checkpoint(path);
  const int64_t n = ck.model->params().numel();
  const int64_t formula = LanguageModel::parameter_count(ck.config.model, ck.vocab.size());
  std::cout << "checkpoint: " << ck.dir << "\n"
            << fmt::format("parameters: {} (closed form {}: {})\n", n, formula, n == formula ? "match" : "MISMATCH")
            << fmt::format("vocabulary: {} symbols ({})\n", ck.vocab.size(), ck.vocab.kind())
            << fmt::format("attention: {} ({})\n", ck.config.model.attention.type,
                           caps_text(ck.model->attention_spec().caps));
  // Learned per-head quantities (adaptive span: the span of every head, in tokens).
  for (const auto& [what, per_layer] : ck.model->attention().report(ck.model->params())) {
    double total = 0.0;
    int64_t n = 0;
    for (size_t l = 0; l < per_layer.size(); ++l) {
      std::string row;
      for (double v : per_layer[l]) row += fmt::format(" {:8.1f}", v), total += v, ++n;
      std::cout << fmt::format("{} layer {:2d}:{}\n", what, l, row);
    }
    if (n) std::cout << fmt::format("{} mean: {:.1f}\n", what, total / static_cast<double>(n));
  }
  // A run directory's best checkpoint holds weights only; its training state is in last.
  const std::filesystem::path last = std::filesystem::path(path) / "checkpoints" / "last" / "trainer_state.json";
  if (!ck.has_training_state && std::filesystem::exists(last)) {
    ck.state = TrainerState::from_json(nlohmann::json::parse(read_file(last.string(), "trainer state")), last.string());
    ck.has_training_state = true;
  }
  if (ck.has_training_state) {
    const TrainerState& s = ck.state;
    std::cout << fmt::format("training: step {} of {}, epoch {}, {} tokens seen, {:.1f} s of training\n", s.step,
                             ck.config.train.steps, s.epoch, s.tokens_seen, s.elapsed_s);
    if (s.best_step >= 0) std::cout << fmt::format("best valid bpc: {:.4f} at step {}\n", s.best_val_bpc, s.best_step);
  }
  std::cout << "config:\n" << config_to_yaml(ck.config);
  return 0;
}

}  // namespace

int info(const Context& ctx, const std::vector<std::string>& args) {
  TXL_CHECK(args.size() == 1, "info: expected CHECKPOINT_OR_RUN_DIR or --system");
  if (args[0] != "--system") return checkpoint_info(args[0]);
  int threads = configure_threads(ctx.threads);
  const dnnl_version_t* v = dnnl_version();
  std::cout << "txl " << TXL_VERSION << "\n"
            << "oneDNN " << v->major << "." << v->minor << "." << v->patch << " (cpu runtime "
            << (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other") << ")\n"
            << "cpu isa (oneDNN): " << isa_name(dnnl::get_effective_cpu_isa()) << "\n"
            << "threads: " << threads << "\n"
            << "native bf16: " << (cpu_has_native_bf16() ? "yes" : "no") << "; train.precision: auto runs "
            << precision_name(resolve_precision("auto")) << " matrix products\n"
            << "cuda backend: ";
#ifdef TXL_WITH_CUDA
  const int gpus = device_count(DeviceType::cuda);
  std::cout << fmt::format("built for CUDA architectures {}; {} device(s) visible{}\n", TXL_CUDA_ARCHS, gpus,
                           gpus ? "" : " (no driver or no GPU here)");
#else
  std::cout << "not built (configure with -DTXL_CUDA=ON)\n";
#endif
  return 0;
}

}  // namespace txl::cli
