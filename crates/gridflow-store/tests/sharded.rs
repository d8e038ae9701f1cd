//! A single grid point's time series from a sharded v3 store reads only the shard indexes
//! and the inner chunks that hold it.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use gridflow_store::{StoreOptions, ZarrStore};

#[test]
fn point_time_series_reads_only_needed_inner_chunks() {
    let store = ZarrStore::open(&store_url("v3_plain.zarr"), StoreOptions::read_only()).unwrap();
    let a = store.open_array("sharded").unwrap();
    assert_eq!(a.shape(), &[64, 3, 4]);
    assert_eq!(a.chunk_shape(), &[32, 3, 4]);
    assert_eq!(a.inner_chunk_shape().unwrap(), vec![8, 1, 1]);
    let shard_bytes: u64 = ["sharded/c/0/0/0", "sharded/c/1/0/0"]
        .iter()
        .map(|k| {
            std::fs::metadata(fixtures().join("v3_plain.zarr").join(k))
                .unwrap()
                .len()
        })
        .sum();
    store.reset_counters();
    let ts = a.read_region(&[0..64, 1..2, 2..3]).unwrap();
    let (bytes, requests) = (store.bytes_read(), store.requests());
    assert_eq!(ts.shape(), &[64, 1, 1]);
    // expected values: arange(64*3*4).reshape(64,3,4) * 0.5 at [:, 1, 2]
    let want: Vec<f64> = (0..64).map(|t| f64::from(t * 12 + 4 + 2) * 0.5).collect();
    assert_eq!(ts.to_f64_vec(), want);
    // 2 shard indexes (48 inner chunks x 16 bytes + 4-byte crc32c) and 8 inner chunks
    let index = 2 * (48 * 16 + 4);
    println!(
        "point series: {bytes} bytes in {requests} requests (shards hold {shard_bytes} bytes)"
    );
    assert!(bytes < shard_bytes / 2, "{bytes} of {shard_bytes}");
    assert!(bytes >= index as u64);
    // remotely each shard index costs a HEAD (the shard's size) and a ranged GET
    let per_index = if remote_run() { 2 } else { 1 };
    assert!(requests <= 2 * per_index + 8, "{requests} requests");
    // a second read of the same point reuses the cached shard indexes
    store.reset_counters();
    a.read_region(&[0..64, 1..2, 2..3]).unwrap();
    assert!(
        store.bytes_read() < bytes - index as u64 + 1,
        "{}",
        store.bytes_read()
    );
    // a whole read of the array reads every shard in full
    store.reset_counters();
    a.read_region(&[0..64, 0..3, 0..4]).unwrap();
    assert!(
        store.bytes_read() >= shard_bytes - index as u64,
        "{}",
        store.bytes_read()
    );
}

#[test]
fn read_region_on_unsharded_arrays_reads_intersecting_chunks() {
    let store = ZarrStore::open(&store_url("cmip6_mini.zarr"), StoreOptions::read_only()).unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    let exp = expected();
    let all = exp["cmip6_mini.zarr"]["arrays"]["tas"]["values"]
        .as_array()
        .unwrap()
        .clone();
    let r = tas.read_region(&[3..9, 2..3, 1..2]).unwrap();
    let want: Vec<serde_json::Value> = (3..9).map(|t| all[t * 30 + 2 * 6 + 1].clone()).collect();
    assert_values_eq("tas region", &values(&r), &want);
    assert!(tas.read_region(&[0..13, 0..1, 0..1]).is_err());
}
