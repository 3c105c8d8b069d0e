// CUDA kernels for the loss, gathers, generated masks and the Transformer-XL attention
// probabilities: fused cross-entropy, index_select / index_add, dropout multipliers
// (the CPU's counter-based hash, so both devices draw the same mask), triangular
// masks, and the shifted, masked softmax with its backward.
#include "device_common.cuh"
#include "txl/core/rng.h"

namespace txl::cuda {

namespace {

template <class T, class I>
__global__ void cross_entropy_kernel(const T* logits, const I* targets, T* loss, T* lse, int64_t V,
                                     int64_t ignore_index) {
  __shared__ T scratch[32];
  const T* row = logits + blockIdx.x * V;
  T m = neg_inf<T>();
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) m = row[v] > m ? row[v] : m;
  m = block_max(m, scratch, neg_inf<T>());
  T s = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) s += std::exp(row[v] - m);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    const T l = m + std::log(s);
    const int64_t t = static_cast<int64_t>(targets[blockIdx.x]);
    lse[blockIdx.x] = l;
    loss[blockIdx.x] = t == ignore_index ? T(0) : l - row[t];
  }
}

template <class T, class I>
__global__ void cross_entropy_backward_kernel(const T* logits, const I* targets, const T* lse, const T* grad_rows,
                                              T* grad, int64_t N, int64_t V, int64_t ignore_index) {
  TXL_GRID_STRIDE(k, N * V) {
    const int64_t i = k / V, v = k % V;
    const int64_t t = static_cast<int64_t>(targets[i]);
    if (t == ignore_index) {
      grad[k] = 0;
    } else {
      const T gi = grad_rows[i];
      grad[k] = gi * std::exp(logits[k] - lse[i]) - (v == t ? gi : T(0));
    }
  }
}

template <class E, class I>
__global__ void index_select_kernel(const E* x, const I* index, E* out, int64_t A, int64_t K, int64_t inner,
                                    int64_t total) {
  TXL_GRID_STRIDE(e, total) {
    const int64_t c = e % inner, k = (e / inner) % K, o = e / (inner * K);
    out[e] = x[(o * A + static_cast<int64_t>(index[k])) * inner + c];
  }
}

// index_add is deterministic: each destination row sums its source rows in index
// order. (Float atomics add them in whatever order threads happen to run, so two
// identical GPU runs drifted apart and a resumed run could not continue bit for bit.)
// A counting sort of the K indices by value gives each destination its source list.
template <class I>
__global__ void index_count_kernel(const I* index, int64_t K, unsigned long long* starts) {
  TXL_GRID_STRIDE(k, K) atomicAdd(&starts[index[k] + 1], 1ull);  // integer sums: order-free
}

__global__ void index_scan_kernel(unsigned long long* starts, int64_t A) {
  for (int64_t a = 1; a <= A; ++a) starts[a] += starts[a - 1];
}

template <class I>
__global__ void index_order_kernel(const I* index, int64_t K, int64_t A, const unsigned long long* starts,
                                   int64_t* order) {
  TXL_GRID_STRIDE(a, A) {
    unsigned long long at = starts[a];
    if (at == starts[a + 1]) continue;
    for (int64_t k = 0; k < K; ++k)
      if (static_cast<int64_t>(index[k]) == a) order[at++] = k;
  }
}

template <class T>
__global__ void index_add_kernel(T* dst, const T* src, const unsigned long long* starts, const int64_t* order,
                                 int64_t A, int64_t K, int64_t inner, int64_t total) {
  TXL_GRID_STRIDE(e, total) {
    const int64_t c = e % inner, a = (e / inner) % A, o = e / (inner * A);
    const unsigned long long begin = starts[a], end = starts[a + 1];
    if (begin == end) continue;
    T acc = 0;
    for (unsigned long long p = begin; p < end; ++p) acc += src[(o * K + order[p]) * inner + c];
    dst[e] += acc;
  }
}

template <class T>
__global__ void dropout_kernel(T* out, int64_t n, double p, uint64_t seed, uint64_t counter, T keep) {
  TXL_GRID_STRIDE(i, n) out[i] = uniform01(counter_hash(seed, 3, counter + i)) >= p ? keep : T(0);
}

