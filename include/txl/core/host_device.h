// TXL_HD marks small pure functions that both the host and CUDA kernels call (the
// counter-based RNG, the elementwise op table), so the two backends share one
// definition of each formula. It is empty outside nvcc.
#pragma once
#ifdef __CUDACC__
#define TXL_HD __host__ __device__
#else
#define TXL_HD
#endif
