// The pieces of kimiyoung's RelPartialLearnableMultiHeadAttn (MODELS.md §1.3-§1.7)
// that every variant attending over [memories; segment] with Transformer-XL's
// relative positions shares: the parameters, the sinusoidal table R, the causal /
// same_length mask, the attention core and the FIFO window of a memory.
// transformer_xl and compressive are built from these; what goes into the memories
// and how the state is laid out stays in each variant's own file.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "txl/attention/attention.h"

namespace txl {

std::string layer_key(int64_t l, const std::string& rest);  // "layers.{l}.{rest}"

// r_w_bias, r_r_bias ([H, Dh], shared by all layers) and layer l's qkv_net, o_net,
// r_net weights (no biases), all N(0, init_std) (MODELS.md §1.10).
void declare_relative_shared(const ModelConfig& cfg, ParamTable& table);
void declare_relative_layer(const ModelConfig& cfg, int64_t l, ParamTable& table);
// The parameters the two functions above declare.
int64_t relative_shared_parameter_count(const ModelConfig& cfg);
int64_t relative_layer_parameter_count(const ModelConfig& cfg);

// R [klen, D]: [sin | cos] halves over the descending positions klen-1 .. 0, each
// clamped to clamp_len when clamp_len > 0 (MODELS.md §1.3).
Tensor sinusoid_positions(int64_t klen, int64_t d_model, int64_t clamp_len, DType dtype);

// [qlen, klen] b8, true = masked. Key j has distance delta = (klen - qlen) + i - j from
// query i; it is masked when delta < 0 (a later token) and, with same_length, when
// delta >= window. For transformer_xl (window = mem_len) this is exactly the
// reference's triu(1 + mlen) + tril(-mask_shift_len) (MODELS.md §1.4, closed form).
Tensor relative_mask(int64_t qlen, int64_t klen, bool same_length, int64_t window);

struct RelativeAttentionOutput {
  Tensor out;   // [T, B, D]: o_net of the heads, after dropout (before the residual)
  Tensor prob;  // [B, H, T, K]: attention probabilities before dropatt (need_prob only)
  Tensor q;     // [T, B, H * Dh]: the query projections of the segment's rows of cat (fused: detached)
  Tensor k, v;  // [K, B, H * Dh]: the key and value projections of every row of cat (fused: with need_kv only)
};

// Layer l's attention for the last T rows of cat [K, B, D] (already normalised for
// pre-LN) over all K rows, with R = r [K, D] (dropped; or its matmul_operand) and
// mask [T, K]. segment is undefined, or cat's last T rows when cat was built without
// a gradient (post-LN [memories; segment], see segment_rows): the gradient then
// reaches segment, and nothing is formed for the rows before it. Draws from ctx in
// the reference's order: dropatt on the probabilities, then dropout on o_net. Without
// need_prob the fused core runs where it can (see use_fused_attention) and prob stays
// undefined. The fused core's keys and values come from one product; with need_kv
// they are also returned in k and v (fp32, detached), else they stay the core's own and
// in bf16 runs are written in bf16.
RelativeAttentionOutput relative_attention(const ModelConfig& cfg, const ParameterSet& params, int64_t l,
                                           const Tensor& cat, const Tensor& segment, int64_t T, const Tensor& r,
                                           const Tensor& mask, ForwardContext& ctx, bool need_prob = false,
                                           bool need_kv = false);

// The rows attention reads for a segment w [T, B, D] after the earlier rows in parts
// (memories, none of which take a gradient): {cat, segment} for relative_attention.
// Post-LN: cat = [parts; w] without a gradient, as the products' operand
// (concat_operand: bf16 in bf16 runs on the CPU), and segment = w. Pre-LN (the memories
// are normalised with learned weights, so their rows do take gradients): cat =
// norm([parts; w]) and segment undefined.
struct SegmentRows {
  Tensor cat, segment;
};
SegmentRows segment_rows(const std::vector<Tensor>& parts, const Tensor& w,
                         const std::function<Tensor(const Tensor&)>& norm, bool pre_lnorm);

// Whether a pass uses the fused core: the `fused` option (fused_attention_option) is
// on, nobody needs the probabilities, no dropatt is drawn (training with dropatt > 0
// runs unfused), and the activations are on the CPU (the fused kernels are CPU-only).
bool use_fused_attention(const ModelConfig& cfg, bool need_prob, const ForwardContext& ctx, Device device);

// Rows [beg, beg + len) of concat(mem, h.detach()) along axis 0, detached: a view of
// mem or h when one of them holds them all, else one concatenation of just those rows;
// mem may be undefined or empty (the first segment).
Tensor stacked_rows(const Tensor& mem, const Tensor& h, int64_t beg, int64_t len);
// The same rows as a fresh tensor (a memory state must not alias the layer input).
Tensor memory_window(const Tensor& mem, const Tensor& h, int64_t beg, int64_t len);

}  // namespace txl
