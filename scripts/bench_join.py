#!/usr/bin/python3
"""Join `txl bench ops --json` and scripts/bench_ops_torch.py output into one table.

Usage: bench_join.py TXL_JSON TORCH_JSON

ratio txl/torch = torch_ms / txl_ms: above 1 means txl is faster on that case.
"""
import json
import math
import sys


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main(argv):
    if len(argv) != 3:
        print("usage: bench_join.py TXL_JSON TORCH_JSON", file=sys.stderr)
        return 2
    with open(argv[1]) as fh:
        txl = json.load(fh)
    with open(argv[2]) as fh:
        th = json.load(fh)
    if len(txl["gemm"]) != len(th["gemm"]) or len(txl["memops"]) != len(th["memops"]):
        print("bench_join.py: txl and torch results have different case lists", file=sys.stderr)
        return 1

    if txl.get("precision", "fp32") != "fp32":
        print("bench_join.py: the PyTorch side runs float32; run txl bench ops without --bf16", file=sys.stderr)
        return 1
    ob = th.get("openblas") or {}
    print(f"txl:   {txl['threads']} threads; oneDNN f32 peak {txl['peak_gflops_f32']:.1f} GFLOP/s "
          f"({txl['peak_shape']}^3 matmul); median of {th['repeats']} after a warm-up")
    print(f"torch: {th['torch_version']}, {th['threads']} intra-op threads, float32, {th['blas_info']}, "
          f"CPU capability {th['cpu_capability']}")
    print(f"       BLAS loaded: {', '.join(th['blas_loaded']) or 'none found'}")
    if ob:
        print(f"       OpenBLAS core {ob['core']}, {ob['num_threads']} thread(s) "
              f"(OPENBLAS_NUM_THREADS={th['openblas_num_threads']}, "
              f"OPENBLAS_CORETYPE={th.get('openblas_coretype_env') or 'unset'})")
    print("ratio txl/torch = torch ms / txl ms (>1: txl faster)")
    print()

    hdr = (f"{'layer':<14} {'gemm':<21} {'shape (b x m x k x n)':<23} {'txl GF/s':>9} {'%peak':>6} "
           f"{'torch GF/s':>10} {'txl/torch':>9}  torch call")
    print(hdr)
    print("-" * len(hdr))
    ratios = []
    for a, b in zip(txl["gemm"], th["gemm"]):
        assert (a["layer"], a["name"], a["batch"], a["m"], a["k"], a["n"]) == \
               (b["layer"], b["name"], b["batch"], b["m"], b["k"], b["n"]), (a, b)
        shape = f"{a['batch']}x{a['m']}x{a['k']}x{a['n']}" + ("  B^T" if a["b_transposed"] else "")
        r = b["ms"] / a["ms"]
        ratios.append(r)
        print(f"{a['layer']:<14} {' '.join(a['name'].split()):<21} {shape:<23} {a['gflops']:>9.1f} "
              f"{100 * a['frac_peak']:>5.0f}% {b['gflops']:>10.1f} {r:>9.2f}  {b['variant']}")
    print(f"{'geomean':<14} {'':<21} {'':<23} {'':>9} {'':>6} {'':>10} {geomean(ratios):>9.2f}")
    print()

    hdr = (f"{'op':<14} {'pass':<4} {'shape':<11} {'txl GB/s':>9} {'%memcpy':>8} {'torch GB/s':>10} "
           f"{'txl/torch':>9}  torch call")
    print(hdr)
    print("-" * len(hdr))
    ratios = []
    for a, b in zip(txl["memops"], th["memops"]):
        assert (a["op"], a["pass"], list(a["shape"])) == (b["op"], b["pass"], list(b["shape"])), (a, b)
        shape = "x".join(str(d) for d in a["shape"])
        r = b["ms"] / a["ms"]
        ratios.append(r)
        print(f"{a['op']:<14} {a['pass']:<4} {shape:<11} {a['gbps']:>9.1f} {100 * a['frac_memcpy']:>7.0f}% "
              f"{b['gbps']:>10.1f} {r:>9.2f}  {b['variant']}")
    print(f"{'geomean':<14} {'':<4} {'':<11} {'':>9} {'':>8} {'':>10} {geomean(ratios):>9.2f}")
    print()
    print("bytes per case as txl counts them (fwd: read x + write y; softmax/layer_norm bwd: y|x, gy, gx;")
    print("cross_entropy fwd: logits once; bwd: read logits + write dlogits); %memcpy is against a")
    print("parallel memcpy moving the same bytes, %peak against the oneDNN peak above.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
