// The precision of matrix products on the CPU: fp32, or bf16 inputs with fp32
// accumulation and fp32 outputs (oneDNN on AMX / AVX-512 BF16). Everything else —
// master weights, optimizer state, softmax, norms, losses, reductions — stays fp32.
// Set once per run from train.precision (fp32 | bf16 | auto).
#pragma once
#include <string>

namespace txl {

enum class MatmulPrecision { fp32, bf16 };

MatmulPrecision matmul_precision();
void set_matmul_precision(MatmulPrecision p);

// Whether this CPU multiplies bf16 natively (oneDNN's ISA has avx512_core_bf16 or AMX).
bool cpu_has_native_bf16();
// "fp32" | "bf16" | "auto" -> what runs here ("auto": bf16 where native, else fp32).
MatmulPrecision resolve_precision(const std::string& setting);
const char* precision_name(MatmulPrecision p);

// Sets the precision for a scope and restores the previous one.
class PrecisionScope {
 public:
  explicit PrecisionScope(MatmulPrecision p) : saved_(matmul_precision()) { set_matmul_precision(p); }
  ~PrecisionScope() { set_matmul_precision(saved_); }

 private:
  MatmulPrecision saved_;
};

}  // namespace txl
