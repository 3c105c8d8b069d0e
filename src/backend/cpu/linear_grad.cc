// linear_output_grad on the CPU (contract in backend.h): one pass over the rows of gy
// (and of y for the ReLU), writing g (fp32, or its bf16 copy directly) while each
// thread sums its rows into its own slice of per-thread bias partials, added at the
// end. It replaces three passes — ReLU backward, the bf16 conversion both products
// read, and the bias gradient's column sum — over the feed-forward's widest tensor.
#include <omp.h>

#include "../elementwise_math.h"
#include "../kernel_contracts.h"
#include "bf16_bits.h"
#include "cpu_backend.h"

namespace txl::cpu {

namespace {

// y: the ReLU output in T, or (uint16_t) its bf16 copy when the product wrote only that.
template <class T, class Y, class Out>
void rows_pass(const T* gy, const Y* y, int64_t R, int64_t N, Out* g, T* partials, bool bias) {
#pragma omp parallel
  {
    T* acc = bias ? partials + static_cast<int64_t>(omp_get_thread_num()) * N : nullptr;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < R; ++i) {
      const T* gi = gy + i * N;
      const Y* yi = y ? y + i * N : nullptr;
      Out* o = g + i * N;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) {
        T yv = T(0);
        if (yi) {
          if constexpr (std::is_same_v<Y, uint16_t>)
            yv = bf16_value(yi[j]);
          else
            yv = yi[j];
        }
        const T v = yi ? gi[j] * unary_slope<UnaryOp::relu>(yv, yv, T(0), T(0)) : gi[j];
        if (acc) acc[j] += v;
        if constexpr (std::is_same_v<Out, uint16_t>)
          o[j] = bf16_bits(v);
        else
          o[j] = v;
      }
    }
  }
}

}  // namespace

LinearOutputGrad CpuBackend::linear_output_grad(const Tensor& gy_in, const Tensor& y_in, bool bf16, bool bias_grad) {
  check_linear_output_grad(gy_in, y_in, bf16);
  const Tensor gy = contiguous_of(gy_in);
  const Tensor y = y_in.defined() ? contiguous_of(y_in) : Tensor();
  const int64_t R = gy.shape()[0], N = gy.shape()[1];
  const DType dt = gy.dtype();
  LinearOutputGrad r;
  r.g = Tensor::empty({R, N}, bf16 ? DType::bf16 : dt, gy.device());
  const int64_t threads = omp_get_max_threads();
  Tensor partials = bias_grad ? Tensor::zeros({threads, N}, dt, gy.device()) : Tensor();
  dispatch_float(dt, "linear_output_grad", [&](auto tag) {
    using T = decltype(tag);
    T* pp = bias_grad ? partials.data<T>() : nullptr;
    auto pass = [&](const auto* py) {
      if constexpr (std::is_same_v<T, float>) {
        if (bf16) return rows_pass(gy.data<T>(), py, R, N, static_cast<uint16_t*>(r.g.raw_data()), pp, bias_grad);
      }
      rows_pass(gy.data<T>(), py, R, N, r.g.data<T>(), pp, bias_grad);
    };
    if (y.defined() && y.dtype() == DType::bf16)
      pass(static_cast<const uint16_t*>(y.raw_data()));
    else
      pass(y.defined() ? y.data<T>() : static_cast<const T*>(nullptr));
  });
  if (bias_grad) r.bias_grad = reduce(ReduceOp::sum, partials, {0}, false);
  return r;
}

}  // namespace txl::cpu
