//! The dashboard of a LocalCluster in a real headless browser (Debian's chromium driven by
//! playwright-core, installed by `scripts/browser-setup.sh`), its Prometheus `/metrics`
//! parsed strictly, and its JSON API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::testing::ResilOp;
use gridflow_distributed::{LocalCluster, LocalClusterOptions};
use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::Executor;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn cluster() -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        args: vec!["resil".into(), "worker".into()],
        dashboard_address: Some(":0".into()),
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

/// `n` leaves sleeping `ms` each (group `load`), summed 30 at a time (`combine`), then
/// into one (`total`): the value is n·(n+1)/2.
fn graph(n: u32, ms: u64) -> (Graph<ResilOp>, Key) {
    let mut g = Graph::new();
    let slow = |ms, add, bytes| ResilOp::Slow { ms, add, bytes };
    let leaves: Vec<Key> = (0..n)
        .map(|i| {
            let k = Key::new("load-5e1f", &[i]);
            g.insert(k.clone(), Task::new(slow(ms, u64::from(i) + 1, 64), vec![]));
            k
        })
        .collect();
    let mids: Vec<Key> = leaves
        .chunks(30)
        .enumerate()
        .map(|(j, c)| {
            let k = Key::new("combine-77aa", &[j as u32]);
            g.insert(k.clone(), Task::new(slow(0, 0, 8), c.to_vec()));
            k
        })
        .collect();
    let out = Key::new("total-0c3d", &[]);
    g.insert(out.clone(), Task::new(slow(0, 0, 8), mids));
    (g, out)
}

/// GET `url` (http://host:port/path): (status, body).
fn get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Parses Prometheus' text format (0.0.4) strictly: every sample belongs to a family whose
/// `# TYPE` came first, names and labels are well formed, values are numbers, no series
/// repeats. Returns each series (`name{labels}`) and its value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for (ln, line) in text.lines().enumerate() {
        let ln = ln + 1;
        if let Some(rest) = line.strip_prefix("# ") {
            let mut it = rest.splitn(3, ' ');
            let (kind, name, arg) = (it.next().unwrap(), it.next().unwrap(), it.next());
            assert!(name_ok(name), "line {ln}: bad metric name {name:?}");
            match kind {
                "HELP" => assert!(arg.is_some_and(|a| !a.is_empty()), "line {ln}: empty HELP"),
                "TYPE" => {
                    let t = arg.unwrap();
                    assert!(
                        ["counter", "gauge", "summary", "histogram", "untyped"].contains(&t),
                        "line {ln}: bad type {t:?}"
                    );
                    assert!(
                        types.insert(name.into(), t.into()).is_none(),
                        "line {ln}: second TYPE for {name}"
                    );
                }
                _ => panic!("line {ln}: unknown comment {line:?}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "line {ln}: empty line");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("line {ln}: value {v:?} is not a number")),
        };
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "line {ln}: bad metric name {name:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("line {ln}: bad labels {labels:?}"));
            let mut rest = inner;
            while !rest.is_empty() {
                let (k, v) = rest
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("line {ln}: bad label in {inner:?}"));
                assert!(
                    name_ok(k) && !k.contains(':'),
                    "line {ln}: bad label name {k:?}"
                );
                let mut end = None;
                let mut esc = false;
                for (i, c) in v.char_indices() {
                    match (esc, c) {
                        (true, '\\' | '"' | 'n') => esc = false,
                        (true, _) => panic!("line {ln}: bad escape in {v:?}"),
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.unwrap_or_else(|| panic!("line {ln}: unterminated label value"));
                rest = &v[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let family = types.contains_key(name).then_some(name).or_else(|| {
            ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| {
                    matches!(
                        types.get(*b).map(String::as_str),
                        Some("summary" | "histogram")
                    )
                })
        });
        assert!(
            family.is_some(),
            "line {ln}: sample {name} has no TYPE before it"
        );
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "line {ln}: series {series} repeats"
        );
    }
    out
}

fn base(c: &LocalCluster) -> String {
    let link = c.dashboard_link().expect("the cluster serves a dashboard");
    link.strip_suffix("/status").unwrap().to_owned()
}

#[test]
fn metrics_parse_and_counters_move_during_a_computation() {
    let c = cluster();
    let base = base(&c);
    let before = parse_prometheus(&get(&format!("{base}/metrics")).1);
    assert_eq!(before["gridflow_workers"], 2.0);
    assert_eq!(before["gridflow_threads"], 2.0);
    assert_eq!(before["gridflow_tasks_completed_total"], 0.0);
    let client = c.client().unwrap();
    let (g, out) = graph(600, 2);
    let run = std::thread::spawn(move || client.run(&g, &[out]).unwrap());
    // Sampled while it runs: the completed counter grows and tasks are in flight.
    let mut mid = None;
    let start = Instant::now();
    while mid.is_none() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(150));
        let m = parse_prometheus(&get(&format!("{base}/metrics")).1);
        let done = m["gridflow_tasks_completed_total"];
        if done > 0.0 && done < 600.0 {
            mid = Some(m);
        }
    }
    let mid = mid.expect("a sample taken while the computation ran");
    let v = run.join().unwrap();
    assert_eq!(gridflow_runtime::conformance::num(&v[0]), 600 * 601 / 2);
    std::thread::sleep(Duration::from_millis(700)); // the next publication
    let after = parse_prometheus(&get(&format!("{base}/metrics")).1);
    let n = 600.0 + 20.0 + 1.0;
    assert!(mid["gridflow_tasks_completed_total"] > before["gridflow_tasks_completed_total"]);
    assert_eq!(after["gridflow_tasks_completed_total"], n, "{after:?}");
    assert!(
        after["gridflow_scheduler_loop_seconds_count"]
            > mid["gridflow_scheduler_loop_seconds_count"]
    );
    assert!(
        after["gridflow_transfer_bytes_total"] > 0.0,
        "the tree reads across workers"
    );
    assert_eq!(after["gridflow_jobs_total"], 1.0);
    for s in ["waiting", "queued", "processing", "memory"] {
        assert_eq!(
            after[&format!("gridflow_tasks{{state=\"{s}\"}}")],
            0.0,
            "{s}"
        );
    }
    // The JSON API: groups by key prefix with every task done, edges load → combine → total.
    let groups: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/task_groups")).1).unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["load", "combine", "total"]);
    let totals: Vec<(u64, u64)> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["total"].as_u64().unwrap(), g["done"].as_u64().unwrap()))
        .collect();
    assert_eq!(totals, [(600, 600), (20, 20), (1, 1)]);
    assert_eq!(groups["edges"], serde_json::json!([[0, 1], [1, 2]]));
    // Workers report their CPU use with their heartbeats.
    let workers: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/workers")).1).unwrap();
    for w in workers.as_array().unwrap() {
        let cpu = w["cpu"].as_f64().unwrap_or_else(|| panic!("no cpu in {w}"));
        assert!((0.0..=400.0).contains(&cpu), "{w}");
    }
    let stream: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/v1/task_stream?limit=50")).1).unwrap();
    assert_eq!(stream["events"].as_array().unwrap().len(), 50);
    assert_eq!(get(&format!("{base}/api/v1/task_stream?since=x")).0, 400);
    assert_eq!(get(&format!("{base}/no-such-page")).0, 404);
}

