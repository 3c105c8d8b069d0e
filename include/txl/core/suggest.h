// "Did you mean" for names the user typed: config keys, attention variants, flags.
#pragma once
#include <string>
#include <vector>

namespace txl {

// Optimal-string-alignment distance (adjacent swaps cost 1), case-insensitive.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidates closest to `word` within a small distance (1 for words of up to 4
// characters, else 2); failing that, for words of 4 or more characters, the candidates
// with a prefix that close (a shortened name); empty when none is that close.
std::vector<std::string> closest_matches(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean x or y?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace txl
