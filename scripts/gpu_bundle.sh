#!/usr/bin/env bash
# Builds, on this machine, what scripts/gpu_check.sh --build needs on a lent GPU machine,
# so that the lease's minutes go to the checks instead of to compiling there:
#   build-gpu-portable/  CUDA for one architecture (default 90: H100, H200), MPI off,
#                        TXL_CPU_ISA=-march=x86-64-v3 so it runs on the GPU host's CPU
#                        whatever this one is;
#   build-gpu-bundle/    its txl and txl_tests plus the ctest files, with ORIGIN holding
#                        the build path that gpu_check.sh rewrites to the bundle's own.
# The bundle links Debian's oneDNN, spdlog, fmt and yaml-cpp (carry .gpu-debs too) and
# CUDA 13's runtime, cuBLAS and NCCL. DEVELOPERS.md has the run command.
#   usage: scripts/gpu_bundle.sh [--arch SM]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=90
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || { echo "gpu_bundle.sh: --arch needs a value (e.g. 90)" >&2; exit 2; }
      arch=$2; shift 2 ;;
    *) echo "gpu_bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
build=build-gpu-portable
bundle=build-gpu-bundle
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTXL_CUDA=ON -DTXL_MPI=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" "-DTXL_CPU_ISA=-march=x86-64-v3" > /dev/null
cmake --build "$build" -j"$(nproc)" --target txl txl_tests > /dev/null
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/tests"
cp "$build/bin/txl" "$build/bin/txl_tests" "$bundle/bin/"
cp "$build/CTestTestfile.cmake" "$bundle/"
cp "$build"/tests/*.cmake "$bundle/tests/"
echo "$PWD/$build" > "$bundle/ORIGIN"
du -sh "$bundle"
