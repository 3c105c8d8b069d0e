#include "txl/bench/train_bench.h"

#include <algorithm>
#include <chrono>

#include "txl/core/allocator.h"
#include "txl/core/threads.h"
#include "txl/models/transformer_xl.h"
#include "txl/ops/ops.h"
#include "txl/train/optimizer.h"

namespace txl {

nlohmann::json run_train_bench(const Config& cfg, int64_t vocab_size, int warmup, int repeats) {
  TransformerXL model(cfg.model, vocab_size);
  model.init_weights(static_cast<uint64_t>(cfg.train.seed));
  auto optimizer = make_optimizer(cfg.train.optimizer, model.params());
  const int64_t T = cfg.model.tgt_len, B = cfg.train.batch_size;
  Generator gen(3);
  std::vector<int64_t> ids(static_cast<size_t>((T + 1) * B));
  for (auto& v : ids) v = static_cast<int64_t>(uniform01(counter_hash(1, 9, gen.take(1))) * vocab_size);
  Tensor input = Tensor::from_vector<int64_t>({T, B}, std::vector<int64_t>(ids.begin(), ids.begin() + T * B));
  Tensor target = Tensor::from_vector<int64_t>({T, B}, std::vector<int64_t>(ids.begin() + B, ids.end()));
  std::vector<Tensor> mems;
  auto step = [&](int64_t i) {
    model.params().zero_grad();
    ForwardResult out = model.forward(input, target, mems, ForwardOptions{true, static_cast<uint64_t>(i)});
    backward(mean(out.loss));
    clip_grad_norm(model.params(), cfg.train.clip);
    optimizer->step(model.params(), 1e-4);
    mems = std::move(out.mems);
  };
  // Enough warm-up steps to fill the memory to mem_len, so timed steps see full length.
  const int64_t fill = cfg.model.mem_len > 0 ? (cfg.model.mem_len + T - 1) / T : 0;
  for (int64_t i = 0; i < std::max<int64_t>(warmup, fill + 1); ++i) step(i);
  HostAllocator::instance().reset_counters();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step(1000 + i);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  AllocatorStats st = HostAllocator::instance().stats();
  return {{"ms_per_step", med},
          {"tokens_per_s", T * B / (med / 1000.0)},
          {"min_ms", ms.front()},
          {"max_ms", ms.back()},
          {"repeats", repeats},
          {"threads", num_threads()},
          {"tokens_per_step", T * B},
          {"parameters", model.params().numel()},
          {"allocator_hits", st.hits},
          {"allocator_misses", st.misses},
          {"peak_bytes", st.peak_bytes_in_use}};
}

}  // namespace txl
