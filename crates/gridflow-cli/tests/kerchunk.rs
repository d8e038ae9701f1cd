//! `gridflow eval --store REFS.json` and `gridflow info REFS.json` on kerchunk references over
//! netCDF files: recognised by content, values equal to xarray's on the netCDF files
//! (gridflow-store/tests/fixtures/netcdf, from generate_netcdf.py).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn netcdf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridflow-store/tests/fixtures/netcdf")
}

fn gridflow(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn eval_on_references_equals_xarray_on_the_files() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(netcdf_dir().join("expected.json")).unwrap())
            .unwrap();
    for (name, file) in [("std", "std_netcdf4.json"), ("run", "run_noleap.json")] {
        // a reference file with another name than *.json is recognised by its content
        let dir =
            std::env::temp_dir().join(format!("gridflow-cli-kerchunk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(netcdf_dir().join(file)).unwrap();
        let abs = netcdf_dir().canonicalize().unwrap();
        let text = text
            .replace(
                "\"std_netcdf4.nc\"",
                &format!("\"{}/std_netcdf4.nc\"", abs.display()),
            )
            .replace("\"{{d}}/", &format!("\"{}/", abs.display()));
        let refs = dir.join(format!("{name}.refs"));
        std::fs::write(&refs, text).unwrap();
        let store = refs.to_str().unwrap();
        let (ok, out, err) =
            gridflow(&["eval", "--store", store, "ds.tas.mean(\"time\")", "--json"]);
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let got: Vec<f64> = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().cloned().unwrap_or_else(|| vec![row.clone()]))
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect();
        let want: Vec<f64> = expected[name]["time_mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: {out}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-9 * w.abs(), "{name}: {g} vs {w}");
        }
        let (ok, out, err) = gridflow(&["info", store]);
        assert!(ok, "{err}");
        assert!(out.contains("tas") && out.contains("time:"), "{out}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The `values` of a `--json` result, flattened.
fn json_values(out: &str) -> Vec<f64> {
    fn flat(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
            x => out.push(x.as_f64().unwrap_or(f64::NAN)),
        }
    }
    let v: Value = serde_json::from_str(out).unwrap();
    let mut got = Vec::new();
    flat(&v["values"], &mut got);
    got
}

#[test]
fn eval_on_netcdf_files_and_globs_equals_xarray() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(netcdf_dir().join("expected.json")).unwrap())
            .unwrap();
    let dir = netcdf_dir();
    for (name, store) in [
        ("std", dir.join("std_netcdf4.nc")),
        ("noleap", dir.join("noleap_h5netcdf.nc")),
        ("run", dir.join("run_noleap_*.nc")),
    ] {
        let store = store.to_str().unwrap();
        let (ok, out, err) =
            gridflow(&["eval", "--store", store, "ds.tas.mean(\"time\")", "--json"]);
        assert!(ok, "{store}: {err}");
        let got = json_values(&out);
        let want: Vec<f64> = expected[name]["time_mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(got.len(), want.len(), "{store}: {out}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-9 * w.abs(), "{store}: {g} vs {w}");
        }
    }
    // -o never replaces the netCDF file it reads
    let nc = dir.join("std_netcdf4.nc");
    let before = std::fs::read(&nc).unwrap();
    let (ok, _, err) = gridflow(&[
        "eval",
        "--store",
        nc.to_str().unwrap(),
        "ds.tas.mean(\"time\").rename(\"m\")",
        "-o",
        nc.to_str().unwrap(),
        "--overwrite",
    ]);
    assert!(!ok);
    assert!(err.contains("std_netcdf4.nc"), "{err}");
    assert_eq!(std::fs::read(&nc).unwrap(), before);
}

/// `-o out.nc` writes a netCDF-4 file: the time mean of a multi-file netCDF run read back
/// (by gridflow, recognised by content) equals xarray's; an existing file needs
/// `--overwrite`, and the result is never written over a file it reads.
#[test]
fn eval_writes_netcdf_output() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(netcdf_dir().join("expected.json")).unwrap())
            .unwrap();
    let dir = std::env::temp_dir().join(format!("gridflow-cli-nc-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("mean.nc");
    let o = out.to_str().unwrap();
    let glob = netcdf_dir().join("run_noleap_*.nc");
    let g = glob.to_str().unwrap();
    let expr = "ds.tas.mean(\"time\").rename(\"tas_mean\")";
    let (ok, _, err) = gridflow(&["eval", "--store", g, expr, "-o", o]);
    assert!(ok, "{err}");
    assert!(err.contains("wrote"), "{err}");
    assert_eq!(&std::fs::read(&out).unwrap()[1..4], b"HDF");
    let (ok, json, err) = gridflow(&["eval", "--store", o, "ds.tas_mean", "--json"]);
    assert!(ok, "{err}");
    let got = json_values(&json);
    let want: Vec<f64> = expected["run"]["time_mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(got.len(), want.len(), "{json}");
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} vs {b}");
    }
    // an existing file is kept without --overwrite, replaced with it
    let before = std::fs::read(&out).unwrap();
    let (ok, _, err) = gridflow(&["eval", "--store", g, expr, "-o", o]);
    assert!(!ok && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let (ok, _, err) = gridflow(&[
        "eval",
        "--store",
        g,
        "ds.tas.max(\"time\").rename(\"tas_mean\")",
        "-o",
        o,
        "--overwrite",
    ]);
    assert!(ok, "{err}");
    assert_ne!(std::fs::read(&out).unwrap(), before);
    // never over an input, even with --overwrite
    let (ok, _, err) = gridflow(&[
        "eval",
        "--store",
        o,
        "(ds.tas_mean * 2).rename(\"x\")",
        "-o",
        o,
        "--overwrite",
    ]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("reads from") && err.contains("mean.nc"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
