//! The gateway with its local-process backend on 127.0.0.1, as users meet it: a `gridflow
//! gateway` process, clusters made through its REST API (the library's `Gateway` client and
//! the `gridflow gateway` subcommands), computations by `gridflow eval` through the
//! gateway's one address, users kept apart, a restart, an idle time-out, and 30 users at
//! once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::{Cluster, WorkerState};
use gridflow_gateway::auth::{hex, sha256};
use gridflow_gateway::{ClusterOptions, Gateway, GatewayError};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{gridflow, local_eval, slurm_up, xarray_case};

/// Process ids whose command line mentions `needle` (the test's state directory).
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gateway process on a fresh state directory, its users and their tokens. Dropped, it
/// kills the gateway and any cluster process it left (found by the state directory in
/// their command lines).
struct Fixture {
    dir: PathBuf,
    config: PathBuf,
    gateway: Option<Child>,
    address: String,
    tokens: Vec<(String, String)>,
}

impl Fixture {
    fn new(name: &str, users: &[(&str, bool)], idle_timeout: f64, check: f64) -> Fixture {
        Fixture::with(name, users, idle_timeout, check, json!({}))
    }

    /// Like [`Fixture::new`], with `extra` merged into the configuration (objects key by
    /// key, so `{"bounds": {...}}` adds bounds).
    fn with(
        name: &str,
        users: &[(&str, bool)],
        idle_timeout: f64,
        check: f64,
        extra: Value,
    ) -> Fixture {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut entries = Vec::new();
        let mut tokens = Vec::new();
        for (u, admin) in users {
            let t = gridflow_gateway::auth::generate_token().unwrap();
            entries.push(
                json!({"name": u, "token_sha256": hex(&sha256(t.as_bytes())), "admin": admin}),
            );
            tokens.push(((*u).to_owned(), t));
        }
        let config = dir.join("gateway.json");
        let mut c = json!({
            "address": "127.0.0.1:0",
            "state_dir": dir.join("state"),
            "idle_timeout": idle_timeout,
            "check_interval": check,
            "bounds": {"max_workers": 2, "max_threads": 2, "max_clusters_per_user": 2},
            "users": entries,
        });
        for (k, v) in extra.as_object().unwrap() {
            match (c[k].as_object_mut(), v.as_object()) {
                (Some(base), Some(more)) => base.extend(more.clone()),
                _ => c[k] = v.clone(),
            }
        }
        std::fs::write(&config, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        let mut f = Fixture {
            dir,
            config,
            gateway: None,
            address: String::new(),
            tokens,
        };
        f.start(None);
        f
    }

    /// Starts the gateway (on `address`, else any free port).
    fn start(&mut self, address: Option<&str>) {
        let mut c = gridflow();
        c.args(["gateway", "--config"]).arg(&self.config);
        if let Some(a) = address {
            c.args(["--address", a]);
        }
        let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("gridflow gateway at ")
            .unwrap_or_else(|| panic!("gateway said {line:?}"));
        self.address = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .unwrap_or_else(|| panic!("gateway said {line:?}"))
            .to_owned();
        self.gateway = Some(child);
    }

    /// Kills the gateway process at once (no clean-up of its own).
    fn kill_gateway(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            g.kill().unwrap();
            g.wait().unwrap();
        }
    }

    fn token(&self, user: &str) -> &str {
        &self.tokens.iter().find(|(u, _)| u == user).unwrap().1
    }

    fn client(&self, user: &str) -> Gateway {
        Gateway::new(&self.address, self.token(user)).unwrap()
    }

