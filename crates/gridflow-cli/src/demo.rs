//! `gridflow demo`: the engine's tour on a CMIP6-shaped synthetic field.

use anyhow::{Context, Result, bail};
use gridflow_array::{ChunkedArray, DType, Indexer, Scheduler};
use gridflow_runtime::Progress;
use std::f64::consts::PI;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Demo settings.
pub struct Options {
    pub years: usize,
    pub threads: Option<usize>,
    pub memory_limit_mib: usize,
    pub out: PathBuf,
}

/// The N96 grid of KACE-1-0-G: 144 latitudes, 192 longitudes.
const NLAT: usize = 144;
const NLON: usize = 192;
/// 3-hourly steps in a 360-day year.
const STEPS_PER_YEAR: usize = 360 * 8;
/// Time steps per chunk, as in the Pangeo CMIP6 store.
const TIME_CHUNK: usize = 600;

fn lat_values() -> Vec<f64> {
    (0..NLAT).map(|i| -89.375 + 1.25 * i as f64).collect()
}

fn lon_values() -> Vec<f64> {
    (0..NLON).map(|j| 0.9375 + 1.875 * j as f64).collect()
}

fn nearest(values: &[f64], target: f64) -> usize {
    values
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))
        .map_or(0, |(i, _)| i)
}

/// A lazy near-surface air temperature field (K): a latitude gradient, a seasonal cycle
/// that flips between hemispheres, a diurnal cycle that follows local solar time, and
/// weather-like noise. Built from broadcasting elementwise operations only.
fn synthetic_tas(years: usize) -> Result<ChunkedArray> {
    let nt = years * STEPS_PER_YEAR;
    let days = ChunkedArray::arange(0.0, nt as f64 * 0.125, 0.125, TIME_CHUNK, DType::F64)?
        .reshape_for_time()?;
    let lat = ChunkedArray::from_ndarray(ndarray::Array1::from(lat_values()).into_dyn(), [0])?
        .expand_dims(1)?;
    let lon = ChunkedArray::from_ndarray(ndarray::Array1::from(lon_values()).into_dyn(), [0])?;
    let coslat = lat.deg2rad()?.cos()?;
    let sinlat = lat.deg2rad()?.sin()?;
    let base = coslat.mul(45.0)?.add(240.0)?; // ~240 K at the poles, ~285 K at the equator
    let season = days
        .mul(2.0 * PI / 360.0)?
        .sub(PI / 2.0)?
        .sin()?
        .mul(&sinlat.mul(12.0)?)?;
    let local_hour = days.rem(1.0)?.mul(24.0)?.add(&lon.div(15.0)?)?;
    let diurnal = local_hour
        .sub(9.0)?
        .mul(2.0 * PI / 24.0)?
        .sin()?
        .mul(&coslat.mul(4.0)?)?;
    let noise = ChunkedArray::random(&[nt, NLAT, NLON], [TIME_CHUNK, NLAT, NLON], 1850)?
        .sub(0.5)?
        .mul(3.0)?;
    let tas = base
        .add(&season)?
        .add(&diurnal)?
        .add(&noise)?
        .astype(DType::F32)?;
    Ok(tas)
}

trait TimeAxis {
    fn reshape_for_time(self) -> Result<ChunkedArray>;
}

impl TimeAxis for ChunkedArray {
    /// (time,) -> (time, 1, 1), so it broadcasts against (time, lat, lon).
    fn reshape_for_time(self) -> Result<ChunkedArray> {
        Ok(self.expand_dims(1)?.expand_dims(2)?)
    }
}

fn progress_bar(label: &'static str) -> impl Fn(Progress) + Send + Sync + 'static {
    move |p: Progress| {
        let width = 30;
        let filled = (p.done * width).checked_div(p.total).unwrap_or(width);
        if p.done == p.total || p.done.is_multiple_of(16) {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r  {label} [{}{}] {}/{} tasks",
                "#".repeat(filled),
                ".".repeat(width - filled),
                p.done,
                p.total
            );
            if p.done == p.total {
                let _ = writeln!(err);
            }
        }
    }
}

