//! The gridflow side of the store benchmark (`bench/store/run.sh` drives it and the Python
//! side; results in `docs/benchmarks-store.md`).
//!
//! Workloads on the stores `bench/store/gen_store.py` writes into `$GRIDFLOW_BENCH_STORE_DATA`:
//! * `read_decode`: read and decode every chunk of `tas_v2.zarr/tas` with
//!   [`ZarrArray::read_chunk`] on 2 threads (the store layer alone);
//! * `lazy_sum`: `to_chunked(None)`, `.sum(None)`, computed on `Scheduler::threads(2)`
//!   (one read task per store chunk through the executor);
//! * `point`: open `tas_v3_sharded.zarr` and read one grid point's whole time series with
//!   [`ZarrArray::read_region`] (shard indexes + the inner chunks holding the point).
//!
//! Run: `cargo test --release -p gridflow-store --bench store_read -- --ignored --nocapture`
//! with `GRIDFLOW_BENCH_STORE_DATA` set. Without `--ignored`, `quick` runs a tiny version
//! (on `GRIDFLOW_BENCH_STORE_DATA` if set, else on a small store it writes itself), which is
//! the smoke test. One JSON object per line on stdout.
#![allow(missing_docs, clippy::unwrap_used)]

use gridflow_array::{Chunk, ChunkedArray, DType, Scheduler};
use gridflow_store::{StoreOptions, WriteOptions, ZarrArray, ZarrStore, to_zarr};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Bytes this process has read through syscalls (`/proc/self/io` rchar; 0 if unavailable).
fn rchar() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("rchar:").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

/// One warm-up run, then `repeat` timed runs: (seconds per run, last result).
fn timed<T>(repeat: usize, mut f: impl FnMut() -> T) -> (Vec<f64>, T) {
    let mut last = f();
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        last = f();
        times.push(t.elapsed().as_secs_f64());
    }
    (times, last)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Reads and decodes every store chunk on `threads` plain threads; returns the number of
/// decoded bytes.
fn read_decode(a: &ZarrArray, threads: usize) -> usize {
    let grid = a.grid_shape().to_vec();
    let n: usize = grid.iter().product();
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    // unravel i over the chunk grid (C order)
                    let mut idx = vec![0u64; grid.len()];
                    let mut rest = i;
                    for (ax, &g) in grid.iter().enumerate().rev() {
                        idx[ax] = (rest % g) as u64;
                        rest /= g;
                    }
                    let c: Chunk = a.read_chunk(&idx).unwrap();
                    total.fetch_add(c.len() * c.dtype().size(), Ordering::Relaxed);
                }
            });
        }
    });
    total.into_inner()
}

fn lazy_sum(a: &ZarrArray, threads: usize) -> f64 {
    let s = a
        .to_chunked(None)
        .unwrap()
        .sum(None)
        .unwrap()
        .compute_with(&Scheduler::threads(threads))
        .unwrap();
    s.to_f64_vec()[0]
}

