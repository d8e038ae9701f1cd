#!/usr/bin/env bash
# The workload suite (issue 7): gridflow vs Dask + Xarray on a CMIP6-like store, each run in
# its own process, tools alternating; median wall time, peak RSS of the process tree, task
# counts, checksums. Results: docs/benchmarks.md, "Workload suite".
#
#   bash bench/suite/run.sh            # full: stores of 5 and 10 years (~3 GB on disk), minutes
#   bash bench/suite/run.sh --quick    # tiny store, one repetition, subset (scripts/test.sh)
#
# Env: GRIDFLOW_SUITE_DATA (data dir, default target/bench-suite[-quick]), GRIDFLOW_SUITE_REPEAT
# (default 3), GRIDFLOW_SUITE_LIMIT (W6 memory limit, default 1.5GB), GRIDFLOW_SUITE_WORKLOADS
# (e.g. W1,W3), GRIDFLOW_SUITE_IMPLS, GRIDFLOW_SUITE_TINY=0 (skip the tiny-task runs), CARGO_TARGET_DIR / GRIDFLOW_JOBS (cargo),
# GRIDFLOW_BENCH_VENV (python venv, default bench/.venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs="${GRIDFLOW_JOBS:-2}"
target="${CARGO_TARGET_DIR:-$root/target}"
here="$root/bench/suite"

bash bench/setup-venv.sh
py="${GRIDFLOW_BENCH_VENV:-$root/bench/.venv}/bin/python"

if (( quick )); then
  data="${GRIDFLOW_SUITE_DATA:-$root/target/bench-suite-quick}"
  profile=(); bin="$target/debug"; repeat=1; extra=(--quick)
else
  data="${GRIDFLOW_SUITE_DATA:-$root/target/bench-suite}"
  profile=(--release); bin="$target/release"; repeat="${GRIDFLOW_SUITE_REPEAT:-3}"; extra=()
fi
mkdir -p "$data"

echo "== building gridflow and gridflow-bench ${profile[*]}" >&2
cargo build "${profile[@]}" -q -p gridflow-cli -p gridflow-bench -j "$jobs" >&2

echo "== stores in $data" >&2
if (( quick )); then
  "$py" "$here/gen_tiny.py" "$data/tiny"
else
  # written once (gen_store.py keeps a stamp); 5 years = 1.59 GB raw, 10 years = 3.19 GB:
  # gridflow sample's values, written by xarray with the Pangeo CMIP6 stores' encodings
  "$py" "$here/gen_store.py" --gridflow "$bin/gridflow" --years 5 "$data/y5"
  "$py" "$here/gen_store.py" --gridflow "$bin/gridflow" --years 10 "$data/y10"
  # warm page cache, as for every run after the first in a user's session
  find "$data/y5" "$data/y10" -type f -exec cat {} + >/dev/null
fi

out="$data/results.jsonl"
machine="$data/machine.json"
: >"$out"
"$py" - "$machine" <<'EOF'
import json, os, platform, subprocess, sys
from importlib.metadata import version
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
pk = ["dask", "distributed", "xarray", "zarr", "numcodecs", "intake-esm", "cftime", "numpy", "flox", "pandas"]
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
json.dump({
    "machine": f"{os.cpu_count()} CPUs ({cpu}), {mem / 2**20:.1f} GiB RAM, Linux {platform.release()}",
    "versions": ", ".join(f"{p} {version(p)}" for p in pk) + f"; Python {platform.python_version()}; {rustc}",
    "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
}, open(sys.argv[1], "w"))
EOF

echo "== runs (each in its own process)" >&2
status=0
"$py" "$here/run.py" --data "$data" --bench-bin "$bin/gridflow-bench" --gridflow-bin "$bin/gridflow" \
  --python "$py" --repeat "$repeat" --out "$out" --memory-limit "${GRIDFLOW_SUITE_LIMIT:-1.5GB}" \
  ${GRIDFLOW_SUITE_WORKLOADS:+--workloads "$GRIDFLOW_SUITE_WORKLOADS"} \
  ${GRIDFLOW_SUITE_IMPLS:+--impls "$GRIDFLOW_SUITE_IMPLS"} "${extra[@]}" || status=$?
"$py" - "$machine" <<'EOF'
import json, subprocess, sys
m = json.load(open(sys.argv[1]))
m["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
json.dump(m, open(sys.argv[1], "w"))
EOF

echo "== summary" >&2
plot=(--quick)
(( quick )) || plot=(--plot "$data/benchmarks-suite.png")
"$py" "$here/report.py" "$out" --machine "$machine" "${plot[@]}" \
  ${GRIDFLOW_SUITE_WORKLOADS:+--workloads "$GRIDFLOW_SUITE_WORKLOADS"} | tee "$data/report.md" || status=$?

if [[ "${GRIDFLOW_SUITE_TINY:-1}" != 0 ]]; then
  # tiny tasks on gridflow's and Dask's local clusters (tiny_tasks.py: whole processes,
  # exact sums checked); Dask runs fewer tasks, at milliseconds each
  echo "== tiny tasks on clusters" >&2
  tiny=(--repeat "$repeat")
  (( quick )) && tiny=(--n 2000 --dask-n 200 --repeat 1)
  "$py" "$here/tiny_tasks.py" --gridflow "$bin/gridflow" --python "$py" "${tiny[@]}" \
    --out "$data/tiny-tasks.jsonl" | tee "$data/tiny-tasks.md" || status=$?
fi
(( quick )) || echo "report: $data/report.md, $data/tiny-tasks.md, plot: $data/benchmarks-suite.png" >&2
exit "$status"
