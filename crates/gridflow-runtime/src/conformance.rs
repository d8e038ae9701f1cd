//! The behaviour every [`Executor`] must show, as a test suite.
//!
//! Each check takes a factory making the executor under test (given an optional progress
//! callback) and panics when the executor misbehaves. [`crate::executor_conformance`]
//! expands to one `#[test]` per check, so an executor's crate runs them all with
//!
//! ```ignore
//! gridflow_runtime::executor_conformance!(|p| Box::new(my_executor(p)));
//! ```
//!
//! The operations are [`TestOp`]s over byte buffers whose first 8 bytes hold a number, so
//! that values of any size can be made and checked; a distributed executor's workers must
//! be able to run them (they are serializable, like every operation).
// A test suite: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{Execute, Executor, Progress, ProgressFn, RuntimeError};
use gridflow_graph::{Graph, Key, Operation, Task};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Makes the executor under test, given an optional progress callback.
pub type Factory<'a> = &'a dyn Fn(Option<ProgressFn>) -> Box<dyn Executor<TestOp>>;

/// The operations of the suite. Values are byte buffers whose first 8 bytes hold a
/// little-endian number; the other bytes repeat the number's low byte.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TestOp {
    /// A source producing `value` padded to `bytes` bytes.
    Make {
        /// The number.
        value: u64,
        /// The buffer's size (at least 8).
        bytes: usize,
    },
    /// Sum of the inputs' numbers (8 bytes).
    Sum,
    /// Doubles the number, keeping the size and refilling the padding.
    Double,
    /// Fails with "deliberate failure".
    Fail,
    /// Panics with "deliberate panic".
    Panic,
    /// Like `Make`, and appends one byte to the file `log` each time it runs: tests count
    /// how often a source was read, across processes.
    Counted {
        /// The number.
        value: u64,
        /// The buffer's size (at least 8).
        bytes: usize,
        /// The file to append to.
        log: String,
    },
}

impl Operation for TestOp {
    fn label(&self) -> String {
        match self {
            TestOp::Make { .. } => "make".into(),
            TestOp::Sum => "sum".into(),
            TestOp::Double => "double".into(),
            TestOp::Fail => "fail".into(),
            TestOp::Panic => "panic".into(),
            TestOp::Counted { .. } => "counted".into(),
        }
    }
    fn is_source(&self) -> bool {
        matches!(self, TestOp::Make { .. } | TestOp::Counted { .. })
    }
    fn is_blockwise(&self) -> bool {
        matches!(self, TestOp::Double)
    }
}

/// The number a buffer holds (0 for a short buffer).
pub fn num(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A buffer of `bytes` bytes (at least 8) holding `n`.
pub fn buf(n: u64, bytes: usize) -> Vec<u8> {
    let mut v = vec![n as u8; bytes.max(8)];
    v[..8].copy_from_slice(&n.to_le_bytes());
    v
}

impl Execute for TestOp {
    type Value = Vec<u8>;
    type Error = String;
    fn execute(&self, inputs: &[&Vec<u8>]) -> Result<Vec<u8>, String> {
        match self {
            TestOp::Make { value, bytes } => Ok(buf(*value, *bytes)),
            TestOp::Sum => Ok(buf(inputs.iter().map(|v| num(v)).sum(), 8)),
            TestOp::Double => {
                let x = inputs.first().ok_or("double: no input")?;
                Ok(buf(num(x) * 2, x.len()))
            }
            TestOp::Fail => Err("deliberate failure".into()),
            TestOp::Panic => panic!("deliberate panic"),
            TestOp::Counted { value, bytes, log } => {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .and_then(|mut f| f.write_all(b"."))
                    .map_err(|e| format!("counted: appending to {log}: {e}"))?;
                Ok(buf(*value, *bytes))
            }
        }
    }
    fn nbytes(v: &Vec<u8>) -> usize {
        v.len()
    }
}

/// `n` sources of `bytes` bytes each (values 1..=n), doubled, summed in a tree of fan-in 4.
/// Returns the graph, the root's key and the doubled blocks' keys.
pub fn tree(n: u64, bytes: usize) -> (Graph<TestOp>, Key, Vec<Key>) {
    let mut g = Graph::new();
    let mut level: Vec<Key> = Vec::new();
    for i in 0..n {
        let m = Key::new("make", &[i as u32]);
        let d = Key::new("double", &[i as u32]);
        g.insert(
            m.clone(),
            Task::new(
                TestOp::Make {
                    value: i + 1,
                    bytes,
                },
                vec![],
            ),
        );
        g.insert(d.clone(), Task::new(TestOp::Double, vec![m]));
        level.push(d);
    }
    let doubled = level.clone();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let name = format!("sum{depth}");
        level = level
            .chunks(4)
            .enumerate()
            .map(|(j, grp)| {
                let k = Key::new(name.as_str(), &[j as u32]);
                g.insert(k.clone(), Task::new(TestOp::Sum, grp.to_vec()));
                k
            })
            .collect();
    }
    (g, level[0].clone(), doubled)
}

/// A tree of 1,000 leaves computes the sum every time, and fusion ran.
pub fn computes_a_reduction(make: Factory<'_>) {
    let ex = make(None);
    let (g, out, _) = tree(1000, 8);
    let want: u64 = (1..=1000u64).map(|v| 2 * v).sum();
    for _ in 0..3 {
        let (v, report) = ex.run_with_report(&g, std::slice::from_ref(&out)).unwrap();
        assert_eq!(num(&v[0]), want, "{}", ex.describe());
        assert_eq!(report.tasks_before, g.len());
        assert!(report.tasks_after < report.tasks_before, "make+double fuse");
    }
}

