#!/usr/bin/python3
"""PyTorch baseline for `txl bench ops`.

Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench_ops_torch.py TXL_JSON [--repeats N]

Reads the JSON written by `txl bench ops --json`, times the very same cases (same
shapes, same per-case byte counts, same repeat count, median after a warm-up) with
PyTorch on 2 threads in float32, and prints a JSON object with the same keys:
  {"threads", "torch_version", "blas", "repeats",
   "gemm":   [{layer, name, batch, m, k, n, b_transposed, ms, gflops, variant}],
   "memops": [{op, pass, shape, bytes, ms, gbps, variant}]}

What each case runs (mirrors src/bench/ops_bench.cc):
  gemm           A (batch, m, k) @ B, B stored (batch, n, k) and used transposed when
                 b_transposed (a Linear weight), else stored (batch, k, n). Several
                 equivalent PyTorch calls are timed and the fastest is reported
                 ("variant"): torch.mm / F.linear for batch 1, torch.bmm / matmul for
                 batch > 1, each with and without a preallocated out=.
  softmax fwd    torch.softmax(x, -1) under no_grad
  softmax bwd    aten._softmax_backward_data(gy, y, -1, float32), given y and gy
  layer_norm fwd F.layer_norm(x, (D,), gamma, beta, 1e-5) under no_grad
  layer_norm bwd aten.native_layer_norm_backward(gy, x, (D,), mean, rstd, gamma, beta,
                 [True, True, True]) -> dx, dgamma, dbeta
  cross_entropy fwd  F.cross_entropy(logits, int64 targets), mean reduction, no_grad
  cross_entropy bwd  dlogits, given the saved log-softmax: aten.nll_loss_backward then
                 aten._log_softmax_backward_data -- exactly the two kernels autograd
                 runs for F.cross_entropy's backward, without the engine's overhead.
Only the backward is timed for backward passes; their inputs are computed once.
"""
import json
import os
import sys
import time


