//! `gridflow eval -o/--plot/--graph` never loses the user's data: outputs over their own
//! inputs are refused, failed writes leave the old output (or nothing), `--overwrite` leaves
//! exactly the new content, nothing is replaced without it, and a `kill -9` at any moment
//! of an overwrite leaves either the complete old store or the complete new one.
#![allow(clippy::unwrap_used, missing_docs, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../gridflow-dataset/tests/fixtures")
        .join(name)
}

/// A fresh, empty directory for one test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-cli-writes-{}-{name}", std::process::id()));
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

fn gridflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails (a clear error, not a crash) with a message containing `needle`.
#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected an error: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
}

/// `eval --json` of an expression on a store.
fn json(dir: &Path, store: &str, expr: &str) -> Value {
    serde_json::from_str(&ok(&gridflow(
        dir,
        &["eval", "--threads", "2", "--store", store, expr, "--json"],
    )))
    .unwrap()
}

/// Every file under `d` (relative path, size and an FNV-1a hash of its bytes), sorted: a
/// store's exact content.
fn tree(d: &Path) -> Vec<(String, usize, u64)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, usize, u64)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.push(file_print(rel, &e.path()));
            }
        }
    }
    if d.is_file() {
        return vec![file_print(String::new(), d)];
    }
    let mut out = Vec::new();
    walk(d, d, &mut out);
    out.sort();
    out
}

fn file_print(name: String, p: &Path) -> (String, usize, u64) {
    let bytes = std::fs::read(p).unwrap();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (name, bytes.len(), hash)
}

/// Hidden temporary siblings left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".gridflow-tmp-"))
        .collect()
}

/// A copy of the daily fixture whose 4th `tas` chunk (of 8 along time) is garbage.
fn corrupt_copy(dir: &Path, name: &str) {
    copy_dir(&fixture("daily_360.zarr"), &dir.join(name));
    std::fs::write(dir.join(name).join("tas/3.0.0"), b"not a blosc frame").unwrap();
}