/// Outputs come back in the order asked, repeated outputs included.
pub fn outputs_come_back_in_the_order_asked(make: Factory<'_>) {
    let ex = make(None);
    let (g, out, _) = tree(16, 8);
    let a = Key::new("sum1", &[1]);
    let v = ex.run(&g, &[out.clone(), a.clone(), out]).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(num(&v[1]), 2 * (5 + 6 + 7 + 8));
    assert_eq!(num(&v[0]), num(&v[2]));
    assert_eq!(num(&v[0]), (1..=16u64).map(|v| 2 * v).sum::<u64>());
}

/// Large values arrive whole: every byte of 1 MiB blocks, several of them requested.
pub fn large_values_arrive_intact(make: Factory<'_>) {
    let ex = make(None);
    let mib = 1 << 20;
    let (g, _, doubled) = tree(12, mib);
    let v = ex.run(&g, &doubled).unwrap();
    for (i, b) in v.iter().enumerate() {
        assert_eq!(**b, buf(2 * (i as u64 + 1), mib), "block {i}");
    }
}

/// A task reading the same input twice, and an input read by many tasks.
pub fn shared_and_repeated_inputs(make: Factory<'_>) {
    let ex = make(None);
    let mut g = Graph::new();
    let x = Key::new("x", &[]);
    g.insert(
        x.clone(),
        Task::new(
            TestOp::Make {
                value: 7,
                bytes: 64,
            },
            vec![],
        ),
    );
    let mut readers = Vec::new();
    for i in 0..20u32 {
        let k = Key::new("twice", &[i]);
        g.insert(
            k.clone(),
            Task::new(TestOp::Sum, vec![x.clone(), x.clone()]),
        );
        readers.push(k);
    }
    let total = Key::new("total", &[]);
    g.insert(total.clone(), Task::new(TestOp::Sum, readers.clone()));
    let v = ex.run(&g, &[total, readers[3].clone(), x]).unwrap();
    assert_eq!(num(&v[0]), 20 * 14);
    assert_eq!(num(&v[1]), 14);
    assert_eq!(*v[2], buf(7, 64));
}

/// An empty request runs nothing and returns nothing.
pub fn an_empty_request_returns_nothing(make: Factory<'_>) {
    let ex = make(None);
    let (g, _, _) = tree(4, 8);
    let v = ex.run(&g, &[]).unwrap();
    assert!(v.is_empty());
}

/// A failing task is reported with its key and message, and the executor stays usable.
pub fn a_failing_task_names_its_key(make: Factory<'_>) {
    let ex = make(None);
    let (mut g, out, _) = tree(8, 8);
    let bad = Key::new("bad", &[3]);
    g.insert(
        bad.clone(),
        Task::new(TestOp::Fail, vec![Key::new("sum1", &[0])]),
    );
    let e = ex.run(&g, std::slice::from_ref(&bad)).unwrap_err();
    assert!(matches!(e, RuntimeError::TaskFailed { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("('bad', 3)") && msg.contains("deliberate failure"),
        "{msg}"
    );
    let v = ex.run(&g, &[out]).unwrap();
    assert_eq!(num(&v[0]), (1..=8u64).map(|v| 2 * v).sum::<u64>());
}

/// A panicking operation becomes an error, not a crash, and the executor stays usable.
pub fn a_panicking_task_is_an_error(make: Factory<'_>) {
    let ex = make(None);
    let mut g: Graph<TestOp> = Graph::new();
    let k = Key::new("boom", &[0]);
    g.insert(k.clone(), Task::new(TestOp::Panic, vec![]));
    let e = ex.run(&g, &[k]).unwrap_err();
    assert!(e.to_string().contains("deliberate panic"), "{e}");
    let (g, out, _) = tree(4, 8);
    assert_eq!(num(&ex.run(&g, &[out]).unwrap()[0]), 20);
}

/// Asking for a key the graph lacks is an error naming it.
pub fn missing_outputs_are_errors(make: Factory<'_>) {
    let ex = make(None);
    let (g, _, _) = tree(4, 8);
    let e = ex.run(&g, &[Key::new("nope", &[])]).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

/// The progress callback sees every task once, ending at the total.
pub fn progress_is_reported_for_every_task(make: Factory<'_>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicUsize::new(0));
    let (c, l) = (calls.clone(), last.clone());
    let ex = make(Some(Arc::new(move |p: Progress| {
        assert!(p.done <= p.total);
        c.fetch_add(1, Ordering::Relaxed);
        l.fetch_max(p.done, Ordering::Relaxed);
    })));
    let (g, out, _) = tree(100, 8);
    let (_, report) = ex.run_with_report(&g, &[out]).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), report.tasks_after);
    assert_eq!(last.load(Ordering::Relaxed), report.tasks_after);
}

/// Expands to one `#[test]` per conformance check, each calling `$make` (an expression of
/// type `fn(Option<ProgressFn>) -> Box<dyn Executor<TestOp>>` or a closure) for its
/// executor. Invoke it once per executor configuration, each in its own module.
#[macro_export]
macro_rules! executor_conformance {
    ($make:expr) => {
        $crate::executor_conformance!(@tests $make;
            computes_a_reduction,
            outputs_come_back_in_the_order_asked,
            large_values_arrive_intact,
            shared_and_repeated_inputs,
            an_empty_request_returns_nothing,
            a_failing_task_names_its_key,
            a_panicking_task_is_an_error,
            missing_outputs_are_errors,
            progress_is_reported_for_every_task
        );
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let make = $make;
                $crate::conformance::$check(&make);
            }
        )*
    };
}
