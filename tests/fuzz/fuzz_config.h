// Harness body: the YAML config loader (txl::config_from_yaml_string).
//
// Input: YAML text, optionally followed by a line "%%" and one `key.path=value`
// override per line. A config that loads must also read back from its own
// config_to_yaml() to an equal Config (what a checkpoint's config.yaml relies on).
#pragma once
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "txl/config/load.h"

namespace txl::fuzz {

inline void fuzz_config(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string yaml = input;
  std::vector<std::string> overrides;
  if (auto sep = input.find("\n%%\n"); sep != std::string::npos) {
    yaml = input.substr(0, sep);
    std::string rest = input.substr(sep + 4);
    for (size_t b = 0; b <= rest.size();) {
      size_t e = rest.find('\n', b);
      if (e == std::string::npos) e = rest.size();
      if (e > b) overrides.push_back(rest.substr(b, e - b));
      b = e + 1;
    }
  }
  // Checkpoint configs may lack a data source; files given to `txl train` may not.
  const bool require_data = size % 2 == 0;
  const Config cfg = config_from_yaml_string(yaml, "fuzz.yaml", overrides, require_data);
  const std::string written = config_to_yaml(cfg);
  Config again;
  try {
    again = config_from_yaml_string(written, "fuzz.yaml (written back)", {}, require_data);
  } catch (const Error& e) {
    bug(std::string("a loaded config does not read back from config_to_yaml: ") + e.what() + "\n" + written);
  }
  if (!(again == cfg)) bug("config_to_yaml does not read back to an equal config:\n" + written);
}

}  // namespace txl::fuzz
