#!/usr/bin/env bash
# txl kernels vs PyTorch on the same shapes, side by side.
#
# Usage: scripts/bench_ops.sh [--quick] [--repeats N]     (arguments go to `txl bench ops`)
#
# Runs `build/bin/txl bench ops --json`, then scripts/bench_ops_torch.py on the same cases
# with Debian's python3-torch (2 threads, float32, OPENBLAS_NUM_THREADS=1), and prints one
# table: txl GFLOP/s or GB/s, its fraction of the ceiling measured in the same run (oneDNN
# peak / memcpy), torch's figure, and txl/torch = torch_ms / txl_ms (>1: txl faster).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TXL=build/bin/txl
PY=/usr/bin/python3
if [[ ! -x "$TXL" ]]; then
  echo "error: $TXL not found; build it first with scripts/setup.sh" >&2
  exit 1
fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "error: $PY cannot import torch; install Debian's python3-torch (apt-get install python3-torch)" >&2
  exit 1
fi

# Same repeat count as txl: 20 by default, 3 under --quick, N under --repeats N (last one wins).
repeats=20
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --quick) repeats=3 ;;
    --repeats) repeats="${args[i + 1]:-20}" ;;
  esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons (e.g. family 6 model 0xCF) and
# falls back to its SSE3 "Prescott" kernels, several times slower than its AVX-512 ones. Unless
# the caller chose a core type, pick the right kernel family from the CPU flags so that the
# baseline runs at its fastest.
probe_core() {
  OPENBLAS_NUM_THREADS=1 "$PY" - <<'EOF'
import ctypes, os
core = "unknown"
import torch  # noqa: F401  (loads libblas.so.3 -> OpenBLAS through Debian's alternatives)
with open("/proc/self/maps") as fh:
    paths = sorted({l.split()[-1] for l in fh if "libopenblas" in l and len(l.split()) >= 6})
for p in paths:
    try:
        lib = ctypes.CDLL(p)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
        break
    except (OSError, AttributeError):
        pass
print(core)
EOF
}
torch_env=(OPENBLAS_NUM_THREADS=1)
core_note=""
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  detected=$(probe_core 2>/dev/null || echo unknown)
  flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
  want="" isa=""
  if [[ " $flags " == *" avx512f "* ]]; then
    want=SkylakeX isa=AVX-512
  elif [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    want=Haswell isa=AVX2
  fi
  case "$detected" in
    Prescott | Core2 | Penryn | Dunnington | Nehalem | Atom | Katmai | Coppermine | Northwood | Banias | unknown)
      if [[ -n "$want" ]]; then
        torch_env+=(OPENBLAS_CORETYPE="$want")
        core_note="note: OpenBLAS picks its '$detected' kernels on this $isa CPU; torch runs with OPENBLAS_CORETYPE=$want"
      fi
      ;;
  esac
fi

"$TXL" bench ops --json "$@" >"$tmp/txl.json"
env "${torch_env[@]}" "$PY" scripts/bench_ops_torch.py "$tmp/txl.json" --repeats "$repeats" >"$tmp/torch.json"

echo "== txl bench ops vs PyTorch ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
blas_line=$("$PY" -c 'import torch; print(next((p.strip() for l in torch.__config__.show().splitlines() for p in l.split(",") if "BLAS_INFO" in p), "BLAS_INFO not reported"))' 2>/dev/null)
echo "torch.__config__.show(): ${blas_line#- Build settings: } (Debian routes libblas.so.3 to the library shown below)"
if ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  echo "WARNING: libopenblas0-pthread is not installed: torch falls back to the reference BLAS and the"
  echo "         baseline is not at its fastest (apt-get install libopenblas0-pthread)."
fi
if [[ -n "$core_note" ]]; then echo "$core_note"; fi
echo
"$PY" scripts/bench_join.py "$tmp/txl.json" "$tmp/torch.json"
