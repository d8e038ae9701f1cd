//! The local executor: the conformance suite in every configuration, then what only a
//! local pool promises (its memory budget and ordering) and the scheduling state machine
//! stepped by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.
use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::conformance::{TestOp, num, tree};
use gridflow_runtime::{Admission, Executor, LocalExecutor, Plan, ProgressFn, SchedulingState};

fn with_progress(e: LocalExecutor, p: Option<ProgressFn>) -> Box<dyn Executor<TestOp>> {
    match p {
        Some(p) => Box::new(e.with_progress(move |x| p(x))),
        None => Box::new(e),
    }
}

mod synchronous {
    use super::*;
    gridflow_runtime::executor_conformance!(|p: Option<ProgressFn>| {
        // Progress needs a pool; a one-thread pool runs on the calling thread too.
        match p {
            None => Box::new(LocalExecutor::Synchronous) as Box<dyn Executor<TestOp>>,
            p => with_progress(LocalExecutor::threads(1), p),
        }
    });
}

mod one_thread {
    use super::*;
    gridflow_runtime::executor_conformance!(|p| with_progress(LocalExecutor::threads(1), p));
}

mod two_threads {
    use super::*;
    gridflow_runtime::executor_conformance!(|p| with_progress(LocalExecutor::threads(2), p));
}

mod four_threads {
    use super::*;
    gridflow_runtime::executor_conformance!(|p| with_progress(LocalExecutor::threads(4), p));
}

mod default_pool {
    use super::*;
    gridflow_runtime::executor_conformance!(|p| with_progress(LocalExecutor::Default, p));
}

mod tight_memory_budget {
    use super::*;
    gridflow_runtime::executor_conformance!(|p| with_progress(
        LocalExecutor::threads(3).with_memory_limit(1),
        p
    ));
}

#[test]
fn memory_limit_holds_back_new_sources() {
    // 256 sources of 1 MiB: without a limit, two threads may still keep memory low thanks to
    // the ordering, but with a 4 MiB limit the peak must stay near the limit.
    let mib = 1 << 20;
    let (g, out, _) = tree(256, mib);
    let limited = LocalExecutor::threads(2).with_memory_limit(4 * mib);
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
    let (g, out, _) = tree(512, mib);
    let (_, report) = LocalExecutor::Synchronous
        .run_with_report(&g, &[out])
        .unwrap();
    // The fan-in of 4 needs four doubled chunks at once; breadth-first would hold all 512.
    assert!(
        report.peak_held_bytes <= 4 * mib + 1024,
        "peak {}",
        report.peak_held_bytes
    );
}

#[test]
fn peak_estimates_admit_fewer_sources_than_held_bytes_alone() {
    // Four sources of 1 MiB, summed in one task: with a 2.5 MiB budget and estimates of
    // 1 MiB per source, at most two sources may be running or held before the sum...
    // except that the sum needs all four, so admission must still let the run finish.
    let mib = 1u64 << 20;
    let (g, out, _) = tree(4, mib as usize);
    let program = g
        .indexed(std::slice::from_ref(&out))
        .unwrap()
        .program(true)
        .unwrap();
    let peaks = vec![mib; program_len(&program)];
    let ex = LocalExecutor::threads(4).with_memory_limit((2 * mib + mib / 2) as usize);
    let (v, report) = ex
        .run_plan(Plan::new(&program).with_peak_bytes(&peaks))
        .unwrap();
    assert_eq!(num(&v[0]), 20);
    assert!(report.peak_held_bytes as u64 <= 4 * mib + 8);
}

fn program_len<O: gridflow_graph::Operation>(p: &dyn gridflow_graph::Runnable<O>) -> usize {
    p.len()
}

/// Steps the state machine by hand on `tree(8)`: a source held back by the budget starts
/// again once memory is released, values nobody reads are released at once, and the run
/// completes with every task counted once.
#[test]
fn the_state_machine_admits_releases_and_completes() {
    let (g, out, _) = tree(8, 100);
    let c = g.compile(std::slice::from_ref(&out), true).unwrap();
    // Fused: 8 make+double sources, 2 sum1, 1 sum2 = 11 tasks.
    assert_eq!(c.len(), 11);
    let mut s = SchedulingState::new(
        &c,
        Admission {
            limit: Some(150),
            peak_bytes: None,
        },
    );
    assert_eq!(s.ready(), 8);
    let first = s.next_task().unwrap();
    let second = s.next_task().unwrap();
    assert!(first < second, "priority order");
    let mut released = Vec::new();
    let f = s.finished(&c, first, 100, |i| released.push(i));
    assert!(f.keep && released.is_empty());
    let f = s.finished(&c, second, 100, |i| released.push(i));
    assert!(f.keep);
    assert_eq!(s.held_bytes(), 200);
    // Over budget and nothing running: one source may still start (to make progress)...
    let third = s.next_task().unwrap();
    // ...but not a second one while it runs.
    assert_eq!(s.next_task(), None);
    assert_eq!(s.running(), 1);
    s.finished(&c, third, 100, |i| released.push(i));
    let fourth = s.next_task().unwrap();
    s.finished(&c, fourth, 100, |i| released.push(i));
    // Four leaves held: their sum is ready and preferred over new sources.
    let sum = s.next_task().unwrap();
    assert!(c.inputs[sum as usize].len() == 4, "the sum runs next");
    let f = s.finished(&c, sum, 8, |i| released.push(i));
    assert!(f.keep);
    released.sort_unstable();
    let mut want = c.inputs[sum as usize].clone();
    want.sort_unstable();
    assert_eq!(released, want, "the leaves are released after the sum");
    assert_eq!(s.held_bytes(), 8);
    // Run the rest to completion, one at a time.
    while let Some(t) = s.next_task() {
        s.finished(&c, t, 8, |_| {});
    }
    assert!(s.is_complete());
    assert_eq!(s.done(), 11);
    assert_eq!(s.peak_bytes(), 400 + 8);
    // Only the output is held at the end.
    assert_eq!(s.held_bytes(), 8);
}

#[test]
fn the_state_machine_reserves_estimated_peaks() {
    let mut g = Graph::new();
    let mut leaves = Vec::new();
    for i in 0..4u32 {
        let k = Key::new("make", &[i]);
        g.insert(
            k.clone(),
            Task::new(TestOp::Make { value: 1, bytes: 8 }, vec![]),
        );
        leaves.push(k);
    }
    let root = Key::new("root", &[]);
    g.insert(root.clone(), Task::new(TestOp::Sum, leaves));
    let c = g.compile(std::slice::from_ref(&root), true).unwrap();
    let mut peaks = vec![0u64; c.len()];
    for (id, ins) in c.inputs.iter().enumerate() {
        if ins.is_empty() {
            peaks[id] = 40;
        }
    }
    let mut s = SchedulingState::new(
        &c,
        Admission {
            limit: Some(100),
            peak_bytes: Some(peaks),
        },
    );
    // Two sources of estimated 40 bytes fit in 100; a third does not while they run.
    let a = s.next_task().unwrap();
    let b = s.next_task().unwrap();
    assert_eq!(s.next_task(), None);
    s.finished(&c, a, 8, |_| {});
    // 8 held + 40 reserved + 40 wanted <= 100: admitted.
    let c3 = s.next_task().unwrap();
    assert_ne!(c3, b);
}
