"""A benchmark store as users' tools write them: `gridflow sample`'s values, written by
xarray + zarr-python with the Pangeo CMIP6 stores' encodings.

Writes `gridflow sample --years N` to a temporary directory next to DIR, opens it with
`xr.open_zarr` (CF decoding: its masked values become NaN) and writes it again with
`to_zarr` at DIR (the same Pangeo path), with what the Pangeo CMIP6 stores have: Zarr v2,
consolidated metadata, `tas` in chunks of (600, 144, 192), blosc lz4 clevel 5 + byte shuffle,
every data variable with zarr `fill_value` 1e20 (float32-rounded) and a `missing_value`
attribute of 1e20, so the masked values are stored as 1e20. The sample's intake-esm catalog
is copied with its paths pointed at DIR. A stamp file keeps a finished store from being
written again.

    python gen_store.py --gridflow target/release/gridflow --years 5 DIR
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numcodecs
import numpy as np
import xarray as xr
import zarr

STORE_PATH = "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r1i1p1f1/3hr/tas/gr/v20191125"
FILL = float(np.float32(1e20))  # 1.0000000200408773e20, as in the Pangeo stores
TIME_CHUNK = 600
FORMAT = 1  # bump when what this script writes changes


def rewrite(src, dst):
    """`src` (gridflow's store) → `dst` with xarray, CMIP6's encodings."""
    ds = xr.open_zarr(src)
    # times keep their units, calendar and dtype (float64 days since 1850-01-01)
    time = {k: ds.time.encoding[k] for k in ("units", "calendar", "dtype")}
    for v in ds.variables.values():
        v.encoding = {}  # the source's own encodings are replaced
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    enc = {name: {"compressors": [blosc]} for name in ds.variables}
    enc["time"].update(time)
    for name in ds.data_vars:
        enc[name].update({"_FillValue": FILL, "missing_value": FILL})
    enc["tas"]["chunks"] = (TIME_CHUNK,) + ds.tas.shape[1:]
    ds.to_zarr(dst, mode="w", zarr_format=2, consolidated=True, encoding=enc)


def copy_catalog(src_dir, dst_dir):
    """The sample's catalog, its (absolute) store paths pointed from src_dir to dst_dir."""
    with open(os.path.join(src_dir, "pangeo-cmip6.json")) as f:
        spec = f.read()
    with open(os.path.join(src_dir, "pangeo-cmip6.csv")) as f:
        csv = f.read()
    old, new = os.path.realpath(src_dir), os.path.realpath(dst_dir)
    with open(os.path.join(dst_dir, "pangeo-cmip6.json"), "w") as f:
        f.write(spec)
    with open(os.path.join(dst_dir, "pangeo-cmip6.csv"), "w") as f:
        f.write(csv.replace(old + os.sep, new + os.sep))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--gridflow", required=True, help="the gridflow binary (writes the values)")
    ap.add_argument("--years", type=int, required=True)
    args = ap.parse_args()
    dst_dir = os.path.abspath(args.dir)
    stamp = os.path.join(dst_dir, ".gridflow-suite-store")
    want = json.dumps({"years": args.years, "format": FORMAT, "xarray": xr.__version__,
                       "zarr": zarr.__version__, "numcodecs": numcodecs.__version__})
    if os.path.exists(stamp) and open(stamp).read() == want:
        print(f"store ready: {dst_dir}", file=sys.stderr)
        return
    tmp = dst_dir.rstrip(os.sep) + ".gridflow-sample"
    t = time.perf_counter()
    subprocess.run([args.gridflow, "sample", "--years", str(args.years), "--data", tmp],
                   check=True, stdout=sys.stderr)
    t1 = time.perf_counter()
    shutil.rmtree(dst_dir, ignore_errors=True)
    os.makedirs(dst_dir)
    rewrite(os.path.join(tmp, STORE_PATH), os.path.join(dst_dir, STORE_PATH))
    copy_catalog(tmp, dst_dir)
    shutil.rmtree(tmp)
    with open(stamp, "w") as f:
        f.write(want)
    print(f"store written: {dst_dir} (gridflow sample {t1 - t:.1f} s, xarray rewrite "
          f"{time.perf_counter() - t1:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
