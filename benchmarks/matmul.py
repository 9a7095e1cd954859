"""Matrix multiplication three ways (foundations/linalg.py): GFLOP/s of naive loops, cache-blocked
tiles and BLAS, against this machine's measured GEMM peak (BLAS at a large size).

    python benchmarks/matmul.py [--sizes 64 128 256 512 1024] [--naive-max 128] [--peak 2048]
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_info

from dlroadmap.foundations import linalg as L

from common import save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--naive-max", type=int, default=128)
    ap.add_argument("--peak", type=int, default=2048)
    args = ap.parse_args()
    peak = {str(np.dtype(dt)): L.time_matmul(L.matmul_blas, args.peak, dt, repeats=3) for dt in (np.float64, np.float32)}
    rows = []
    for n in args.sizes:
        row = {"n": n, "blas_gflops": L.time_matmul(L.matmul_blas, n, repeats=5), "blocked_gflops": L.time_matmul(L.matmul_blocked, n, repeats=2)}
        if n <= args.naive_max:
            row["naive_gflops"] = L.time_matmul(L.matmul_naive, n, repeats=1)
        for k in ("naive_gflops", "blocked_gflops", "blas_gflops"):
            if k in row:
                row[k.replace("gflops", "fraction_of_peak")] = row[k] / peak["float64"]
        rows.append(row)
        print(row, flush=True)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    save("matmul", {"dtype": "float64", "peak_gflops": peak, "peak_size": args.peak, "rows": rows,
                    "blas": [{k: b.get(k) for k in ("internal_api", "version", "num_threads", "architecture")} for b in blas]})
    print(f"measured GEMM peak: {peak['float64']:.1f} GFLOP/s float64, {peak['float32']:.1f} float32 (n={args.peak})")


if __name__ == "__main__":
    main()
