"""``gridflow.dask.to_dask``: the same computations on a ``dask.distributed.LocalCluster``
(two worker processes, values pickled between them) equal gridflow's local results."""

import json

import numpy as np
import pytest
import xarray as xr

import gridflow
import gridflow.dask as gdask

from conftest import CLI_EXPECTED, DATASET_FIXTURES

CASES = [c for c in json.loads(CLI_EXPECTED.read_text())["cases"] if c["store"]]


@pytest.fixture(scope="module")
def dask_client():
    import distributed  # pinned in tests/requirements.txt: a missing one fails, not skips
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{c['store']}:{c['expr']}" for c in CASES])
def test_to_dask_on_a_dask_cluster_equals_local(dask_client, case):
    ds = gridflow.open_zarr(str(DATASET_FIXTURES / case["store"]))
    lazy = eval(case["expr"], {"np": np, "ds": ds})
    local = lazy.compute()
    on_dask = gdask.to_dask(lazy)
    assert on_dask.chunks is not None
    got = dask_client.compute(on_dask).result()
    xr.testing.assert_identical(got, local)
    # the work ran on the Dask workers (the tasks' names are gridflow's)
    assert any(str(k).startswith("('gridflow-") or str(k).startswith("gridflow-") for k in on_dask.__dask_graph__())


def test_to_dask_refuses_non_numeric():
    ds = gridflow.open_zarr(str(DATASET_FIXTURES / "cal_360_day.zarr"))
    with pytest.raises(TypeError, match="numeric"):
        gdask.to_dask(ds.time)
