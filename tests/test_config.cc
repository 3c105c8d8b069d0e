// The config loader: defaults, a full config, the YAML round trip, overrides of
// nested keys and lists, relative data paths, and the exact wording of each kind
// of error (unknown key or section, wrong type, out of range, cross-field rules,
// bad override, missing file, YAML syntax error), all collected in one exception.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "txl/config/load.h"
#include "txl/models/language_model.h"

using namespace txl;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with its contents at scope end.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("txl_config_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

Config from_yaml(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return config_from_yaml_string(text, "test.yaml", overrides);
}

// The ConfigError a call throws (fails the test when it throws nothing).
template <class Fn>
ConfigError error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e;
  }
  FAIL("expected a ConfigError");
  return ConfigError("", {});
}

ConfigError yaml_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { from_yaml(text, overrides); });
}

bool has_problem(const ConfigError& e, const std::string& line) {
  for (const auto& p : e.problems())
    if (p == line) return true;
  UNSCOPED_INFO("problems:\n" << e.what());
  return false;
}

const char* kFullConfig = R"(
data:
  path: corpus.txt
  split: [0.8, 0.15, 0.05]
  vocab: bytes
model:
  n_layer: 6
  n_head: 8
  d_model: 256
  d_head: 32
  d_inner: 1024
  dropout: 0.1
  dropatt: 0.05
  tgt_len: 128
  mem_len: 256
  pre_lnorm: true
  same_length: true
  clamp_len: 400
  init_std: 0.01
train:
  batch_size: 16
  steps: 5000
  seed: 42
  log_interval: 10
  clip: 0.5
  batch_chunk: 4
  max_time: 3600
  checkpoint_interval: 1000
  optimizer:
    name: adamw
    lr: 1e-3
    betas: [0.9, 0.98]
    eps: 1e-6
    weight_decay: 0.01
  schedule:
    name: inv_sqrt
    warmup_steps: 200
    min_lr: 1e-5
eval:
  interval: 500
  batch_size: 8
  tgt_len: 64
  mem_len: 512
  max_tokens: 100000
run:
  name: enwik8-small
  dir: runs/enwik8-small
  threads: 8
)";

}  // namespace

TEST_CASE("config defaults fill every key that is not given", "[config]") {
  Config c = from_yaml("data: {path: corpus.txt}\n");
  Config expected;
  expected.data.path = "corpus.txt";
  resolve_attention_defaults(expected.model);  // loading fills the variant's keys (transformer_xl: fused)
  REQUIRE(c == expected);
  REQUIRE(c.model.d_model == 128);
  REQUIRE(c.train.optimizer.name == "adam");
  REQUIRE(c.train.schedule.name == "cosine");
  REQUIRE(c.eval.mem_len == -1);
  validate_config(expected, "defaults");  // the defaults themselves are valid

  // Empty sections keep their defaults too.
  REQUIRE(from_yaml("data: {path: corpus.txt}\nmodel:\ntrain: {}\n") == expected);

  auto keys = config_keys();
  REQUIRE(keys.front() == "data.path");
  REQUIRE(std::count(keys.begin(), keys.end(), "train.optimizer.betas") == 1);
}

TEST_CASE("config a full valid config sets every key", "[config]") {
  Config c = from_yaml(kFullConfig);
  REQUIRE(c.data.path == "corpus.txt");
  REQUIRE(c.data.split == std::array<double, 3>{0.8, 0.15, 0.05});
  REQUIRE(c.data.vocab == "bytes");
  REQUIRE(c.model.n_layer == 6);
  REQUIRE(c.model.d_model == 256);
  REQUIRE(c.model.dropout == 0.1);
  REQUIRE(c.model.pre_lnorm);
  REQUIRE(c.model.same_length);
  REQUIRE(c.model.clamp_len == 400);
  REQUIRE(c.train.batch_chunk == 4);
  REQUIRE(c.train.max_time == 3600.0);  // an integer is accepted where a number is expected
  REQUIRE(c.train.optimizer.name == "adamw");
  REQUIRE(c.train.optimizer.lr == 1e-3);
  REQUIRE(c.train.optimizer.betas == std::array<double, 2>{0.9, 0.98});
  REQUIRE(c.train.schedule.name == "inv_sqrt");
  REQUIRE(c.train.schedule.warmup_steps == 200);
  REQUIRE(c.eval.mem_len == 512);
  REQUIRE(c.run.name == "enwik8-small");
  REQUIRE(c.run.threads == 8);
}

