// `txl generate CHECKPOINT [--prompt TEXT] [--tokens N] [--temperature X] [--top-k K] [--seed S]`
// The prompt runs as segments of tgt_len; afterwards each new token is one position
// of compute attending to the carried memory.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <iostream>

#include "commands.h"
#include "txl/core/threads.h"
#include "txl/ops/ops.h"
#include "txl/train/checkpoint.h"

namespace txl::cli {

int generate(const Context& ctx, const std::vector<std::string>& args) {
  std::string path, prompt = "\n";
  int64_t n_tokens = 200, top_k = 0;
  double temperature = 1.0;
  uint64_t seed = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      TXL_CHECK(i + 1 < args.size(), "generate: {} needs a value", a);
      return args[++i];
    };
    if (a == "--prompt") prompt = value();
    else if (a == "--tokens") n_tokens = parse_positive_int(value(), a);
    else if (a == "--top-k") top_k = parse_positive_int(value(), a);
    else if (a == "--seed") {
      const std::string& v = value();
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seed);
      TXL_CHECK(!v.empty() && ec == std::errc() && end == v.data() + v.size(),
                "--seed: expected an integer from 0 to 18446744073709551615, got '{}'", v);
    } else if (a == "--temperature") {
      const std::string& v = value();
      char* end = nullptr;
      temperature = std::strtod(v.c_str(), &end);
      TXL_CHECK(end && *end == '\0' && temperature > 0 && std::isfinite(temperature),
                "--temperature: expected a positive finite number, got '{}'", v);
    } else if (a.rfind("--", 0) == 0) {
      TXL_FAIL("generate: unknown option '{}'", a);
    } else {
      TXL_CHECK(path.empty(), "generate: two checkpoints given ('{}' and '{}'); generate takes one", path, a);
      path = a;
    }
  }
  TXL_CHECK(!path.empty(), "generate: missing CHECKPOINT (see txl --help)");
  TXL_CHECK(!prompt.empty(), "--prompt: must not be empty");
  configure_threads(ctx.threads);
  NoGradGuard no_grad;
  Checkpoint ck = load_checkpoint(path);
  TXL_CHECK(ck.model->attention_spec().caps.incremental_decoding,
            "generate: attention type {} cannot decode one token at a time (capability incremental_decoding missing)",
            ck.config.model.attention.type);
  const ModelConfig& mc = ck.config.model;
  // Each generated token sees as much context as the last position of a training segment.
  ck.model->set_lengths(mc.mem_len + mc.tgt_len - 1, mc.same_length, mc.clamp_len);
  std::vector<int32_t> ids = ck.vocab.encode(prompt, "--prompt");

  std::vector<Tensor> mems;
  Tensor last_logits;
  ForwardOptions fo;
  fo.want_logits = true;
  fo.want_loss = false;
  auto feed = [&](const std::vector<int32_t>& seg) {
    std::vector<int64_t> v(seg.begin(), seg.end());
    ForwardResult out = ck.model->forward(Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size()), 1}, v), Tensor(),
                                          mems, fo);
    mems = std::move(out.mems);
    last_logits = narrow(out.logits, 0, out.logits.shape()[0] - 1, 1);
  };
  for (size_t at = 0; at < ids.size(); at += mc.tgt_len)
    feed(std::vector<int32_t>(ids.begin() + at, ids.begin() + std::min(ids.size(), at + mc.tgt_len)));

  std::cout << prompt << std::flush;
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::vector<double> logits = last_logits.to_doubles();
    std::vector<double> scaled(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) scaled[i] = logits[i] / temperature;
    if (top_k > 0 && top_k < static_cast<int64_t>(scaled.size())) {
      std::vector<double> sorted = scaled;
      std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<>());
      const double kth = sorted[top_k - 1];
      for (double& s : scaled)
        if (s < kth) s = -INFINITY;
    }
    const double m = *std::max_element(scaled.begin(), scaled.end());
    double total = 0;
    for (double& s : scaled) total += (s = std::exp(s - m));
    double u = uniform01(counter_hash(seed, 5, static_cast<uint64_t>(t))) * total;
    int32_t next = static_cast<int32_t>(scaled.size()) - 1;
    for (size_t i = 0; i < scaled.size(); ++i) {
      u -= scaled[i];
      if (u < 0) {
        next = static_cast<int32_t>(i);
        break;
      }
    }
    std::cout << ck.vocab.decode({next}) << std::flush;
    feed({next});
  }
  std::cout << "\n";
  return 0;
}

}  // namespace txl::cli
