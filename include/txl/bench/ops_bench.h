// `txl bench ops`: GEMM throughput on Transformer-XL layer shapes against oneDNN's own
// peak, and softmax / layer_norm / cross-entropy bandwidth against memcpy, all
// measured in one run. Results come back as JSON so scripts can join other engines.
#pragma once
#include <nlohmann/json.hpp>

#include "txl/backend/precision.h"
#include "txl/core/tensor.h"

namespace txl {

struct OpsBenchOptions {
  int repeats = 20;     // timed repetitions per case (median reported)
  bool quick = false;   // fewer shapes and repeats, for smoke tests
  bool bf16 = false;    // GEMMs on bf16 operands (fp32 accumulation), against the bf16 peak
};

nlohmann::json run_ops_bench(const OpsBenchOptions& opt);
// oneDNN's own matmul on an n x n x n problem, in GFLOP/s: the GEMM ceiling for that
// precision (bf16: bf16 inputs, fp32 output).
double dnnl_peak_gflops(int repeats, int n, MatmulPrecision precision = MatmulPrecision::fp32);
// The same ceiling on any device: oneDNN's on the CPU, the device backend's own product
// (cuBLAS) on random operands on a GPU.
double device_peak_gflops(Device device, int repeats, int n, MatmulPrecision precision);

// How many operand sets a "cold" product measurement takes in turn, each set being the
// operands a and b (their own dtype) and an output of output_elements (fp32 unless
// told): together about 256 MB, beyond this machine's caches in effect (products slow
// down from 64 MB to 256 MB of rotation here), so each product reads operands and writes
// an output that other work has evicted, as a model's products do.
int cold_set_count(const Tensor& a, const Tensor& b, int64_t output_elements, DType output = DType::f32);

// The human-readable table of a run_ops_bench result.
std::string format_ops_bench(const nlohmann::json& result);

}  // namespace txl
