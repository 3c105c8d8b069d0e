// Data pipeline tests: Vocab (kinds, round trips, JSON, errors), load_corpus
// (fraction splits with exact byte counts, separate files, error messages),
// StreamBatcher against a hand-computed LMOrderedIterator example, and the bundled
// tinyshakespeare corpus. Not the enwik8/text8 preparation (tests/prep_data_test.sh).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>

#include "txl/core/error.h"
#include "txl/data/batcher.h"
#include "txl/data/corpus.h"
#include "txl/data/vocab.h"

using namespace txl;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path =
        fs::temp_directory_path() / ("txl_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& contents) const {
    std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << contents;
    return p;
  }
  std::string name(const std::string& n) const { return (path / n).string(); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<int64_t> values(const Tensor& t) {
  std::vector<int64_t> out(t.data<int64_t>(), t.data<int64_t>() + t.numel());
  return out;
}

}  // namespace

TEST_CASE("bytes vocab is the identity on all 256 byte values", "[data]") {
  Vocab v = Vocab::bytes();
  REQUIRE(v.size() == 256);
  REQUIRE(v.kind() == "bytes");
  std::string all(256, '\0');
  for (int b = 0; b < 256; ++b) all[b] = static_cast<char>(b);
  auto ids = v.encode(all);
  for (int b = 0; b < 256; ++b) REQUIRE(ids[b] == b);
  REQUIRE(v.decode(ids) == all);
}

