//! `Dataset::to_zarr` never loses data: it refuses to write over its own inputs, a failed
//! write leaves the target as it was (and no temporary directory), `Overwrite` leaves exactly
//! the new content; and xarray (decoding on) reads what it writes, v2 and v3, as gridflow
//! computed it.
#![allow(clippy::unwrap_used, missing_docs)]

use gridflow_dataset::{Dataset, OpenOptions, ToZarrOptions, ValueKind, open_zarr};
use gridflow_store::{WriteMode, ZarrFormat};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh, empty directory for one test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gridflow-dataset-writes-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn open(p: &Path) -> Dataset {
    open_zarr(p.to_str().unwrap(), &OpenOptions::default()).unwrap()
}

fn opts(format: ZarrFormat, mode: WriteMode) -> ToZarrOptions {
    ToZarrOptions {
        format,
        mode,
        ..ToZarrOptions::default()
    }
}

/// Every variable's dims, attrs and values (NaN as null, times as ISO strings), and the
/// global attrs: what `fixtures/dump_xarray.py` prints for xarray.
fn dump(ds: &Dataset) -> Value {
    let mut vars = Map::new();
    for (name, v) in ds.coords().iter().chain(ds.data_vars()) {
        let raw = v.to_f64_vec().unwrap();
        let values: Vec<Value> = match v.kind() {
            ValueKind::Time(cal) => raw
                .iter()
                .map(|&t| json!(cal.format_iso(t as i64)))
                .collect(),
            _ => raw
                .iter()
                .map(|&x| if x.is_nan() { Value::Null } else { json!(x) })
                .collect(),
        };
        vars.insert(
            name.clone(),
            json!({"dims": v.dims(), "attrs": v.attrs, "values": values}),
        );
    }
    json!({"attrs": ds.attrs, "variables": vars})
}

/// The fixtures venv's python: `GRIDFLOW_FIXTURES_VENV`, else `target/fixtures-venv`. In CI
/// (`CI=true`) a missing venv is a failure, not a skip.
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

