//! Bad input gives errors naming the store, the array and the chunk key; read-only stores
//! are never written.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use gridflow_array::ChunkedArray;
use gridflow_store::{StoreError, StoreOptions, WriteOptions, ZarrStore, to_zarr};

fn store() -> (ZarrStore, String) {
    let url = store_url("errors_v2.zarr");
    (
        ZarrStore::open(&url, StoreOptions::read_only()).unwrap(),
        url,
    )
}

fn read_err(array: &str, key: &str) -> String {
    let (s, url) = store();
    let a = s.open_array(array).unwrap();
    // chunk 0 is fine, chunk 1 is bad
    a.read_chunk(&[0]).unwrap();
    let e = a.read_chunk(&[1]).unwrap_err();
    assert!(matches!(e, StoreError::Chunk { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&url) && msg.contains(array) && msg.contains(key),
        "{msg}"
    );
    // through the lazy array and the executor, the message survives
    let lazy = a
        .to_chunked(None)
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(lazy.contains(&url) && lazy.contains(key), "{lazy}");
    msg
}

#[test]
fn truncated_blosc_chunk() {
    println!("{}", read_err("truncated", "truncated/1"));
}

#[test]
fn truncated_uncompressed_chunk() {
    println!("{}", read_err("truncated_raw", "truncated_raw/1"));
}

#[test]
fn corrupt_zstd_chunk() {
    println!("{}", read_err("corrupt", "corrupt/1"));
}

fn meta_err(array: &str) -> String {
    let (s, url) = store();
    let e = s.open_array(array).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&url) && msg.contains(array), "{msg}");
    // through the group (which plain HTTP cannot list) it fails the same way
    if !over_http() {
        let g = s.open_group("").unwrap();
        let via_group = g.array(array).unwrap_err().to_string();
        assert!(
            via_group.contains(&url) && via_group.contains(array),
            "{via_group}"
        );
    }
    msg
}

#[test]
fn shape_and_chunks_disagree() {
    let m = meta_err("shape_chunks_disagree");
    assert!(m.contains("invalid metadata"), "{m}");
}

#[test]
fn unknown_codec() {
    let m = meta_err("unknown_codec");
    assert!(m.contains("gridflow-no-such-codec"), "{m}");
}

#[test]
fn unknown_dtype() {
    let m = meta_err("unknown_dtype");
    assert!(m.contains("unsupported data type <x4"), "{m}");
}

#[test]
fn unsupported_dtype() {
    let m = meta_err("unsupported_dtype");
    assert!(m.contains("unsupported data type <c8"), "{m}");
}

#[test]
fn missing_array_and_group() {
    let (s, _) = store();
    let e = s.open_array("nope").unwrap_err().to_string();
    assert!(e.contains("no array at \"nope\""), "{e}");
    let e = s.open_group("nope").unwrap_err().to_string();
    assert!(e.contains("no group"), "{e}");
}

#[test]
fn read_only_store_is_never_written() {
    let dir = std::env::temp_dir().join(format!("gridflow-ro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let x = ChunkedArray::ones(&[4], [2], gridflow_array::DType::F32).unwrap();
    let e = to_zarr(&x, &s, "x", &WriteOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
    assert!(!dir.exists(), "nothing may be created");
}

#[test]
fn bad_urls() {
    assert!(ZarrStore::open("ftp://x/y", StoreOptions::default()).is_err());
    assert!(ZarrStore::open("s3://", StoreOptions::default()).is_err());
    assert!(ZarrStore::open("file://relative", StoreOptions::default()).is_err());
}

/// A fixture store with corrupt metadata, opened read-only.
fn bad_store(name: &str) -> (ZarrStore, String) {
    let url = store_url(name);
    (
        ZarrStore::open(&url, StoreOptions::read_only()).unwrap(),
        url,
    )
}

#[test]
fn unparsable_zarray_names_the_file() {
    let (s, url) = bad_store("bad_zarray.zarr");
    let m = s
        .open_array("unparsable_zarray")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    println!("{m}");
    assert!(
        m.contains(&url) && m.contains("unparsable_zarray/.zarray is not valid JSON"),
        "{m}"
    );
    if !over_http() {
        // the group lists and parses its arrays: the same error
        let g = s.open_group("").map(|_| ()).unwrap_err().to_string();
        assert!(g.contains("unparsable_zarray/.zarray"), "{g}");
    }
}

#[test]
fn non_numeric_fill_value_names_the_array_and_the_value() {
    let m = meta_err("bad_fill_value");
    assert!(m.contains("fill_value") && m.contains("abc"), "{m}");
}

#[test]
fn unparsable_zmetadata_names_the_file() {
    let (s, url) = bad_store("bad_zmetadata.zarr");
    let e = s.open_group("").map(|_| ()).unwrap_err();
    let m = e.to_string();
    println!("{m}");
    assert!(m.contains(&url) && m.contains(".zmetadata"), "{m}");
}

#[test]
fn unparsable_v3_zarr_json_names_the_file() {
    let (s, url) = bad_store("errors_v3.zarr");
    s.open_array("ok").unwrap();
    let m = s
        .open_array("unparsable")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    println!("{m}");
    assert!(
        m.contains(&url) && m.contains("unparsable/zarr.json"),
        "{m}"
    );
    let (s, url) = bad_store("bad_root_v3.zarr");
    let m = s.open_group("").map(|_| ()).unwrap_err().to_string();
    println!("{m}");
    assert!(m.contains(&url) && m.contains("zarr.json"), "{m}");
}
