// The language model: embedding, a stack of (attention, feed-forward) layers and the
// output layer, with the attention chosen by name from the registry
// (model.attention.type). The stack follows the reference the variant reproduces
// (StackStyle): kimiyoung's MemTransformerLM for Transformer-XL-style variants,
// facebookresearch's TransformerSeq for adaptive span / all-attention. Parameter names
// are those references' state-dict names (MODELS.md §9).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "txl/attention/attention.h"
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
  Tensor loss;      // [T, B] per-token nll (nats), when a target was given
  Tensor logits;    // [T, B, V] when asked for
  Tensor aux_loss;  // scalar the variant adds to the training loss (span loss); may be undefined
  std::vector<Tensor> mems;  // the segment state for the next forward (memories, caches), detached
};

class LanguageModel {
 public:
  LanguageModel(const ModelConfig& cfg, int64_t vocab_size, DType dtype = DType::f32);

  // The reference initialisation of the stack and the variant, from a seed.
  void init_weights(uint64_t seed);
  // Moves the parameters to `device` (initialise first: initialisation draws on the
  // host, so every device starts from the same weights). Inputs then go to the same
  // device; the activations, memories and losses follow.
  void to(Device device) { params_.to(device); }
  Device device() const { return params_.device(); }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  const ModelConfig& config() const { return cfg_; }
  const AttentionSpec& attention_spec() const { return *spec_; }
  const Attention& attention() const { return *attn_; }
  int64_t vocab_size() const { return vocab_; }
  DType dtype() const { return dtype_; }

  // Evaluation may use other memory settings than training (weights do not depend on them).
  void set_lengths(int64_t mem_len, bool same_length, int64_t clamp_len);

  // input/target [T, B] of i64; mems: empty at the start of the streams, else the
  // previous forward's ForwardResult::mems.
  ForwardResult forward(const Tensor& input, const Tensor& target, const std::vector<Tensor>& mems,
                        const ForwardOptions& opt) const;

  // After each optimizer step: the variant's constraints (adaptive span clamps spans).
  void after_step() { attn_->after_step(params_); }

  // Whether a model key ("n_layer", "attention.span", ...) defines the parameters or
  // what they compute, so a run from a checkpoint cannot change it; lengths, dropout
  // and runtime attention options (OptionSpec::runtime) can change.
  static bool is_architecture_key(const ModelConfig& cfg, const std::string& key);

  // Closed-form parameter count (MODELS.md §9.2b), to check against params().numel();
  // needs no parameters allocated.
  static int64_t parameter_count(const ModelConfig& cfg, int64_t vocab_size);

  // Every parameter's name and shape in declaration order, without allocating any
  // (load_checkpoint compares them with the weights file before building the model).
  static std::vector<std::pair<std::string, Shape>> parameter_shapes(const ModelConfig& cfg, int64_t vocab_size);

 private:
  struct Names;
  // The stack's and the variant's parameters; `cfg` has its attention defaults resolved.
  static ParamTable parameter_table(const ModelConfig& cfg, int64_t vocab_size, StackStyle style,
                                    const Attention& attn);
  Tensor feed_forward(int64_t l, const Tensor& x, ForwardContext& ctx) const;
  const Tensor& p(const std::string& name) const { return params_.get(name); }

  ModelConfig cfg_;
  int64_t vocab_;
  DType dtype_;
  const AttentionSpec* spec_;
  std::unique_ptr<Attention> attn_;
  std::vector<ParamInit> inits_;  // per parameter, in declaration order
  ParameterSet params_;
};

}  // namespace txl
