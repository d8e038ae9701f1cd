//! `gridflow-bench workload W..`: one workload of the suite (issue 7) in this process.
//!
//! The suite driver (`bench/suite/run.sh`) starts this once per repetition, so each run pays
//! what a user's process pays: startup, opening the store or catalog, building the graph,
//! computing. It prints one JSON line: phase times, task counts, the peak RSS of this
//! process (`VmHWM`) and a checksum (the float64 sum of the result values that are not NaN:
//! the stores have masked values, as CMIP6's do) that
//! `bench/suite/dask_workload.py` computes the same way on the same data.
//!
//! ```text
//! gridflow-bench workload W1 --store DIR [--threads 2] [--memory-limit 1.5GB]
//! gridflow-bench workload W0 --catalog DIR/pangeo-cmip6.json
//! gridflow-bench workload W5 [--n 20000 --chunk 200]
//! gridflow-bench workload W2 --store DIR --values-out w2.json   # also every value
//! ```

use anyhow::{Context, Result, bail};
use gridflow_array::kernels::UnaryOp;
use gridflow_array::{Chunk, ChunkedArray, DType, Scheduler};
use gridflow_catalog::{DatasetDictOptions, EsmCatalog, Query};
use gridflow_dataset::{DataArray, Label, Method, OpenOptions, Reduction, SelOptions, Selector};
use gridflow_runtime::RunReport;
use gridflow_store::StoreOptions;
use serde_json::{Value, json};
use std::time::Instant;

/// The workloads, as named in issue 7.
pub const WORKLOADS: [&str; 8] = ["W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7"];

/// The catalog search of W0 (the Pangeo CMIP6 tutorial's).
const SEARCH: [(&str, &str); 5] = [
    ("experiment_id", "historical"),
    ("institution_id", "NIMS-KMA"),
    ("table_id", "3hr"),
    ("variable_id", "tas"),
    ("member_id", "r1i1p1f1"),
];

/// Command-line options of `workload`.
struct Options {
    workload: String,
    store: Option<String>,
    catalog: Option<String>,
    threads: usize,
    memory_limit: usize,
    n: usize,
    chunk: usize,
    /// Where to write every value of the result (JSON, row-major, NaN as null).
    values_out: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            workload: String::new(),
            store: None,
            catalog: None,
            threads: 2,
            memory_limit: total_memory() / 2,
            n: 20_000,
            chunk: 200,
            values_out: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .with_context(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--store" => o.store = Some(value()?),
                "--catalog" => o.catalog = Some(value()?),
                "--threads" => o.threads = value()?.parse().context("--threads")?,
                "--memory-limit" => o.memory_limit = parse_size(&value()?)?,
                "--n" => o.n = value()?.parse().context("--n")?,
                "--chunk" => o.chunk = value()?.parse().context("--chunk")?,
                "--values-out" => o.values_out = Some(value()?),
                w if !w.starts_with("--") && o.workload.is_empty() => o.workload = w.to_owned(),
                other => bail!("workload: unexpected argument {other:?}"),
            }
        }
        if !WORKLOADS.contains(&o.workload.as_str()) {
            bail!(
                "workload: choose one of {} (got {:?})",
                WORKLOADS.join(", "),
                o.workload
            );
        }
        Ok(o)
    }

    fn store(&self) -> Result<&str> {
        self.store
            .as_deref()
            .with_context(|| format!("{} needs --store DIR", self.workload))
    }
}

/// Parses `1.5GB`, `512MiB`, `800M` or bytes.
fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("memory size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("memory size {s:?}: unknown unit {other:?}"),
    };
    Ok((n * mult) as usize)
}

/// Total RAM in bytes (8 GiB when /proc/meminfo is unreadable), for the default budget of
/// half the RAM that `gridflow eval` also uses.
fn total_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(8 << 30, |kb| kb * 1024)
}

/// `VmHWM` of this process, MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// What a workload measured.
struct Outcome {
    open_s: f64,
    checksum: f64,
    /// Every value of the result (none for W0, which computes nothing).
    values: Vec<f64>,
    shape: Vec<usize>,
    report: Option<RunReport>,
    extra: Value,
}

/// The float64 sum of the values that are not NaN (NumPy's `nansum`).
fn checksum(c: &Chunk) -> f64 {
    c.to_f64_vec().iter().filter(|v| !v.is_nan()).sum()
}

/// Opens a store the way `xr.open_zarr(store)` does: chunks as stored, CF decoding.
fn open_tas(store: &str) -> Result<DataArray> {
    let ds = gridflow_dataset::open_zarr(store, &OpenOptions::default())
        .with_context(|| format!("opening {store}"))?;
    Ok(ds.get("tas")?)
}

/// Computes `da` on the scheduler, with the run report.
fn compute(da: &DataArray, sched: &Scheduler, open_s: f64) -> Result<Outcome> {
    let (c, report) = da.data().compute_with_report(sched)?;
    Ok(Outcome {
        open_s,
        checksum: checksum(&c),
        values: c.to_f64_vec(),
        shape: c.shape().to_vec(),
        report: Some(report),
        extra: json!({}),
    })
}

