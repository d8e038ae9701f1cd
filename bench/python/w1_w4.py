"""W1-W4 from Python: gridflow's Python package beside the same code in xarray + Dask and
beside `gridflow eval` (the CLI), on one store, in one run. Each (tool, workload) runs in its
own process, tools alternating, repeated; the median wall time from open to values is
reported as a Markdown table with gridflow-Python / CLI ratios (target: within 1.1x).

    python bench/python/w1_w4.py --store target/bench-suite/tas-5y.zarr \
        --gridflow target/release/gridflow [--repeat 3]

Needs the gridflow wheel (pip install ./crates/gridflow-python), xarray and dask in the
running interpreter. Not run by CI (timings are for a quiet machine)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "W1": 'ds.tas.sel(lat=45.5, lon=9.4, method="nearest")',
    "W2": 'ds.tas.mean("time")',
    "W3": 'ds.tas.groupby("time.month").mean()',
    "W4": 'ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(["lat", "lon"])',
}

CHILD = r"""
import json, sys, time
import numpy as np
import dask, xarray as xr
import gridflow
tool, store, expr = sys.argv[1:4]
dask.config.set(scheduler="threads")
# xarray's first object costs about a second of lazy imports, for either tool: paid here
xr.DataArray(np.zeros(1), dims=("x",)).chunk().compute()
# timed from open to values, imports excluded (the CLI's clock includes its process start,
# a few milliseconds)
t0 = time.perf_counter()
if tool == "gridflow-python":
    ds = gridflow.open_zarr(store)
    values = eval(expr).compute(progress=False).values
else:
    ds = xr.open_zarr(store)
    values = eval(expr).compute().values
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "checksum": float(np.nansum(values))}))
"""


def run_python(tool, store, expr):
    out = subprocess.run([sys.executable, "-c", CHILD, tool, store, expr], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cli(binary, store, expr):
    t0 = time.perf_counter()
    out = subprocess.run([binary, "eval", "--store", store, expr, "--json"], check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    doc = json.loads(out.stdout)
    vals = [v for v in doc["values"] if isinstance(v, (int, float))]
    return {"seconds": elapsed, "checksum": float(sum(vals))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--gridflow", required=True, help="the gridflow binary (release build)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workloads", default="W1,W2,W3,W4")
    args = ap.parse_args()
    rows = []
    for w in args.workloads.split(","):
        expr = WORKLOADS[w]
        times = {"gridflow-cli": [], "gridflow-python": [], "xarray-dask": []}
        sums = {}
        for _ in range(args.repeat):
            for tool in times:
                r = run_cli(args.gridflow, args.store, expr) if tool == "gridflow-cli" else run_python(tool, args.store, expr)
                times[tool].append(r["seconds"])
                sums[tool] = r["checksum"]
        med = {t: statistics.median(v) for t, v in times.items()}
        ref = sums["xarray-dask"]
        ok = all(abs(s - ref) <= 1e-4 * max(1.0, abs(ref)) for s in sums.values())
        rows.append((w, expr, med, ok))
    print("| workload | gridflow CLI (s) | gridflow Python (s) | xarray + Dask (s) | Python / CLI | checksums |")
    print("|---|---:|---:|---:|---:|---|")
    for w, expr, med, ok in rows:
        ratio = med["gridflow-python"] / med["gridflow-cli"]
        print(f"| {w} `{expr}` | {med['gridflow-cli']:.2f} | {med['gridflow-python']:.2f} | {med['xarray-dask']:.2f} | {ratio:.2f}x | {'equal' if ok else 'DIFFER'} |")


if __name__ == "__main__":
    main()
