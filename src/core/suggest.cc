#include "txl/core/suggest.h"

#include <algorithm>
#include <cctype>

namespace txl {

size_t edit_distance(const std::string& a, const std::string& b) {
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::vector<std::string> closest_matches(const std::string& word, const std::vector<std::string>& candidates) {
  const size_t limit = word.size() <= 4 ? 1 : 2;
  auto best_of = [&](auto distance) {
    size_t best = limit + 1;
    std::vector<std::string> found;
    for (const auto& c : candidates) {
      const size_t d = distance(c);
      if (d < best) best = d, found.clear();
      if (d == best) found.push_back(c);
    }
    return found;
  };
  auto found = best_of([&](const std::string& c) { return edit_distance(word, c); });
  if (!found.empty() || word.size() < 4) return found;
  // A shortened name ("adaptive", "transformr" for transformer_xl): its distance to the
  // candidate's closest prefix.
  return best_of([&](const std::string& c) {
    size_t d = edit_distance(word, c);
    for (size_t k = 1; k < c.size(); ++k) d = std::min(d, edit_distance(word, c.substr(0, k)));
    return d;
  });
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto near = closest_matches(word, candidates);
  if (near.empty()) return "";
  std::string out = " (did you mean ";
  for (size_t i = 0; i < near.size(); ++i) out += (i ? " or " : "") + near[i];
  return out + "?)";
}

}  // namespace txl
