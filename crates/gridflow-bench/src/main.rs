//! gridflow's benchmark binary.
//!
//! `cargo run --release -p gridflow-bench -- all` runs every benchmark, each in its own
//! process so that its peak RSS is its own, and prints one Markdown table row per run.
//! `--quick` shrinks every size so that CI can check the harness runs; its timings mean
//! nothing. Times are reported, never asserted.

mod suite;

use anyhow::{Context, Result, bail};
use gridflow_array::{Chunk, ChunkedArray, DType, LocalExecutor};
use std::process::Command;
use std::time::Instant;

const BENCHES: [&str; 4] = ["overhead", "w5", "elementwise", "out-of-core"];

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn threads() -> usize {
    std::env::var("GRIDFLOW_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Median of `reps` runs of `f` (after one warm-up), in seconds.
fn median_secs(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Minimum and median of a series of timings, in seconds.
struct Timing {
    min: f64,
    median: f64,
}

impl Timing {
    fn of(mut times: Vec<f64>) -> Timing {
        times.sort_by(f64::total_cmp);
        Timing {
            min: times.first().copied().unwrap_or(f64::NAN),
            median: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        }
    }
}

/// `reps` timed runs of `a` and of `b`, alternating (after one warm-up of each).
fn interleaved(
    reps: usize,
    a: &mut dyn FnMut() -> Result<()>,
    b: &mut dyn FnMut() -> Result<()>,
) -> Result<(Timing, Timing)> {
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let t = Instant::now();
        a()?;
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b()?;
        tb.push(t.elapsed().as_secs_f64());
    }
    Ok((Timing::of(ta), Timing::of(tb)))
}

fn row(bench: &str, what: &str, secs: f64, extra: &str) {
    println!(
        "| {bench} | {what} | {secs:.4} s | {:.0} MiB | {extra} |",
        peak_rss_mib()
    );
}

/// Per-task overhead of the local executor: many tiny tasks (ones(n, chunks=1).sum()).
fn overhead(quick: bool) -> Result<()> {
    let n = if quick { 2_000 } else { 100_000 };
    let x = ChunkedArray::ones(&[n], [1], DType::F64)?.sum(None)?;
    let sched = LocalExecutor::threads(threads());
    let mut last = None;
    let secs = median_secs(if quick { 1 } else { 5 }, || {
        let (c, report) = x.compute_with_report(&sched)?;
        if c.scalar().map(|s| s.as_f64()) != Some(n as f64) {
            bail!("wrong sum");
        }
        last = Some(report);
        Ok(())
    })?;
    let Some(r) = last else { bail!("no run") };
    // Building the lazy array (its layers of tasks), separately: Dask users pay it too, and
    // `compute` starts from it (the layers are compiled as they are, never merged into a
    // hashed graph).
    let built = r.tasks_before;
    let build = median_secs(if quick { 1 } else { 5 }, || {
        let x = ChunkedArray::ones(&[n], [1], DType::F64)?.sum(None)?;
        if x.npartitions() != 1 {
            bail!("not a full reduction");
        }
        Ok(())
    })?;
    let per = |d: std::time::Duration| d.as_secs_f64() / r.tasks_after as f64 * 1e6;
    row(
        "overhead",
        &format!(
            "ones({n}, chunks=1).sum(): {built} tasks built, {} run",
            r.tasks_after
        ),
        secs,
        &format!(
            "executor {:.2} µs/task; with cull+fuse+order {:.2} µs/task; lazy array build \
             {build:.3} s",
            per(r.execute_time),
            secs / r.tasks_after as f64 * 1e6,
        ),
    );
    Ok(())
}

/// W5: ones((20000, 20000), chunks=(200, 200)).sum(), build + optimize + run.
///
/// Besides the median of the whole, prints the minimum and median of each phase: building
/// the lazy array, compiling its graph (indexing, culling, fusing and ordering), executing
/// it, finishing (assembling the result, freeing the plan) and dropping the array. A second
/// row runs the same graph (a 100 × 100 grid of blocks) with one-element blocks: what W5
/// costs besides filling and summing its 3.2 GB of blocks.
fn w5(quick: bool) -> Result<()> {
    let (n, c) = if quick { (2_000, 200) } else { (20_000, 200) };
    let reps = if quick { 1 } else { 9 };
    w5_row("w5", n, c, reps)?;
    w5_row("w5-graph-only", n / c, 1, reps)
}

/// Times `ones((n, n), chunks=(c, c)).sum()` phase by phase and prints a row.
fn w5_row(bench: &str, n: usize, c: usize, reps: usize) -> Result<()> {
    let sched = LocalExecutor::threads(threads());
    let mut tasks = (0, 0);
    let mut phases: [Vec<f64>; 6] = Default::default();
    let mut run = |phases: Option<&mut [Vec<f64>; 6]>| -> Result<()> {
        let t0 = Instant::now();
        let x = ChunkedArray::ones(&[n, n], [c, c], DType::F64)?.sum(None)?;
        let t1 = Instant::now();
        let (v, report) = x.compute_with_report(&sched)?;
        let t2 = Instant::now();
        drop(x);
        let t3 = Instant::now();
        if v.scalar().map(|s| s.as_f64()) != Some((n * n) as f64) {
            bail!("wrong sum");
        }
        tasks = (report.tasks_before, report.tasks_after);
        if let Some(p) = phases {
            let compute = (t2 - t1).as_secs_f64();
            let execute = report.execute_time.as_secs_f64();
            let compile = report.optimize_time.as_secs_f64();
            p[0].push((t3 - t0).as_secs_f64());
            p[1].push((t1 - t0).as_secs_f64());
            p[2].push(compile);
            p[3].push(execute);
            p[4].push(compute - execute - compile);
            p[5].push((t3 - t2).as_secs_f64());
        }
        Ok(())
    };
    run(None)?;
    for _ in 0..reps {
        run(Some(&mut phases))?;
    }
    let [total, build, compile, execute, finish, drop_time] = phases.map(Timing::of);
    let ms = |t: &Timing| format!("{:.1}/{:.1} ms", t.min * 1e3, t.median * 1e3);
    row(
        bench,
        &format!("ones(({n}, {n}), chunks=({c}, {c})).sum()"),
        total.median,
        &format!(
            "{} tasks, {} after fusion; min/median: total {}, build {}, compile {}, execute {}, \
             finish {}, drop {}",
            tasks.0,
            tasks.1,
            ms(&total),
            ms(&build),
            ms(&compile),
            ms(&execute),
            ms(&finish),
            ms(&drop_time)
        ),
    );
    Ok(())
}

/// In-memory elementwise + reduction, against a hand-written single-pass loop on the same
/// threads: sum(sqrt(2 * x + 1)) over float64 data.
fn elementwise(quick: bool) -> Result<()> {
    let n: usize = if quick { 1 << 20 } else { 1 << 27 };
    let block = if quick { 1 << 16 } else { 1 << 20 };
    let t = threads();
    let x = ChunkedArray::random(&[n], [block], 3)?.persist_with(&LocalExecutor::threads(t))?;
    let expr = x.mul(2.0)?.add(1.0)?.sqrt()?.sum(None)?;
    let sched = LocalExecutor::threads(t);
    // The same numbers as one contiguous ndarray, summed by a hand-written loop on t threads.
    let data = match x.compute_with(&sched)? {
        Chunk::F64(a) => a.into_raw_vec_and_offset().0,
        _ => bail!("expected float64"),
    };
    let mut engine_value = 0.0;
    let mut engine_run = || -> Result<()> {
        engine_value = expr
            .compute_with(&sched)?
            .scalar()
            .map_or(f64::NAN, |s| s.as_f64());
        Ok(())
    };
    let mut hand_value = 0.0;
    let mut hand_run = || -> Result<()> {
        let parts: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = data
                .chunks(n.div_ceil(t))
                .map(|part| s.spawn(move || hand_sum(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(f64::NAN))
                .collect()
        });
        hand_value = parts.iter().sum();
        Ok(())
    };
    // Engine and hand loop alternate, so that both see the same load on a shared machine.
    let (engine, hand) = interleaved(if quick { 1 } else { 7 }, &mut engine_run, &mut hand_run)?;
    if ((engine_value - hand_value) / hand_value).abs() > 1e-9 {
        bail!("engine {engine_value} and hand loop {hand_value} disagree");
    }
    row(
        "elementwise",
        &format!(
            "sum(sqrt(2x+1)), {} MiB float64 in memory, blocks of {} MiB",
            (n * 8) >> 20,
            (block * 8) >> 20
        ),
        engine.median,
        &format!(
            "hand-written loop {:.4} s; ratio {:.2} (medians), {:.2} (minima: {:.4} s vs {:.4} s)",
            hand.median,
            engine.median / hand.median,
            engine.min / hand.min,
            engine.min,
            hand.min
        ),
    );
    Ok(())
}

/// The hand-written single pass: 8 independent accumulators, so the loop is limited by
/// memory and `sqrt` throughput rather than by the latency of one running sum.
fn hand_sum(part: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut blocks = part.chunks_exact(8);
    for b in &mut blocks {
        for (a, v) in acc.iter_mut().zip(b) {
            *a += (2.0 * v + 1.0).sqrt();
        }
    }
    let tail: f64 = blocks
        .remainder()
        .iter()
        .map(|v| (2.0 * v + 1.0).sqrt())
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// Out-of-core: the sum of a lazily generated 16 GiB random float64 array.
fn out_of_core(quick: bool) -> Result<()> {
    let n: usize = if quick { 1 << 22 } else { 1 << 31 };
    let block = if quick { 1 << 18 } else { 1 << 21 };
    let x = ChunkedArray::random(&[n], [block], 11)?.sum(None)?;
    let t = Instant::now();
    let (v, report) =
        x.compute_with_report(&LocalExecutor::threads(threads()).with_memory_limit(64 << 20))?;
    let secs = t.elapsed().as_secs_f64();
    let sum = v.scalar().map_or(f64::NAN, |s| s.as_f64());
    let mean = sum / n as f64;
    if (mean - 0.5).abs() > 0.01 {
        bail!("mean of uniform randoms is {mean}");
    }
    if quick {
        // small enough to hold: the same numbers generated as one block, summed in order
        let whole =
            ChunkedArray::random(&[n], [block], 11)?.compute_with(&LocalExecutor::Synchronous)?;
        let want: f64 = whole.to_f64_vec().iter().sum();
        if !((sum - want) / want).abs().le(&1e-6) {
            bail!("out-of-core sum {sum} and the in-memory sum {want} disagree");
        }
    }
    row(
        "out-of-core",
        &format!(
            "random({} GiB float64, blocks of {} MiB).sum()",
            (n * 8) as f64 / (1u64 << 30) as f64,
            (block * 8) >> 20
        ),
        secs,
        &format!(
            "{} tasks; held results peaked at {:.1} MiB",
            report.tasks_after,
            report.peak_held_bytes as f64 / (1 << 20) as f64
        ),
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let names: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if args.first().map(String::as_str) == Some("workload") {
        return suite::run(&args[1..]); // one workload of the suite (bench/suite)
    }
    let which = names.first().copied().unwrap_or("all");
    match which {
        "all" => {
            println!("| bench | workload | median time | peak RSS | notes |");
            println!("|---|---|---|---|---|");
            let exe = std::env::current_exe().context("locating the bench binary")?;
            for b in BENCHES {
                let mut cmd = Command::new(&exe);
                cmd.arg(b);
                if quick {
                    cmd.arg("--quick");
                }
                let out = cmd.output().with_context(|| format!("running bench {b}"))?;
                let text = String::from_utf8_lossy(&out.stdout);
                print!("{text}");
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                if !out.status.success() {
                    bail!("bench {b} failed ({})", out.status);
                }
                // each bench prints its table rows exactly once: a missing one fails the run
                let names: &[&str] = if b == "w5" {
                    &["w5", "w5-graph-only"]
                } else {
                    &[b]
                };
                for name in names {
                    let rows = text
                        .lines()
                        .filter(|l| l.starts_with(&format!("| {name} |")))
                        .count();
                    if rows != 1 {
                        bail!("bench {b} printed {rows} {name:?} rows, expected 1");
                    }
                }
            }
            Ok(())
        }
        "overhead" => overhead(quick),
        "w5" => w5(quick),
        "elementwise" => elementwise(quick),
        "out-of-core" => out_of_core(quick),
        other => bail!(
            "unknown bench {other:?}; choose one of all, {}",
            BENCHES.join(", ")
        ),
    }
}
