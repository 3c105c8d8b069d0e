// Flat-arena optimizer updates: each is one pass of a backend kernel over all
// parameters (Adagrad: over each parameter's segment), on the parameters' device.
#include "txl/train/optimizer.h"

#include <cmath>

#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/ops/ops.h"

namespace txl {

namespace {

constexpr double kPi = 3.14159265358979323846;

// The saved step count: a whole number >= 0 (a corrupt file may hold NaN or 1e300, whose
// conversion to an integer would be undefined).
int64_t saved_step_count(const Tensor& t, const std::string& source, const char* key) {
  const double v = t.item();
  TXL_CHECK(std::isfinite(v) && v >= 0 && v <= 9.007199254740992e15 && v == std::floor(v),
            "{}: optimizer state '{}' must be a whole number >= 0, got {}", source, key, v);
  return static_cast<int64_t>(v);
}

// A dense copy of saved optimizer state on the parameters' device.
Tensor state_copy(const Tensor& saved, Device device) {
  Tensor c = Tensor::empty(saved.shape(), saved.dtype(), device);
  copy_(c, saved);
  return c;
}

class Adam final : public Optimizer {
 public:
  Adam(const OptimizerConfig& c, const ParameterSet& p, bool decoupled)
      : cfg_(c),
        decoupled_(decoupled),
        m_(Tensor::zeros({p.numel()}, p.dtype(), p.device())),
        v_(Tensor::zeros({p.numel()}, p.dtype(), p.device())) {}

  void step(ParameterSet& params, double lr, const GradientNorms* norms) override {
    ++t_;
    AdamHyper h;
    h.lr = lr;
    h.grad_scale = norms ? norms->scale : 1.0;
    h.beta1 = cfg_.betas[0];
    h.beta2 = cfg_.betas[1];
    h.eps = cfg_.eps;
    h.weight_decay = cfg_.weight_decay;
    h.step_size = lr / (1.0 - std::pow(h.beta1, static_cast<double>(t_)));
    h.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(h.beta2, static_cast<double>(t_)));
    h.decoupled = decoupled_;
    Tensor& w = params.flat_data();
    const Tensor w_bf16 = bf16_copy_for_update(w);
    backend_of(w).adam_update(w, params.flat_grad(), m_, v_, h, w_bf16);
    if (w_bf16.defined()) bf16_copy_updated(w);
  }

  NamedTensors state() const override {
    return {{"adam.m", m_}, {"adam.v", v_}, {"adam.t", Tensor::from_vector<int64_t>({1}, {t_})}};
  }

  void load_state(const std::map<std::string, Tensor>& s, const std::string& source) override {
    for (const char* k : {"adam.m", "adam.v", "adam.t"})
      TXL_CHECK(s.count(k), "{}: optimizer state lacks '{}' (was it saved by another optimizer?)", source, k);
    TXL_CHECK(s.at("adam.m").shape() == m_.shape() && s.at("adam.v").shape() == v_.shape() &&
                  s.at("adam.m").dtype() == m_.dtype() && s.at("adam.v").dtype() == v_.dtype(),
              "{}: optimizer state has shape {}, the model needs {}", source, shape_str(s.at("adam.m").shape()),
              shape_str(m_.shape()));
    m_ = state_copy(s.at("adam.m"), m_.device());
    v_ = state_copy(s.at("adam.v"), v_.device());
    t_ = saved_step_count(s.at("adam.t"), source, "adam.t");
  }

 private:
  OptimizerConfig cfg_;
  bool decoupled_;
  Tensor m_, v_;
};

// Adagrad; with clip > 0 the reference's AdagradWithGradClip (MODELS.md §2.8): each
// parameter tensor's step is scaled by min(1, clip / |g|) while the accumulator takes
// the raw squared gradient; eps is added after the square root.
class Adagrad final : public Optimizer {
 public:
  Adagrad(const OptimizerConfig& c, const ParameterSet& p)
      : cfg_(c), sum_(Tensor::zeros({p.numel()}, p.dtype(), p.device())) {
    const int64_t base = p.named().empty() ? 0 : p.named().front().second.offset();
    int64_t end = 0;
    covers_arena_ = true;
    for (const auto& [name, t] : p.named()) {
      segments_.push_back({t.offset() - base, t.numel()});
      covers_arena_ = covers_arena_ && segments_.back().first == end;
      end = segments_.back().first + segments_.back().second;
    }
    covers_arena_ = covers_arena_ && base == 0 && end == p.numel();
  }