TEST_CASE("chars vocab ranks the training bytes by value", "[data]") {
  Vocab v = Vocab::chars("hello world\n");
  REQUIRE(v.kind() == "chars");
  REQUIRE(v.size() == 9);  // '\n' ' ' d e h l o r w
  REQUIRE(v.symbols() == std::vector<uint8_t>{'\n', ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'});
  REQUIRE(v.encode("hold\n") == std::vector<int32_t>{4, 6, 5, 2, 0});
  REQUIRE(v.decode({4, 3, 5, 5, 6}) == "hello");
  REQUIRE(v.decode(v.encode("world hello")) == "world hello");
  REQUIRE(Vocab::of_kind("chars", "ba") == Vocab::chars("ab"));
  REQUIRE(Vocab::of_kind("bytes", "") == Vocab::bytes());
}

TEST_CASE("vocab errors name the byte and where it was found", "[data]") {
  Vocab v = Vocab::chars("abc");
  std::string msg = error_of([&] { v.encode("abxc", "valid.txt"); });
  REQUIRE_THAT(msg, Contains("byte 120 ('x')") && Contains("offset 2") && Contains("valid.txt"));
  REQUIRE_THAT(error_of([&] { v.encode(std::string("a\xff", 2)); }), Contains("byte 255 (0xff)"));
  REQUIRE_THAT(error_of([&] { v.decode({3}); }), Contains("token id 3"));
  REQUIRE_THAT(error_of([&] { v.decode({-1}); }), Contains("token id -1"));
  REQUIRE_THAT(error_of([] { Vocab::chars(""); }), Contains("empty training split"));
  REQUIRE_THAT(error_of([] { Vocab::of_kind("words", "abc"); }), Contains("unknown kind \"words\""));
}

TEST_CASE("vocab JSON and file round trips", "[data]") {
  TempDir tmp;
  for (const Vocab& v : {Vocab::bytes(), Vocab::chars(std::string("z\x80q\n", 4))}) {
    nlohmann::json j = v.to_json();
    REQUIRE(j["kind"] == v.kind());
    REQUIRE(j["symbols"].size() == static_cast<size_t>(v.size()));
    REQUIRE(Vocab::from_json(j) == v);
    std::string path = tmp.name(v.kind() + ".json");
    v.save(path);
    Vocab back = Vocab::load(path);
    REQUIRE(back == v);
    REQUIRE(back.encode("q") == v.encode("q"));
  }
  REQUIRE(Vocab::chars("ba").to_json() == nlohmann::json::parse(R"({"kind":"chars","symbols":[97,98]})"));
}

TEST_CASE("vocab load and from_json reject missing or corrupt input", "[data]") {
  TempDir tmp;
  std::string missing = tmp.name("nope.json");
  REQUIRE_THAT(error_of([&] { Vocab::load(missing); }), Contains(missing) && Contains("does not exist"));
  std::string bad = tmp.file("bad.json", "{\"kind\": \"chars\", \"symbols\": [97, ");
  REQUIRE_THAT(error_of([&] { Vocab::load(bad); }), Contains(bad) && Contains("not valid JSON"));
  std::string wrong = tmp.file("wrong.json", R"({"kind": "chars", "symbols": [97, 300]})");
  REQUIRE_THAT(error_of([&] { Vocab::load(wrong); }), Contains(wrong) && Contains("300"));
  std::string dup = tmp.file("dup.json", R"({"kind": "chars", "symbols": [97, 97]})");
  REQUIRE_THAT(error_of([&] { Vocab::load(dup); }), Contains(dup) && Contains("twice"));
  REQUIRE_THAT(error_of([&] { Vocab::load(tmp.path.string()); }), Contains("is a directory"));
  REQUIRE_THAT(error_of([] { Vocab::from_json(nlohmann::json::parse(R"({"kind":"bytes","symbols":[0,1]})")); }),
               Contains("0..255"));
  REQUIRE_THAT(error_of([] { Vocab::from_json(nlohmann::json::parse(R"({"symbols":[0]})")); }), Contains("\"kind\""));
}

TEST_CASE("split_sizes floors each part and gives the remainder to the last when they sum to 1", "[data]") {
  REQUIRE(split_sizes(1115394, {0.9, 0.1, 0.0}) == std::array<int64_t, 3>{1003854, 111540, 0});
  REQUIRE(split_sizes(1000, {0.9, 0.05, 0.05}) == std::array<int64_t, 3>{900, 50, 50});
  REQUIRE(split_sizes(101, {0.5, 0.25, 0.0}) == std::array<int64_t, 3>{50, 25, 0});
  REQUIRE(split_sizes(7, {0.5, 0.5, 0.0}) == std::array<int64_t, 3>{3, 4, 0});
}

TEST_CASE("load_corpus splits one file by fractions with exact byte counts", "[data]") {
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 103; ++i) text += static_cast<char>('a' + i % 7);  // 'a'..'g'
  DataConfig cfg;
  cfg.path = tmp.file("corpus.txt", text);

  SECTION("default 0.9 / 0.1: first 92 train, last 11 valid (nanoGPT)") {
    Corpus c = load_corpus(cfg);
    REQUIRE(c.vocab.kind() == "chars");
    REQUIRE(c.vocab.size() == 7);
    REQUIRE(c.train.size() == 92);
    REQUIRE(c.valid.size() == 11);
    REQUIRE(c.test.empty());
    REQUIRE(c.vocab.decode(c.train) == text.substr(0, 92));
    REQUIRE(c.vocab.decode(c.valid) == text.substr(92));
  }
  SECTION("0.8 / 0.1 / 0.05: floor of each, taken in order, tail unused") {
    cfg.split = {0.8, 0.1, 0.05};
    cfg.vocab = "bytes";
    Corpus c = load_corpus(cfg);
    REQUIRE(c.vocab.size() == 256);
    REQUIRE(c.train.size() == 82);
    REQUIRE(c.valid.size() == 10);
    REQUIRE(c.test.size() == 5);
    REQUIRE(c.valid.front() == static_cast<uint8_t>(text[82]));
    REQUIRE(c.test.front() == static_cast<uint8_t>(text[92]));
    REQUIRE(c.vocab.decode(c.test) == text.substr(92, 5));
  }
  SECTION("a needed split with fewer than 2 tokens is an error naming the file") {
    cfg.split = {0.98, 0.01, 0.0};  // 100 + 1 bytes
    std::string msg = error_of([&] { load_corpus(cfg); });
    REQUIRE_THAT(msg, Contains("valid split") && Contains(cfg.path) && Contains("at least 2"));
  }
  SECTION("with an existing vocab the train split is optional") {
    cfg.split = {0.0, 0.0, 1.0};
    Corpus c = load_corpus(cfg, Vocab::chars("abcdefg"));
    REQUIRE(c.train.empty());
    REQUIRE(c.valid.empty());
    REQUIRE(c.test.size() == 103);
    REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("no training split"));
  }
}

