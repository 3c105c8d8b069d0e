// Recording and replaying the tape: grad mode, record(), backward().
#include <unordered_map>
#include <unordered_set>

#include "txl/autograd/node.h"
#include "txl/backend/profiler.h"
#include "txl/ops/elementwise.h"

namespace txl {

namespace {
thread_local bool g_grad_enabled = true;

std::shared_ptr<Node> make_node(Tensor& out, const char* op, const std::vector<const Tensor*>& inputs,
                                BackwardFn fn) {
  if (!g_grad_enabled) return nullptr;
  bool any = false;
  for (const Tensor* t : inputs) any = any || (t->defined() && t->requires_grad());
  if (!any) return nullptr;
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const Tensor* t : inputs) {
    Edge e;
    if (t->defined() && t->requires_grad()) {
      e.shape = t->shape();
      if (t->impl().grad_fn) e.fn = t->impl().grad_fn;
      else e.leaf = t->impl_ptr();
    }
    node->inputs.push_back(std::move(e));
  }
  node->backward = std::move(fn);
  node->out_shape = out.shape();
  node->out_dtype = out.dtype();
  out.impl().grad_fn = node;
  out.impl().requires_grad = true;
  return node;
}

// A non-leaf's gradient slot holds whatever tensor arrived first (no copy). A later
// arrival is added in place only when nothing else can see the slot's memory (a sum
// made here, a fresh gradient buffer) and each element is its own (no expanded view);
// otherwise the slot becomes a fresh sum, so views
// into saved tensors are never written.
void accumulate_node(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
  } else if (slot.impl_ptr().use_count() == 1 && slot.impl().storage.use_count() == 1 && slot.is_contiguous() &&
             !slot.same_storage(g)) {
    add_(slot, g);
  } else {
    slot = add(slot, g);
  }
}

// A leaf's gradient is owned by the leaf: copied on first arrival (or preallocated, as
// the parameter arena does) and then added to in place.
void accumulate_leaf(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = contiguous_copy(g);
  } else {
    add_(slot, g);
  }
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_record(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> record(Tensor& out, const char* op, std::initializer_list<const Tensor*> inputs,
                             BackwardFn fn) {
  return make_node(out, op, std::vector<const Tensor*>(inputs), std::move(fn));
}

std::shared_ptr<Node> record(Tensor& out, const char* op, const std::vector<Tensor>& inputs, BackwardFn fn) {
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) ptrs.push_back(&t);
  return make_node(out, op, ptrs, std::move(fn));
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph, const LeafReadyFn& on_leaf_ready) {
  TXL_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no input of its graph does)");
  Tensor seed = grad;
  if (!seed.defined()) {
    TXL_CHECK(root.numel() == 1, "backward: root of shape {} is not a scalar; pass a gradient",
              shape_str(root.shape()));
    seed = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  }
  TXL_CHECK(seed.shape() == root.shape(), "backward: gradient of shape {} for a root of shape {}",
            shape_str(seed.shape()), shape_str(root.shape()));
  NoGradGuard no_grad;
  if (root.is_leaf()) {
    Tensor slot = root.grad();
    accumulate_leaf(slot, seed);
    root.impl().grad = slot.impl_ptr();
    if (on_leaf_ready) on_leaf_ready(root.impl());
    return;
  }
  // Shared ownership while walking: releasing a node may drop the last reference to
  // nodes still to be visited.
  std::shared_ptr<Node> start = root.grad_fn();
  TXL_CHECK(!start->released,
            "backward: the graph of this tensor was already freed by an earlier backward() "
            "(op '{}'); pass retain_graph=true to the first call to run backward twice",
            start->op);

  // Reverse topological order by iterative post-order DFS.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen{start.get()};
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{start, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Edge& in = node->inputs[next++];
      if (in.fn && seen.insert(in.fn.get()).second) stack.push_back({in.fn, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // Edges into each leaf still to be processed; at zero the leaf's gradient is final.
  std::unordered_map<const TensorImpl*, int> pending_edges;
  if (on_leaf_ready)
    for (const auto& node : order)
      for (const Edge& in : node->inputs)
        if (in.leaf) pending_edges[in.leaf.get()]++;
  auto edges_done = [&](const std::vector<Edge>& inputs) {
    if (!on_leaf_ready) return;
    for (const Edge& in : inputs)
      if (in.leaf && --pending_edges[in.leaf.get()] == 0) on_leaf_ready(*in.leaf);
  };

  // Kernels run from here on are attributed to the backward pass in profiles.
  struct BackwardMark {
    BackwardMark() { profiler::set_in_backward(true); }
    ~BackwardMark() { profiler::set_in_backward(false); }
  } mark;
  std::unordered_map<Node*, Tensor> grads;
  grads[start.get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = grads.find(node);
    if (found == grads.end()) {
      edges_done(node->inputs);
      continue;
    }
    Tensor g = std::move(found->second);
    grads.erase(found);
    TXL_CHECK(!node->released, "backward: op '{}' was freed by an earlier backward()", node->op);
    std::vector<Tensor> gin = node->backward(g);
    TXL_CHECK(gin.size() == node->inputs.size(), "backward of '{}' returned {} gradients for {} inputs",
              node->op, gin.size(), node->inputs.size());
    for (size_t i = 0; i < gin.size(); ++i) {
      const Edge& edge = node->inputs[i];
      if (!edge || !gin[i].defined()) continue;
      TXL_CHECK(gin[i].shape() == edge.shape,
                "backward of '{}': gradient for input {} has shape {}, expected {}", node->op, i,
                shape_str(gin[i].shape()), shape_str(edge.shape));
      if (edge.fn) {
        accumulate_node(grads[edge.fn.get()], gin[i]);
        continue;
      }
      TensorImpl* in = edge.leaf.get();
      if (in->grad_pending_zero && in->grad) {
        Tensor slot(in->grad);  // stale values that count as zero: overwrite them
        copy_(slot, gin[i]);
        in->grad_pending_zero = false;
      } else {
        Tensor slot(in->grad);
        accumulate_leaf(slot, gin[i]);
        in->grad = slot.impl_ptr();
      }
    }
    edges_done(node->inputs);
    if (!retain_graph) {
      node->backward = nullptr;
      node->inputs.clear();
      node->released = true;
    }
  }
}

}  // namespace txl
