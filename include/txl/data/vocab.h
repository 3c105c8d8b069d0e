// Vocab: the map between bytes and token ids for a character-level corpus.
// Two kinds: "bytes" (256 ids, id = byte value) and "chars" (the distinct bytes of
// the training split, sorted ascending by byte value; id = rank). It knows nothing
// of files beyond its own JSON (save/load); reading corpora lives in corpus.h.
// Not the reference repos' frequency-ordered vocabularies (MODELS.md §8.1): those
// are mapped by converters, never assumed here.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace txl {

class Vocab {
 public:
  Vocab() = default;  // empty (size 0); encode/decode fail until assigned
  static Vocab bytes();
  static Vocab chars(std::string_view training_text);
  // kind "bytes" or "chars"; `training_text` is only read for "chars".
  static Vocab of_kind(const std::string& kind, std::string_view training_text);

  const std::string& kind() const { return kind_; }
  int64_t size() const { return static_cast<int64_t>(symbols_.size()); }
  bool contains(uint8_t byte) const { return ids_[byte] >= 0; }
  int32_t id_of(uint8_t byte) const;  // throws when absent
  uint8_t symbol(int32_t id) const;   // throws when out of range
  const std::vector<uint8_t>& symbols() const { return symbols_; }

  // `where` names the text in errors (a file path, "valid split", ...).
  std::vector<int32_t> encode(std::string_view text, std::string_view where = "input") const;
  std::string decode(const std::vector<int32_t>& ids) const;

  // {"kind": "...", "symbols": [byte values in id order]}
  nlohmann::json to_json() const;
  static Vocab from_json(const nlohmann::json& j);
  void save(const std::string& path) const;
  static Vocab load(const std::string& path);

  bool operator==(const Vocab& o) const { return kind_ == o.kind_ && symbols_ == o.symbols_; }

 private:
  Vocab(std::string kind, std::vector<uint8_t> symbols);

  std::string kind_;
  std::vector<uint8_t> symbols_;                  // id -> byte
  std::array<int32_t, 256> ids_ = make_absent();  // byte -> id, -1 when absent

  static std::array<int32_t, 256> make_absent() {
    std::array<int32_t, 256> a{};
    a.fill(-1);
    return a;
  }
};

}  // namespace txl