fn w0(o: &Options) -> Result<Outcome> {
    let path = o.catalog.as_deref().context("W0 needs --catalog FILE")?;
    let cat = EsmCatalog::open(path, &StoreOptions::default())
        .with_context(|| format!("opening the catalog {path}"))?;
    let mut q = Query::new();
    for (col, val) in SEARCH {
        q = q.with(col, val);
    }
    let found = cat.search(&q)?;
    let dict = found.to_dataset_dict(&DatasetDictOptions::default())?;
    if let Some((k, e)) = dict.errors.iter().next() {
        bail!("to_dataset_dict: {k}: {e}");
    }
    let (key, ds) = dict
        .datasets
        .iter()
        .next()
        .context("the search left no dataset")?;
    let tas = ds.get("tas")?;
    // Touches the opened coordinates and metadata only: no tas chunk is read.
    let lat: f64 = tas.coord("lat")?.to_f64_vec()?.iter().sum();
    let lon: f64 = tas.coord("lon")?.to_f64_vec()?.iter().sum();
    let size: usize = tas.shape().iter().product();
    Ok(Outcome {
        open_s: 0.0,
        checksum: lat + lon + size as f64,
        values: Vec::new(),
        shape: tas.shape().to_vec(),
        report: None,
        extra: json!({"keys": dict.datasets.len(), "key": key, "rows": found.len(), "dims": tas.dims()}),
    })
}

fn run_workload(o: &Options, sched: &Scheduler) -> Result<Outcome> {
    let t = Instant::now();
    match o.workload.as_str() {
        "W0" => w0(o),
        "W1" => {
            let tas = open_tas(o.store()?)?;
            let opts = SelOptions {
                method: Method::Nearest,
                ..SelOptions::default()
            };
            let point = tas.sel(
                &[
                    ("lat", Selector::Label(Label::Float(45.5))),
                    ("lon", Selector::Label(Label::Float(9.4))),
                ],
                &opts,
            )?;
            compute(&point, sched, t.elapsed().as_secs_f64())
        }
        "W2" | "W6" => {
            let tas = open_tas(o.store()?)?;
            compute(
                &tas.mean(Some(&["time"]))?,
                sched,
                t.elapsed().as_secs_f64(),
            )
        }
        "W3" => {
            let tas = open_tas(o.store()?)?;
            let clim = tas.groupby("time.month")?.reduce(Reduction::Mean, None)?;
            compute(&clim, sched, t.elapsed().as_secs_f64())
        }
        "W4" => {
            let tas = open_tas(o.store()?)?;
            let w = tas
                .coord("lat")?
                .unary(UnaryOp::Deg2Rad)?
                .unary(UnaryOp::Cos)?;
            let mean = tas.weighted(&w)?.mean(Some(&["lat", "lon"]))?;
            compute(&mean, sched, t.elapsed().as_secs_f64())
        }
        "W7" => {
            // a 3-month time range: `tas.sel(time=slice("1851-01", "1851-03")).mean("time")`
            let tas = open_tas(o.store()?)?;
            let months = tas.sel(
                &[(
                    "time",
                    Selector::Slice {
                        start: Some(Label::Str("1851-01".into())),
                        stop: Some(Label::Str("1851-03".into())),
                        step: None,
                    },
                )],
                &SelOptions::default(),
            )?;
            compute(
                &months.mean(Some(&["time"]))?,
                sched,
                t.elapsed().as_secs_f64(),
            )
        }
        "W5" => {
            let x = ChunkedArray::ones(&[o.n, o.n], [o.chunk, o.chunk], DType::F64)?.sum(None)?;
            let (c, report) = x.compute_with_report(sched)?;
            Ok(Outcome {
                open_s: 0.0,
                checksum: checksum(&c),
                values: c.to_f64_vec(),
                shape: c.shape().to_vec(),
                report: Some(report),
                extra: json!({"n": o.n, "chunk": o.chunk}),
            })
        }
        other => bail!("unknown workload {other}"),
    }
}

/// Runs `gridflow-bench workload ...` (arguments after `workload`) and prints its JSON line.
pub fn run(args: &[String]) -> Result<()> {
    let o = Options::parse(args)?;
    let sched = Scheduler::threads(o.threads).with_memory_limit(o.memory_limit);
    let t = Instant::now();
    let out = run_workload(&o, &sched)?;
    let total_s = t.elapsed().as_secs_f64();
    let mut doc = json!({
        "tool": "gridflow",
        "workload": o.workload,
        "threads": o.threads,
        "memory_limit": o.memory_limit,
        "open_s": out.open_s,
        "total_s": total_s,
        "checksum": out.checksum,
        "shape": out.shape,
        "self_peak_rss_mib": peak_rss_mib(),
        // chunk bytes decoded from the store: a selection decodes only what it keeps
        "decoded_bytes": gridflow_store::decoded_bytes(),
        "extra": out.extra,
    });
    if let Some(r) = out.report {
        doc["tasks"] = json!(r.tasks_before);
        doc["tasks_run"] = json!(r.tasks_after);
        doc["compute_s"] = json!(r.elapsed.as_secs_f64());
        doc["execute_s"] = json!(r.execute_time.as_secs_f64());
        doc["peak_held_mib"] = json!(r.peak_held_bytes as f64 / (1 << 20) as f64);
    }
    if let Some(path) = &o.values_out {
        let values: Vec<Value> = out
            .values
            .iter()
            .map(|&v| if v.is_finite() { json!(v) } else { Value::Null })
            .collect();
        std::fs::write(path, serde_json::to_vec(&values)?)
            .with_context(|| format!("writing {path}"))?;
    }
    println!("{doc}");
    Ok(())
}
