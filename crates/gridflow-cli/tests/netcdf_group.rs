//! `gridflow info --group` and `gridflow eval --store FILE.nc --group`: one group of a
//! netCDF file, as xarray opens it with `group=` (expected.json's "groups", written by
//! gridflow-store/tests/fixtures/generate_netcdf.py); an unknown group is an error naming it.
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

fn expected_groups() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(netcdf_dir().join("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["groups"].as_object().unwrap().clone()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn info_with_group_shows_what_xarray_opens() {
    let mut seen = 0;
    for (key, want) in expected_groups() {
        let (engine, group) = key.split_once(':').unwrap();
        let file = netcdf_dir().join(format!("groups_{engine}.nc"));
        let file = file.to_str().unwrap();
        // the root as "/" (netCDF's name for it), the others by path
        let group = if group.is_empty() { "/" } else { group };
        let (ok, out, err) = gridflow(&["info", file, "--group", group, "--json"]);
        assert!(ok, "{key}: {err}");
        let got: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(got["dims"], want["dims"], "{key}: dims");
        let names: Vec<String> = got["variables"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let want_names: Vec<String> = want["data_vars"]
            .as_object()
            .unwrap()
            .keys()
            .chain(want["coords"].as_object().unwrap().keys())
            .cloned()
            .collect();
        assert_eq!(sorted(names), sorted(want_names), "{key}: variables");
        for (k, v) in want["attrs"].as_object().unwrap() {
            assert_eq!(&got["attrs"][k], v, "{key}: attribute {k}");
        }
        seen += 1;
    }
    assert_eq!(seen, 6, "both engines, three groups each");
}

#[test]
fn eval_with_group_computes_on_that_group() {
    let groups = expected_groups();
    for engine in ["netcdf4", "h5netcdf"] {
        let file = netcdf_dir().join(format!("groups_{engine}.nc"));
        for (group, var) in [("forecast", "pr"), ("forecast/member1", "tas_anom")] {
            let (ok, out, err) = gridflow(&[
                "eval",
                "--store",
                file.to_str().unwrap(),
                "--group",
                group,
                &format!("ds.{var}"),
                "--json",
            ]);
            assert!(ok, "{engine}:{group}: {err}");
            let got: Value = serde_json::from_str(&out).unwrap();
            let want = &groups[&format!("{engine}:{group}")]["data_vars"][var]["values"];
            let (g, w) = (got["values"].as_array().unwrap(), want.as_array().unwrap());
            assert_eq!(g.len(), w.len(), "{engine}:{group}: {var}");
            for (a, b) in g.iter().zip(w) {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{engine}:{group}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn an_unknown_group_is_an_error_naming_it() {
    let file = netcdf_dir().join("groups_netcdf4.nc");
    let file = file.to_str().unwrap();
    for args in [
        vec!["info", file, "--group", "forecast/member9"],
        vec!["eval", "--store", file, "--group", "forecast/member9", "ds"],
    ] {
        let (ok, out, err) = gridflow(&args);
        assert!(!ok, "{args:?}: succeeded: {out}");
        assert!(err.contains("\"forecast/member9\""), "{args:?}: {err}");
        // and lists the groups there are
        assert!(err.contains("forecast/member1"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // a Zarr store's groups open the same way
    let zarr = netcdf_dir().join("../v2_consolidated.zarr");
    let (ok, _, err) = gridflow(&["info", zarr.to_str().unwrap(), "--group", "nope"]);
    assert!(!ok && err.contains("\"nope\""), "{err}");
    // an empty path, and --group where there is no single store to open

    for (args, says) in [
        (vec!["info", file, "--group", ""], "empty group path"),
        (
            vec!["eval", "--group", "forecast", "da.ones(3).sum()"],
            "--group applies to --store",
        ),
        (
            vec![
                "eval",
                "--catalog",
                "x.json",
                "--search",
                "a=b",
                "--group",
                "g",
                "ds",
            ],
            "--group applies to --store",
        ),
    ] {
        let (ok, _, err) = gridflow(&args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
}
