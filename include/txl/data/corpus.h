// Corpus loading: turns DataConfig (one file split by fractions, or separate
// train/valid/test files) into a Vocab and three token streams. Every failure is one
// txl::Error line naming the file. Not batching (batcher.h) and not the enwik8/text8
// download or preparation (scripts/get_data.sh, scripts/prep_data.py).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "txl/config/config.h"
#include "txl/data/vocab.h"

namespace txl {

struct Corpus {
  Vocab vocab;
  std::vector<int32_t> train, valid, test;
};

// Builds the vocab from the training split (kind = cfg.vocab). The training split is
// required; valid/test are loaded when configured (fraction > 0 or a file named).
Corpus load_corpus(const DataConfig& cfg);
// Uses an existing vocab (evaluating a checkpoint); every split is optional, but a
// configured one must encode under `vocab` and hold at least 2 tokens.
Corpus load_corpus(const DataConfig& cfg, const Vocab& vocab);

// One whole file encoded with `vocab` (for `txl eval --data FILE`); at least 2 tokens.
std::vector<int32_t> load_tokens_file(const std::string& path, const Vocab& vocab);

// The whole file as bytes; throws naming the file when missing, not a regular
// file, unreadable or empty.
std::string read_file_bytes(const std::string& path);

// Byte counts of the train/valid/test parts of an N-byte file: floor(N * f) each,
// taken in order from the start. When the fractions sum to 1 the last non-zero part
// also takes the rounding remainder, so 0.9/0.1 is nanoGPT's data[:int(0.9N)] /
// data[int(0.9N):].
std::array<int64_t, 3> split_sizes(int64_t n, const std::array<double, 3>& fractions);

}  // namespace txl
