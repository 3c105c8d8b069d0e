// The one config loader of txl: YAML file (or text) + `key.path=value` overrides
// -> a validated txl::Config, and back to YAML. Every problem found (unknown keys,
// wrong types, out-of-range values, cross-field rules, bad overrides) is collected
// and reported together in one ConfigError whose message reads
//   config error in <file>:
//     model.d_model: expected a positive integer, got -4
//     model.dmodel: unknown key; did you mean model.d_model?
#pragma once
#include <string>
#include <vector>

#include "txl/config/config.h"
#include "txl/core/error.h"

namespace txl {

// All problems of one config source; what() is the full multi-line message.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& source, std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Reads the YAML file, resolves relative data paths (see load.cc), applies the
// overrides (`train.optimizer.lr=1e-3`, `train.optimizer.betas=[0.9,0.99]`),
// validates and returns the config. Throws ConfigError.
Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});

// Same from YAML text (tests, a checkpoint's stored config); source_name only
// names the source in messages, data paths are taken as written. A checkpoint's
// config may lack a data source (an imported model): pass require_data_source=false.
Config config_from_yaml_string(const std::string& text, const std::string& source_name,
                               const std::vector<std::string>& overrides = {}, bool require_data_source = true);

// Applies overrides to an already loaded config and validates the result
// (`txl eval --mem-len 0` style reuse). Throws ConfigError naming `source`.
void apply_overrides(Config& cfg, const std::vector<std::string>& overrides,
                     const std::string& source = "<command line>");

// Checks every range and cross-field rule; throws ConfigError naming `source`.
void validate_config(const Config& cfg, const std::string& source);

// The fully resolved config, every key included, as YAML that load_config and
// config_from_yaml_string read back to an equal Config.
std::string config_to_yaml(const Config& cfg);

// Every leaf key path ("model.d_model", ...) in the order config_to_yaml writes them.
std::vector<std::string> config_keys();

}  // namespace txl
