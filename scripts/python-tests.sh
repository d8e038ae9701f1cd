#!/usr/bin/env bash
# The Python package's tests: builds the wheel of crates/gridflow-python with maturin (the
# dev profile, sharing the workspace's target dir and its compiled dependencies; stripped),
# installs it into a fresh venv with the pinned test requirements, and runs pytest on
# crates/gridflow-python/tests. Any missing piece fails the run (nothing is skipped).
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
cd crates/gridflow-python/tests
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
