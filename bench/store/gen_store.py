"""Generates the store benchmark's data with zarr-python (see bench/store/README.md).

* ``tas_v2.zarr``: Zarr v2, consolidated, ``tas`` float32 (14400, 144, 192) in chunks of
  (600, 144, 192), blosc-lz4 + byte shuffle: the shape of the Pangeo CMIP6 3-hourly tas store
  in /work/shared/dask-baseline.md (1.59 GB raw).
* ``tas_v3_sharded.zarr``: the same values in Zarr v3, shards (2400, 144, 192) holding small
  inner chunks (600, 8, 8), blosc-lz4 + shuffle inside the shards.

Both carry CMIP6's encodings, as the Pangeo stores do: zarr ``fill_value`` 1e20 (float32-
rounded) and a ``missing_value`` attribute of 1e20, and a few values are masked (stored as
1e20): at one step of every 240, two cells, the first being the point run.sh reads (72, 100;
quick: 3, 5). The benchmark reads raw values (no CF decoding) on both sides, so its sums
include the 1e20s: they then check the masked values and their count, but no longer the
ordinary values to 1e-6; the point series (which holds masked values) is still compared value
by value.

``--quick`` writes tiny versions (shape (240, 16, 24)) for smoke runs. Existing stores with a
matching stamp file are kept.
"""

import argparse
import json
import os
import shutil
import sys
import time

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec

# mask: (lat, lon) cells masked at every step t with t % 240 == 100; the first is run.sh's point
FULL = dict(shape=(14400, 144, 192), chunks=(600, 144, 192), shards=(2400, 144, 192),
            inner=(600, 8, 8), mask=[(72, 100), (0, 0)])
QUICK = dict(shape=(240, 16, 24), chunks=(60, 16, 24), shards=(120, 16, 24), inner=(60, 4, 4),
             mask=[(3, 5), (0, 0)])
FILL = float(np.float32(1e20))  # CMIP6's fill value: 1.0000000200408773e20
MASK_EVERY, MASK_STEP = 240, 100


def block(t0, t1, ny, nx, mask):
    """Deterministic, realistically compressible temperatures for time steps t0..t1, the
    masked ones (the `mask` cells at every MASK_EVERY-th step) set to FILL."""
    lat = np.linspace(-89.375, 89.375, ny, dtype=np.float32)
    lon = np.linspace(0.0, 358.125, nx, dtype=np.float32)
    base = (258.0 + 40.0 * np.cos(np.deg2rad(lat)))[:, None] + 2.0 * np.sin(np.deg2rad(lon))[None, :]
    t = np.arange(t0, t1, dtype=np.float32)
    season = 12.0 * np.sin(2 * np.pi * t / 2880.0)  # 360-day calendar, 8 steps a day
    rng = np.random.default_rng(t0)
    out = rng.standard_normal((t1 - t0, ny, nx), dtype=np.float32)
    out *= 1.5
    out += base[None, :, :]
    out += (season[:, None, None] * np.sin(np.deg2rad(lat))[None, :, None]).astype(np.float32)
    first = t0 + (MASK_STEP - t0) % MASK_EVERY  # the first masked step at or after t0
    for i, j in mask:
        out[first - t0::MASK_EVERY, i, j] = FILL
    return out


def dims(a):
    a.attrs["_ARRAY_DIMENSIONS"] = ["time", "lat", "lon"]
    a.attrs["missing_value"] = FILL


def write_v2(path, p):
    nt, ny, nx = p["shape"]
    ct = p["chunks"][0]
    g = zarr.open_group(path, mode="w", zarr_format=2)
    a = g.create_array("tas", shape=p["shape"], chunks=p["chunks"], dtype="<f4",
                       fill_value=FILL,
                       compressors=numcodecs.Blosc(cname="lz4", clevel=5,
                                                   shuffle=numcodecs.Blosc.SHUFFLE))
    dims(a)
    a.attrs["units"] = "K"
    for t0 in range(0, nt, ct):
        a[t0:t0 + ct] = block(t0, t0 + ct, ny, nx, p["mask"])
    zarr.consolidate_metadata(path, zarr_format=2)


def write_v3(path, p):
    nt, ny, nx = p["shape"]
    st, ct = p["shards"][0], p["chunks"][0]
    g = zarr.open_group(path, mode="w", zarr_format=3)
    a = g.create_array("tas", shape=p["shape"], chunks=p["inner"], shards=p["shards"],
                       dtype="float32", fill_value=FILL,
                       compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=4),
                       dimension_names=["time", "lat", "lon"])
    a.attrs["units"] = "K"
    a.attrs["missing_value"] = FILL
    for s0 in range(0, nt, st):
        a[s0:s0 + st] = np.concatenate([block(t0, t0 + ct, ny, nx, p["mask"])
                                        for t0 in range(s0, s0 + st, ct)])


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    p = QUICK if args.quick else FULL
    os.makedirs(args.out, exist_ok=True)
    for name, writer in [("tas_v2.zarr", write_v2), ("tas_v3_sharded.zarr", write_v3)]:
        path = os.path.join(args.out, name)
        stamp = path + ".stamp"
        want = json.dumps({"params": p, "fill": FILL, "masked": [MASK_EVERY, MASK_STEP], "zarr": zarr.__version__, "numcodecs": numcodecs.__version__})
        if os.path.exists(stamp) and open(stamp).read() == want:
            print(f"{name}: up to date ({du(path) / 1e9:.3f} GB)", file=sys.stderr)
            continue
        shutil.rmtree(path, ignore_errors=True)
        t = time.perf_counter()
        writer(path, p)
        with open(stamp, "w") as f:
            f.write(want)
        raw = np.prod(p["shape"]) * 4
        print(f"{name}: wrote {du(path) / 1e9:.3f} GB on disk ({raw / 1e9:.3f} GB raw) "
              f"in {time.perf_counter() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