def die(msg):
    print(f"bench_ops_torch.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
    die("OPENBLAS_NUM_THREADS must be set to 1 before python starts "
        f"(it is {os.environ.get('OPENBLAS_NUM_THREADS')!r}); "
        "run e.g. `OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench_ops_torch.py txl.json`")

import torch  # noqa: E402  (after the environment check, so OpenBLAS sees it)
import torch.nn.functional as F  # noqa: E402

THREADS = 2


def median_ms(repeats, f):
    """Same protocol as txl's median_ms: one warm-up call, then the median of `repeats` timed calls."""
    f()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        t.append((time.perf_counter() - t0) * 1e3)
    t.sort()
    return t[len(t) // 2]  # upper median for even counts, as nth_element(size/2) in txl


def blas_in_use():
    """The BLAS shared object actually mapped into this process (Debian picks it via alternatives)."""
    libs = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if "blas" in base.lower():
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def openblas_info(loaded):
    """Core type and thread count OpenBLAS picked (its kernels depend on the core it detects)."""
    import ctypes
    for path in loaded:
        if "openblas" not in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return {"core": lib.openblas_get_corename().decode(), "config": lib.openblas_get_config().decode(),
                    "num_threads": lib.openblas_get_num_threads()}
        except (OSError, AttributeError):
            pass
    return None


def gemm_case(g, repeats):
    gen = torch.Generator().manual_seed(1)
    B, m, k, n = g["batch"], g["m"], g["k"], g["n"]
    a = torch.randn(B, m, k, generator=gen)
    if g["b_transposed"]:
        w = torch.randn(B, n, k, generator=gen)  # stored (batch, n, k)
        b = w.transpose(1, 2)
    else:
        w = None
        b = torch.randn(B, k, n, generator=gen)
    out3 = torch.empty(B, m, n)
    variants = {}
    if B == 1:
        a2, b2, out2 = a[0], b[0], out3[0]
        variants["mm"] = lambda: torch.mm(a2, b2)
        variants["mm(out=)"] = lambda: torch.mm(a2, b2, out=out2)
        if w is not None:
            w2 = w[0]
            variants["F.linear"] = lambda: F.linear(a2, w2)
    else:
        variants["bmm"] = lambda: torch.bmm(a, b)
        variants["bmm(out=)"] = lambda: torch.bmm(a, b, out=out3)
        variants["matmul"] = lambda: torch.matmul(a, b)
    best_name, best_ms = None, float("inf")
    for name, f in variants.items():
        ms = median_ms(repeats, f)
        if ms < best_ms:
            best_name, best_ms = name, ms
    gflops = 2.0 * B * m * n * k / (best_ms * 1e6)
    return {"layer": g["layer"], "name": g["name"], "batch": B, "m": m, "k": k, "n": n,
            "b_transposed": g["b_transposed"], "ms": best_ms, "gflops": gflops, "variant": best_name}


def memop_case(mo, repeats):
    op, pss, shape, nbytes = mo["op"], mo["pass"], list(mo["shape"]), mo["bytes"]
    gen = torch.Generator().manual_seed(2)
    if op == "softmax":
        x = torch.randn(*shape, generator=gen)
        if pss == "fwd":
            variant, f = "torch.softmax", lambda: torch.softmax(x, -1)
        else:
            y = torch.softmax(x, -1)
            gy = x  # txl passes x as the incoming gradient
            sbd = torch.ops.aten._softmax_backward_data
            variant, f = "aten._softmax_backward_data", lambda: sbd(gy, y, -1, torch.float32)
    elif op == "layer_norm":
        x = torch.randn(*shape, generator=gen)
        D = shape[-1]
        g, b = torch.ones(D), torch.zeros(D)
        if pss == "fwd":
            variant, f = "F.layer_norm", lambda: F.layer_norm(x, (D,), g, b, 1e-5)
        else:
            _, mean, rstd = torch.ops.aten.native_layer_norm(x, [D], g, b, 1e-5)
            gy = x  # txl passes x as the incoming gradient
            lnb = torch.ops.aten.native_layer_norm_backward
            mask = [True, True, True]
            variant, f = "aten.native_layer_norm_backward", lambda: lnb(gy, x, [D], mean, rstd, g, b, mask)
    elif op == "cross_entropy":
        N, V = shape
        logits = torch.randn(N, V, generator=gen)
        targets = (torch.arange(N, dtype=torch.int64) * 7) % V
        if pss == "fwd":
            variant, f = "F.cross_entropy", lambda: F.cross_entropy(logits, targets)
        else:
            ls = torch.log_softmax(logits, -1)
            weight = None
            reduction_mean = 1  # at::Reduction::Mean
            ignore = -100
            _, total_weight = torch.ops.aten.nll_loss_forward(ls, targets, weight, reduction_mean, ignore)
            gloss = torch.ones(())
            nllb = torch.ops.aten.nll_loss_backward
            lsb = torch.ops.aten._log_softmax_backward_data

            def f():
                g_ls = nllb(gloss, ls, targets, weight, reduction_mean, ignore, total_weight)
                return lsb(g_ls, ls, 1, torch.float32)

            variant = "aten.nll_loss_backward+_log_softmax_backward_data"
    else:
        raise ValueError(f"unknown memop {op!r}")
    ms = median_ms(repeats, f)
    return {"op": op, "pass": pss, "shape": shape, "bytes": nbytes, "ms": ms,
            "gbps": nbytes / (ms * 1e6), "variant": variant}


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        die("usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench_ops_torch.py TXL_JSON [--repeats N]")
    with open(argv[1]) as fh:
        txl = json.load(fh)
    repeats = None
    if "--repeats" in argv:
        i = argv.index("--repeats")
        repeats = int(argv[i + 1])
    if repeats is None:  # txl's defaults: 20, or 3 under --quick (peak measured on 512^3 then)
        repeats = 3 if txl.get("peak_shape") == 512 else 20
    if repeats <= 0:
        die("--repeats must be positive")

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    with torch.no_grad():
        # Start the OpenMP pool and OpenBLAS before the first timed case.
        for _ in range(3):
            torch.mm(torch.randn(256, 256), torch.randn(256, 256))
            torch.softmax(torch.randn(256, 256), -1)
        gemm = [gemm_case(g, repeats) for g in txl["gemm"]]
        memops = [memop_case(m, repeats) for m in txl["memops"]]
    cfg = torch.__config__.show()
    blas_line = next((ln.strip() for ln in cfg.splitlines() if "BLAS_INFO" in ln), "")
    blas_info = next((p.strip().replace("- Build settings: ", "") for p in blas_line.split(",")
                      if "BLAS_INFO" in p), "BLAS_INFO=?")
    out = {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "torch_version": torch.__version__,
        "blas_info": blas_info,
        "blas_loaded": blas_in_use(),
        "openblas": openblas_info(blas_in_use()),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": next((ln.split(":", 1)[1].strip() for ln in cfg.splitlines()
                                if "CPU capability usage" in ln), ""),
        "repeats": repeats,
        "gemm": gemm,
        "memops": memops,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv)
