#include "txl/backend/precision.h"

#include <atomic>
#include <dnnl.hpp>

#include "txl/core/error.h"

namespace txl {

namespace {
std::atomic<MatmulPrecision> g_precision{MatmulPrecision::fp32};
std::atomic<const void*> g_weight_arena{nullptr};
std::atomic<uint64_t> g_weight_generation{0};
std::atomic<bool> g_after_update{false};
}  // namespace

Bf16WeightScope::Bf16WeightScope(const Tensor& arena, bool after_update) {
  g_weight_generation.fetch_add(1, std::memory_order_relaxed);
  g_weight_arena.store(arena.impl().storage.get(), std::memory_order_relaxed);
  g_after_update.store(after_update, std::memory_order_relaxed);
}

Bf16WeightScope::~Bf16WeightScope() {
  g_weight_arena.store(nullptr, std::memory_order_relaxed);
  g_after_update.store(false, std::memory_order_relaxed);
  // Weights may change once the scope closes (the optimizer step).
  g_weight_generation.fetch_add(1, std::memory_order_relaxed);
}

const void* bf16_weight_arena() { return g_weight_arena.load(std::memory_order_relaxed); }
uint64_t bf16_weight_generation() { return g_weight_generation.load(std::memory_order_relaxed); }

bool scope_after_update() { return g_after_update.load(std::memory_order_relaxed); }

bool is_scoped_weight(const Tensor& t) {
  const void* arena = bf16_weight_arena();
  return arena != nullptr && t.dtype() == DType::f32 && t.impl().storage.get() == arena;
}

MatmulPrecision matmul_precision() { return g_precision.load(std::memory_order_relaxed); }
void set_matmul_precision(MatmulPrecision p) { g_precision.store(p, std::memory_order_relaxed); }

bool cpu_has_native_bf16() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

MatmulPrecision resolve_precision(const std::string& setting, Device device) {
  if (setting == "fp32") return MatmulPrecision::fp32;
  if (setting == "bf16") return MatmulPrecision::bf16;
  TXL_CHECK(setting == "auto", "train.precision: expected one of fp32, bf16, auto, got \"{}\"", setting);
  if (!device.is_cpu()) return MatmulPrecision::bf16;
  return cpu_has_native_bf16() ? MatmulPrecision::bf16 : MatmulPrecision::fp32;
}

const char* precision_name(MatmulPrecision p) { return p == MatmulPrecision::bf16 ? "bf16" : "fp32"; }

}  // namespace txl