TEST_CASE("load_corpus with separate train/valid/test files", "[data]") {
  TempDir tmp;
  DataConfig cfg;
  cfg.train = tmp.file("train.txt", "abcabc\n");
  cfg.valid = tmp.file("valid.txt", "cab\n");
  Corpus c = load_corpus(cfg);
  REQUIRE(c.vocab.size() == 4);
  REQUIRE(c.train == std::vector<int32_t>{1, 2, 3, 1, 2, 3, 0});
  REQUIRE(c.valid == std::vector<int32_t>{3, 1, 2, 0});
  REQUIRE(c.test.empty());

  SECTION("a valid byte missing from the train vocab names the byte and the file") {
    cfg.valid = tmp.file("valid2.txt", "abz");
    REQUIRE_THAT(error_of([&] { load_corpus(cfg); }),
                 Contains("byte 122 ('z')") && Contains("valid2.txt") && Contains("offset 2"));
  }
  SECTION("an existing vocab is used as is") {
    Corpus b = load_corpus(cfg, Vocab::bytes());
    REQUIRE(b.train.front() == 'a');
  }
  SECTION("path and separate files together are rejected") {
    cfg.path = cfg.train;
    REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("not both"));
  }
}

TEST_CASE("load_corpus and load_tokens_file errors for missing, empty or tiny files", "[data]") {
  TempDir tmp;
  DataConfig cfg;
  cfg.path = tmp.name("missing.txt");
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains(cfg.path) && Contains("does not exist"));
  cfg.path = tmp.file("empty.txt", "");
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains(cfg.path) && Contains("is empty"));
  cfg.path = tmp.path.string();
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("not a regular file"));
  cfg.path.clear();
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("no data configured"));
  cfg.train = tmp.file("train.txt", "abcd");
  cfg.valid = tmp.file("valid.txt", "");
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("valid.txt") && Contains("is empty"));
  cfg.valid = tmp.file("one.txt", "a");
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("one.txt") && Contains("1 token"));
  cfg.valid.clear();
  cfg.split = {0.5, 0.7, 0.0};
  cfg.path = tmp.file("p.txt", "abcd");
  cfg.train.clear();
  REQUIRE_THAT(error_of([&] { load_corpus(cfg); }), Contains("sum to"));

  Vocab v = Vocab::chars("abc");
  REQUIRE(load_tokens_file(tmp.file("eval.txt", "cab"), v) == std::vector<int32_t>{2, 0, 1});
  REQUIRE_THAT(error_of([&] { load_tokens_file(tmp.name("none.txt"), v); }), Contains("none.txt"));
  REQUIRE_THAT(error_of([&] { load_tokens_file(tmp.file("e.txt", ""), v); }), Contains("is empty"));
  REQUIRE_THAT(error_of([&] { load_tokens_file(tmp.file("x.txt", "abx"), v); }),
               Contains("x.txt") && Contains("byte 120"));
}

