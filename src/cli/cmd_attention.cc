// `txl attention list` / `txl attention show NAME`: the registered variants, read from
// the registry itself, so the listing can never drift from what configs accept.
#include <fmt/format.h>

#include <iostream>

#include "commands.h"
#include "txl/attention/attention.h"
#include "txl/core/error.h"

namespace txl::cli {

namespace {

void print_options(const AttentionSpec& s, const std::string& indent) {
  if (s.options.empty()) {
    std::cout << indent << "(no keys of its own)\n";
    return;
  }
  for (const auto& o : s.options)
    std::cout << fmt::format("{}{:<14} default {:<8} {}; {}\n", indent, o.name, option_value_text(o.default_value),
                             option_expected_text(o), o.help);
}

}  // namespace

int attention(const Context&, const std::vector<std::string>& args) {
  TXL_CHECK(!args.empty() && (args[0] == "list" || args[0] == "show"),
            "attention: expected `txl attention list` or `txl attention show NAME`");
  if (args[0] == "list") {
    TXL_CHECK(args.size() == 1, "attention list: takes no arguments, got {}", args[1]);
    for (const AttentionSpec* s : registered_attentions()) {
      std::cout << s->name << ": " << s->summary << "\n"
                << "  capabilities: " << caps_text(s->caps) << "\n"
                << "  keys (model.attention.*):\n";
      print_options(*s, "    ");
    }
    return 0;
  }
  TXL_CHECK(args.size() == 2, "attention show: expected one variant NAME");
  const AttentionSpec& s = attention_spec(args[1]);
  std::cout << "name: " << s.name << "\n"
            << "summary: " << s.summary << "\n"
            << "reference: " << s.reference << "\n"
            << "layer stack: "
            << (s.style == StackStyle::txl ? "MemTransformerLM (embedding x sqrt(D), tied output, pre/post-LN)"
                                           : "TransformerSeq (untied output with bias, post-LN, PyTorch init)")
            << "\n"
            << "capabilities: " << caps_text(s.caps) << "\n"
            << "evaluation: "
            << (s.eval_whole_blocks ? "whole blocks from zero caches (the reference's full_eval)"
                                    : "eval.py: segments carrying memory, the last one shorter")
            << "\n"
            << "keys (model.attention.*):\n";
  print_options(s, "  ");
  std::cout << fmt::format("example:\n  model:\n    attention:\n      type: {}\n", s.name);
  for (const auto& o : s.options) std::cout << fmt::format("      {}: {}\n", o.name, option_value_text(o.default_value));
  return 0;
}

}  // namespace txl::cli
