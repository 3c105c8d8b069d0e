#include "txl/attention/options.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace txl {

namespace {

std::string number_text(double v) {
  std::string s = fmt::format("{}", v);
  return s;
}

std::string bounds_text(const OptionSpec& s) {
  const bool lo = std::isfinite(s.min), hi = std::isfinite(s.max);
  if (lo && hi) return fmt::format(" in [{}, {}]", number_text(s.min), number_text(s.max));
  if (lo) return " >= " + number_text(s.min);
  if (hi) return " <= " + number_text(s.max);
  return "";
}

}  // namespace

OptionSpec fused_attention_option() {
  return {"fused",
          true,
          -std::numeric_limits<double>::infinity(),
          std::numeric_limits<double>::infinity(),
          {},
          "attention core in one pass per (batch, head) over blocks of queries (scores, mask, softmax, weighted sum) "
          "without [B, H, T, K] tensors; false: the unfused ops",
          true};
}

std::string option_expected_text(const OptionSpec& spec) {
  return std::visit(
      [&](const auto& d) -> std::string {
        using T = std::decay_t<decltype(d)>;
        if constexpr (std::is_same_v<T, bool>) return "true or false";
        if constexpr (std::is_same_v<T, int64_t>) return "an integer" + bounds_text(spec);
        if constexpr (std::is_same_v<T, double>) return "a number" + bounds_text(spec);
        if constexpr (std::is_same_v<T, std::string>) {
          if (spec.choices.empty()) return "a string";
          std::string out = "one of ";
          for (size_t i = 0; i < spec.choices.size(); ++i) out += (i ? ", " : "") + spec.choices[i];
          return out;
        }
      },
      spec.default_value);
}

std::string option_value_text(const OptionValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        if constexpr (std::is_same_v<T, int64_t>) return std::to_string(x);
        if constexpr (std::is_same_v<T, double>) {
          std::string s = fmt::format("{}", x);
          if (std::isfinite(x) && s.find_first_of(".e") == std::string::npos) s += ".0";
          return s;
        }
        if constexpr (std::is_same_v<T, std::string>) return "\"" + x + "\"";
      },
      v);
}

std::string option_problem(const OptionSpec& spec, const OptionValue& v) {
  const std::string expected = "expected " + option_expected_text(spec) + ", got " + option_value_text(v);
  if (v.index() != spec.default_value.index()) return expected;
  if (const auto* i = std::get_if<int64_t>(&v)) {
    if (static_cast<double>(*i) < spec.min || static_cast<double>(*i) > spec.max) return expected;
  } else if (const auto* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d) || *d < spec.min || *d > spec.max) return expected;
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end())
      return expected;
  }
  return "";
}

}  // namespace txl
