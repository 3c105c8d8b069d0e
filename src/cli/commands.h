// The subcommands of the txl CLI, one function each.
#pragma once
#include <string>
#include <vector>

namespace txl::cli {

struct Context {
  int threads = 0;  // 0: TXL_NUM_THREADS or all cores
};

int attention(const Context& ctx, const std::vector<std::string>& args);
int bench(const Context& ctx, const std::vector<std::string>& args);
int info(const Context& ctx, const std::vector<std::string>& args);
int train(const Context& ctx, const std::vector<std::string>& args);
int eval(const Context& ctx, const std::vector<std::string>& args);
int generate(const Context& ctx, const std::vector<std::string>& args);

int parse_positive_int(const std::string& s, const std::string& what);

}  // namespace txl::cli
