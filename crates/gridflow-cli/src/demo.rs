//! `gridflow demo`: the tutorial, end to end, on the embedded CMIP6-like sample.

use crate::common::{Executor, human};
use crate::out::outln;
use crate::sample;
use anyhow::{Context, Result, bail};
use gridflow_dataset::{DataArray, Label, Method, OpenOptions, Reduction, SelOptions, Selector};
use std::path::PathBuf;
use std::time::Instant;

/// Demo settings.
pub struct Options {
    /// 3-hourly time steps in the sample (2880 per year).
    pub steps: usize,
    /// Where the sample store and catalog live (created if absent).
    pub data: PathBuf,
    /// Where the figures and the graph drawing go.
    pub out: PathBuf,
    /// The local executor.
    pub exec: Executor,
}

fn step(n: usize, text: &str) -> Result<()> {
    Ok(outln!("\n{n}. {text}")?)
}

/// Runs the tour.
pub fn run(o: &Options) -> Result<()> {
    if o.steps == 0 {
        bail!("the sample needs at least one time step (--years 1 or more)");
    }
    let years = o.steps as f64 / sample::STEPS_PER_YEAR as f64;
    let start = Instant::now();
    let mut timings: Vec<(&str, f64)> = Vec::new();
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    outln!("gridflow demo: a CMIP6 analysis session, end to end")?;
    match &o.exec.remote {
        Some(r) => {
            let workers = r.client.workers()?;
            let threads: u32 = workers.iter().map(|w| w.nthreads).sum();
            let memory: u64 = workers.iter().map(|w| w.memory_limit).sum();
            outln!(
                "Running on the cluster at {}: {} worker(s), {threads} thread(s), {} of memory.",
                r.client.address(),
                workers.len(),
                human(usize::try_from(memory).unwrap_or(usize::MAX))
            )?;
        }
        None => outln!(
            "Running on the local executor: {} worker thread(s), a memory budget of {}.",
            o.exec.threads,
            human(o.exec.memory_limit)
        )?,
    }

    step(
        1,
        "Prepare the sample data (a Zarr store shaped like the Pangeo CMIP6 one, and its catalog)",
    )?;
    let t = Instant::now();
    let s = sample::ensure_sample(&o.data, o.steps)?;
    if s.written {
        outln!(
            "   wrote {} 3-hourly steps ({years:.2} years) of tas to {} in {:.1} s",
            o.steps,
            s.store.display(),
            t.elapsed().as_secs_f64()
        )?;
    } else {
        outln!("   reusing the sample in {}", o.data.display())?;
    }
    outln!("   catalog: {}", s.catalog.display())?;
    timings.push(("prepare the sample", t.elapsed().as_secs_f64()));

    step(
        2,
        "Search the catalog for KACE-1-0-G historical 3-hourly tas, member r1i1p1f1",
    )?;
    let t = Instant::now();
    let query = [
        "experiment_id=historical",
        "institution_id=NIMS-KMA",
        "table_id=3hr",
        "variable_id=tas",
        "member_id=r1i1p1f1",
    ]
    .map(String::from);
    let found = crate::catalog_cmd::search_and_open(&s.catalog, &query, &OpenOptions::default())?;
    outln!(
        "   {} matching row(s); dataset key: {}",
        found.rows,
        found.key
    )?;
    timings.push((
        "search the catalog and open the dataset",
        t.elapsed().as_secs_f64(),
    ));

    step(
        3,
        "Open the dataset lazily (only metadata and coordinates are read)",
    )?;
    let ds = found.dataset;
    outln!("{}", indent(&ds.to_string()))?;
    // One member and no initialisation year: drop those length-1 dimensions by name (a
    // one-step sample has a length-1 time axis too, which must stay).
    let mut tas = ds.get("tas")?;
    for dim in ["member_id", "dcpp_init_year"] {
        if tas.dims().iter().any(|d| d == dim) {
            tas = tas.squeeze(Some(dim))?;
        }
    }
    outln!(
        "   tas{}",
        tas.dims()
            .iter()
            .zip(tas.shape())
            .map(|(d, n)| format!(" {d}: {n}"))
            .collect::<Vec<_>>()
            .join(",")
    )?;

    step(4, "Select the grid point nearest 45.5°N 9.4°E (Milan)")?;
    let point = tas.sel(
        &[
            ("lat", Selector::Label(Label::Float(45.5))),
            ("lon", Selector::Label(Label::Float(9.4))),
        ],
        &SelOptions {
            method: Method::Nearest,
            tolerance: None,
        },
    )?;
    let lat = point.coord("lat")?.to_f64_vec()?;
    let lon = point.coord("lon")?.to_f64_vec()?;
    let (lat, lon) = match (lat.first(), lon.first()) {
        (Some(&lat), Some(&lon)) => (lat, lon),
        _ => bail!("the nearest grid point has no lat/lon coordinate"),
    };
    outln!(
        "   nearest grid point: lat {:.3}°N, lon {:.4}°E — a series of {} time steps",
        lat,
        lon,
        point.shape().first().copied().unwrap_or(1)
    )?;
    let before = point.data().graph().len();
    let optimized = point.data().optimized_graph()?;
    outln!(
        "   task graph: {before} tasks as built, {} after culling the unneeded reads and fusing chains",
        optimized.len()
    )?;
    let svg = o.out.join("point-graph.svg");
    // the demo's own outputs: replaced on every run
    crate::common::write_file(&svg, optimized.to_svg()?.as_bytes(), true)?;
    outln!("   drew the optimized task graph to {}", svg.display())?;

    step(5, "Compute the point's time series in parallel and plot it")?;
    let t = Instant::now();
    let series = compute(&point, &o.exec, "point series")?;
    let vals = series.to_f64_vec()?;
    // missing values (the store's 1e20 fill values, NaN once decoded) are skipped, as in
    // xarray's `mean()`
    let (mean, missing) = nan_mean(&vals);
    outln!(
        "   {} values ({missing} missing) in {:.2} s: mean {:.2} K ({:.2} °C)",
        vals.len(),
        t.elapsed().as_secs_f64(),
        mean,
        mean - 273.15
    )?;
    timings.push(("compute the point series", t.elapsed().as_secs_f64()));
    let png = o.out.join("point-series.png");
    crate::common::plot(
        &series,
        &format!(
            "Near-surface air temperature at {:.2}°N {:.2}°E, KACE-1-0-G historical r1i1p1f1",
            lat, lon
        ),
        Some(&tas),
        &png,
        true,
    )?;
    outln!("   plotted {}", png.display())?;

    step(6, "Compute the time-mean map in parallel and plot it")?;
    let t = Instant::now();
    let time_mean = tas.reduce(Reduction::Mean, Some(&["time"]), None)?;
    outln!(
        "   task graph: {} tasks, {} after optimization",
        time_mean.data().graph().len(),
        time_mean.data().optimized_graph()?.len()
    )?;
    let map = compute(&time_mean, &o.exec, "time mean")?;
    let mv = map.to_f64_vec()?;
    let (global, _) = nan_mean(&mv);
    outln!(
        "   {}×{} map in {:.2} s (unweighted mean {:.2} K)",
        map.shape().first().copied().unwrap_or(0),
        map.shape().get(1).copied().unwrap_or(0),
        t.elapsed().as_secs_f64(),
        global
    )?;
    timings.push(("compute the time-mean map", t.elapsed().as_secs_f64()));
    let png = o.out.join("time-mean-map.png");
    crate::common::plot(
        &map,
        &format!(
            "Time-mean near-surface air temperature, {}, KACE-1-0-G historical",
            span(o.steps)
        ),
        Some(&tas),
        &png,
        true,
    )?;
    outln!("   plotted {}", png.display())?;

    step(7, "Timings")?;
    for (what, secs) in &timings {
        outln!("   {what:<42} {secs:>7.2} s")?;
    }
    outln!(
        "   {:<42} {:>7.2} s",
        "total",
        start.elapsed().as_secs_f64()
    )?;
    outln!("\nDone. Outputs are in {}.", o.out.display())?;
    Ok(())
}

fn compute(da: &DataArray, exec: &Executor, label: &'static str) -> Result<DataArray> {
    exec.check_fits(da, label)?;
    Ok(da.compute_with(&exec.executor(label))?)
}

/// The mean of the values that are not NaN (NaN if none is), and how many are NaN.
fn nan_mean(values: &[f64]) -> (f64, usize) {
    let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let mean = if present.is_empty() {
        f64::NAN
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    (mean, values.len().saturating_sub(present.len()))
}

/// `1 year`, `5 years`, `30 days`: the sample's length in words.
fn span(steps: usize) -> String {
    let per_year = sample::STEPS_PER_YEAR;
    match (steps / per_year, steps % per_year) {
        (1, 0) => "1 year".into(),
        (y, 0) => format!("{y} years"),
        _ if steps.is_multiple_of(8) => format!("{} days", steps / 8),
        _ => format!("{steps} 3-hourly steps"),
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
