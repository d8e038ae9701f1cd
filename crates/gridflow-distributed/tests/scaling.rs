//! Scaling on real processes over 127.0.0.1: graceful retirement (results moved to the
//! workers that stay, nothing recomputed), the adaptive target under pending work and at
//! rest, and `LocalCluster` as a `Cluster` (scale up and down, adapt up and down to 0).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::testing::ResilOp;
use gridflow_distributed::{AdaptiveOptions, Cluster, LocalCluster, LocalClusterOptions};
use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::conformance::{TestOp, num};
use gridflow_runtime::{Executor, LocalExecutor};
use std::time::{Duration, Instant};

mod common;
use common::{counted, reads, wait_until};

fn temp_log(name: &str) -> std::path::PathBuf {
    common::temp_log("scaling", name)
}

const NODE: &str = env!("CARGO_BIN_EXE_gridflow-test-node");

fn cluster(n_workers: usize, resil: bool) -> LocalCluster {
    let args = if resil {
        vec!["resil".into(), "worker".into()]
    } else {
        vec!["worker".into()]
    };
    LocalCluster::with_options(LocalClusterOptions {
        n_workers,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        args,
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

#[test]
fn a_retired_worker_hands_its_results_over_and_nothing_is_recomputed() {
    let c = cluster(3, false);
    let client = c.client().unwrap();
    let log = temp_log("retire");
    let (g, doubled) = counted(30, 2048, &log);
    let _kept = client.persist(&g, &doubled).unwrap();
    assert_eq!(reads(&log), 30);
    let before = client.workers().unwrap();
    assert_eq!(before.len(), 3);
    let mut leaving: Vec<String> = before[1..].iter().map(|w| w.name.clone()).collect();
    leaving.sort();

    let retired = client.retire_workers(&leaving).unwrap();
    let mut sorted = retired.clone();
    sorted.sort();
    assert_eq!(sorted, leaving);
    let left = client.workers().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, before[0].name);

    // Every persisted block is still there: the total is right and no source ran again.
    let mut g2 = g.clone();
    let total = Key::new("total", &[]);
    g2.insert(total.clone(), Task::new(TestOp::Sum, doubled.clone()));
    let got = client.run(&g2, std::slice::from_ref(&total)).unwrap();
    let want = LocalExecutor::threads(1)
        .run(&g2, std::slice::from_ref(&total))
        .unwrap();
    assert_eq!(got[0], want[0]);
    assert_eq!(
        reads(&log),
        30 + 30,
        "only the local executor read the sources again"
    );
    let moved: usize = c
        .log()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("retired worker ")?
                .split(": ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(moved > 0, "results were moved: {:?}", c.log());
    assert!(
        !c.log().iter().any(|l| l.starts_with("lost worker")),
        "{:?}",
        c.log()
    );
}

#[test]
fn retiring_an_unknown_worker_names_it() {
    let c = cluster(1, false);
    let client = c.client().unwrap();
    let e = client
        .retire_workers(&["no-such-worker".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-worker"), "{e}");
    assert_eq!(client.workers().unwrap().len(), 1);
}

/// `n` independent slow tasks of `ms` each.
fn slow(n: u32, ms: u64, tag: &str) -> (Graph<ResilOp>, Vec<Key>) {
    let mut g = Graph::new();
    let keys = (0..n)
        .map(|i| {
            let k = Key::new(tag, &[i]);
            g.insert(
                k.clone(),
                Task::new(
                    ResilOp::Slow {
                        ms,
                        add: u64::from(i),
                        bytes: 64,
                    },
                    vec![],
                ),
            );
            k
        })
        .collect();
    (g, keys)
}

#[test]
fn a_retiring_worker_is_listed_as_retiring_until_it_has_left() {
    use gridflow_distributed::WorkerState;
    let c = cluster(2, true);
    let client = c.client().unwrap();
    // Results held on both workers, then a slow task on each: the worker scaled away
    // finishes its task before its results move, so it stays retiring for a while.
    let (g, keys) = slow(8, 0, "held");
    let held = client.persist(&g, &keys).unwrap();
    let (gb, kb) = slow(2, 1500, "busy");
    let busy = client.submit_many(&gb, &kb).unwrap();
    wait_until("both slow tasks started", Duration::from_secs(10), || {
        client.activity().unwrap().pending_tasks == 2
    });
    std::thread::sleep(Duration::from_millis(200));
    let (mut seen_status, mut seen_info) = (false, false);
    std::thread::scope(|s| {
        let scaling = s.spawn(|| c.scale(1));
        while !scaling.is_finished() {
            let status = c.worker_status().unwrap();
            if let Some(w) = status.iter().find(|w| w.name == "local-1") {
                assert!(
                    matches!(w.state, WorkerState::Retiring | WorkerState::Running),
                    "{status:?}"
                );
                seen_status |= w.state == WorkerState::Retiring;
            }
            let info = client.workers().unwrap();
            seen_info |= info.iter().any(|w| w.name == "local-1" && w.retiring);
            assert!(
                info.iter().all(|w| w.name == "local-1" || !w.retiring),
                "{info:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        scaling.join().unwrap().unwrap();
    });
    assert!(seen_status, "worker_status never showed local-1 retiring");
    assert!(seen_info, "the scheduler never listed local-1 as retiring");
    // Gone once retired, from both lists.
    let status = c.worker_status().unwrap();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0].name, "local-0");
    assert_eq!(status[0].state, WorkerState::Running);
    let info = client.workers().unwrap();
    assert_eq!(info.len(), 1);
    assert!(!info[0].retiring);
    // The slow tasks' futures find their results where they moved.
    for (i, f) in busy.iter().enumerate() {
        assert_eq!(num(&f.result().unwrap()), i as u64);
    }
    // Its results moved: a sum over the held results and the slow tasks' reads them all
    // (by key: nothing runs again, so nothing sleeps) and gives the local result, which
    // runs the slow tasks without their sleep (same values).
    let total = Key::new("total", &[]);
    let with_sum = |busy: &Graph<ResilOp>| {
        let mut g2 = g.clone();
        for k in &kb {
            g2.insert(k.clone(), busy.get(k).unwrap().clone());
        }
        let sum = ResilOp::Slow {
            ms: 0,
            add: 0,
            bytes: 8,
        };
        g2.insert(
            total.clone(),
            Task::new(sum, keys.iter().chain(&kb).cloned().collect()),
        );
        g2
    };
    let want = LocalExecutor::threads(1)
        .run(
            &with_sum(&slow(2, 0, "busy").0),
            std::slice::from_ref(&total),
        )
        .unwrap();
    assert_eq!(
        client
            .run(&with_sum(&gb), std::slice::from_ref(&total))
            .unwrap()[0],
        want[0]
    );
    assert!(
        !c.log().iter().any(|l| l.contains("recomputed")),
        "{:?}",
        c.log()
    );
    drop((held, busy));
}

#[test]
fn the_adaptive_target_follows_pending_work() {
    let c = cluster(1, true);
    let client = c.client().unwrap();
    let idle = client.adaptive_target().unwrap();
    assert_eq!(idle.target, 0, "{idle:?}");
    assert_eq!(idle.unfinished_tasks, 0);
    assert_eq!(idle.workers, 1);

    // 40 tasks of 400 ms on one thread: 16 s of work, more than the 5 s target duration.
    let (g, keys) = slow(40, 400, "slow");
    let futures = client.submit_many(&g, &keys).unwrap();
    let busy = client.adaptive_target().unwrap();
    assert_eq!(busy.unfinished_tasks, 40, "{busy:?}");
    assert!(busy.target > 1, "{busy:?}");
    assert_eq!(busy.target, busy.cpu.max(busy.memory));
    assert!(busy.cpu <= busy.ready_tasks, "{busy:?}");
    drop(futures);
}

#[test]
fn a_local_cluster_scales_up_and_down_by_hand() {
    let c = cluster(1, false);
    let client = c.client().unwrap();
    c.scale(3).unwrap();
    client.wait_for_workers(3, Duration::from_secs(30)).unwrap();
    wait_until("three running workers", Duration::from_secs(10), || {
        let s = c.worker_status().unwrap();
        s.len() == 3
            && s.iter()
                .all(|w| w.state == gridflow_distributed::WorkerState::Running)
    });
    let (g, out, _) = gridflow_runtime::conformance::tree(60, 256);
    let want = LocalExecutor::threads(1)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    assert_eq!(
        client.run(&g, std::slice::from_ref(&out)).unwrap()[0],
        want[0]
    );

    let pids = c.worker_pids();
    c.scale(1).unwrap();
    assert_eq!(client.workers().unwrap().len(), 1);
    assert_eq!(c.worker_status().unwrap().len(), 1);
    for pid in &pids[1..] {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "worker {pid} still runs after scale(1)"
        );
    }
    assert_eq!(
        client.run(&g, std::slice::from_ref(&out)).unwrap()[0],
        want[0]
    );
    Cluster::close(&c).unwrap();
    Cluster::close(&c).unwrap(); // again: nothing
}

#[test]
fn adapt_scales_up_under_work_and_down_to_zero_after_it() {
    let c = cluster(1, true);
    let client = c.client().unwrap();
    c.adapt_with(AdaptiveOptions {
        minimum: 0,
        maximum: 3,
        interval: Duration::from_millis(100),
        wait_count: 3,
        cooldown: Duration::from_millis(500),
    })
    .unwrap();
    let (g, keys) = slow(60, 300, "adapt");
    let futures = client.submit_many(&g, &keys).unwrap();
    wait_until("3 workers under load", Duration::from_secs(30), || {
        client.workers().unwrap().len() == 3
    });
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(num(&f.result().unwrap()), i as u64);
    }
    drop(futures);
    wait_until("no worker once idle", Duration::from_secs(30), || {
        client.workers().unwrap().is_empty() && c.worker_status().unwrap().is_empty()
    });
    assert!(c.log().iter().any(|l| l.starts_with("retired worker")));
}

#[test]
fn workers_retire_at_the_end_of_their_lifetime() {
    let c = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        args: vec![
            "worker".into(),
            "--lifetime".into(),
            "2".into(),
            "--lifetime-stagger".into(),
            "2".into(),
        ],
        restart_workers: false,
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let client = c.client().unwrap();
    let start = Instant::now();
    wait_until("both workers retired", Duration::from_secs(20), || {
        client.workers().unwrap().is_empty()
    });
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    let retired = c
        .log()
        .iter()
        .filter(|l| l.starts_with("retired worker"))
        .count();
    assert_eq!(retired, 2, "{:?}", c.log());
}

/// One HTTP/1.1 request to the dashboard at `link` (`http://host:port/status`): the
/// status code and the body.
fn http(link: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let host = link
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, b) = out.split_once("\r\n\r\n").unwrap();
    (
        status,
        serde_json::from_str(b).unwrap_or(serde_json::Value::Null),
    )
}

fn dashboard_cluster(n: usize, security: gridflow_distributed::Security) -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers: n,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        dashboard_address: Some("127.0.0.1:0".into()),
        security,
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

#[test]
fn the_scaling_endpoints_answer_over_http() {
    let c = dashboard_cluster(2, gridflow_distributed::Security::none());
    let link = c.dashboard_link().expect("a dashboard");
    let client = c.client().unwrap();

    let (status, t) = http(&link, "GET", "/api/v1/adaptive_target", "");
    assert_eq!(status, 200, "{t}");
    let want = serde_json::to_value(client.adaptive_target().unwrap()).unwrap();
    assert_eq!(t, want);
    assert_eq!(t["workers"], 2);

    let (status, e) = http(
        &link,
        "POST",
        "/api/v1/retire_workers",
        "{\"workers\": [\"nobody\"]}",
    );
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("nobody"), "{e}");
    let (status, e) = http(&link, "POST", "/api/v1/retire_workers", "not json");
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("\"workers\""), "{e}");
    let (status, e) = http(&link, "GET", "/api/v1/retire_workers", "");
    assert_eq!(status, 405, "{e}");

    let name = client.workers().unwrap()[1].name.clone();
    let (status, r) = http(
        &link,
        "POST",
        "/api/v1/retire_workers",
        &format!("{{\"workers\": [\"{name}\"]}}"),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["retired"], serde_json::json!([name]));
    assert_eq!(client.workers().unwrap().len(), 1);
}

