"""gridflow's results equal xarray's on the committed fixture stores.

Every expression of the `gridflow eval` end-to-end tests (crates/gridflow-cli/tests/fixtures,
whose expected values xarray wrote) is evaluated here twice: on ``gridflow.open_zarr`` and on
``xarray.open_zarr`` of the same store, with the pinned xarray. ``compute()`` must give an
``xarray.DataArray`` with xarray's name, dims, coordinates and attributes, and equal values.
"""

import json

import numpy as np
import pytest
import xarray as xr

import gridflow

from conftest import CLI_EXPECTED, DATASET_FIXTURES


class _XrNumpy:
    """NumPy as the eval tests bind it for xarray: ``where`` is xarray-aware."""

    def __getattr__(self, name):
        return xr.where if name == "where" else getattr(np, name)


CASES = [c for c in json.loads(CLI_EXPECTED.read_text())["cases"] if c["store"]]


def _assert_same(got, want, atol, want_f64=None):
    assert isinstance(got, xr.DataArray)
    assert got.name == want.name
    assert got.dims == want.dims
    assert got.shape == want.shape
    assert got.attrs == want.attrs
    assert sorted(got.coords) == sorted(want.coords)
    for k in want.coords:
        assert got.coords[k].dims == want.coords[k].dims, k
        np.testing.assert_array_equal(got.coords[k].values, want.coords[k].values, err_msg=k)
    w = want.values
    g = got.values
    if w.dtype.kind == "f":
        scale = np.nanmax(np.abs(w)) if np.isfinite(w).any() else 1.0
        tol = dict(rtol=2e-6, atol=max(atol, 1e-6 * scale), equal_nan=True)
        if want_f64 is not None and not np.allclose(g, w, **tol):
            # gridflow accumulates float32 in float64: its result may be closer to xarray's
            # on float64 data than to xarray's float32 arithmetic (as the eval tests allow)
            np.testing.assert_allclose(g, want_f64.values, **tol)
        else:
            np.testing.assert_allclose(g, w, **tol)
    else:
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['store']}:{c['expr']}" for c in CASES])
def test_eval_expressions_equal_xarray(case):
    store = str(DATASET_FIXTURES / case["store"])
    got = eval(case["expr"], {"np": np, "ds": gridflow.open_zarr(store)})
    assert isinstance(got, gridflow.DataArray)
    want = eval(case["expr"], {"np": _XrNumpy(), "ds": xr.open_zarr(store)}).compute()
    want64 = eval(case["expr"], {"np": _XrNumpy(), "ds": xr.open_zarr(store).astype("float64")}).compute()
    _assert_same(got.compute(), want, case.get("atol", 0.0), want64)


def test_cases_are_all_there():
    # The shared list must not shrink silently: every store-backed case of the eval tests.
    assert len(CASES) >= 16


STORES = sorted(p.name for p in DATASET_FIXTURES.glob("*.zarr"))


@pytest.mark.parametrize("store", STORES)
def test_compute_whole_store_identical_to_xarray(store):
    path = str(DATASET_FIXTURES / store)
    got = gridflow.open_zarr(path).compute()
    want = xr.open_zarr(path).compute()
    assert isinstance(got, xr.Dataset)
    xr.testing.assert_identical(got, want)


@pytest.mark.parametrize("store", STORES)
def test_lazy_metadata_matches_xarray(store):
    path = str(DATASET_FIXTURES / store)
    g = gridflow.open_zarr(path)
    x = xr.open_zarr(path)
    assert g.sizes == dict(x.sizes)
    assert sorted(g.data_vars) == sorted(x.data_vars)
    assert sorted(g.coords) == sorted(x.coords)
    assert g.attrs == x.attrs
    for name in x.data_vars:
        gv, xv = g[name], x[name]
        assert gv.dims == xv.dims
        assert gv.attrs == xv.attrs
        if xv.chunks is not None:  # xarray leaves 0-d and string variables unchunked
            assert gv.chunks == xv.chunks
        if xv.dtype.kind in "biuf":
            assert gv.dtype == xv.dtype
        else:  # strings: NumPy's string dtypes differ by store, text either way
            assert gv.dtype.kind in "UOT" and xv.dtype.kind in "UOT"


def test_reductions_by_dimension_name():
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    g = gridflow.open_zarr(path).tas
    x = xr.open_zarr(path).tas
    for name in ("mean", "sum", "min", "max", "std", "var", "count", "median"):
        for dim in ("time", ["lat", "lon"], None):
            if name == "median" and dim is None:
                continue  # dask refuses a median over every axis
            want = getattr(x, name)(dim).compute()
            want64 = getattr(x.astype("float64"), name)(dim).compute()
            _assert_same(getattr(g, name)(dim).compute(), want, 0.0, want64)


