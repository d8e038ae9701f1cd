"""``gridflow.Client`` / ``LocalCluster``: compute runs on worker processes and gives the
local results."""

import numpy as np
import pytest
import xarray as xr

import gridflow
from gridflow import _gridflow

from conftest import DATASET_FIXTURES

STORE = str(DATASET_FIXTURES / "daily_360.zarr")


def _exprs(ds):
    return [
        ds.tas.mean("time"),
        ds.tas.groupby("time.month").mean().isel(lon=0),
        ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(["lat", "lon"]),
        (ds.tas - 273.15).where(ds.tas > 280).max("time"),
    ]


def test_client_with_worker_processes_gives_the_local_results():
    ds = gridflow.open_zarr(STORE)
    local = [e.compute() for e in _exprs(ds)]
    with gridflow.Client(n_workers=2, threads_per_worker=1, memory_limit="500MB") as client:
        assert _gridflow.default_client() is not None
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        assert all(w["nthreads"] == 1 for w in info["workers"].values())
        assert all(w["memory_limit"] == 500_000_000 for w in info["workers"].values())
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status"), link
        import json, urllib.request
        base = link[: -len("status")]
        workers = json.load(urllib.request.urlopen(base + "api/v1/workers"))
        assert sorted(w["address"] for w in workers) == sorted(info["workers"]), workers
        remote = [e.compute() for e in _exprs(ds)]
    assert client.status == "closed"
    assert _gridflow.default_client() is None
    for a, b in zip(local, remote):
        xr.testing.assert_identical(a, b)


def test_client_connects_to_a_running_cluster_by_address():
    ds = gridflow.open_zarr(STORE)
    want = ds.tas.sum(["lat", "lon"]).compute()
    with gridflow.LocalCluster(n_workers=1, threads_per_worker=2) as cluster:
        assert len(cluster.workers) == 1
        with gridflow.Client(cluster.scheduler_address) as client:
            assert client.scheduler_address.endswith(cluster.scheduler_address.rsplit(":", 1)[-1])
            # by address, the scheduler reports its dashboard
            assert cluster.dashboard_link is not None
            assert client.dashboard_link == cluster.dashboard_link
            got = ds.tas.sum(["lat", "lon"]).compute()
        with gridflow.Client(cluster) as client2:
            got2 = client2.compute(ds.tas.sum(["lat", "lon"]))
    xr.testing.assert_identical(got, want)
    xr.testing.assert_identical(got2, want)


def test_bad_client_arguments_are_errors():
    with pytest.raises(gridflow.GridflowError, match="memory size"):
        gridflow.Client(n_workers=1, memory_limit="lots")
    with pytest.raises(gridflow.GridflowError, match="n_workers"):
        gridflow.LocalCluster(n_workers=0)
    with pytest.raises(gridflow.GridflowError):
        gridflow.Client("tcp://127.0.0.1:1")


def test_client_sized_from_the_machine():
    ds = gridflow.open_zarr(STORE)
    want = ds.tas.max("time").compute()
    with gridflow.Client() as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) >= 1
        assert all(w["nthreads"] >= 1 for w in workers.values())
        got = ds.tas.max("time").compute()
    xr.testing.assert_identical(got, want)


def test_a_dashboard_on_every_interface_is_linked_with_the_host_the_client_used(tmp_path):
    import json, os, subprocess, time, urllib.request

    gridflow_bin = os.environ["GRIDFLOW_BIN"]
    scheduler_file = tmp_path / "scheduler.json"
    proc = subprocess.Popen(
        [gridflow_bin, "scheduler", "--port", "0", "--dashboard-address", "0.0.0.0:0",
         "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not scheduler_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the scheduler wrote no scheduler file"
            time.sleep(0.05)
        address = json.loads(scheduler_file.read_text())["address"]
        port = address.rsplit(":", 1)[-1]
        with gridflow.Client(f"tcp://localhost:{port}", set_as_default=False) as client:
            link = client.dashboard_link
            assert link is not None and link.startswith("http://localhost:"), link
            assert link.endswith("/status"), link
            assert link != f"http://localhost:{port}/status"
            assert urllib.request.urlopen(link).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
