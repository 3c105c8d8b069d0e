// `txl eval CHECKPOINT_OR_RUN_DIR [--data FILE] [--split train|valid|test|all] [--batch-size B]
//  [--tgt-len T] [--mem-len M] [--clamp-len C] [--same-length] [--device cpu|cuda]
//  [--precision fp32|bf16|auto] [--json] [model.KEY=VALUE ...]`
// The model.* overrides may change what does not define the weights: lengths and the
// variant's runtime keys (a longer compressed memory at test time, as the paper does).
// It scores on the run's train.device and train.precision, as the run's own
// evaluations did, unless told otherwise; a GPU run is scored on the CPU, with a note,
// where no GPU is visible.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/config/load.h"
#include "txl/core/threads.h"
#include "txl/data/corpus.h"
#include "txl/train/checkpoint.h"
#include "txl/train/evaluate.h"

namespace txl::cli {

int eval(const Context& ctx, const std::vector<std::string>& args) {
  std::string path, data, split, device_name, precision_name_arg;
  int64_t batch = -1, tgt = -1, mem = -2, clamp = -2;
  bool same_length = false, json = false;
  std::vector<std::string> overrides;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      TXL_CHECK(i + 1 < args.size(), "eval: {} needs a value", a);
      return args[++i];
    };
    if (a == "--data") data = value();
    else if (a == "--split") split = value();
    else if (a == "--batch-size") batch = parse_int(value(), a, 1);
    else if (a == "--tgt-len") tgt = parse_int(value(), a, 1);
    else if (a == "--mem-len") mem = parse_int(value(), a, 0);
    else if (a == "--clamp-len") clamp = parse_int(value(), a, -1);
    else if (a == "--same-length") same_length = true;
    else if (a == "--device") device_name = value();
    else if (a == "--precision") precision_name_arg = value();
    else if (a == "--json") json = true;
    else if (a.rfind("--", 0) == 0) TXL_FAIL("eval: unknown option '{}'", a);
    else if (a.find('=') != std::string::npos) overrides.push_back(a);
    else {
      TXL_CHECK(path.empty(), "eval: two checkpoints given ('{}' and '{}')", path, a);
      path = a;
    }
  }
  TXL_CHECK(!path.empty(), "eval: missing CHECKPOINT_OR_RUN_DIR (see txl --help)");
  if (split.empty()) split = data.empty() ? "valid" : "all";
  TXL_CHECK(split == "train" || split == "valid" || split == "test" || split == "all",
            "--split: expected train, valid, test or all, got '{}'", split);
  configure_threads(ctx.threads);

  TXL_CHECK(device_name.empty() || device_name == "cpu" || device_name == "cuda",
            "--device: expected cpu or cuda, got '{}'", device_name);
  TXL_CHECK(precision_name_arg.empty() || precision_name_arg == "fp32" || precision_name_arg == "bf16" ||
                precision_name_arg == "auto",
            "--precision: expected fp32, bf16 or auto, got '{}'", precision_name_arg);

  Checkpoint ck = load_checkpoint(path);
  // A variant scored in whole blocks carries caches its own keys size (adaptive span: its
  // span), not a memory of mem_len; the flag would be ignored without a word.
  TXL_CHECK(mem == -2 || !ck.model->attention_spec().eval_whole_blocks,
            "--mem-len: does not apply to attention type {}, which scores whole blocks over caches its own keys size "
            "(see txl attention show {}); leave --mem-len out and set the block length with --tgt-len",
            ck.config.model.attention.type, ck.config.model.attention.type);
  if (!overrides.empty()) {
    for (const std::string& o : overrides) {
      const std::string key = o.substr(0, o.find('='));
      TXL_CHECK(key.rfind("model.", 0) == 0, "eval: {}: only model.* keys can be overridden at evaluation", o);
      TXL_CHECK(!LanguageModel::is_architecture_key(ck.config.model, key.substr(6)),
                "eval: {}: {} defines the trained weights; it cannot change at evaluation", o, key);
    }
    apply_overrides(ck.config, overrides, "eval overrides");
    ck.model = rebuild_model(ck.config.model, *ck.model, ck.dir);
  }
  const Config& cfg = ck.config;
  std::vector<int32_t> tokens;
  std::string tokens_source;  // what the tokens are, for errors
  if (split == "all") {
    TXL_CHECK(!data.empty() || !cfg.data.path.empty(), "--split all needs --data FILE or a checkpoint with data.path");
    tokens_source = data.empty() ? cfg.data.path : data;
    tokens = load_tokens_file(tokens_source, ck.vocab);
  } else {
    DataConfig dc = cfg.data;
    if (!data.empty()) {
      dc = DataConfig{};
      dc.path = data;
      dc.split = cfg.data.split;
      dc.vocab = cfg.data.vocab;
    }
    Corpus corpus = load_corpus(dc, ck.vocab);
    tokens = split == "train" ? corpus.train : split == "valid" ? corpus.valid : corpus.test;
    tokens_source = fmt::format("the {} split of {}", split,
                                !dc.path.empty()   ? dc.path
                                : split == "train" ? dc.train
                                : split == "valid" ? dc.valid
                                                   : dc.test);
    TXL_CHECK(!tokens.empty(), "eval: {} is empty", tokens_source);
  }
  if (batch < 0) batch = cfg.eval.batch_size;
  if (tgt < 0) tgt = cfg.eval.tgt_len > 0 ? cfg.eval.tgt_len : cfg.model.tgt_len;
  if (mem == -2) mem = cfg.eval.mem_len >= 0 ? cfg.eval.mem_len : cfg.model.mem_len;
  if (clamp == -2) clamp = cfg.model.clamp_len;
  same_length = same_length || cfg.model.same_length;
  ck.model->set_lengths(mem, same_length, clamp);

  if (device_name.empty()) {
    device_name = cfg.train.device;
    if (device_name == "cuda" && device_count(DeviceType::cuda) == 0) {
      std::cerr << "eval: the run trained on cuda; no CUDA device is visible here, so it is scored on the cpu\n";
      device_name = "cpu";
    }
  }
  TXL_CHECK(device_name != "cuda" || device_count(DeviceType::cuda) > 0,
            "--device cuda: no CUDA device is visible (no driver or no GPU on this host, or a txl built without CUDA)");
  const Device device = training_device(device_name, 0);
  PrecisionScope precision(
      resolve_precision(precision_name_arg.empty() ? cfg.train.precision : precision_name_arg, device));
  ck.model->to(device);
  check_eval_tokens(*ck.model, static_cast<int64_t>(tokens.size()), batch, tgt, "eval: " + tokens_source,
                    "--batch-size", "--tgt-len");
  EvalResult r = evaluate(*ck.model, tokens, batch, tgt, 0, "eval: " + tokens_source);
  if (json) {
    nlohmann::json j = {{"nll", r.nll},         {"bpc", r.bpc()},      {"ppl", r.ppl()},   {"tokens", r.tokens},
                        {"tokens_per_s", r.tokens_per_s()}, {"split", split}, {"batch_size", batch},
                        {"tgt_len", tgt},       {"mem_len", mem},      {"clamp_len", clamp}, {"same_length", same_length},
                        {"attention", cfg.model.attention.type}, {"checkpoint", ck.dir},
                        {"device", device.str()}, {"precision", precision_name(matmul_precision())}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format("{} split of {}: nll {:.6f} nats/token | bpc {:.6f} | ppl {:.4f} | {} tokens | {:.0f} tok/s\n",
                             split, data.empty() ? ck.dir : data, r.nll, r.bpc(), r.ppl(), r.tokens, r.tokens_per_s());
    if (ck.model->attention_spec().eval_whole_blocks)
      std::cout << fmt::format("(attention {}: batch {} streams, whole blocks of {} from zero caches)\n",
                               cfg.model.attention.type, batch, tgt);
    else
      std::cout << fmt::format("(attention {}: batch {} streams, tgt_len {}, mem_len {}, clamp_len {}, same_length {})\n",
                               cfg.model.attention.type, batch, tgt, mem, clamp, same_length);
  }
  return 0;
}

}  // namespace txl::cli
