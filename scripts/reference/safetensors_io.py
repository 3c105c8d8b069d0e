"""Minimal safetensors writer/reader (no `safetensors` package needed).

File layout (https://github.com/huggingface/safetensors, format section):
  8 bytes    little-endian uint64 N = length of the JSON header
  N bytes    UTF-8 JSON: {"<name>": {"dtype": "F64", "shape": [..], "data_offsets": [b, e]},
                          ..., "__metadata__": {"<str>": "<str>"}}   (padded with spaces to a
             multiple of 8 so the data section starts 8-byte aligned)
  rest       raw little-endian tensor bytes; offsets are relative to the data section.
Tensors are written in the order given (row-major, contiguous).
"""
import json
import struct

import numpy as np

_NP_OF = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def _code_of_torch(t):
    import torch
    return {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
        torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
    }[t.dtype]


def save_file(path, tensors, metadata=None):
    """tensors: ordered mapping name -> torch.Tensor or numpy array."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        if hasattr(t, "detach"):  # torch tensor
            code = _code_of_torch(t)
            arr = t.detach().cpu().contiguous().numpy()
        else:
            arr = np.asarray(t)
            code = {np.dtype("float64"): "F64", np.dtype("float32"): "F32",
                    np.dtype("int64"): "I64", np.dtype("int32"): "I32",
                    np.dtype("uint8"): "U8"}[arr.dtype]
        raw = np.ascontiguousarray(arr, dtype=_NP_OF[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load_file(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=_NP_OF[h["dtype"]])
        out[name] = arr.reshape(h["shape"]).copy()
    return out, meta
