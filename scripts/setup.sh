#!/usr/bin/env bash
# Installs the Debian packages txl needs (only those missing), then configures and
# builds into build/. Safe to run again: it does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make libdnnl-dev libspdlog-dev libfmt-dev libyaml-cpp-dev catch2 nlohmann-json3-dev
          python3 python3-torch python3-numpy python3-matplotlib libopenblas0-pthread
          libopenmpi-dev openmpi-bin)
source scripts/lib/install_packages.sh
install_missing setup "${packages[@]}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${TXL_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
echo "setup: built build/bin/txl"
