//! The distributed runtime on real processes over 127.0.0.1: the executor conformance suite
//! on a local cluster of `gridflow-test-node` workers, results equal to the local
//! executor's, and bad peers refused with clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::{Client, LocalCluster, LocalClusterOptions};
use gridflow_runtime::conformance::{TestOp, num, tree};
use gridflow_runtime::{Executor, LocalExecutor, ProgressFn};
use std::io::{Read, Write};
use std::time::Duration;

fn cluster(n_workers: usize, threads: usize) -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers,
        threads_per_worker: threads,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

/// An executor that owns its cluster, so that the cluster lives as long as the client.
struct ClusterExecutor {
    client: Client,
    _cluster: LocalCluster,
}

impl Executor<TestOp> for ClusterExecutor {
    fn run_plan(
        &self,
        plan: gridflow_runtime::Plan<'_, TestOp>,
    ) -> gridflow_runtime::Result<(Vec<std::sync::Arc<Vec<u8>>>, gridflow_runtime::RunReport)> {
        self.client.run_plan(plan)
    }
    fn thread_count(&self) -> usize {
        Executor::<TestOp>::thread_count(&self.client)
    }
    fn describe(&self) -> String {
        Executor::<TestOp>::describe(&self.client)
    }
}

fn on_cluster(p: Option<ProgressFn>) -> Box<dyn Executor<TestOp>> {
    let c = cluster(2, 2);
    let mut client = c.client().unwrap();
    if let Some(p) = p {
        client = client.with_progress(p);
    }
    Box::new(ClusterExecutor {
        client,
        _cluster: c,
    })
}

mod local_cluster {
    use super::*;
    gridflow_runtime::executor_conformance!(on_cluster);
}

#[test]
fn results_equal_the_local_executors_and_data_moves_between_workers() {
    let c = cluster(3, 1);
    let client = c.client().unwrap();
    let workers = client.workers().unwrap();
    assert_eq!(workers.len(), 3);
    assert!(workers.iter().all(|w| w.nthreads == 1));
    let (g, out, doubled) = tree(300, 4096);
    let mut keys = vec![out];
    keys.extend(doubled.iter().step_by(37).cloned());
    let want = LocalExecutor::threads(2).run(&g, &keys).unwrap();
    for _ in 0..3 {
        let got = client.run(&g, &keys).unwrap();
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a, b);
        }
    }
    assert_eq!(num(&want[0]), (1..=300u64).map(|v| 2 * v).sum::<u64>());
}

#[test]
fn a_client_of_another_protocol_version_is_refused_clearly() {
    let c = cluster(1, 1);
    let addr = c.address();
    let hostport = addr.strip_prefix("tcp://").unwrap();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut pre = Vec::from(*b"GFLW");
    pre.extend_from_slice(&999u32.to_le_bytes());
    s.write_all(&pre).unwrap();
    // The scheduler sends its own preamble (so a client can report the mismatch) and
    // closes the connection.
    let mut theirs = [0u8; 8];
    s.read_exact(&mut theirs).unwrap();
    assert_eq!(&theirs[..4], b"GFLW");
    let mut rest = Vec::new();
    let n = s.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "nothing after the preamble");
    // The cluster still serves well-behaved clients.
    let client = c.client().unwrap();
    assert_eq!(client.workers().unwrap().len(), 1);
}

#[test]
fn connecting_to_a_server_of_another_version_names_both_versions() {
    let other = gridflow_distributed::frame::PROTOCOL_VERSION + 1;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut pre = Vec::from(*b"GFLW");
        pre.extend_from_slice(&other.to_le_bytes());
        s.write_all(&pre).unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
    });
    let e = Client::connect(&format!("tcp://{addr}")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("version {other}"))
            && msg.contains(&format!(
                "version {}",
                gridflow_distributed::frame::PROTOCOL_VERSION
            )),
        "{msg}"
    );
    server.join().unwrap();
}

#[test]
fn connecting_to_something_else_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
    });
    let e = Client::connect(&addr.to_string()).unwrap_err();
    assert!(e.to_string().contains("not a gridflow peer"), "{e}");
    server.join().unwrap();
}

