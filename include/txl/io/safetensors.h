// safetensors files: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw data. Writes are atomic (temp
// file, fsync, rename, fsync of the directory); reads verify every header field.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Throws txl::Error naming the file for a missing, truncated or malformed file.
std::map<std::string, Tensor> load_safetensors(const std::string& path,
                                               std::map<std::string, std::string>* metadata = nullptr);

// The same format in memory (checkpoint state gathered from data-parallel ranks);
// `source` names the bytes in errors.
std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});
std::map<std::string, Tensor> decode_safetensors(const std::string& bytes, const std::string& source,
                                                 std::map<std::string, std::string>* metadata = nullptr);

// CRC-32 (IEEE 802.3, as zlib) of n bytes as 8 hex digits: the checksums the files of
// a checkpoint carry in their metadata.
std::string crc32_hex(const char* data, size_t n);

// Writes `bytes` to `path` atomically (used for every file a run depends on).
void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path, const char* what);

}  // namespace txl