TEST_CASE("config separate train/valid/test files", "[config]") {
  Config c = from_yaml("data: {train: a.txt, valid: b.txt, test: c.txt}\n");
  REQUIRE(c.data.train == "a.txt");
  REQUIRE(c.data.valid == "b.txt");
  REQUIRE(c.data.test == "c.txt");
  REQUIRE(c.data.path.empty());
}

TEST_CASE("config round trip: config_to_yaml reads back to an equal config", "[config]") {
  Config full = from_yaml(kFullConfig);
  std::string yaml = config_to_yaml(full);
  REQUIRE(yaml.find("d_model: 256") != std::string::npos);
  REQUIRE(yaml.find("weight_decay") != std::string::npos);
  REQUIRE(from_yaml(yaml) == full);

  // Defaults, awkward doubles and strings that YAML would otherwise read as null,
  // bools or numbers all survive.
  Config odd = from_yaml("data: {path: corpus.txt}\n");
  odd.train.optimizer.lr = 1.0 / 3.0;
  odd.train.optimizer.eps = 1e-300;
  odd.model.init_std = 0.1 + 0.2;
  odd.train.max_time = 1.0;
  odd.run.name = "~";
  odd.run.dir = "true";
  odd.data.path = "a: b #c.txt";
  odd.data.vocab = "bytes";
  REQUIRE(from_yaml(config_to_yaml(odd)) == odd);
  odd.run.name = "123";
  odd.run.dir = " spaced \"quoted\" ";
  REQUIRE(from_yaml(config_to_yaml(odd)) == odd);

  // Through a file as well; every key is written, so nothing depends on defaults.
  TempDir dir;
  std::string file = dir.write("resolved.yaml", config_to_yaml(full));
  REQUIRE(load_config(file) == full);
  for (const auto& key : config_keys()) {
    std::string leaf = key.substr(key.rfind('.') + 1);
    REQUIRE(yaml.find(leaf + ":") != std::string::npos);
  }
}

TEST_CASE("config error: unknown key with a did-you-mean suggestion", "[config]") {
  auto e = yaml_error("data: {path: x}\nmodel:\n  dmodel: 64\n");
  REQUIRE(std::string(e.what()) == "config error in test.yaml: model.dmodel: unknown key; did you mean model.d_model?");
  REQUIRE(has_problem(e, "model.dmodel: unknown key; did you mean model.d_model?"));
  REQUIRE(e.problems().size() == 1);

  // A swap of two letters, a case slip, a key in the wrong section.
  REQUIRE(has_problem(yaml_error("data: {path: x}\ntrain: {optimizer: {nmae: adam}}\n"),
                      "train.optimizer.nmae: unknown key; did you mean train.optimizer.name?"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\nmodel: {D_Model: 64}\n"),
                      "model.D_Model: unknown key; did you mean model.d_model?"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\nmodel: {lr: 0.1}\n"),
                      "model.lr: unknown key; did you mean train.optimizer.lr?"));
  // No close name: the valid keys of the section are listed.
  REQUIRE(has_problem(yaml_error("data: {path: x}\nrun: {colour: blue}\n"),
                      "run.colour: unknown key; valid keys of run are name, dir, threads"));
}

TEST_CASE("config error: unknown section", "[config]") {
  REQUIRE(has_problem(yaml_error("data: {path: x}\nmodle: {d_model: 64}\n"),
                      "modle: unknown key; did you mean model?"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\nlogging: {level: info}\n"),
                      "logging: unknown key; valid keys at the top level are data, model, train, eval, run"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\noptimizer: {lr: 1}\n"),
                      "optimizer: unknown key; did you mean train.optimizer?"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\ntrain: {optimiser: {lr: 1}}\n"),
                      "train.optimiser: unknown key; did you mean train.optimizer?"));
}

