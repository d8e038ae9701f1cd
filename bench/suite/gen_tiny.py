"""A tiny store + catalog with the structure of `gridflow sample`, for the suite's smoke run.

`gridflow sample --years 1` writes 318 MB, too much for CI. This writes the same layout with
xarray: Zarr v2 + consolidated metadata at the Pangeo path under DIR, 3-hourly ``tas``
float32 on the ``360_day`` calendar (``days since 1850-01-01``), chunks holding the whole
globe, blosc-lz4 + shuffle, lat/lon bounds, the scalar ``height`` coordinate, CMIP6
attributes, CMIP6's encodings (zarr ``fill_value`` 1e20 and a ``missing_value`` attribute of
1e20 on every data variable, a few masked ``tas`` values stored as 1e20: 3 cells, one of them
the one nearest Milan, at one step of every 30 days, as in the sample), and the intake-esm
catalog ``DIR/pangeo-cmip6.json`` (+ CSV) listing it — but on a coarse 36 x 48 grid and
3600 steps (15 months, so W7's January–March 1851 is there) in chunks of 240.

    python gen_tiny.py DIR
"""

import json
import os
import sys

import numcodecs
import numpy as np
import xarray as xr

STORE_PATH = "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r1i1p1f1/3hr/tas/gr/v20191125"
NT, NLAT, NLON, CT = 3600, 36, 48, 240
# CMIP6's fill value: 1e20 as float32 (1.0000000200408773e20), as in the Pangeo stores
FILL = float(np.float32(1e20))
# masked tas values: at step k with k % MASK_EVERY == MASK_STEP, these (lat, lon) cells; the
# first is the cell nearest Milan (47.5N 11.25E), W1's point
MASK_EVERY, MASK_STEP, MASK_CELLS = 240, 100, [(27, 1), (0, 0), (18, 24)]
STAMP = (f"tiny nt={NT} lat={NLAT} lon={NLON} chunk={CT} fill={FILL!r} "
         f"masked={MASK_EVERY}/{MASK_STEP}/{MASK_CELLS}")


def dataset():
    lat = -87.5 + 5.0 * np.arange(NLAT)
    lon = 3.75 + 7.5 * np.arange(NLON)
    days = 0.125 * np.arange(1, NT + 1)
    rng = np.random.default_rng(1850)
    coslat, sinlat = np.cos(np.deg2rad(lat)), np.sin(np.deg2rad(lat))
    base = 240.0 + 45.0 * coslat[:, None] + 4.0 * np.cos(2 * np.deg2rad(lon))[None, :]
    season = 12.0 * np.sin(2 * np.pi * days / 360.0 - np.pi / 2)
    tas = (base[None] + season[:, None, None] * sinlat[None, :, None]
           + 3.0 * (rng.random((NT, NLAT, NLON)) - 0.5)).astype(np.float32)
    for i, j in MASK_CELLS:
        tas[MASK_STEP::MASK_EVERY, i, j] = np.nan  # written as FILL
    # raw CF time values, as the Pangeo store holds them (decoded to cftime on open)
    time_attrs = {"axis": "T", "long_name": "time", "standard_name": "time",
                  "units": "days since 1850-01-01", "calendar": "360_day"}
    ds = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), tas, {
                "long_name": "Near-Surface Air Temperature", "standard_name": "air_temperature",
                "units": "K", "cell_methods": "area: mean time: point"}),
            "lat_bnds": (("lat", "bnds"), np.stack([lat - 2.5, lat + 2.5], axis=1)),
            "lon_bnds": (("lon", "bnds"), np.stack([lon - 3.75, lon + 3.75], axis=1)),
        },
        coords={
            "time": ("time", days, time_attrs),
            "lat": ("lat", lat, {"axis": "Y", "bounds": "lat_bnds", "standard_name": "latitude",
                                 "units": "degrees_north"}),
            "lon": ("lon", lon, {"axis": "X", "bounds": "lon_bnds", "standard_name": "longitude",
                                 "units": "degrees_east"}),
            "height": ((), 2.0, {"axis": "Z", "positive": "up", "units": "m"}),
        },
        attrs={"Conventions": "CF-1.7 CMIP-6.2", "experiment_id": "historical", "frequency": "3hr",
               "institution_id": "NIMS-KMA", "source_id": "KACE-1-0-G", "table_id": "3hr",
               "variable_id": "tas", "member_id": "r1i1p1f1",
               "title": "tiny synthetic sample for the gridflow benchmark suite smoke run"},
    )
    return ds


def write_catalog(root):
    spec = {
        "esmcat_version": "0.1.0",
        "id": "glade-cmip6",
        "description": "gridflow benchmark suite: tiny sample",
        "catalog_file": "pangeo-cmip6.csv",
        "attributes": [{"column_name": c, "vocabulary": ""} for c in (
            "activity_id", "source_id", "institution_id", "experiment_id", "member_id",
            "table_id", "variable_id", "grid_label", "version", "dcpp_start_year")],
        "assets": {"column_name": "zstore", "format": "zarr"},
        "aggregation_control": {
            "variable_column_name": "variable_id",
            "groupby_attrs": ["activity_id", "institution_id", "source_id", "experiment_id",
                              "table_id", "grid_label"],
            "aggregations": [
                {"type": "union", "attribute_name": "variable_id"},
                {"type": "join_new", "attribute_name": "member_id",
                 "options": {"coords": "minimal", "compat": "override"}},
                {"type": "join_new", "attribute_name": "dcpp_init_year",
                 "options": {"coords": "minimal", "compat": "override"}},
            ],
        },
    }
    rows = [
        ("CMIP", "historical", "r1i1p1f1", "3hr", "tas", STORE_PATH),
        ("CMIP", "historical", "r2i1p1f1", "3hr", "tas", STORE_PATH.replace("r1i1p1f1", "r2i1p1f1")),
        ("CMIP", "historical", "r1i1p1f1", "3hr", "pr", STORE_PATH.replace("/tas/", "/pr/")),
    ]
    lines = ["activity_id,institution_id,source_id,experiment_id,member_id,table_id,variable_id,"
             "grid_label,zstore,dcpp_init_year,version"]
    for a, e, m, t, v, z in rows:
        lines.append(f"{a},NIMS-KMA,KACE-1-0-G,{e},{m},{t},{v},gr,{os.path.join(root, z)},,20191125")
    with open(os.path.join(root, "pangeo-cmip6.json"), "w") as f:
        json.dump(spec, f, indent=2)
    with open(os.path.join(root, "pangeo-cmip6.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    root = os.path.abspath(sys.argv[1])
    stamp = os.path.join(root, ".gridflow-suite-tiny")
    store = os.path.join(root, STORE_PATH)
    if os.path.exists(stamp) and open(stamp).read() == STAMP:
        print(f"tiny store ready: {store}", file=sys.stderr)
        return
    os.makedirs(store, exist_ok=True)
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    ds = dataset()
    # xarray writes `_FillValue` as the zarr fill_value of a v2 array and `missing_value` as an
    # attribute, as in the Pangeo CMIP6 stores
    enc = {name: {"_FillValue": FILL, "missing_value": FILL, "compressors": [blosc]}
           for name in ds.data_vars}
    enc["tas"]["chunks"] = (CT, NLAT, NLON)
    ds.to_zarr(store, mode="w", zarr_format=2, consolidated=True, encoding=enc)
    write_catalog(root)
    with open(stamp, "w") as f:
        f.write(STAMP)
    print(f"tiny store written: {store}", file=sys.stderr)


if __name__ == "__main__":
    main()
