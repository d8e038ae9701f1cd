#!/usr/bin/env bash
# A venv with a pinned JupyterHub (scripts/jupyterhub-requirements.txt: the hub and every
# dependency at exact versions) for the gateway's hub authenticator tests
# (crates/gridflow-cli/tests/gateway_hub.rs): target/hub-venv. The tests start the hub
# themselves on free 127.0.0.1 ports, with a proxy class that does nothing (only the hub's
# REST API is used), so no configurable-http-proxy is installed. Idempotent: does nothing
# when the venv holds exactly the pinned requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/target/hub-venv"
req=scripts/jupyterhub-requirements.txt
stamp="$venv/.gridflow-pins"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/jupyterhub" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "JupyterHub venv ready: $venv"
  exit 0
fi
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
echo "JupyterHub venv created: $venv ($("$venv/bin/jupyterhub" --version))"
