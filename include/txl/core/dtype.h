// Element types. f32 is the fast path, f64 the reference path that gradient checks run
// in, i32/i64 hold indices, b8 holds boolean masks. bf16 is reserved for storage only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "txl/core/error.h"

namespace txl {

enum class DType : uint8_t { f32, f64, i32, i64, b8, bf16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }
inline bool is_integer(DType t) { return t == DType::i32 || t == DType::i64; }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::b8; }

// Calls f with a value of the C++ type of a floating dtype (f32 or f64).
template <class F>
void dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    default: TXL_FAIL("{}: expected a floating dtype (f32 or f64), got {}", op, dtype_name(dt));
  }
}

// Calls f with a value of the C++ type of an index dtype (i32 or i64).
template <class F>
void dispatch_index(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    default: TXL_FAIL("{}: expected an index dtype (i32 or i64), got {}", op, dtype_name(dt));
  }
}

}  // namespace txl