/// What xarray decodes from each store (one python process for all).
fn xarray_dump(py: &Path, stores: &[PathBuf]) -> Vec<Value> {
    let out = std::process::Command::new(py)
        .arg(fixtures().join("dump_xarray.py"))
        .args(stores)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xarray could not open {stores:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    stores
        .iter()
        .map(|s| all[s.to_str().unwrap()].clone())
        .collect()
}

/// xarray's reading equals gridflow's: the same variables, dims, attrs and global attrs,
/// values within 1e-6 relative (and the same NaNs and times).
#[track_caller]
fn same_as_xarray(xr: &Value, gf: &Value, what: &str) {
    assert_eq!(xr["attrs"], gf["attrs"], "{what}: global attrs");
    let (xv, gv) = (
        xr["variables"].as_object().unwrap(),
        gf["variables"].as_object().unwrap(),
    );
    let mut xk: Vec<&String> = xv.keys().collect();
    let mut gk: Vec<&String> = gv.keys().collect();
    xk.sort();
    gk.sort();
    assert_eq!(xk, gk, "{what}: variables");
    for (name, g) in gv {
        let x = &xv[name];
        assert_eq!(x["dims"], g["dims"], "{what}: {name} dims");
        assert_eq!(x["attrs"], g["attrs"], "{what}: {name} attrs");
        let (xs, gs) = (
            x["values"].as_array().unwrap(),
            g["values"].as_array().unwrap(),
        );
        assert_eq!(xs.len(), gs.len(), "{what}: {name} size");
        for (i, (a, b)) in xs.iter().zip(gs).enumerate() {
            let ok = match (a.as_f64(), b.as_f64()) {
                (Some(p), Some(q)) => (p - q).abs() <= 1e-6 * q.abs().max(1.0),
                _ => a == b,
            };
            assert!(ok, "{what}: {name}[{i}]: xarray {a} vs gridflow {b}");
        }
    }
}

#[test]
fn xarray_reads_what_to_zarr_writes_v2_and_v3_also_over_an_older_store() {
    let Some(py) = venv_python() else { return };
    let d = tmp("xarray");
    // times on a 360_day and a standard calendar, packed int16 with a fill value, plain floats
    let cases = ["daily_360.zarr", "packed.zarr", "cal_standard.zarr"];
    // (store, what gridflow decoded from the source, label)
    let mut checks: Vec<(PathBuf, Value, String)> = Vec::new();
    for name in cases {
        // the fixture as xarray reads it is what gridflow decoded
        checks.push((
            fixtures().join(name),
            dump(&open(&fixtures().join(name))),
            (*name).to_owned(),
        ));
    }
    for fmt in [ZarrFormat::V2, ZarrFormat::V3] {
        for (i, name) in cases.iter().enumerate() {
            let src = open(&fixtures().join(name));
            let want = dump(&src);
            let out = d.join(format!("{fmt:?}-{name}"));
            src.to_zarr(out.to_str().unwrap(), &opts(fmt, WriteMode::Create))
                .unwrap();
            assert_eq!(
                dump(&open(&out)),
                want,
                "{fmt:?} {name}: gridflow reads it back"
            );
            checks.push((out, want.clone(), format!("{fmt:?} {name}")));
            // over an older store with other (extra) arrays: exactly the new content
            let older = open(&fixtures().join(cases[(i + 1) % cases.len()]));
            let over = d.join(format!("{fmt:?}-over-{name}"));
            older
                .to_zarr(over.to_str().unwrap(), &opts(fmt, WriteMode::Create))
                .unwrap();
            src.to_zarr(over.to_str().unwrap(), &opts(fmt, WriteMode::Overwrite))
                .unwrap();
            assert_eq!(
                dump(&open(&over)),
                want,
                "{fmt:?} {name}: over an older store"
            );
            checks.push((over, want, format!("{fmt:?} {name} over an older store")));
        }
    }
    let stores: Vec<PathBuf> = checks.iter().map(|c| c.0.clone()).collect();
    let got = xarray_dump(&py, &stores);
    assert_eq!(got.len(), 15);
    for ((_, want, what), xr) in checks.iter().zip(&got) {
        same_as_xarray(xr, want, what);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn to_zarr_refuses_to_write_over_its_own_input() {
    let d = tmp("self");
    let src = d.join("src.zarr");
    copy_dir(&fixtures().join("daily_360.zarr"), &src);
    std::os::unix::fs::symlink("src.zarr", d.join("link.zarr")).unwrap();
    let want = dump(&open(&src));
    let ds = open(&d.join("link.zarr"));
    for target in [src.clone(), d.join("link.zarr"), src.join("sub.zarr")] {
        let err = ds
            .to_zarr(
                target.to_str().unwrap(),
                &opts(ZarrFormat::V2, WriteMode::Overwrite),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("the result reads from"), "{err}");
        assert_eq!(dump(&open(&src)), want, "{}", target.display());
    }
    // and the check alone says the same, touching nothing
    assert!(
        ds.check_to_zarr(
            src.to_str().unwrap(),
            &opts(ZarrFormat::V2, WriteMode::Overwrite)
        )
        .is_err()
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn temp_siblings(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".gridflow-tmp-"))
        .collect()
}

#[test]
fn a_failed_write_leaves_the_target_as_it_was_and_no_temporary_directory() {
    let d = tmp("failed");
    let bad = d.join("bad.zarr");
    copy_dir(&fixtures().join("daily_360.zarr"), &bad);
    std::fs::write(bad.join("tas/5.0.0"), b"garbage, not blosc").unwrap();
    let bad_ds = open(&bad);
    // the same variables as the bad dataset: an in-place overwrite would erase them first
    let good = open(&fixtures().join("daily_360.zarr"));
    for fmt in [ZarrFormat::V2, ZarrFormat::V3] {
        let out = d.join(format!("{fmt:?}-out.zarr"));
        good.to_zarr(out.to_str().unwrap(), &opts(fmt, WriteMode::Create))
            .unwrap();
        let before = dump(&open(&out));
        let err = bad_ds
            .to_zarr(out.to_str().unwrap(), &opts(fmt, WriteMode::Overwrite))
            .unwrap_err()
            .to_string();
        assert!(err.contains("5.0.0"), "{err}");
        assert_eq!(
            dump(&open(&out)),
            before,
            "{fmt:?}: the old store is intact"
        );
        let new = d.join(format!("{fmt:?}-new.zarr"));
        assert!(
            bad_ds
                .to_zarr(new.to_str().unwrap(), &opts(fmt, WriteMode::Create))
                .is_err()
        );
        assert!(!new.exists(), "{fmt:?}: a failed new write left {new:?}");
    }
    assert!(temp_siblings(&d).is_empty(), "{:?}", temp_siblings(&d));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn overwrite_leaves_exactly_the_new_content_and_create_refuses_what_is_there() {
    let d = tmp("exact");
    let out = d.join("out.zarr");
    let daily = open(&fixtures().join("daily_360.zarr"));
    let packed = open(&fixtures().join("packed.zarr"));
    daily
        .to_zarr(
            out.to_str().unwrap(),
            &opts(ZarrFormat::V2, WriteMode::Create),
        )
        .unwrap();
    let err = packed
        .to_zarr(
            out.to_str().unwrap(),
            &opts(ZarrFormat::V2, WriteMode::Create),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    packed
        .to_zarr(
            out.to_str().unwrap(),
            &opts(ZarrFormat::V2, WriteMode::Overwrite),
        )
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".zattrs", ".zgroup", ".zmetadata", "pr"]);
    let zmeta: Value =
        serde_json::from_slice(&std::fs::read(out.join(".zmetadata")).unwrap()).unwrap();
    let mut keys: Vec<&String> = zmeta["metadata"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [".zattrs", ".zgroup", "pr/.zarray", "pr/.zattrs"],
        "no stale keys"
    );
    assert_eq!(dump(&open(&out)), dump(&packed));
    // a directory of the user's that is not a store is never replaced
    let mine = d.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), b"...").unwrap();
    let err = packed
        .to_zarr(
            mine.to_str().unwrap(),
            &opts(ZarrFormat::V2, WriteMode::Overwrite),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("replaces only Zarr stores"), "{err}");
    assert_eq!(std::fs::read(mine.join("thesis.tex")).unwrap(), b"...");
    let _ = std::fs::remove_dir_all(&d);
}

/// The local S3 test server (`scripts/test-servers.sh`), when running.
fn s3() -> Option<(String, gridflow_store::StoreOptions)> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(bucket)) = (
        var("GRIDFLOW_TEST_S3_ENDPOINT"),
        var("GRIDFLOW_TEST_S3_BUCKET"),
    ) else {
        println!("NOTICE: GRIDFLOW_TEST_S3_ENDPOINT/_BUCKET not set: skipping");
        return None;
    };
    let options = gridflow_store::StoreOptions {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        anonymous: true,
        allow_http: true,
        timeout_secs: 20,
        ..gridflow_store::StoreOptions::default()
    };
    Some((bucket, options))
}

