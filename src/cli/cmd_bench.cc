// `txl bench ops [--json] [--quick] [--repeats N] [--bf16]`
#include <charconv>
#include <iostream>
#include <limits>

#include "commands.h"
#include "txl/bench/ops_bench.h"
#include "txl/bench/train_bench.h"
#include "txl/config/load.h"
#include "txl/core/error.h"
#include "txl/core/threads.h"

namespace txl::cli {

int64_t parse_int(const std::string& s, const std::string& what, int64_t min, int64_t max) {
  // from_chars reports a value beyond int64 instead of clamping it (strtol's LONG_MAX).
  // A leading '+' is taken, as strtol took it ("--batch-size +8").
  const char* begin = s.data() + (s.size() > 1 && s[0] == '+' && s[1] != '-' ? 1 : 0);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  TXL_CHECK(!s.empty() && ec == std::errc() && end == s.data() + s.size() && v >= min && v <= max,
            "{}: expected an integer from {} to {}, got '{}'", what, min, max, s);
  return v;
}

int parse_positive_int(const std::string& s, const std::string& what) {
  return static_cast<int>(parse_int(s, what, 1, std::numeric_limits<int>::max()));
}

namespace {

// `txl bench train CONFIG [key.path=value ...] [--vocab V] [--repeats N] [--warmup N] [--json] [--profile]`
int bench_train(const Context& ctx, const std::vector<std::string>& args) {
  std::string config;
  std::vector<std::string> overrides;
  int repeats = 10, warmup = 3, vocab = 256;
  bool json = false, profile = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json")
      json = true;
    else if (a == "--profile")
      profile = true;
    else if (a == "--repeats" && i + 1 < args.size())
      repeats = parse_positive_int(args[++i], a);
    else if (a == "--warmup" && i + 1 < args.size())
      warmup = parse_positive_int(args[++i], a);
    else if (a == "--vocab" && i + 1 < args.size())
      vocab = parse_positive_int(args[++i], a);
    else if (a.rfind("--", 0) == 0)
      TXL_FAIL("bench train: unknown option '{}'", a);
    else if (a.find('=') != std::string::npos)
      overrides.push_back(a);
    else
      config = a;
  }
  TXL_CHECK(!config.empty(), "bench train: missing CONFIG (usage: txl bench train CONFIG.yaml [--json])");
  Config cfg = load_config(config, overrides);
  configure_threads(ctx.threads > 0 ? ctx.threads : static_cast<int>(cfg.run.threads));
  auto r = run_train_bench(cfg, vocab, warmup, repeats, profile);
  r["config"] = config;
  if (json) {
    std::cout << r.dump() << "\n";
  } else {
    std::cout << fmt::format(
        "{}: {:.1f} ms/step (median of {}, min {:.1f}, max {:.1f}), {:.0f} tokens/s, {} threads, "
        "{} parameters, {} precision; in timed steps: {} allocator misses, {} oneDNN "
        "primitives created\n",
        config, r["ms_per_step"].get<double>(), repeats, r["min_ms"].get<double>(), r["max_ms"].get<double>(),
        r["tokens_per_s"].get<double>(), r["threads"].get<int>(), r["parameters"].get<int64_t>(),
        r["precision"].get<std::string>(), r["allocator_misses"].get<uint64_t>(),
        r["primitives_created"].get<uint64_t>());
    if (profile) std::cout << format_train_profile(r);
  }
  return 0;
}

}  // namespace

int bench(const Context& ctx, const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "train") return bench_train(ctx, args);
  TXL_CHECK(!args.empty() && args[0] == "ops",
            "bench: expected 'ops' or 'train' (usage: txl bench ops [--json] [--quick] | txl bench train CONFIG)");
  OpsBenchOptions opt;
  bool json = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--quick") {
      opt.quick = true;
      opt.repeats = 3;
    } else if (args[i] == "--repeats" && i + 1 < args.size()) {
      opt.repeats = parse_positive_int(args[++i], "--repeats");
    } else if (args[i] == "--bf16") {
      opt.bf16 = true;
    } else {
      TXL_FAIL("bench ops: unknown option '{}' (expected --json, --quick, --repeats N, --bf16)", args[i]);
    }
  }
  configure_threads(ctx.threads);
  auto result = run_ops_bench(opt);
  if (json)
    std::cout << result.dump(1) << "\n";
  else
    std::cout << format_ops_bench(result);
  return 0;
}

}  // namespace txl::cli
