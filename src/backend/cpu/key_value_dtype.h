// The fused attention kernels read keys and values in the queries' dtype or, for fp32
// queries, in bf16: the key and value products of a bf16 run write them so (their only
// reader rounds them to bf16 anyway), which halves those products' writes and leaves the
// kernels' packing a copy. Gradients stay in the queries' dtype.
#pragma once
#include <cstdint>
#include <type_traits>

#include "txl/core/error.h"
#include "txl/core/tensor.h"

namespace txl::cpu {

inline void check_key_value_dtypes(const Tensor& k, const Tensor& v, DType dt, const char* op) {
  const bool same = k.dtype() == dt || (dt == DType::f32 && k.dtype() == DType::bf16);
  TXL_CHECK(same && v.dtype() == k.dtype(), "{}: keys {} and values {} must both be {}{}", op, dtype_name(k.dtype()),
            dtype_name(v.dtype()), dtype_name(dt), dt == DType::f32 ? " or both bf16" : "");
  if (k.dtype() == DType::bf16)
    TXL_CHECK(k.dim() > 0 && k.strides().back() == 1 && v.strides().back() == 1,
              "{}: bf16 keys and values must be dense along their last dim", op);
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