__global__ void triangle_kernel(uint8_t* out, int64_t rows, int64_t cols, int64_t diagonal, bool upper) {
  TXL_GRID_STRIDE(k, rows * cols) {
    const int64_t i = k / cols, j = k % cols;
    out[k] = upper ? (j - i >= diagonal) : (j - i <= diagonal);
  }
}

// One block per score row r of [rows, T, K]: query i = r % T reads bd_raw shifted by
// T - 1 - i; keys past K - shift are masked by contract and get probability 0.
template <class T>
__global__ void rel_attn_probs_kernel(const T* ac, const T* bd, const uint8_t* mask, T* p, int64_t Tq, int64_t K,
                                      T scale) {
  __shared__ T scratch[32];
  const int64_t r = blockIdx.x, i = r % Tq, shift = Tq - 1 - i, visible = K - shift;
  const T* a = ac + r * K;
  const T* b = bd + r * K + shift;
  const uint8_t* m = mask + i * K;
  T* out = p + r * K;
  T mx = neg_inf<T>();
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
    const T sc = m[j] ? neg_inf<T>() : (a[j] + b[j]) * scale;
    out[j] = sc;
    mx = sc > mx ? sc : mx;
  }
  mx = block_max(mx, scratch, neg_inf<T>());
  T sum = 0;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
    const T e = m[j] ? T(0) : std::exp(out[j] - mx);
    out[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);
  const T inv = T(1) / sum;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) out[j] = j < visible ? out[j] * inv : T(0);
}

template <class T>
__global__ void rel_attn_probs_backward_kernel(const T* p, const T* gp, const uint8_t* mask, T* gac, T* gbd,
                                               int64_t Tq, int64_t K, T scale) {
  __shared__ T scratch[32];
  const int64_t r = blockIdx.x, i = r % Tq, shift = Tq - 1 - i;
  const T* y = p + r * K;
  const T* gy = gp + r * K;
  const uint8_t* m = mask + i * K;
  T dot = 0;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) dot += y[j] * gy[j];
  dot = block_sum(dot, scratch);
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
    gac[r * K + j] = m[j] ? T(0) : y[j] * (gy[j] - dot) * scale;
    // bd_raw[i, c] fed key c - shift; columns before the shift fed nothing.
    const int64_t src = j - shift;
    gbd[r * K + j] = src < 0 || m[src] ? T(0) : y[src] * (gy[src] - dot) * scale;
  }
}

template <size_t Bytes>
struct ElementOfSize;
template <> struct ElementOfSize<1> { using type = uint8_t; };
template <> struct ElementOfSize<2> { using type = uint16_t; };
template <> struct ElementOfSize<4> { using type = uint32_t; };
template <> struct ElementOfSize<8> { using type = uint64_t; };

}  // namespace

void launch_cross_entropy(Scalar type, Scalar index_type, const void* logits, const void* targets, void* loss,
                          void* lse, int64_t N, int64_t V, int64_t ignore_index, cudaStream_t s) {
  if (N == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    with_index(index_type, [&](auto itag) {
      using I = decltype(itag);
      cross_entropy_kernel<T, I><<<static_cast<unsigned>(N), kThreads, 0, s>>>(
          static_cast<const T*>(logits), static_cast<const I*>(targets), static_cast<T*>(loss), static_cast<T*>(lse),
          V, ignore_index);
    });
  });
}

void launch_cross_entropy_backward(Scalar type, Scalar index_type, const void* logits, const void* targets,
                                   const void* lse, const void* grad_rows, void* grad, int64_t N, int64_t V,
                                   int64_t ignore_index, cudaStream_t s) {
  if (N * V == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    with_index(index_type, [&](auto itag) {
      using I = decltype(itag);
      cross_entropy_backward_kernel<T, I><<<grid_for(N * V), kThreads, 0, s>>>(
          static_cast<const T*>(logits), static_cast<const I*>(targets), static_cast<const T*>(lse),
          static_cast<const T*>(grad_rows), static_cast<T*>(grad), N, V, ignore_index);
    });
  });
}

