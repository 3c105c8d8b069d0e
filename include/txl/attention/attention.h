// The attention registry. Each variant lives in one file under src/attention/ and
// registers itself (TXL_REGISTER_ATTENTION) with a name, its typed options, declared
// capabilities, the layer stack it follows and a factory. The model, the config
// loader and the CLI only ever go through this header: adding a variant touches its
// own file and its tests.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "txl/attention/options.h"
#include "txl/config/config.h"
#include "txl/core/tensor.h"
#include "txl/nn/parameters.h"

namespace txl {

struct AttentionCaps {
  bool causal_exact = true;           // no query sees a later token, by construction
  bool segment_memory = false;        // carries state (memories, caches) across segments
  bool persistent_memory = false;     // learned key/value vectors beside the context
  bool compressed_memory = false;     // a compressed memory of evicted states
  bool aux_loss = false;              // adds a loss term during training
  bool incremental_decoding = false;  // can generate one token at a time from its state
};

// The layer stack around the attention, after the reference each family reproduces.
enum class StackStyle {
  // kimiyoung MemTransformerLM (MODELS.md §1): embedding x sqrt(D), output tied to the
  // embedding with its own bias, dropout on embeddings, attention output and both FF
  // linears, post- or pre-LN, weights N(0, init_std).
  txl,
  // facebookresearch TransformerSeq (§2): no embedding scale, untied output with bias,
  // dropout only on the FF activation (and attention probabilities), post-LN, PyTorch
  // default initialisation.
  seq,
};

// How one parameter is initialised; drawn in declaration order from one generator.
struct ParamInit {
  enum class Kind { normal, uniform, constant } kind = Kind::normal;
  double a = 0.0, b = 0.0;  // normal: mean, std; uniform: low, high; constant: value
  static ParamInit normal(double mean, double std) { return {Kind::normal, mean, std}; }
  static ParamInit uniform(double bound) { return {Kind::uniform, -bound, bound}; }
  static ParamInit constant(double v) { return {Kind::constant, v, 0.0}; }
};

// Parameters are declared through this, so every one gets its init rule.
class ParamTable {
 public:
  void add(const std::string& name, const Shape& shape, ParamInit init);
  const std::vector<std::pair<std::string, Shape>>& shapes() const { return shapes_; }
  const std::vector<ParamInit>& inits() const { return inits_; }

 private:
  std::vector<std::pair<std::string, Shape>> shapes_;
  std::vector<ParamInit> inits_;
};

// Dropout of one forward: every site takes its own slice of the counter-based stream.
struct ForwardContext {
  bool training = false;
  uint64_t seed = 0;
  uint64_t counter = 0;
  Tensor drop(const Tensor& x, double p);
};

// One forward's worth of attention over a segment [T, B].
class AttentionPass {
 public:
  virtual ~AttentionPass() = default;
  // x: layer l's input [T, B, D]. norm: the layer's pre-attention LayerNorm (identity
  // for post-LN stacks), to apply to whatever the variant puts beside x (memories).
  // Returns the attention sublayer's output [T, B, D], before the residual.
  virtual Tensor layer(int64_t l, const Tensor& x, const std::function<Tensor(const Tensor&)>& norm,
                       ForwardContext& ctx) = 0;
  // The state for the next segment, from the L + 1 layer inputs of this one (the
  // embedding output, then each layer's output); detached.
  virtual std::vector<Tensor> next_state(const std::vector<Tensor>& hids) = 0;
  // A scalar added to the training loss (span loss); undefined when there is none.
  virtual Tensor aux_loss() { return Tensor(); }
};

// A configured variant for one model: declares its parameters, runs passes.
class Attention {
 public:
  virtual ~Attention() = default;
  // Parameters shared by all layers (declared first) and those of layer l.
  virtual void declare_shared(ParamTable& table) const {}
  virtual void declare_layer(int64_t l, ParamTable& table) const = 0;
  // False when the variant replaces the feed-forward sublayer (all-attention).
  virtual bool has_feed_forward() const { return true; }
  // state: empty at the start of every stream, else what next_state returned.
  virtual std::unique_ptr<AttentionPass> begin(const ParameterSet& params, const std::vector<Tensor>& state, int64_t T,
                                               int64_t B, ForwardContext& ctx) const = 0;
  // Called after every optimizer step (adaptive span clamps its spans here). Each
  // parameter changed here goes to bf16_copy_refresh, which keeps the update's bf16
  // copy of the arena in step (the next training step multiplies by it).
  virtual void after_step(ParameterSet& params) const {}
  // Closed-form parameter count of the whole model (MODELS.md §9.2b).
  virtual int64_t formula_parameter_count(int64_t vocab) const = 0;
  // Attention multiply-adds per token per layer at the current parameters (scores and
  // weighted sum; projections excluded), for efficiency reports.
  virtual double attention_flops_per_token(const ParameterSet& params) const = 0;
  // Learned per-head quantities worth reporting (name -> per layer, per head values).
  virtual std::vector<std::pair<std::string, std::vector<std::vector<double>>>> report(
      const ParameterSet& params) const {
    return {};
  }
};

// A config problem found by a variant: the key path and the message.
struct ConfigProblem {
  std::string key;
  std::string message;
};

struct AttentionSpec {
  std::string name;
  std::string summary;
  std::string reference;  // where the math comes from
  AttentionCaps caps;
  StackStyle style = StackStyle::txl;
  // Evaluation scores only whole blocks, like the reference's full_eval (adaptive span)
  // instead of eval.py's shorter last segment, over caches the variant's own keys size:
  // model.mem_len does not apply (txl eval refuses --mem-len).
  bool eval_whole_blocks = false;
  std::vector<OptionSpec> options;
  // Rules across keys (beyond each option's own range), run after options resolve.
  std::function<std::vector<ConfigProblem>(const ModelConfig&)> check;
  std::function<std::unique_ptr<Attention>(const ModelConfig&)> make;

  const OptionSpec* option(const std::string& key) const;
};

// Registration happens at static-initialisation time, one call per variant file.
bool register_attention(AttentionSpec spec);
// nullptr when unknown.
const AttentionSpec* find_attention(const std::string& name);
// The spec, or a txl::Error naming the registered variants (with a did-you-mean).
const AttentionSpec& attention_spec(const std::string& name);
std::vector<const AttentionSpec*> registered_attentions();  // sorted by name

// Fills every option of cfg.attention missing a value with its default; no validation.
void resolve_attention_defaults(ModelConfig& cfg);
// An option's resolved value (the default when absent). Throws on a type mismatch.
int64_t attention_int(const ModelConfig& cfg, const std::string& key);
double attention_double(const ModelConfig& cfg, const std::string& key);
bool attention_bool(const ModelConfig& cfg, const std::string& key);
std::string attention_string(const ModelConfig& cfg, const std::string& key);

std::string caps_text(const AttentionCaps& caps);  // "causal_exact, segment_memory, ..."

#define TXL_ATTENTION_CONCAT2(a, b) a##b
#define TXL_ATTENTION_CONCAT(a, b) TXL_ATTENTION_CONCAT2(a, b)
#define TXL_REGISTER_ATTENTION(make_spec) \
  static const bool TXL_ATTENTION_CONCAT(txl_attention_registered_, __LINE__) = ::txl::register_attention(make_spec())

}  // namespace txl
