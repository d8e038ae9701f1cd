"""``xr.open_dataset(..., engine="gridflow")`` gives what xarray's zarr engine gives."""

import numpy as np
import pytest
import xarray as xr

from conftest import DATASET_FIXTURES, STORE_FIXTURES

STORES = sorted(str(p) for p in DATASET_FIXTURES.glob("*.zarr")) + [
    str(STORE_FIXTURES / n) for n in ("cmip6_mini.zarr",)
]


@pytest.mark.parametrize("path", STORES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_identical_to_the_zarr_engine(path):
    got = xr.open_dataset(path, engine="gridflow")
    want = xr.open_dataset(path, engine="zarr")
    xr.testing.assert_identical(got, want)
    xr.testing.assert_identical(got.load(), want.load())


def test_lazy_indexing_reads_only_the_selection():
    path = str(DATASET_FIXTURES / "daily_360.zarr")
    got = xr.open_dataset(path, engine="gridflow")
    want = xr.open_dataset(path, engine="zarr")
    # nothing is read until indexed: the variable is still a lazy backend array
    assert not isinstance(got.tas.variable._data, np.ndarray)
    sel = dict(time=slice(10, 40, 3), lat=2, lon=slice(None, None, -1))
    xr.testing.assert_identical(got.tas.isel(**sel).load(), want.tas.isel(**sel).load())


def test_entry_point_is_registered():
    assert "gridflow" in xr.backends.list_engines()
