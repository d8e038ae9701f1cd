//! What `Dataset::to_zarr` writes (Zarr v2 and v3) opens in xarray, with CF decoding on, as
//! the same dataset xarray reads from the store gridflow read it from: the same variables,
//! values, coordinates, decoded times in the same calendar, and masked/unpacked values.
//!
//! Runs the pinned fixtures venv's python (`GRIDFLOW_FIXTURES_VENV` or
//! `target/fixtures-venv`); without it the test prints a notice and returns, except in CI
//! (`CI` set), where it fails.
#![allow(clippy::unwrap_used)]

use gridflow_dataset::{OpenOptions, ToZarrOptions, open_zarr};
use gridflow_store::ZarrFormat;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var("GRIDFLOW_FIXTURES_VENV").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures-venv"),
        PathBuf::from,
    );
    let py = venv.join("bin/python");
    py.exists().then_some(py)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Compares, in xarray with decoding on, each written store with the original.
const COMPARE: &str = r#"
import sys, numpy as np, xarray as xr
orig_path, fmt = sys.argv[1], int(sys.argv[2])
orig = xr.open_zarr(orig_path, use_cftime=True).load()
for new_path in sys.argv[3:]:
    new = xr.open_zarr(new_path, zarr_format=fmt, use_cftime=True).load()
    assert sorted(new.data_vars) == sorted(orig.data_vars), (new_path, list(new.data_vars))
    assert sorted(new.coords) == sorted(orig.coords), (new_path, list(new.coords))
    for name in list(orig.data_vars) + list(orig.coords):
        a, b = new[name], orig[name]
        assert a.dims == b.dims, (new_path, name, a.dims, b.dims)
        if b.dtype.kind == "O":  # cftime dates: same dates, same calendar
            assert (a.values == b.values).all(), (new_path, name)
            assert a.values.flat[0].calendar == b.values.flat[0].calendar, (new_path, name)
        else:
            assert a.dtype.kind == b.dtype.kind, (new_path, name, a.dtype, b.dtype)
            np.testing.assert_allclose(a.values, b.values, rtol=1e-6, equal_nan=True,
                                       err_msg=f"{new_path} {name}")
    print(f"{new_path}: {len(orig.data_vars)} variables, {len(orig.coords)} coordinates agree")
"#;

fn round_trip(name: &str) {
    let Some(py) = venv_python() else {
        assert!(!in_ci(), "the fixtures venv is required in CI");
        println!("NOTICE: fixtures venv absent; {name}: xarray round trip skipped");
        return;
    };
    let src = fixtures().join(name);
    let ds = open_zarr(src.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("gridflow-xr-rt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (fmt, n) in [(ZarrFormat::V2, 2), (ZarrFormat::V3, 3)] {
        let out = dir.join(format!("v{n}.zarr"));
        let opts = ToZarrOptions {
            format: fmt,
            ..ToZarrOptions::default()
        };
        ds.to_zarr(out.to_str().unwrap(), &opts).unwrap();
        // gridflow reads its own output back: the same variables and values
        let back = open_zarr(out.to_str().unwrap(), &OpenOptions::default()).unwrap();
        let names =
            |d: &gridflow_dataset::Dataset| d.data_vars().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&back), names(&ds), "{name} v{n}");
        for v in names(&ds) {
            let (a, b) = (
                back.data_vars()[v.as_str()].to_f64_vec().unwrap(),
                ds.data_vars()[v.as_str()].to_f64_vec().unwrap(),
            );
            assert_eq!(a.len(), b.len(), "{name} v{n} {v}");
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    x == y || (x.is_nan() && y.is_nan()),
                    "{name} v{n} {v}[{i}]: {x} vs {y}"
                );
            }
        }
        let res = std::process::Command::new(&py)
            .arg("-c")
            .arg(COMPARE)
            .arg(&src)
            .arg(n.to_string())
            .arg(&out)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
        println!("{text}");
        assert!(
            res.status.success(),
            "{name} v{n}: xarray disagrees:\n{text}"
        );
        assert!(text.contains("agree"), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A CMIP6-style float32 variable with `_FillValue`/`missing_value` 1e20 and missing
/// points: xarray reads gridflow's v2 output with the same points missing (the fill value
/// must be the array's `fill_value`, where xarray looks for it).
#[test]
fn cmip6_fill_values() {
    round_trip("cmip6_fill.zarr");
}

#[test]
fn daily_360_day_calendar() {
    round_trip("daily_360.zarr");
}

#[test]
fn packed_values_with_fill_value() {
    round_trip("packed.zarr");
}

#[test]
fn noleap_calendar() {
    round_trip("cal_noleap.zarr");
}

#[test]
fn descending_coordinate() {
    round_trip("descending.zarr");
}

/// The other direction: a v3 store xarray writes (float `_FillValue` attributes in base64)
/// opens in gridflow, masked as xarray masks it.
#[test]
fn gridflow_reads_xarray_v3_fill_values() {
    let Some(py) = venv_python() else {
        assert!(!in_ci(), "the fixtures venv is required in CI");
        println!("NOTICE: fixtures venv absent; xarray v3 read skipped");
        return;
    };
    let out = std::env::temp_dir().join(format!("gridflow-xr-v3-{}.zarr", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = r#"
import sys, xarray as xr
ds = xr.open_zarr(sys.argv[1])
for v in ds.variables.values():
    v.encoding.clear()
ds.to_zarr(sys.argv[2], zarr_format=3, consolidated=False, mode="w")
"#;
    let res = std::process::Command::new(&py)
        .args(["-c", script])
        .arg(fixtures().join("descending.zarr"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let ds = open_zarr(out.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let orig = open_zarr(
        fixtures().join("descending.zarr").to_str().unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    let z = ds.data_vars()["z"].to_f64_vec().unwrap();
    let want = orig.data_vars()["z"].to_f64_vec().unwrap();
    assert_eq!(z.len(), want.len());
    for (i, (a, b)) in z.iter().zip(&want).enumerate() {
        assert!(a == b || (a.is_nan() && b.is_nan()), "z[{i}]: {a} vs {b}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
