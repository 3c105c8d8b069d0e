// safetensors reader/writer and the atomic file write every checkpoint uses.
#include "txl/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "txl/ops/elementwise.h"

namespace txl {

namespace {

const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::b8: return "BOOL";
    case DType::bf16: return "BF16";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {{"F32", DType::f32}, {"F64", DType::f64}, {"I32", DType::i32},
                                                        {"I64", DType::i64}, {"BOOL", DType::b8}, {"U8", DType::b8},
                                                        {"BF16", DType::bf16}};
  for (const auto& [name, dt] : table)
    if (s == name) {
      *out = dt;
      return true;
    }
  return false;
}

constexpr const char* kFormatKey = "txl_format_version";
constexpr const char* kFormatVersion = "1";

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string crc32_hex(const char* data, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<unsigned char>(data[i])) & 0xFF] ^ (c >> 8);
  return fmt::format("{:08x}", c ^ 0xFFFFFFFFu);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()))).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  TXL_CHECK(fd >= 0, "{}: cannot write ({})", tmp, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      TXL_FAIL("{}: write failed after {} of {} bytes ({}); the previous file is untouched", path, done, bytes.size(),
               std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    TXL_FAIL("{}: flushing to disk failed ({}); the previous file is untouched", path, std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    TXL_FAIL("{}: rename failed ({})", path, std::strerror(err));
  }
  fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  TXL_CHECK(f.good(), "{}: cannot open {} ({})", path, what,
            std::filesystem::exists(path) ? "permission denied or not a file" : "no such file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::map<std::string, std::string> meta = metadata;
  meta[kFormatKey] = kFormatVersion;
  std::vector<Tensor> contiguous_tensors;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    // A device tensor is written from a dense host copy.
    Tensor c = !t.device().is_cpu() ? t.to(cpu_device()) : t.is_contiguous() ? t : contiguous_copy(t);
    size_t bytes = c.numel() * dtype_size(c.dtype());
    meta["crc32:" + name] = crc32_hex(static_cast<const char*>(c.raw_data()), bytes);
    header[name] = {{"dtype", st_dtype(c.dtype())}, {"shape", c.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous_tensors.push_back(c);
  }
  header["__metadata__"] = meta;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const Tensor& c : contiguous_tensors)
    out.append(static_cast<const char*>(c.raw_data()), c.numel() * dtype_size(c.dtype()));
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

std::map<std::string, Tensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  return decode_safetensors(read_file(path, "safetensors file"), path, metadata);
}

std::map<std::string, Tensor> decode_safetensors(const std::string& bytes, const std::string& path,
                                                 std::map<std::string, std::string>* metadata) {
  TXL_CHECK(bytes.size() >= 8, "{}: not a safetensors file (only {} bytes)", path, bytes.size());
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  TXL_CHECK(n > 0 && n <= bytes.size() - 8, "{}: corrupt safetensors header (length {} for a {}-byte file)", path, n,
            bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, n));
  } catch (const std::exception& e) {
    TXL_FAIL("{}: corrupt safetensors header ({})", path, e.what());
  }
  TXL_CHECK(header.is_object(), "{}: corrupt safetensors header (not a JSON object)", path);
  const size_t data_start = 8 + n, data_len = bytes.size() - data_start;
  std::map<std::string, std::string> meta;
  if (header.contains("__metadata__") && header["__metadata__"].is_object())
    for (auto m = header["__metadata__"].begin(); m != header["__metadata__"].end(); ++m)
      meta[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
  // Files written by txl carry a format version and a checksum per tensor; files from
  // other writers (an imported reference model) are checked for structure only.
  const bool ours = meta.count(kFormatKey) > 0;
  TXL_CHECK(!ours || meta[kFormatKey] == kFormatVersion, "{}: format version {} is not supported (expected {})", path,
            meta[kFormatKey], kFormatVersion);
  if (metadata) *metadata = meta;
  std::map<std::string, Tensor> out;
  uint64_t data_end = 0;  // where the last tensor's data ends
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& e = it.value();
    DType dt;
    TXL_CHECK(e.is_object() && e.contains("dtype") && e["dtype"].is_string() && parse_dtype(e["dtype"], &dt),
              "{}: tensor '{}' has a missing or unknown dtype", path, it.key());
    TXL_CHECK(e.contains("shape") && e["shape"].is_array() && e.contains("data_offsets") &&
                  e["data_offsets"].is_array() && e["data_offsets"].size() == 2,
              "{}: tensor '{}' lacks shape or data_offsets", path, it.key());
    Shape shape;
    // Byte size of the shape, overflow-checked (zero extents aside, so that the strides
    // of an empty tensor fit too): a header may claim any numbers.
    uint64_t extent = dtype_size(dt), nbytes = extent;
    for (const auto& d : e["shape"]) {
      TXL_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, "{}: tensor '{}' has a bad shape", path, it.key());
      shape.push_back(d.get<int64_t>());
      TXL_CHECK(shape.back() == 0 || !__builtin_mul_overflow(extent, static_cast<uint64_t>(shape.back()), &extent),
                "{}: tensor '{}' has a shape too large for any file", path, it.key());
      nbytes *= static_cast<uint64_t>(shape.back());
    }
    TXL_CHECK(extent <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
              "{}: tensor '{}' has a shape too large for any file", path, it.key());
    TXL_CHECK(e["data_offsets"][0].is_number_unsigned() && e["data_offsets"][1].is_number_unsigned(),
              "{}: tensor '{}' has data_offsets that are not two non-negative integers", path, it.key());
    const uint64_t b = e["data_offsets"][0].get<uint64_t>(), f = e["data_offsets"][1].get<uint64_t>();
    TXL_CHECK(b <= f && f <= data_len && f - b == nbytes,
              "{}: tensor '{}' byte range [{}, {}) does not fit its shape {} {} or the file (truncated?)", path,
              it.key(), b, f, dtype_name(dt), shape_str(shape));
    data_end = std::max(data_end, f);
    if (ours) {
      auto c = meta.find("crc32:" + it.key());
      TXL_CHECK(c != meta.end(), "{}: tensor '{}' has no checksum", path, it.key());
      const std::string actual = crc32_hex(bytes.data() + data_start + b, f - b);
      TXL_CHECK(c->second == actual, "{}: checksum mismatch for tensor '{}' (stored {}, computed {}): the file is corrupt",
                path, it.key(), c->second, actual);
    }
    Tensor t = Tensor::empty(shape, dt);
    if (f > b) std::memcpy(t.raw_data(), bytes.data() + data_start + b, f - b);
    out.emplace(it.key(), t);
  }
  // A safetensors file ends with its last tensor (the format leaves no room after it);
  // no checksum covers bytes beyond, so they are refused rather than ignored.
  TXL_CHECK(data_end == data_len, "{}: corrupt safetensors file ({} bytes after the tensors' data)", path,
            data_len - data_end);
  return out;
}

}  // namespace txl
