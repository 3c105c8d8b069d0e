#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with libFuzzer (clang++, ASan + UBSan):
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     (default 60 s each; harnesses: config checkpoint corpus)
# Builds build-fuzz/ if needed, then runs each harness for SECONDS from its seeds
# (tests/fuzz/corpus/<name>/, read-only) plus the inputs earlier runs found
# (runs/fuzz/<name>/corpus/). Crashing inputs land in runs/fuzz/<name>/crashes/; a
# summary (seconds, executions, crashes per harness) in runs/fuzz/summary.txt.
# Exits non-zero if any harness crashed. To keep a crash as a regression test, fix it,
# then copy the file to tests/fuzz/regressions/<name>/ (tests/test_fuzz_regressions.cc
# replays that directory in the normal suite). See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[ $# -gt 0 ] && shift
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(config checkpoint corpus)
case "$seconds" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [config|checkpoint|corpus ...]" >&2; exit 2;; esac

# clang, its libFuzzer/sanitizer runtimes and its OpenMP runtime, plus the engine's own
# build dependencies (the same as scripts/setup.sh); only the missing ones are installed.
packages=(clang libclang-rt-14-dev libomp-dev cmake make libdnnl-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
          nlohmann-json3-dev)
source scripts/lib/install_packages.sh
install_missing fuzz "${packages[@]}"

# -O1: the usual libFuzzer trade of speed for precise sanitizer reports. CPU only: the
# harnesses parse files and configs, and the CUDA runtime does not run under ASan.
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DTXL_FUZZ=ON -DTXL_SANITIZE=address,undefined \
      -DTXL_BUILD_TESTS=OFF -DTXL_CUDA=OFF >/dev/null
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"

# Per harness: the longest input worth trying (the seeds' sizes with room to grow).
declare -A max_len=([config]=4096 [checkpoint]=16384 [corpus]=4096)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0}"
export OMP_NUM_THREADS=1 TXL_NUM_THREADS=1
mkdir -p runs/fuzz
export TMPDIR="$PWD/runs/fuzz/tmp"  # the harnesses' scratch files
mkdir -p "$TMPDIR"
summary=runs/fuzz/summary.txt
echo "# scripts/fuzz.sh $seconds, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')" > "$summary"
# Crash artifacts (not slow-unit-* reports).
count_crashes() { find "$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l; }
failed=0
for h in "${harnesses[@]}"; do
  dir=runs/fuzz/$h
  mkdir -p "$dir/corpus" "$dir/crashes"
  before=$(count_crashes "$dir/crashes")
  echo "fuzz: $h for ${seconds}s (log: $dir/fuzz.log)"
  rc=0
  build-fuzz/bin/fuzz_"$h" "$dir/corpus" "tests/fuzz/corpus/$h" -max_total_time="$seconds" \
      -max_len="${max_len[$h]:-4096}" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
      -artifact_prefix="$dir/crashes/" > "$dir/fuzz.log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/fuzz.log" | grep -o '[0-9]*$' | tail -1)
  new=$(( $(count_crashes "$dir/crashes") - before ))
  line="$h: ${seconds}s, ${execs:-?} executions, exit $rc, $new new crash file(s) in $dir/crashes"
  echo "fuzz: $line"
  echo "$line" >> "$summary"
  if [ "$rc" -ne 0 ]; then
    failed=1
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|terminate called|what\(\)' \
        "$dir/fuzz.log" || true
  fi
done
rm -rf "$TMPDIR"
[ "$failed" -eq 0 ] && echo "fuzz: no crashes" || echo "fuzz: crashes found (see above and runs/fuzz/*/crashes/)"
exit "$failed"
