//! Writing v2 and v3 stores and reading them back (with gridflow and with zarr-python).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use gridflow_array::{ChunkedArray, DType};
use gridflow_store::{
    Compression, StoreError, StoreOptions, WriteMode, WriteOptions, ZarrFormat, ZarrStore, to_zarr,
};
use serde_json::json;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn sample() -> ChunkedArray {
    // 7 x 5 x 6 with ragged edge blocks, a NaN, and a computed (not literal) graph
    let mut v: Vec<f64> = (0..210).map(f64::from).collect();
    v[17] = f64::NAN;
    let c = gridflow_array::Chunk::from_f64_vec(&[7, 5, 6], v, DType::F32).unwrap();
    let x = ChunkedArray::from_chunk(c, [3, 5, 4]).unwrap();
    x.mul(0.5).unwrap()
}

fn opts(format: ZarrFormat) -> WriteOptions {
    WriteOptions {
        format,
        dims: Some(vec!["time".into(), "lat".into(), "lon".into()]),
        attrs: json!({"units": "K", "long_name": "test"})
            .as_object()
            .unwrap()
            .clone(),
        threads: 2,
        batch_blocks: 3,
        ..WriteOptions::default()
    }
}

fn roundtrip(format: ZarrFormat, dir: &std::path::Path) {
    let x = sample();
    let want = x.compute().unwrap();
    let store = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::default()).unwrap();
    to_zarr(&x, &store, "tas", &opts(format)).unwrap();
    let ro = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    let g = ro.open_group("").unwrap();
    assert_eq!(g.zarr_format(), format);
    assert_eq!(g.is_consolidated(), format == ZarrFormat::V2);
    let a = g.array("tas").unwrap();
    assert_eq!(a.shape(), &[7, 5, 6]);
    assert_eq!(a.chunk_shape(), &[3, 5, 4]);
    assert_eq!(a.dims().unwrap(), &["time", "lat", "lon"]);
    assert_eq!(a.attrs()["units"], "K");
    assert!(!a.attrs().contains_key("_zarrs"));
    let got = a.to_chunked(None).unwrap().compute().unwrap();
    assert_eq!(got.dtype(), want.dtype());
    assert_values_eq("roundtrip", &values(&got), &values(&want));
}

#[test]
fn write_v2_and_read_back() {
    let d = tmp("v2");
    roundtrip(ZarrFormat::V2, &d);
    let zarray = std::fs::read_to_string(d.join("tas/.zarray")).unwrap();
    assert!(
        zarray.contains("\"id\": \"blosc\"") && zarray.contains("\"cname\": \"lz4\""),
        "{zarray}"
    );
    assert!(d.join(".zmetadata").exists() && d.join(".zgroup").exists());
    assert!(d.join("tas/2.0.1").exists());
}

#[test]
fn write_v3_and_read_back() {
    let d = tmp("v3");
    roundtrip(ZarrFormat::V3, &d);
    assert!(d.join("tas/c/2/0/1").exists());
}

#[test]
fn create_mode_refuses_an_existing_array_overwrite_replaces_it() {
    let d = tmp("modes");
    let store = ZarrStore::open(d.to_str().unwrap(), StoreOptions::default()).unwrap();
    let x = ChunkedArray::ones(&[4, 4], [2, 2], DType::I32).unwrap();
    to_zarr(&x, &store, "x", &WriteOptions::default()).unwrap();
    let before = std::fs::read(d.join("x/0.0")).unwrap();
    let y = ChunkedArray::zeros(&[4, 4], [2, 2], DType::I32).unwrap();
    let e = to_zarr(&y, &store, "x", &WriteOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read(d.join("x/0.0")).unwrap(), before, "untouched");
    // a second array in the same group is fine, and both end up in .zmetadata
    to_zarr(&y, &store, "y", &WriteOptions::default()).unwrap();
    let g = store.open_group("").unwrap();
    assert_eq!(g.array_paths(), vec!["x", "y"]);
    let over = WriteOptions {
        mode: WriteMode::Overwrite,
        compression: Compression::Zstd { level: 3 },
        ..WriteOptions::default()
    };
    let z = ChunkedArray::full(&[6], gridflow_array::Scalar::Int(7), [4], DType::I16).unwrap();
    to_zarr(&z, &store, "x", &over).unwrap();
    let a = ZarrStore::open(d.to_str().unwrap(), StoreOptions::read_only())
        .unwrap()
        .open_group("")
        .unwrap()
        .array("x")
        .unwrap();
    assert_eq!(a.shape(), &[6]);
    assert_eq!(
        a.to_chunked(None).unwrap().compute().unwrap().to_f64_vec(),
        vec![7.0; 6]
    );
    assert!(!d.join("x/0.0").exists(), "old chunks erased");
}

