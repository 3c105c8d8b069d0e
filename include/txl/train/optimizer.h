// Optimizers over a ParameterSet's flat arenas: Adam (L2 weight decay), AdamW
// (decoupled decay) and Adagrad, with PyTorch's update formulas, plus the global
// gradient-norm clip. State is a few flat tensors, saved by name in checkpoints.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "txl/config/config.h"
#include "txl/io/safetensors.h"
#include "txl/nn/parameters.h"

namespace txl {

// The norms of the global clip at max_norm (max_norm <= 0: no clip) in one pass over
// the gradients, per parameter in named() order.
struct GradientNorms {
  double total = 0;             // before clipping
  std::vector<double> squared;  // per parameter, after clipping
  double scale = 1;             // the clip's coefficient, not yet applied to the gradients
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr from the gradients in params.flat_grad().
  void step(ParameterSet& params, double lr) { step(params, lr, nullptr); }
  // The same, given the norms gradient_norms or clip_grad_norms measured: each
  // parameter's squared norm, so a per-tensor clip (Adagrad's) need not read the
  // gradients again, and the global clip's coefficient still to apply to them (Adam
  // multiplies each gradient by it as its update reads it; Adagrad scales them first).
  virtual void step(ParameterSet& params, double lr, const GradientNorms* norms) = 0;
  virtual NamedTensors state() const = 0;
  virtual void load_state(const std::map<std::string, Tensor>& state, const std::string& source) = 0;
  int64_t steps_taken() const { return t_; }

 protected:
  int64_t t_ = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const ParameterSet& params);

// Scales gradients so their global L2 norm is at most max_norm (PyTorch's
// clip_grad_norm_); returns the norm before clipping. max_norm <= 0 only measures.
double clip_grad_norm(ParameterSet& params, double max_norm);

// Measures only: the gradients stay as they are, and `scale` is for the optimizer
// step to apply as it reads them, which spares a pass over the gradient arena.
GradientNorms gradient_norms(ParameterSet& params, double max_norm);
// clip_grad_norm with the norms: the gradients are scaled here (scale = 1).
GradientNorms clip_grad_norms(ParameterSet& params, double max_norm);

// Learning rate of update number t (1-based): linear warmup to lr over warmup_steps,
// then constant, cosine decay to min_lr at total_steps, or inverse square root.
double scheduled_lr(const ScheduleConfig& s, double lr, int64_t t, int64_t total_steps);

}  // namespace txl
