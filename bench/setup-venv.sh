#!/usr/bin/env bash
# Creates bench/.venv with the pinned Dask + Xarray stack the benchmarks compare against
# (bench/requirements.txt). Idempotent: does nothing when the venv already has these pins.
# Env: GRIDFLOW_BENCH_VENV (another venv directory), PYTHON (the interpreter to use).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${GRIDFLOW_BENCH_VENV:-$here/.venv}"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
stamp="$venv/.gridflow-requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "bench venv ready: $venv" >&2
  exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
echo "$want" > "$stamp"
echo "bench venv created: $venv" >&2
