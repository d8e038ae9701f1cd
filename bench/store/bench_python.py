"""The Python side of the store benchmark (see bench/store/README.md).

Workloads, each timed in this process after one warm-up run (median of --repeat runs), page
cache warm, 2 threads:

* ``floor_decode``: read every chunk file of tas_v2.zarr and blosc-decode it with numcodecs,
  on a ThreadPoolExecutor(2) — the I/O + decode floor;
* ``floor_decode_sum``: the same plus a float64 numpy sum of each decoded chunk;
* ``dask_sum``: ``da.from_zarr(tas).sum().compute(scheduler="threads", num_workers=2)``;
* ``dask_point``: open tas_v3_sharded.zarr and compute one grid point's time series
  ``da.from_zarr(tas)[:, LAT, LON]`` with dask threads=2; bytes read counted by a LocalStore
  subclass (and by /proc/self/io rchar).

Prints one JSON object per line.
"""

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numcodecs
import numpy as np
import zarr
from zarr.storage import LocalStore

numcodecs.blosc.use_threads = False  # exactly 2 threads: the pool's


class CountingStore(LocalStore):
    """A LocalStore that counts the bytes its reads return."""

    nbytes = 0
    requests = 0

    async def get(self, key, prototype=None, byte_range=None):
        buf = await super().get(key, prototype, byte_range)
        CountingStore.requests += 1
        if buf is not None:
            CountingStore.nbytes += len(buf)
        return buf

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        out = await super().get_partial_values(prototype, key_ranges)
        CountingStore.requests += len(key_ranges)
        CountingStore.nbytes += sum(len(b) for b in out if b is not None)
        return out


def rchar():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def timed(fn, repeat):
    fn()  # warm-up (page cache, imports, pools)
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def chunk_files(store):
    d = os.path.join(store, "tas")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if not f.startswith("."))


def floor_pass(files, threads, sum_too):
    """One pass of the floor: read each chunk file and blosc-decode it with numcodecs on a
    ThreadPoolExecutor(threads); with ``sum_too`` also a float64 sum of each decoded chunk.
    Returns the sum (or the decoded bytes). Also the floor of bench/suite."""
    blosc = numcodecs.Blosc()

    def one(path):
        with open(path, "rb") as f:
            buf = f.read()
        out = blosc.decode(buf)
        if sum_too:
            return float(np.frombuffer(out, dtype="<f4").sum(dtype=np.float64))
        return len(out)

    with ThreadPoolExecutor(threads) as ex:
        return sum(ex.map(one, files))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--point", default="72,100", help="lat,lon index of the time series")
    args = ap.parse_args()
    v2 = os.path.join(args.data, "tas_v2.zarr")
    v3 = os.path.join(args.data, "tas_v3_sharded.zarr")
    files = chunk_files(v2)
    nt = args.threads

    def emit(workload, times, **extra):
        print(json.dumps({"impl": "python", "workload": workload, "threads": nt,
                          "times": times, "median": statistics.median(times), **extra}),
              flush=True)

    def floor(sum_too):
        return lambda: floor_pass(files, nt, sum_too)

    times, n = timed(floor(False), args.repeat)
    emit("floor_decode", times, chunks=len(files), decoded_bytes=n)
    times, s = timed(floor(True), args.repeat)
    emit("floor_decode_sum", times, chunks=len(files), sum=s)

    def dask_sum():
        a = da.from_zarr(v2, component="tas")
        return float(a.sum().compute(scheduler="threads", num_workers=nt))

    times, s = timed(dask_sum, args.repeat)
    emit("dask_sum", times, sum=s, dask=dask.__version__)

    lat, lon = (int(x) for x in args.point.split(","))

    def dask_point():
        CountingStore.nbytes = CountingStore.requests = 0
        r0 = rchar()
        z = zarr.open_array(store=CountingStore(v3, read_only=True), path="tas", mode="r")
        a = da.from_zarr(z)
        ts = a[:, lat, lon].compute(scheduler="threads", num_workers=nt)
        return ts, CountingStore.nbytes, CountingStore.requests, rchar() - r0, a.numblocks

    times, (ts, nbytes, requests, rc, numblocks) = timed(dask_point, args.repeat)
    emit("dask_point", times, bytes_read=nbytes, requests=requests, rchar=rc,
         dask_blocks=list(numblocks), first=float(ts[0]), mean=float(np.mean(ts, dtype=np.float64)),
         n=int(ts.shape[0]), values=[float(x) for x in ts])
    print(f"versions: zarr {zarr.__version__} numcodecs {numcodecs.__version__} "
          f"dask {dask.__version__} numpy {np.__version__} python {sys.version.split()[0]}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
