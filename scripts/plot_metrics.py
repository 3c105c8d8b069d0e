#!/usr/bin/env python3
"""Plot train / valid bpc of one or more txl runs against steps and wall time.

usage: scripts/plot_metrics.py RUN_DIR [RUN_DIR ...] [-o OUT.png]

Reads RUN_DIR/metrics.jsonl (one JSON object per line, "event": "train" | "eval")
and draws two panels, bpc against steps and against training seconds, with every
run overlaid (solid: train, dots + dashes: valid). Uses Debian's python3-matplotlib.
"""
import argparse
import json
import os
import sys


def load(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        sys.exit(f"plot_metrics.py: error: {path}: no such file (is {run_dir} a txl run directory?)")
    train, evals = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                sys.exit(f"plot_metrics.py: error: {path}:{n}: not JSON ({err})")
            if e.get("event") == "train":
                train.append(e)
            elif e.get("event") == "eval":
                evals.append(e)
    if not train and not evals:
        sys.exit(f"plot_metrics.py: error: {path}: no train or eval events")
    return train, evals


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("-o", "--out", default=None, help="output PNG (default: RUN_DIR/metrics.png of the first run)")
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_step, ax_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, run in enumerate(a.runs):
        train, evals = load(run)
        color = f"C{i % 10}"
        name = os.path.basename(os.path.normpath(run))
        for ax, key in ((ax_step, "step"), (ax_time, "elapsed_s")):
            if train:
                ax.plot([e[key] for e in train], [e["bpc"] for e in train], color=color, lw=1.2,
                        label=f"{name} train")
            if evals:
                ax.plot([e[key] for e in evals], [e["bpc"] for e in evals], color=color, ls="--", marker="o",
                        ms=4, label=f"{name} valid")
    ax_step.set_xlabel("step")
    ax_time.set_xlabel("training time (s)")
    for ax in (ax_step, ax_time):
        ax.set_ylabel("bits per character")
        ax.grid(alpha=0.3)
    ax_step.legend(fontsize=8)
    fig.suptitle("txl: train and validation bpc")
    fig.tight_layout()
    out = a.out or os.path.join(a.runs[0], "metrics.png")
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
