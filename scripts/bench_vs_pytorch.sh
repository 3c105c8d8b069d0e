#!/usr/bin/env bash
# Training-step speed of txl against our PyTorch reference model, measured in the same
# run on the same machine: forward + backward + clip + Adam, fp32, full memories, median
# of repeats after warm-up. Shapes: (a) the default shakespeare model (4 x 128, tgt/mem 64,
# batch 12) and (b) the enwik8 base model (12 x 512, 8 heads of 64, d_inner 2048,
# tgt/mem 512, batch 1). PyTorch runs at its fastest settings here: OPENBLAS_NUM_THREADS=1
# with 2 and with 1 intra-op threads, the faster of the two is the baseline.
#   usage: scripts/bench_vs_pytorch.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
txl=build/bin/txl
[ -x "$txl" ] || { echo "error: $txl not found; run scripts/setup.sh first" >&2; exit 1; }
repeats=10
[ "${1:-}" = "--quick" ] && repeats=3
ref=scripts/reference/mem_transformer_ref.py
# OpenBLAS 0.3.21 does not recognise newer Xeons and falls back to its SSE3 kernels;
# the AVX-512 ones are what PyTorch would use on a CPU it knows (unless the user chose).
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}"
out=$(mktemp -d)

run_shape() {  # name config overrides reference-flags
  local name=$1 cfg=$2 overrides=$3 flags=$4 r=$5
  "$txl" bench train "$cfg" $overrides --vocab 256 --repeats "$r" --json > "$out/$name.txl.json"
  for t in 2 1; do
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$ref" bench-step $flags --vocab 256 --repeats "$r" --threads "$t" \
      > "$out/$name.torch$t.json"
  done
}

run_shape shakespeare configs/shakespeare_txl.yaml "" \
  "--n_layer 4 --d_model 128 --n_head 4 --d_head 32 --d_inner 512 --tgt_len 64 --mem_len 64 --batch 12 --clip 1.0" \
  $((repeats * 3))
run_shape enwik8_base configs/enwik8_txl_base.yaml "train.batch_size=1 model.dropout=0.0" \
  "--n_layer 12 --d_model 512 --n_head 8 --d_head 64 --d_inner 2048 --tgt_len 512 --mem_len 512 --batch 1 --clip 0.25" \
  "$repeats"

/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print(f"{'shape':<14} {'txl ms/step':>12} {'txl tok/s':>10} {'torch ms (2 thr)':>17} {'torch ms (1 thr)':>17} "
      f"{'baseline tok/s':>15} {'speed-up':>9}")
for name in ("shakespeare", "enwik8_base"):
    t = json.load(open(f"{out}/{name}.txl.json"))
    p2 = json.load(open(f"{out}/{name}.torch2.json"))
    p1 = json.load(open(f"{out}/{name}.torch1.json"))
    base = min(p2["ms_per_step"], p1["ms_per_step"])
    tokens = t["tokens_per_step"]
    print(f"{name:<14} {t['ms_per_step']:>12.1f} {t['tokens_per_s']:>10.0f} {p2['ms_per_step']:>17.1f} "
          f"{p1['ms_per_step']:>17.1f} {tokens / base * 1e3:>15.0f} {base / t['ms_per_step']:>8.2f}x")
PY
rm -rf "$out"
