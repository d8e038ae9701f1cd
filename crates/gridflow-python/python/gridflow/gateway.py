"""``Gateway``: clusters on demand from a gridflow gateway (``gridflow gateway``), with
Dask Gateway's names: ``Gateway(address, auth).new_cluster()``, ``cluster.get_client()``,
``scale``, ``adapt``, ``shutdown``, ``list_clusters``, ``connect``. The REST calls use only
the standard library; computations reach the cluster through the gateway's address with
the cluster's own token."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request


class GatewayError(RuntimeError):
    """The gateway refused a request (its HTTP status and message)."""

    def __init__(self, status, message):
        super().__init__(f"gateway answered {status}: {message}")
        self.status = status
        self.message = message


def _token(auth):
    if auth is None:
        auth = os.environ.get("GRIDFLOW_GATEWAY_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    elif auth == "jupyterhub":
        auth = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not auth:
        raise ValueError(
            "no API token: pass auth=TOKEN, or set GRIDFLOW_GATEWAY_TOKEN (or JUPYTERHUB_API_TOKEN)"
        )
    return auth


class Gateway:
    """A gateway at ``address`` (``http://host:port`` or ``https://host:port``; default
    ``$GRIDFLOW_GATEWAY_ADDRESS``) as the user whose API token is ``auth`` (default
    ``$GRIDFLOW_GATEWAY_TOKEN``, or ``$JUPYTERHUB_API_TOKEN``; ``"jupyterhub"`` for the
    latter). A TLS gateway's certificate is checked against ``ca_file`` (default
    ``$GRIDFLOW_GATEWAY_CA``), else the system's trusted roots."""

    def __init__(self, address=None, auth=None, ca_file=None):
        address = address or os.environ.get("GRIDFLOW_GATEWAY_ADDRESS")
        if not address:
            raise ValueError("no gateway address: pass one or set GRIDFLOW_GATEWAY_ADDRESS")
        address = address.rstrip("/")
        if not address.startswith(("http://", "https://")):
            address = "http://" + address
        self.address = address
        self._auth = _token(auth)
        self._ca_file = ca_file or os.environ.get("GRIDFLOW_GATEWAY_CA") or None
        self._ssl = None
        if address.startswith("https://"):
            import ssl

            self._ssl = ssl.create_default_context(cafile=self._ca_file)

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.address + path, data=data, method=method)
        req.add_header("Authorization", f"token {self._auth}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=120, context=self._ssl) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace")
            raise GatewayError(e.code, message) from None

    def new_cluster(self, workers=None, threads=None, memory=None, **backend):
        """Creates a cluster (options outside the administrator's bounds are refused);
        returns once its scheduler runs, workers joining as they start."""
        body = {"workers": workers, "threads": threads, "memory": memory, "backend": {k: str(v) for k, v in backend.items()}}
        return GatewayCluster(self, self._call("POST", "/api/clusters", body))

    def list_clusters(self):
        """This user's clusters (an administrator's: everyone's), as dicts."""
        return self._call("GET", "/api/clusters")

    def connect(self, cluster_id):
        """A handle on an existing cluster of this user."""
        return GatewayCluster(self, self._call("GET", f"/api/clusters/{cluster_id}"))

    def stop_cluster(self, cluster_id):
        self._call("DELETE", f"/api/clusters/{cluster_id}")

    def whoami(self):
        return self._call("GET", "/api/whoami")

    def __repr__(self):
        return f"Gateway({self.address!r})"


class GatewayCluster:
    """A cluster of a gateway: ``get_client()`` computes on it through the gateway."""

    def __init__(self, gateway, report):
        self._gateway = gateway
        self._report = report
        self.name = report["id"]
        self.scheduler_address = report["address"]
        self._token = report.get("token")
        self._closed = False

    @property
    def dashboard_link(self):
        return self._report.get("dashboard")

    def _connect_client(self):
        """The extension's client handle: through the gateway's address (TLS checked
        against the gateway's CA), with the cluster's own token."""
        from . import _gridflow

        return _gridflow.Client.connect(self.scheduler_address, self._token, self._gateway._ca_file)

    def get_client(self, set_as_default=True):
        from .distributed import Client

        return Client(self, set_as_default=set_as_default)

    def scale(self, n):
        self._report = self._gateway._call("POST", f"/api/clusters/{self.name}/scale", {"workers": n})

    def adapt(self, minimum=0, maximum=1):
        self._report = self._gateway._call(
            "POST", f"/api/clusters/{self.name}/adapt", {"minimum": minimum, "maximum": maximum}
        )

    def worker_status(self):
        """Every worker asked for and its state (queued, starting, running, failed with
        its reason)."""
        return self._gateway._call("GET", f"/api/clusters/{self.name}")["workers"]

    def wait_for_workers(self, n, timeout=120.0):
        import time

        start = time.monotonic()
        while True:
            status = self.worker_status()
            states = [w["state"]["state"] for w in status]
            if states.count("running") >= n:
                return
            if time.monotonic() - start > timeout:
                # What the backend says of the others: Slurm's or Kubernetes' reason.
                why = [
                    f"{w['name']}: {w['state']['state']}"
                    + (f" ({w['state']['reason']})" if w["state"].get("reason") else "")
                    for w in status
                    if w["state"]["state"] != "running"
                ]
                raise TimeoutError(
                    f"{states.count('running')} of {n} workers running after {timeout} s: "
                    + ("; ".join(why) or "no worker asked for")
                )
            time.sleep(0.2)

    def shutdown(self):
        if not self._closed:
            try:
                self._gateway.stop_cluster(self.name)
            except GatewayError as e:
                if e.status != 404:
                    raise
            self._closed = True

    close = shutdown

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def __repr__(self):
        return f"GatewayCluster({self.name!r}, {self.scheduler_address!r})"