TEST_CASE("config error: wrong types", "[config]") {
  auto check = [](const std::string& model_yaml, const std::string& line) {
    INFO(model_yaml);
    REQUIRE(has_problem(yaml_error("data: {path: x}\n" + model_yaml), line));
  };
  check("model: {d_model: abc}\n", "model.d_model: expected a positive integer, got abc");
  check("model: {d_model: \"128\"}\n", "model.d_model: expected a positive integer, got \"128\"");
  check("model: {d_model: 12.5}\n", "model.d_model: expected a positive integer, got 12.5");
  check("model: {d_model: [1, 2]}\n", "model.d_model: expected a positive integer, got a list [1, 2]");
  check("model: {d_model:}\n", "model.d_model: expected a positive integer, got nothing (null)");
  check("model: {dropout: high}\n", "model.dropout: expected a number in [0, 1), got high");
  check("model: {pre_lnorm: yes}\n", "model.pre_lnorm: expected true or false, got yes");
  check("model: {pre_lnorm: 1}\n", "model.pre_lnorm: expected true or false, got 1");
  check("train: {optimizer: {betas: 0.9}}\n",
        "train.optimizer.betas: expected a list of 2 numbers in [0, 1), got 0.9");
  check("train: {optimizer: {betas: [0.9, 0.99, 0.999]}}\n",
        "train.optimizer.betas: expected a list of 2 numbers in [0, 1), got a list [0.9, 0.99, 0.999]");
  check("run: {name: [a, b]}\n", "run.name: expected a string, got a list [a, b]");
  check("model: 5\n",
        "model: expected a mapping with keys n_layer, n_head, d_model, d_head, d_inner, dropout, dropatt, "
        "tgt_len, mem_len, pre_lnorm, same_length, clamp_len, init_std, attention, got 5");
  check("model: {d_model: {x: 1}}\n", "model.d_model: expected a positive integer, got a mapping {x: 1}");
  check("model: {d_model: 64, d_model: 32}\n", "model.d_model: duplicate key");
  REQUIRE(has_problem(yaml_error("- a\n- b\n"),
                      "(top level): expected a mapping with keys data, model, train, eval, run, got a list [a, b]"));
}

TEST_CASE("config error: out-of-range values", "[config]") {
  auto check = [](const std::string& yaml, const std::string& line) {
    INFO(yaml);
    REQUIRE(has_problem(yaml_error(yaml), line));
  };
  const std::string d = "data: {path: x}\n";
  check(d + "model: {d_model: -4}\n", "model.d_model: expected a positive integer, got -4");
  check(d + "model: {n_head: 0}\n", "model.n_head: expected a positive integer, got 0");
  check(d + "model: {dropout: 1.0}\n", "model.dropout: expected a number in [0, 1), got 1.0");
  check(d + "model: {dropatt: -0.1}\n", "model.dropatt: expected a number in [0, 1), got -0.1");
  check(d + "model: {mem_len: -1}\n", "model.mem_len: expected a non-negative integer, got -1");
  check(d + "train: {optimizer: {name: sgd}}\n",
        "train.optimizer.name: expected one of adam, adamw, adagrad, got \"sgd\"");
  check(d + "train: {schedule: {name: linear}}\n",
        "train.schedule.name: expected one of constant, cosine, inv_sqrt, got \"linear\"");
  check(d + "train: {device: tpu}\n", "train.device: expected one of cpu, cuda, got \"tpu\"");
  check(d + "train: {optimizer: {lr: 0}}\n", "train.optimizer.lr: expected a positive number, got 0.0");
  check(d + "train: {optimizer: {lr: .inf}}\n", "train.optimizer.lr: expected a positive number, got .inf");
  check(d + "train: {optimizer: {betas: [0.9, 1.0]}}\n",
        "train.optimizer.betas: expected a list of 2 numbers in [0, 1), got [0.9, 1.0]");
  check(d + "train: {optimizer: {weight_decay: -1e-4}}\n",
        "train.optimizer.weight_decay: expected a non-negative number, got -0.0001");
  check(d + "train: {clip: -1}\n", "train.clip: expected a non-negative number, got -1.0");
  check(d + "train: {schedule: {warmup_steps: -5}}\n",
        "train.schedule.warmup_steps: expected a non-negative integer, got -5");
  check(d + "eval: {mem_len: -2}\n", "eval.mem_len: expected an integer >= -1, got -2");
  check("data: {path: x, vocab: words}\n", "data.vocab: expected one of bytes, chars, got \"words\"");
  check("data: {path: x, split: [0.9, 0.2, 0.0]}\n",
        "data.split: fractions must sum to <= 1, got [0.9, 0.2, 0.0] (sum 1.1)");
  check("data: {path: x, split: [0.0, 0.5, 0.5]}\n",
        "data.split: the train fraction must be > 0, got [0.0, 0.5, 0.5]");
  check("data: {path: x, split: [1.5, 0.0, 0.0]}\n",
        "data.split: expected a list of 3 numbers in [0, 1], got [1.5, 0.0, 0.0]");
  // eval.mem_len = -1 (use model.mem_len) and split [1, 0, 0] are fine.
  REQUIRE(from_yaml("data: {path: x, split: [1, 0, 0]}\neval: {mem_len: -1}\n").eval.mem_len == -1);
}

