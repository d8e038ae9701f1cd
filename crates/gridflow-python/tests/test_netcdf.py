"""netCDF files from Python: ``gridflow.open_dataset`` and the ``gridflow`` xarray engine open
them (groups too), each variable's ``encoding`` as xarray's netcdf4 engine reports it
(``encodings.json``) and the values xarray reads (``expected.json``), both written by
gridflow-store/tests/fixtures/generate_netcdf.py."""

import json
import math
import pathlib

import numpy as np
import pytest
import xarray as xr

import gridflow
from conftest import STORE_FIXTURES

NETCDF = STORE_FIXTURES / "netcdf"
ENCODINGS = json.loads((NETCDF / "encodings.json").read_text())
GROUPS = json.loads((NETCDF / "expected.json").read_text())["groups"]
CASES = [k for k in ENCODINGS if k not in ("pins", "values")]


def _same(a, b):
    """Equal as JSON values: numbers by value, lists element by element."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("case", CASES)
def test_encodings_equal_xarrays(case):
    file, _, group = case.partition(":")
    want = ENCODINGS[case]
    ds = gridflow.open_dataset(NETCDF / file, group=group or None)
    assert pathlib.Path(ds.encoding["source"]).name == want["dataset"]["source"]
    assert sorted(ds.encoding.get("unlimited_dims", [])) == want["dataset"]["unlimited_dims"]
    names = list(ds.data_vars) + list(ds.coords)
    assert sorted(names) == sorted(want["variables"])
    for name, w in want["variables"].items():
        got = dict(ds[name].encoding)
        if "source" in got:
            got["source"] = pathlib.Path(got["source"]).name
        assert sorted(got) == sorted(w), (name, sorted(got), sorted(w))
        for k, v in w.items():
            assert _same(got[k], v), (name, k, got[k], v)


@pytest.mark.parametrize("case", sorted(GROUPS))
def test_the_xarray_engine_opens_groups(case):
    engine, _, group = case.partition(":")
    want = GROUPS[case]
    path = NETCDF / f"groups_{engine}.nc"
    got = xr.open_dataset(path, engine="gridflow", group=group or None)
    assert dict(got.sizes) == want["dims"]
    for kind in ("data_vars", "coords"):
        for name, w in want[kind].items():
            v = got[name]
            assert list(v.dims) == w["dims"], name
            if v.size and hasattr(v.values.flat[0], "calendar"):
                assert [x.isoformat() for x in v.values.flat] == w["values"], name
            elif v.dtype.kind in "OUS":
                assert [str(x) for x in v.values.flat] == w["values"], name
            else:
                want_vals = np.array([np.nan if x is None else x for x in w["values"]], dtype="f8")
                np.testing.assert_allclose(v.values.astype("f8").ravel(), want_vals, rtol=1e-12, err_msg=name)
    # the storage of each variable comes along, for to_netcdf
    enc = ENCODINGS[f"groups_{engine}.nc:{group}"]["variables"]
    for name in got.variables:
        if "chunksizes" in enc[name]:
            assert got[name].encoding["contiguous"] == enc[name]["contiguous"], name


def test_an_unknown_group_names_it():
    with pytest.raises(Exception, match="forecast/member9"):
        gridflow.open_dataset(NETCDF / "groups_netcdf4.nc", group="forecast/member9")
