#!/usr/bin/env bash
# The multi-file netCDF benchmark (issue 20 "Must show"): the time mean of one run split in
# several netCDF-4 files (float32, zlib + shuffle, chunked), by gridflow (`eval --store
# 'DIR/tas_*.nc'`) and by xarray + Dask (`open_mfdataset(parallel=True)`), in one run, on
# the same number of threads; the two results are compared.
#
#   bench/netcdf/run.sh            # full: ~1.6 GB of float32 in 10 files, in target/bench-netcdf
#   bench/netcdf/run.sh --quick    # tiny files, one repetition (smoke run)
#
# Env: GRIDFLOW_BENCH_NETCDF_DATA (data dir), GRIDFLOW_BENCH_REPEAT (default 3),
# GRIDFLOW_BENCH_THREADS (default 2), CARGO_TARGET_DIR / GRIDFLOW_JOBS (cargo),
# GRIDFLOW_FIXTURES_VENV (python venv: xarray, dask, netCDF4, h5netcdf). Runs interleave
# gridflow and xarray; gridflow is timed as a whole process (start, open, compute), xarray
# in-process (imports done before), so the comparison leans toward xarray.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs="${GRIDFLOW_JOBS:-2}"
threads="${GRIDFLOW_BENCH_THREADS:-2}"
venv="${GRIDFLOW_FIXTURES_VENV:-$root/target/fixtures-venv}"
if (( quick )); then
  data="${GRIDFLOW_BENCH_NETCDF_DATA:-$root/target/bench-netcdf-quick}"
  repeat=1; gen=(--quick); profile=(); bin_dir=debug
else
  data="${GRIDFLOW_BENCH_NETCDF_DATA:-$root/target/bench-netcdf}"
  repeat="${GRIDFLOW_BENCH_REPEAT:-3}"; gen=(); profile=(--release); bin_dir=release
fi

bash crates/gridflow-store/tests/fixtures/setup-venv.sh >&2
py="$venv/bin/python"

echo "== generating netCDF files in $data" >&2
"$py" bench/netcdf/bench.py gen "$data" "${gen[@]}"

echo "== building gridflow" >&2
cargo build "${profile[@]}" -q -p gridflow-cli -j "$jobs" >&2
gridflow="${CARGO_TARGET_DIR:-$root/target}/$bin_dir/gridflow"

"$py" bench/netcdf/bench.py run "$data" --gridflow "$gridflow" --repeat "$repeat" --threads "$threads"
