#!/usr/bin/env bash
# The GPU check (issue: CUDA backend): on a machine with an NVIDIA GPU, in one run of
# at most 10 minutes on one H100,
#   1. builds txl with CUDA (build-gpu/, -DTXL_CUDA=ON),
#   2. runs the `gpu` tests (every op CPU against CUDA, a training step of each family),
#   3. trains the default shakespeare config for a fixed number of steps on the GPU and
#      on the CPU (fp32 both) and compares the loss curves,
#   4. prints a speed table: tokens/s and model FLOP utilisation in fp32 and bf16 for the
#      default config and the enwik8 base shape (12 x 512, tgt/mem 512), next to our
#      PyTorch reference model (scripts/reference/mem_transformer_ref.py) on the same GPU.
# Exits non-zero when a step fails. With --keep-going (for a lent machine, where device
# time is too short to rerun) a failing stage is reported and the later stages still run;
# the exit status is non-zero when any stage failed. DEVELOPERS.md says how to run it.
# --build DIR uses a build directory made elsewhere (for this GPU's architecture, with a
# portable TXL_CPU_ISA) when its txl runs here, so a lent machine's minutes go to the
# checks rather than to compiling; otherwise the check builds build-gpu/ as usual.
#   usage: scripts/gpu_check.sh [--steps N] [--out DIR] [--keep-going] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=200
out=gpu_check_out
keep_going=0
prebuilt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep-going) keep_going=1; shift ;;
    --build) prebuilt=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
failed=()
stage_failed() {  # stage name: stop here, or remember it and go on with --keep-going
  echo "gpu_check.sh: stage failed: $1" >&2
  failed+=("$1")
  [ "$keep_going" = 1 ] || exit 1
}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee "$out/gpu.txt" || { echo "gpu_check.sh: no nvidia-smi: is there a GPU?" >&2; exit 1; }
# The toolchain the build will use, for the record (the GPU image is not Debian).
{ uname -m; grep -m1 "model name" /proc/cpuinfo || true; nproc; c++ --version | head -1
  /usr/local/cuda/bin/nvcc --version | tail -1; cmake --version | head -1; } > "$out/toolchain.txt" 2>&1 || true

# A machine without Debian's development packages (a GPU image) unpacks the ones
# carried in .gpu-debs (see DEVELOPERS.md) before configuring.
if [ -d .gpu-debs ] && ! [ -e /usr/include/dnnl.hpp ]; then
  for f in .gpu-debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi

# A build made elsewhere may need libraries that this image keeps outside the loader's
# path (NCCL and cuBLAS come with the toolkit or with PyTorch's wheels). txl and its
# tests get them; this script's own PyTorch runs get the original path back (orig_ld).
orig_ld=${LD_LIBRARY_PATH-}
if [ -n "$prebuilt" ] && [ -x "$prebuilt/bin/txl" ]; then
  for lib in $(ldd "$prebuilt/bin/txl" | awk '/not found/ {print $1}'); do
    d=$(find /usr/local/cuda/ /usr/local/lib /usr/lib /opt -name "$lib" -printf '%h\n' 2>/dev/null | head -1 || true)
    if [ -n "$d" ]; then LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d; fi
  done
  export LD_LIBRARY_PATH
fi

