// The precision of matrix products on the CPU: fp32, or bf16 inputs with fp32
// accumulation and fp32 outputs (oneDNN on AMX / AVX-512 BF16). Everything else —
// master weights, optimizer state, softmax, norms, losses, reductions — stays fp32.
// Set once per run from train.precision (fp32 | bf16 | auto).
#pragma once
#include <cstdint>
#include <string>

#include "txl/core/tensor.h"

namespace txl {

enum class MatmulPrecision { fp32, bf16 };

MatmulPrecision matmul_precision();
void set_matmul_precision(MatmulPrecision p);

// Whether this CPU multiplies bf16 natively (oneDNN's ISA has avx512_core_bf16 or AMX).
bool cpu_has_native_bf16();
// Whether the CPU's fused attention kernels multiply their blocks in bf16 in this run
// (bf16 products on AMX tiles, unless TXL_FUSED_AMX=0): they then read keys and values
// only rounded to bf16, so the products making them may write bf16. Elsewhere the
// blocks are fp32 products of the fp32 keys and values.
bool fused_attention_rounds_to_bf16();
// "fp32" | "bf16" | "auto" -> what runs on `device` ("auto": bf16 where the device
// multiplies bf16 natively, i.e. a CPU with AVX-512 BF16 / AMX or any GPU txl is built
// for (sm_80 and later), else fp32).
MatmulPrecision resolve_precision(const std::string& setting, Device device = {});
const char* precision_name(MatmulPrecision p);

// Sets the precision for a scope and restores the previous one.
class PrecisionScope {
 public:
  explicit PrecisionScope(MatmulPrecision p) : saved_(matmul_precision()) { set_matmul_precision(p); }
  ~PrecisionScope() { set_matmul_precision(saved_); }

 private:
  MatmulPrecision saved_;
};

// Declares that the tensors viewing `arena` (a model's parameter arena) stay unchanged
// for the life of the scope (one forward + backward, or an evaluation). bf16 products
// then convert the whole arena to bf16 in one pass, the first time a scope multiplies
// by a weight, and read every weight operand (forward and backward, either side of the
// product) from that copy with the weight's own strides; its buffer persists across
// scopes, so steady-state steps allocate nothing for it.
//
// With after_update, the caller vouches that since its previous scope the arena changed
// only through an optimizer update that wrote bf16_copy_for_update's copy, and through
// writes passed to bf16_copy_refresh (a training loop: step, after_step, next step). The
// scope then multiplies by the update's copy instead of converting the arena again.
// Any other scope in between (an evaluation) makes the next one convert again.
class Bf16WeightScope {
 public:
  explicit Bf16WeightScope(const Tensor& arena, bool after_update = false);
  ~Bf16WeightScope();
  Bf16WeightScope(const Bf16WeightScope&) = delete;
  Bf16WeightScope& operator=(const Bf16WeightScope&) = delete;
};

// The arena's storage while a scope is open (else null), and a number that changes
// with every scope, so copies made under an earlier one are known to be stale.
const void* bf16_weight_arena();
uint64_t bf16_weight_generation();
// Whether t is an fp32 view of the open scope's arena (a weight the scope converts).
bool is_scoped_weight(const Tensor& t);
// Whether the open scope was opened after_update.
bool scope_after_update();

// The copy an optimizer update writes as it updates `arena` (Backend::adam_update's
// w_bf16): a view of the bf16 arena copy the CPU's products read, for a whole float32
// parameter arena on the CPU while products run in bf16; else undefined (no copy to
// keep). bf16_copy_updated(arena) declares the update done, the copy current.
// bf16_copy_refresh(weights) rounds a view of the arena changed after the update (a
// clamp in after_step) into the copy; without it the copy is stale and the next scope
// must not be opened after_update.
Tensor bf16_copy_for_update(const Tensor& arena);
void bf16_copy_updated(const Tensor& arena);
void bf16_copy_refresh(const Tensor& weights);

}  // namespace txl
