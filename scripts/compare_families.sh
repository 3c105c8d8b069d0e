#!/usr/bin/env bash
# Every family's tiny-shakespeare config trained for the same wall-clock budget on this
# machine, one after another, then one table: validation bpc (each family scored the way
# its reference scores), training tokens/s, peak memory (allocator peak and process
# RSS), parameters, attention FLOPs per token (at the end of training: adaptive span's
# cost follows its learned spans) and the mean learned span where there is one.
# Also draws runs/compare_families/curves.png (valid bpc against training time).
#   usage: scripts/compare_families.sh [SECONDS] [CONFIG ...]
#          (default 300 s; configs: every configs/shakespeare_*.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
shift || true
txl=build/bin/txl
[ -x "$txl" ] || { echo "error: $txl not found; run scripts/setup.sh first" >&2; exit 1; }
if [ $# -gt 0 ]; then configs=("$@"); else
  configs=()
  for f in configs/shakespeare_*.yaml; do configs+=("$(basename "$f" .yaml)"); done
fi
out=runs/compare_families
mkdir -p "$out"
for cfg in "${configs[@]}"; do
  echo "== $cfg: ${seconds}s of training =="
  # Each config's own schedule (its train.steps is sized for about 300 s here); the
  # budget stops it by time. Evaluate every 500 steps for the curves; the time spent
  # evaluating is not training time.
  "$txl" train "configs/$cfg.yaml" train.max_time="$seconds" eval.interval=500 \
    run.dir="$out/$cfg" --overwrite | grep -E "^(eval|done)" || true
done
/usr/bin/python3 - "$out" "${configs[@]}" <<'PY'
import json, math, sys
out, configs = sys.argv[1], sys.argv[2:]
rows = []
for cfg in configs:
    events = [json.loads(l) for l in open(f"{out}/{cfg}/metrics.jsonl")]
    ev = [e for e in events if e["event"] == "eval"][-1]
    s = [e for e in events if e["event"] == "summary"][-1]
    rows.append((cfg, s, ev, [e for e in events if e["event"] == "eval"]))
print()
print(f"{'config':<28} {'attention':<15} {'valid bpc':>9} {'steps':>6} {'tok/s':>7} {'peak MiB':>8} {'RSS MiB':>8}"
      f" {'params':>9} {'attn MFLOP/tok':>14} {'mean span':>9}")
for cfg, s, ev, _ in rows:
    span = f"{s['mean_span']:.1f}" if "mean_span" in s else "-"
    print(f"{cfg:<28} {s['attention']:<15} {ev['bpc']:>9.4f} {s['step']:>6} {s['tokens_per_s']:>7.0f} "
          f"{s['peak_bytes'] / 2**20:>8.0f} {s['max_rss_bytes'] / 2**20:>8.0f} {s['parameters']:>9} "
          f"{s['attention_flops_per_token'] / 1e6:>14.3f} {span:>9}")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(7, 4))
for cfg, s, _, evals in rows:
    ax.plot([e["elapsed_s"] for e in evals], [e["bpc"] for e in evals], marker="o", label=cfg)
ax.set_xlabel("training time (s)")
ax.set_ylabel("validation bpc")
ax.set_title("tiny-shakespeare, equal wall-clock budget")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(f"{out}/curves.png", dpi=120)
print(f"\nwrote {out}/curves.png")
PY
