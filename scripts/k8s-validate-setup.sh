#!/usr/bin/env bash
# A venv with PyPI's kubernetes-validate (pinned; it ships the Kubernetes schemas, so it
# validates offline) for the manifest test of crates/gridflow-deploy (tests/kubernetes.rs):
# target/k8s-validate-venv. Idempotent: does nothing when the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/target/k8s-validate-venv"
pins=(kubernetes-validate==1.37.0)
stamp="$venv/.gridflow-pins"
if [[ -x "$venv/bin/kubernetes-validate" && -f "$stamp" && "$(cat "$stamp")" == "${pins[*]}" ]]; then
  echo "kubernetes-validate venv ready: $venv"
  exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
echo "${pins[*]}" >"$stamp"
echo "kubernetes-validate venv created: $venv"
