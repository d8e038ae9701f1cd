//! End to end: the `gridflow` binary's `eval --json` output equals what xarray computes for
//! the same expressions on the same stores (`tests/fixtures/generate.py`), and its errors
//! point at the place in the expression.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn stores() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridflow-dataset/tests/fixtures")
}

fn gridflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn close(x: f64, y: f64, atol: f64) -> bool {
    (x.is_nan() && y.is_nan()) || (x - y).abs() <= (1e-6 * y.abs().max(1.0)).max(atol)
}

#[track_caller]
fn same_values(got: &Value, want: &Value, what: &str) {
    same_values_or(got, want, None, 0.0, what);
}

/// Values equal xarray's within 1e-6 relative, or (float32 data) xarray's on float64 data:
/// gridflow accumulates float32 in float64.
#[track_caller]
fn same_values_or(got: &Value, want: &Value, want64: Option<&Value>, atol: f64, what: &str) {
    let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(g.len(), w.len(), "{what}: number of values");
    for (i, (a, b)) in g.iter().zip(w).enumerate() {
        match (a, b) {
            (Value::Number(_) | Value::Null, Value::Number(_) | Value::Null) => {
                let alt = want64.and_then(|v| v.get(i)).map(num);
                let ok = close(num(a), num(b), atol) || alt.is_some_and(|y| close(num(a), y, atol));
                assert!(
                    ok,
                    "{what}[{i}]: gridflow {a} vs xarray {b} (float64: {alt:?})"
                );
            }
            _ => assert_eq!(a, b, "{what}[{i}]"),
        }
    }
}

#[test]
fn eval_json_matches_xarray() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expected.json");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in expected["cases"].as_array().unwrap() {
        let expr = case["expr"].as_str().unwrap();
        let store = case["store"].as_str().map(|s| stores().join(s));
        let mut args = vec!["eval", "--json", "--threads", "2"];
        let store_arg;
        if let Some(s) = &store {
            store_arg = s.to_str().unwrap().to_owned();
            args.extend(["--store", store_arg.as_str()]);
        }
        args.push(expr);
        let out = gridflow(&args);
        assert!(
            out.status.success(),
            "{expr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = &case["expected"];
        assert_eq!(got["name"], want["name"], "{expr}: name");
        assert_eq!(got["dims"], want["dims"], "{expr}: dims");
        assert_eq!(got["shape"], want["shape"], "{expr}: shape");
        let numeric = want["dtype"].as_str().unwrap();
        if numeric.starts_with("float") || numeric.starts_with("int") {
            assert_eq!(got["dtype"].as_str().unwrap(), numeric, "{expr}: dtype");
        }
        for (name, c) in want["coords"].as_object().unwrap() {
            let g = &got["coords"][name];
            assert!(!g.is_null(), "{expr}: coordinate {name} missing");
            assert_eq!(g["dims"], c["dims"], "{expr}: dims of {name}");
            same_values(&g["values"], &c["values"], &format!("{expr}: {name}"));
        }
        let atol = case.get("atol").and_then(Value::as_f64).unwrap_or(0.0);
        same_values_or(
            &got["values"],
            &want["values"],
            case.get("values_f64"),
            atol,
            expr,
        );
    }
}

#[test]
fn errors_point_at_the_expression() {
    let store = stores().join("daily_360.zarr");
    let s = store.to_str().unwrap();
    for (expr, needles) in [
        (
            "ds.tas.sel(lat=45.5,, lon=9)",
            vec!["1:21", "expected an expression", "^"],
        ),
        (
            "ds.tas.sel(lat=45.5, lon=9.4, methd=\"nearest\")",
            vec!["methd", "options: method, tolerance"],
        ),
        (
            "ds.tas.mean(\"height\")",
            vec!["no dimension \"height\"", "time, lat, lon"],
        ),
        ("ds.tass", vec!["no attribute or method \"tass\"", "tas"]),
        (
            "ds.tas.sel(lat=45.7)",
            vec!["45.7", "not found", "lat", "nearest"],
        ),
        (
            "ds.tas.groupby(\"time.fortnight\").mean()",
            vec!["fortnight"],
        ),
        ("np.cosine(ds.tas)", vec!["np.cosine"]),
    ] {
        let out = gridflow(&["eval", "--store", s, expr]);
        assert!(!out.status.success(), "{expr} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "{expr}: {n:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn results_larger_than_memory_are_refused() {
    let out = gridflow(&[
        "eval",
        "--memory-limit",
        "100MB",
        "da.ones((20000, 20000), chunks=(2000, 2000)) + 1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("more than the memory limit") && err.contains("-o OUT.zarr"),
        "{err}"
    );
    // a reduction of the same array fits
    let out = gridflow(&[
        "eval",
        "--json",
        "--memory-limit",
        "100MB",
        "da.ones((4000, 4000), chunks=(1000, 1000)).sum()",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["values"][0].as_f64(), Some(16e6));
}

#[test]
fn writes_plots_and_graphs() {
    let dir = std::env::temp_dir().join(format!("gridflow-cli-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = stores().join("daily_360.zarr");
    let s = store.to_str().unwrap();
    let png = dir.join("map.png");
    let svg = dir.join("graph.svg");
    let zarr = dir.join("clim.zarr");
    let out = gridflow(&[
        "eval",
        "--store",
        s,
        "--plot",
        png.to_str().unwrap(),
        "--graph",
        svg.to_str().unwrap(),
        "-o",
        zarr.to_str().unwrap(),
        "ds.tas.mean(\"time\")",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    // the written store opens again and holds the same values
    let back = gridflow(&[
        "eval",
        "--json",
        "--store",
        zarr.to_str().unwrap(),
        "ds.tas",
    ]);
    let direct = gridflow(&["eval", "--json", "--store", s, "ds.tas.mean(\"time\")"]);
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&back.stdout).unwrap(),
        serde_json::from_slice(&direct.stdout).unwrap(),
    );
    same_values(&a["values"], &b["values"], "written store");
    // writing again without --overwrite keeps the store
    let again = gridflow(&[
        "eval",
        "--store",
        s,
        "-o",
        zarr.to_str().unwrap(),
        "ds.tas.mean(\"time\")",
    ]);
    assert!(!again.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = std::env::temp_dir().join(format!("gridflow-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (data, out) = (dir.join("data"), dir.join("out"));
    let run = || {
        gridflow(&[
            "demo",
            "--steps",
            "240",
            "--threads",
            "2",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let first = run();
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for needle in [
        "wrote 240 3-hourly steps",
        "dataset key: CMIP.NIMS-KMA.KACE-1-0-G.historical.3hr.gr",
        "<gridflow.Dataset>",
        "nearest grid point: lat 45.625°N, lon 10.3125°E",
        "after culling",
        "144×192 map",
        "Done",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    for f in ["point-series.png", "time-mean-map.png"] {
        assert!(out.join(f).metadata().unwrap().len() > 10_000, "{f}");
    }
    assert!(
        std::fs::read_to_string(out.join("point-graph.svg"))
            .unwrap()
            .contains("<svg")
    );
    // a second run reuses the sample
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("reusing the sample"));
    // and the catalog search command finds it
    let cat = data.join("pangeo-cmip6.json");
    let s = gridflow(&[
        "catalog",
        "search",
        cat.to_str().unwrap(),
        "source_id=KACE-1-0-G",
        "member_id=r1i1p1f1,r2i1p1f1",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(v["rows"], 4, "{v}");
    assert_eq!(v["keys"].as_array().unwrap().len(), 2, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
