//! netCDF files (written by xarray with the netcdf4 and h5netcdf engines, one run split in 3
//! files) read directly, and kerchunk references over them, open as datasets whose values
//! equal xarray's on the netCDF files: locally, and (references) with the files and
//! references on the test HTTP and S3 servers. Fixtures and expected values: `gridflow-store/tests/fixtures/generate_netcdf.py`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_array::LocalExecutor;
use gridflow_dataset::{
    Combine, DataArray, Dataset, IndexSel, OpenOptions, Reduction, open_dataset, open_mfdataset,
    open_netcdf, open_zarr,
};
use gridflow_store::StoreOptions;
use serde_json::Value;
use std::path::PathBuf;

fn netcdf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridflow-store/tests/fixtures/netcdf")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(netcdf_dir().join("expected.json")).unwrap())
        .unwrap()
}

/// The reference sets: (key in expected.json, file or directory).
const SETS: [(&str, &str); 4] = [
    ("std", "std_netcdf4.json"),
    ("std", "std_netcdf4.parq"),
    ("noleap", "noleap_h5netcdf.json"),
    ("run", "run_noleap.json"),
];

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-9 * w.abs().max(1e-12);
        assert!(ok, "{what}[{i}]: gridflow {g} vs xarray {w}");
    }
}

fn values(da: &DataArray) -> Vec<f64> {
    da.compute_with(&LocalExecutor::threads(2))
        .unwrap()
        .to_f64_vec()
        .unwrap()
}

fn labels(da: &DataArray, dim: &str) -> Vec<String> {
    let ix = da.indexes().get(dim).unwrap();
    (0..ix.len()).map(|i| ix.label_string(i)).collect()
}

/// Every expression of expected.json on `ds`.
fn check(ds: &Dataset, e: &Value, what: &str) {
    let t = ds.get("tas").unwrap();
    assert_eq!(t.dims(), strings(&e["dims"]).as_slice(), "{what}: dims");
    let shape: Vec<usize> = floats(&e["shape"]).iter().map(|&x| x as usize).collect();
    assert_eq!(t.shape(), shape.as_slice(), "{what}: shape");
    let tl = labels(&t, "time");
    assert_eq!(
        vec![tl[0].clone(), tl[tl.len() - 1].clone()],
        strings(&e["time_first_last"]),
        "{what}: time"
    );
    for (k, v) in e["attrs"].as_object().unwrap() {
        let got = t.attrs().get(k).map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        assert_eq!(got.as_deref(), v.as_str(), "{what}: attribute {k}");
    }
    let point = t
        .isel(&[("lat", IndexSel::Int(1)), ("lon", IndexSel::Int(2))])
        .unwrap();
    assert_close(
        &values(&point),
        &floats(&e["point_series"]),
        &format!("{what}: point series"),
    );
    assert_close(
        &values(&t.mean(Some(&["time"])).unwrap()),
        &floats(&e["time_mean"]),
        &format!("{what}: time mean"),
    );
    let monthly = t
        .resample("time", "MS")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap();
    assert_eq!(
        labels(&monthly, "time"),
        strings(&e["monthly_labels"]),
        "{what}: monthly labels"
    );
    let mp = monthly
        .isel(&[("lat", IndexSel::Int(2)), ("lon", IndexSel::Int(3))])
        .unwrap();
    assert_close(
        &values(&mp),
        &floats(&e["monthly_mean_point"]),
        &format!("{what}: monthly means"),
    );
    let clim = t
        .groupby("time.month")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap()
        .isel(&[("lon", IndexSel::Int(0))])
        .unwrap();
    assert_close(
        &values(&clim),
        &floats(&e["month_climatology"]),
        &format!("{what}: monthly climatology"),
    );
    // xarray's open_mfdataset (data_vars="all") gives orog a time dimension: its first step
    let orog = ds.get("orog").unwrap();
    let orog = if orog.dims().iter().any(|d| d == "time") {
        orog.isel(&[("time", IndexSel::Int(0))]).unwrap()
    } else {
        orog
    };
    assert_close(
        &values(&orog),
        &floats(&e["orog"]),
        &format!("{what}: orog (contiguous)"),
    );
}