#[test]
fn the_dashboard_answers_while_a_retirement_over_http_waits() {
    let c = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        args: vec!["resil".into(), "worker".into()],
        dashboard_address: Some("127.0.0.1:0".into()),
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let link = c.dashboard_link().unwrap();
    let client = c.client().unwrap();
    // A slow task on each worker: the retired one finishes its own before leaving.
    let (g, keys) = slow(2, 2000, "busy");
    let futures = client.submit_many(&g, &keys).unwrap();
    wait_until("both slow tasks started", Duration::from_secs(10), || {
        client.activity().unwrap().pending_tasks == 2
    });
    std::thread::sleep(Duration::from_millis(100));
    let name = client.workers().unwrap()[1].name.clone();
    let body = format!("{{\"workers\": [\"{name}\"]}}");
    let link2 = link.clone();
    let retiring =
        std::thread::spawn(move || http(&link2, "POST", "/api/v1/retire_workers", &body));
    wait_until("the worker retiring", Duration::from_secs(10), || {
        client.workers().unwrap().iter().any(|w| w.retiring)
    });
    // The retirement waits for the slow task; meanwhile the server answers.
    let (status, _) = http(&link, "GET", "/api/v1/adaptive_target", "");
    assert_eq!(status, 200);
    let metrics = {
        use std::io::{Read, Write};
        let host = link
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("gridflow_workers"), "{metrics}");
    assert!(
        !retiring.is_finished(),
        "the retirement should still be waiting for the slow task"
    );
    let (status, r) = retiring.join().unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["retired"], serde_json::json!([name]));
    drop(futures);
}

