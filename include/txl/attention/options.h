// The typed options of an attention variant: each variant publishes a schema (name,
// type through its default value, range, allowed strings, help), the config loader
// validates `model.attention.<key>` against it, and the variant reads the resolved
// values. Defaults come from the schema, so a missing key always has a value.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace txl {

using OptionValue = std::variant<bool, int64_t, double, std::string>;

struct OptionSpec {
  std::string name;
  OptionValue default_value;  // also fixes the type
  double min = -std::numeric_limits<double>::infinity();  // inclusive bounds of numbers
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // allowed strings; empty: any
  std::string help;
  // True when a run may change it against its checkpoint (--init, --resume): it neither
  // shapes parameters nor defines what they compute (a loss coefficient, a cache policy).
  bool runtime = false;
};

// The `fused` option of every variant with a fused attention core (default true): the
// core runs in one pass per (batch, head) over blocks of queries, with no [B, H, T, K]
// tensors; false runs the unfused ops (for comparison, or to read the probabilities).
OptionSpec fused_attention_option();

// The `model.attention` section: the variant's registered name and its options,
// resolved (every key of the variant's schema present once validated).
struct AttentionConfig {
  std::string type = "transformer_xl";
  std::map<std::string, OptionValue> options;

  bool operator==(const AttentionConfig&) const = default;
};

// "an integer >= 1", "a number in [0, 1]", "true or false", "one of a, b".
std::string option_expected_text(const OptionSpec& spec);
// The value as YAML would show it ("0.5", "true", "\"mean\"").
std::string option_value_text(const OptionValue& v);
// Problem text if `v` breaks the spec's type, range or choices; empty when fine.
std::string option_problem(const OptionSpec& spec, const OptionValue& v);

}  // namespace txl
