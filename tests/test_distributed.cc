// Data parallel over processes (MPI, CPU): `mpirun -np 2 txl train` on half the streams
// each gives the losses and weights of one process training all streams with
// batch_chunk 2 (the same chunks, dropout keyed by chunk), to float tolerance (the
// gradient sum is ordered differently). Only rank 0 logs and checkpoints; a
// two-process run resumes from its checkpoint bit for bit, and so does one process
// from it. Skipped when txl was built without MPI or mpirun is missing.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "reference_runner.h"
#include "txl/io/safetensors.h"

using namespace txl;
using namespace txl::testing;
namespace fs = std::filesystem;

namespace {

const std::string kTxl = std::string(TXL_BINARY_DIR) + "/bin/txl --threads 1";
const std::string kMpirun = "mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none ";

bool mpi_available() {
#ifdef TXL_WITH_MPI
  return std::system("mpirun --version >/dev/null 2>&1") == 0;
#else
  return false;
#endif
}

#define TXL_REQUIRE_MPI() \
  TXL_SKIP_UNLESS(        \
      mpi_available(),    \
      "skipped: txl was built without MPI or mpirun is missing (apt-get install libopenmpi-dev openmpi-bin)")

std::string setup(const std::string& name) {
  const std::string dir = scratch_dir(name);
  write_corpus_prefix(dir, 20000);
  std::ofstream(dir + "/tiny.yaml") << "data: {path: " << dir << "/data.txt, split: [0.9, 0.1, 0.0], vocab: chars}\n"
                                    << "model: {n_layer: 2, n_head: 2, d_model: 16, d_head: 8, d_inner: 32, "
                                       "dropout: 0.1, dropatt: 0.1, tgt_len: 8, mem_len: 8}\n"
                                    << "train: {batch_size: 4, steps: 16, log_interval: 1, seed: 3, clip: 0.5, "
                                       "checkpoint_interval: 8,\n"
                                       "        optimizer: {name: adam, lr: 3.0e-3}, schedule: {name: constant}}\n"
                                    << "eval: {interval: 8, batch_size: 2}\n";
  return dir;
}

void require_close_runs(const std::string& a, const std::string& b, double tol) {
  auto ta = metrics_events(a, "train"), tb = metrics_events(b, "train");
  REQUIRE(ta.size() == 16);
  REQUIRE(tb.size() == 16);
  for (size_t i = 0; i < ta.size(); ++i) {
    INFO("step " << i + 1 << ": " << ta[i]["loss"] << " vs " << tb[i]["loss"]);
    REQUIRE(std::abs(ta[i]["loss"].get<double>() - tb[i]["loss"].get<double>()) <= tol * ta[i]["loss"].get<double>());
  }
  auto wa = load_safetensors(a + "/checkpoints/last/model.safetensors");
  auto wb = load_safetensors(b + "/checkpoints/last/model.safetensors");
  for (const auto& [name, t] : wa) {
    auto x = t.to_doubles(), y = wb.at(name).to_doubles();
    double m = 0;
    for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
    INFO(name << " max diff " << m);
    REQUIRE(m <= 1e-4);
  }
}

}  // namespace

TEST_CASE("an error on one rank ends the whole job, before anything is written", "[distributed]") {
  TXL_REQUIRE_MPI();
  const std::string dir = setup("dp_error");
  // Rank 1 alone gets a config key that does not exist; rank 0 goes on to its first
  // collective. Before, rank 0 then waited there for good; `timeout` turns a hang into
  // status 124 here.
  const std::string mpmd = "timeout -k 10 120 mpirun --oversubscribe --allow-run-as-root --bind-to none -np 1 " + kTxl +
                           " train " + dir + "/tiny.yaml run.dir=" + dir + "/run : -np 1 " + kTxl + " train " + dir +
                           "/tiny.yaml run.dir=" + dir + "/run train.no_such_key=1";
  std::string out;
  const int rc = run_status(mpmd, &out);
  INFO(out);
  REQUIRE(rc != 0);
  REQUIRE(rc != 124);
  REQUIRE(out.find("no_such_key") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir + "/run"));  // the root waits for every rank before it creates the run
}

TEST_CASE("mpirun -np 2 trains like one process on all streams", "[distributed][slow]") {
  TXL_REQUIRE_MPI();
  const std::string dir = setup("dp");
  run_command(kTxl + " train " + dir + "/tiny.yaml train.batch_chunk=2 run.dir=" + dir + "/one");
  std::string out = run_command(kMpirun + kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/two");
  REQUIRE(out.find("data parallel: 2 processes") != std::string::npos);
  require_close_runs(dir + "/one", dir + "/two", 1e-5);
  // Only rank 0 wrote: one metrics line per step, not two.
  REQUIRE(metrics_events(dir + "/two", "eval").size() == 2);

  // Stop at 8 and resume with two processes: bit for bit the uninterrupted run.
  run_command(kMpirun + kTxl + " train " + dir + "/tiny.yaml run.dir=" + dir + "/split train.steps=8");
  run_command(kMpirun + kTxl + " train --resume " + dir + "/split train.steps=16");
  auto full = metrics_events(dir + "/two", "train"), split = metrics_events(dir + "/split", "train");
  REQUIRE(split.size() == 16);
  for (size_t i = 0; i < full.size(); ++i) REQUIRE(split[i]["loss"] == full[i]["loss"]);
  // One process resumes the two-process checkpoint (its two chunks' memories included).
  run_command(kTxl + " train --resume " + dir + "/split train.steps=20 train.batch_chunk=2");
  REQUIRE(metrics_events(dir + "/split", "train").size() == 20);
}