TEST_CASE("config error: cross-field rules", "[config]") {
  REQUIRE(has_problem(yaml_error("model: {d_model: 64}\n"), "data: one of data.path or data.train is required"));
  REQUIRE(has_problem(yaml_error("data: {path: x, train: y}\n"),
                      "data: give either data.path (one file, split by data.split) or data.train, not both"));
  REQUIRE(has_problem(yaml_error("data: {path: x, valid: y}\n"),
                      "data.valid: only allowed together with data.train"));
  REQUIRE(has_problem(yaml_error("data: {path: x, test: y}\n"), "data.test: only allowed together with data.train"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\ntrain: {batch_size: 12, batch_chunk: 5}\n"),
                      "train.batch_chunk: must divide train.batch_size (12), got 5"));
  REQUIRE(has_problem(yaml_error("data: {path: x}\ntrain: {optimizer: {lr: 1e-4}, schedule: {min_lr: 1e-3}}\n"),
                      "train.schedule.min_lr: must be <= train.optimizer.lr (0.0001), got 0.001"));
}

TEST_CASE("config several errors are reported together in one exception", "[config]") {
  auto e = yaml_error(
      "data: {path: x}\n"
      "model: {dmodel: 64, dropout: 2, n_head: four}\n"
      "train: {optimizer: {name: sgd}}\n"
      "colour: blue\n");
  REQUIRE(e.problems().size() == 5);
  std::string msg = e.what();
  REQUIRE(msg.starts_with("config error in test.yaml:\n"));
  REQUIRE(msg.find("\n  model.dmodel: unknown key; did you mean model.d_model?") != std::string::npos);
  REQUIRE(msg.find("\n  model.dropout: expected a number in [0, 1), got 2.0") != std::string::npos);
  REQUIRE(msg.find("\n  model.n_head: expected a positive integer, got four") != std::string::npos);
  REQUIRE(msg.find("\n  train.optimizer.name: expected one of adam, adamw, adagrad, got \"sgd\"") !=
          std::string::npos);
  REQUIRE(msg.find("\n  colour: unknown key;") != std::string::npos);
  // It is a txl::Error like every other failure of the engine.
  REQUIRE_THROWS_AS(from_yaml("model: {dmodel: 1}\n"), txl::Error);
}

TEST_CASE("config overrides of nested keys and lists", "[config]") {
  Config c = from_yaml("data: {path: x}\ntrain: {optimizer: {name: adam}}\n",
                       {"train.optimizer.betas=[0.9,0.99]", "train.optimizer.name=adamw", "model.pre_lnorm=true",
                        "data.split=[0.8, 0.1, 0.1]", "model.d_model=256", " train.optimizer.lr = 1e-3",
                        "train.schedule={name: inv_sqrt, warmup_steps: 100}", "run.name=my run"});
  REQUIRE(c.train.optimizer.betas == std::array<double, 2>{0.9, 0.99});
  REQUIRE(c.train.optimizer.name == "adamw");
  REQUIRE(c.train.optimizer.lr == 1e-3);
  REQUIRE(c.model.pre_lnorm);
  REQUIRE(c.data.split == std::array<double, 3>{0.8, 0.1, 0.1});
  REQUIRE(c.model.d_model == 256);
  REQUIRE(c.train.schedule.name == "inv_sqrt");
  REQUIRE(c.train.schedule.warmup_steps == 100);
  REQUIRE(c.run.name == "my run");

  // Overrides come after the file: they may repair a value, or switch data sources.
  Config fixed = from_yaml("data: {path: x}\nmodel: {d_model: -4}\n", {"model.d_model=64"});
  REQUIRE(fixed.model.d_model == 64);
  Config files = from_yaml("data: {path: x}\n", {"data.path=", "data.train=a.txt", "data.valid=b.txt"});
  REQUIRE(files.data.path.empty());
  REQUIRE(files.data.train == "a.txt");

  // apply_overrides on a loaded config (`txl eval --mem-len 0`).
  apply_overrides(c, {"eval.mem_len=0", "eval.tgt_len=32"});
  REQUIRE(c.eval.mem_len == 0);
  REQUIRE(c.eval.tgt_len == 32);
  Config before = c;
  auto e = error_of([&] { apply_overrides(c, {"eval.mem_len=-3"}, "checkpoint"); });
  REQUIRE(std::string(e.what()).starts_with("config error in checkpoint: <override> eval.mem_len=-3"));
  REQUIRE(has_problem(e, "<override> eval.mem_len=-3: expected an integer >= -1, got -3"));
  REQUIRE(c == before);  // unchanged on error
}

