// `txl bench ops [--json] [--quick] [--repeats N]`
#include <iostream>

#include "commands.h"
#include "txl/bench/ops_bench.h"
#include "txl/core/error.h"
#include "txl/core/threads.h"

namespace txl::cli {

int parse_positive_int(const std::string& s, const std::string& what) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  TXL_CHECK(!s.empty() && end && *end == '\0' && v > 0 && v < (1L << 31), "{}: expected a positive integer, got '{}'",
            what, s);
  return static_cast<int>(v);
}

int bench(const Context& ctx, const std::vector<std::string>& args) {
  TXL_CHECK(!args.empty() && args[0] == "ops", "bench: expected 'ops' (usage: txl bench ops [--json] [--quick])");
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
    } else {
      TXL_FAIL("bench ops: unknown option '{}' (expected --json, --quick, --repeats N)", args[i]);
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
