#!/usr/bin/python3
"""Plot the learned attention span of every head of an adaptive-span model.

usage: scripts/plot_spans.py RUN_DIR_OR_CHECKPOINT [-o OUT.png] [--print]

Reads model.safetensors of a checkpoint directory (or RUN_DIR/checkpoints/best, else
/last): the span of head h in layer l is current_val[l][h] x S, with S the maximum span
(the last axis of key_pe), exactly what `txl info` prints. Draws one group of bars per
layer, one bar per head, with the maximum span and the mean learned span marked.
Uses Debian's python3-matplotlib and python3-numpy.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import safetensors_io  # noqa: E402

SPAN_KEY = re.compile(r"^layers\.(\d+)\.attn\.attn\.adaptive_span\._mask\.current_val$")


def fail(msg):
    sys.exit(f"plot_spans.py: error: {msg}")


def model_file(path):
    for rel in ("model.safetensors", "checkpoints/best/model.safetensors", "checkpoints/last/model.safetensors"):
        p = os.path.join(path, rel)
        if os.path.isfile(p):
            return p
    fail(f"{path}: no model.safetensors here or in checkpoints/best or checkpoints/last")


def spans(path):
    f = model_file(path)
    try:
        tensors, _ = safetensors_io.load_file(f)
    except Exception as e:  # noqa: BLE001
        fail(f"{f}: cannot read ({e})")
    if "key_pe" not in tensors:
        fail(f"{f}: not an adaptive-span model (no key_pe)")
    S = tensors["key_pe"].shape[-1]
    layers = {}
    for name, t in tensors.items():
        m = SPAN_KEY.match(name)
        if m:
            layers[int(m.group(1))] = [float(v) * S for v in t.reshape(-1)]
    if not layers:
        fail(f"{f}: the spans are not learned (model.attention.adapt_span: false); every head sees S = {S}")
    return f, S, [layers[l] for l in sorted(layers)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("-o", "--out", default="spans.png")
    ap.add_argument("--print", action="store_true", help="also print the spans")
    a = ap.parse_args()
    f, S, per_layer = spans(a.path)
    flat = [s for layer in per_layer for s in layer]
    mean = sum(flat) / len(flat)
    if a.print:
        for l, layer in enumerate(per_layer):
            print(f"layer {l:2d}: " + " ".join(f"{s:8.1f}" for s in layer))
        print(f"mean span {mean:.1f} of S = {S}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    L, H = len(per_layer), len(per_layer[0])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * L * H + 2), 4))
    width = 0.8 / H
    for h in range(H):
        ax.bar(np.arange(L) + (h - (H - 1) / 2) * width, [per_layer[l][h] for l in range(L)], width,
               label=f"head {h}")
    ax.axhline(mean, color="k", linestyle="--", linewidth=1, label=f"mean {mean:.0f}")
    ax.set_xticks(range(L))
    ax.set_xticklabels([f"layer {l}" for l in range(L)])
    ax.set_ylabel("learned span (tokens)")
    ax.set_title(f"adaptive span per head (maximum S = {S})\n{f}", fontsize=9)
    ax.set_ylim(0, max(max(flat) * 1.15, 1))
    ax.legend(fontsize=7, ncol=min(H, 4))
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out} ({L} layers x {H} heads, mean span {mean:.1f} of {S})")


if __name__ == "__main__":
    main()