    fn leftovers(&self) -> Vec<u32> {
        pids_mentioning(&self.dir.join("state").to_string_lossy())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill_gateway();
        for pid in self.leftovers() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// `gridflow eval --json` through a cluster's address with its token.
fn eval_on(address: &str, token: &str, store: Option<&Path>, expr: &str) -> Result<Value, String> {
    let mut c = gridflow();
    c.args(["eval", "--json", "--scheduler", address])
        .env("GRIDFLOW_AUTH_TOKEN", token);
    if let Some(s) = store {
        c.arg("--store").arg(s);
    }
    let out = c.arg(expr).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn assert_close(got: &Value, want: &[f64], what: &str) {
    let got: Vec<f64> = got["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{what}: {g} vs xarray's {w}"
        );
    }
}

fn remote_status(e: &GatewayError) -> u16 {
    match e {
        GatewayError::Remote { status, .. } => *status,
        other => panic!("expected an answer of the gateway, got {other}"),
    }
}

fn tiny() -> ClusterOptions {
    ClusterOptions {
        workers: Some(1),
        threads: Some(1),
        ..ClusterOptions::default()
    }
}

#[test]
fn two_users_compute_apart_and_stop_cleanly() {
    let f = Fixture::new(
        "two-users",
        &[("alice", false), ("bob", false), ("root", true)],
        0.0,
        0.2,
    );
    let (alice, bob, root) = (f.client("alice"), f.client("bob"), f.client("root"));
    let ca = alice.new_cluster(&tiny()).unwrap();
    let cb = bob.new_cluster(&tiny()).unwrap();
    ca.wait_for_workers(1, Duration::from_secs(60)).unwrap();
    cb.wait_for_workers(1, Duration::from_secs(60)).unwrap();
    assert!(
        ca.scheduler_address()
            .starts_with(&format!("gateway://{}/", f.address))
    );

    // The library's client reaches the scheduler through the gateway.
    assert_eq!(ca.client().unwrap().workers().unwrap().len(), 1);

    // Both compute xarray's numbers through the gateway's one address.
    let (store, expr, want) = xarray_case();
    for (c, who) in [(&ca, "alice"), (&cb, "bob")] {
        let tok = c.report().token.clone().unwrap();
        let got = eval_on(&c.scheduler_address(), &tok, Some(&store), &expr).unwrap();
        assert_close(&got, &want, who);
    }

    // Each sees only their own cluster; the administrator sees both.
    let ids = |g: &Gateway| -> Vec<String> {
        g.list_clusters()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(&alice), vec![ca.id().to_owned()]);
    assert_eq!(ids(&bob), vec![cb.id().to_owned()]);
    let mut all = ids(&root);
    all.sort();
    let mut both = vec![ca.id().to_owned(), cb.id().to_owned()];
    both.sort();
    assert_eq!(all, both);
    assert!(
        root.list_clusters()
            .unwrap()
            .iter()
            .all(|r| r.token.is_none())
    );

    // Bob can neither see, scale, stop nor connect to Alice's cluster.
    let e = bob.cluster_report(ca.id()).unwrap_err();
    assert_eq!(remote_status(&e), 404, "{e}");
    assert!(
        e.to_string().contains("no cluster") && e.to_string().contains("bob"),
        "{e}"
    );
    assert_eq!(remote_status(&bob.stop_cluster(ca.id()).unwrap_err()), 404);
    assert_eq!(
        remote_status(&bob.scale_cluster(ca.id(), 2).unwrap_err()),
        404
    );
    let bob_token = cb.report().token.clone().unwrap();
    let e = eval_on(
        &ca.scheduler_address(),
        &bob_token,
        None,
        "da.arange(10, chunks=5).sum()",
    )
    .unwrap_err();
    assert!(e.contains("wrong auth token"), "{e}");
    // Alice's dashboard through the gateway's port (path prefix), with her API token;
    // Bob's token gets nothing.
    let link = ca.dashboard_link().expect("a dashboard link");
    assert!(link.starts_with(&format!(
        "http://{}/clusters/{}/dashboard/",
        f.address,
        ca.id()
    )));
    let get = |token: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let auth = format!("token {token}");
        rt.block_on(gridflow_gateway::http::request(
            "GET",
            &link,
            &[("Authorization", auth.as_str())],
            Vec::new(),
        ))
        .unwrap()
    };
    let (status, page) = get(f.token("alice"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&page));
    assert!(String::from_utf8_lossy(&page).contains("individual-task-stream"));
    assert_eq!(get(f.token("bob")).0, 404);
    assert_eq!(get("wrong").0, 401);
    // The administrator sees Alice's cluster but not its token.
    assert!(root.cluster_report(ca.id()).unwrap().token.is_none());

    // A wrong API token is refused, and so is a missing one.
    let e = Gateway::new(&f.address, "not-a-token")
        .unwrap()
        .list_clusters()
        .unwrap_err();
    assert_eq!(remote_status(&e), 401, "{e}");
    assert!(e.to_string().contains("unknown API token"), "{e}");
    assert_eq!(
        remote_status(&Gateway::new(&f.address, "").unwrap().whoami().unwrap_err()),
        401
    );

    // Options outside the administrator's bounds are refused, naming the bound.
    let e = alice
        .new_cluster(&ClusterOptions {
            workers: Some(3),
            ..ClusterOptions::default()
        })
        .unwrap_err();
    assert_eq!(remote_status(&e), 400);
    assert!(
        e.to_string().contains("max") || e.to_string().contains("bound"),
        "{e}"
    );

    // Scaling shows the new worker, pending until it joins, then running.
    ca.scale(2).unwrap();
    wait_until("two running workers", Duration::from_secs(60), || {
        let s = ca.worker_status().unwrap();
        s.len() == 2 && s.iter().all(|w| w.state == WorkerState::Running)
    });

    // Stopping leaves no process behind; the administrator may stop anyone's cluster.
    let pids: Vec<u32> = ca
        .worker_status()
        .unwrap()
        .iter()
        .map(|w| w.id.parse().unwrap())
        .collect();
    ca.close().unwrap();
    for p in pids {
        assert!(!Path::new(&format!("/proc/{p}")).exists() || pids_mentioning(ca.id()).is_empty());
    }
    assert!(
        pids_mentioning(ca.id()).is_empty(),
        "processes of a stopped cluster are left"
    );
    root.stop_cluster(cb.id()).unwrap();
    assert!(
        f.leftovers().is_empty(),
        "processes left: {:?}",
        f.leftovers()
    );
    assert!(ids(&root).is_empty());
}

#[test]
fn clusters_survive_a_gateway_restart_and_idle_ones_stop() {
    let mut f = Fixture::new("restart", &[("alice", false)], 6.0, 0.2);
    let alice = f.client("alice");
    let c = alice.new_cluster(&tiny()).unwrap();
    c.wait_for_workers(1, Duration::from_secs(60)).unwrap();
    let (tok, address) = (c.report().token.clone().unwrap(), c.scheduler_address());
    let want = eval_on(&address, &tok, None, "da.arange(1000, chunks=100).sum()");
    let want = want.unwrap();

    // A second cluster whose scheduler dies while the gateway is down.
    let c2 = alice.new_cluster(&tiny()).unwrap();
    c2.wait_for_workers(1, Duration::from_secs(60)).unwrap();

    // The gateway dies at once; a new one on the same port and state takes over.
    let port = f.address.clone();
    f.kill_gateway();
    assert!(
        !pids_mentioning(c.id()).is_empty(),
        "the cluster died with the gateway"
    );
    let scheduler = pids_mentioning(c2.id())
        .into_iter()
        .find(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains("scheduler\0")
        })
        .unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", &scheduler.to_string()])
            .status()
            .unwrap()
            .success()
    );
    f.start(Some(&port));
    // The live cluster is taken over; the other is removed, its worker stopped.
    let list = f.client("alice").list_clusters().unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec![c.id()]
    );
    wait_until(
        "the orphaned worker stopped",
        Duration::from_secs(10),
        || pids_mentioning(c2.id()).is_empty(),
    );
    let got = eval_on(&address, &tok, None, "da.arange(1000, chunks=100).sum()").unwrap();
    // The local executor's answer on the same expression is the reference.
    let local = local_eval("da.arange(1000, chunks=100).sum()");
    assert_eq!(got["values"], local["values"]);
    assert_eq!(want["values"], local["values"]);

    // Left idle past its time-out (6 s), the cluster is stopped, processes and all.
    wait_until("the idle cluster stopped", Duration::from_secs(30), || {
        f.client("alice").list_clusters().unwrap().is_empty()
    });
    wait_until("no process left", Duration::from_secs(10), || {
        f.leftovers().is_empty()
    });
}

