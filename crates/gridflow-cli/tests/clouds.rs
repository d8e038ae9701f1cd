//! `gridflow eval`, `info` and `catalog search` on `gs://` and `az://` stores, reached with
//! `--storage-option KEY=VALUE`: the same results as the same stores on local disk, catalog
//! rows whose `zstore` is a `gs://` URL included (as in Pangeo's CMIP6 catalog).
//!
//! The emulators (fake-gcs-server, Azurite) are started by `scripts/test-servers.sh start`,
//! which writes their addresses to `target/test-servers/env`; without them each test prints a
//! notice and returns, and in CI (`CI` set to anything but `false`/`0`) fails instead.
#![allow(clippy::unwrap_used, missing_docs, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// (GCS endpoint, bucket, Azure endpoint, account, public container), or `None` with a
/// notice.
fn emulators(test: &str) -> Option<(String, String, String, String, String)> {
    match (
        var("GRIDFLOW_TEST_GCS_ENDPOINT"),
        var("GRIDFLOW_TEST_GCS_BUCKET"),
        var("GRIDFLOW_TEST_AZURE_ENDPOINT"),
        var("GRIDFLOW_TEST_AZURE_ACCOUNT"),
        var("GRIDFLOW_TEST_AZURE_CONTAINER"),
    ) {
        (Some(g), Some(b), Some(a), Some(acct), Some(c)) => Some((g, b, a, acct, c)),
        _ => {
            let why = format!(
                "{test}: GRIDFLOW_TEST_GCS_* / GRIDFLOW_TEST_AZURE_* are not set. Run \
                 scripts/test.sh, or `scripts/test-servers.sh start && source \
                 target/test-servers/env` first."
            );
            assert!(!in_ci(), "the cloud emulators are required in CI: {why}");
            println!("NOTICE: skipped {why}");
            None
        }
    }
}

/// The store fixtures the emulators hold.
fn store_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../gridflow-store/tests/fixtures")
        .join(name)
}

fn gridflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "expected success: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-cli-clouds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Reductions over the remote store (streamed chunk by chunk) and its structure, compared
/// with the same commands on the local fixture.
const EXPRESSIONS: [&str; 3] = [
    r#"ds.tas.mean("time")"#,
    r#"ds.tas.groupby("time.season").max()"#,
    r#"ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(["lat", "lon"])"#,
];