  void step(ParameterSet& params, double lr, const GradientNorms* norms) override {
    ++t_;
    const double wd = cfg_.weight_decay, clip = cfg_.clip;
    Tensor& w = params.flat_data();
    Tensor& g = params.flat_grad();
    Backend& be = backend_of(w);
    if (norms && norms->scale != 1.0) scale_(g, norms->scale);
    // The clip measures g + wd * w: the caller's norms of g serve only without decay.
    const std::vector<double>* grad_squared = norms ? &norms->squared : nullptr;
    const bool given = grad_squared != nullptr && wd == 0.0 && grad_squared->size() == segments_.size();
    // The segments cover the arena, so their copies together make the whole bf16 copy.
    const Tensor w_bf16 = covers_arena_ ? bf16_copy_for_update(w) : Tensor();
    for (size_t i = 0; i < segments_.size(); ++i) {
      const auto [begin, count] = segments_[i];
      Tensor ws = narrow(w, 0, begin, count), gs = narrow(g, 0, begin, count), ss = narrow(sum_, 0, begin, count);
      const Tensor cs = w_bf16.defined() ? narrow(w_bf16, 0, begin, count) : Tensor();
      double clr = lr;
      if (clip > 0) {
        const double norm = std::sqrt(given ? (*grad_squared)[i] : be.squared_norm(gs, ws, wd));
        if (norm > clip) clr *= clip / (norm + 1e-10);
      }
      be.adagrad_update(ws, gs, ss, clr, cfg_.eps, wd, cs);
    }
    if (w_bf16.defined()) bf16_copy_updated(w);
  }

  NamedTensors state() const override {
    return {{"adagrad.sum", sum_}, {"adagrad.t", Tensor::from_vector<int64_t>({1}, {t_})}};
  }

  void load_state(const std::map<std::string, Tensor>& s, const std::string& source) override {
    for (const char* k : {"adagrad.sum", "adagrad.t"})
      TXL_CHECK(s.count(k), "{}: optimizer state lacks '{}' (was it saved by another optimizer?)", source, k);
    TXL_CHECK(s.at("adagrad.sum").shape() == sum_.shape() && s.at("adagrad.sum").dtype() == sum_.dtype(),
              "{}: optimizer state has shape {}, the model needs {}", source, shape_str(s.at("adagrad.sum").shape()),
              shape_str(sum_.shape()));
    sum_ = state_copy(s.at("adagrad.sum"), sum_.device());
    t_ = saved_step_count(s.at("adagrad.t"), source, "adagrad.t");
  }

 private:
  OptimizerConfig cfg_;
  Tensor sum_;
  std::vector<std::pair<int64_t, int64_t>> segments_;  // (offset, numel) of each parameter tensor
  bool covers_arena_ = false;                          // back to back, from 0 to the arena's end
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const ParameterSet& params) {
  if (cfg.name == "adam") return std::make_unique<Adam>(cfg, params, false);
  if (cfg.name == "adamw") return std::make_unique<Adam>(cfg, params, true);
  if (cfg.name == "adagrad") return std::make_unique<Adagrad>(cfg, params);
  TXL_FAIL("train.optimizer.name: expected one of adam, adamw, adagrad, got \"{}\"", cfg.name);
}

double clip_grad_norm(ParameterSet& params, double max_norm) { return clip_grad_norms(params, max_norm).total; }

GradientNorms clip_grad_norms(ParameterSet& params, double max_norm) {
  GradientNorms n = gradient_norms(params, max_norm);
  if (n.scale != 1.0) scale_(params.flat_grad(), n.scale);
  n.scale = 1.0;
  return n;
}

GradientNorms gradient_norms(ParameterSet& params, double max_norm) {
  Tensor& g = params.flat_grad();
  Backend& be = backend_of(g);
  GradientNorms n;
  n.squared.reserve(params.named().size());
  double sum = 0;
  for (const auto& [name, p] : params.named()) {
    n.squared.push_back(
        be.squared_norm(narrow(g, 0, p.offset() - params.flat_data().offset(), p.numel()), Tensor(), 0.0));
    sum += n.squared.back();
  }
  n.total = std::sqrt(sum);
  const double coef = max_norm / (n.total + 1e-6);
  if (max_norm > 0.0 && coef < 1.0) {
    n.scale = coef;
    for (double& s : n.squared) s *= coef * coef;
  }
  return n;
}

double scheduled_lr(const ScheduleConfig& s, double lr, int64_t t, int64_t total_steps) {
  const double w = static_cast<double>(s.warmup_steps);
  if (s.name == "inv_sqrt") {
    // The reference's LambdaLR: t / warmup^1.5 during warmup, then 1 / sqrt(t).
    if (s.warmup_steps == 0) return lr / std::sqrt(static_cast<double>(std::max<int64_t>(t, 1)));
    return t <= s.warmup_steps ? lr * t / std::pow(w, 1.5) : lr / std::sqrt(static_cast<double>(t));
  }
  if (s.warmup_steps > 0 && t <= s.warmup_steps) return lr * static_cast<double>(t) / w;
  if (s.name == "constant") return lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - s.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(t - s.warmup_steps) / span);
  return s.min_lr + 0.5 * (lr - s.min_lr) * (1.0 + std::cos(kPi * progress));
}

}  // namespace txl
