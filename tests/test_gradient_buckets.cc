// Bucketed, overlapped gradient reduction (GradientBuckets) against a whole-arena
// reduction, with a stand-in communicator that plays two identical ranks (each
// reduction doubles its span) and records when each bucket started: every parameter is
// reduced exactly once, buckets start in index order, most start before backward has
// returned, and parameters that received no gradient count as zero. Plus the tape's
// readiness callback itself. (tests/test_distributed.cc runs the real MPI path.)
#include <set>

#include "gradcheck.h"
#include "txl/dist/gradient_buckets.h"
#include "txl/models/language_model.h"

using namespace txl;
using namespace txl::testing;

namespace {

struct Start {
  int64_t offset, numel;
  size_t ready_leaves;  // leaves the tape had reported when the bucket started
};

class TwoIdenticalRanks final : public Communicator {
 public:
  size_t ready_leaves = 0;
  std::vector<Start> starts;
  const Tensor* arena = nullptr;

  std::string name() const override { return "two identical ranks"; }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_size() const override { return 2; }
  int local_rank() const override { return 0; }
  void all_reduce_sum(Tensor& t) override { scale_(t, 2.0); }
  void all_reduce_sum(std::vector<double>& v) override {
    for (double& x : v) x *= 2;
  }
  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor& t) override {
    starts.push_back({t.offset() - arena->offset(), t.numel(), ready_leaves});
    scale_(t, 2.0);
    struct Done final : PendingCollective {
      bool test() override { return true; }
      void wait() override {}
    };
    return std::make_unique<Done>();
  }
  void broadcast(std::string&, int) override {}
  std::vector<std::string> gather(const std::string& mine, int) override { return {mine, mine}; }
  void barrier() override {}
};

ModelConfig small_model() {
  ModelConfig mc;
  mc.n_layer = 3;
  mc.n_head = 2;
  mc.d_model = 16;
  mc.d_head = 8;
  mc.d_inner = 32;
  mc.tgt_len = 6;
  mc.mem_len = 4;
  return mc;
}

Tensor ids(int64_t T, int64_t B, int64_t shift) {
  std::vector<int64_t> v(static_cast<size_t>(T * B));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>((i * 5 + static_cast<size_t>(shift)) % 13);
  return Tensor::from_vector<int64_t>({T, B}, v);
}

Tensor loss_of(const LanguageModel& m) {
  ForwardResult out = m.forward(ids(6, 2, 0), ids(6, 2, 3), {}, ForwardOptions{true, 1});
  return mean(out.loss);
}

}  // namespace

TEST_CASE("the tape reports each leaf once, when its gradient is final", "[dist][autograd]") {
  Tensor a = Tensor::from_vector<double>({2}, {1.0, 2.0}).set_requires_grad();
  Tensor b = Tensor::from_vector<double>({2}, {3.0, -1.0}).set_requires_grad();
  Tensor unused = Tensor::from_vector<double>({1}, {0.0}).set_requires_grad();
  // a feeds two nodes; b feeds one late and one early node of the graph.
  Tensor y = sum(add(mul(a, b), mul(exp(a), b)));
  std::vector<const TensorImpl*> order;
  std::vector<std::vector<double>> grad_at_report;
  backward(y, Tensor(), false, [&](const TensorImpl& leaf) {
    order.push_back(&leaf);
    grad_at_report.push_back(Tensor(leaf.grad).to_doubles());
  });
  // Each leaf of the graph once; `unused` is not in it.
  REQUIRE(order.size() == 2);
  REQUIRE(std::set<const TensorImpl*>(order.begin(), order.end()) ==
          std::set<const TensorImpl*>{a.impl_ptr().get(), b.impl_ptr().get()});
  REQUIRE_FALSE(unused.grad().defined());
  // What each leaf's gradient was when reported is its final value.
  for (size_t i = 0; i < order.size(); ++i) {
    const Tensor& leaf = order[i] == a.impl_ptr().get() ? a : b;
    REQUIRE(grad_at_report[i] == leaf.grad().to_doubles());
  }
}

TEST_CASE("gradient buckets reduce every parameter once, in order, overlapped with backward", "[dist]") {
  LanguageModel ref(small_model(), 13, DType::f64), bucketed(small_model(), 13, DType::f64);
  ref.init_weights(7);
  bucketed.init_weights(7);

  ref.params().zero_grad();
  backward(loss_of(ref));
  std::vector<double> want = ref.params().flat_grad().to_doubles();
  for (double& g : want) g *= 2.0;

  for (double bucket_bytes : {1.0, 4096.0, 1e9}) {
    INFO("bucket bytes " << bucket_bytes);
    TwoIdenticalRanks comm;
    comm.arena = &bucketed.params().flat_grad();
    GradientBuckets buckets(bucketed.params(), comm, bucket_bytes);
    bucketed.params().zero_grad();
    buckets.begin_step();
    LeafReadyFn hook = buckets.hook();
    backward(loss_of(bucketed), Tensor(), false, [&](const TensorImpl& leaf) {
      comm.ready_leaves++;
      hook(leaf);
    });
    const int64_t in_backward = buckets.started_in_backward();
    buckets.finish();

    REQUIRE(static_cast<int64_t>(comm.starts.size()) == buckets.bucket_count());
    // Buckets tile the arena from its end to its start, each once.
    int64_t end = bucketed.params().numel();
    for (const Start& s : comm.starts) {
      REQUIRE(s.offset + s.numel == end);
      end = s.offset;
    }
    REQUIRE(end == 0);
    // With several buckets, the first ones start while backward still runs: before the
    // tape has reported every parameter.
    if (buckets.bucket_count() > 2) {
      REQUIRE(in_backward >= buckets.bucket_count() - 1);
      REQUIRE(comm.starts.front().ready_leaves < comm.ready_leaves);
    }
    REQUIRE(max_abs_diff(bucketed.params().flat_grad(), Tensor::from_vector<double>({bucketed.params().numel()}, want)) ==
            0.0);
  }
}
