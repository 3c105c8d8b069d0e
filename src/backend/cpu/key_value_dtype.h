// The fused attention kernels read keys and values in the queries' dtype or, for fp32
// queries, in bf16: the key and value products of a bf16 run write them so (their only
// reader rounds them to bf16 anyway), which halves those products' writes and leaves the
// kernels' packing a copy. Gradients are in the queries' dtype (unless the inputs'
// bf16_operands asks for bf16 ones).
#pragma once
#include <cstdint>
#include <type_traits>

#include "txl/core/error.h"
#include "txl/core/tensor.h"

namespace txl::cpu {

// Keys and values t (both, or one of them) for queries of dtype dt.
inline void check_key_value_dtype(const Tensor& t, DType dt, const char* op) {
  TXL_CHECK(t.dtype() == dt || (dt == DType::f32 && t.dtype() == DType::bf16),
            "{}: keys and values are {}; expected {}{}", op, dtype_name(t.dtype()), dtype_name(dt),
            dt == DType::f32 ? " or bf16" : "");
  if (t.dtype() == DType::bf16)
    TXL_CHECK(t.dim() > 0 && t.strides().back() == 1, "{}: bf16 keys and values must be dense along their last dim",
              op);
}

inline void check_key_value_dtypes(const Tensor& k, const Tensor& v, DType dt, const char* op) {
  check_key_value_dtype(k, dt, op);
  check_key_value_dtype(v, dt, op);
  TXL_CHECK(k.dtype() == v.dtype(), "{}: keys {} and values {} must have one dtype", op, dtype_name(k.dtype()),
            dtype_name(v.dtype()));
}

template <class KV>
const KV* key_value_data(const Tensor& t) {
  return static_cast<const KV*>(t.raw_data());
}

// Calls f with a value of the element type of keys k in a kernel over T: T, or uint16_t
// (bf16 bits) for bf16 keys and values of fp32 queries.
template <class T, class F>
void with_key_value_type(const Tensor& k, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    if (k.dtype() == DType::bf16) return f(uint16_t{});
  }
  f(T{});
}

}  // namespace txl::cpu