#[test]
fn object_store_writes_put_the_root_metadata_last_and_overwrite_leaves_only_the_new_arrays() {
    let Some((bucket, store)) = s3() else { return };
    let url = format!("s3://{bucket}/dataset-writes-{}.zarr", std::process::id());
    let open_s3 = |u: &str| {
        open_zarr(
            u,
            &OpenOptions {
                store: store.clone(),
                ..OpenOptions::default()
            },
        )
    };
    let o = |mode| ToZarrOptions {
        mode,
        store: store.clone(),
        ..ToZarrOptions::default()
    };
    // a fresh write that fails partway leaves nothing that opens
    let d = tmp("s3");
    let bad = d.join("bad.zarr");
    copy_dir(&fixtures().join("daily_360.zarr"), &bad);
    std::fs::write(bad.join("tas/5.0.0"), b"garbage, not blosc").unwrap();
    assert!(open(&bad).to_zarr(&url, &o(WriteMode::Create)).is_err());
    assert!(open_s3(&url).is_err(), "a failed fresh write opens");
    // (what it left is only chunks: Overwrite clears them)
    let daily = open(&fixtures().join("daily_360.zarr"));
    daily.to_zarr(&url, &o(WriteMode::Overwrite)).unwrap();
    assert_eq!(dump(&open_s3(&url).unwrap()), dump(&daily));
    let packed = open(&fixtures().join("packed.zarr"));
    assert!(packed.to_zarr(&url, &o(WriteMode::Create)).is_err());
    packed.to_zarr(&url, &o(WriteMode::Overwrite)).unwrap();
    let back = open_s3(&url).unwrap();
    assert_eq!(dump(&back), dump(&packed));
    let names: Vec<&String> = back
        .coords()
        .keys()
        .chain(back.data_vars().keys())
        .collect();
    assert_eq!(names, ["pr"], "no stale arrays");
    let _ = std::fs::remove_dir_all(&d);
}
