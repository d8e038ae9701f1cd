//! Lost workers and a lost scheduler, on real processes over 127.0.0.1: a worker killed
//! with SIGKILL mid-computation (results recomputed, the log names it), a task that kills
//! its worker every time (fails after 3 attempts naming the task, its operation and the
//! deaths, while another computation goes on), a stopped worker found by its missing
//! heartbeats, and a scheduler that goes away (clients fail within 10 s, workers exit saying
//! why).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::testing::ResilOp;
use gridflow_distributed::{Client, LocalCluster, LocalClusterOptions, Security};
use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::conformance::{TestOp, num};
use gridflow_runtime::{Executor, LocalExecutor};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_gridflow-test-node");

fn cluster(n_workers: usize, heartbeat_timeout: Duration) -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        args: vec!["resil".into(), "worker".into()],
        heartbeat_timeout,
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

/// `n` slow sources (`ms` each) of 4 KiB, slow sums of three, then a total; returns the
/// graph and its output.
fn slow_tree(n: u32, ms: u64, tag: &str) -> (Graph<ResilOp>, Key) {
    let mut g = Graph::new();
    let mut level: Vec<Key> = (0..n)
        .map(|i| {
            let k = Key::new(format!("{tag}-make").as_str(), &[i]);
            g.insert(
                k.clone(),
                Task::new(
                    ResilOp::Slow {
                        ms,
                        add: u64::from(i) + 1,
                        bytes: 4096,
                    },
                    vec![],
                ),
            );
            k
        })
        .collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let name = format!("{tag}-sum{depth}");
        level = level
            .chunks(3)
            .enumerate()
            .map(|(j, grp)| {
                let k = Key::new(name.as_str(), &[j as u32]);
                g.insert(
                    k.clone(),
                    Task::new(
                        ResilOp::Slow {
                            ms: ms / 2,
                            add: 0,
                            bytes: 8,
                        },
                        grp.to_vec(),
                    ),
                );
                k
            })
            .collect();
    }
    (g, level[0].clone())
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn a_worker_killed_mid_computation_loses_nothing_and_is_named_in_the_log() {
    let c = cluster(3, Duration::from_secs(30));
    let client = c.client().unwrap();
    // 36 sources of 150 ms on 3 single-thread workers: about 2 s of work.
    let (g, out) = slow_tree(36, 150, "k");
    let want = LocalExecutor::threads(3)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    assert_eq!(num(&want[0]), (1..=36u64).sum::<u64>());
    let victim = c.worker_pids()[1];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(900));
        signal(victim, "-KILL");
    });
    let start = Instant::now();
    let got = client.run(&g, &[out]).unwrap();
    killer.join().unwrap();
    assert!(
        start.elapsed() > Duration::from_millis(900),
        "the kill came after the end"
    );
    assert_eq!(got, want);
    let log = c.log();
    assert!(
        log.iter().any(|l| l.contains("lost worker local-1")
            && l.contains("killed by signal 9 (SIGKILL")),
        "{log:?}"
    );
    // The nanny started a new worker in its place.
    let start = Instant::now();
    while client.workers().unwrap().len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "no restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!c.worker_pids().contains(&victim));
}

#[test]
fn a_task_that_kills_its_worker_every_time_fails_after_three_attempts() {
    let c = cluster(2, Duration::from_secs(30));
    // Another computation runs meanwhile on its own client, and must not be disturbed.
    let other_client = c.client().unwrap();
    let (g2, out2) = slow_tree(12, 100, "other");
    let want2 = LocalExecutor::threads(2)
        .run(&g2, std::slice::from_ref(&out2))
        .unwrap();
    let other = std::thread::spawn(move || other_client.run(&g2, &[out2]).unwrap());

    let client = c.client().unwrap();
    let mut g = Graph::new();
    let src = Key::new("src", &[0]);
    g.insert(
        src.clone(),
        Task::new(ResilOp::Op(TestOp::Make { value: 5, bytes: 8 }), vec![]),
    );
    let deadly = Key::new("deadly", &[0]);
    g.insert(deadly.clone(), Task::new(ResilOp::Abort, vec![src]));
    let start = Instant::now();
    let e = client.run(&g, &[deadly]).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("deadly"), "names the task: {m}");
    assert!(m.contains("abort)"), "names the operation: {m}");
    assert!(m.contains("3 workers that died"), "{m}");
    assert_eq!(
        m.matches("killed by signal 6 (SIGABRT").count(),
        3,
        "every death's reason: {m}"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
    // The other computation finished with the right result.
    assert_eq!(other.join().unwrap(), want2);
    // And the cluster, restarted by its nanny, still computes.
    let (g3, out3) = slow_tree(6, 10, "after");
    let want3 = LocalExecutor::threads(1)
        .run(&g3, std::slice::from_ref(&out3))
        .unwrap();
    assert_eq!(client.run(&g3, &[out3]).unwrap(), want3);
}

#[test]
fn a_stopped_worker_is_dropped_after_its_heartbeat_timeout() {
    let c = cluster(2, Duration::from_millis(1500));
    let client = c.client().unwrap();
    let (g, out) = slow_tree(18, 150, "h");
    let want = LocalExecutor::threads(2)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    let victim = c.worker_pids()[0];
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        signal(victim, "-STOP");
    });
    let got = client.run(&g, &[out]).unwrap();
    stopper.join().unwrap();
    signal(victim, "-KILL");
    assert_eq!(got, want);
    let log = c.log();
    assert!(
        log.iter()
            .any(|l| l.contains("lost worker local-0") && l.contains("sent no heartbeat")),
        "{log:?}"
    );
}

#[test]
fn when_the_scheduler_goes_away_clients_fail_fast_and_workers_exit_saying_why() {
    let dir = std::env::temp_dir().join(format!("gridflow-resil-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scheduler.json");
    let _ = std::fs::remove_file(&file);
    let mut sched = Command::new(NODE)
        .args(["resil", "scheduler", "--port", "0", "--scheduler-file"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let address = loop {
        if let Ok(t) = std::fs::read_to_string(&file) {
            let a = t.split("\"address\": \"").nth(1).unwrap();
            break a.split('"').next().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no scheduler file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let worker = |timeout: &str| {
        Command::new(NODE)
            .args(["resil", "worker", &address, "--heartbeat-timeout", timeout])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut w1 = worker("1000");
    let client = Client::connect_with(&address, Security::none()).unwrap();
    client.wait_for_workers(1, Duration::from_secs(20)).unwrap();

    // A stopped scheduler: the worker hears nothing and exits after its time-out.
    signal(sched.id(), "-STOP");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = w1.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the worker waited forever"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    w1.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("no word from the scheduler"), "{err}");
    signal(sched.id(), "-CONT");

    // A killed scheduler: a client waiting on a long computation fails within 10 s, and a
    // worker exits saying the scheduler went away.
    let mut w2 = worker("30000");
    client.wait_for_workers(1, Duration::from_secs(20)).unwrap();
    let (g, out) = slow_tree(30, 300, "s");
    let waiting = std::thread::spawn(move || {
        let r = client.run(&g, &[out]);
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    sched.kill().unwrap();
    sched.wait().unwrap();
    let (r, failed_at) = waiting.join().unwrap();
    let e = r.unwrap_err().to_string();
    assert!(
        failed_at.duration_since(killed_at) < Duration::from_secs(10),
        "failed after {:?}",
        failed_at.duration_since(killed_at)
    );
    assert!(
        e.contains("connection closed") || e.contains("reset"),
        "{e}"
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = w2.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the worker stays"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    w2.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("went away"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