#[test]
fn local_references_equal_xarray_on_the_netcdf_files() {
    let e = expected();
    for (name, file) in SETS {
        let path = netcdf_dir().join(file);
        let ds = open_zarr(path.to_str().unwrap(), &OpenOptions::default())
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        check(&ds, &e[name], file);
    }
}

#[test]
fn references_with_absolute_and_file_url_targets() {
    // the same reference set with its targets rewritten to absolute paths and file:// URLs
    let e = expected();
    let dir = std::env::temp_dir().join(format!("gridflow-kerchunk-abs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let abs = netcdf_dir().canonicalize().unwrap();
    let text = std::fs::read_to_string(netcdf_dir().join("std_netcdf4.json")).unwrap();
    for (i, prefix) in [
        format!("{}/", abs.display()),
        format!("file://{}/", abs.display()),
    ]
    .iter()
    .enumerate()
    {
        let rewritten = text.replace("\"std_netcdf4.nc\"", &format!("\"{prefix}std_netcdf4.nc\""));
        assert_ne!(rewritten, text);
        let p = dir.join(format!("refs{i}.json"));
        std::fs::write(&p, rewritten).unwrap();
        let ds = open_zarr(p.to_str().unwrap(), &OpenOptions::default()).unwrap();
        check(&ds, &e["std"], &format!("std with targets {prefix}"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn in_ci() -> bool {
    var("CI").is_some_and(|v| v != "false" && v != "0")
}

/// (HTTP base URL, S3 endpoint, bucket) of the test servers, which hold `netcdf/`.
fn servers(test: &str) -> Option<(String, String, String)> {
    match (
        var("GRIDFLOW_TEST_HTTP_URL"),
        var("GRIDFLOW_TEST_S3_ENDPOINT"),
        var("GRIDFLOW_TEST_S3_BUCKET"),
    ) {
        (Some(h), Some(s), Some(b)) => Some((h.trim_end_matches('/').to_owned(), s, b)),
        _ => {
            assert!(
                !in_ci(),
                "{test}: the test servers are required in CI (scripts/test-servers.sh start)"
            );
            println!(
                "NOTICE: {test} skipped: GRIDFLOW_TEST_HTTP_URL / _S3_ENDPOINT / _S3_BUCKET not set"
            );
            None
        }
    }
}

fn s3_options(endpoint: &str) -> StoreOptions {
    StoreOptions {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        anonymous: true,
        allow_http: true,
        timeout_secs: 20,
        ..StoreOptions::read_only()
    }
}

#[test]
fn remote_references_and_targets_equal_xarray() {
    let Some((http, s3, bucket)) = servers("remote_references_and_targets_equal_xarray") else {
        return;
    };
    let e = expected();
    for (name, file) in SETS {
        // the reference file on the server; its relative targets resolve beside it
        let url = format!("{http}/netcdf/{file}");
        let ds =
            open_zarr(&url, &OpenOptions::default()).unwrap_or_else(|err| panic!("{url}: {err}"));
        check(&ds, &e[name], &url);
        let url = format!("s3://{bucket}/netcdf/{file}");
        let opts = OpenOptions {
            store: s3_options(&s3),
            ..OpenOptions::default()
        };
        let ds = open_zarr(&url, &opts).unwrap_or_else(|err| panic!("{url}: {err}"));
        check(&ds, &e[name], &url);
    }
    // a local reference file whose targets are rewritten to the servers' URLs
    let dir = std::env::temp_dir().join(format!("gridflow-kerchunk-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(netcdf_dir().join("run_noleap.json")).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    for (i, (base, store)) in [
        (format!("{http}/netcdf"), StoreOptions::read_only()),
        (format!("s3://{bucket}/netcdf"), s3_options(&s3)),
    ]
    .into_iter()
    .enumerate()
    {
        json["templates"]["d"] = Value::String(base.clone());
        let p = dir.join(format!("run{i}.json"));
        std::fs::write(&p, serde_json::to_vec(&json).unwrap()).unwrap();
        let opts = OpenOptions {
            store,
            ..OpenOptions::default()
        };
        let ds = open_zarr(p.to_str().unwrap(), &opts).unwrap();
        check(&ds, &e["run"], &format!("run with targets at {base}"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn netcdf_files_read_directly_equal_xarray() {
    let e = expected();
    let dir = netcdf_dir();
    for (name, file) in [
        ("std", "std_netcdf4.nc"),
        ("std", "std_classic.nc"),
        ("noleap", "noleap_h5netcdf.nc"),
    ] {
        let p = dir.join(file);
        let ds = open_netcdf(p.to_str().unwrap(), &OpenOptions::default())
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        check(&ds, &e[name], file);
        // open_dataset recognises the file by its content
        let ds = open_dataset(p.to_str().unwrap(), &OpenOptions::default()).unwrap();
        check(&ds, &e[name], file);
    }
    // one run in 3 files: a glob, a list by coordinates (in any order), nested along time
    let glob = dir.join("run_noleap_*.nc");
    let ds = open_dataset(glob.to_str().unwrap(), &OpenOptions::default()).unwrap();
    check(&ds, &e["run"], "run_noleap_*.nc");
    let files: Vec<String> = [2, 0, 1]
        .iter()
        .map(|i| dir.join(format!("run_noleap_{i}.nc")).display().to_string())
        .collect();
    let ds = open_mfdataset(&files, &Combine::ByCoords, &OpenOptions::default()).unwrap();
    check(&ds, &e["run"], "run by coords");
    let mut ordered = files.clone();
    ordered.sort();
    let ds = open_mfdataset(
        &ordered,
        &Combine::Nested("time".into()),
        &OpenOptions::default(),
    )
    .unwrap();
    check(&ds, &e["run"], "run nested");
    // a glob that matches nothing, and a file that is not netCDF
    let err = open_dataset(
        dir.join("nothing_*.nc").to_str().unwrap(),
        &OpenOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no file matches"), "{err}");
    let err = open_netcdf(
        dir.join("expected.json").to_str().unwrap(),
        &OpenOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("expected.json"), "{err}");
}

#[test]
fn remote_netcdf_files_read_by_ranges_equal_xarray() {
    let Some((http, s3, bucket)) = servers("remote_netcdf_files_read_by_ranges_equal_xarray")
    else {
        return;
    };
    let e = expected();
    let s3_open = OpenOptions {
        store: s3_options(&s3),
        ..OpenOptions::default()
    };
    for (name, file) in [
        ("std", "std_netcdf4.nc"),
        ("std", "std_classic.nc"),
        ("noleap", "noleap_h5netcdf.nc"),
    ] {
        for (url, opts) in [
            (format!("{http}/netcdf/{file}"), OpenOptions::default()),
            (format!("s3://{bucket}/netcdf/{file}"), s3_open.clone()),
        ] {
            let ds = open_netcdf(&url, &opts).unwrap_or_else(|err| panic!("{url}: {err}"));
            check(&ds, &e[name], &url);
            assert_eq!(ds.encoding["source"], Value::String(url.clone()));
            // open_dataset (the CLI's --store) recognises it by its first bytes
            let ds = open_dataset(&url, &opts).unwrap_or_else(|err| panic!("{url}: {err}"));
            check(&ds, &e[name], &url);
        }
    }
    // Google Cloud Storage (the emulator holds netcdf/ too)
    match (
        var("GRIDFLOW_TEST_GCS_ENDPOINT"),
        var("GRIDFLOW_TEST_GCS_BUCKET"),
    ) {
        (Some(endpoint), Some(gcs_bucket)) => {
            let url = format!("gs://{gcs_bucket}/netcdf/std_netcdf4.nc");
            let opts = OpenOptions {
                store: StoreOptions {
                    endpoint: Some(endpoint),
                    ..StoreOptions::read_only()
                },
                ..OpenOptions::default()
            };
            let ds = open_dataset(&url, &opts).unwrap_or_else(|err| panic!("{url}: {err}"));
            check(&ds, &e["std"], &url);
        }
        _ => assert!(!in_ci(), "the GCS emulator is required in CI"),
    }
    // one run in 3 remote files, combined by their coordinates
    let files: Vec<String> = [2, 0, 1]
        .iter()
        .map(|i| format!("s3://{bucket}/netcdf/run_noleap_{i}.nc"))
        .collect();
    let ds = open_mfdataset(&files, &Combine::ByCoords, &s3_open).unwrap();
    check(&ds, &e["run"], "remote run by coords");
    // a missing remote file is named
    let url = format!("{http}/netcdf/missing.nc");
    let err = open_netcdf(&url, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.nc"), "{err}");
}

/// The values of a variable as expected.json's "groups" spells them: strings, ISO dates of a
/// time dimension coordinate, numbers (NaN as null).
fn spelled(ds: &Dataset, name: &str, v: &gridflow_dataset::Variable) -> Value {
    match v.kind() {
        gridflow_dataset::ValueKind::Strings(table) => Value::Array(
            v.to_f64_vec()
                .unwrap()
                .iter()
                .map(|&c| Value::String(table[c as usize].clone()))
                .collect(),
        ),
        gridflow_dataset::ValueKind::Time(_) => Value::Array(
            labels(&ds.get(name).unwrap(), name)
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
        gridflow_dataset::ValueKind::Numeric => Value::Array(
            v.to_f64_vec()
                .unwrap()
                .into_iter()
                .map(|x| {
                    if x.is_nan() {
                        Value::Null
                    } else {
                        serde_json::json!(x)
                    }
                })
                .collect(),
        ),
    }
}

#[test]
fn groups_and_text_variables_equal_xarray() {
    let e = expected();
    let groups = e["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 6, "two files, three groups each");
    for (key, exp) in groups {
        let (engine, group) = key.split_once(':').unwrap();
        let path = netcdf_dir().join(format!("groups_{engine}.nc"));
        let opts = OpenOptions {
            group: group.to_owned(),
            ..OpenOptions::default()
        };
        let ds = open_dataset(path.to_str().unwrap(), &opts)
            .unwrap_or_else(|err| panic!("{key}: {err}"));
        let dims: serde_json::Map<String, Value> = ds
            .dims()
            .into_iter()
            .map(|(k, n)| (k, serde_json::json!(n)))
            .collect();
        assert_eq!(Value::Object(dims), exp["dims"], "{key}: dims");
        for (kind, vars) in [("data_vars", ds.data_vars()), ("coords", ds.coords())] {
            let want = exp[kind].as_object().unwrap();
            let mut got_names: Vec<&String> = vars.keys().collect();
            got_names.sort();
            let mut want_names: Vec<&String> = want.keys().collect();
            want_names.sort();
            assert_eq!(got_names, want_names, "{key}: {kind}");
            for (name, w) in want {
                let v = &vars[name.as_str()];
                assert_eq!(
                    Value::Array(v.dims().iter().map(|d| Value::String(d.clone())).collect()),
                    w["dims"],
                    "{key}: {name} dims"
                );
                let got = spelled(&ds, name, v);
                match (got.as_array(), w["values"].as_array()) {
                    (Some(g), Some(x)) if x.iter().any(Value::is_number) => {
                        let g: Vec<f64> =
                            g.iter().map(|y| y.as_f64().unwrap_or(f64::NAN)).collect();
                        assert_close(&g, &floats(&w["values"]), &format!("{key}: {name}"));
                    }
                    _ => assert_eq!(got, w["values"], "{key}: {name}"),
                }
            }
        }
        for (k, want) in exp["attrs"].as_object().unwrap() {
            assert_eq!(ds.attrs.get(k), Some(want), "{key}: attribute {k}");
        }
    }
    // a group that is not there is named, with the groups that are
    let path = netcdf_dir().join("groups_netcdf4.nc");
    let opts = OpenOptions {
        group: "hindcast".into(),
        ..OpenOptions::default()
    };
    let err = open_netcdf(path.to_str().unwrap(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hindcast") && err.contains("forecast/member1"),
        "{err}"
    );
}