TEST_CASE("config error: bad overrides", "[config]") {
  const std::string d = "data: {path: x}\n";
  REQUIRE(has_problem(yaml_error(d, {"model.dmodel=64"}),
                      "<override> model.dmodel=64: unknown key; did you mean model.d_model?"));
  REQUIRE(has_problem(yaml_error(d, {"train.optimiser.lr=1e-3"}),
                      "<override> train.optimiser.lr=1e-3: unknown key; did you mean train.optimizer.lr?"));
  REQUIRE(has_problem(yaml_error(d, {"lr=1e-3"}), "<override> lr=1e-3: unknown key; did you mean train.optimizer.lr?"));
  REQUIRE(has_problem(yaml_error(d, {"model.colour=red"}),
                      "<override> model.colour=red: unknown key; valid keys of model are n_layer, n_head, d_model, "
                      "d_head, d_inner, dropout, dropatt, tgt_len, mem_len, pre_lnorm, same_length, clamp_len, "
                      "init_std, attention"));
  REQUIRE(has_problem(yaml_error(d, {"model.d_model.x=1"}),
                      "<override> model.d_model.x=1: unknown key; model.d_model takes a value and has no keys"));
  REQUIRE(has_problem(yaml_error(d, {"model.d_model"}), "<override> model.d_model: expected key.path=value"));
  REQUIRE(has_problem(yaml_error(d, {"model.d_model=abc"}),
                      "<override> model.d_model=abc: expected a positive integer, got abc"));
  REQUIRE(has_problem(yaml_error(d, {"model.d_model=-4"}),
                      "<override> model.d_model=-4: expected a positive integer, got -4"));
  REQUIRE(has_problem(yaml_error(d, {"train.optimizer={lr: x}"}),
                      "<override> train.optimizer={lr: x}: train.optimizer.lr: expected a positive number, got x"));
  auto e = yaml_error(d, {"train.optimizer.betas=[0.9,"});
  REQUIRE(e.problems().size() == 1);
  REQUIRE(e.problems()[0].starts_with("<override> train.optimizer.betas=[0.9,: cannot parse the value as YAML"));
}

TEST_CASE("config error: missing file, directory, YAML syntax error", "[config]") {
  TempDir dir;
  std::string missing = (dir.path / "nope.yaml").string();
  auto e = error_of([&] { load_config(missing); });
  REQUIRE(std::string(e.what()) == "config error in " + missing + ": cannot read " + missing + ": no such file");
  REQUIRE_THROWS_AS(load_config(missing), txl::Error);

  auto d = error_of([&] { load_config(dir.path.string()); });
  REQUIRE(has_problem(d, "cannot read " + dir.path.string() + ": it is a directory"));

  std::string bad = dir.write("bad.yaml", "data: {path: x}\nmodel:\n  d_model: [1, 2\n  n_head: 4\n");
  auto s = error_of([&] { load_config(bad); });
  REQUIRE(s.problems().size() == 1);
  INFO(s.what());
  REQUIRE(s.problems()[0].starts_with(bad + ":"));
  REQUIRE(s.problems()[0].find(": invalid YAML: ") != std::string::npos);
  REQUIRE(std::string(s.what()).starts_with("config error in " + bad + ": " + bad + ":"));
  REQUIRE(std::string(s.what()).find('\n') == std::string::npos);  // one problem, one line

  auto t = yaml_error("model:\n  d_model: 1\n   n_head: 2\n");
  REQUIRE(t.problems().size() == 1);
  REQUIRE(t.problems()[0].starts_with("test.yaml:3:"));
}

TEST_CASE("config relative data paths resolve against the YAML file's directory", "[config]") {
  TempDir dir;
  dir.write("data/corpus.txt", "hello\n");
  std::string file = dir.write("configs/run.yaml", "data: {path: ../data/corpus.txt}\n");
  Config c = load_config(file);
  REQUIRE(fs::equivalent(c.data.path, dir.path / "data" / "corpus.txt"));
  REQUIRE(c.data.path == (dir.path / "data" / "corpus.txt").string());

  // Not found next to the YAML file: left relative to the current directory.
  std::string other = dir.write("configs/other.yaml", "data: {train: data/missing.txt, valid: /abs/v.txt}\n");
  Config o = load_config(other);
  REQUIRE(o.data.train == "data/missing.txt");
  REQUIRE(o.data.valid == "/abs/v.txt");

  // Paths from overrides are taken as written (relative to where txl runs).
  Config v = load_config(file, {"data.path=../data/corpus.txt"});
  REQUIRE(v.data.path == "../data/corpus.txt");
}

TEST_CASE("every bundled config loads, validates and round-trips", "[config]") {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(TXL_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    Config c = load_config(entry.path().string());
    CHECK(config_from_yaml_string(config_to_yaml(c), "roundtrip") == c);
    CHECK(LanguageModel::parameter_count(c.model, 256) > 0);
    ++n;
  }
  CHECK(n >= 10);
}
