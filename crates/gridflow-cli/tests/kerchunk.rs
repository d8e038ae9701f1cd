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
    // a netCDF file given as the store says what it is
    let nc = netcdf_dir().join("std_netcdf4.nc");
    let (ok, _, err) = gridflow(&["eval", "--store", nc.to_str().unwrap(), "ds.tas.mean()"]);
    assert!(!ok);
    assert!(
        err.contains("netCDF/HDF5") && err.contains("kerchunk"),
        "{err}"
    );
}
