// One place that sizes the OpenMP pool shared by our kernels and oneDNN (both run on
// the same GNU OpenMP runtime, so one setting governs both and nothing nests).
#pragma once

namespace txl {

// requested > 0 wins; else TXL_NUM_THREADS; else the number of cores. Returns the count.
// The most threads configure_threads accepts: 4 per core this process may run on, at
// least 16.
int thread_limit();
int configure_threads(int requested = 0);
int num_threads();

}  // namespace txl
