// load_corpus / load_tokens_file: file reading, fraction splits, vocab building and
// the "enough tokens" checks. Errors are single lines naming the file (and the split).
// Not batching; not the reference repos' tokenisation (that is scripts/prep_data.py).
#include "txl/data/corpus.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "txl/core/error.h"

namespace txl {

namespace {

constexpr const char* kSplitNames[3] = {"train", "valid", "test"};

// One split's raw text before encoding; `used` = configured by the user.
struct RawSplit {
  std::string text;
  std::string where;  // for error messages
  bool used = false;
};

void check_config(const DataConfig& cfg) {
  bool separate = !cfg.train.empty() || !cfg.valid.empty() || !cfg.test.empty();
  TXL_CHECK(!(separate && !cfg.path.empty()),
            "data: set either data.path (split by data.split) or data.train/valid/test, not both");
  TXL_CHECK(separate || !cfg.path.empty(), "data: no data configured: set data.path or data.train");
  double sum = 0.0;
  for (double f : cfg.split) {
    TXL_CHECK(f >= 0.0 && f <= 1.0, "data.split: fraction {} is outside [0, 1]", f);
    sum += f;
  }
  TXL_CHECK(sum <= 1.0 + 1e-9, "data.split: fractions sum to {} (> 1)", sum);
}

std::array<RawSplit, 3> read_fraction_splits(const DataConfig& cfg) {
  std::string bytes = read_file_bytes(cfg.path);
  auto sizes = split_sizes(static_cast<int64_t>(bytes.size()), cfg.split);
  std::array<RawSplit, 3> out;
  int64_t begin = 0;
  for (int i = 0; i < 3; ++i) {
    out[i].text = bytes.substr(static_cast<size_t>(begin), static_cast<size_t>(sizes[i]));
    out[i].where = fmt::format("the {} split of {} (bytes [{}, {}) of {})", kSplitNames[i], cfg.path, begin,
                               begin + sizes[i], bytes.size());
    out[i].used = cfg.split[i] > 0.0;
    begin += sizes[i];
  }
  return out;
}

std::array<RawSplit, 3> read_separate_files(const DataConfig& cfg) {
  const std::string* paths[3] = {&cfg.train, &cfg.valid, &cfg.test};
  std::array<RawSplit, 3> out;
  for (int i = 0; i < 3; ++i) {
    if (paths[i]->empty()) continue;
    out[i].text = read_file_bytes(*paths[i]);
    out[i].where = fmt::format("{} (data.{})", *paths[i], kSplitNames[i]);
    out[i].used = true;
  }
  return out;
}

std::array<RawSplit, 3> read_splits(const DataConfig& cfg) {
  check_config(cfg);
  return cfg.path.empty() ? read_separate_files(cfg) : read_fraction_splits(cfg);
}

std::vector<int32_t> encode_split(const RawSplit& s, const Vocab& vocab) {
  if (!s.used) return {};
  TXL_CHECK(s.text.size() >= 2, "data: {} has {} token(s); at least 2 are needed", s.where, s.text.size());
  return vocab.encode(s.text, s.where);
}

Corpus encode_all(const std::array<RawSplit, 3>& raw, Vocab vocab) {
  Corpus c;
  c.vocab = std::move(vocab);
  c.train = encode_split(raw[0], c.vocab);
  c.valid = encode_split(raw[1], c.vocab);
  c.test = encode_split(raw[2], c.vocab);
  return c;
}

}  // namespace

std::string read_file_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  TXL_CHECK(!path.empty(), "data: empty file name");
  TXL_CHECK(fs::exists(path, ec), "data: file {} does not exist", path);
  TXL_CHECK(fs::is_regular_file(path, ec), "data: {} is not a regular file", path);
  std::ifstream f(path, std::ios::binary);
  TXL_CHECK(f.is_open(), "data: cannot open {}: {}", path, std::strerror(errno));
  std::string bytes;
  auto size = fs::file_size(path, ec);
  TXL_CHECK(!ec, "data: cannot get the size of {}: {}", path, ec.message());
  bytes.resize(static_cast<size_t>(size));
  f.read(bytes.data(), static_cast<std::streamsize>(size));
  TXL_CHECK(f.gcount() == static_cast<std::streamsize>(size), "data: reading {} failed after {} of {} bytes", path,
            f.gcount(), size);
  TXL_CHECK(!bytes.empty(), "data: file {} is empty", path);
  return bytes;
}

std::array<int64_t, 3> split_sizes(int64_t n, const std::array<double, 3>& fractions) {
  std::array<int64_t, 3> sizes{};
  double sum = 0.0;
  int last = -1;
  for (int i = 0; i < 3; ++i) {
    sizes[i] = static_cast<int64_t>(std::floor(static_cast<double>(n) * fractions[i]));
    sum += fractions[i];
    if (fractions[i] > 0.0) last = i;
  }
  if (last >= 0 && std::abs(sum - 1.0) < 1e-9) {
    int64_t before = 0;
    for (int i = 0; i < last; ++i) before += sizes[i];
    sizes[last] = n - before;
  }
  return sizes;
}

Corpus load_corpus(const DataConfig& cfg) {
  auto raw = read_splits(cfg);
  TXL_CHECK(raw[0].used, "data: no training split (data.train is empty or data.split[0] is 0)");
  TXL_CHECK(raw[0].text.size() >= 2, "data: {} has {} token(s); at least 2 are needed", raw[0].where,
            raw[0].text.size());
  return encode_all(raw, Vocab::of_kind(cfg.vocab, raw[0].text));
}

Corpus load_corpus(const DataConfig& cfg, const Vocab& vocab) {
  TXL_CHECK(vocab.size() > 0, "data: load_corpus given an empty vocab");
  return encode_all(read_splits(cfg), vocab);
}

std::vector<int32_t> load_tokens_file(const std::string& path, const Vocab& vocab) {
  RawSplit s{read_file_bytes(path), path, true};
  return encode_split(s, vocab);
}

}  // namespace txl
