"""Multi-file netCDF time mean: gridflow vs xarray + Dask (bench/netcdf/run.sh runs it).

    bench.py gen DIR [--quick]      writes DIR/tas_NN.nc (one run split along time)
    bench.py run DIR --gridflow BIN [--repeat N] [--threads T]
prints one JSON line per measurement, then a table and the largest difference between the
two results.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np


def gen(out, quick):
    import xarray as xr
    out = pathlib.Path(out)
    nfiles, nt, nlat, nlon = (3, 40, 12, 16) if quick else (10, 365, 192, 288)
    stamp = out / f".done-{nfiles}x{nt}x{nlat}x{nlon}"
    if stamp.exists():
        print(f"files ready in {out}", file=sys.stderr)
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20)
    lat = np.linspace(-89.5, 89.5, nlat)
    lon = np.linspace(0, 360, nlon, endpoint=False)
    for f in range(nfiles):
        time_ = xr.date_range(f"{1850 + f}-01-01", periods=nt, freq="D", calendar="noleap", use_cftime=True)
        tas = (280 + 20 * np.cos(np.deg2rad(lat))[None, :, None]
               + rng.normal(0, 3, (nt, nlat, nlon))).astype("f4")
        ds = xr.Dataset({"tas": (("time", "lat", "lon"), tas, {"units": "K"})},
                        coords={"time": time_, "lat": lat, "lon": lon})
        ds.time.encoding = {"units": "days since 1850-01-01", "calendar": "noleap"}
        ds.to_netcdf(out / f"tas_{f:02d}.nc", engine="netcdf4", unlimited_dims=["time"],
                     encoding={"tas": {"zlib": True, "shuffle": True, "complevel": 4,
                                       "chunksizes": (min(nt, 73), nlat, nlon)}})
    stamp.touch()
    print(f"wrote {nfiles} files to {out}", file=sys.stderr)


def run(data, gridflow, repeat, threads):
    import resource

    import dask
    import xarray as xr
    pattern = os.path.join(data, "tas_*.nc")
    rows = []
    gf = xa = None
    # interleaved (gridflow, then xarray, in each repetition) so that load from other
    # processes on the machine falls on both alike
    for i in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([gridflow, "eval", "--store", pattern, 'ds.tas.mean("time")', "--json",
                            "--threads", str(threads)], capture_output=True, text=True, check=True)
        dt = time.perf_counter() - t0
        gf = np.array(json.loads(p.stdout)["values"], dtype="f8").ravel()
        # the children so far are gridflow runs only: their largest resident set
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append({"tool": "gridflow", "rep": i, "seconds": dt, "peak_rss_mib": rss})
        print(json.dumps(rows[-1]), flush=True)
        t0 = time.perf_counter()
        # h5netcdf: netCDF4-python is not safe to open from several threads at once
        with dask.config.set(scheduler="threads", num_workers=threads):
            ds = xr.open_mfdataset(pattern, parallel=True, engine="h5netcdf", combine="by_coords",
                                   decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
            xa = ds.tas.mean("time").values.astype("f8").ravel()
            ds.close()
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append({"tool": "xarray+dask", "rep": i, "seconds": dt, "peak_rss_mib": rss})
        print(json.dumps(rows[-1]), flush=True)
    diff = float(np.nanmax(np.abs(gf - xa)))
    print("\n| tool | best of %d (s) | median (s) | peak RSS (MiB) |\n|---|---|---|---|" % repeat)
    for tool in ("gridflow", "xarray+dask"):
        secs = sorted(r["seconds"] for r in rows if r["tool"] == tool)
        rss = max(r["peak_rss_mib"] for r in rows if r["tool"] == tool)
        print(f"| {tool} | {secs[0]:.3f} | {secs[len(secs) // 2]:.3f} | {rss:.0f} |")
    print(f"\nlargest difference between the two time means: {diff:.3g}")
    if not diff <= 1e-4 * float(np.nanmax(np.abs(xa))):
        sys.exit(f"the results differ by {diff}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["gen", "run"])
    ap.add_argument("data")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gridflow")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.cmd == "gen":
        gen(a.data, a.quick)
    else:
        run(a.data, a.gridflow, a.repeat, a.threads)


if __name__ == "__main__":
    main()
