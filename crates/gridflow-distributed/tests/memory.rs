//! A worker's memory on real processes: with a small memory limit, persisted results that
//! exceed it are spilled to the local directory (in the wire format), read back when a later
//! computation needs them, counted apart (managed, unmanaged, spilled), and the worker's
//! peak resident memory stays under the limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::memory::{decode_spill, write_spill};
use gridflow_distributed::{LocalCluster, LocalClusterOptions};
use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::conformance::{TestOp, num};
use gridflow_runtime::{Executor, LocalExecutor};
use std::time::{Duration, Instant};

fn vm_hwm(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

fn spill_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "gfspill"))
        })
        .count()
    })
}

#[test]
fn persisted_results_beyond_the_memory_limit_are_spilled_and_read_back() {
    let limit: u64 = 96 << 20;
    let dir = std::env::temp_dir().join(format!("gridflow-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let c = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 1,
        threads_per_worker: 1,
        memory_limit: limit,
        program: Some(env!("CARGO_BIN_EXE_gridflow-test-node").into()),
        local_directory: Some(dir.clone()),
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let client = c.client().unwrap();
    let pid = c.worker_pids()[0];
    // 48 results of 4 MiB: 192 MiB, twice the limit.
    let mut g = Graph::new();
    let parts: Vec<Key> = (0..48u32)
        .map(|i| {
            let k = Key::new("part", &[i]);
            g.insert(
                k.clone(),
                Task::new(
                    TestOp::Make {
                        value: u64::from(i) + 1,
                        bytes: 4 << 20,
                    },
                    vec![],
                ),
            );
            k
        })
        .collect();
    // Pairwise sums, then a total: each task reads at most two parts.
    let mut level = parts.clone();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let name = format!("sum{depth}");
        level = level
            .chunks(2)
            .enumerate()
            .map(|(j, grp)| {
                let k = Key::new(name.as_str(), &[j as u32]);
                g.insert(k.clone(), Task::new(TestOp::Sum, grp.to_vec()));
                k
            })
            .collect();
    }
    let total = level[0].clone();
    let want = LocalExecutor::threads(1)
        .run(&g, std::slice::from_ref(&total))
        .unwrap();
    assert_eq!(num(&want[0]), (1..=48u64).sum::<u64>());

    let held = client.persist(&g, &parts).unwrap();
    let worker_dir = dir.join("local-0");
    let files = spill_files(&worker_dir);
    assert!(files > 0, "no spill files in {}", worker_dir.display());
    // The scheduler hears managed and spilled bytes with the next heartbeats.
    let start = Instant::now();
    let info = loop {
        let w = client.workers().unwrap().remove(0);
        if w.spilled_bytes > 0 && w.managed_bytes + w.spilled_bytes == 48 * (4 << 20) {
            break w;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{w:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        info.managed_bytes + info.spilled_bytes,
        48 * (4 << 20),
        "{info:?}"
    );
    assert!(info.managed_bytes <= limit * 6 / 10 + (4 << 20), "{info:?}");
    assert!(info.unmanaged_bytes > 0, "{info:?}");
    // A later graph reads the persisted (partly spilled) results: the right total.
    let got = client.run(&g, std::slice::from_ref(&total)).unwrap();
    assert_eq!(got, want);
    let peak = vm_hwm(pid);
    eprintln!(
        "worker peak RSS {} MiB, limit {} MiB, {files} spill files, {info:?}",
        peak >> 20,
        limit >> 20
    );
    assert!(
        peak < limit,
        "peak RSS {} MiB above the limit {} MiB",
        peak >> 20,
        limit >> 20
    );
    // Releasing the results removes their spill files.
    drop(held);
    let start = Instant::now();
    while spill_files(&worker_dir) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "spill files stay"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The worker was never restarted by its nanny (its memory stayed below 95%).
    assert_eq!(c.worker_pids(), vec![pid]);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spill_files_hold_the_wire_encoding_and_bad_ones_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("gridflow-spillfmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("1.gfspill");
    let v: Vec<u8> = (0..1000u32).map(|x| x as u8).collect();
    write_spill(&p, &v).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    // Header length 0 (a byte buffer has an empty header), then the body as it is.
    assert_eq!(&bytes[..4], &[0, 0, 0, 0]);
    assert_eq!(&bytes[4..], &v[..]);
    assert_eq!(decode_spill::<Vec<u8>>(&bytes).unwrap(), v);
    let e = decode_spill::<Vec<u8>>(&[9, 0, 0, 0, 1]).unwrap_err();
    assert!(e.contains("header of 9 bytes"), "{e}");
    let e = decode_spill::<Vec<u8>>(&[1]).unwrap_err();
    assert!(e.contains("shorter"), "{e}");
    // A directory that cannot be written (a file in its place) is an error, not a crash.
    let e = write_spill(&dir.join("1.gfspill").join("x"), &v).unwrap_err();
    assert!(!e.to_string().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
