// The txl command line: parses the subcommand, runs it, and is the only place where
// an error becomes a message and an exit code.
#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "commands.h"
#include "txl/core/error.h"
#include "txl/dist/communicator.h"

namespace {

const char* kUsage = R"(txl - memory-augmented Transformer language models

usage: txl [--threads N] [--log-level LEVEL] <command> [args]

commands:
  train CONFIG.yaml [key.path=value ...] [--init CHECKPOINT] [--overwrite]
                  train a model; progress lines, runs/NAME/{config.yaml,metrics.jsonl,
                  checkpoints/{last,best}}
  train --resume RUN_DIR [key.path=value ...]
                  continue a run from its last checkpoint
  eval CHECKPOINT_OR_RUN_DIR [--data FILE] [--split train|valid|test|all]
       [--batch-size B] [--tgt-len T] [--mem-len M] [--clamp-len C] [--same-length] [--json]
       [--device cpu|cuda] [--precision fp32|bf16|auto] [model.KEY=VALUE ...]
                  NLL, bits per character and perplexity, scored as the model's
                  reference does, on the run's device and precision unless told;
                  overrides may change lengths and runtime attention keys
                  (model.attention.cmem_len=3072)
  generate CHECKPOINT [--prompt TEXT] [--tokens N] [--temperature X] [--top-k K] [--seed S]
                  stream sampled text, carrying the memory
  attention list | show NAME
                  the registered attention variants (model.attention.type), their
                  capabilities and keys with defaults
  info CHECKPOINT_OR_RUN_DIR | --system
                  a checkpoint's config, parameters and training state; or the system
  bench ops [--json] [--quick] [--repeats N] [--bf16]
                  GEMM (operands in cache, and cold), softmax, layer norm and
                  cross-entropy throughput against oneDNN's peak and memcpy,
                  measured in one run; --bf16: bf16 GEMMs against the bf16 peak
  bench train CONFIG.yaml [key.path=value ...] [--json] [--repeats N] [--vocab V] [--profile]
                  median time of a full training step and tokens/s; --profile: the
                  step's time by kernel, and each product against its rate alone and cold

global options:
  --threads N         worker threads (default: TXL_NUM_THREADS, else all cores)
  --log-level LEVEL   trace, debug, info, warn, error (default: info)
  -h, --help          this text
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  int threads = 0;
  try {
    std::vector<std::string> rest;
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "-h" || a == "--help") {
        std::cout << kUsage;
        return 0;
      } else if (a == "--threads" || a == "--log-level") {
        TXL_CHECK(i + 1 < args.size(), "{}: missing value", a);
        const std::string& v = args[++i];
        if (a == "--threads") {
          threads = txl::cli::parse_positive_int(v, "--threads");
        } else {
          auto level = spdlog::level::from_str(v);
          TXL_CHECK(level != spdlog::level::off || v == "off", "--log-level: unknown level '{}'", v);
          spdlog::set_level(level);
        }
      } else {
        rest.push_back(a);
      }
    }
    if (rest.empty()) {
      std::cerr << kUsage;
      return 2;
    }
    const std::string cmd = rest[0];
    std::vector<std::string> sub(rest.begin() + 1, rest.end());
    txl::cli::Context ctx{threads};
    if (cmd == "attention") return txl::cli::attention(ctx, sub);
    if (cmd == "bench") return txl::cli::bench(ctx, sub);
    if (cmd == "info") return txl::cli::info(ctx, sub);
    if (cmd == "train") return txl::cli::train(ctx, sub);
    if (cmd == "eval") return txl::cli::eval(ctx, sub);
    if (cmd == "generate") return txl::cli::generate(ctx, sub);
    std::cerr << "error: unknown command '" << cmd << "' (see txl --help)\n";
    return 2;
  } catch (const txl::Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    txl::abort_world(1);
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory: the model, batch or data does not fit in this machine's memory (lower "
                 "model.* sizes, train.batch_size or model.tgt_len / mem_len)"
              << std::endl;
    txl::abort_world(1);
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    txl::abort_world(1);
    return 1;
  }
}
