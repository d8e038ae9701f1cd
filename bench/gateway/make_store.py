"""A CMIP6-like store for the gather benchmark, written by xarray/zarr-python (Zarr v2,
float32, _FillValue and missing_value 1e20, blosc, gaps stored as the fill value):
python make_store.py OUT.zarr"""
import sys

import numpy as np
import pandas as pd
import xarray as xr

T, Y, X = 1000, 256, 256
rng = np.random.default_rng(0)
data = (rng.random((T, Y, X), dtype=np.float32) * 40 + 250).astype(np.float32)
data[:, :8, :] = np.nan
ds = xr.Dataset(
    {"tas": (("time", "lat", "lon"), data, {"units": "K", "standard_name": "air_temperature"})},
    coords={
        "time": pd.date_range("2000-01-01", periods=T, freq="3h"),
        "lat": np.linspace(-89.5, 89.5, Y),
        "lon": np.linspace(0, 359, X),
    },
)
fill = np.float32(1e20)
enc = {"tas": {"_FillValue": fill, "missing_value": fill, "chunks": (100, Y, X), "dtype": "float32"}}
ds.to_zarr(sys.argv[1], mode="w", encoding=enc, zarr_format=2, consolidated=True)
