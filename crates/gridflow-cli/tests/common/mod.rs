//! Set-up shared by the CLI's integration tests (each test file uses part of it).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The `gridflow` binary, without the caller's credentials (the tests give their own).
pub fn gridflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gridflow"));
    c.env("RUST_BACKTRACE", "0");
    for k in [
        "GRIDFLOW_AUTH_TOKEN",
        "GRIDFLOW_AUTH_TOKEN_FILE",
        "GRIDFLOW_GATEWAY_TOKEN",
        "GRIDFLOW_GATEWAY_ADDRESS",
        "JUPYTERHUB_API_TOKEN",
    ] {
        c.env_remove(k);
    }
    c
}

/// `gridflow eval --json --threads 1 EXPR` on the local executor: the reference answer.
pub fn local_eval(expr: &str) -> Value {
    let out = gridflow()
        .args(["eval", "--json", "--threads", "1", expr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first case of the xarray-compared expressions (`tests/fixtures/expected.json`):
/// the store, the expression and xarray's values.
pub fn xarray_case() -> (PathBuf, String, Vec<f64>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let e: Value =
        serde_json::from_slice(&std::fs::read(root.join("tests/fixtures/expected.json")).unwrap())
            .unwrap();
    let case = &e["cases"][0];
    let store = root
        .join("../gridflow-dataset/tests/fixtures")
        .join(case["store"].as_str().unwrap());
    let values = case["expected"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (store, case["expr"].as_str().unwrap().to_owned(), values)
}

/// Whether the test Slurm of `scripts/slurm-setup.sh` answers (with CI=true it must).
pub fn slurm_up() -> bool {
    let up = std::env::var_os("SLURM_CONF").is_some()
        && Command::new("sinfo")
            .arg("-h")
            .output()
            .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Slurm: run scripts/slurm-setup.sh; source target/slurm/env"
        );
        eprintln!("skipped: no Slurm (run scripts/slurm-setup.sh; source target/slurm/env)");
    }
    up
}
