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


def _write_config(tmp_path, **extra):
    """Writes tmp_path/gateway.json for users ann and ben; returns their tokens."""
    tokens = {u: secrets.token_hex(16) for u in ("ann", "ben")}
    config = {
        "address": "127.0.0.1:0",
        "state_dir": str(tmp_path / "state"),
        "idle_timeout": 0,
        "check_interval": 0.2,
        "users": [{"name": u, "token_sha256": hashlib.sha256(t.encode()).hexdigest()} for u, t in tokens.items()],
        **extra,
    }
    (tmp_path / "gateway.json").write_text(json.dumps(config))
    return tokens


@pytest.fixture
def gateway(tmp_path):
    tokens = _write_config(tmp_path)
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


def _certs(d):
    """A CA and a certificate for 127.0.0.1 signed by it (openssl)."""

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=gridflow test gateway CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "gw.key", "-out", "gw.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "gw.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "gw.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "gw.pem", d / "gw.key"


def test_a_tls_gateway_with_its_ca(tmp_path):
    ca, cert, key = _certs(tmp_path)
    tokens = _write_config(tmp_path, tls_cert=str(cert), tls_key=str(key))
    proc = subprocess.Popen(
        [os.environ["GRIDFLOW_BIN"], "gateway", "--config", str(tmp_path / "gateway.json")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("gridflow gateway at https://"), line
        address = line.split(" at ")[1]
        # Without the CA, the gateway's certificate is not trusted.
        with pytest.raises(Exception) as e:
            gridflow.Gateway(address, auth=tokens["ann"]).whoami()
        assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
        gw = gridflow.Gateway(address, auth=tokens["ann"], ca_file=str(ca))
        assert gw.whoami()["name"] == "ann"
        with gw.new_cluster(workers=1, threads=1) as cluster:
            assert cluster.scheduler_address.startswith("gateway+tls://")
            assert cluster.dashboard_link.startswith("https://")
            cluster.wait_for_workers(1)
            with cluster.get_client() as client:
                got = client.compute(gridflow.open_zarr(STORE).tas.mean("time"))
            want = xr.open_zarr(STORE).tas.mean("time").values
            np.testing.assert_allclose(got.values, want, rtol=1e-6)
    finally:
        proc.kill()
        proc.wait()
