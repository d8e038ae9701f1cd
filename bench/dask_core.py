"""Dask's figures for the core-engine benchmarks, on the same machine and workloads as
`cargo run --release -p gridflow-bench -- all` (see docs/benchmarks.md).

Run with the venv made by `bash bench/setup-venv.sh`:  bench/.venv/bin/python bench/dask_core.py
Each workload: one warm-up, then the median of 5 runs, on dask's threaded scheduler with
2 workers (num_workers=2), like gridflow's 2 threads.
"""
import resource
import statistics
import sys
import time

import dask
import dask.array as da
import numpy as np


def median(f, reps=5):
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def overhead():
    n = 100_000
    x = da.ones(n, chunks=1).sum()
    ntasks = len(x.__dask_graph__())
    secs = median(lambda: x.compute(scheduler="threads", num_workers=2), reps=3)
    print(f"| overhead | ones({n}, chunks=1).sum(): {ntasks} tasks | {secs:.4f} s | {peak_mib():.0f} MiB | "
          f"{secs / ntasks * 1e6:.1f} µs/task |")


def w5():
    def run():
        x = da.ones((20000, 20000), chunks=(200, 200)).sum()
        assert x.compute(scheduler="threads", num_workers=2) == 20000 * 20000
    x = da.ones((20000, 20000), chunks=(200, 200)).sum()
    secs = median(run, reps=3)
    print(f"| w5 | ones((20000, 20000), chunks=(200, 200)).sum() | {secs:.4f} s | {peak_mib():.0f} MiB | "
          f"{len(x.__dask_graph__())} tasks |")


def elementwise():
    n, block = 1 << 27, 1 << 20
    x = da.random.random(n, chunks=block).persist(scheduler="threads", num_workers=2)
    expr = da.sqrt(2 * x + 1).sum()
    secs = median(lambda: expr.compute(scheduler="threads", num_workers=2))
    print(f"| elementwise | sum(sqrt(2x+1)), {n * 8 >> 20} MiB float64 in memory, blocks of {block * 8 >> 20} MiB | "
          f"{secs:.4f} s | {peak_mib():.0f} MiB | |")


if __name__ == "__main__":
    print(f"dask {dask.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    for name, f in [("overhead", overhead), ("w5", w5), ("elementwise", elementwise)]:
        if which in ("all", name):
            f()
