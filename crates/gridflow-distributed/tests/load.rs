//! Load on one local cluster of real worker processes: 8 clients submitting different
//! graphs at once all get the local executor's results.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::{LocalCluster, LocalClusterOptions};
use gridflow_runtime::conformance::{num, tree};
use gridflow_runtime::{Executor, LocalExecutor};
use std::time::{Duration, Instant};

#[test]
fn eight_clients_at_once_all_get_the_local_executors_results() {
    let c = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 2,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let start = Instant::now();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let client = c.client().unwrap();
            std::thread::spawn(move || {
                // Different sizes and shapes per client: 50..400 leaves of 8 B..32 KiB.
                let (g, out, doubled) = tree(50 + 50 * i, 8 << (i % 4 * 4));
                let mut keys = vec![out];
                keys.extend(doubled.iter().step_by(7 + i as usize).cloned());
                let want = LocalExecutor::threads(1).run(&g, &keys).unwrap();
                for _ in 0..3 {
                    let got = client.run(&g, &keys).unwrap();
                    assert_eq!(got, want, "client {i}");
                }
                num(&want[0])
            })
        })
        .collect();
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, s) in sums.iter().enumerate() {
        let n = 50 + 50 * i as u64;
        assert_eq!(*s, n * (n + 1), "client {i}");
    }
    assert!(start.elapsed() < Duration::from_secs(120));
    // Every job was released: the cluster still serves, with both workers.
    assert_eq!(c.client().unwrap().workers().unwrap().len(), 2);
}
