"""``xr.open_dataset(url, engine="gridflow")``: gridflow's Zarr and netCDF reads and CF decoding
behind xarray's lazy indexing."""

from __future__ import annotations

import json
import os

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from . import _gridflow
from ._convert import decode_values


class GridflowBackendArray(BackendArray):
    """One variable, read on indexing: the selection becomes a gridflow ``isel`` and only
    the chunks it touches are read and decoded."""

    def __init__(self, obj, dtype):
        self._obj = obj
        self.shape = tuple(obj.shape)
        self.dtype = dtype

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._getitem
        )

    def _getitem(self, key):
        sel = {}
        for dim, k in zip(self._obj.dims, key):
            if isinstance(k, slice):
                if k != slice(None):
                    sel[dim] = k
            else:
                sel[dim] = int(k)
        obj = self._obj.isel(sel) if sel else self._obj
        return np.asarray(decode_values(obj.compute_values(), obj.kind))


def _dtype(obj):
    kind = obj.kind
    if kind is None:
        return np.dtype(obj.dtype)
    if kind[0] == "time":
        return np.dtype("datetime64[ns]") if kind[1] in ("standard", "gregorian", "proleptic_gregorian") else np.dtype(object)
    return np.dtype(str)


class GridflowBackendEntrypoint(BackendEntrypoint):
    """The ``gridflow`` engine of ``xarray.open_dataset``."""

    description = "Open Zarr stores and netCDF files (local, HTTP, S3, GCS, Azure) with gridflow's reads and CF decoding"
    url = "https://example.invalid/gridflow"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "storage_options", "decode_cf", "group")

    def open_dataset(
        self, filename_or_obj, *, drop_variables=None, storage_options=None, decode_cf=None, group=None
    ):
        from . import _storage_options

        # netCDF files (recognised by content) and reference sets too, as open_dataset reads them
        ds = _gridflow.open_dataset(
            os.fspath(filename_or_obj), None, _storage_options(storage_options), decode_cf is not False,
            None if group is None else str(group),
        )
        drop = set([drop_variables] if isinstance(drop_variables, str) else drop_variables or ())

        def variable(name):
            obj = ds.get(name)
            data = indexing.LazilyIndexedArray(GridflowBackendArray(obj, _dtype(obj)))
            encoding = json.loads(obj.encoding_json)
            encoding["preferred_chunks"] = {d: c[0] for d, c in zip(obj.dims, obj.chunks) if c}
            return xr.Variable(tuple(obj.dims), data, attrs=json.loads(obj.attrs_json), encoding=encoding)

        data_vars = {n: variable(n) for n in ds.data_var_names() if n not in drop}
        coords = {n: variable(n) for n in ds.coord_names() if n not in drop}
        out = xr.Dataset(data_vars, coords=coords, attrs=json.loads(ds.attrs_json))
        out.encoding = json.loads(ds.encoding_json)
        return out

    def guess_can_open(self, filename_or_obj):
        try:
            p = os.fspath(filename_or_obj)
        except TypeError:
            return False
        return str(p).rstrip("/").endswith(".zarr")
