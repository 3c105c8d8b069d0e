#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every CPU test through ctest.
#   scripts/test.sh [CTEST ARGS...]              the suite in build/ (Release)
#   scripts/test.sh --sanitize [--quick] [ARGS]  the suite built with ASan + UBSan in
#                                                build-asan/; --quick: only the subset
#                                                of tests/sanitize/quick_exclude.txt (CI)
# Sanitizer settings and suppressions: tests/sanitize/ (see docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=0
quick=0
args=()
for a in "$@"; do
  case "$a" in
    --sanitize) sanitize=1 ;;
    --quick) quick=1 ;;
    *) args+=("$a") ;;
  esac
done
if [ "$quick" -eq 1 ] && [ "$sanitize" -eq 0 ]; then
  echo "test.sh: --quick only applies with --sanitize" >&2
  exit 2
fi
scripts/setup.sh
if [ "$sanitize" -eq 0 ]; then
  ctest --test-dir build -LE gpu --output-on-failure -j"$(nproc)" "${args[@]}"
  exit
fi

# ASan + UBSan build (g++): -O2 keeps the training tests' time reasonable, -g1 gives
# line numbers in reports. The options also apply while building, because test
# discovery runs the test binary. CPU only: the CUDA runtime does not run under ASan
# (its shadow memory collides with the driver's mappings), and nothing here has a GPU.
source tests/sanitize/env.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
      -DTXL_SANITIZE=address,undefined -DTXL_CUDA=OFF ${TXL_CMAKE_ARGS:-}
cmake --build build-asan -j"$(nproc)"
# One regex from the non-comment lines of a list in tests/sanitize/.
regex_of() { grep -v '^\s*\(#\|$\)' "tests/sanitize/$1" | paste -sd '|'; }
no_leaks=$(regex_of no_leak_check.txt)
if [ "$quick" -eq 1 ]; then
  select=(-LE 'gpu|slow' -E "$(regex_of quick_exclude.txt)|$no_leaks")
else
  select=(-LE gpu -E "$no_leaks")
fi
rc=0
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" "${select[@]}" "${args[@]}" || rc=$?
# The tests in no_leak_check.txt: ASan and UBSan without leak checking (full runs only,
# and only without extra ctest arguments, which could re-select other tests here).
if [ "$quick" -eq 0 ] && [ ${#args[@]} -eq 0 ]; then
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --test-dir build-asan --output-on-failure -j"$(nproc)" \
      -LE gpu -R "$no_leaks" || rc=$?
fi
exit "$rc"
