//! Results held on the workers, on real processes over 127.0.0.1: `persist` (later graphs
//! read persisted keys instead of recomputing them), futures (`submit`, `result`, `wait`,
//! `cancel`, `as_completed`), `scatter`, and release when handles are dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::{DistError, FutureStatus, LocalCluster, LocalClusterOptions};
use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::conformance::{TestOp, buf, num};
use gridflow_runtime::{Executor, LocalExecutor};
use std::time::{Duration, Instant};

mod common;
use common::{counted, reads};

fn temp_log(name: &str) -> std::path::PathBuf {
    common::temp_log("held", name)
}

fn cluster(n_workers: usize, threads: usize) -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers,
        threads_per_worker: threads,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

/// Adds a sum of `inputs` (times `scale` via doubling when asked) under `key`.
fn add_sum(g: &mut Graph<TestOp>, key: &Key, inputs: &[Key]) {
    g.insert(key.clone(), Task::new(TestOp::Sum, inputs.to_vec()));
}

/// Polls until the workers hold no result (the scheduler told them to drop everything).
fn workers_hold_nothing_eventually(c: &gridflow_distributed::Client, held: &[Key]) {
    assert!(
        held.iter().all(|k| !c.held_keys().contains(k)),
        "the client still lists {held:?}"
    );
}

#[test]
fn persisted_results_are_read_by_key_and_the_store_is_read_once() {
    let c = cluster(2, 1);
    let client = c.client().unwrap();
    let log = temp_log("persist");
    let (g, doubled) = counted(24, 1024, &log);
    let kept = client.persist(&g, &doubled).unwrap();
    assert_eq!(reads(&log), 24, "persist computes every source once");
    assert_eq!(kept.keys(), doubled);

    // Two computations over the persisted blocks: a total, and a sum of every other one.
    let mut g2 = g.clone();
    let total = Key::new("total", &[]);
    add_sum(&mut g2, &total, &doubled);
    let evens: Vec<Key> = doubled.iter().step_by(2).cloned().collect();
    let half = Key::new("half", &[]);
    add_sum(&mut g2, &half, &evens);
    let (got_total, report) = client
        .run_with_report(&g2, std::slice::from_ref(&total))
        .unwrap();
    let got_half = client.run(&g2, std::slice::from_ref(&half)).unwrap();
    assert_eq!(reads(&log), 24, "no source ran again");
    // Only the sum was submitted: the persisted blocks were referred to, not copied.
    assert_eq!(report.tasks_after, 1);

    // Equal to the local executor's results (which read the sources again, locally).
    let want = LocalExecutor::threads(2)
        .run(&g2, &[total.clone(), half.clone()])
        .unwrap();
    assert_eq!(got_total[0], want[0]);
    assert_eq!(got_half[0], want[1]);
    assert_eq!(num(&got_total[0]), (1..=24u64).map(|v| 2 * v).sum::<u64>());

    // Computing a persisted key itself gathers the held block.
    let block = client.run(&g, &[doubled[3].clone()]).unwrap();
    assert_eq!(num(&block[0]), 8);
    assert_eq!(
        reads(&log),
        24 + 24,
        "(the local run above read 24 sources)"
    );

    // Dropping the handle releases them: the next computation reads the sources again.
    drop(kept);
    workers_hold_nothing_eventually(&client, &doubled);
    let again = client.run(&g2, &[total]).unwrap();
    assert_eq!(again[0], want[0]);
    assert_eq!(reads(&log), 24 + 24 + 24);
}

