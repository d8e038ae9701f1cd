//! Metadata sizes the reads (issue 12): shapes are counted before anything is allocated,
//! metadata documents are read with a size cap, special files are refused without being
//! opened, and a shard is read by its index and inner-chunk ranges, never whole.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::fixtures;
use gridflow_store::{StoreError, StoreOptions, ZarrStore};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A fresh directory under the target dir (removed by the caller).
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bounds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A v2 group holding one float64 array `x` with this shape and chunks.
fn v2_store(dir: &Path, shape: &str, chunks: &str) {
    std::fs::write(dir.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
    std::fs::create_dir_all(dir.join("x")).unwrap();
    std::fs::write(
        dir.join("x/.zarray"),
        format!(
            r#"{{"zarr_format":2,"shape":{shape},"chunks":{chunks},"dtype":"<f8","compressor":null,"fill_value":"NaN","order":"C","filters":null}}"#
        ),
    )
    .unwrap();
    let ndim = shape.matches(',').count() + 1;
    let dims: Vec<String> = (0..ndim).map(|i| format!("d{i}")).collect();
    std::fs::write(
        dir.join("x/.zattrs"),
        serde_json::json!({ "_ARRAY_DIMENSIONS": dims }).to_string(),
    )
    .unwrap();
}

fn open(dir: &Path) -> ZarrStore {
    ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap()
}

#[test]
fn shapes_beyond_memory_are_refused_naming_the_array_and_shape() {
    let d = scratch("shape");
    // 2^62 float64 elements: more bytes than a u64 counts.
    v2_store(&d, "[4611686018427387904]", "[4611686018427387904]");
    let e = open(&d).open_array("x").unwrap_err();
    assert!(matches!(e, StoreError::Metadata { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"x\"") && msg.contains("4611686018427387904"),
        "{msg}"
    );
    // 2^60 elements in chunks of one: the array is countable, its 2^60 blocks are not
    // materialized; refused when the lazy array is built.
    v2_store(&d, "[1152921504606846976]", "[1]");
    let a = open(&d).open_array("x").unwrap();
    let e = a.to_chunked(None).unwrap_err();
    assert!(matches!(e, StoreError::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("blocks along axis 0"), "{e}");
    // 10^8 chunks (the 200-byte `.zarray` of the issue): opened lazily; its size is known
    // without making a task.
    v2_store(&d, "[100000, 100000]", "[10, 10]");
    let x = open(&d).open_array("x").unwrap().to_chunked(None).unwrap();
    assert_eq!(x.npartitions(), 100_000_000);
    assert!(!x.is_in_memory());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn oversized_metadata_is_refused_before_it_is_read() {
    let d = scratch("zmetadata");
    v2_store(&d, "[10]", "[5]");
    // A 2 GiB `.zmetadata` (sparse: no disk used).
    let f = std::fs::File::create(d.join(".zmetadata")).unwrap();
    f.set_len(2 << 30).unwrap();
    let store = open(&d);
    match store.open_group("") {
        Err(StoreError::TooLarge {
            key, size, limit, ..
        }) => {
            assert_eq!(key, ".zmetadata");
            assert_eq!(size, 2 << 30);
            assert_eq!(limit, 64 << 20);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(store.bytes_read() < 1 << 20, "{}", store.bytes_read());
    std::fs::remove_file(d.join(".zmetadata")).unwrap();
    // The cap is an option: a tiny cap refuses the 200-byte `.zarray`, the default reads it.
    let tiny = StoreOptions {
        max_metadata_bytes: 100,
        ..StoreOptions::read_only()
    };
    let e = ZarrStore::open(d.to_str().unwrap(), tiny)
        .unwrap()
        .open_array("x")
        .unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { .. }), "{e:?}");
    assert_eq!(open(&d).open_array("x").unwrap().shape(), &[10]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Makes `path` a FIFO. A writer thread waits on it with valid JSON, so a reader that
/// opened it would get the JSON (and the test would fail) instead of hanging.
fn fifo(path: &Path, json: &'static str) -> std::thread::JoinHandle<()> {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
    let p = path.to_owned();
    std::thread::spawn(move || {
        if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = w.write_all(json.as_bytes());
        }
    })
}

/// Releases the writer thread of [`fifo`]: a non-blocking reader lets its open return.
fn release(path: &Path, writer: std::thread::JoinHandle<()>) {
    const O_NONBLOCK: i32 = 0o4000;
    let _r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .unwrap();
    writer.join().unwrap();
}

#[test]
fn special_files_are_refused_without_being_opened() {
    let d = scratch("fifo");
    v2_store(&d, "[10]", "[5]");
    let zarray = d.join("x/.zarray");
    let w = fifo(
        &zarray,
        r#"{"zarr_format":2,"shape":[10],"chunks":[5],"dtype":"<f8","compressor":null,"fill_value":"NaN","order":"C","filters":null}"#,
    );
    match open(&d).open_array("x") {
        Err(StoreError::NotRegularFile { path, .. }) => assert!(path.ends_with(".zarray")),
        other => panic!("expected NotRegularFile, got {other:?}"),
    }
    release(&zarray, w);
    std::fs::remove_file(&zarray).unwrap();

    // v3 `zarr.json`.
    let z = d.join("zarr.json");
    let w = fifo(
        &z,
        r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#,
    );
    std::fs::remove_file(d.join(".zgroup")).unwrap();
    let e = open(&d).open_group("").unwrap_err();
    assert!(matches!(e, StoreError::NotRegularFile { .. }), "{e:?}");
    release(&z, w);
    std::fs::remove_dir_all(&d).unwrap();

    // A chunk file: the read fails naming the path, it does not block.
    let d = scratch("fifo-chunk");
    v2_store(&d, "[10]", "[5]");
    let w = fifo(&d.join("x/0"), "\0\0\0\0\0\0\0\0");
    let a = open(&d).open_array("x").unwrap();
    let e = a.read_chunk(&[0]).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    release(&d.join("x/0"), w);
    std::fs::remove_dir_all(&d).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn a_huge_shard_is_read_by_its_index_and_inner_chunk_ranges() {
    let d = scratch("shard");
    copy_dir(&fixtures().join("v3_plain.zarr"), &d);
    let want = open(&d)
        .open_array("sharded")
        .unwrap()
        .read_chunk(&[0, 0, 0])
        .unwrap();
    // Put 512 MiB of holes between the inner chunks and the index at the end of the
    // shard: the index offsets stay right, the file is huge (sparse: no disk used).
    let shard = d.join("sharded/c/0/0/0");
    let bytes = std::fs::read(&shard).unwrap();
    let index = 48 * 16 + 4;
    let (data, tail) = bytes.split_at(bytes.len() - index);
    let mut f = std::fs::File::create(&shard).unwrap();
    f.write_all(data).unwrap();
    f.seek(SeekFrom::Current(512 << 20)).unwrap();
    f.write_all(tail).unwrap();
    drop(f);
    let size = std::fs::metadata(&shard).unwrap().len();
    assert!(size > 512 << 20);

    let store = open(&d);
    let a = store.open_array("sharded").unwrap();
    store.reset_counters();
    let got = a.read_chunk(&[0, 0, 0]).unwrap();
    assert_eq!(got.to_f64_vec(), want.to_f64_vec());
    // the index and the 12 inner chunks, not the half gigabyte
    assert!(
        store.bytes_read() < 64 << 10,
        "{} bytes",
        store.bytes_read()
    );
    // through the lazy array too
    store.reset_counters();
    let lazy = a.to_chunked(None).unwrap().compute().unwrap();
    assert_eq!(lazy.shape(), &[64, 3, 4]);
    assert!(
        store.bytes_read() < 128 << 10,
        "{} bytes",
        store.bytes_read()
    );
    std::fs::remove_dir_all(&d).unwrap();
}
