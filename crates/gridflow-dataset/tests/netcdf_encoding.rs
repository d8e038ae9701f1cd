//! Each variable's `encoding` after `open_netcdf` (chunks, filters, layout, shape on disk,
//! dtype, fill value, packing, time units) and the dataset's (`unlimited_dims`, `source`)
//! equal what xarray's netcdf4 engine reports for the same files: the committed netCDF
//! fixtures, each group of the groups files. Expected: `encodings.json`, written by
//! `gridflow-store/tests/fixtures/generate_netcdf.py`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_dataset::{OpenOptions, open_netcdf};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

fn netcdf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridflow-store/tests/fixtures/netcdf")
}

fn expected() -> Map<String, Value> {
    let text = std::fs::read_to_string(netcdf_dir().join("encodings.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// JSON values equal as xarray's: numbers by value (an int16 fill value read as a float is
/// the same number), lists element by element.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// The file name of a `source` path, as encodings.json holds it.
fn file_name(v: &Value) -> Value {
    json!(
        v.as_str()
            .and_then(|s| s.rsplit('/').next())
            .unwrap_or_default()
    )
}

#[test]
fn variable_and_dataset_encodings_equal_xarray() {
    let expected = expected();
    let mut checked = 0;
    for (key, want) in &expected {
        if key == "pins" || key == "values" {
            continue;
        }
        let (file, group) = key.split_once(':').unwrap_or((key.as_str(), ""));
        let options = OpenOptions {
            group: group.to_owned(),
            ..OpenOptions::default()
        };
        let path = netcdf_dir().join(file);
        let ds = open_netcdf(path.to_str().unwrap(), &options).unwrap();
        checked += check(&ds, key, want);
    }
    // every file and group of encodings.json, every key of its variables
    assert!(checked > 300, "only {checked} encoding values compared");
}

/// Compares `ds`'s encodings with xarray's (`want`); returns how many values it compared.
fn check(ds: &gridflow_dataset::Dataset, key: &str, want: &Value) -> usize {
    let mut checked = 0;
    {
        // the dataset's: unlimited dimensions (xarray's set, sorted) and the file
        let unlimited = ds
            .encoding
            .get("unlimited_dims")
            .cloned()
            .unwrap_or(json!([]));
        let mut unlimited: Vec<String> = serde_json::from_value(unlimited).unwrap();
        unlimited.sort();
        assert_eq!(
            json!(unlimited),
            want["dataset"]["unlimited_dims"],
            "{key}: unlimited_dims"
        );
        assert_eq!(
            file_name(&ds.encoding["source"]),
            want["dataset"]["source"],
            "{key}: source"
        );
        let vars = want["variables"].as_object().unwrap();
        let mut names: Vec<&String> = ds.data_vars().keys().chain(ds.coords().keys()).collect();
        names.sort();
        let mut want_names: Vec<&String> = vars.keys().collect();
        want_names.sort();
        assert_eq!(names, want_names, "{key}: variables");
        for (name, want) in vars {
            let v = ds
                .data_vars()
                .get(name)
                .or_else(|| ds.coords().get(name))
                .unwrap();
            let mut got: Map<String, Value> = v.encoding.clone().into_iter().collect();
            if let Some(s) = got.get_mut("source") {
                *s = file_name(s);
            }
            let want = want.as_object().unwrap();
            let mut got_keys: Vec<&String> = got.keys().collect();
            got_keys.sort();
            let mut want_keys: Vec<&String> = want.keys().collect();
            want_keys.sort();
            assert_eq!(got_keys, want_keys, "{key}: {name}: encoding keys");
            for (k, w) in want {
                assert!(
                    same(&got[k], w),
                    "{key}: {name}: encoding {k:?}: gridflow {} vs xarray {w}",
                    got[k]
                );
                checked += 1;
            }
        }
    }
    checked
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[test]
fn remote_files_have_the_same_encodings() {
    let (Some(http), Some(s3), Some(bucket)) = (
        var("GRIDFLOW_TEST_HTTP_URL"),
        var("GRIDFLOW_TEST_S3_ENDPOINT"),
        var("GRIDFLOW_TEST_S3_BUCKET"),
    ) else {
        assert!(
            !in_ci(),
            "the test servers are required in CI (scripts/test-servers.sh start)"
        );
        println!("NOTICE: remote encodings skipped: GRIDFLOW_TEST_HTTP_URL / _S3_* not set");
        return;
    };
    let expected = expected();
    let s3_open = OpenOptions {
        store: gridflow_store::StoreOptions {
            endpoint: Some(s3),
            region: Some("us-east-1".into()),
            anonymous: true,
            allow_http: true,
            timeout_secs: 20,
            ..gridflow_store::StoreOptions::read_only()
        },
        ..OpenOptions::default()
    };
    for file in ["encodings_netcdf4.nc", "std_netcdf4.nc", "std_classic.nc"] {
        for (url, options) in [
            (
                format!("{}/netcdf/{file}", http.trim_end_matches('/')),
                OpenOptions::default(),
            ),
            (format!("s3://{bucket}/netcdf/{file}"), s3_open.clone()),
        ] {
            // read by byte ranges: the HDF5 metadata through the same block cache
            let ds = open_netcdf(&url, &options).unwrap_or_else(|e| panic!("{url}: {e}"));
            let n = check(&ds, &url, &expected[file]);
            assert!(n > 20, "{url}: only {n} values compared");
        }
    }
}

/// The values of every storage variant (deflate with Fletcher-32 checksums among them) are
/// xarray's.
#[test]
fn values_of_every_storage_variant_equal_xarray() {
    let expected = expected();
    let path = netcdf_dir().join("encodings_netcdf4.nc");
    let ds = open_netcdf(path.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let want = expected["values"].as_object().unwrap();
    assert_eq!(want.len(), 7);
    for (name, w) in want {
        let v = ds
            .data_vars()
            .get(name)
            .or_else(|| ds.coords().get(name))
            .unwrap();
        let got = v.to_f64_vec().unwrap_or_else(|e| panic!("{name}: {e}"));
        let w: Vec<f64> = w
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(got.len(), w.len(), "{name}");
        for (i, (a, b)) in got.iter().zip(&w).enumerate() {
            assert!(
                a == b || (a.is_nan() && b.is_nan()),
                "{name}[{i}]: gridflow {a} vs xarray {b}"
            );
        }
    }
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

/// The storage keys `to_netcdf` carries from a variable's encoding to the file.
const STORAGE: [&str; 6] = [
    "chunksizes",
    "contiguous",
    "zlib",
    "complevel",
    "shuffle",
    "fletcher32",
];

/// xarray's netcdf4 engine on a file: each variable's storage encoding, as JSON.
const XARRAY_STORAGE: &str = r#"
import json, sys, xarray as xr
keys = sys.argv[2].split(",")
with xr.open_dataset(sys.argv[1], engine="netcdf4") as ds:
    out = {n: {k: (list(v.encoding[k]) if isinstance(v.encoding.get(k), tuple) else v.encoding.get(k))
               for k in keys if k in v.encoding}
           for n, v in ds.variables.items()}
print(json.dumps(out))
"#;

#[test]
fn to_netcdf_keeps_chunks_and_filters_from_the_encoding() {
    let expected = expected();
    let dir = std::env::temp_dir().join(format!("gridflow-nc-enc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let py = venv_python();
    assert!(
        py.is_some() || !in_ci(),
        "the fixtures venv is required in CI"
    );
    for file in ["encodings_netcdf4.nc", "noleap_h5netcdf.nc"] {
        let src = netcdf_dir().join(file);
        let ds = open_netcdf(src.to_str().unwrap(), &OpenOptions::default()).unwrap();
        let out = dir.join(file);
        // a default compression the encodings override wherever they say
        let options = gridflow_dataset::ToNetcdfOptions {
            compression_level: Some(5),
            ..Default::default()
        };
        ds.to_netcdf(out.to_str().unwrap(), &options).unwrap();
        let want = expected[file]["variables"].as_object().unwrap();
        // gridflow reads back what the source held
        let back = open_netcdf(out.to_str().unwrap(), &OpenOptions::default()).unwrap();
        for (name, w) in want {
            let v = back
                .data_vars()
                .get(name)
                .or_else(|| back.coords().get(name))
                .unwrap();
            for k in STORAGE {
                assert!(
                    same(&v.encoding[k], &w[k]),
                    "{file}: {name}: {k}: written {} vs source {}",
                    v.encoding[k],
                    w[k]
                );
            }
        }
        // and so does xarray
        let Some(py) = &py else {
            println!("NOTICE: fixtures venv absent; xarray's view of {file} skipped");
            continue;
        };
        let res = std::process::Command::new(py)
            .arg("-c")
            .arg(XARRAY_STORAGE)
            .arg(&out)
            .arg(STORAGE.join(","))
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let got: Map<String, Value> = serde_json::from_slice(&res.stdout).unwrap();
        for (name, w) in want {
            for k in STORAGE {
                assert!(
                    same(&got[name][k], &w[k]),
                    "{file}: {name}: {k}: xarray reads {} from gridflow's file, {} from the source",
                    got[name][k],
                    w[k]
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