#[test]
fn output_over_its_own_input_is_refused_even_through_symlinks() {
    let d = tmp("self");
    copy_dir(&fixture("daily_360.zarr"), &d.join("src.zarr"));
    std::os::unix::fs::symlink("src.zarr", d.join("link.zarr")).unwrap();
    std::fs::create_dir(d.join("outer")).unwrap();
    copy_dir(&fixture("daily_360.zarr"), &d.join("outer/in.zarr"));
    let before = tree(&d.join("src.zarr"));
    let expr = r#"ds.tas.mean("time")"#;
    let roundabout = format!("../{}/src.zarr", d.file_name().unwrap().to_string_lossy());
    for (store, out) in [
        ("src.zarr", "src.zarr"),
        ("link.zarr", "src.zarr"),
        ("src.zarr", "link.zarr"),
        ("./src.zarr/", roundabout.as_str()),
    ] {
        let r = gridflow(
            &d,
            &["eval", "--store", store, expr, "-o", out, "--overwrite"],
        );
        fails_with(&r, "the result reads from");
        assert_eq!(tree(&d.join("src.zarr")), before, "{store} -> {out}");
    }
    // a store holding the input, or inside it
    let outer_before = tree(&d.join("outer"));
    fails_with(
        &gridflow(
            &d,
            &[
                "eval",
                "--store",
                "outer/in.zarr",
                expr,
                "-o",
                "outer",
                "--overwrite",
            ],
        ),
        "the result reads from",
    );
    fails_with(
        &gridflow(
            &d,
            &[
                "eval",
                "--store",
                "src.zarr",
                expr,
                "-o",
                "src.zarr/sub.zarr",
            ],
        ),
        "the result reads from",
    );
    assert_eq!(tree(&d.join("outer")), outer_before);
    assert_eq!(tree(&d.join("src.zarr")), before);
    assert!(leftovers(&d).is_empty());
    // the same computation to another path works and equals the direct one
    ok(&gridflow(
        &d,
        &["eval", "--store", "src.zarr", expr, "-o", "mean.zarr"],
    ));
    assert_eq!(
        json(&d, "mean.zarr", "ds.tas")["values"],
        json(&d, "src.zarr", expr)["values"]
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_failed_overwrite_keeps_the_previous_output_and_a_failed_new_write_leaves_nothing() {
    let d = tmp("failed");
    copy_dir(&fixture("daily_360.zarr"), &d.join("good.zarr"));
    corrupt_copy(&d, "bad.zarr");
    let expr = r#"ds.tas.mean("time")"#;
    ok(&gridflow(
        &d,
        &["eval", "--store", "good.zarr", expr, "-o", "out.zarr"],
    ));
    let before = tree(&d.join("out.zarr"));
    let values = json(&d, "out.zarr", "ds.tas")["values"].clone();
    assert!(values.as_array().unwrap().iter().all(Value::is_number));

    let r = gridflow(
        &d,
        &[
            "eval",
            "--store",
            "bad.zarr",
            expr,
            "-o",
            "out.zarr",
            "--overwrite",
        ],
    );
    fails_with(&r, "tas/3.0.0");
    assert_eq!(tree(&d.join("out.zarr")), before);
    assert_eq!(json(&d, "out.zarr", "ds.tas")["values"], values);

    fails_with(
        &gridflow(&d, &["eval", "--store", "bad.zarr", expr, "-o", "new.zarr"]),
        "tas/3.0.0",
    );
    assert!(!d.join("new.zarr").exists());
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn overwrite_leaves_exactly_the_new_content() {
    let d = tmp("exact");
    copy_dir(&fixture("daily_360.zarr"), &d.join("src.zarr"));
    // the old output holds tas, time, lat, lon and a user array
    ok(&gridflow(
        &d,
        &["eval", "--store", "src.zarr", "ds", "-o", "out.zarr"],
    ));
    ok(&gridflow(
        &d,
        &[
            "eval",
            "--store",
            "src.zarr",
            r#"ds.tas.isel(lat=0).rename("extra")"#,
            "-o",
            "extra.zarr",
        ],
    ));
    copy_dir(&d.join("extra.zarr/extra"), &d.join("out.zarr/extra"));
    ok(&gridflow(
        &d,
        &[
            "eval",
            "--store",
            "src.zarr",
            r#"ds.tas.max("time")"#,
            "-o",
            "out.zarr",
            "--overwrite",
        ],
    ));
    ok(&gridflow(
        &d,
        &[
            "eval",
            "--store",
            "src.zarr",
            r#"ds.tas.max("time")"#,
            "-o",
            "fresh.zarr",
        ],
    ));
    assert_eq!(tree(&d.join("out.zarr")), tree(&d.join("fresh.zarr")));
    let zmeta: Value =
        serde_json::from_slice(&std::fs::read(d.join("out.zarr/.zmetadata")).unwrap()).unwrap();
    let keys: Vec<&String> = zmeta["metadata"].as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| !k.starts_with("time/") && !k.starts_with("extra/")),
        "{keys:?}"
    );
    assert!(!d.join("out.zarr/time").exists() && !d.join("out.zarr/extra").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn nothing_of_the_users_is_replaced_without_overwrite() {
    let d = tmp("user");
    copy_dir(&fixture("daily_360.zarr"), &d.join("src.zarr"));
    let expr = r#"ds.tas.mean("time")"#;
    // a directory with the user's own group metadata, and a plain directory and a file
    std::fs::create_dir(d.join("mine.zarr")).unwrap();
    std::fs::write(d.join("mine.zarr/.zattrs"), br#"{"owner": "me"}"#).unwrap();
    std::fs::write(d.join("mine.zarr/.zmetadata"), b"{}").unwrap();
    std::fs::create_dir(d.join("papers")).unwrap();
    std::fs::write(d.join("papers/draft.tex"), b"\\section{}").unwrap();
    std::fs::write(d.join("notes.txt"), b"keep me").unwrap();
    for target in ["mine.zarr", "papers", "notes.txt"] {
        let before = tree(&d.join(target));
        fails_with(
            &gridflow(&d, &["eval", "--store", "src.zarr", expr, "-o", target]),
            "already exists",
        );
        if target != "mine.zarr" {
            // not a Zarr store: not even --overwrite replaces it
            fails_with(
                &gridflow(
                    &d,
                    &[
                        "eval",
                        "--store",
                        "src.zarr",
                        expr,
                        "-o",
                        target,
                        "--overwrite",
                    ],
                ),
                "replaces only Zarr stores",
            );
        }
        assert_eq!(tree(&d.join(target)), before, "{target}");
    }
    // an empty directory may be used; a missing parent is an error, not a crash
    std::fs::create_dir(d.join("empty.zarr")).unwrap();
    ok(&gridflow(
        &d,
        &["eval", "--store", "src.zarr", expr, "-o", "empty.zarr"],
    ));
    assert!(d.join("empty.zarr/.zmetadata").is_file());
    fails_with(
        &gridflow(
            &d,
            &[
                "eval",
                "--store",
                "src.zarr",
                expr,
                "-o",
                "no/such/dir.zarr",
            ],
        ),
        "parent directory",
    );
    // HTTP stores are read-only: refused before anything is computed
    fails_with(
        &gridflow(
            &d,
            &[
                "eval",
                "--store",
                "src.zarr",
                expr,
                "-o",
                "http://127.0.0.1:9/x.zarr",
            ],
        ),
        "read-only",
    );
    assert!(leftovers(&d).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn plot_and_graph_files_are_checked_before_computing_and_never_silently_replaced() {
    let d = tmp("files");
    copy_dir(&fixture("daily_360.zarr"), &d.join("src.zarr"));
    let series = r#"ds.tas.isel(lat=0, lon=0)"#;
    std::fs::write(d.join("fig.png"), b"my figure").unwrap();
    std::fs::write(d.join("g.svg"), b"my drawing").unwrap();
    fails_with(
        &gridflow(
            &d,
            &["eval", "--store", "src.zarr", series, "--plot", "fig.png"],
        ),
        "already exists",
    );
    fails_with(
        &gridflow(
            &d,
            &["eval", "--store", "src.zarr", series, "--graph", "g.svg"],
        ),
        "already exists",
    );
    // refused before -o is written
    for args in [
        vec!["--plot", "fig.png", "-o", "a.zarr"],
        vec!["--graph", "g.svg", "-o", "a.zarr"],
        vec!["--plot", "fig.txt", "-o", "a.zarr"],
        vec!["--plot", "no/dir/fig.png", "-o", "a.zarr"],
    ] {
        let mut all = vec!["eval", "--store", "src.zarr", series];
        all.extend(args.iter().copied());
        let r = gridflow(&d, &all);
        assert_eq!(r.status.code(), Some(1), "{args:?}");
        assert!(!d.join("a.zarr").exists(), "{args:?} wrote -o first");
    }
    fails_with(
        &gridflow(
            &d,
            &["eval", "--store", "src.zarr", series, "--plot", "fig.txt"],
        ),
        "expected .png or .svg",
    );
    assert_eq!(std::fs::read(d.join("fig.png")).unwrap(), b"my figure");
    assert_eq!(std::fs::read(d.join("g.svg")).unwrap(), b"my drawing");
    // with --overwrite they are replaced, whole
    ok(&gridflow(
        &d,
        &[
            "eval",
            "--store",
            "src.zarr",
            series,
            "--plot",
            "fig.png",
            "--graph",
            "g.svg",
            "--overwrite",
        ],
    ));
    assert!(
        std::fs::read(d.join("fig.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    assert!(
        std::fs::read_to_string(d.join("g.svg"))
            .unwrap()
            .contains("<svg")
    );
    assert!(leftovers(&d).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

/// A small linear congruential generator: reproducible "random" kill moments from a seed.
struct Lcg(u64);

impl Lcg {
    fn next_unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Waits for a child, killing it (and failing) if it runs for more than two minutes: a hang
/// guard, far above a normal run's length, not a timing check.
fn finish(mut child: std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gridflow eval -o did not finish: hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `out.zarr` holds: `Some(v)` when it opens and every one of its 10^6 values is `v`.
fn store_value(d: &Path) -> Option<f64> {
    let count = json(d, "out.zarr", "ds.x.count()")["values"][0].as_f64()?;
    let min = json(d, "out.zarr", "ds.x.min()")["values"][0].as_f64()?;
    let max = json(d, "out.zarr", "ds.x.max()")["values"][0].as_f64()?;
    (count == 1e6 && min == max).then_some(min)
}

#[test]
fn kill_9_during_overwrite_leaves_the_complete_old_or_new_store() {
    let d = tmp("kill9");
    // 100 chunks of 80 kB: each write takes a noticeable while (compute, compress, flush)
    let expr = |v: u32| format!(r#"(da.ones((1000, 1000), chunks=(100, 100)) * {v}).rename("x")"#);
    let write = |v: u32| {
        Command::new(env!("CARGO_BIN_EXE_gridflow"))
            .args([
                "eval",
                "--threads",
                "2",
                &expr(v),
                "-o",
                "out.zarr",
                "--overwrite",
            ])
            .current_dir(&d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let t = Instant::now();
    assert!(finish(write(1)).success());
    // spread the kills over 1.3 times one run's duration (some land after it ended)
    let span = t.elapsed().as_secs_f64() * 1.3;
    let mut current = 1.0;
    assert_eq!(store_value(&d), Some(current));
    let seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    let mut rng = Lcg(seed);
    let (mut old, mut new) = (0, 0);
    for trial in 0..20u32 {
        let v = trial + 2;
        let mut child = write(v);
        std::thread::sleep(Duration::from_secs_f64(rng.next_unit() * span));
        let _ = child.kill(); // SIGKILL (an error only if it already exited)
        finish(child);
        let got = store_value(&d);
        assert!(
            got == Some(current) || got == Some(f64::from(v)),
            "trial {trial} (seed {seed}): out.zarr holds {got:?}, neither the old {current} nor the new {v}"
        );
        if got == Some(f64::from(v)) {
            new += 1;
            current = f64::from(v);
        } else {
            old += 1;
        }
    }
    println!("20 kills: {old} left the old store, {new} the new one");
    // a later write deletes what the killed ones left, and only that
    std::fs::write(d.join("unrelated.txt"), b"x").unwrap();
    assert!(finish(write(99)).success());
    assert_eq!(store_value(&d), Some(99.0));
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    assert!(d.join("unrelated.txt").exists());
    let _ = std::fs::remove_dir_all(&d);
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

#[test]
fn xarray_reads_what_eval_o_writes_also_over_an_older_store() {
    let Some(py) = venv_python() else { return };
    let d = tmp("xarray");
    let daily = fixture("daily_360.zarr");
    let packed = fixture("packed.zarr");
    // (store, expression): times on a 360_day calendar and a scalar coordinate; packed int16
    let cases = [
        (
            &daily,
            r#"ds.tas.isel(lat=0, lon=slice(0, 3), time=slice(0, 40))"#,
        ),
        (&packed, r#"ds.pr.isel(t=slice(2, 9))"#),
    ];
    let mut outs = Vec::new();
    for (i, (store, expr)) in cases.iter().enumerate() {
        let s = store.to_str().unwrap();
        let out = format!("out{i}.zarr");
        // an older store with other arrays (all of the other fixture) is replaced
        let (other, _) = cases[(i + 1) % cases.len()];
        ok(&gridflow(
            &d,
            &["eval", "--store", other.to_str().unwrap(), "ds", "-o", &out],
        ));
        ok(&gridflow(
            &d,
            &["eval", "--store", s, expr, "-o", &out, "--overwrite"],
        ));
        outs.push(d.join(&out));
    }
    let dumped = Command::new(&py)
        .arg(fixture("dump_xarray.py"))
        .args(&outs)
        .output()
        .unwrap();
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    let all: Value = serde_json::from_slice(&dumped.stdout).unwrap();
    for ((store, expr), out) in cases.iter().zip(&outs) {
        let want = json(&d, store.to_str().unwrap(), expr);
        let xr = &all[out.to_str().unwrap()]["variables"];
        let name = want["name"].as_str().unwrap();
        let mut names: Vec<&str> = xr.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want_names: Vec<&str> = want["coords"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .chain([name])
            .collect();
        want_names.sort_unstable();
        assert_eq!(names, want_names, "{expr}: exactly the new variables");
        assert_eq!(xr[name]["dims"], want["dims"], "{expr}");
        assert_eq!(xr[name]["attrs"], want["attrs"], "{expr}");
        // the dump writes NaN as null; `eval --json` writes it as "NaN"
        let close = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * y.abs().max(1.0),
            _ => a == b || a.is_null() && b == "NaN",
        };
        let (xv, wv) = (
            xr[name]["values"].as_array().unwrap(),
            want["values"].as_array().unwrap(),
        );
        assert_eq!(xv.len(), wv.len(), "{expr}");
        assert!(
            xv.iter().zip(wv).all(|(a, b)| close(a, b)),
            "{expr}: {xv:?} vs {wv:?}"
        );
        for (c, cv) in want["coords"].as_object().unwrap() {
            assert_eq!(xr[c]["dims"], cv["dims"], "{expr}: coord {c}");
            assert_eq!(xr[c]["values"], cv["values"], "{expr}: coord {c}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
