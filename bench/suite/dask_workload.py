"""One workload of the suite (issue 7) in Dask + Xarray, in this process.

The suite driver (bench/suite/run.py) starts this once per repetition, like
``gridflow-bench workload``, so both tools pay startup, imports and opening. Prints one JSON
line: phase times, task counts, this process's peak RSS and the checksum (float64 sum of the
result values that are not NaN: the stores have masked values, as CMIP6's do).

    python dask_workload.py W1 --store DIR --scheduler threads
    python dask_workload.py W3 --store DIR --scheduler cluster --flox
    python dask_workload.py W0 --catalog DIR/pangeo-cmip6.json
    python dask_workload.py floor --store DIR      # numcodecs read + decode + sum, 2 threads
"""

import argparse
import json
import os
import resource
import sys
import time

T_START = time.perf_counter()

SEARCH = dict(
    experiment_id="historical",
    institution_id="NIMS-KMA",
    table_id="3hr",
    variable_id="tas",
    member_id="r1i1p1f1",
)


def parse_size(s):
    units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1 << 20, "gib": 1 << 30}
    num = s.rstrip("BbKkMmGgIi ")
    return int(float(num) * units[s[len(num):].strip().lower()])


def self_peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor(args):
    """Read + blosc-decode every chunk of tas once on 2 threads, plus a float64 sum: the
    floor of every workload that needs all of the array (W1-W4, W6)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "store"))
    import bench_python  # sets numcodecs.blosc.use_threads = False: exactly 2 threads

    files = bench_python.chunk_files(args.store)
    t = time.perf_counter()
    s = bench_python.floor_pass(files, args.threads, sum_too=True)
    compute_s = time.perf_counter() - t
    return {"compute_s": compute_s, "checksum": s, "chunks": len(files),
            "shape": [], "tasks": len(files)}


def make_client(args):
    """Dask's scheduler for this run: None (threads) or a LocalCluster client."""
    if args.scheduler != "cluster":
        return None
    from dask.distributed import Client, LocalCluster

    kw = {}
    if args.memory_limit:
        # LocalCluster's memory_limit is per worker: split the total between them
        kw["memory_limit"] = parse_size(args.memory_limit) // 2
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, **kw)
    return Client(cluster)


def ntasks(obj):
    """Tasks in the graph as built, and after dask's optimisation (fusion, culling)."""
    import dask

    try:
        built = len(obj.__dask_graph__())
    except Exception:  # noqa: BLE001 -- report what is knowable
        built = None
    try:
        (opt,) = dask.optimize(obj)
        optimized = len(opt.__dask_graph__())
    except Exception:  # noqa: BLE001
        optimized = None
    return built, optimized


def workload(args):
    import dask
    import dask.array as da
    import numpy as np

    if args.workload != "W5":
        import xarray as xr
    t_import = time.perf_counter()
    client = make_client(args)
    t0 = time.perf_counter()
    out = {"import_s": t_import - T_START, "cluster_s": t0 - t_import}
    compute_kw = {} if client else {"scheduler": "threads", "num_workers": args.threads}

    if args.workload == "W0":
        import intake

        cat = intake.open_esm_datastore(args.catalog)
        found = cat.search(**SEARCH)
        # The catalog lists local paths; intake-esm hands zarr 3 `storage_options={}`, which
        # it refuses for a plain path ("provided but unused"): None lets it through.
        dsets = found.to_dataset_dict(
            progressbar=False, xarray_open_kwargs={"backend_kwargs": {"storage_options": None}})
        (key, ds), = dsets.items()
        tas = ds.tas
        out.update(open_s=time.perf_counter() - t0, compute_s=0.0, shape=list(tas.shape),
                   checksum=float(tas.lat.values.sum() + tas.lon.values.sum() + tas.size),
                   extra={"keys": len(dsets), "key": key, "rows": len(found.df), "dims": list(tas.dims)})
        return out, client

    if args.workload == "W5":
        x = da.ones((args.n, args.n), chunks=(args.chunk, args.chunk)).sum()
        result = x
    else:
        ds = xr.open_zarr(args.store)  # chunks as stored
        tas = ds.tas
        if args.workload == "W1":
            result = tas.sel(lat=45.5, lon=9.4, method="nearest")
        elif args.workload in ("W2", "W6"):
            result = tas.mean("time")
        elif args.workload == "W3":
            with xr.set_options(use_flox=args.flox):
                result = tas.groupby("time.month").mean()
        elif args.workload == "W4":
            result = tas.weighted(np.cos(np.deg2rad(tas.lat))).mean(("lat", "lon"))
        elif args.workload == "W7":
            result = tas.sel(time=slice("1851-01", "1851-03")).mean("time")
        else:
            raise SystemExit(f"unknown workload {args.workload}")
    t1 = time.perf_counter()
    out["tasks"], out["tasks_run"] = ntasks(result.data if hasattr(result, "variable") else result)
    t2 = time.perf_counter()
    values = np.asarray(result.compute(**compute_kw))
    t3 = time.perf_counter()
    if args.values_out:
        with open(args.values_out, "w") as f:
            json.dump([None if not np.isfinite(v) else float(v)
                       for v in values.astype(np.float64).ravel()], f)
    out.update(open_s=t1 - t0, compute_s=t3 - t2, count_tasks_s=t2 - t1, shape=list(values.shape),
               checksum=float(np.nansum(values.astype(np.float64))),
               extra={"flox": args.flox, "dask": dask.__version__})
    return out, client


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--store")
    ap.add_argument("--catalog")
    ap.add_argument("--scheduler", choices=["threads", "cluster"], default="threads")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flox", action="store_true", help="W3: xr.set_options(use_flox=True)")
    ap.add_argument("--memory-limit", help="LocalCluster: total memory limit, split over its 2 workers")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--values-out", help="write every value of the result (JSON, NaN as null)")
    args = ap.parse_args()
    if args.workload == "floor":
        out, client = floor(args), None
        tool = "floor"
    else:
        out, client = workload(args)
        tool = "dask-cluster" if client else "dask-threads"
        if args.workload == "W3" and args.flox:
            tool += "-flox"
    out.update(tool=tool, workload=args.workload, threads=args.threads,
               self_peak_rss_mib=self_peak_mib(), total_s=time.perf_counter() - T_START)
    if client is not None:
        workers = client.run(self_peak_mib)
        out["worker_peak_rss_mib"] = sorted(workers.values())
        client.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
