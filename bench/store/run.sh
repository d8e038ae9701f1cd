#!/usr/bin/env bash
# The store benchmark (issue 3 "Must show"): gridflow vs zarr-python + dask vs a numcodecs
# floor, reading a ~1.5 GB blosc-lz4 float32 Zarr v2 store on 2 threads, and a point time
# series from a sharded v3 store. Results: docs/benchmarks-store.md.
#
#   bench/store/run.sh            # full: generates ~2 GB of stores in target/bench-store once
#   bench/store/run.sh --quick    # tiny stores, one repetition (smoke run)
#
# Env: GRIDFLOW_BENCH_STORE_DATA (data dir), GRIDFLOW_BENCH_REPEAT (default 3),
# CARGO_TARGET_DIR / GRIDFLOW_JOBS (cargo), GRIDFLOW_FIXTURES_VENV (python venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs="${GRIDFLOW_JOBS:-2}"
venv="${GRIDFLOW_FIXTURES_VENV:-$root/target/fixtures-venv}"
if (( quick )); then
  data="${GRIDFLOW_BENCH_STORE_DATA:-$root/target/bench-store-quick}"
  repeat=1; point="3,5"; gen=(--quick); profile=()
else
  data="${GRIDFLOW_BENCH_STORE_DATA:-$root/target/bench-store}"
  repeat="${GRIDFLOW_BENCH_REPEAT:-3}"; point="72,100"; gen=(); profile=(--release)
fi
out="$data/results.jsonl"

bash crates/gridflow-store/tests/fixtures/setup-venv.sh >&2
py="$venv/bin/python"

echo "== generating stores in $data" >&2
"$py" bench/store/gen_store.py "$data" "${gen[@]}"

echo "== building the gridflow side" >&2
cargo test "${profile[@]}" -q -p gridflow-store --bench store_read -j "$jobs" --no-run >&2

: >"$out"
echo "== gridflow" >&2
GRIDFLOW_BENCH_STORE_DATA="$data" GRIDFLOW_BENCH_REPEAT="$repeat" GRIDFLOW_BENCH_POINT="$point" \
  cargo test "${profile[@]}" -q -p gridflow-store --bench store_read -j "$jobs" -- \
  --ignored --exact full --nocapture --test-threads 1 | grep '^{' | tee -a "$out"
echo "== zarr-python + dask, numcodecs floor" >&2
"$py" bench/store/bench_python.py "$data" --repeat "$repeat" --point "$point" | tee -a "$out"

echo "== summary" >&2
"$py" bench/store/report.py "$out" "$data"
