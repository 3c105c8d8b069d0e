// The fused relative attention's row passes (backend/cpu/score_rows.h) against float64
// recomputations of the same rows: masked, scaled scores and their maximum; recomputed
// probabilities and sum_j p d. Rows of every length around the 16-lane vectors, with
// position rows read at every misalignment, and masks from none to all. This file is
// built with the engine's -march=native, so where the CPU has AVX-512 it checks the
// intrinsic kernels (and fast_exp16 against the scalar fast_exp); elsewhere the loops.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/score_rows.h"

using namespace txl::cpu;

namespace {

struct Row {
  std::vector<float> s, b_buf, d;
  std::vector<uint8_t> m;
  const float* b;
};

Row make_row(int64_t n, int64_t misalign, double masked_share, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 3.f);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Row r;
  r.s.resize(n);
  r.d.resize(n);
  r.m.resize(n);
  r.b_buf.resize(n + misalign);
  for (auto& x : r.s) x = nd(rng);
  for (auto& x : r.d) x = nd(rng);
  for (auto& x : r.b_buf) x = nd(rng);
  for (auto& x : r.m) x = u(rng) < masked_share ? 1 : 0;
  r.b = r.b_buf.data() + misalign;
  return r;
}

}  // namespace

TEST_CASE("score rows: masked scaled scores and their maximum", "[attention]") {
  const float k = 0.37f;
  for (int64_t n : {0, 1, 7, 15, 16, 17, 31, 33, 64, 100}) {
    for (int64_t mis : {0, 1, 5, 15}) {
      for (double share : {0.0, 0.3, 1.0}) {
        INFO("n " << n << " misalign " << mis << " masked " << share);
        Row r = make_row(n, mis, share, static_cast<uint32_t>(n * 131 + mis * 7 + share * 10));
        const std::vector<float> s0 = r.s;
        const float mx = masked_scores_row(r.s.data(), r.b, r.m.data(), n, k);
        double want_max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j) {
          if (r.m[j]) {
            REQUIRE(r.s[j] == -std::numeric_limits<float>::infinity());
            continue;
          }
          // One float add and one float multiply, as the kernel does: equal bit for bit.
          const float want = (s0[j] + r.b[j]) * k;
          REQUIRE(r.s[j] == want);
          want_max = std::max(want_max, static_cast<double>(want));
        }
        REQUIRE(static_cast<double>(mx) == want_max);
      }
    }
  }
}

TEST_CASE("score rows: recomputed probabilities and their dot product with dp", "[attention]") {
  const float k = 0.37f;
  for (int64_t n : {0, 1, 7, 15, 16, 17, 31, 33, 64, 100}) {
    for (int64_t mis : {0, 3, 15}) {
      for (double share : {0.0, 0.3, 1.0}) {
        INFO("n " << n << " misalign " << mis << " masked " << share);
        Row r = make_row(n, mis, share, static_cast<uint32_t>(n * 17 + mis * 3 + share * 10 + 1));
        const std::vector<float> s0 = r.s;
        // A log-sum-exp near the row's own, so that p stays in (0, 1] as in training.
        double lse = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j)
          if (!r.m[j]) lse = std::max(lse, (static_cast<double>(s0[j]) + r.b[j]) * k);
        const float lse_f = std::isinf(lse) ? -std::numeric_limits<float>::infinity() : static_cast<float>(lse + 0.5);
        const float dot = masked_probs_row(r.s.data(), r.b, r.m.data(), r.d.data(), n, k, lse_f);
        double want_dot = 0, scale_dot = 0;
        for (int64_t j = 0; j < n; ++j) {
          if (r.m[j]) {
            REQUIRE(r.s[j] == 0.0f);
            continue;
          }
          const double x = (static_cast<double>(s0[j]) + r.b[j]) * k - lse_f;
          const double p = std::exp(x);
          // The argument is formed in float: (s + b) k rounds to about 6e-8 of its size
          // (a few units here), then fast_exp's 2e-7.
          REQUIRE(std::abs(r.s[j] - p) <= p * (2e-7 + 1e-7 * (1 + std::abs(x))));
          want_dot += p * r.d[j];
          scale_dot += std::abs(p * r.d[j]);
        }
        REQUIRE(std::abs(dot - want_dot) <= 1e-6 * (scale_dot + 1e-30) + 1e-30);
      }
    }
  }
}

#if TXL_SCORE_ROWS_AVX512
TEST_CASE("score rows: fast_exp16 agrees with fast_exp, edges included", "[attention]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> xs = {0.f,    -0.f,   1.f,   -1.f,  88.f,   88.5f, 100.f, -87.f,
                           -87.5f, -100.f, 1e-8f, 20.5f, -20.5f, inf,   -inf,  nan};
  for (int i = 0; i < 2000; ++i) xs.push_back(-87.f + 175.f * static_cast<float>(i) / 2000.f);
  while (xs.size() % 16) xs.push_back(0.5f);
  for (size_t i = 0; i < xs.size(); i += 16) {
    alignas(64) float out[16];
    _mm512_store_ps(out, fast_exp16(_mm512_loadu_ps(xs.data() + i)));
    for (size_t l = 0; l < 16; ++l) {
      const float x = xs[i + l], want = fast_exp(x);
      INFO("x " << x);
      if (std::isnan(want)) {
        REQUIRE(std::isnan(out[l]));
      } else if (std::isinf(want) || want == 0.f) {
        REQUIRE(out[l] == want);
      } else {
        REQUIRE(std::abs(out[l] - want) <= 4e-7f * want);
      }
    }
  }
}
#endif