/// Opens the sharded store and reads the point's time series: (values, bytes the store
/// returned, requests, rchar delta).
fn point(store: &Path, lat: usize, lon: usize) -> (Vec<f64>, u64, u64, u64) {
    let r0 = rchar();
    let s = ZarrStore::open(store.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let a = s.open_group("").unwrap().array("tas").unwrap();
    let nt = a.shape()[0];
    let ts = a.read_region(&[0..nt, lat..lat + 1, lon..lon + 1]).unwrap();
    (ts.to_f64_vec(), s.bytes_read(), s.requests(), rchar() - r0)
}

fn emit(workload: &str, threads: usize, times: &[f64], extra: serde_json::Value) {
    let mut o = json!({
        "impl": "gridflow", "workload": workload, "threads": threads,
        "times": times, "median": median(times),
    });
    if let (Some(o), serde_json::Value::Object(e)) = (o.as_object_mut(), extra) {
        o.extend(e);
    }
    println!("{o}");
}

/// Runs every workload on the stores in `data`.
fn run(data: &Path, v3: &Path, repeat: usize, threads: usize, lat: usize, lon: usize) {
    gridflow_store::register();
    let store = ZarrStore::open(
        data.join("tas_v2.zarr").to_str().unwrap(),
        StoreOptions::read_only(),
    )
    .unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    let chunks: usize = tas.grid_shape().iter().product();

    let (times, bytes) = timed(repeat, || read_decode(&tas, threads));
    emit(
        "read_decode",
        threads,
        &times,
        json!({"chunks": chunks, "decoded_bytes": bytes}),
    );
    let (times, sum) = timed(repeat, || lazy_sum(&tas, threads));
    emit("lazy_sum", threads, &times, json!({"sum": sum}));

    let (times, (ts, bytes, requests, rc)) = timed(repeat, || point(v3, lat, lon));
    let mean = ts.iter().sum::<f64>() / ts.len().max(1) as f64;
    emit(
        "point",
        threads,
        &times,
        json!({"bytes_read": bytes, "requests": requests, "rchar": rc,
               "first": ts.first(), "mean": mean, "n": ts.len(), "values": ts}),
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn point_env() -> (usize, usize) {
    let p = std::env::var("GRIDFLOW_BENCH_POINT").unwrap_or_else(|_| "72,100".into());
    let (a, b) = p.split_once(',').unwrap();
    (a.trim().parse().unwrap(), b.trim().parse().unwrap())
}

/// The full benchmark on the generated stores (`bench/store/run.sh`).
#[test]
#[ignore = "needs GRIDFLOW_BENCH_STORE_DATA (bench/store/run.sh); minutes of I/O"]
fn full() {
    let data = PathBuf::from(
        std::env::var("GRIDFLOW_BENCH_STORE_DATA")
            .expect("set GRIDFLOW_BENCH_STORE_DATA (bench/store/run.sh does)"),
    );
    let (lat, lon) = point_env();
    run(
        &data,
        &data.join("tas_v3_sharded.zarr"),
        env_usize("GRIDFLOW_BENCH_REPEAT", 3),
        env_usize("GRIDFLOW_BENCH_THREADS", 2),
        lat,
        lon,
    );
}

/// The smoke run: tiny stores, one repetition, values checked.
#[test]
fn quick() {
    if let Ok(d) = std::env::var("GRIDFLOW_BENCH_STORE_DATA") {
        let data = PathBuf::from(d);
        run(&data, &data.join("tas_v3_sharded.zarr"), 1, 2, 3, 5);
        return;
    }
    // no generated data: write a small blosc-lz4 v2 store with gridflow itself, and use the
    // sharded fixture array for the point series
    let dir = std::env::temp_dir().join(format!("gridflow-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let x = ChunkedArray::random(&[48, 16, 24], [12, 16, 24], 7)
        .unwrap()
        .astype(DType::F32)
        .unwrap();
    let store = ZarrStore::open(
        dir.join("tas_v2.zarr").to_str().unwrap(),
        StoreOptions::default(),
    )
    .unwrap();
    to_zarr(&x, &store, "tas", &WriteOptions::default()).unwrap();
    let ro = ZarrStore::open(
        dir.join("tas_v2.zarr").to_str().unwrap(),
        StoreOptions::read_only(),
    )
    .unwrap();
    let tas = ro.open_group("").unwrap().array("tas").unwrap();
    assert_eq!(read_decode(&tas, 2), 48 * 16 * 24 * 4);
    let want: f64 = x.compute().unwrap().to_f64_vec().iter().sum();
    let got = lazy_sum(&tas, 2);
    assert!((got - want).abs() < 1e-3 * want.abs(), "{got} vs {want}");
    // the fixture's sharded array (64, 3, 4) with inner chunks (8, 1, 1)
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3_plain.zarr");
    let s = ZarrStore::open(fixture.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let a = s.open_array("sharded").unwrap();
    let ts = a.read_region(&[0..64, 1..2, 2..3]).unwrap();
    assert_eq!(ts.len(), 64);
    run_on_v2_only(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The timed v2 workloads once (keeps the JSON output path exercised in the smoke run).
fn run_on_v2_only(dir: &Path) {
    let store = ZarrStore::open(
        dir.join("tas_v2.zarr").to_str().unwrap(),
        StoreOptions::read_only(),
    )
    .unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    let (times, bytes) = timed(1, || read_decode(&tas, 2));
    emit("read_decode", 2, &times, json!({"decoded_bytes": bytes}));
    let (times, sum) = timed(1, || lazy_sum(&tas, 2));
    emit("lazy_sum", 2, &times, json!({"sum": sum}));
}
