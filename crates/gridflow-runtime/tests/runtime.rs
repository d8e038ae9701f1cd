//! Executor behaviour: results, errors, memory budget and progress, on real thread pools.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.
use gridflow_graph::{Graph, Key, Operation, Task};
use gridflow_runtime::{Execute, RuntimeError, Scheduler};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Values are byte buffers whose first 8 bytes hold a number.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Op {
    /// A source producing `value` padded to `bytes` bytes.
    Make {
        value: u64,
        bytes: usize,
    },
    /// Sum of the inputs' numbers (8 bytes).
    Sum,
    /// Doubles the number, keeping the size.
    Double,
    Fail,
    Panic,
}

impl Operation for Op {
    fn label(&self) -> String {
        match self {
            Op::Make { .. } => "make".into(),
            Op::Sum => "sum".into(),
            Op::Double => "double".into(),
            Op::Fail => "fail".into(),
            Op::Panic => "panic".into(),
        }
    }
    fn is_source(&self) -> bool {
        matches!(self, Op::Make { .. })
    }
    fn is_blockwise(&self) -> bool {
        matches!(self, Op::Double)
    }
}

fn num(v: &[u8]) -> u64 {
    u64::from_le_bytes(v[..8].try_into().unwrap())
}

fn buf(n: u64, bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes.max(8)];
    v[..8].copy_from_slice(&n.to_le_bytes());
    v
}

impl Execute for Op {
    type Value = Vec<u8>;
    type Error = String;
    fn execute(&self, inputs: &[&Vec<u8>]) -> Result<Vec<u8>, String> {
        match self {
            Op::Make { value, bytes } => Ok(buf(*value, *bytes)),
            Op::Sum => Ok(buf(inputs.iter().map(|v| num(v)).sum(), 8)),
            Op::Double => Ok(buf(num(inputs[0]) * 2, inputs[0].len())),
            Op::Fail => Err("deliberate failure".into()),
            Op::Panic => panic!("deliberate panic"),
        }
    }
    fn nbytes(v: &Vec<u8>) -> usize {
        v.len()
    }
}

/// `n` sources of `bytes` bytes each (values 1..=n), doubled, summed in a tree of fan-in 4.
fn tree(n: u64, bytes: usize) -> (Graph<Op>, Key) {
    let mut g = Graph::new();
    let mut level: Vec<Key> = Vec::new();
    for i in 0..n {
        let m = Key::new("make", &[i as u32]);
        let d = Key::new("double", &[i as u32]);
        g.insert(
            m.clone(),
            Task::new(
                Op::Make {
                    value: i + 1,
                    bytes,
                },
                vec![],
            ),
        );
        g.insert(d.clone(), Task::new(Op::Double, vec![m]));
        level.push(d);
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let name = format!("sum{depth}");
        level = level
            .chunks(4)
            .enumerate()
            .map(|(j, grp)| {
                let k = Key::new(name.as_str(), &[j as u32]);
                g.insert(k.clone(), Task::new(Op::Sum, grp.to_vec()));
                k
            })
            .collect();
    }
    (g, level[0].clone())
}

#[test]
fn every_scheduler_computes_the_same_result() {
    let (g, out) = tree(1000, 8);
    let want: u64 = (1..=1000u64).map(|v| 2 * v).sum();
    for s in [
        Scheduler::Synchronous,
        Scheduler::threads(1),
        Scheduler::threads(2),
        Scheduler::threads(4),
        Scheduler::Default,
    ] {
        let (v, report) = s.run_with_report(&g, std::slice::from_ref(&out)).unwrap();
        assert_eq!(num(&v[0]), want, "{s:?}");
        assert_eq!(report.tasks_before, g.len());
        assert!(report.tasks_after < report.tasks_before, "make+double fuse");
    }
}

#[test]
fn several_outputs_come_back_in_the_order_asked() {
    let (g, out) = tree(16, 8);
    let a = Key::new("sum1", &[1]);
    let v = Scheduler::threads(2)
        .run(&g, &[out.clone(), a.clone(), out])
        .unwrap();
    assert_eq!(num(&v[1]), 2 * (5 + 6 + 7 + 8));
    assert_eq!(num(&v[0]), num(&v[2]));
}

#[test]
fn a_failing_task_names_its_key() {
    let (mut g, _) = tree(8, 8);
    let bad = Key::new("bad", &[3]);
    g.insert(
        bad.clone(),
        Task::new(Op::Fail, vec![Key::new("sum1", &[0])]),
    );
    for s in [Scheduler::Synchronous, Scheduler::threads(2)] {
        let e = s.run(&g, std::slice::from_ref(&bad)).unwrap_err();
        assert!(matches!(e, RuntimeError::TaskFailed { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("('bad', 3)") && msg.contains("deliberate failure"),
            "{msg}"
        );
    }
}

#[test]
fn a_panicking_kernel_does_not_cross_the_api() {
    let mut g: Graph<Op> = Graph::new();
    let k = Key::new("boom", &[0]);
    g.insert(k.clone(), Task::new(Op::Panic, vec![]));
    let e = Scheduler::threads(2).run(&g, &[k]).unwrap_err();
    assert!(e.to_string().contains("deliberate panic"), "{e}");
}

#[test]
fn missing_outputs_are_errors() {
    let (g, _) = tree(4, 8);
    assert!(
        Scheduler::threads(2)
            .run(&g, &[Key::new("nope", &[])])
            .is_err()
    );
}

#[test]
fn memory_limit_holds_back_new_sources() {
    // 256 sources of 1 MiB: without a limit, two threads may still keep memory low thanks to
    // the ordering, but with a 4 MiB limit the peak must stay near the limit.
    let mib = 1 << 20;
    let (g, out) = tree(256, mib);
    let limited = Scheduler::threads(2).with_memory_limit(4 * mib);
    let (v, report) = limited
        .run_with_report(&g, std::slice::from_ref(&out))
        .unwrap();
    assert_eq!(num(&v[0]), (1..=256u64).map(|v| 2 * v).sum::<u64>());
    // A source starts only while held bytes are within the limit, so at most the limit plus
    // one chunk per thread (and the few bytes of partial sums) is ever held.
    let bound = 4 * mib + 2 * mib + 4096;
    assert!(
        report.peak_held_bytes <= bound,
        "peak {} bytes",
        report.peak_held_bytes
    );
}

#[test]
fn ordering_alone_keeps_a_reduction_streaming() {
    let mib = 1 << 20;
    let (g, out) = tree(512, mib);
    let (_, report) = Scheduler::Synchronous.run_with_report(&g, &[out]).unwrap();
    // The fan-in of 4 needs four doubled chunks at once; breadth-first would hold all 512.
    assert!(
        report.peak_held_bytes <= 4 * mib + 1024,
        "peak {}",
        report.peak_held_bytes
    );
}

#[test]
fn progress_is_reported_for_every_task() {
    let (g, out) = tree(100, 8);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (_, report) = Scheduler::threads(2)
        .with_progress(move |p| {
            assert!(p.done <= p.total);
            c.fetch_add(1, Ordering::Relaxed);
        })
        .run_with_report(&g, &[out])
        .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), report.tasks_after);
}
