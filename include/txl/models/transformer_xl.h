// Transformer-XL (kimiyoung MemTransformerLM, attn_type 0) for character data: tied
// embedding and output weight with an untied output bias, relative positions with
// the rel-shift, shared r_w_bias / r_r_bias, post-LN or pre-LN, segment memories.
// Parameter names are the reference state-dict names (MODELS.md §9.1).
#pragma once
#include <cstdint>
#include <vector>

#include "txl/config/config.h"
#include "txl/nn/parameters.h"

namespace txl {

struct ForwardOptions {
  bool training = false;
  uint64_t seed = 0;     // dropout stream for this forward (derived from run seed and step)
  bool want_logits = false;
  bool want_loss = true;
};

struct ForwardResult {
  Tensor loss;    // [T, B] per-token nll (nats), when a target was given
  Tensor logits;  // [T, B, V] when asked for
  std::vector<Tensor> mems;  // L + 1 new memories [M', B, D], detached
};

class TransformerXL {
 public:
  TransformerXL(const ModelConfig& cfg, int64_t vocab_size, DType dtype = DType::f32);

  // The reference initialisation (MODELS.md §1.10), from a seed.
  void init_weights(uint64_t seed);
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  const ModelConfig& config() const { return cfg_; }
  int64_t vocab_size() const { return vocab_; }
  DType dtype() const { return dtype_; }

  // Evaluation may use other memory settings than training (weights do not depend on them).
  void set_lengths(int64_t mem_len, bool same_length, int64_t clamp_len);

  // input/target [T, B] of i64; mems: empty, or L + 1 tensors [M, B, D].
  ForwardResult forward(const Tensor& input, const Tensor& target, const std::vector<Tensor>& mems,
                        const ForwardOptions& opt) const;

  // Closed-form parameter count (MODELS.md §9.2b).
  static int64_t parameter_count(const ModelConfig& cfg, int64_t vocab_size);

 private:
  struct Ctx;
  Tensor attention(int64_t l, const Tensor& w, const Tensor& r, const Tensor& mem, const Tensor& mask, Ctx& ctx) const;
  Tensor feed_forward(int64_t l, const Tensor& x, Ctx& ctx) const;
  Tensor positional(int64_t klen) const;
  Tensor attention_mask(int64_t qlen, int64_t mlen) const;
  std::vector<Tensor> update_mems(const std::vector<Tensor>& hids, const std::vector<Tensor>& mems, int64_t mlen,
                                  int64_t qlen) const;
  const Tensor& p(const std::string& name) const { return params_.get(name); }

  ModelConfig cfg_;
  int64_t vocab_;
  DType dtype_;
  ParameterSet params_;
};

}  // namespace txl