def test_dataset_operations():
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    g = gridflow.open_zarr(path)
    x = xr.open_zarr(path)
    xr.testing.assert_allclose(g.mean("time").compute(), x.mean("time").compute(), rtol=1e-6)
    xr.testing.assert_identical(
        g.isel(time=slice(3, 9), lat=2).compute(), x.isel(time=slice(3, 9), lat=2).compute()
    )
    xr.testing.assert_identical(
        g.sel(lat=slice(-50, 50), time="1850-03").compute(), x.sel(lat=slice(-50, 50), time="1850-03").compute()
    )


def test_arithmetic_with_numbers_arrays_and_ufuncs():
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    g = gridflow.open_zarr(path)
    x = xr.open_zarr(path)
    w = np.linspace(0.5, 1.5, x.sizes["lon"])
    exprs = [
        lambda d: (2 * d.tas - 1) / 3,
        lambda d: d.tas ** 2 - d.tas,
        lambda d: 300.0 - d.tas,
        lambda d: d.tas * w,
        lambda d: w + d.tas,
        lambda d: np.cos(np.deg2rad(d.lat)) * d.tas,
        lambda d: np.maximum(d.tas, 290.0),
        lambda d: -abs(d.tas - 290),
        lambda d: (d.tas > 290) & (d.tas < 300),
        lambda d: d.tas.where(d.tas > 285, 0.0),
        lambda d: np.exp(d.tas / 300.0).isel(time=slice(0, 10)),
    ]
    for f in exprs:
        _assert_same(f(g).compute(), f(x).compute(), 0.0)


def test_values_share_memory_with_the_rust_result():
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    da = gridflow.open_zarr(path).tas.mean("time")
    values = da.values
    # The array does not own its buffer: gridflow's result does, and NumPy keeps it alive.
    assert not values.flags.owndata
    assert values.base is not None and type(values.base).__module__ != "numpy"
    out = da.compute()
    # xarray wraps that same array: no copy between gridflow and the xarray object.
    assert not out.values.flags.owndata
    assert np.shares_memory(out.values, out.variable._data)
    assert out.values.base is not None and type(out.values.base).__module__ != "numpy"
    np.testing.assert_array_equal(da.to_numpy(), values)


def test_cftime_and_datetime64_coordinates():
    for store in ("cal_360_day.zarr", "cal_noleap.zarr", "cal_standard.zarr", "cal_julian.zarr"):
        path = str(DATASET_FIXTURES / store)
        got = gridflow.open_zarr(path).compute()
        want = xr.open_zarr(path).compute()
        assert got.time.dtype == want.time.dtype, store
        assert type(got.time.values[0]) is type(want.time.values[0]), store
        np.testing.assert_array_equal(got.time.values, want.time.values)


def test_attrs_and_encoding_kept():
    path = str(DATASET_FIXTURES / "packed.zarr")
    got = gridflow.open_zarr(path).compute()
    want = xr.open_zarr(path)
    for name in want.variables:
        assert got[name].attrs == want[name].attrs, name
        for key in ("scale_factor", "add_offset", "_FillValue", "units", "calendar"):
            if key in want[name].encoding:
                assert key in got[name].encoding, (name, key)
                np.testing.assert_array_equal(got[name].encoding[key], want[name].encoding[key])


def test_errors_are_python_exceptions_with_gridflow_messages():
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    ds = gridflow.open_zarr(path)
    with pytest.raises(gridflow.GridflowError, match='no dimension "tiem"'):
        ds.tas.mean("tiem")
    with pytest.raises(gridflow.GridflowError, match="method"):
        ds.tas.sel(lat=3.0, method="closest")
    with pytest.raises(ValueError):  # GridflowError is a ValueError
        ds.tas.isel(time=10**6)
    with pytest.raises(gridflow.GridflowError, match="does-not-exist"):
        gridflow.open_zarr(str(DATASET_FIXTURES / "does-not-exist.zarr"))


def test_visualize_and_html_repr(tmp_path):
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    da = gridflow.open_zarr(path).tas.sel(lat=31.0, lon=100.0, method="nearest").mean("time")
    out = tmp_path / "graph.svg"
    da.visualize(filename=str(out))
    text = out.read_text()
    assert text.lstrip().startswith("<svg") or text.lstrip().startswith("<?xml")
    assert "</svg>" in text
    html = da._repr_html_()
    assert "gridflow.DataArray" in html and "<pre>" in html
    assert gridflow.optimize(da) is da
