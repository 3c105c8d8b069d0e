// `txl train CONFIG [key.path=value ...] [--init CHECKPOINT] [--overwrite]`
// `txl train --resume RUN_DIR [key.path=value ...]`
#include "commands.h"
#include "txl/core/error.h"
#include "txl/train/trainer.h"

namespace txl::cli {

int train(const Context& ctx, const std::vector<std::string>& args) {
  TrainOptions opt;
  opt.threads = ctx.threads;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--resume" || a == "--init") {
      TXL_CHECK(i + 1 < args.size(), "train: {} needs a path", a);
      (a == "--resume" ? opt.resume_dir : opt.init_checkpoint) = args[++i];
    } else if (a == "--overwrite") {
      opt.overwrite = true;
    } else if (a.rfind("--", 0) == 0) {
      TXL_FAIL("train: unknown option '{}' (expected --init, --resume, --overwrite)", a);
    } else if (a.find('=') != std::string::npos) {
      opt.overrides.push_back(a);
    } else {
      TXL_CHECK(opt.config_path.empty(),
                "train: '{}' after the config '{}' is neither an override (key.path=value) nor an option", a,
                opt.config_path);
      opt.config_path = a;
    }
  }
  TXL_CHECK(opt.resume_dir.empty() || (opt.config_path.empty() && opt.init_checkpoint.empty()),
            "train: --resume continues a run from its own config; give no CONFIG or --init with it");
  TXL_CHECK(opt.resume_dir.empty() || !opt.overwrite,
            "train: --resume continues a run and --overwrite replaces one; give one of them");
  TXL_CHECK(!opt.resume_dir.empty() || !opt.config_path.empty(),
            "train: missing CONFIG (usage: txl train CONFIG.yaml [key.path=value ...] | txl train --resume RUN_DIR)");
  return run_training(opt);
}

}  // namespace txl::cli