fn browser() -> Option<(PathBuf, PathBuf)> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let dir = std::env::var_os("GRIDFLOW_BROWSER_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser"),
        PathBuf::from,
    );
    let chromium = std::env::var_os("GRIDFLOW_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<String> = [
        (!node_ok).then(|| "node".to_owned()),
        (!chromium.exists()).then(|| format!("chromium ({})", chromium.display())),
        (!dir.join("node_modules/playwright-core").exists())
            .then(|| format!("playwright-core (in {})", dir.display())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some((dir, chromium));
    }
    let msg = format!(
        "the dashboard browser test needs {}: run scripts/browser-setup.sh",
        missing.join(", ")
    );
    assert!(!ci, "{msg}");
    eprintln!("skipped: {msg}");
    None
}

#[test]
fn the_dashboard_fills_up_and_completes_in_a_headless_browser() {
    let Some((dir, chromium)) = browser() else {
        return;
    };
    let c = cluster();
    let base = base(&c);
    let out =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/dashboard");
    let _ = std::fs::remove_dir_all(&out);
    let names: BTreeSet<String> = c
        .client()
        .unwrap()
        .workers()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    let n = 3000u32;
    let tasks = n + n.div_ceil(30) + 1;
    let mut node = std::process::Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/check.js"))
        .arg(&base)
        .arg(&out)
        .arg(names.iter().cloned().collect::<Vec<_>>().join(","))
        .arg(tasks.to_string())
        .env("NODE_PATH", dir.join("node_modules"))
        .env("GRIDFLOW_CHROMIUM", &chromium)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let first = lines.next().map(Result::unwrap);
    assert_eq!(
        first.as_deref(),
        Some("ready"),
        "the browser did not open the dashboard"
    );
    let client = c.client().unwrap();
    let (g, key) = graph(n, 2);
    let v = client.run(&g, &[key]).unwrap();
    assert_eq!(
        gridflow_runtime::conformance::num(&v[0]),
        u64::from(n) * u64::from(n + 1) / 2
    );
    let report = lines.next().map(Result::unwrap).unwrap_or_default();
    let status = node.wait().unwrap();
    assert!(
        status.success(),
        "the browser check failed (see its stderr above)"
    );
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    eprintln!("browser saw: {r}");
    let (mid, end) = (&r["mid"], &r["end"]);
    assert!(mid["done"].as_u64().unwrap() < mid["total"].as_u64().unwrap());
    assert!(mid["bars"].as_u64().unwrap() > 0);
    assert_eq!(end["done"].as_u64(), Some(u64::from(tasks)));
    assert_eq!(end["total"].as_u64(), Some(u64::from(tasks)));
    assert_eq!(
        end["groups"],
        serde_json::json!(["load", "combine", "total"])
    );
    let listed: BTreeSet<String> = end["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, names);
    let panes = r["panes"].as_object().unwrap();
    assert!(panes.len() >= 5, "{panes:?}");
    for (name, p) in panes {
        let file = out.join(p["file"].as_str().unwrap());
        let len = std::fs::metadata(&file).map_or(0, |m| m.len());
        assert!(len > 1000, "{name}: screenshot {} is empty", file.display());
    }
    for f in ["status-running.png", "status-done.png"] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 1000, "{f}");
    }
}

