"""Computed gridflow values as NumPy arrays and xarray objects.

The Rust side hands over each variable as ``(name, dims, values, kind, attrs_json,
encoding_json)``: ``values`` is a NumPy array owning the Rust buffer, ``kind`` says what the
numbers stand for (``None``: numbers; ``("time", calendar)``: int64 microseconds since
1970-01-01 in that CF calendar; ``("strings", table)``: int64 codes into ``table``).
"""

from __future__ import annotations

import json

import numpy as np

# Calendars whose dates NumPy's datetime64 (proleptic Gregorian) represents; xarray
# decodes them to datetime64[ns] when every date fits, to cftime objects otherwise.
_NUMPY_CALENDARS = {"standard", "gregorian", "proleptic_gregorian"}
_NAT = np.iinfo(np.int64).min
# datetime64[ns] spans 1677-09-21 .. 2262-04-11 (all after the standard calendar's switch
# from Julian to Gregorian dates in 1582, so the two calendars agree there).
_NS_MIN_US = -9223372036854775 + 1
_NS_MAX_US = 9223372036854775 - 1


def _cftime(ticks: np.ndarray, calendar: str) -> np.ndarray:
    import cftime

    out = np.empty(ticks.shape, dtype=object)
    valid = ticks != _NAT
    if valid.any():
        out[valid] = cftime.num2date(
            ticks[valid],
            "microseconds since 1970-01-01",
            calendar=calendar,
            only_use_cftime_datetimes=True,
        )
    out[~valid] = np.nan
    return out


def decode_values(values: np.ndarray, kind) -> np.ndarray:
    """Values as xarray shows them: numbers as they are (no copy), times as
    datetime64[ns] or cftime objects, strings as a NumPy string array."""
    if kind is None:
        return values
    what, extra = kind
    if what == "time":
        valid = values[values != _NAT]
        fits_numpy = extra in _NUMPY_CALENDARS and (
            valid.size == 0 or (valid.min() >= _NS_MIN_US and valid.max() <= _NS_MAX_US)
        )
        if fits_numpy:
            return values.view("datetime64[us]").astype("datetime64[ns]")
        return _cftime(values, extra)
    if what == "strings":
        table = np.asarray(list(extra) if extra else [""], dtype=str)
        return table[values]
    raise ValueError(f"unknown value kind {kind!r}")


def xr_variable(raw):
    """An ``xarray.Variable`` from a raw variable tuple, with attrs and encoding."""
    import xarray as xr

    _name, dims, values, kind, attrs_json, encoding_json = raw
    return xr.Variable(
        tuple(dims),
        decode_values(values, kind),
        attrs=json.loads(attrs_json),
        encoding=json.loads(encoding_json),
    )


def to_xarray_dataarray(raw):
    """``compute_raw()`` of a DataArray as an ``xarray.DataArray``."""
    import xarray as xr

    name, var_raw, coords_raw = raw
    var = xr_variable(var_raw)
    coords = {c[0]: xr_variable(c) for c in coords_raw}
    out = xr.DataArray(var, coords=coords, name=name)
    out.encoding = dict(var.encoding)
    return out


def to_xarray_dataset(raw):
    """``compute_raw()`` of a Dataset as an ``xarray.Dataset``."""
    import xarray as xr

    (vars_raw, coords_raw), attrs_json, encoding_json = raw
    data_vars = {v[0]: xr_variable(v) for v in vars_raw}
    coords = {c[0]: xr_variable(c) for c in coords_raw}
    ds = xr.Dataset(data_vars, coords=coords, attrs=json.loads(attrs_json))
    ds.encoding = json.loads(encoding_json)
    return ds