#[test]
fn eval_and_info_on_gs_and_az_equal_local() {
    let Some((gcs, bucket, az, account, container)) =
        emulators("eval_and_info_on_gs_and_az_equal_local")
    else {
        return;
    };
    let dir = tmp("eval");
    let local = store_fixture("cmip6_mini.zarr");
    let local = local.to_str().unwrap();
    let gs = format!("gs://{bucket}/cmip6_mini.zarr");
    let azure = format!("az://{container}/cmip6_mini.zarr");
    let gcs_opt = format!("endpoint={gcs}");
    let az_opts = [format!("endpoint={az}"), format!("account_name={account}")];
    let remotes: [(&str, Vec<&str>); 2] = [
        (&gs, vec!["--storage-option", &gcs_opt]),
        (
            &azure,
            vec![
                "--storage-option",
                &az_opts[0],
                "--storage-option",
                &az_opts[1],
            ],
        ),
    ];
    for expr in EXPRESSIONS {
        let want = ok_json(&gridflow(&dir, &["eval", "--store", local, expr, "--json"]));
        assert!(!want["values"].as_array().unwrap().is_empty(), "{want}");
        for (url, opts) in &remotes {
            let mut args = vec!["eval", "--store", url, expr, "--json"];
            args.extend(opts);
            let got = ok_json(&gridflow(&dir, &args));
            assert_eq!(got, want, "{url}: {expr}");
        }
    }
    let want = ok_json(&gridflow(&dir, &["info", local, "--json"]));
    for (url, opts) in &remotes {
        let mut args = vec!["info", url, "--json"];
        args.extend(opts);
        assert_eq!(ok_json(&gridflow(&dir, &args)), want, "{url}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A catalog in the Pangeo CMIP6 layout whose one row's `zstore` is `zstore`.
fn write_catalog(dir: &Path, name: &str, zstore: &str) -> String {
    let spec = serde_json::json!({
        "esmcat_version": "0.1.0",
        "id": name,
        "description": "the store fixture cmip6_mini.zarr",
        "catalog_file": format!("{name}.csv"),
        "attributes": [
            {"column_name": "source_id", "vocabulary": ""},
            {"column_name": "experiment_id", "vocabulary": ""},
            {"column_name": "member_id", "vocabulary": ""},
            {"column_name": "table_id", "vocabulary": ""},
            {"column_name": "variable_id", "vocabulary": ""}
        ],
        "assets": {"column_name": "zstore", "format": "zarr"},
        "aggregation_control": {
            "variable_column_name": "variable_id",
            "groupby_attrs": ["source_id", "experiment_id", "table_id"],
            "aggregations": [
                {"type": "union", "attribute_name": "variable_id"},
                {"type": "join_new", "attribute_name": "member_id",
                 "options": {"coords": "minimal", "compat": "override"}}
            ]
        }
    });
    std::fs::write(dir.join(format!("{name}.json")), spec.to_string()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.csv")),
        format!(
            "source_id,experiment_id,member_id,table_id,variable_id,zstore\n\
             GRIDFLOW-MINI,historical,r1i1p1f1,Amon,tas,{zstore}\n"
        ),
    )
    .unwrap();
    dir.join(format!("{name}.json")).display().to_string()
}

#[test]
fn catalog_rows_with_gs_zstore_open_through_the_same_path() {
    let Some((gcs, bucket, ..)) =
        emulators("catalog_rows_with_gs_zstore_open_through_the_same_path")
    else {
        return;
    };
    let dir = tmp("catalog");
    let local = write_catalog(
        &dir,
        "local",
        store_fixture("cmip6_mini.zarr").to_str().unwrap(),
    );
    let remote = write_catalog(&dir, "remote", &format!("gs://{bucket}/cmip6_mini.zarr"));
    let opt = format!("endpoint={gcs}");
    let search = [
        "--search",
        "source_id=GRIDFLOW-MINI",
        "--search",
        "variable_id=tas",
    ];
    let expr = r#"ds.tas.mean("time")"#;
    let run = |cat: &str, extra: &[&str]| {
        let mut args = vec!["eval", "--catalog", cat];
        args.extend(search);
        args.extend(extra);
        args.extend([expr, "--json"]);
        ok_json(&gridflow(&dir, &args))
    };
    let want = run(&local, &[]);
    let got = run(&remote, &["--storage-option", &opt]);
    assert_eq!(got, want);
    assert_eq!(got["dims"], serde_json::json!(["member_id", "lat", "lon"]));
    // the mean over everything equals the store's own
    let mean = |args: &[&str]| ok_json(&gridflow(&dir, args))["values"].clone();
    let store_mean = mean(&[
        "eval",
        "--store",
        store_fixture("cmip6_mini.zarr").to_str().unwrap(),
        "ds.tas.mean()",
        "--json",
    ]);
    let mut args = vec!["eval", "--catalog", remote.as_str()];
    args.extend(search);
    args.extend(["--storage-option", &opt, "ds.tas.mean()", "--json"]);
    assert_eq!(mean(&args), store_mean);
    // without the endpoint the catalog names the row's URL it could not open (real GCS is
    // not reachable from the tests: an unroutable endpoint gives the same failure quickly)
    let mut args = vec!["eval", "--catalog", remote.as_str()];
    args.extend(search);
    args.extend([
        "--storage-option",
        "endpoint=http://127.0.0.1:9",
        "--storage-option",
        "max_retries=0",
        expr,
    ]);
    let out = gridflow(&dir, &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("gs://{bucket}/cmip6_mini.zarr")),
        "{err}"
    );
    // catalog search takes the options too (and refuses unknown ones)
    let out = gridflow(
        &dir,
        &[
            "catalog",
            "search",
            &remote,
            "source_id=GRIDFLOW-MINI",
            "--json",
            "--storage-option",
            &opt,
        ],
    );
    assert_eq!(ok_json(&out)["rows"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_storage_options_are_refused_by_name() {
    let dir = tmp("bad");
    for (cmd, needle) in [
        (
            vec!["info", "gs://b/x.zarr", "--storage-option", "anno=true"],
            "unknown storage option \"anno\"",
        ),
        (
            vec![
                "eval",
                "--store",
                "gs://b/x.zarr",
                "--storage-option",
                "anon",
                "ds",
            ],
            "\"anon\" is not KEY=VALUE",
        ),
        (
            vec![
                "catalog",
                "search",
                "gs://b/c.json",
                "--storage-option",
                "anon=perhaps",
            ],
            "anon=\"perhaps\": expected true or false",
        ),
    ] {
        let out = gridflow(&dir, &cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--storage-option") && err.contains(needle),
            "{cmd:?}: {err}"
        );
        assert!(
            err.contains("anon, endpoint, region, profile") || !needle.contains("unknown"),
            "{err}"
        );
    }
    // the help lists the schemes and every option
    let out = gridflow(&dir, &["eval", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "gs://",
        "az://",
        "abfs",
        "--storage-option",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ] {
        assert!(help.contains(needle), "eval --help lacks {needle}");
    }
    for (key, _, _) in gridflow_store::clouds::STORAGE_OPTIONS {
        assert!(
            help.contains(&format!("  {key} ")),
            "eval --help lacks {key}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