#[test]
fn a_garbage_frame_is_dropped_without_harming_the_scheduler() {
    let c = cluster(1, 1);
    let addr = c.address();
    let mut s = std::net::TcpStream::connect(addr.strip_prefix("tcp://").unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut pre = Vec::from(*b"GFLW");
    pre.extend_from_slice(&gridflow_distributed::frame::PROTOCOL_VERSION.to_le_bytes());
    s.write_all(&pre).unwrap();
    // A frame header claiming 3 GiB, then garbage.
    s.write_all(&(3u32 << 30).to_le_bytes()).unwrap();
    s.write_all(&[0xff; 64]).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    // An undecodable hello.
    let mut s = std::net::TcpStream::connect(addr.strip_prefix("tcp://").unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&pre).unwrap();
    s.write_all(&8u32.to_le_bytes()).unwrap();
    s.write_all(&4u32.to_le_bytes()).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    let _ = s.read_to_end(&mut sink);
    let client = c.client().unwrap();
    let (g, out, _) = tree(10, 8);
    assert_eq!(num(&client.run(&g, &[out]).unwrap()[0]), 110);
}

#[test]
fn a_scheduler_that_is_gone_is_an_error_not_a_hang() {
    let c = cluster(1, 1);
    let client = c.client().unwrap();
    c.close();
    let (g, out, _) = tree(10, 8);
    let e = client.run(&g, &[out]).unwrap_err();
    assert!(e.to_string().contains("executor"), "{e}");
}

#[test]
fn a_cluster_whose_workers_all_died_fails_clearly_instead_of_hanging() {
    let c = LocalCluster::with_options(LocalClusterOptions {
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        restart_workers: false,
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let client = c.client().unwrap();
    for pid in c.worker_pids() {
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let start = std::time::Instant::now();
    while !client.workers().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the scheduler never noticed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (g, out, _) = tree(10, 8);
    let e = client.run(&g, &[out]).unwrap_err();
    assert!(e.to_string().contains("no workers"), "{e}");
}

#[test]
fn dependents_run_where_their_large_input_is_held() {
    use gridflow_graph::{Graph, Key, Task};
    // One 4 MiB root read by 40 tasks, each also reading a tiny root of its own: placement by
    // input bytes runs every reader where the big root is, so only tiny roots travel.
    let c = cluster(2, 1);
    let client = c.client().unwrap();
    let mut g = Graph::new();
    let big = Key::new("big", &[]);
    g.insert(
        big.clone(),
        Task::new(
            TestOp::Make {
                value: 1,
                bytes: 4 << 20,
            },
            vec![],
        ),
    );
    let mut outs = Vec::new();
    for i in 0..40u32 {
        let small = Key::new("small", &[i]);
        g.insert(
            small.clone(),
            Task::new(TestOp::Make { value: 2, bytes: 8 }, vec![]),
        );
        let d = Key::new("d", &[i]);
        g.insert(d.clone(), Task::new(TestOp::Sum, vec![big.clone(), small]));
        outs.push(d);
    }
    let total = Key::new("total", &[]);
    g.insert(total.clone(), Task::new(TestOp::Sum, outs));
    let v = client.run(&g, &[total]).unwrap();
    assert_eq!(num(&v[0]), 40 * 3);
    // Metrics arrive with the workers' next messages: poll briefly.
    let start = std::time::Instant::now();
    let fetched = loop {
        let w = client.workers().unwrap();
        let f: u64 = w.iter().map(|x| x.bytes_fetched).sum();
        if f > 0 || start.elapsed() > Duration::from_secs(2) {
            break f;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Tiny roots computed on the other worker did travel (the count works)...
    assert!(fetched > 0, "no bytes moved between workers");
    // ...but the big root never did.
    assert!(fetched < 1 << 20, "{fetched} bytes moved between workers");
}

#[test]
fn a_worker_s_data_port_survives_garbage_and_unknown_ids() {
    let c = cluster(1, 1);
    let client = c.client().unwrap();
    let addr = client.workers().unwrap()[0].address.clone();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    // The worker still computes and serves results.
    let (g, out, _) = tree(10, 8);
    assert_eq!(num(&client.run(&g, &[out]).unwrap()[0]), 110);
}

#[test]
fn a_cluster_sized_for_the_machine_uses_its_cores_and_memory() {
    let o = gridflow_distributed::LocalClusterOptions::for_machine();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(o.n_workers * o.threads_per_worker, cores);
    let c = LocalCluster::with_options(LocalClusterOptions {
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        ..o.clone()
    })
    .unwrap();
    let w = c.client().unwrap().workers().unwrap();
    assert_eq!(w.len(), o.n_workers);
    assert!(
        w.iter()
            .all(|x| x.memory_limit == o.memory_limit && x.memory_limit > 0)
    );
}
