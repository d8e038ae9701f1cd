"""``gridflow.Gateway``: a cluster from a ``gridflow gateway`` (the CLI, $GRIDFLOW_BIN, with
its local-process backend on 127.0.0.1), computing through the gateway's address what
xarray computes on the same store; another user's token is refused."""

import hashlib
import json
import os
import secrets
import subprocess

import numpy as np
import pytest
import xarray as xr

import gridflow

from conftest import DATASET_FIXTURES

STORE = str(DATASET_FIXTURES / "daily_360.zarr")


@pytest.fixture
def gateway(tmp_path):
    tokens = {u: secrets.token_hex(16) for u in ("ann", "ben")}
    config = {
        "address": "127.0.0.1:0",
        "state_dir": str(tmp_path / "state"),
        "idle_timeout": 0,
        "check_interval": 0.2,
        "users": [{"name": u, "token_sha256": hashlib.sha256(t.encode()).hexdigest()} for u, t in tokens.items()],
    }
    (tmp_path / "gateway.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [os.environ["GRIDFLOW_BIN"], "gateway", "--config", str(tmp_path / "gateway.json")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("gridflow gateway at http://"), line
        yield line.split(" at ")[1], tokens
    finally:
        proc.kill()
        proc.wait()


def test_gateway_cluster_computes_xarrays_numbers(gateway):
    address, tokens = gateway
    gw = gridflow.Gateway(address, auth=tokens["ann"])
    assert gw.whoami()["name"] == "ann"
    with gw.new_cluster(workers=1, threads=1) as cluster:
        assert cluster.scheduler_address.startswith("gateway://")
        cluster.wait_for_workers(1)
        with cluster.get_client() as client:
            got = client.compute(gridflow.open_zarr(STORE).tas.mean("time"))
        want = xr.open_zarr(STORE).tas.mean("time").values
        np.testing.assert_allclose(got.values, want, rtol=1e-6)
        assert [c["id"] for c in gw.list_clusters()] == [cluster.name]
        # Ben sees none of Ann's clusters and cannot stop them.
        ben = gridflow.Gateway(address, auth=tokens["ben"])
        assert ben.list_clusters() == []
        with pytest.raises(gridflow.gateway.GatewayError) as e:
            ben.stop_cluster(cluster.name)
        assert e.value.status == 404
    assert gw.list_clusters() == []
    with pytest.raises(gridflow.gateway.GatewayError) as e:
        gridflow.Gateway(address, auth="wrong").list_clusters()
    assert e.value.status == 401 and "unknown API token" in e.value.message