void launch_index_select(size_t element_bytes, Scalar index_type, const void* x, const void* index, void* out,
                         int64_t outer, int64_t A, int64_t K, int64_t inner, cudaStream_t s) {
  const int64_t total = outer * K * inner;
  if (total == 0) return;
  auto run = [&](auto size_tag) {
    using E = typename ElementOfSize<decltype(size_tag)::value>::type;
    with_index(index_type, [&](auto itag) {
      using I = decltype(itag);
      index_select_kernel<E, I><<<grid_for(total), kThreads, 0, s>>>(
          static_cast<const E*>(x), static_cast<const I*>(index), static_cast<E*>(out), A, K, inner, total);
    });
  };
  switch (element_bytes) {
    case 1: run(std::integral_constant<size_t, 1>{}); break;
    case 2: run(std::integral_constant<size_t, 2>{}); break;
    case 4: run(std::integral_constant<size_t, 4>{}); break;
    default: run(std::integral_constant<size_t, 8>{}); break;
  }
}

void launch_index_add(Scalar type, Scalar index_type, void* dst, const void* index, const void* src, int64_t outer,
                      int64_t A, int64_t K, int64_t inner, int64_t* starts, int64_t* order, cudaStream_t s) {
  if (outer * K * inner == 0) return;
  auto* st = reinterpret_cast<unsigned long long*>(starts);
  cudaMemsetAsync(st, 0, static_cast<size_t>(A + 1) * sizeof(unsigned long long), s);
  with_index(index_type, [&](auto itag) {
    using I = decltype(itag);
    const I* idx = static_cast<const I*>(index);
    index_count_kernel<I><<<grid_for(K), kThreads, 0, s>>>(idx, K, st);
    index_scan_kernel<<<1, 1, 0, s>>>(st, A);
    index_order_kernel<I><<<grid_for(A), kThreads, 0, s>>>(idx, K, A, st, order);
  });
  const int64_t total = outer * A * inner;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    index_add_kernel<T><<<grid_for(total), kThreads, 0, s>>>(static_cast<T*>(dst), static_cast<const T*>(src), st,
                                                             order, A, K, inner, total);
  });
}

void launch_dropout_mask(Scalar type, void* out, int64_t n, double p, uint64_t seed, uint64_t counter,
                         cudaStream_t s) {
  if (n == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(out), n, p, seed, counter,
                                                       static_cast<T>(1.0 / (1.0 - p)));
  });
}

void launch_triangle_mask(void* out, int64_t rows, int64_t cols, int64_t diagonal, bool upper, cudaStream_t s) {
  if (rows * cols == 0) return;
  triangle_kernel<<<grid_for(rows * cols), kThreads, 0, s>>>(static_cast<uint8_t*>(out), rows, cols, diagonal, upper);
}

void launch_rel_attn_probs(Scalar type, const void* ac, const void* bd, const void* mask, void* p, int64_t rows,
                           int64_t T, int64_t K, double scale, cudaStream_t s) {
  if (rows * T == 0 || K == 0) return;
  with_float(type, [&](auto tag) {
    using S = decltype(tag);
    rel_attn_probs_kernel<S><<<static_cast<unsigned>(rows * T), kThreads, 0, s>>>(
        static_cast<const S*>(ac), static_cast<const S*>(bd), static_cast<const uint8_t*>(mask), static_cast<S*>(p), T,
        K, static_cast<S>(scale));
  });
}

void launch_rel_attn_probs_backward(Scalar type, const void* p, const void* gp, const void* mask, void* gac,
                                    void* gbd, int64_t rows, int64_t T, int64_t K, double scale, cudaStream_t s) {
  if (rows * T == 0 || K == 0) return;
  with_float(type, [&](auto tag) {
    using S = decltype(tag);
    rel_attn_probs_backward_kernel<S><<<static_cast<unsigned>(rows * T), kThreads, 0, s>>>(
        static_cast<const S*>(p), static_cast<const S*>(gp), static_cast<const uint8_t*>(mask), static_cast<S*>(gac),
        static_cast<S*>(gbd), T, K, static_cast<S>(scale));
  });
}

}  // namespace txl::cuda
