//! `/metrics`: the snapshot in Prometheus' text exposition format (version 0.0.4).

use super::Snapshot;
use std::fmt::Write;

/// Escapes a label value (backslash, double quote and newline, as the format requires).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        // Whole numbers print as integers (and never as `-0`, which an empty float sum
        // gives); the format accepts either.
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.0, " {}", value as i64);
        } else {
            let _ = writeln!(self.0, " {value}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The metrics page for `s`.
pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::with_capacity(4096));
    let w = &s.workers;
    o.one(
        "gridflow_workers",
        "gauge",
        "Workers connected.",
        w.len() as f64,
    );
    o.one(
        "gridflow_threads",
        "gauge",
        "Threads running tasks, over all workers.",
        w.iter().map(|x| f64::from(x.nthreads)).sum(),
    );
    o.family(
        "gridflow_tasks",
        "gauge",
        "Tasks of the current computations by state.",
    );
    let sum = |f: fn(&super::GroupSnapshot) -> u64| s.groups.iter().map(f).sum::<u64>() as f64;
    for (state, v) in [
        ("waiting", sum(|g| g.waiting)),
        ("queued", sum(|g| g.queued)),
        ("processing", sum(|g| g.processing)),
        ("memory", sum(|g| g.memory)),
        ("erred", sum(|g| g.erred)),
    ] {
        o.sample("gridflow_tasks", &[("state", state)], v);
    }
    o.family(
        "gridflow_worker_memory_bytes",
        "gauge",
        "Worker memory by kind: managed (results), unmanaged (the rest of the process), spilled (results on disk).",
    );
    for x in w {
        for (kind, v) in [
            ("managed", x.managed_bytes),
            ("unmanaged", x.unmanaged_bytes),
            ("spilled", x.spilled_bytes),
        ] {
            o.sample(
                "gridflow_worker_memory_bytes",
                &[("worker", &x.name), ("kind", kind)],
                v as f64,
            );
        }
    }
    o.one(
        "gridflow_memory_bytes",
        "gauge",
        "Bytes of results in memory, over all workers.",
        w.iter().map(|x| x.managed_bytes as f64).sum(),
    );
    o.one(
        "gridflow_spilled_bytes",
        "gauge",
        "Bytes of results spilled to disk, over all workers.",
        w.iter().map(|x| x.spilled_bytes as f64).sum(),
    );
    let c = &s.counters;
    o.one(
        "gridflow_tasks_completed_total",
        "counter",
        "Tasks finished since the scheduler started.",
        c.tasks_completed_total as f64,
    );
    o.one(
        "gridflow_tasks_erred_total",
        "counter",
        "Tasks failed since the scheduler started.",
        c.tasks_erred_total as f64,
    );
    o.one(
        "gridflow_transfer_bytes_total",
        "counter",
        "Bytes workers fetched from each other since the scheduler started.",
        c.bytes_transferred_total as f64,
    );
    o.one(
        "gridflow_jobs_total",
        "counter",
        "Computations submitted since the scheduler started.",
        c.jobs_total as f64,
    );
    o.family(
        "gridflow_scheduler_loop_seconds",
        "summary",
        "Time the scheduler's event loop spent per iteration (a batch of events).",
    );
    o.sample(
        "gridflow_scheduler_loop_seconds_sum",
        &[],
        c.loop_seconds_total,
    );
    o.sample(
        "gridflow_scheduler_loop_seconds_count",
        &[],
        c.loop_iterations_total as f64,
    );
    o.one(
        "gridflow_scheduler_loop_max_seconds",
        "gauge",
        "The longest scheduler loop iteration in the last publication interval.",
        c.loop_seconds_max,
    );
    o.0
}
