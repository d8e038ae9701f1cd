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

/// Fuzz case: a blosc array whose chunks are `[2**64 - 1, 5, 6]` panicked with a multiply
/// overflow when its (present) chunk was read; it is a chunk error now.
#[test]
fn chunk_size_overflow_is_an_error() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chunk-size-overflow.zarr");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(
        dir.join("a/.zarray"),
        r#"{"shape": [12, 5, 6], "chunks": [18446744073709551615, 5, 6], "dtype": "<f8",
            "fill_value": "NaN", "order": "C", "filters": null, "dimension_separator": ".",
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1,
                           "blocksize": 0}, "zarr_format": 2}"#,
    )
    .unwrap();
    std::fs::write(dir.join("a/0.0.0"), [0u8; 32]).unwrap();
    let s = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let e = match s.open_group("").unwrap().array("a") {
        Ok(a) => a.read_chunk(&[0, 0, 0]).unwrap_err(),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains("overflow") || msg.contains("too"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fuzz cases: chunk shapes whose byte size overflows panicked with a multiply overflow
/// inside zarrs (a sharded v3 array with chunks `[4, 2**64 - 1]`) or while streaming a
/// blosc chunk (v2 chunks `[4, 5, 2**63 - 1]`); they are metadata errors now.
#[test]
fn chunk_shapes_whose_size_overflows_are_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chunk-overflow-2.zarr");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("v2")).unwrap();
    std::fs::create_dir_all(dir.join("sh/c/0")).unwrap();
    std::fs::write(
        dir.join("zarr.json"),
        r#"{"zarr_format": 3, "node_type": "group"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("sh/zarr.json"),
        r#"{"zarr_format": 3, "node_type": "array", "shape": [4, 3], "data_type": "float32",
          "chunk_grid": {"name": "regular",
                         "configuration": {"chunk_shape": [4, 18446744073709551615]}},
          "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
          "fill_value": 0.0,
          "codecs": [{"name": "sharding_indexed", "configuration": {
              "chunk_shape": [2, 3],
              "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
              "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
              "index_location": "end"}}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("sh/c/0/0"), [0u8; 80]).unwrap();
    let s = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let e = match s.open_group("").unwrap().array("sh") {
        Ok(a) => a.read_chunk(&[0, 0]).unwrap_err(),
        Err(e) => e,
    };
    assert!(e.to_string().contains("overflow"), "{e}");

    let v2 = dir.join("v2.zarr");
    std::fs::create_dir_all(v2.join("a")).unwrap();
    std::fs::write(v2.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(
        v2.join("a/.zarray"),
        r#"{"shape": [12, 5, 6], "chunks": [4, 5, 9223372036854775807], "dtype": "<f4",
            "fill_value": "NaN", "order": "C", "filters": null, "dimension_separator": ".",
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1,
                           "blocksize": 0}, "zarr_format": 2}"#,
    )
    .unwrap();
    std::fs::write(v2.join("a/0.0.0"), [0u8; 32]).unwrap();
    let s = ZarrStore::open(v2.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let e = match s.open_group("").unwrap().array("a") {
        Ok(a) => a
            .to_chunked(None)
            .unwrap()
            .compute()
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("overflow"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fuzz case: chunks declared far larger than the array (`chunks: [10000000000]` over a
/// 5-element array whose chunk on disk is a small blosc frame) made the read allocate the
/// declared 80 GB and abort; the frame's own size disagrees, so it is a chunk error now.
#[test]
fn a_chunk_shape_the_blosc_frame_does_not_hold_is_an_error() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chunk-claims-too-much.zarr");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lat")).unwrap();
    let src = common::fixtures().join("cmip6_mini.zarr/lat");
    std::fs::write(dir.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::copy(src.join("0"), dir.join("lat/0")).unwrap();
    let zarray = std::fs::read_to_string(src.join(".zarray"))
        .unwrap()
        .replace(
            "\"chunks\": [\n    5\n  ]",
            "\"chunks\": [\n    10000000000\n  ]",
        );
    assert!(zarray.contains("10000000000"), "{zarray}");
    std::fs::write(dir.join("lat/.zarray"), zarray).unwrap();
    let store = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let e = store
        .open_array("lat")
        .and_then(|a| a.read_chunk(&[0]).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("blosc frame holds 40 bytes"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
