"""``gridflow.Gateway``: a cluster from a ``gridflow gateway`` (the CLI, $GRIDFLOW_BIN, with
its local-process backend on 127.0.0.1), computing through the gateway's address what
xarray computes on the same store; another user's token is refused; a TLS gateway is
trusted with its CA. In a notebook on JupyterHub, ``Gateway()`` needs no arguments: the
token is the user's ``JUPYTERHUB_API_TOKEN``, checked by the gateway with a real JupyterHub
(the pinned one of scripts/jupyterhub-setup.sh, configured by
scripts/jupyterhub_test_config.py)."""

import contextlib
import hashlib
import json
import os
import pathlib
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import xarray as xr

import gridflow

from conftest import CRATES, DATASET_FIXTURES

STORE = str(DATASET_FIXTURES / "daily_360.zarr")
ROOT = CRATES.parent
HUB_VENV = pathlib.Path(os.environ.get("GRIDFLOW_HUB_VENV", ROOT / "target" / "hub-venv"))


@contextlib.contextmanager
def gateway_process(tmp_path, **config):
    """A ``gridflow gateway`` on a free 127.0.0.1 port with ``config``; yields its address."""
    config = {
        "address": "127.0.0.1:0",
        "state_dir": str(tmp_path / "state"),
        "idle_timeout": 0,
        "check_interval": 0.2,
        **config,
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
        yield line.split(" at ")[1]
    finally:
        proc.kill()
        proc.wait()


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


def _hub_call(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


@pytest.fixture
def hub(tmp_path):
    """A real JupyterHub on a free 127.0.0.1 port; yields its URL and a function making a
    user's API token through the hub's REST API (as the hub makes a notebook's)."""
    program = HUB_VENV / "bin" / "jupyterhub"
    assert program.exists(), f"no JupyterHub at {program}: run scripts/jupyterhub-setup.sh"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "hub"
    state.mkdir()
    service = secrets.token_hex(16)
    env = dict(
        os.environ,
        GRIDFLOW_HUB_DIR=str(state),
        GRIDFLOW_HUB_PORT=str(port),
        GRIDFLOW_HUB_SERVICE_TOKEN=service,
    )
    url = f"http://127.0.0.1:{port}"
    with open(state / "hub.log", "w") as log:
        proc = subprocess.Popen(
            [str(program), "-f", str(ROOT / "scripts" / "jupyterhub_test_config.py")],
            cwd=state,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        start = time.monotonic()
        while True:
            try:
                if _hub_call("GET", f"{url}/hub/api/", "")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() - start > 60:
                pytest.fail(f"JupyterHub did not start ({proc.poll()}):\n{(state / 'hub.log').read_text()}")
            time.sleep(0.05)

        def new_token(user):
            status, answer = _hub_call(
                "POST", f"{url}/hub/api/users/{user}/tokens", service, {"note": "gridflow test", "expires_in": 3600}
            )
            assert status == 201, answer
            return answer["token"]

        yield url, new_token
    finally:
        proc.kill()
        proc.wait()


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


def test_gateway_address_and_token_from_the_environment(gateway, monkeypatch):
    address, tokens = gateway
    monkeypatch.setenv("GRIDFLOW_GATEWAY_ADDRESS", address)
    monkeypatch.delenv("GRIDFLOW_GATEWAY_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", tokens["ann"])
    assert gridflow.Gateway().whoami()["name"] == "ann"
    assert gridflow.Gateway(auth="jupyterhub").whoami()["name"] == "ann"
    # The gateway's own token comes first; auth="jupyterhub" asks for the hub's.
    monkeypatch.setenv("GRIDFLOW_GATEWAY_TOKEN", tokens["ben"])
    assert gridflow.Gateway().whoami()["name"] == "ben"
    assert gridflow.Gateway(auth="jupyterhub").whoami()["name"] == "ann"
    monkeypatch.delenv("GRIDFLOW_GATEWAY_TOKEN")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    with pytest.raises(ValueError, match="JUPYTERHUB_API_TOKEN"):
        gridflow.Gateway()
    monkeypatch.delenv("GRIDFLOW_GATEWAY_ADDRESS")
    with pytest.raises(ValueError, match="GRIDFLOW_GATEWAY_ADDRESS"):
        gridflow.Gateway(auth=tokens["ann"])


def test_gateway_in_a_hub_notebook_needs_no_arguments(hub, tmp_path, monkeypatch):
    hub_url, new_token = hub
    jupyterhub = {"url": f"{hub_url}/hub/api", "cache_seconds": 60}
    with gateway_process(tmp_path, jupyterhub=jupyterhub) as address:
        # What JupyterHub sets in a user's server, and the gateway's address (set by the
        # deployment, as dask-gateway's configuration is).
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", new_token("alice"))
        monkeypatch.setenv("GRIDFLOW_GATEWAY_ADDRESS", address)
        monkeypatch.delenv("GRIDFLOW_GATEWAY_TOKEN", raising=False)
        gw = gridflow.Gateway()
        me = gw.whoami()
        assert (me["name"], me["admin"]) == ("alice", False)
        with gw.new_cluster(workers=1, threads=1) as cluster:
            cluster.wait_for_workers(1)
            with cluster.get_client() as client:
                got = client.compute(gridflow.open_zarr(STORE).tas.mean("time"))
            assert [c["owner"] for c in gw.list_clusters()] == ["alice"]
        want = xr.open_zarr(STORE).tas.mean("time").values
        np.testing.assert_allclose(got.values, want, rtol=1e-6)
        assert gw.list_clusters() == []
        # A token the hub never issued is refused by the gateway, naming the hub.
        with pytest.raises(gridflow.gateway.GatewayError) as e:
            gridflow.Gateway(auth="not-a-hub-token").whoami()
        assert e.value.status == 401 and "JupyterHub at" in e.value.message