#[test]
fn futures_give_results_wait_and_complete_in_order_of_finishing() {
    let c = cluster(2, 2);
    let client = c.client().unwrap();
    let mut g: Graph<TestOp> = Graph::new();
    let mut keys = Vec::new();
    for i in 0..6u32 {
        let m = Key::new("m", &[i]);
        g.insert(
            m.clone(),
            Task::new(
                TestOp::Make {
                    value: u64::from(i),
                    bytes: 64,
                },
                vec![],
            ),
        );
        let d = Key::new("d", &[i]);
        g.insert(d.clone(), Task::new(TestOp::Double, vec![m]));
        keys.push(d);
    }
    let futures: Vec<_> = keys.iter().map(|k| client.submit(&g, k).unwrap()).collect();
    client.wait(&futures).unwrap();
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.status(), FutureStatus::Finished);
        assert_eq!(num(&f.result().unwrap()), 2 * i as u64);
        assert_eq!(f.key(), keys[i]);
    }
    // A future is an input of a later graph, by its key (not defined in that graph).
    let mut g2: Graph<TestOp> = Graph::new();
    let total = Key::new("total", &[]);
    g2.insert(total.clone(), Task::new(TestOp::Sum, keys.clone()));
    let t = client.submit(&g2, &total).unwrap();
    assert_eq!(num(&t.result().unwrap()), 2 * (0..6).sum::<u64>());
    // as_completed yields each future once.
    let mut seen: Vec<Key> = client
        .as_completed(futures.clone())
        .map(|f| f.unwrap().key())
        .collect();
    seen.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(seen, want);
    // A failing task: its future's result names it.
    let mut g3: Graph<TestOp> = Graph::new();
    let bad = Key::new("bad", &[]);
    g3.insert(bad.clone(), Task::new(TestOp::Fail, vec![]));
    let f = client.submit(&g3, &bad).unwrap();
    let e = f.result().unwrap_err();
    assert!(
        matches!(&e, DistError::Task { key, .. } if *key == bad),
        "{e}"
    );
    assert!(e.to_string().contains("deliberate failure"), "{e}");
    // The client still computes afterwards.
    assert_eq!(num(&futures[5].result().unwrap()), 10);
}

#[test]
fn a_cancelled_future_stops_and_says_so_and_dropped_futures_are_released() {
    let c = cluster(1, 1);
    let client = c.client().unwrap();
    let log = temp_log("cancel");
    let (g, doubled) = counted(200, 1024, &log);
    let mut g = g;
    let total = Key::new("total", &[]);
    add_sum(&mut g, &total, &doubled);
    let f = client.submit(&g, &total).unwrap();
    f.cancel();
    assert_eq!(f.status(), FutureStatus::Cancelled);
    assert!(matches!(f.result(), Err(DistError::Cancelled { .. })));
    // The cluster keeps working, and the cancelled job stopped before running every
    // source (a single thread runs them in order; the cancel arrives early).
    let (g2, d2) = counted(4, 1024, &log);
    let g2f = client.submit(&g2, &d2[1]).unwrap();
    assert_eq!(num(&g2f.result().unwrap()), 4);
    let n = reads(&log);
    assert!(
        n < 200 + 4,
        "{n} sources ran: the cancelled job was not stopped"
    );

    // Dropped futures leave the client's table (the scheduler is told to forget them).
    let key = g2f.key();
    assert!(client.held_keys().contains(&key));
    drop(g2f);
    assert!(!client.held_keys().contains(&key));
    // A later graph that reads a released key without defining it is an error naming it.
    let mut g3: Graph<TestOp> = Graph::new();
    let t = Key::new("t", &[]);
    g3.insert(t.clone(), Task::new(TestOp::Sum, vec![key.clone()]));
    let e = client.run(&g3, &[t]).unwrap_err().to_string();
    assert!(e.contains(&key.to_string()), "{e}");
}

