//! Catalog files are read with caps (issue 12): a gzip CSV that expands a thousandfold is
//! refused partway, special files are refused without being opened, and the JSON size cap
//! is an option.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_catalog::{CatalogError, EsmCatalog, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cat-bounds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spec(catalog_file: &str) -> String {
    format!(
        r#"{{"esmcat_version": "0.1.0", "id": "bounds", "attributes": [],
  "assets": {{"column_name": "path", "format": "zarr"}},
  "aggregation_control": {{"variable_column_name": "var", "groupby_attrs": ["model"],
    "aggregations": [{{"type": "union", "attribute_name": "var"}}]}},
  "catalog_file": "{catalog_file}"}}"#
    )
}

fn refused(r: gridflow_catalog::Result<EsmCatalog>) -> String {
    match r {
        Err(e @ CatalogError::Refused { .. }) => e.to_string(),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn a_gzip_bomb_is_refused_partway() {
    let d = scratch("gz");
    // One gzip member of 1 MiB of zeros, repeated: 2 MB of gzip that expands to 2 GiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = enc.finish().unwrap();
    let copies = (2 << 20) / member.len();
    let mut f = std::fs::File::create(d.join("cat.csv.gz")).unwrap();
    for _ in 0..copies {
        f.write_all(&member).unwrap();
    }
    drop(f);
    std::fs::write(d.join("cat.json"), spec("cat.csv.gz")).unwrap();
    let msg = refused(EsmCatalog::open_with(
        d.join("cat.json").to_str().unwrap(),
        &OpenOptions::default(),
    ));
    assert!(msg.contains("decompression bomb"), "{msg}");
    // A small honest `.csv.gz` opens.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(b"model,var,path\nm1,tas,a.zarr\nm1,pr,b.zarr\n")
        .unwrap();
    std::fs::write(d.join("ok.csv.gz"), enc.finish().unwrap()).unwrap();
    std::fs::write(d.join("ok.json"), spec("ok.csv.gz")).unwrap();
    let cat = EsmCatalog::open_with(d.join("ok.json").to_str().unwrap(), &OpenOptions::default())
        .unwrap();
    assert_eq!(cat.len(), 2);
    // The size cap is an option.
    let tiny = OpenOptions {
        max_bytes: 100,
        ..OpenOptions::default()
    };
    let msg = refused(EsmCatalog::open_with(
        d.join("ok.json").to_str().unwrap(),
        &tiny,
    ));
    assert!(msg.contains("more than the cap of 100 bytes"), "{msg}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Makes `path` a FIFO with a writer waiting to hand it `text`: a reader that opened it
/// would get the text (and the test would fail) instead of hanging.
fn fifo(path: &Path, text: String) -> std::thread::JoinHandle<()> {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
    let p = path.to_owned();
    std::thread::spawn(move || {
        if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = w.write_all(text.as_bytes());
        }
    })
}

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
fn fifos_in_place_of_catalog_files_are_refused() {
    let d = scratch("fifo");
    // the catalog JSON itself
    let json = d.join("cat.json");
    let w = fifo(&json, spec("cat.csv"));
    let msg = refused(EsmCatalog::open_with(
        json.to_str().unwrap(),
        &OpenOptions::default(),
    ));
    assert!(
        msg.contains("not a regular file") && msg.contains("cat.json"),
        "{msg}"
    );
    release(&json, w);
    std::fs::remove_file(&json).unwrap();
    // its catalog_file
    std::fs::write(&json, spec("cat.csv")).unwrap();
    let csv = d.join("cat.csv");
    let w = fifo(&csv, "model,var,path\nm1,tas,a.zarr\n".into());
    let msg = refused(EsmCatalog::open_with(
        json.to_str().unwrap(),
        &OpenOptions::default(),
    ));
    assert!(
        msg.contains("not a regular file") && msg.contains("cat.csv"),
        "{msg}"
    );
    release(&csv, w);
    std::fs::remove_dir_all(&d).unwrap();
}
