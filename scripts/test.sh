#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every CPU test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build -LE gpu --output-on-failure -j"$(nproc)" "$@"