#[test]
fn scattered_data_is_held_on_workers_and_read_by_later_graphs() {
    let c = cluster(2, 1);
    let client = c.client().unwrap();
    let values: Vec<Vec<u8>> = (1..=5u64).map(|v| buf(v, 4096)).collect();
    let futures = client.scatter(values.clone(), None).unwrap();
    assert_eq!(futures.len(), 5);
    for (f, v) in futures.iter().zip(&values) {
        assert_eq!(f.status(), FutureStatus::Finished);
        assert_eq!(&*f.result().unwrap(), v);
    }
    let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
    let mut g: Graph<TestOp> = Graph::new();
    let mut doubled = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let d = Key::new("d", &[i as u32]);
        g.insert(d.clone(), Task::new(TestOp::Double, vec![k.clone()]));
        doubled.push(d);
    }
    let total = Key::new("total", &[]);
    add_sum(&mut g, &total, &doubled);
    let got = client.run(&g, &[total]).unwrap();
    assert_eq!(num(&got[0]), 2 * 15);
    // The values went to both workers (round-robin) and each double ran where its value
    // is: only 4 KiB doubled blocks of one worker may travel to the sum, never more than
    // the three blocks a worker holds.
    let start = Instant::now();
    let fetched: u64 = loop {
        let f: u64 = client
            .workers()
            .unwrap()
            .iter()
            .map(|w| w.bytes_fetched)
            .sum();
        if f > 0 || start.elapsed() > Duration::from_secs(1) {
            break f;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(fetched < 3 * 4096, "{fetched} bytes moved");
    drop(futures);
    assert!(client.held_keys().is_empty());
}

#[test]
fn work_stealing_balances_tasks_piled_on_one_worker() {
    // One small root read by 16 slow tasks: placement by bytes held puts them all on the
    // root's worker; the idle one steals unstarted ones (their 8-byte input is cheap to move).
    let c = cluster(2, 1);
    let client = c.client().unwrap();
    let log = temp_log("steal");
    let mut g: Graph<TestOp> = Graph::new();
    let root = Key::new("root", &[]);
    g.insert(
        root.clone(),
        Task::new(TestOp::Make { value: 1, bytes: 8 }, vec![]),
    );
    let mut slow = Vec::new();
    for i in 0..16u32 {
        let k = Key::new("slow", &[i]);
        g.insert(
            k.clone(),
            Task::new(
                TestOp::Slow {
                    ms: 100,
                    log: log.to_str().unwrap().to_owned(),
                },
                vec![root.clone()],
            ),
        );
        slow.push(k);
    }
    let total = Key::new("total", &[]);
    add_sum(&mut g, &total, &slow);
    let start = Instant::now();
    let v = client.run(&g, std::slice::from_ref(&total)).unwrap();
    let took = start.elapsed();
    assert_eq!(num(&v[0]), 16);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut per_pid: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in text.lines() {
        *per_pid.entry(l).or_default() += 1;
    }
    assert_eq!(per_pid.values().sum::<usize>(), 16);
    assert_eq!(per_pid.len(), 2, "one worker ran everything: {per_pid:?}");
    assert!(
        per_pid.values().all(|&n| n >= 4),
        "still unbalanced: {per_pid:?}"
    );
    // 16 × 100 ms on one thread would take 1.6 s.
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

/// A future's result is fetched from wherever it is now, not only from the worker its job
/// named when it finished: that worker may have retired (its results moved) or died (its
/// results recomputed elsewhere).
#[test]
fn a_future_s_result_is_found_after_its_worker_retired_or_died() {
    let c = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 3,
        threads_per_worker: 1,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        restart_workers: false,
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let client = c.client().unwrap();
    let log = temp_log("moved");
    let (g, doubled) = counted(12, 1024, &log);
    let futures = client.submit_many(&g, &doubled).unwrap();
    client.wait(&futures).unwrap();
    assert_eq!(reads(&log), 12);
    assert_eq!(client.workers().unwrap().len(), 3);

    // Retire one worker: its results move; futures it held find them on the others.
    client.retire_workers(&["local-2".to_owned()]).unwrap();
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(num(&f.result().unwrap()), 2 * (i as u64 + 1), "{}", f.key());
    }
    assert_eq!(reads(&log), 12, "moved, not recomputed");

    // Kill another: what it alone held is recomputed when a future asks for it.
    // (slots in start order: local-1's process is the second)
    let pids = c.worker_pids();
    let victim = "local-1";
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pids[1].to_string()])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    // Until the scheduler has removed it (after the nanny said how it died).
    while !c
        .log()
        .iter()
        .any(|l| l.starts_with(&format!("lost worker {victim}")))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the killed worker was not removed: {:?}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(num(&f.result().unwrap()), 2 * (i as u64 + 1), "{}", f.key());
    }
    assert!(
        reads(&log) > 12,
        "the killed worker's results were recomputed"
    );
}
