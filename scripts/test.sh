#!/usr/bin/env bash
# The project's whole test suite, runnable on a fresh machine of the project's kind:
# installs what the tests need, then runs formatting, lints, unit/integration/property
# tests, doc tests and a smoke run of the benchmark binary.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
export CARGO_INCREMENTAL=0
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

step "format"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets -j "$jobs" -- -D warnings

step "tests"
cargo nextest run --workspace -j "$jobs" --build-jobs "$jobs" --no-fail-fast

step "doc tests"
cargo test --workspace --doc -j "$jobs"

step "benchmark harness smoke run (tiny sizes; timings are not checked)"
cargo run -q -p gridflow-bench -j "$jobs" -- --quick all
