// Harness body: the corpus reader (load_corpus / load_tokens_file) and the stream
// batcher over what it read.
//
// Input: four header bytes [mode, a, b, c], then the text.
//   mode % 4 == 0  one file split by data.split = [a, b, c] / 200 (so some are invalid);
//                  vocab "bytes" when (mode / 4) is odd, else "chars"   -> load_corpus(cfg)
//   mode % 4 == 1  separate train / valid / test files: the text cut at a/255 and b/255
//                  of the way; valid and test given when c's bits 0 and 1 are set; the
//                  vocab kind as in mode 0
//   mode % 4 == 2  the whole text as `txl eval --data FILE`, with a fixed chars vocab
//                  (a even) or the bytes vocab                           -> load_tokens_file
//   mode % 4 == 3  as mode 0 with a fixed chars vocab                    -> load_corpus(cfg, vocab)
// Whatever loads is decoded back (it must give the same number of bytes) and batched
// with batch size 1 + a % 8, tgt_len 1 + b % 16, from row c % 32.
#pragma once
#include <string>

#include "fuzz_common.h"
#include "txl/data/batcher.h"
#include "txl/data/corpus.h"

namespace txl::fuzz {

inline void fuzz_corpus(const uint8_t* data, size_t size) {
  if (size < 4) return;
  const int mode = data[0];
  const int a = data[1], b = data[2], c = data[3];
  const std::string text(reinterpret_cast<const char*>(data) + 4, size - 4);
  const auto dir = scratch_dir();
  const std::string file = (dir / "corpus.txt").string();
  const Vocab fixed = Vocab::chars("the quick brown fox jumps over the lazy dog\n");

  DataConfig cfg;
  cfg.vocab = (mode / 4) % 2 ? "bytes" : "chars";
  Corpus corpus;
  switch (mode % 4) {
    case 0:
    case 3:
      cfg.split = {a / 200.0, b / 200.0, c / 200.0};
      write_bytes(file, text);
      cfg.path = file;
      corpus = mode % 4 == 0 ? load_corpus(cfg) : load_corpus(cfg, fixed);
      break;
    case 1: {
      const size_t p1 = text.size() * a / 255, p2 = p1 + (text.size() - p1) * b / 255;
      const std::string parts[3] = {text.substr(0, p1), text.substr(p1, p2 - p1), text.substr(p2)};
      std::string* paths[3] = {&cfg.train, &cfg.valid, &cfg.test};
      for (int i = 0; i < 3; ++i) {
        if (i > 0 && !(c & (1 << (i - 1)))) continue;
        *paths[i] = (dir / ("split" + std::to_string(i) + ".txt")).string();
        write_bytes(*paths[i], parts[i]);
      }
      corpus = load_corpus(cfg);
      break;
    }
    case 2:
      write_bytes(file, text);
      corpus.vocab = a % 2 == 0 ? fixed : Vocab::bytes();
      corpus.train = load_tokens_file(file, corpus.vocab);
      break;
  }
  for (const auto* split : {&corpus.train, &corpus.valid, &corpus.test})
    if (corpus.vocab.decode(*split).size() != split->size()) bug("decode changed the number of tokens");
  StreamBatcher batches(corpus.train, 1 + a % 8, 1 + b % 16);
  if (c % 32 < batches.n_step()) batches.set_position(c % 32);
  Tensor input, target;
  int64_t rows = 0;
  while (batches.next(input, target)) rows += input.shape()[0];
  if (rows > batches.n_step() - 1) bug("the batcher produced more rows than the stream holds");
}

}  // namespace txl::fuzz
