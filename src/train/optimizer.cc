// Flat-arena optimizer updates. Each update is one OpenMP pass over all parameters.
#include "txl/train/optimizer.h"

#include <omp.h>

#include <cmath>
#include <cstring>

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

template <class F>
void for_each_float(ParameterSet& params, F&& f) {
  dispatch_float(params.dtype(), "optimizer", [&](auto tag) {
    using T = decltype(tag);
    f(params.flat_data().data<T>(), params.flat_grad().data<T>(), params.numel(), T{});
  });
}

class Adam final : public Optimizer {
 public:
  Adam(const OptimizerConfig& c, const ParameterSet& p, bool decoupled)
      : cfg_(c), decoupled_(decoupled), m_(Tensor::zeros({p.numel()}, p.dtype())), v_(Tensor::zeros({p.numel()}, p.dtype())) {}

  void step(ParameterSet& params, double lr) override {
    ++t_;
    const double b1 = cfg_.betas[0], b2 = cfg_.betas[1], eps = cfg_.eps, wd = cfg_.weight_decay;
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t_));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(t_)));
    const double step_size = lr / bc1;
    const bool decoupled = decoupled_;
    for_each_float(params, [&](auto* w, auto* g, int64_t n, auto tag) {
      using T = decltype(tag);
      T* m = m_.data<T>();
      T* v = v_.data<T>();
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        T gi = g[i];
        if (decoupled) {
          w[i] *= static_cast<T>(1.0 - lr * wd);
        } else if (wd != 0.0) {
          gi += static_cast<T>(wd) * w[i];
        }
        m[i] = static_cast<T>(b1) * m[i] + static_cast<T>(1.0 - b1) * gi;
        v[i] = static_cast<T>(b2) * v[i] + static_cast<T>(1.0 - b2) * gi * gi;
        const T denom = std::sqrt(v[i]) / static_cast<T>(bc2_sqrt) + static_cast<T>(eps);
        w[i] -= static_cast<T>(step_size) * m[i] / denom;
      }
    });
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
    m_ = contiguous_copy_of(s.at("adam.m"));
    v_ = contiguous_copy_of(s.at("adam.v"));
    t_ = saved_step_count(s.at("adam.t"), source, "adam.t");
  }

 private:
  static Tensor contiguous_copy_of(const Tensor& t) {
    Tensor c = Tensor::empty(t.shape(), t.dtype());
    std::memcpy(c.raw_data(), t.raw_data(), t.numel() * dtype_size(t.dtype()));
    return c;
  }
  OptimizerConfig cfg_;
  bool decoupled_;
  Tensor m_, v_;
};

// Adagrad; with clip > 0 the reference's AdagradWithGradClip (MODELS.md §2.8): each
// parameter tensor's step is scaled by min(1, clip / |g|) while the accumulator takes
// the raw squared gradient; eps is added after the square root.
class Adagrad final : public Optimizer {
 public:
  Adagrad(const OptimizerConfig& c, const ParameterSet& p) : cfg_(c), sum_(Tensor::zeros({p.numel()}, p.dtype())) {
    const int64_t base = p.named().empty() ? 0 : p.named().front().second.offset();
    for (const auto& [name, t] : p.named()) segments_.push_back({t.offset() - base, t.numel()});
  }

  void step(ParameterSet& params, double lr) override {
    ++t_;
    const double eps = cfg_.eps;
    const double wd = cfg_.weight_decay;
    const double clip = cfg_.clip;
    for_each_float(params, [&](auto* w, auto* g, int64_t n, auto tag) {
      using T = decltype(tag);
      T* s = sum_.data<T>();
      for (const auto& segment : segments_) {
        // Plain locals, not a structured binding: clang 14 cannot capture bindings
        // into the OpenMP regions below.
        const int64_t begin = segment.first, count = segment.second;
        T* ws = w + begin;
        T* gs = g + begin;
        T* ss = s + begin;
        double clr = lr;
        if (clip > 0) {
          double sq = 0.0;
#pragma omp parallel for simd reduction(+ : sq) schedule(static)
          for (int64_t i = 0; i < count; ++i) {
            const double gi = static_cast<double>(gs[i]) + wd * static_cast<double>(ws[i]);
            sq += gi * gi;
          }
          const double norm = std::sqrt(sq);
          if (norm > clip) clr *= clip / (norm + 1e-10);
        }
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < count; ++i) {
          T gi = gs[i] + static_cast<T>(wd) * ws[i];
          ss[i] += gi * gi;
          ws[i] -= static_cast<T>(clr) * gi / (std::sqrt(ss[i]) + static_cast<T>(eps));
        }
      }
    });
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
    std::memcpy(sum_.raw_data(), s.at("adagrad.sum").raw_data(), sum_.numel() * dtype_size(sum_.dtype()));
    t_ = saved_step_count(s.at("adagrad.t"), source, "adagrad.t");
  }

 private:
  OptimizerConfig cfg_;
  Tensor sum_;
  std::vector<std::pair<int64_t, int64_t>> segments_;  // (offset, numel) of each parameter tensor
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const ParameterSet& params) {
  if (cfg.name == "adam") return std::make_unique<Adam>(cfg, params, false);
  if (cfg.name == "adamw") return std::make_unique<Adam>(cfg, params, true);
  if (cfg.name == "adagrad") return std::make_unique<Adagrad>(cfg, params);
  TXL_FAIL("train.optimizer.name: expected one of adam, adamw, adagrad, got \"{}\"", cfg.name);
}

double clip_grad_norm(ParameterSet& params, double max_norm) {
  double total = 0.0;
  dispatch_float(params.dtype(), "clip_grad_norm", [&](auto tag) {
    using T = decltype(tag);
    T* g = params.flat_grad().data<T>();
    const int64_t n = params.numel();
    double sq = 0.0;
#pragma omp parallel for simd reduction(+ : sq) schedule(static)
    for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    total = std::sqrt(sq);
    const double coef = max_norm / (total + 1e-6);
    if (max_norm > 0.0 && coef < 1.0) {
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) g[i] *= static_cast<T>(coef);
    }
  });
  return total;
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