build=build-gpu
if [ -n "$prebuilt" ]; then
  if "$prebuilt/bin/txl" info --system > /dev/null 2> "$out/prebuilt.err"; then
    build=$(cd "$prebuilt" && pwd)
    # A bundle from scripts/gpu_bundle.sh: its ctest files name the build it came from.
    # Its tests find this checkout and the bundle's txl through the environment.
    if [ -f "$build/ORIGIN" ]; then
      sed -i "s|$(cat "$build/ORIGIN")|$build|g" "$build"/CTestTestfile.cmake "$build"/tests/*.cmake
      export TXL_SOURCE_DIR=$PWD TXL_BINARY_DIR=$build
    fi
  else
    echo "gpu_check.sh: the build in $prebuilt does not run here; building build-gpu/ instead:" >&2
    head -5 "$out/prebuilt.err" >&2
  fi
fi
echo "== 1. build with CUDA ($build)"
t0=$(date +%s)
[ "$build" != build-gpu ] || cmake -S . -B build-gpu -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release -DTXL_CUDA=ON ${TXL_CMAKE_ARGS:-} \
  > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
# -k: one run on a lent machine should show every compile error, not the first.
if [ "$build" = build-gpu ] && ! cmake --build build-gpu -j"$(nproc)" -- -k > "$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -60
  exit 1
fi
[ "$build" != build-gpu ] || echo "built in $(( $(date +%s) - t0 )) s"
txl=$build/bin/txl
"$txl" info --system | tee "$out/info.txt"

echo "== 2. gpu tests"
# Several test processes share the GPU; each one's CPU reference gets its share of cores.
jobs=4
OMP_NUM_THREADS=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 )) \
  ctest --test-dir "$build" -L gpu -j "$jobs" --timeout 240 --output-on-failure > "$out/gpu_tests.txt" 2>&1 \
  || stage_failed "gpu tests"
tail -25 "$out/gpu_tests.txt"
if grep -q "Skipped" "$out/gpu_tests.txt"; then
  echo "gpu_check.sh: gpu tests were skipped: the CUDA backend sees no device" >&2
  exit 1
fi

echo "== 3. default shakespeare config, $steps steps, GPU against CPU (fp32)"
common=(train.steps="$steps" train.log_interval=10 eval.interval=0 train.precision=fp32 --overwrite)
for d in cuda cpu; do
  "$txl" train configs/shakespeare_txl.yaml "${common[@]}" train.device=$d run.dir="$out/run_$d" \
    > "$out/train_$d.log" 2>&1 || { tail -20 "$out/train_$d.log"; stage_failed "train on $d"; }
done
(python3 - "$out/run_cuda/metrics.jsonl" "$out/run_cpu/metrics.jsonl" <<'PY'
import json, sys
def losses(path):
    rows = [json.loads(l) for l in open(path)]
    return {r["step"]: r["loss"] for r in rows if r.get("event") == "train"}
g, c = losses(sys.argv[1]), losses(sys.argv[2])
steps = sorted(set(g) & set(c))
print(f"{'step':>6} {'gpu loss':>10} {'cpu loss':>10} {'rel diff':>9}")
worst_early = worst = 0.0
for s in steps:
    d = abs(g[s] - c[s]) / abs(c[s])
    worst = max(worst, d)
    if s <= 50:
        worst_early = max(worst_early, d)
    print(f"{s:>6} {g[s]:>10.4f} {c[s]:>10.4f} {d:>9.2e}")
# fp32 on both: the first 50 steps agree to 1e-3 (reduction orders differ); later the
# runs may drift apart as training amplifies rounding, but not by more than 2%.
ok = steps and worst_early <= 1e-3 and worst <= 2e-2
print(f"loss curves: worst relative difference {worst_early:.2e} in the first 50 steps, {worst:.2e} overall:",
      "ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
) | tee "$out/loss_curves.txt" || stage_failed "loss curves"

echo "== 4. speed: txl against the PyTorch reference on this GPU"
bench() {  # name config overrides
  local name=$1 cfg=$2; shift 2
  for p in fp32 bf16; do
    "$txl" bench train "$cfg" "$@" train.device=cuda train.precision=$p --vocab 256 --repeats 20 --json \
      2> "$out/$name.txl.$p.err" | tail -n 1 > "$out/$name.txl.$p.json" || { tail -5 "$out/$name.txl.$p.err"
      rm -f "$out/$name.txl.$p.json"; stage_failed "txl bench $name $p"; }
  done
}
bench default configs/shakespeare_txl.yaml
bench enwik8_base configs/enwik8_txl_base.yaml train.batch_size=22 model.dropout=0.0
ref=scripts/reference/mem_transformer_ref.py
torch_ok=$(LD_LIBRARY_PATH=$orig_ld python3 -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
ref_bench() {  # name flags
  local name=$1 flags=$2
  for p in fp32 bf16; do
    extra=""
    [ "$p" = bf16 ] && extra="--bf16"
    LD_LIBRARY_PATH=$orig_ld python3 "$ref" bench-step $flags $extra --device cuda --vocab 256 --repeats 20 2> "$out/$name.torch.$p.err" \
      | tail -n 1 > "$out/$name.torch.$p.json" || { tail -5 "$out/$name.torch.$p.err"; rm -f "$out/$name.torch.$p.json"
      stage_failed "PyTorch bench $name $p"; }
  done
}
if [ "$torch_ok" = 1 ]; then
  ref_bench default "--n_layer 4 --d_model 128 --n_head 4 --d_head 32 --d_inner 512 --tgt_len 64 --mem_len 64 \
    --batch 12 --clip 1.0"
  ref_bench enwik8_base "--n_layer 12 --d_model 512 --n_head 8 --d_head 64 --d_inner 2048 --tgt_len 512 \
    --mem_len 512 --batch 22 --clip 0.25"
else
  echo "PyTorch with CUDA is not available here: the table has no reference rows"
fi
python3 - "$out" "$(cut -d, -f1 "$out/gpu.txt" | head -1)" <<'PY' | tee "$out/speed.md"
import json, os, sys
out, gpu = sys.argv[1], sys.argv[2]
# Dense peaks (TFLOP/s) from NVIDIA's data sheets: fp32 without TF32, bf16 tensor cores.
peaks = {"H100 PCIe": (51.2, 756.0), "H100": (66.9, 989.4), "H200": (66.9, 989.4), "A100": (19.5, 312.0)}
peak = next((v for k, v in peaks.items() if k in gpu), None)
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
print(f"GPU: {gpu}; peaks used for MFU: {peak} (fp32, bf16 TFLOP/s)\n")
print("| shape | precision | txl tokens/s | txl MFU | PyTorch tokens/s | txl / PyTorch | txl / PyTorch peak GiB |")
print("|---|---|---|---|---|---|---|")
def gib(j):
    return f"{j['peak_bytes'] / 2**30:.2f}" if j and j.get("peak_bytes") else "-"
ok = True
for shape in ("default", "enwik8_base"):
    for i, p in enumerate(("fp32", "bf16")):
        t, r = load(f"{shape}.txl.{p}.json"), load(f"{shape}.torch.{p}.json")
        if t is None:
            print(f"| {shape} | {p} | failed | - | {r['tokens_per_s']:,.0f} | - | - / {gib(r)} |" if r
                  else f"| {shape} | {p} | failed | - | - | - | - |")
            continue
        flops = t["train_flops_per_token"] * t["tokens_per_s"]
        mfu = f"{100 * flops / (peak[i] * 1e12):.1f}%" if peak else "?"
        rt = f"{r['tokens_per_s']:,.0f}" if r else "-"
        ratio = f"{t['tokens_per_s'] / r['tokens_per_s']:.2f}x" if r else "-"
        print(f"| {shape} | {p} | {t['tokens_per_s']:,.0f} | {mfu} | {rt} | {ratio} | {gib(t)} / {gib(r)} |")
PY
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check.sh: FAILED stages: ${failed[*]}; outputs in $out/" >&2
  exit 1
fi
echo "gpu_check.sh: done; outputs in $out/"