#[test]
fn thirty_users_at_once() {
    let names: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    let users: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), false)).collect();
    // Checks every second (the default is 2 s): the monitor's work is part of the load.
    let f = Fixture::new("load", &users, 0.0, 1.0);
    let want = local_eval("da.arange(1000, chunks=100).sum()");
    let start = Instant::now();
    let handles: Vec<_> = names
        .iter()
        .map(|u| {
            let g = f.client(u);
            let want = want["values"].clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut lat = Vec::new();
                let c = g.new_cluster(&tiny()).map_err(|e| e.to_string())?;
                c.wait_for_workers(1, Duration::from_secs(120))
                    .map_err(|e| e.to_string())?;
                for _ in 0..10 {
                    let t = Instant::now();
                    let l = g.list_clusters().map_err(|e| e.to_string())?;
                    lat.push(t.elapsed());
                    if l.len() != 1 {
                        return Err(format!("list shows {} clusters", l.len()));
                    }
                }
                let tok = c.report().token.clone().unwrap_or_default();
                let got = eval_on(
                    &c.scheduler_address(),
                    &tok,
                    None,
                    "da.arange(1000, chunks=100).sum()",
                )?;
                if got["values"] != want {
                    return Err(format!("computed {got} instead of {want}"));
                }
                c.close().map_err(|e| e.to_string())?;
                Ok(lat)
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    let mut failures = Vec::new();
    for (h, u) in handles.into_iter().zip(&names) {
        match h.join().unwrap() {
            Ok(l) => lat.extend(l),
            Err(e) => failures.push(format!("{u}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    eprintln!(
        "30 users: create, compute, stop in {:.1} s; list latency over {} calls: p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        start.elapsed().as_secs_f64(),
        lat.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
    // The 100 ms target is a benchmark figure (docs/benchmarks.md); this only catches a
    // gateway that blocks listing behind cluster start-ups.
    assert!(
        pct(0.99) < Duration::from_secs(2),
        "list p99 {:?}",
        pct(0.99)
    );
    wait_until("no process left", Duration::from_secs(10), || {
        f.leftovers().is_empty()
    });
}

#[test]
fn the_gateway_subcommands() {
    let f = Fixture::new("cli", &[("carol", false)], 0.0, 0.2);
    let run = |args: &[&str]| -> Value {
        let out = gridflow()
            .arg("gateway")
            .args(args)
            .arg("--json")
            .env("GRIDFLOW_GATEWAY_ADDRESS", &f.address)
            .env("GRIDFLOW_GATEWAY_TOKEN", f.token("carol"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let made = run(&["new", "--workers", "1", "--threads", "2", "--wait"]);
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["spec"]["threads"], 2);
    assert_eq!(made["workers"][0]["state"]["state"], "running");
    assert!(made["token"].as_str().is_some_and(|t| t.len() == 64));
    let list = run(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("token").is_none(), "a list shows no token");
    let scaled = run(&["scale", &id, "2"]);
    assert_eq!(scaled["workers"].as_array().unwrap().len(), 2);
    let status = run(&["status", &id]);
    assert_eq!(status["id"], id.as_str());
    // A worker that dies is shown failed, with how it ended, not silently dropped.
    let pid = status["workers"][1]["id"].as_str().unwrap().to_owned();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut reason = String::new();
    wait_until(
        "the dead worker shown as failed",
        Duration::from_secs(30),
        || {
            let s = run(&["status", &id]);
            let w = s["workers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["id"] == pid.as_str())
                .cloned()
                .unwrap();
            reason = w["state"]["reason"].as_str().unwrap_or("").to_owned();
            w["state"]["state"] == "failed"
        },
    );
    assert!(
        reason.contains("SIGKILL") || reason.contains("signal"),
        "{reason}"
    );
    run(&["stop", &id]);
    assert!(run(&["list"]).as_array().unwrap().is_empty());
    // A wrong token: a clear error and a failing exit status.
    let out = gridflow()
        .args(["gateway", "list"])
        .env("GRIDFLOW_GATEWAY_ADDRESS", &f.address)
        .env("GRIDFLOW_GATEWAY_TOKEN", "nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("401") && e.contains("unknown API token"), "{e}");
    assert!(f.leftovers().is_empty());
}

#[test]
fn adaptive_scaling_follows_pending_work() {
    let f = Fixture::new("adapt", &[("dan", false)], 0.0, 0.2);
    let g = f.client("dan");
    let c = g.new_cluster(&tiny()).unwrap();
    c.wait_for_workers(1, Duration::from_secs(60)).unwrap();
    c.adapt(1, 2).unwrap();
    let running = |c: &gridflow_gateway::GatewayCluster| {
        c.worker_status()
            .unwrap()
            .iter()
            .filter(|w| w.state == WorkerState::Running)
            .count()
    };
    // Many tasks pending on one single-threaded worker: the gateway adds the second.
    let (address, token) = (c.scheduler_address(), c.report().token.clone().unwrap());
    let work = std::thread::spawn(move || {
        eval_on(
            &address,
            &token,
            None,
            "da.ones((8000, 8000), chunks=(150, 150)).sum()",
        )
    });
    let mut most = 0;
    while !work.is_finished() {
        most = most.max(running(&c));
        std::thread::sleep(Duration::from_millis(50));
    }
    work.join().unwrap().unwrap();
    assert_eq!(
        most, 2,
        "the cluster did not grow while 2,900 tasks were pending"
    );
    // Nothing pending: back to the minimum.
    wait_until("back to one worker", Duration::from_secs(30), || {
        c.worker_status().unwrap().len() == 1
    });
    c.close().unwrap();
    wait_until("no process left", Duration::from_secs(10), || {
        f.leftovers().is_empty()
    });
}

/// The jobs `squeue` lists with these ids (any state but ended).
fn queued_jobs(ids: &[String]) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--format=%i %T"])
        .arg(format!("--jobs={}", ids.join(",")))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("COMPLETED") && !l.contains("CANCELLED"))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

#[test]
fn a_slurm_backed_cluster_computes_through_the_gateway_and_leaves_no_job() {
    if !slurm_up() {
        return;
    }
    let partition =
        std::env::var("GRIDFLOW_TEST_SLURM_PARTITION").unwrap_or_else(|_| "debug".into());
    let f = Fixture::with(
        "slurm",
        &[("alice", false), ("bob", false)],
        0.0,
        0.5,
        json!({
            "backend": {"kind": "slurm", "partition": partition, "walltime": "00:20:00"},
            "bounds": {"backend_options": {"partition": [], "walltime": []}},
        }),
    );
    let alice = f.client("alice");
    let c = alice
        .new_cluster(&ClusterOptions {
            workers: Some(2),
            threads: Some(1),
            ..ClusterOptions::default()
        })
        .unwrap();
    // Each worker is a Slurm job: its id is the job's, its state what Slurm says.
    let first = c.worker_status().unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    let jobs: Vec<String> = first.iter().map(|w| w.id.clone()).collect();
    for w in &first {
        assert!(w.id.chars().all(|ch| ch.is_ascii_digit()), "{w:?}");
        assert_eq!(w.name, format!("slurm-{}-0", w.id));
        assert!(
            matches!(
                w.state,
                WorkerState::Queued { .. } | WorkerState::Starting | WorkerState::Running
            ),
            "{w:?}"
        );
    }
    assert_eq!(queued_jobs(&jobs).len(), 2, "squeue lists both jobs");
    c.wait_for_workers(2, Duration::from_secs(120)).unwrap();
    assert!(
        c.worker_status()
            .unwrap()
            .iter()
            .all(|w| w.state == WorkerState::Running)
    );

    // A computation through the gateway's one address equals xarray's.
    let (store, expr, want) = xarray_case();
    let token = c.report().token.clone().unwrap();
    let got = eval_on(&c.scheduler_address(), &token, Some(&store), &expr).unwrap();
    assert_close(&got, &want, "slurm cluster through the gateway");

    // A restarted gateway finds the jobs again from its database.
    let mut f = f;
    f.kill_gateway();
    f.start(None);
    let c = f.client("alice").connect(c.id()).unwrap();
    let again = c.worker_status().unwrap();
    assert_eq!(
        again.iter().map(|w| w.id.clone()).collect::<Vec<_>>(),
        jobs,
        "{again:?}"
    );
    assert!(
        again.iter().all(|w| w.state == WorkerState::Running),
        "{again:?}"
    );
    let got = eval_on(&c.scheduler_address(), &token, Some(&store), &expr).unwrap();
    assert_close(&got, &want, "slurm cluster after a gateway restart");

    // Scaling down retires the newest worker and its job leaves the queue.
    c.scale(1).unwrap();
    let left = c.worker_status().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].id, jobs[0]);
    wait_until(
        "the retired worker's job to end",
        Duration::from_secs(30),
        || queued_jobs(&jobs[1..]).is_empty(),
    );

    // A partition Slurm does not know: sbatch's own message comes back, nothing is left.
    let e = f
        .client("bob")
        .new_cluster(&ClusterOptions {
            workers: Some(1),
            threads: Some(1),
            backend: [("partition".to_owned(), "nosuchpartition".to_owned())].into(),
            ..ClusterOptions::default()
        })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sbatch") && e.to_lowercase().contains("partition"),
        "{e}"
    );
    assert!(f.client("bob").list_clusters().unwrap().is_empty());

    // Stopping cancels every job and ends every process.
    c.close().unwrap();
    wait_until(
        "every job to leave the queue",
        Duration::from_secs(30),
        || queued_jobs(&jobs).is_empty(),
    );
    wait_until("no cluster process left", Duration::from_secs(10), || {
        f.leftovers().is_empty()
    });
}

#[test]
fn ssh_backed_workers_compute_survive_a_restart_and_are_cleaned_up() {
    let (Ok(ssh_config), Ok(host)) = (
        std::env::var("GRIDFLOW_TEST_SSH_CONFIG"),
        std::env::var("GRIDFLOW_TEST_SSH_HOST"),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no test sshd: run scripts/sshd-setup.sh; source target/sshd/env"
        );
        eprintln!("skipped: no test sshd (run scripts/sshd-setup.sh; source target/sshd/env)");
        return;
    };
    let remote_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gateway-ssh-remote");
    let _ = std::fs::remove_dir_all(&remote_dir);
    let mut f = Fixture::with(
        "ssh",
        &[("alice", false)],
        0.0,
        0.3,
        json!({"backend": {
            "kind": "ssh",
            "hosts": [host],
            "ssh_options": ["-F", ssh_config],
            "remote_command": [env!("CARGO_BIN_EXE_gridflow")],
            "remote_dir": remote_dir,
        }}),
    );
    let c = f
        .client("alice")
        .new_cluster(&ClusterOptions {
            workers: Some(2),
            threads: Some(1),
            ..ClusterOptions::default()
        })
        .unwrap();
    let id = c.id().to_owned();
    c.wait_for_workers(2, Duration::from_secs(60)).unwrap();
    let status = c.worker_status().unwrap();
    // The handle is host:pid, the process the worker's name is on.
    for w in &status {
        let pid: u32 = w.id.rsplit(':').next().unwrap().parse().unwrap();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(String::from_utf8_lossy(&cmd).contains(&w.name), "{w:?}");
    }
    // The token went over standard input into a file only its owner reads.
    let token_file = remote_dir.join(&id).join("token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // The worker processes (not the gateway's `ssh` checks, which name them too).
    let workers_of = || -> Vec<u32> {
        pids_mentioning(&format!("{id}-w"))
            .into_iter()
            .filter(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                cmd.split(|&b| b == 0).nth(1) == Some(b"worker".as_slice())
            })
            .collect()
    };
    assert_eq!(workers_of().len(), 2);

    let (store, expr, want) = xarray_case();
    let token = c.report().token.clone().unwrap();
    let got = eval_on(&c.scheduler_address(), &token, Some(&store), &expr).unwrap();
    assert_close(&got, &want, "ssh cluster through the gateway");

    // The workers were started detached: they outlive the gateway and a new one takes
    // them over.
    f.kill_gateway();
    assert_eq!(workers_of().len(), 2);
    f.start(None);
    let c = f.client("alice").connect(&id).unwrap();
    let got = eval_on(&c.scheduler_address(), &token, Some(&store), &expr).unwrap();
    assert_close(&got, &want, "after a gateway restart");

    // A worker killed behind the gateway's back is reported failed, with its host.
    let victim = c.worker_status().unwrap()[1].clone();
    let pid = victim.id.rsplit(':').next().unwrap().to_owned();
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    wait_until(
        "the killed worker reported failed",
        Duration::from_secs(20),
        || {
            c.worker_status().unwrap().iter().any(|w| {
                w.name == victim.name
                    && matches!(&w.state, WorkerState::Failed { reason } if reason.contains(&host))
            })
        },
    );

    // Stopping ends the remote processes and removes the remote directory.
    c.close().unwrap();
    wait_until("no remote worker left", Duration::from_secs(15), || {
        workers_of().is_empty()
    });
    assert!(!remote_dir.join(&id).exists());
    wait_until("no cluster process left", Duration::from_secs(10), || {
        f.leftovers().is_empty()
    });
}

/// `kubernetes-validate` from `scripts/k8s-validate-setup.sh` (required when CI=true).
fn k8s_validator() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/k8s-validate-venv/bin/kubernetes-validate");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no kubernetes-validate at {}: run scripts/k8s-validate-setup.sh",
        p.display()
    );
    eprintln!("skipped: no kubernetes-validate (run scripts/k8s-validate-setup.sh)");
    None
}

/// This machine's address on its default route (no packet is sent: a UDP socket is only
/// connected to learn which local address it would use).
fn host_ip() -> String {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.1:9").unwrap();
    s.local_addr().unwrap().ip().to_string()
}

/// A stand-in `kubectl` (there is no live Kubernetes in CI): logs each call, keeps what
/// `apply` is given, and answers `get pods` with every applied pod unschedulable, as a
/// full cluster answers.
const FAKE_KUBECTL: &str = r#"#!/usr/bin/env python3
import json, os, sys
d = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(d, "calls"), "a") as f:
    f.write(" ".join(args) + "\n")
if "apply" in args:
    doc = sys.stdin.read()
    n = len([x for x in os.listdir(d) if x.startswith("applied-")])
    open(os.path.join(d, f"applied-{n}.json"), "w").write(doc)
elif args[-4:-2] == ["get", "pods"] or "get" in args:
    items = []
    for x in sorted(os.listdir(d)):
        if x.startswith("applied-"):
            for it in json.load(open(os.path.join(d, x)))["items"]:
                if it["kind"] == "Pod":
                    items.append({"metadata": it["metadata"], "status": {"phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient cpu."}]}})
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
"#;

