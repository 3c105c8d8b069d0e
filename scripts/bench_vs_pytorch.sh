#!/usr/bin/env bash
# Training-step speed of txl against our PyTorch references, measured in the same run on
# the same machine: forward + backward + clip + optimizer step, full memories / caches,
# median of repeats after warm-up, in fp32 and with bf16 matrix products (txl
# train.precision=bf16; PyTorch torch.autocast("cpu", dtype=torch.bfloat16)).
# Shapes: Transformer-XL (a) the default shakespeare model (4 x 128, tgt/mem 64, batch 12)
# and (b) the enwik8 base model (12 x 512, 8 heads of 64, d_inner 2048, tgt/mem 512,
# batch 1); adaptive span (c) the shakespeare model (4 x 128, span 256, block 64, batch
# 12) and (d) the enwik8 small model (12 x 512, inner 2048, span 8192, block 512, batch 1)
# with spans at their start (z' = 0, trimmed). PyTorch runs at its fastest settings here:
# OPENBLAS_NUM_THREADS=1 with 2 and with 1 intra-op threads; its fastest setting of all
# is the baseline. This VM's speed drifts by up to 2x over minutes (other tenants), so each
# shape runs in alternating rounds (txl, then PyTorch, per precision) and each side's
# fastest round counts: a slow spell then hits both sides rather than one.
#   usage: scripts/bench_vs_pytorch.sh [--quick]   (quick: one round of 3 repeats)
set -euo pipefail
cd "$(dirname "$0")/.."
txl=build/bin/txl
[ -x "$txl" ] || { echo "error: $txl not found; run scripts/setup.sh first" >&2; exit 1; }
repeats=5
rounds=2
if [ "${1:-}" = "--quick" ]; then repeats=3; rounds=1; fi
# OpenBLAS 0.3.21 does not recognise newer Xeons and falls back to its SSE3 kernels;
# the AVX-512 ones are what PyTorch would use on a CPU it knows (unless the user chose).
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}"
out=$(mktemp -d)
native_bf16=$("$txl" info --system | grep -q "native bf16: yes" && echo yes || echo no)

run_shape() {  # name reference-script config overrides reference-flags repeats
  local name=$1 ref=$2 cfg=$3 overrides=$4 flags=$5 r=$6
  for k in $(seq 1 "$rounds"); do
    for p in fp32 bf16; do
      [ "$p" = bf16 ] && [ "$native_bf16" = no ] && continue
      "$txl" bench train "$cfg" $overrides train.precision=$p --vocab 256 --repeats "$r" --json | tail -n 1 \
        > "$out/$name.txl.$p.r$k.json"
      for t in 2 1; do
        extra=""
        [ "$p" = bf16 ] && extra="--bf16"
        OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$ref" bench-step $flags $extra --vocab 256 --repeats "$r" \
          --threads "$t" | tail -n 1 > "$out/$name.torch.$p.$t.r$k.json"
      done
    done
  done
}

txl_ref=scripts/reference/mem_transformer_ref.py
span_ref=scripts/reference/adaptive_span_ref.py
run_shape txl_shakespeare $txl_ref configs/shakespeare_txl.yaml "" \
  "--n_layer 4 --d_model 128 --n_head 4 --d_head 32 --d_inner 512 --tgt_len 64 --mem_len 64 --batch 12 --clip 1.0" \
  $((repeats * 3))
run_shape txl_enwik8_base $txl_ref configs/enwik8_txl_base.yaml "train.batch_size=1 model.dropout=0.0" \
  "--n_layer 12 --d_model 512 --n_head 8 --d_head 64 --d_inner 2048 --tgt_len 512 --mem_len 512 --batch 1 --clip 0.25" \
  "$repeats"
run_shape span_shakespeare $span_ref configs/shakespeare_adaptive_span.yaml "" \
  "--nlayers 4 --hid-sz 128 --inner-hid-sz 512 --nheads 4 --attn-span 256 --block-sz 64 --adapt-span \
   --adapt-span-ramp 32 --adapt-span-loss 2e-6 --batch 12 --clip 0.03" $((repeats * 3))
run_shape span_enwik8_small $span_ref configs/enwik8_adaptive_span_small.yaml \
  "train.batch_size=1 train.batch_chunk=1 model.dropout=0.0" \
  "--nlayers 12 --hid-sz 512 --inner-hid-sz 2048 --nheads 8 --attn-span 8192 --block-sz 512 --adapt-span \
   --adapt-span-ramp 32 --adapt-span-loss 5e-7 --batch 1 --clip 0.03" "$repeats"

/usr/bin/python3 - "$out" "$native_bf16" "$rounds" <<'PY'
import json, os, sys
out, native = sys.argv[1], sys.argv[2] == "yes"
precisions = ["fp32", "bf16"] if native else ["fp32"]
def load(stem):
    """The fastest round of one measurement (each round's figure is a median of repeats)."""
    runs = []
    k = 1
    while os.path.exists(f"{stem}.r{k}.json"):
        runs.append(json.load(open(f"{stem}.r{k}.json")))
        k += 1
    return min(runs, key=lambda j: j["ms_per_step"]) if runs else None
print(f"{'shape':<18} {'prec':<5} {'txl ms':>8} {'txl tok/s':>10} {'torch ms 2thr':>14} {'torch ms 1thr':>14}")
summary = []
for name in ("txl_shakespeare", "txl_enwik8_base", "span_shakespeare", "span_enwik8_small"):
    best_txl, best_torch, fp32_txl, fp32_torch = None, None, None, None
    for p in precisions:
        t = load(f"{out}/{name}.txl.{p}")
        p2, p1 = load(f"{out}/{name}.torch.{p}.2"), load(f"{out}/{name}.torch.{p}.1")
        if not (t and p2 and p1):
            continue
        torch_ms = min(p2["ms_per_step"], p1["ms_per_step"])
        print(f"{name:<18} {p:<5} {t['ms_per_step']:>8.1f} {t['tokens_per_s']:>10.0f} {p2['ms_per_step']:>14.1f} "
              f"{p1['ms_per_step']:>14.1f}")
        best_txl = t["ms_per_step"] if best_txl is None else min(best_txl, t["ms_per_step"])
        best_torch = torch_ms if best_torch is None else min(best_torch, torch_ms)
        if p == "fp32":
            fp32_txl, fp32_torch = t["ms_per_step"], torch_ms
    if best_txl:
        summary.append((name, best_torch / best_txl, fp32_torch / fp32_txl))
print()
print(f"{'shape':<18} {'txl best vs PyTorch best':>25} {'txl fp32 vs PyTorch fp32':>25}")
for name, best, fp32 in summary:
    print(f"{name:<18} {best:>24.2f}x {fp32:>24.2f}x")
print(f"\n(native bf16 on this CPU: {'yes' if native else 'no'}; each figure: the fastest of {sys.argv[3]} round(s), "
      f"each a median of repeats; targets: best vs best >= 2x, fp32 vs fp32 >= 1.5x)")
PY
rm -rf "$out"
