// The subcommands of the txl CLI, one function each.
#pragma once
#include <cstdint>
#include <limits>
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

// A flag's integer value in [min, max]; text, trailing characters and values out of
// range (beyond int64 included) are refused naming the flag `what`.
int64_t parse_int(const std::string& s, const std::string& what, int64_t min,
                  int64_t max = std::numeric_limits<int>::max());
int parse_positive_int(const std::string& s, const std::string& what);  // parse_int in [1, INT_MAX]

}  // namespace txl::cli
