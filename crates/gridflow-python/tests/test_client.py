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


def _wait(what, ok, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def _cli_cluster(tmp_path, names):
    """A ``gridflow scheduler`` and ``gridflow worker`` processes (no nanny: a retired
    worker stays gone): (scheduler address, scheduler process, worker processes)."""
    import json, os, subprocess

    gridflow_bin = os.environ["GRIDFLOW_BIN"]
    scheduler_file = tmp_path / "scheduler.json"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler = subprocess.Popen(
        [gridflow_bin, "scheduler", "--port", "0", "--dashboard-address", "none",
         "--scheduler-file", str(scheduler_file)],
        **quiet,
    )
    _wait("the scheduler file", scheduler_file.exists)
    address = json.loads(scheduler_file.read_text())["address"]
    workers = {
        n: subprocess.Popen([gridflow_bin, "worker", address, "--nthreads", "1", "--name", n], **quiet)
        for n in names
    }
    return address, scheduler, workers


def test_retire_workers_and_the_adaptive_target_by_address(tmp_path):
    address, scheduler, workers = _cli_cluster(tmp_path, ["w-a", "w-b", "w-c"])
    try:
        with gridflow.Client(address, set_as_default=False) as client:
            _wait("three workers", lambda: len(client.scheduler_info()["workers"]) == 3)
            # idle: no worker wanted, and the figures behind it
            assert client.adaptive_target() == 0
            t = client.adaptive_target(details=True)
            assert t["target"] == 0 and t["unfinished_tasks"] == 0 and t["workers"] == 3, t
            assert set(t) >= {"cpu", "memory", "ready_tasks", "expected_seconds"}

            # by name, and by data address as scheduler_info lists it
            info = client.scheduler_info()["workers"]
            addr_c = next(a for a, w in info.items() if w["name"] == "w-c")
            got = client.retire_workers(workers=["w-b"])
            assert [w["name"] for w in got.values()] == ["w-b"], got
            assert workers["w-b"].wait(timeout=30) is not None
            got = client.retire_workers(workers=[addr_c])
            assert list(got) == [addr_c] and got[addr_c]["name"] == "w-c", got
            assert workers["w-c"].wait(timeout=30) is not None
            left = client.scheduler_info()["workers"]
            assert [w["name"] for w in left.values()] == ["w-a"], left
            assert workers["w-a"].poll() is None

            with pytest.raises(gridflow.GridflowError, match="nobody"):
                client.retire_workers(workers=["nobody"])
            with pytest.raises(ValueError):
                client.retire_workers()
            # scaling belongs to a cluster this client started
            with pytest.raises(gridflow.GridflowError, match="did not start"):
                client._handle.scale(2)
    finally:
        for p in [scheduler, *workers.values()]:
            p.terminate()
        for p in [scheduler, *workers.values()]:
            p.wait(timeout=30)


def test_local_cluster_scales_adapts_and_reports_its_workers():
    def states(cluster):
        return sorted((w["name"], w["state"]["state"]) for w in cluster.worker_status())

    with gridflow.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        status = cluster.worker_status()
        assert len(status) == 1 and status[0]["state"] == {"state": "running"}, status
        assert status[0]["id"].isdigit()
        cluster.scale(3)
        _wait("three running workers", lambda: [s for _, s in states(cluster)] == ["running"] * 3)
        assert len(cluster.workers) == 3
        cluster.scale(1)
        assert states(cluster) == [(status[0]["name"], "running")]
        assert len(cluster.workers) == 1

        # adapt: up to the minimum at once
        cluster.adapt(minimum=2, maximum=4)
        _wait("the adaptive minimum", lambda: [s for _, s in states(cluster)] == ["running"] * 2)
        cluster.scale(1)  # stops adapting
        assert len(cluster.workers) == 1

        with pytest.raises(gridflow.GridflowError, match="minimum"):
            cluster.adapt(minimum=3, maximum=1)
        with pytest.raises(ValueError):
            cluster.scale(-1)
        with pytest.raises(ValueError):
            cluster.adapt(minimum=1.5, maximum=2)
        assert cluster.adaptive_target() == 0
    with pytest.raises(gridflow.GridflowError, match="closed"):
        cluster.worker_status()
