# The JupyterHub configuration of gridflow's hub tests (crates/gridflow-cli/tests/gateway_hub.rs,
# crates/gridflow-python/tests/test_gateway.py), run with the pinned hub of
# scripts/jupyterhub-setup.sh:
#
#   GRIDFLOW_HUB_DIR=DIR GRIDFLOW_HUB_PORT=PORT GRIDFLOW_HUB_SERVICE_TOKEN=TOKEN \
#     target/hub-venv/bin/jupyterhub -f scripts/jupyterhub_test_config.py
#
# The hub's REST API listens on 127.0.0.1:PORT (http://127.0.0.1:PORT/hub/api), its database,
# cookie secret and pid file go to DIR. Users: alice and bob (the dummy authenticator; their
# tokens are made through the REST API), root (a hub admin), and the service
# "gridflow-test" whose token (TOKEN) may create and revoke users' tokens, as a test needs.
#
# No proxy runs: only the hub's REST API is used (the gateway asks /hub/api/user), so the
# proxy class below does nothing and configurable-http-proxy (npm) is not needed. A real
# deployment keeps JupyterHub's default proxy; the gateway talks to the hub's own API port.
import os

from jupyterhub.proxy import Proxy


class NoProxy(Proxy):
    """No proxy process; routes go nowhere (no single-user servers are started)."""

    should_start = False

    async def add_route(self, routespec, target, data):
        pass

    async def delete_route(self, routespec):
        pass

    async def get_all_routes(self):
        return {}


state = os.environ["GRIDFLOW_HUB_DIR"]
c = get_config()  # noqa: F821 (JupyterHub defines it when it reads this file)
c.JupyterHub.proxy_class = NoProxy
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["GRIDFLOW_HUB_PORT"])
# The public (proxy) address is never bound; kept on 127.0.0.1 all the same.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{state}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {"alice", "bob"}
c.Authenticator.admin_users = {"root"}
c.JupyterHub.services = [
    {"name": "gridflow-test", "api_token": os.environ["GRIDFLOW_HUB_SERVICE_TOKEN"]}
]
c.JupyterHub.load_roles = [
    {"name": "gridflow-test-tokens", "scopes": ["tokens"], "services": ["gridflow-test"]}
]
