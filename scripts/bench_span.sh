#!/usr/bin/env bash
# Adaptive span's promise: the cost follows the learned span, not the maximum. Times one
# training step (txl bench train, median) of the tiny-shakespeare adaptive-span shape at
# maximum spans S = 1024 and 8192, once with the spans shrunk to 0 (what the span loss
# drives most heads to: keys and cache trimmed to ramp + a 64 multiple) and once with
# every span at the maximum (z' = 1: nothing trimmed), all in one run on this machine.
#   usage: scripts/bench_span.sh [REPEATS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-5}"
txl=build/bin/txl
[ -x "$txl" ] || { echo "error: $txl not found; run scripts/setup.sh first" >&2; exit 1; }
out=runs/bench_span
mkdir -p "$out"
for S in 1024 8192; do
  for z in 0.0 1.0; do
    "$txl" bench train configs/shakespeare_adaptive_span.yaml model.attention.span=$S model.attention.init=$z \
      --json --repeats "$repeats" | tail -n 1 > "$out/S${S}_z${z}.json"
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = {}
for S in (1024, 8192):
    for z in ("0.0", "1.0"):
        rows[(S, z)] = json.load(open(f"{out}/S{S}_z{z}.json"))
print(f"{'max span S':>10} {'spans':>14} {'ms/step':>9} {'tokens/s':>9} {'attn MFLOP/token':>17} {'peak MiB':>9}")
for (S, z), r in rows.items():
    label = "shrunk (z'=0)" if z == "0.0" else "maximum (z'=1)"
    print(f"{S:>10} {label:>14} {r['ms_per_step']:>9.1f} {r['tokens_per_s']:>9.0f} "
          f"{r['attention_flops_per_token'] / 1e6:>17.2f} {r['peak_bytes'] / 2**20:>9.0f}")
a, b = rows[(1024, "0.0")], rows[(8192, "0.0")]
c, d = rows[(1024, "1.0")], rows[(8192, "1.0")]
print(f"\nshrunk spans: S 8192 costs {b['ms_per_step'] / a['ms_per_step']:.2f}x S 1024 per step "
      f"(attention FLOPs {b['attention_flops_per_token'] / a['attention_flops_per_token']:.2f}x)")
print(f"full spans:   S 8192 costs {d['ms_per_step'] / c['ms_per_step']:.2f}x S 1024 per step "
      f"(attention FLOPs {d['attention_flops_per_token'] / c['attention_flops_per_token']:.2f}x)")
PY
