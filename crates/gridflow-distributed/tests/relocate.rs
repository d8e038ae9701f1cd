//! A computation's gather survives the worker holding an output leaving between the
//! scheduler's `Done` and the client's gather (real processes over 127.0.0.1): retired
//! (its results moved to other workers) or killed (its results recomputed from lineage).
//! The client's test hook runs in that window and makes the holder leave for certain,
//! through a second client, before the gather starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::messages::Location;
use gridflow_distributed::{LocalCluster, LocalClusterOptions};
use gridflow_runtime::Executor;
use gridflow_runtime::conformance::num;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{counted, reads, wait_until};

fn cluster() -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers: 3,
        threads_per_worker: 1,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        restart_workers: false,
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

/// How the holder of the first output leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    Retire,
    Kill,
}

/// Computes 6 doubled counted sources on a 3-worker cluster; right after `Done`, before the
/// gather, the holder of the first output leaves (`how`). Returns the values, how often the
/// hook ran (once per gather) and how often the sources ran.
fn compute_while_holder_leaves(how: Leave, name: &str) -> (Vec<u64>, usize, usize, String) {
    let c = cluster();
    let client = c.client().unwrap();
    let other = c.client().unwrap();
    client.wait_for_workers(3, Duration::from_secs(20)).unwrap();
    let pids = c.worker_pids();
    let log = common::temp_log("relocate", name);
    let (g, doubled) = counted(6, 1024, &log);

    let calls = Arc::new(AtomicUsize::new(0));
    let left = Arc::new(Mutex::new(String::new()));
    let hook_calls = calls.clone();
    let hook_left = left.clone();
    client.set_gather_hook(Some(Arc::new(move |outputs: &[Location]| {
        if hook_calls.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        let address = outputs[0].address.clone();
        let workers = other.workers().unwrap();
        let holder = workers
            .iter()
            .find(|w| w.address == address)
            .unwrap_or_else(|| panic!("no worker at {address}: {workers:?}"))
            .name
            .clone();
        match how {
            Leave::Retire => {
                assert_eq!(
                    other.retire_workers(std::slice::from_ref(&holder)).unwrap(),
                    vec![holder.clone()]
                );
            }
            Leave::Kill => {
                // Workers are `local-i`, their processes in slot order.
                let slot: usize = holder.trim_start_matches("local-").parse().unwrap();
                let killed = std::process::Command::new("kill")
                    .args(["-KILL", &pids[slot].to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
            }
        }
        // Gone for certain: the scheduler no longer lists it and its data port is closed.
        wait_until("the holder leaves", Duration::from_secs(20), || {
            !other.workers().unwrap().iter().any(|w| w.name == holder)
                && std::net::TcpStream::connect(&address).is_err()
        });
        *hook_left.lock().unwrap() = holder;
    })));

    let values = client
        .run(&g, &doubled)
        .unwrap_or_else(|e| panic!("{how:?}: the computation failed: {e}; log: {:?}", c.log()));
    let values = values.iter().map(|v| num(v)).collect();
    let holder = left.lock().unwrap().clone();
    (values, calls.load(Ordering::SeqCst), reads(&log), holder)
}

fn expected() -> Vec<u64> {
    (1..=6).map(|i| 2 * i).collect()
}

#[test]
fn a_computation_is_gathered_after_its_output_s_worker_retired() {
    let (values, gathers, ran, holder) = compute_while_holder_leaves(Leave::Retire, "retire");
    assert!(!holder.is_empty(), "the hook did not run");
    assert_eq!(values, expected());
    assert!(
        gathers >= 2,
        "gathered again after {holder} left: {gathers}"
    );
    assert_eq!(ran, 6, "the retired worker's results moved, not recomputed");
}

#[test]
fn a_computation_is_gathered_after_its_output_s_worker_died() {
    let (values, gathers, ran, holder) = compute_while_holder_leaves(Leave::Kill, "kill");
    assert!(!holder.is_empty(), "the hook did not run");
    assert_eq!(values, expected());
    assert!(
        gathers >= 2,
        "gathered again after {holder} died: {gathers}"
    );
    assert!(
        ran > 6,
        "the killed worker's results were recomputed: {ran} reads"
    );
}
