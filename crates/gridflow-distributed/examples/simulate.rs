//! The scheduler's state machine driven by simulated workers (no network): how its CPU
//! time and memory per task grow with the graph and the cluster.
//!
//! `cargo run --release -p gridflow-distributed --example simulate -- [TASKS] [WORKERS...]`
//! (default: 1,000,000 tasks on 10, 100 and 1,000 workers of 2 threads). The graph is a
//! reduction tree of fan-in 4 over ¾ of the tasks as roots. Each simulated step, every
//! worker finishes one task per thread (oldest first) with a 1 MB result after a simulated
//! 1 ms; results move between workers only as placement decides (transfers are not timed).
//! Three workers are lost mid-run (at ¼, ½ and ¾ of the tasks): what they were running
//! is placed elsewhere and the results only they held are recomputed from their lineage.
//! Work stealing runs every step; a steal succeeds when the task has not started (is not
//! among the first two in the worker's queue). Prints one Markdown row per cluster size:
//! scheduler CPU time per task (submit + every event), scheduler memory per task (RSS
//! growth after the submit / tasks), steps, workers lost, tasks run again, steals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A harness: fail loudly.

use gridflow_distributed::core::{Action, Config, Core, TaskId, WorkerId};
use std::collections::VecDeque;
use std::time::Instant;

type Spec = (Vec<u8>, Vec<u32>);

fn tree(n_roots: u32, tasks: &mut Vec<Spec>) -> u32 {
    fn build(lo: u32, hi: u32, tasks: &mut Vec<Spec>) -> u32 {
        if hi - lo == 1 {
            tasks.push((Vec::new(), Vec::new()));
            return tasks.len() as u32 - 1;
        }
        let step = (hi - lo).div_ceil(4);
        let mut ins = Vec::with_capacity(4);
        let mut a = lo;
        while a < hi {
            ins.push(build(a, (a + step).min(hi), tasks));
            a += step;
        }
        tasks.push((Vec::new(), ins));
        tasks.len() as u32 - 1
    }
    build(0, n_roots, tasks)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let n_tasks = args.first().copied().unwrap_or(1_000_000);
    let clusters: Vec<usize> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![10, 100, 1000]
    };
    println!(
        "| workers × threads | tasks | scheduler CPU | per task | memory per task | steps | lost workers | tasks run again | steals |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n_workers in &clusters {
        // Measured before the job is built: its task vectors move into the scheduler.
        let before = rss_kib();
        let mut specs = Vec::with_capacity(n_tasks);
        let root = tree((n_tasks as u32 * 3) / 4, &mut specs);
        let total = specs.len();
        let mut core = Core::new(Config::default());
        let workers: Vec<WorkerId> = (0..n_workers).map(|_| core.add_worker(2)).collect();
        let mut cpu = std::time::Duration::ZERO;
        let t = Instant::now();
        core.submit(specs, vec![root]).unwrap();
        cpu += t.elapsed();
        let after = rss_kib();
        let mut running: Vec<VecDeque<TaskId>> = vec![VecDeque::new(); n_workers];
        let mut alive = vec![true; n_workers];
        // Lose three workers at ¼, ½ and ¾ of the tasks run.
        let mut losses: Vec<(usize, WorkerId)> = [1, 2, 3]
            .iter()
            .map(|&q| {
                (
                    total * q / 4,
                    workers[(n_workers * q / 4).min(n_workers - 1)],
                )
            })
            .collect();
        let (mut steps, mut ran, mut lost) = (0usize, 0usize, 0usize);
        let mut done = false;
        while !done {
            let t = Instant::now();
            core.balance();
            let actions = core.take_actions();
            cpu += t.elapsed();
            let mut answers = Vec::new();
            for a in actions {
                match a {
                    Action::Compute { worker, task } => running[worker as usize].push_back(task),
                    Action::Steal { worker, task } => {
                        let q = &mut running[worker as usize];
                        // The first two (one per thread) have started.
                        let at = q.iter().position(|&x| x == task).filter(|&i| i >= 2);
                        if let Some(i) = at {
                            q.remove(i);
                        }
                        answers.push((worker, task, at.is_some()));
                    }
                    Action::Done { job } => {
                        done = true;
                        let t = Instant::now();
                        core.release_job(job);
                        cpu += t.elapsed();
                    }
                    Action::Failed { message, .. } => panic!("{message}"),
                    _ => {}
                }
            }
            let t = Instant::now();
            for (w, task, stolen) in answers {
                core.steal_response(w, task, stolen);
            }
            for &w in &workers {
                if !alive[w as usize] {
                    continue;
                }
                for _ in 0..2 {
                    if let Some(task) = running[w as usize].pop_front() {
                        core.finished_timed(w, task, 1 << 20, 1_000);
                        ran += 1;
                    }
                }
            }
            if let Some(&(at, w)) = losses.first()
                && ran >= at
            {
                losses.remove(0);
                alive[w as usize] = false;
                running[w as usize].clear();
                core.remove_worker(w);
                lost += 1;
            }
            cpu += t.elapsed();
            steps += 1;
        }
        println!(
            "| {n_workers} × 2 | {total} | {:.2} s | {:.2} µs | {:.0} B | {steps} | {lost} | {} | {} |",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / total as f64 * 1e6,
            (after.saturating_sub(before) * 1024) as f64 / total as f64,
            ran.saturating_sub(total),
            core.steals(),
        );
    }
}