#[test]
fn kubernetes_backed_workers_are_valid_pods_and_report_why_they_wait() {
    let Some(validate) = k8s_validator() else {
        return;
    };
    let kdir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gateway-kubectl");
    let _ = std::fs::remove_dir_all(&kdir);
    std::fs::create_dir_all(&kdir).unwrap();
    let kubectl = kdir.join("kubectl");
    std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = Fixture::with(
        "kubernetes",
        &[("alice", false)],
        0.0,
        0.3,
        // Schedulers listen where pods would reach them: this machine's own address.
        json!({"scheduler_host": host_ip(), "backend": {
            "kind": "kubernetes",
            "kubectl": kubectl,
            "namespace": "science",
            "image": "ghcr.io/example/gridflow:1",
        }}),
    );
    let c = f
        .client("alice")
        .new_cluster(&ClusterOptions {
            workers: Some(2),
            threads: Some(2),
            memory: Some(2 << 30),
            ..ClusterOptions::default()
        })
        .unwrap();
    let id = c.id().to_owned();
    // Kubernetes' reason reaches the user.
    wait_until(
        "both pods reported unschedulable",
        Duration::from_secs(10),
        || {
            let s = c.worker_status().unwrap();
            s.len() == 2
                && s.iter().all(|w| {
                    matches!(&w.state, WorkerState::Queued { reason }
                    if reason.contains("Insufficient cpu"))
                })
        },
    );
    let e = c
        .wait_for_workers(1, Duration::from_millis(500))
        .unwrap_err();
    assert!(e.to_string().contains("Insufficient cpu"), "{e}");

    // What was applied: a Secret with the token and a pod per worker, valid for
    // Kubernetes 1.37, with the token only in the Secret.
    let token = c.report().token.clone().unwrap();
    let mut docs = Vec::new();
    for i in 0..2 {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(kdir.join(format!("applied-{i}.json"))).unwrap())
                .unwrap();
        for item in doc["items"].as_array().unwrap() {
            let text = item.to_string();
            match item["kind"].as_str().unwrap() {
                "Secret" => assert_eq!(item["stringData"]["token"], json!(token)),
                "Pod" => {
                    assert!(!text.contains(&token), "the token is in a pod: {text}");
                    assert_eq!(item["metadata"]["labels"]["gridflow.io/cluster"], json!(id));
                    let cmd = item["spec"]["containers"][0]["command"].to_string();
                    assert!(
                        cmd.contains("--memory-limit") && cmd.contains("--nthreads"),
                        "{cmd}"
                    );
                }
                other => panic!("unexpected {other}"),
            }
            docs.push(serde_json::to_string_pretty(item).unwrap());
        }
    }
    let file = kdir.join("applied.yaml");
    std::fs::write(&file, docs.join("\n---\n")).unwrap();
    let out = Command::new(&validate)
        .args(["--strict", "-k", "1.37.0"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed for resource ").count(), 4, "{text}");

    // Scaling down deletes the newest pod; stopping deletes the cluster's pods and Secret.
    c.scale(1).unwrap();
    c.close().unwrap();
    let calls = std::fs::read_to_string(kdir.join("calls")).unwrap();
    assert!(
        calls.contains(&format!(
            "delete pod --wait=false --ignore-not-found gridflow-{id}-w1"
        )),
        "{calls}"
    );
    assert!(
        calls.contains(&format!("delete pods,secrets -l gridflow.io/cluster={id}")),
        "{calls}"
    );
    assert!(
        calls.lines().all(|l| l.contains("--namespace=science")),
        "{calls}"
    );
    // The pods were told the scheduler's address on this machine's network.
    let pod: Value =
        serde_json::from_slice(&std::fs::read(kdir.join("applied-0.json")).unwrap()).unwrap();
    let cmd = pod["items"][1]["spec"]["containers"][0]["command"].to_string();
    assert!(cmd.contains(&format!("tcp://{}:", host_ip())), "{cmd}");
    wait_until("no cluster process left", Duration::from_secs(10), || {
        f.leftovers().is_empty()
    });
}

#[test]
fn a_worker_that_ends_after_a_while_is_replaced_and_a_young_one_is_not() {
    let f = Fixture::with(
        "replace",
        &[("alice", false)],
        0.0,
        0.2,
        json!({"replace_workers_after": 1.0}),
    );
    let c = f
        .client("alice")
        .new_cluster(&ClusterOptions {
            workers: Some(2),
            threads: Some(1),
            ..ClusterOptions::default()
        })
        .unwrap();
    c.wait_for_workers(2, Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let kill = |w: &gridflow_distributed::WorkerStatus| {
        Command::new("kill").args(["-9", &w.id]).status().unwrap();
    };
    let old = c.worker_status().unwrap()[0].clone();
    kill(&old);
    // The old worker is reported failed and a new one takes its place.
    wait_until("a replacement running", Duration::from_secs(30), || {
        let s = c.worker_status().unwrap();
        let running = s.iter().filter(|w| w.state == WorkerState::Running).count();
        let failed = s
            .iter()
            .any(|w| w.name == old.name && matches!(w.state, WorkerState::Failed { .. }));
        running == 2 && failed && s.len() == 3
    });
    // The replacement dies young: it is left failed, not restarted.
    let young = c
        .worker_status()
        .unwrap()
        .into_iter()
        .find(|w| w.name != old.name && w.state == WorkerState::Running && w.name.ends_with("-w2"))
        .unwrap();
    kill(&young);
    wait_until(
        "the young worker reported failed",
        Duration::from_secs(20),
        || {
            c.worker_status()
                .unwrap()
                .iter()
                .any(|w| w.name == young.name && matches!(w.state, WorkerState::Failed { .. }))
        },
    );
    std::thread::sleep(Duration::from_millis(600));
    let s = c.worker_status().unwrap();
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(
        s.iter().filter(|w| w.state == WorkerState::Running).count(),
        1,
        "{s:?}"
    );
    c.close().unwrap();
}

/// A CA and a certificate for 127.0.0.1 signed by it (openssl), in `dir`: `ca.pem`,
/// `gateway.pem`, `gateway.key`.
fn make_gateway_certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=gridflow test gateway CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "gateway.key",
        "-out",
        "gateway.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "gateway.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "gateway.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn a_tls_gateway_serves_the_api_and_clusters_over_tls_only() {
    let certs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gateway-tls-certs");
    let _ = std::fs::remove_dir_all(&certs);
    make_gateway_certs(&certs);
    let ca = certs.join("ca.pem");
    let f = Fixture::with(
        "tls",
        &[("alice", false)],
        0.0,
        0.3,
        json!({"tls_cert": certs.join("gateway.pem"), "tls_key": certs.join("gateway.key")}),
    );
    let url = format!("https://{}", f.address);
    let alice = Gateway::with_ca(&url, f.token("alice"), Some(&ca)).unwrap();
    assert_eq!(alice.whoami().unwrap().name, "alice");

    // Plain HTTP to the TLS port, and TLS without trusting the CA, both fail clearly.
    let plain = Gateway::new(&f.address, f.token("alice")).unwrap();
    assert!(plain.whoami().is_err());
    let untrusting = Gateway::with_ca(&url, f.token("alice"), None).unwrap();
    let e = untrusting.whoami().unwrap_err().to_string();
    assert!(
        e.contains("TLS") && e.to_lowercase().contains("certificate"),
        "{e}"
    );

    let c = alice.new_cluster(&tiny()).unwrap();
    assert!(
        c.scheduler_address()
            .starts_with(&format!("gateway+tls://{}/", f.address)),
        "{}",
        c.scheduler_address()
    );
    assert!(c.dashboard_link().unwrap().starts_with("https://"));
    c.wait_for_workers(1, Duration::from_secs(60)).unwrap();
    // The library's client: TLS to the gateway, then the cluster's token inside it.
    assert_eq!(c.client().unwrap().workers().unwrap().len(), 1);

    // The command line: the gateway's CA and the cluster's token from the environment,
    // or from options.
    let (store, expr, want) = xarray_case();
    let token = c.report().token.clone().unwrap();
    let token_file = certs.join("cluster-token");
    std::fs::write(&token_file, &token).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    for by_options in [false, true] {
        let mut cmd = gridflow();
        cmd.args(["eval", "--json", "--scheduler", &c.scheduler_address()])
            .arg("--store")
            .arg(&store);
        if by_options {
            cmd.arg("--auth-token-file")
                .arg(&token_file)
                .arg("--gateway-ca")
                .arg(&ca);
        } else {
            cmd.env("GRIDFLOW_AUTH_TOKEN", &token)
                .env("GRIDFLOW_GATEWAY_CA", &ca);
        }
        let out = cmd.arg(&expr).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_close(
            &serde_json::from_slice(&out.stdout).unwrap(),
            &want,
            "through a TLS gateway",
        );
    }
    // Without the CA the gateway's certificate is refused, naming the fix.
    let e = eval_on(&c.scheduler_address(), &token, Some(&store), &expr).unwrap_err();
    assert!(e.contains("GRIDFLOW_GATEWAY_CA"), "{e}");
    c.close().unwrap();
}
