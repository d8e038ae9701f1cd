"""Catalog searches and ``to_dataset_dict`` equal intake-esm's on the committed catalogs."""

import os

import intake
import numpy as np
import pytest
import xarray as xr

import gridflow

from conftest import CATALOG_FIXTURES

# intake-esm 2025.12.12 passes storage_options={} to the zarr backend, which zarr 3.1.6
# refuses for plain paths (as the catalog fixture generator notes)
OPEN_KW = {"xarray_open_kwargs": {"backend_kwargs": {"storage_options": None}}, "progressbar": False}

SEARCHES = [
    {},
    {"variable_id": "tas"},
    {"variable_id": ["tas", "pr"]},
    {"source_id": "^CESM2.*"},
    {"member_id": "r1i1p1f1", "table_id": "Amon"},
    {"experiment_id": ["historical", "ssp585"], "variable_id": "tas"},
    {"dcpp_init_year": None},
    {"variable_id": ["tas", "pr"], "require_all_on": ["source_id", "experiment_id"]},
    {"source_id": "no-such-model"},
]


@pytest.fixture
def in_catalog_dir():
    # intake-esm resolves the catalog's relative asset paths against the working directory
    old = os.getcwd()
    os.chdir(CATALOG_FIXTURES)
    yield
    os.chdir(old)


def _ids(q):
    return ",".join(f"{k}={v}" for k, v in q.items()) or "all"


@pytest.mark.parametrize("catalog", ["pangeo-cmip6.json", "pangeo-cmip6-parquet.json", "pangeo-cmip6-inline.json"])
@pytest.mark.parametrize("query", SEARCHES, ids=_ids)
def test_searches_equal_intake_esm(in_catalog_dir, catalog, query):
    want = intake.open_esm_datastore(catalog).search(**query)
    got = gridflow.open_esm_datastore(catalog).search(**query)
    assert len(got) == len(want.df)
    assert got.keys() == list(want.keys())
    df = got.df
    assert list(df.columns) == list(want.df.columns)
    # the same rows in the same order (cells as text)
    for col in ("source_id", "experiment_id", "member_id", "variable_id"):
        assert df[col].tolist() == [str(v) for v in want.df[col].tolist()]


@pytest.mark.parametrize(
    "query",
    [{"variable_id": "tas"}, {"source_id": "CESM2", "table_id": "Amon"}, {"variable_id": ["tas", "pr"], "experiment_id": "historical"}],
    ids=_ids,
)
def test_to_dataset_dict_equals_intake_esm(in_catalog_dir, query):
    want = intake.open_esm_datastore("pangeo-cmip6.json").search(**query).to_dataset_dict(**OPEN_KW)
    got = gridflow.open_esm_datastore("pangeo-cmip6.json").search(**query).to_dataset_dict()
    assert sorted(got) == sorted(want)
    for key, w in want.items():
        g = got[key]
        assert isinstance(g, gridflow.Dataset)
        assert g.sizes == dict(w.sizes), key
        assert sorted(g.data_vars) == sorted(w.data_vars), key
        computed = g.compute()
        for name in w.data_vars:
            if w[name].dtype.kind == "f":
                np.testing.assert_allclose(computed[name].values, w[name].values, rtol=1e-6, equal_nan=True, err_msg=key)
            else:
                np.testing.assert_array_equal(computed[name].values, w[name].values, err_msg=key)
            assert computed[name].dims == w[name].dims
        for name in w.coords:
            np.testing.assert_array_equal(computed[name].values, w[name].values, err_msg=f"{key} {name}")


def test_catalog_errors_are_python_exceptions(in_catalog_dir):
    with pytest.raises(gridflow.GridflowError, match="nope.json"):
        gridflow.open_esm_datastore("nope.json")
    cat = gridflow.open_esm_datastore("pangeo-cmip6.json")
    with pytest.raises(TypeError):
        cat.search(variable_id=object())