#[test]
fn retiring_over_http_needs_the_clusters_token() {
    let token = gridflow_distributed::auth::generate_token().unwrap();
    let sec = gridflow_distributed::Security::none()
        .with_token(&token)
        .unwrap();
    let c = dashboard_cluster(2, sec);
    let link = c.dashboard_link().unwrap();
    let client = c.client().unwrap();
    let name = client.workers().unwrap()[1].name.clone();
    let (status, e) = http(
        &link,
        "POST",
        "/api/v1/retire_workers",
        &format!("{{\"workers\": [\"{name}\"]}}"),
    );
    assert_eq!(status, 403, "{e}");
    let (status, _) = http(
        &link,
        "POST",
        "/api/v1/retire_workers",
        &format!("{{\"workers\": [\"{name}\"], \"token\": \"wrong\"}}"),
    );
    assert_eq!(status, 403);
    assert_eq!(client.workers().unwrap().len(), 2);
    let (status, r) = http(
        &link,
        "POST",
        "/api/v1/retire_workers",
        &format!("{{\"workers\": [\"{name}\"], \"token\": \"{token}\"}}"),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(client.workers().unwrap().len(), 1);
    // Reading the target needs no token (it changes nothing).
    assert_eq!(http(&link, "GET", "/api/v1/adaptive_target", "").0, 200);
}

#[test]
fn a_worker_retired_by_name_is_not_restarted_by_the_nanny() {
    // The nanny restarts workers that die (default options), not those that leave.
    let c = cluster(2, false);
    let client = c.client().unwrap();
    let names: Vec<String> = client
        .wait_for_workers(2, Duration::from_secs(30))
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    client.retire_workers(&names[..1]).unwrap();
    wait_until(
        "the nanny to drop the retired worker",
        Duration::from_secs(10),
        || c.worker_status().unwrap().len() == 1,
    );
    // Well past the nanny's poll: still one worker, the other one.
    std::thread::sleep(Duration::from_millis(500));
    let left = client.workers().unwrap();
    assert_eq!(
        left.iter().map(|w| w.name.clone()).collect::<Vec<_>>(),
        names[1..].to_vec()
    );
    assert_eq!(c.worker_status().unwrap().len(), 1);
    // A worker that dies is still restarted.
    let pid = c.worker_pids()[0];
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    wait_until(
        "the killed worker restarted",
        Duration::from_secs(30),
        || {
            c.worker_pids().first().is_some_and(|&p| p != pid)
                && client.workers().is_ok_and(|w| w.len() == 1)
        },
    );
}