/// Runs the tour.
pub fn run(o: &Options) -> Result<()> {
    if o.years == 0 {
        bail!("--years must be at least 1");
    }
    let start = Instant::now();
    let threads = o
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let budget = o.memory_limit_mib << 20;
    let scheduler = |label: &'static str| {
        Scheduler::threads(threads)
            .with_memory_limit(budget)
            .with_progress(progress_bar(label))
    };
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;

    println!(
        "gridflow demo — the local executor: {threads} thread(s), a memory budget of {} MiB",
        o.memory_limit_mib
    );
    println!("\n1. Build a lazy CMIP6-like tas field (3-hourly, 360-day calendar, N96 grid)");
    let tas = synthetic_tas(o.years)?;
    println!(
        "   tas: shape (time: {}, lat: {}, lon: {}), {}, chunks of {} time steps, {} blocks, {:.0} MiB if loaded",
        tas.shape()[0],
        tas.shape()[1],
        tas.shape()[2],
        tas.dtype(),
        TIME_CHUNK,
        tas.npartitions(),
        tas.nbytes() as f64 / (1 << 20) as f64
    );

    println!("\n2. Select the grid point nearest 45.5°N 9.4°E (Milan)");
    let (lats, lons) = (lat_values(), lon_values());
    let (i, j) = (nearest(&lats, 45.5), nearest(&lons, 9.4));
    println!(
        "   nearest point: lat {:.3}, lon {:.4} (index {i}, {j})",
        lats[i], lons[j]
    );
    let point = tas.index(&[
        Indexer::Full,
        Indexer::Index(i as isize),
        Indexer::Index(j as isize),
    ])?;
    let before = point.graph().len();
    let optimized = point.optimized_graph()?;
    println!(
        "   task graph: {before} tasks, {} after culling and fusion",
        optimized.len()
    );
    let svg_path = o.out.join("point-graph.svg");
    std::fs::write(&svg_path, optimized.to_svg()?)
        .with_context(|| format!("writing {}", svg_path.display()))?;
    println!("   drew the optimized graph to {}", svg_path.display());

    println!("\n3. Compute the point's time series");
    let t = Instant::now();
    let (series, report) = point.compute_with_report(&scheduler("point"))?;
    let series = series.to_f64_vec();
    let mean = series.iter().sum::<f64>() / series.len() as f64;
    let (lo, hi) = series
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    println!(
        "   {} values in {:.2} s: mean {:.2} K ({:.2} °C), min {:.2} K, max {:.2} K; peak held {:.1} MiB",
        series.len(),
        t.elapsed().as_secs_f64(),
        mean,
        mean - 273.15,
        lo,
        hi,
        report.peak_held_bytes as f64 / (1 << 20) as f64
    );
    let csv_path = o.out.join("point-series.csv");
    let mut csv = String::from("step,days_since_1850_01_01,tas_K\n");
    for (n, v) in series.iter().enumerate() {
        csv.push_str(&format!("{n},{:.3},{v:.3}\n", n as f64 * 0.125));
    }
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    println!("   wrote {}", csv_path.display());

    println!("\n4. Compute the time-mean map");
    let t = Instant::now();
    let time_mean = tas.mean(Some(&[0]))?;
    println!(
        "   task graph: {} tasks, {} after fusion",
        time_mean.graph().len(),
        time_mean.optimized_graph()?.len()
    );
    let (map, report) = time_mean.compute_with_report(&scheduler("time mean"))?;
    let map = map.to_f64_vec();
    let global = map.iter().sum::<f64>() / map.len() as f64;
    let equator = map[(NLAT / 2) * NLON..(NLAT / 2 + 1) * NLON]
        .iter()
        .sum::<f64>()
        / NLON as f64;
    let pole = map[..NLON].iter().sum::<f64>() / NLON as f64;
    println!(
        "   {}x{} map in {:.2} s: unweighted mean {:.2} K, equator {:.2} K, south pole row {:.2} K; peak held {:.1} MiB",
        NLAT,
        NLON,
        t.elapsed().as_secs_f64(),
        global,
        equator,
        pole,
        report.peak_held_bytes as f64 / (1 << 20) as f64
    );

    println!(
        "\nDone in {:.2} s. Outputs are in {}.",
        start.elapsed().as_secs_f64(),
        o.out.display()
    );
    Ok(())
}
