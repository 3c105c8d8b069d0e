#!/usr/bin/env bash
# Host code of the .cu kernels never calls a __device__-only function. nvcc compiles
# such a call (possible from templates, without any diagnostic) to a host stub that
# calls exit(1): the process ends silently at the launch, and only on a GPU. Those
# stubs are the only way our .cu objects come to need `exit`, so an undefined `exit`
# in any of them is the bug. Runs wherever CUDA is compiled, GPU or not.
#   usage: cuda_host_stubs_test.sh OBJECT...
set -euo pipefail
[ $# -gt 0 ] || { echo "cuda_host_stubs_test.sh: no .cu objects given" >&2; exit 2; }
bad=0
for o in "$@"; do
  [ -f "$o" ] || { echo "missing object $o" >&2; exit 2; }
  if nm -u "$o" | grep -qw exit; then
    echo "$o: host code calls a __device__-only function (nvcc made it a stub that calls exit(1));" \
      "make the function __host__ __device__ or keep the call in device code" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] && echo "$# CUDA objects: no host calls to device-only functions"
exit "$bad"
