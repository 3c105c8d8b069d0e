// Vocab construction, encode/decode and its JSON form. Errors name the offending
// byte (value and, when printable, the character) and where it was found. Not a
// tokenizer: one byte is one token.
#include "txl/data/vocab.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "txl/core/error.h"

namespace txl {

namespace {

std::string describe_byte(uint8_t b) {
  if (b >= 0x20 && b < 0x7f) return fmt::format("byte {} ('{}')", b, static_cast<char>(b));
  if (b == '\n') return fmt::format("byte {} ('\\n')", b);
  return fmt::format("byte {} (0x{:02x})", b, b);
}

std::vector<uint8_t> distinct_sorted(std::string_view text) {
  std::array<bool, 256> seen{};
  for (char c : text) seen[static_cast<uint8_t>(c)] = true;
  std::vector<uint8_t> out;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) out.push_back(static_cast<uint8_t>(b));
  return out;
}

std::vector<uint8_t> all_bytes() {
  std::vector<uint8_t> out(256);
  for (int b = 0; b < 256; ++b) out[b] = static_cast<uint8_t>(b);
  return out;
}

}  // namespace

Vocab::Vocab(std::string kind, std::vector<uint8_t> symbols) : kind_(std::move(kind)), symbols_(std::move(symbols)) {
  for (size_t i = 0; i < symbols_.size(); ++i) {
    uint8_t b = symbols_[i];
    TXL_CHECK(ids_[b] < 0, "vocab: {} appears twice in the symbol list", describe_byte(b));
    ids_[b] = static_cast<int32_t>(i);
  }
}

Vocab Vocab::bytes() { return Vocab("bytes", all_bytes()); }

Vocab Vocab::chars(std::string_view training_text) {
  TXL_CHECK(!training_text.empty(), "vocab: cannot build a \"chars\" vocab from an empty training split");
  return Vocab("chars", distinct_sorted(training_text));
}

Vocab Vocab::of_kind(const std::string& kind, std::string_view training_text) {
  if (kind == "bytes") return bytes();
  if (kind == "chars") return chars(training_text);
  TXL_FAIL("vocab: unknown kind \"{}\" (expected \"bytes\" or \"chars\")", kind);
}

int32_t Vocab::id_of(uint8_t byte) const {
  TXL_CHECK(ids_[byte] >= 0, "{} is not in the {} vocab ({} symbols)", describe_byte(byte), kind_, size());
  return ids_[byte];
}

uint8_t Vocab::symbol(int32_t id) const {
  TXL_CHECK(id >= 0 && id < size(), "token id {} is out of range for the {} vocab ({} symbols)", id, kind_, size());
  return symbols_[static_cast<size_t>(id)];
}

std::vector<int32_t> Vocab::encode(std::string_view text, std::string_view where) const {
  TXL_CHECK(size() > 0, "vocab: encode with an empty vocab ({})", where);
  std::vector<int32_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    uint8_t b = static_cast<uint8_t>(text[i]);
    int32_t id = ids_[b];
    TXL_CHECK(id >= 0, "{} at offset {} of {} is not in the {} vocab ({} symbols, built from the training split)",
              describe_byte(b), i, where, kind_, size());
    out[i] = id;
  }
  return out;
}

std::string Vocab::decode(const std::vector<int32_t>& ids) const {
  std::string out(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) out[i] = static_cast<char>(symbol(ids[i]));
  return out;
}

nlohmann::json Vocab::to_json() const { return nlohmann::json{{"kind", kind_}, {"symbols", symbols_}}; }

Vocab Vocab::from_json(const nlohmann::json& j) {
  TXL_CHECK(j.is_object() && j.contains("kind") && j.contains("symbols"),
            "vocab JSON: expected an object with \"kind\" and \"symbols\"");
  TXL_CHECK(j["kind"].is_string(), "vocab JSON: \"kind\" must be a string");
  TXL_CHECK(j["symbols"].is_array(), "vocab JSON: \"symbols\" must be an array of byte values");
  std::string kind = j["kind"].get<std::string>();
  TXL_CHECK(kind == "bytes" || kind == "chars", "vocab JSON: unknown kind \"{}\" (expected \"bytes\" or \"chars\")",
            kind);
  std::vector<uint8_t> symbols;
  for (const auto& s : j["symbols"]) {
    TXL_CHECK(s.is_number_integer() && s.get<int64_t>() >= 0 && s.get<int64_t>() < 256,
              "vocab JSON: symbol {} is not a byte value 0..255", s.dump());
    symbols.push_back(static_cast<uint8_t>(s.get<int64_t>()));
  }
  TXL_CHECK(!symbols.empty(), "vocab JSON: the symbol list is empty");
  if (kind == "bytes") TXL_CHECK(symbols == all_bytes(), "vocab JSON: a \"bytes\" vocab must list 0..255 in order");
  return Vocab(std::move(kind), std::move(symbols));
}

void Vocab::save(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  TXL_CHECK(f.good(), "vocab: cannot write {}", path);
  f << to_json().dump() << '\n';
  f.close();
  TXL_CHECK(f.good(), "vocab: writing {} failed", path);
}

Vocab Vocab::load(const std::string& path) {
  std::error_code ec;
  TXL_CHECK(std::filesystem::exists(path, ec), "vocab: {} does not exist", path);
  TXL_CHECK(!std::filesystem::is_directory(path, ec), "vocab: {} is a directory, not a vocab file", path);
  std::ifstream f(path, std::ios::binary);
  TXL_CHECK(f.good(), "vocab: cannot open {} (missing or unreadable)", path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  TXL_CHECK(!j.is_discarded(), "vocab: {} is not valid JSON (corrupt vocab file)", path);
  try {
    return from_json(j);
  } catch (const Error& e) {
    TXL_FAIL("vocab: {} is corrupt: {}", path, e.what());
  }
}

}  // namespace txl