/// The local executor feeds the same snapshot through its observer: every task is counted
/// in its group and drawn once on the thread that ran it.
#[test]
fn the_local_executor_feeds_the_same_dashboard() {
    use gridflow_distributed::dashboard::{Hub, local::LocalObserver};
    use gridflow_runtime::LocalExecutor;
    use std::sync::Arc;
    let hub = Arc::new(Hub::new());
    let observer = Arc::new(LocalObserver::new(hub.clone()));
    let exec = LocalExecutor::threads(2).with_observer(observer);
    let (g, out) = graph(300, 0);
    let v = exec.run(&g, &[out]).unwrap();
    assert_eq!(gridflow_runtime::conformance::num(&v[0]), 300 * 301 / 2);
    let s = hub.snapshot();
    assert_eq!(s.source, "local");
    let got: Vec<(&str, u64, u64)> = s
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.total, g.done))
        .collect();
    assert_eq!(
        got,
        [("load", 300, 300), ("combine", 10, 10), ("total", 1, 1)]
    );
    assert_eq!(s.workers.len(), 1);
    assert_eq!(s.workers[0].nthreads, 2);
    assert_eq!(s.counters.tasks_completed_total, 311);
    let (events, _) = hub.events_since(0, usize::MAX);
    assert_eq!(events.len(), 311);
    assert!(events.iter().all(|e| e.thread < 2 && e.start <= e.stop));
    // Bars on one thread never overlap.
    for t in 0..2 {
        let mut bars: Vec<(f64, f64)> = events
            .iter()
            .filter(|e| e.thread == t)
            .map(|e| (e.start, e.stop))
            .collect();
        bars.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(bars.windows(2).all(|w| w[0].1 <= w[1].0), "thread {t}");
    }
}

#[test]
fn cpu_use_is_measured() {
    let mut m = gridflow_distributed::machine::CpuMeter::default();
    assert_eq!(m.sample(), 0.0);
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(300) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    let busy = m.sample();
    // Loose bounds: the machine may be shared (a busy thread gets a share of a core).
    assert!(
        busy > 5.0 && busy < 150.0,
        "a busy thread used {busy}% of a core"
    );
    assert!(gridflow_distributed::machine::process_cpu_seconds().unwrap() > 0.0);
}

#[test]
fn a_client_connected_by_address_learns_the_dashboard_link() {
    use gridflow_distributed::Client;
    use gridflow_distributed::scheduler::{SchedulerOptions, bind, spawn_with};
    // A dashboard on every interface: each client gets the host it connected with.
    let listener = bind("127.0.0.1", 0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = spawn_with(
        listener,
        SchedulerOptions {
            dashboard_address: Some("0.0.0.0:0".into()),
            ..SchedulerOptions::default()
        },
    )
    .unwrap();
    let own = s.dashboard_link().unwrap();
    let dport = own
        .strip_suffix("/status")
        .and_then(|a| a.rsplit_once(':'))
        .map(|(_, p)| p.to_owned())
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        for scheme in ["tcp://", ""] {
            let c = Client::connect(&format!("{scheme}{host}:{port}")).unwrap();
            let link = c
                .dashboard_link()
                .expect("the scheduler told its dashboard");
            assert_eq!(link, format!("http://{host}:{dport}/status"));
            let (status, body) = get(&link);
            assert_eq!(status, 200, "{link}: {body}");
        }
    }
    drop(s);

    // A LocalCluster's dashboard (127.0.0.1): a client by address sees the cluster's link.
    let c = cluster();
    let by_address = Client::connect(&c.address()).unwrap();
    assert_eq!(by_address.dashboard_link(), c.dashboard_link());
    assert!(c.dashboard_link().is_some());
    drop(by_address);
    drop(c);

    // No dashboard: none reported.
    let listener = bind("127.0.0.1", 0).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let _s = spawn_with(listener, SchedulerOptions::default()).unwrap();
    assert_eq!(Client::connect(&address).unwrap().dashboard_link(), None);
}
