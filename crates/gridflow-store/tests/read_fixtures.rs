//! Every fixture array read through gridflow equals what zarr-python reads (expected.json).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use gridflow_array::Scheduler;
use gridflow_store::{Dim, StoreOptions, ZarrFormat, ZarrStore};
use serde_json::Value;

const STORES: [&str; 6] = [
    "v2_consolidated.zarr",
    "v2_plain.zarr",
    "v3_consolidated.zarr",
    "v3_plain.zarr",
    "cmip6_mini.zarr",
    "stale_consolidated.zarr",
];

fn check_store(name: &str, bigger_chunks: bool) {
    gridflow_store::register();
    let exp = expected();
    let e = &exp[name];
    let store = ZarrStore::open(&store_url(name), StoreOptions::read_only()).unwrap();
    assert_eq!(store.url().is_remote(), remote_run(), "{name}");
    let arrays = e["arrays"].as_object().unwrap();
    let paths: Vec<String> = arrays.keys().cloned().collect();
    // plain HTTP cannot list: stores without consolidated metadata open array by array
    let group = if over_http() && !is_consolidated(name) {
        let e = store.open_group("").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(&store_url(name)), "{name}: {e}");
        None
    } else {
        Some(store.open_group("").unwrap())
    };
    if let Some(group) = &group {
        let fmt = if e["zarr_format"] == 2 {
            ZarrFormat::V2
        } else {
            ZarrFormat::V3
        };
        assert_eq!(group.zarr_format(), fmt, "{name}");
        assert_eq!(
            Value::Object(group.attrs().clone()),
            e["attrs"],
            "{name}: group attrs"
        );
        assert_eq!(group.is_consolidated(), is_consolidated(name), "{name}");
        assert_eq!(group.array_paths(), paths, "{name}: array paths");
    }
    for (path, want) in arrays {
        let what = format!("{name}/{path}");
        let a = match &group {
            Some(g) => g.array(path).unwrap(),
            None => store.open_array(path).unwrap(),
        };
        let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(a.shape(), shape.as_slice(), "{what}: shape");
        let chunks: Vec<usize> = serde_json::from_value(want["chunks"].clone()).unwrap();
        let got_chunks = a
            .inner_chunk_shape()
            .unwrap_or_else(|| a.chunk_shape().to_vec());
        assert_eq!(got_chunks, chunks, "{what}: chunks");
        assert_eq!(
            a.dtype().to_string(),
            numpy_name(want["dtype"].as_str().unwrap()),
            "{what}: dtype"
        );
        let dims: Option<Vec<String>> = serde_json::from_value(want["dims"].clone()).unwrap();
        assert_eq!(a.dims().map(<[String]>::to_vec), dims, "{what}: dims");
        assert_eq!(
            Value::Object(a.attrs().clone()),
            want["attrs"],
            "{what}: attrs"
        );
        if let Some(f) = want["fill_value"].as_f64() {
            assert_eq!(a.fill_value().unwrap().as_f64(), f, "{what}: fill value");
        }
        let req: Vec<(Dim, usize)> = if bigger_chunks {
            (0..shape.len())
                .map(|ax| (Dim::Axis(ax), a.chunk_shape()[ax] * 2))
                .collect()
        } else {
            vec![]
        };
        let lazy = a
            .to_chunked(bigger_chunks.then_some(req.as_slice()))
            .unwrap();
        if !bigger_chunks {
            assert_eq!(
                lazy.npartitions(),
                a.grid_shape().iter().product::<usize>(),
                "{what}"
            );
        }
        let c = lazy.compute_with(&Scheduler::threads(2)).unwrap();
        assert_eq!(c.shape(), shape.as_slice(), "{what}: computed shape");
        assert_values_eq(&what, &values(&c), want["values"].as_array().unwrap());
    }
}

#[test]
fn v2_consolidated_matches_zarr_python() {
    check_store(STORES[0], false);
}

#[test]
fn v2_plain_matches_zarr_python() {
    check_store(STORES[1], false);
}

#[test]
fn v3_consolidated_matches_zarr_python() {
    check_store(STORES[2], false);
}

#[test]
fn v3_plain_matches_zarr_python() {
    check_store(STORES[3], false);
}

#[test]
fn cmip6_mini_matches_zarr_python() {
    check_store(STORES[4], false);
}

/// Consolidated metadata that disagrees with the files (an array's `.zarray` grown after
/// consolidation, an array deleted, one added): like zarr-python and xarray, gridflow trusts
/// `.zmetadata`, and reads what zarr-python reads (expected.json).
#[test]
fn stale_consolidated_metadata_is_trusted_as_zarr_python_does() {
    check_store(STORES[5], false);
    let store = ZarrStore::open(&store_url(STORES[5]), StoreOptions::read_only()).unwrap();
    let g = store.open_group("").unwrap();
    assert_eq!(g.array_paths(), vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(g.array("a").unwrap().shape(), &[4]);
}

#[test]
fn bigger_blocks_assemble_several_store_chunks() {
    for s in STORES {
        check_store(s, true);
    }
}

#[test]
fn open_zarr_style_chunks_by_dimension_name() {
    let store = ZarrStore::open(&store_url("cmip6_mini.zarr"), StoreOptions::read_only()).unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    assert_eq!(tas.chunk_shape(), &[4, 5, 6]);
    let lazy = tas.to_chunked(Some(&[(Dim::from("time"), 8)])).unwrap();
    assert_eq!(lazy.chunks()[0], vec![8, 4]);
    let exp = expected();
    let want = exp["cmip6_mini.zarr"]["arrays"]["tas"]["values"]
        .as_array()
        .unwrap()
        .clone();
    assert_values_eq("tas time=8", &values(&lazy.compute().unwrap()), &want);
    // a size that is not a multiple of the store chunk is rounded up to whole store chunks
    let lazy = tas.to_chunked(Some(&[(Dim::from("time"), 5)])).unwrap();
    assert_eq!(lazy.chunks()[0], vec![8, 4]);
    assert!(tas.to_chunked(Some(&[(Dim::from("depth"), 2)])).is_err());
}

#[test]
fn read_tasks_rebuild_from_their_spec() {
    gridflow_store::register();
    let store = ZarrStore::open(&store_url("cmip6_mini.zarr"), StoreOptions::read_only()).unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    let lazy = tas.to_chunked(None).unwrap();
    let graph = lazy.graph();
    let text = serde_json::to_string(&graph).unwrap();
    let back: gridflow_graph::Graph<gridflow_array::ArrayOp> = serde_json::from_str(&text).unwrap();
    let vals = Scheduler::threads(2).run(&back, &lazy.keys()).unwrap();
    assert_eq!(vals.len(), 3);
}

#[test]
fn consolidated_open_reads_metadata_in_one_request() {
    let store = ZarrStore::open(&store_url("cmip6_mini.zarr"), StoreOptions::read_only()).unwrap();
    let g = store.open_group("").unwrap();
    assert_eq!(store.requests(), 1);
    let tas = g.array("tas").unwrap();
    assert_eq!(store.requests(), 1);
    tas.read_chunk(&[0, 0, 0]).unwrap();
    assert_eq!(store.requests(), 2);
}