#[test]
fn zarr_python_reads_what_gridflow_wrote() {
    let Some(py) = venv_python() else {
        assert!(!in_ci(), "the fixtures venv is required in CI");
        println!(
            "NOTICE: fixtures venv absent (run crates/gridflow-store/tests/fixtures/setup-venv.sh); skipping the zarr-python round trip"
        );
        return;
    };
    for (fmt, name) in [(ZarrFormat::V2, "py-v2"), (ZarrFormat::V3, "py-v3")] {
        let d = tmp(name);
        let x = sample();
        let store = ZarrStore::open(d.to_str().unwrap(), StoreOptions::default()).unwrap();
        to_zarr(&x, &store, "tas", &opts(fmt)).unwrap();
        let ints = ChunkedArray::arange(0.0, 7.0, 1.0, 4, DType::I64).unwrap();
        let mut o = opts(fmt);
        o.dims = Some(vec!["time".into()]);
        to_zarr(&ints, &store, "time", &o).unwrap();
        let want = json!({
            "tas": {"shape": [7, 5, 6], "dims": ["time", "lat", "lon"], "units": "K",
                    "values": values(&x.compute().unwrap())},
            "time": {"shape": [7], "dims": ["time"], "units": "K", "values": values(&ints.compute().unwrap())},
        });
        let wf = d.join("want.json");
        std::fs::write(&wf, want.to_string()).unwrap();
        let out = std::process::Command::new(&py)
            .arg(fixtures().join("check_roundtrip.py"))
            .arg(&d)
            .arg(&wf)
            .arg(if fmt == ZarrFormat::V2 { "2" } else { "3" })
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "zarr-python check failed for {name}:\n{text}"
        );
        assert!(text.contains("OK"), "{text}");
    }
}

/// A lazy array read from a local store whose second chunk is corrupt: computing it fails
/// partway.
fn failing_array(d: &std::path::Path) -> ChunkedArray {
    let src = ZarrStore::open(d.to_str().unwrap(), StoreOptions::default()).unwrap();
    let x = ChunkedArray::arange(0.0, 40.0, 1.0, 10, DType::F64).unwrap();
    to_zarr(&x, &src, "src", &WriteOptions::default()).unwrap();
    std::fs::write(d.join("src/1"), b"not a blosc frame").unwrap();
    src.open_group("")
        .unwrap()
        .array("src")
        .unwrap()
        .to_chunked(None)
        .unwrap()
}

#[test]
fn a_failed_write_leaves_no_array_or_group_that_opens() {
    let x = failing_array(&tmp("failing-src"));
    for fmt in [ZarrFormat::V2, ZarrFormat::V3] {
        let d = tmp(&format!("failing-out-{fmt:?}"));
        let store = ZarrStore::open(d.to_str().unwrap(), StoreOptions::default()).unwrap();
        let o = WriteOptions {
            format: fmt,
            batch_blocks: 1,
            threads: 1,
            ..WriteOptions::default()
        };
        let e = to_zarr(&x, &store, "tas", &o).unwrap_err().to_string();
        assert!(e.contains("src/1"), "{e}");
        // chunks may be there, but no metadata points to them
        for key in [
            ".zgroup",
            "zarr.json",
            ".zmetadata",
            "tas/.zarray",
            "tas/zarr.json",
        ] {
            assert!(
                !d.join(key).exists(),
                "{fmt:?}: {key} written by a failed write"
            );
        }
        assert!(store.open_group("").is_err());
    }
}

#[test]
fn writing_an_array_over_the_array_it_reads_is_refused_before_anything_is_touched() {
    let d = tmp("self-input");
    let store = ZarrStore::open(d.to_str().unwrap(), StoreOptions::default()).unwrap();
    let x = ChunkedArray::arange(0.0, 40.0, 1.0, 10, DType::F64).unwrap();
    to_zarr(&x, &store, "a", &WriteOptions::default()).unwrap();
    let read = store
        .open_group("")
        .unwrap()
        .array("a")
        .unwrap()
        .to_chunked(None)
        .unwrap();
    let doubled = read.mul(2.0).unwrap();
    let over = WriteOptions {
        mode: WriteMode::Overwrite,
        ..WriteOptions::default()
    };
    let e = to_zarr(&doubled, &store, "a", &over).unwrap_err();
    assert!(matches!(e, StoreError::OutputIsInput { .. }), "{e}");
    let back = store.open_group("").unwrap().array("a").unwrap();
    assert_eq!(
        back.to_chunked(None)
            .unwrap()
            .compute()
            .unwrap()
            .to_f64_vec(),
        (0..40).map(f64::from).collect::<Vec<_>>()
    );
    // another array of the same store is fine
    to_zarr(&doubled, &store, "b", &WriteOptions::default()).unwrap();
    let b = store.open_group("").unwrap().array("b").unwrap();
    assert_eq!(
        b.to_chunked(None).unwrap().compute().unwrap().to_f64_vec(),
        (0..40).map(|i| f64::from(i) * 2.0).collect::<Vec<_>>()
    );
}