TEST_CASE("StreamBatcher matches LMOrderedIterator on a hand-computed example", "[data]") {
  // 23 tokens 100..122, B = 2, T = 4: n_step = 11, token 122 dropped.
  // Column 0 = 100..110, column 1 = 111..121. Predicting rows 0..9: batches of 4, 4, 2.
  std::vector<int32_t> tokens(23);
  std::iota(tokens.begin(), tokens.end(), 100);
  StreamBatcher sb(tokens, 2, 4);
  REQUIRE(sb.n_step() == 11);
  REQUIRE(sb.num_batches() == 3);
  REQUIRE(sb.predicted_tokens() == 20);

  // Time-major [T', B]: row t = {column 0 at t, column 1 at t}.
  const std::vector<std::vector<int64_t>> want_in = {
      {100, 111, 101, 112, 102, 113, 103, 114}, {104, 115, 105, 116, 106, 117, 107, 118}, {108, 119, 109, 120}};
  const std::vector<std::vector<int64_t>> want_tg = {
      {101, 112, 102, 113, 103, 114, 104, 115}, {105, 116, 106, 117, 107, 118, 108, 119}, {109, 120, 110, 121}};
  const std::vector<int64_t> want_pos = {4, 8, 10};
  Tensor in, tg;
  for (size_t k = 0; k < 3; ++k) {
    REQUIRE(sb.next(in, tg));
    REQUIRE(in.dtype() == DType::i64);
    REQUIRE(in.shape() == Shape{static_cast<int64_t>(want_in[k].size() / 2), 2});
    REQUIRE(tg.shape() == in.shape());
    REQUIRE(values(in) == want_in[k]);
    REQUIRE(values(tg) == want_tg[k]);
    REQUIRE(sb.position() == want_pos[k]);
  }
  REQUIRE_FALSE(sb.next(in, tg));
  REQUIRE(values(in) == want_in[2]);  // untouched at the end

  // Column b continues stream b: each batch's first input row is the previous batch's
  // last target row.
  sb.reset();
  Tensor prev_tg;
  int64_t seen = 0;
  while (sb.next(in, tg)) {
    if (prev_tg.defined()) {
      auto last = values(prev_tg);
      auto first = values(in);
      REQUIRE(std::vector<int64_t>(last.end() - 2, last.end()) ==
              std::vector<int64_t>(first.begin(), first.begin() + 2));
    }
    prev_tg = tg;
    seen += tg.numel();
  }
  REQUIRE(seen == sb.predicted_tokens());
}

TEST_CASE("StreamBatcher resume, tgt_len change and errors", "[data]") {
  std::vector<int32_t> tokens(23);
  std::iota(tokens.begin(), tokens.end(), 100);
  StreamBatcher sb(tokens, 2, 4);
  Tensor in, tg;
  sb.set_position(4);
  REQUIRE(sb.next(in, tg));
  REQUIRE(values(in) == std::vector<int64_t>{104, 115, 105, 116, 106, 117, 107, 118});

  sb.set_tgt_len(3);  // rows [8, 10) remain: one batch of 2
  REQUIRE(sb.num_batches() == 4);
  REQUIRE(sb.next(in, tg));
  REQUIRE(values(tg) == std::vector<int64_t>{109, 120, 110, 121});
  REQUIRE_FALSE(sb.next(in, tg));
  sb.reset();
  REQUIRE(sb.position() == 0);

  StreamBatcher one(tokens, 1, 100);  // a single stream, one batch of 22
  REQUIRE(one.num_batches() == 1);
  REQUIRE(one.next(in, tg));
  REQUIRE(in.shape() == Shape{22, 1});
  REQUIRE(values(tg).back() == 122);

  REQUIRE_THAT(error_of([&] { sb.set_position(11); }), Contains("position 11"));
  REQUIRE_THAT(error_of([&] { sb.set_position(-1); }), Contains("position -1"));
  REQUIRE_THAT(error_of([&] { StreamBatcher(tokens, 12, 4); }), Contains("too few"));
  REQUIRE_THAT(error_of([&] { StreamBatcher(tokens, 0, 4); }), Contains("batch size"));
  REQUIRE_THAT(error_of([&] { StreamBatcher(tokens, 2, 0); }), Contains("tgt_len"));
  StreamBatcher(tokens, 11, 4);  // n_step = 2: the smallest that works
}

TEST_CASE("bundled tinyshakespeare corpus: size, charset and the 90/10 split", "[data]") {
  std::string path = std::string(TXL_SOURCE_DIR) + "/third_party/tinyshakespeare/tinyshakespeare.txt";
  std::string bytes = read_file_bytes(path);
  REQUIRE(bytes.size() == 1115394);
  REQUIRE(Vocab::chars(bytes).size() == 65);
  DataConfig cfg;
  cfg.path = path;
  Corpus c = load_corpus(cfg);
  REQUIRE(c.vocab.size() == 65);
  REQUIRE(c.train.size() == 1003854);
  REQUIRE(c.valid.size() == 111540);
}
