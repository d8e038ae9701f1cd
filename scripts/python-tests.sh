#!/usr/bin/env bash
# The Python package's tests: builds the wheel of crates/gridflow-python with maturin (the
# dev profile, sharing the workspace's target dir and its compiled dependencies; stripped),
# installs it into a fresh venv with the pinned test requirements, and runs pytest on
# crates/gridflow-python/tests (the tutorial notebook examples/parallel-computing.ipynb too:
# its figures are left in target/notebook-figures). Any missing piece fails the run
# (nothing is skipped).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${GRIDFLOW_PYTHON_VENV:-$root/target/python-venv}"
wheels="$root/target/python-wheels"
python="${PYTHON:-python3}"
jobs="${GRIDFLOW_JOBS:-2}"

rm -rf "$venv" "$wheels"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r crates/gridflow-python/tests/requirements.txt
# maturin uses CARGO_TARGET_DIR (or the workspace's target/): the dependencies the Rust tests
# compiled are reused.
"$venv/bin/maturin" build --quiet --profile dev -j "$jobs" \
  -m crates/gridflow-python/Cargo.toml -i "$venv/bin/python" -o "$wheels"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$wheels"/gridflow-*.whl
# test_gateway.py starts the pinned JupyterHub of target/hub-venv (fast when already there)
bash scripts/jupyterhub-setup.sh
# the tutorial notebook writes gridflow's sample with the CLI (built by the Rust tests already)
cargo build -q -p gridflow-cli -j "$jobs"
export GRIDFLOW_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/gridflow"
cd crates/gridflow-python/tests
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
