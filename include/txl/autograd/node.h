// The tape. Each op that produced a tensor needing gradients leaves one Node holding
// an edge per input and a backward closure; backward() walks the nodes in reverse
// topological order. Closures capture only what their backward reads (the op's "saved"
// tensors), and an edge holds a non-leaf input's producer, not the input: an
// intermediate no backward reads (attention scores before their softmax) is freed as
// soon as the forward is done with it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

// Returns one gradient per input, shaped like that input; an undefined Tensor means
// "no gradient flows to this input".
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

struct Node;

// Where an input's gradient goes: the node that produced it, or the leaf that
// accumulates it. Neither where the input needs no grad.
struct Edge {
  std::shared_ptr<Node> fn;          // producer of a non-leaf input (as at record time)
  std::shared_ptr<TensorImpl> leaf;  // a leaf input, whose gradient slot it is
  Shape shape;                       // the input's shape: its gradient must match
  explicit operator bool() const { return fn || leaf; }
};

struct Node {
  const char* op = "";
  std::vector<Edge> inputs;
  BackwardFn backward;
  Shape out_shape;
  DType out_dtype = DType::f32;
  bool released = false;  // the closure and inputs were freed by a backward pass

  bool input_needs_grad(size_t i) const { return i < inputs.size() && static_cast<bool>(inputs[i]); }
};

// Gradient recording switch (thread-local). Backward passes run with it off.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when recording is on and some input requires grad.
bool needs_record(std::initializer_list<const Tensor*> inputs);
// Attaches a node to `out` if any input requires grad; returns the node or null.
// The closure must not capture `out` itself (capture out.detach()) to avoid a cycle.
std::shared_ptr<Node> record(Tensor& out, const char* op, std::initializer_list<const Tensor*> inputs,
                             BackwardFn fn);
std::shared_ptr<Node> record(Tensor& out, const char* op, const std::vector<Tensor>& inputs, BackwardFn fn);

// Called during backward() for each leaf whose gradient is final: every node of the
// graph that takes the leaf as an input has run (or had no gradient to give), so the
// leaf's grad will not change again in this pass. Data-parallel training starts the
// all-reduce of a bucket of parameters from here, while the rest of backward runs.
using LeafReadyFn = std::function<void(const TensorImpl& leaf)>;

// Runs the tape from `root`. Without `grad`, root must hold one element and the seed is 1.
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false,
              const LeafReadyFn& on_leaf_ready = {});

}  // namespace txl
