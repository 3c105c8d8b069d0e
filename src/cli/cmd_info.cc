// `txl info --system`: what this build and this machine offer.
#include <dnnl.hpp>
#include <iostream>

#include "commands.h"
#include "txl/core/error.h"
#include "txl/core/threads.h"

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

int info(const Context& ctx, const std::vector<std::string>& args) {
  TXL_CHECK(args.size() == 1 && args[0] == "--system", "info: expected --system (usage: txl info --system)");
  int threads = configure_threads(ctx.threads);
  const dnnl_version_t* v = dnnl_version();
  std::cout << "txl " << TXL_VERSION << "\n"
            << "oneDNN " << v->major << "." << v->minor << "." << v->patch << " (cpu runtime "
            << (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other") << ")\n"
            << "cpu isa (oneDNN): " << isa_name(dnnl::get_effective_cpu_isa()) << "\n"
            << "threads: " << threads << "\n"
            << "cuda backend: not built\n";
  return 0;
}

}  // namespace txl::cli
