#!/usr/bin/env bash
# Creates bench/.venv with the pinned Dask stack the benchmarks compare against.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
