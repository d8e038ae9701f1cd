//! `gridflow eval` on a cluster of real processes over 127.0.0.1: a `gridflow scheduler`
//! (port 0, address read from its scheduler file) and two `gridflow worker`s, then
//! `--cluster local:2x1`. Every xarray-compared expression of `eval_json.rs` prints exactly
//! what the local executor prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn stores() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridflow-dataset/tests/fixtures")
}

fn gridflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gridflow"));
    c.env("RUST_BACKTRACE", "0");
    c
}

/// Kills the processes it holds when dropped (a failed assertion leaves none behind).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cases() -> Vec<(Option<PathBuf>, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expected.json");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["store"].as_str().map(|s| stores().join(s)),
                c["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn eval(store: Option<&Path>, expr: &str, extra: &[&str]) -> String {
    let mut c = gridflow();
    c.args(["eval", "--json"]).args(extra);
    if let Some(s) = store {
        c.arg("--store").arg(s);
    }
    let out = c.arg(expr).output().unwrap();
    assert!(
        out.status.success(),
        "{expr} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wait_for_file(path: &Path, what: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        if let Ok(Some(status)) = what.try_wait() {
            panic!("the scheduler exited: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no scheduler file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn eval_on_a_scheduler_and_workers_equals_the_local_executor() {
    let dir = std::env::temp_dir().join(format!("gridflow-cluster-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scheduler.json");
    let _ = std::fs::remove_file(&file);
    let mut procs = Procs(Vec::new());
    procs.0.push(
        gridflow()
            .args(["scheduler", "--port", "0", "--scheduler-file"])
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let info: Value = serde_json::from_str(&wait_for_file(&file, &mut procs.0[0])).unwrap();
    let address = info["address"].as_str().unwrap().to_owned();
    assert!(address.starts_with("tcp://127.0.0.1:"), "{address}");
    assert!(
        !address.ends_with(":0"),
        "the chosen port is written, not 0"
    );
    for i in 0..2 {
        procs.0.push(
            gridflow()
                .args([
                    "worker",
                    &address,
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "1GiB",
                ])
                .args(["--name", &format!("w{i}")])
                .spawn()
                .unwrap(),
        );
    }
    for (store, expr) in cases() {
        let local = eval(store.as_deref(), &expr, &["--threads", "2"]);
        let remote = eval(store.as_deref(), &expr, &["--scheduler", &address]);
        assert_eq!(remote, local, "{expr}");
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_on_a_local_cluster_equals_the_local_executor() {
    for (store, expr) in cases().into_iter().take(5) {
        let local = eval(store.as_deref(), &expr, &["--threads", "2"]);
        let remote = eval(store.as_deref(), &expr, &["--cluster", "local:2x1"]);
        assert_eq!(remote, local, "{expr}");
    }
}

#[test]
fn a_bad_cluster_spec_or_address_is_a_clear_error() {
    let out = gridflow()
        .args([
            "eval",
            "--cluster",
            "remote:3",
            "da.ones(4, chunks=2).sum()",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected local"), "{err}");
    // Nothing listens on port 1.
    let out = gridflow()
        .args([
            "eval",
            "--scheduler",
            "tcp://127.0.0.1:1",
            "da.ones(4, chunks=2).sum()",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connecting to the scheduler at tcp://127.0.0.1:1"),
        "{err}"
    );
}

/// `gridflow demo` runs on a local cluster unless given `--threads` (as the tutorial's
/// `Client()`), says so, prints the same numbers as the in-process executor and stops its
/// worker processes at the end.
#[test]
fn the_demo_runs_on_a_local_cluster_by_default() {
    let dir = std::env::temp_dir().join(format!("gridflow-demo-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let demo = |extra: &[&str], out: &str| {
        let o = gridflow()
            .args(["demo", "--steps", "48", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(dir.join(out))
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{extra:?}: {text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    };
    let local = demo(&["--threads", "2"], "local");
    let cluster = demo(&[], "cluster");
    assert!(local.contains("Running on the local executor"), "{local}");
    assert!(cluster.contains("Running on the cluster at"), "{cluster}");
    let closed = cluster
        .lines()
        .find(|l| l.starts_with("Closed the local cluster ("))
        .unwrap_or_else(|| panic!("no closing line in:\n{cluster}"));
    assert!(
        !closed.starts_with("Closed the local cluster (0 "),
        "{closed}"
    );
    // The computed figures (not the timings) are the same on both executors.
    let figures = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(" K (") || l.contains("unweighted mean"))
            .map(|l| {
                // drop the "in 0.12 s" part
                let (head, tail) = l.split_once(" in ").unwrap();
                let tail = tail.split_once(" s").unwrap().1;
                format!("{head}{tail}")
            })
            .collect()
    };
    assert_eq!(figures(&local).len(), 2, "{local}");
    assert_eq!(figures(&local), figures(&cluster));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `gridflow scheduler` and `worker` with `--auth-token-file`: a client holding the token
/// (here through GRIDFLOW_AUTH_TOKEN_FILE) computes the local executor's result; one without
/// it, or with another token, is refused with a clear error; a token file others may read
/// is refused at start-up; and a non-loopback host needs a token.
#[test]
fn a_cluster_with_a_token_serves_its_holders_and_refuses_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("gridflow-auth-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret-of-this-test\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = dir.join("other");
    std::fs::write(&other, "another-secret").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A world-readable token file, and a public interface without a token: refused.
    let open = dir.join("open");
    std::fs::write(&open, "x").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [
        vec![
            "scheduler",
            "--port",
            "0",
            "--auth-token-file",
            open.to_str().unwrap(),
        ],
        vec!["scheduler", "--port", "0", "--host", "0.0.0.0"],
    ] {
        let o = gridflow()
            .args(&args)
            .env_remove("GRIDFLOW_AUTH_TOKEN")
            .env_remove("GRIDFLOW_AUTH_TOKEN_FILE")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }

    let file = dir.join("scheduler.json");
    let mut procs = Procs(Vec::new());
    procs.0.push(
        gridflow()
            .args(["scheduler", "--port", "0", "--scheduler-file"])
            .arg(&file)
            .arg("--auth-token-file")
            .arg(&token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let info: Value = serde_json::from_str(&wait_for_file(&file, &mut procs.0[0])).unwrap();
    let address = info["address"].as_str().unwrap().to_owned();
    procs.0.push(
        gridflow()
            .args(["worker", &address, "--nthreads", "1", "--auth-token-file"])
            .arg(&token)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (store, expr) = cases().into_iter().next().unwrap();
    let local = eval(store.as_deref(), &expr, &["--threads", "2"]);
    let run = |token: Option<&Path>| {
        let mut c = gridflow();
        c.env_remove("GRIDFLOW_AUTH_TOKEN");
        match token {
            Some(t) => c.env("GRIDFLOW_AUTH_TOKEN_FILE", t),
            None => c.env_remove("GRIDFLOW_AUTH_TOKEN_FILE"),
        };
        c.args(["eval", "--json", "--scheduler", &address]);
        if let Some(s) = &store {
            c.arg("--store").arg(s);
        }
        c.arg(&expr).output().unwrap()
    };
    let ok = run(Some(&token));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8(ok.stdout).unwrap(), local);
    for bad in [None, Some(other.as_path())] {
        let o = run(bad);
        assert!(!o.status.success(), "{bad:?} was served");
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(
            err.contains("token") || err.contains("auth") || err.contains("refused"),
            "{bad:?}: {err}"
        );
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}
