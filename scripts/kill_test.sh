#!/usr/bin/env bash
# Crash test: trains a tiny model with a checkpoint every step, SIGKILLs it at a random
# moment (often in the middle of writing a checkpoint), resumes it to the end, and checks
# that the final weights are bit-identical to an uninterrupted run's. Repeats TRIALS times
# and prints "survived N/N".
#   usage: [TXL=BINARY] [TXL_THREADS=N] scripts/kill_test.sh [TRIALS]      (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-20}"
# TXL=path runs another binary (a copy, so rebuilding build/ during a long run is safe).
txl="${TXL:-$(pwd)/build/bin/txl}"
# TXL_THREADS=1 lets several instances share the cores (the tiny model gains little from 2).
threads="${TXL_THREADS:-2}"
[ -x "$txl" ] || { echo "error: $txl not found; run scripts/setup.sh first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

head -c 30000 third_party/tinyshakespeare/tinyshakespeare.txt > "$work/data.txt"
cat > "$work/tiny.yaml" <<YAML
data: {path: $work/data.txt, split: [0.9, 0.1, 0.0], vocab: chars}
model: {n_layer: 2, n_head: 2, d_model: 32, d_head: 16, d_inner: 64, dropout: 0.1, dropatt: 0.1,
        tgt_len: 16, mem_len: 16}
train: {batch_size: 4, steps: 40, log_interval: 10, checkpoint_interval: 1, keep_checkpoints: 2,
        optimizer: {name: adam, lr: 2.0e-3}, schedule: {name: cosine, warmup_steps: 5}}
eval: {interval: 20, batch_size: 2, max_tokens: 200}
YAML

weights() {  # the sha256 of the final step's model weights
  sha256sum "$1/checkpoints/last/model.safetensors" | cut -d' ' -f1
}
# The reference trains in the trials' run directory: the weights file carries the
# checksum of the run's config, which names that directory.
"$txl" --threads "$threads" train "$work/tiny.yaml" run.dir="$work/trial" > /dev/null
expected=$(weights "$work/trial")
rm -rf "$work/trial"
# Median wall time of a whole run bounds the random kill moment.
start=$(date +%s%N)
"$txl" --threads "$threads" train "$work/tiny.yaml" run.dir="$work/trial" > /dev/null
run_ms=$(( ($(date +%s%N) - start) / 1000000 ))

survived=0
mid_write=0
for i in $(seq 1 "$trials"); do
  run="$work/trial"
  rm -rf "$run"
  delay_ms=$(( RANDOM % (run_ms > 0 ? run_ms : 1) ))
  "$txl" --threads "$threads" train "$work/tiny.yaml" run.dir="$run" > "$work/log.txt" 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # A temporary file or directory left behind means the kill landed inside a checkpoint write.
  if [ -d "$run/checkpoints" ] && [ -n "$(find "$run/checkpoints" -name '*.tmp[.-]*' -print -quit)" ]; then
    mid_write=$((mid_write + 1))
  fi
  # Resume from whatever survived; a run killed before its first checkpoint starts over.
  if [ -e "$run/checkpoints/last/trainer_state.json" ]; then
    "$txl" --threads "$threads" train --resume "$run" > "$work/log.txt" 2>&1 || { echo "trial $i: resume failed"; cat "$work/log.txt"; continue; }
  else
    "$txl" --threads "$threads" train "$work/tiny.yaml" run.dir="$run" --overwrite > "$work/log.txt" 2>&1 ||
      { echo "trial $i: restart failed"; cat "$work/log.txt"; continue; }
  fi
  if [ "$(weights "$run")" = "$expected" ]; then
    survived=$((survived + 1))
  else
    echo "trial $i (killed after ${delay_ms} ms): final weights differ from the uninterrupted run"
  fi
  if [ $((i % 50)) -eq 0 ] && [ "$i" -lt "$trials" ]; then
    echo "trial $i/$trials: survived $survived so far, $mid_write killed inside a checkpoint write" >&2
  fi
done
echo "$mid_write of $trials kills landed inside a checkpoint write (a temporary file was left behind)"
echo "survived $survived/$trials"
[ "$survived" -eq "$trials" ]
