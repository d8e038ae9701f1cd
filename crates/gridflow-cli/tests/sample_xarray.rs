//! The store `gridflow sample` writes carries CMIP6's encodings (zarr `fill_value` and
//! `missing_value` 1e20 on every data variable, a few masked values), and xarray decodes it
//! exactly as gridflow does: same missing values, same means (`tests/fixtures/sample_xarray.py`
//! with the pinned fixtures venv).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const STORE_PATH: &str = "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r1i1p1f1/3hr/tas/gr/v20191125";

fn gridflow(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gridflow {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The fixtures venv's python; in CI (`CI=true`) a missing venv is a failure, not a skip.
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var("GRIDFLOW_FIXTURES_VENV").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures-venv"),
        PathBuf::from,
    );
    let py = venv.join("bin/python");
    if py.exists() {
        return Some(py);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI: the fixtures venv {} is missing (scripts/test.sh creates it)",
        venv.display()
    );
    println!("NOTICE: no fixtures venv at {}: skipping", venv.display());
    None
}

/// `gridflow eval --json EXPR` on the store: its values, NaN as NaN.
fn eval(store: &Path, expr: &str) -> Vec<f64> {
    let out = gridflow(&["eval", "--store", store.to_str().unwrap(), "--json", expr]);
    let doc: Value = serde_json::from_slice(&out).unwrap();
    doc["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// xarray's values (NaN as null; reductions of the float64 values, as gridflow accumulates
/// float32 in float64) against gridflow's, within 1e-6 relative, NaN only at NaN.
#[track_caller]
fn same(got: &[f64], want: &Value, what: &str) {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(got.len(), want.len(), "{what}: number of values");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6 * b.abs().max(1.0);
        assert!(ok, "{what}[{i}]: gridflow {a} vs xarray {b}");
    }
}

#[test]
fn sample_reads_as_in_xarray() {
    let Some(py) = venv_python() else { return };
    let dir = std::env::temp_dir().join(format!("gridflow-sample-xr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // two masked steps (one every 240)
    gridflow(&["sample", "--steps", "360", "--data", dir.to_str().unwrap()]);
    let store = dir.join(STORE_PATH);
    let out = Command::new(&py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample_xarray.py"))
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xr: Value = serde_json::from_slice(&out.stdout).unwrap();

    // CMIP6's encodings on every data variable, as xarray sees them
    let cmip6_fill = f64::from(1e20_f32);
    let enc = xr["encoding"].as_object().unwrap();
    let mut names: Vec<&str> = enc.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["lat_bnds", "lon_bnds", "tas"]);
    for (name, e) in enc {
        for key in ["_FillValue", "missing_value", "zarr_fill_value"] {
            assert_eq!(e[key].as_f64(), Some(cmip6_fill), "{name} {key}");
        }
    }
    assert_eq!(xr["attrs_have_fill"], Value::Array(vec![]), "decoded away");

    // the same missing values
    let nan_count = eval(&store, "ds.tas.isnull().sum()");
    assert_eq!(nan_count, [xr["nan_count"].as_f64().unwrap()]);
    assert!(nan_count[0] > 0.0, "the sample has masked values");
    same(
        &eval(&store, r#"ds.tas.isnull().sum(("lat", "lon"))"#),
        &xr["nan_per_step"],
        "missing values per step",
    );
    // and the same NaN-skipping reductions
    same(
        &eval(&store, r#"ds.tas.mean("time")"#),
        &xr["time_mean"],
        "time mean",
    );
    let point = r#"ds.tas.sel(lat=45.5, lon=9.4, method="nearest")"#;
    same(&eval(&store, point), &xr["point"], "Milan's series");
    assert!(
        eval(&store, point).iter().any(|v| v.is_nan()),
        "Milan's series has missing values"
    );
    same(
        &eval(&store, &format!("{point}.mean()")),
        &Value::Array(vec![xr["point_mean"].clone()]),
        "Milan's mean",
    );
    same(
        &eval(
            &store,
            r#"ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon"))"#,
        ),
        &xr["weighted"],
        "weighted global mean",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
