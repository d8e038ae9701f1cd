//! Coordinates loaded on open are bounded by a raisable limit, checked against the length
//! the metadata claims before anything is read (issue 12).
#![allow(missing_docs, clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_dataset::{DatasetError, DecodeOptions, OpenOptions, open_zarr};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ds-bounds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A v2 group with a 1-d array `name` along itself (no chunk files: reads would give the
/// fill value).
fn coord(dir: &Path, name: &str, n: u64, chunk: u64, attrs: serde_json::Value) {
    std::fs::write(dir.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(
        dir.join(name).join(".zarray"),
        format!(
            r#"{{"zarr_format":2,"shape":[{n}],"chunks":[{chunk}],"dtype":"<i8","compressor":null,"fill_value":0,"order":"C","filters":null}}"#
        ),
    )
    .unwrap();
    let mut a = attrs;
    a["_ARRAY_DIMENSIONS"] = serde_json::json!([name]);
    std::fs::write(dir.join(name).join(".zattrs"), a.to_string()).unwrap();
}

fn too_large(
    r: gridflow_dataset::Result<gridflow_dataset::Dataset>,
) -> (String, &'static str, usize) {
    match r {
        Err(DatasetError::TooLarge {
            var, what, values, ..
        }) => (var, what, values),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn long_coordinates_are_refused_before_they_are_loaded() {
    let d = scratch("time");
    // `time` of length 10**10 in chunks of a million: ten thousand blocks, 80 GB of values.
    coord(
        &d,
        "time",
        10_000_000_000,
        1_000_000,
        serde_json::json!({"units": "days since 2000-01-01", "calendar": "360_day"}),
    );
    let url = d.to_str().unwrap();
    let (var, what, values) = too_large(open_zarr(url, &OpenOptions::default()));
    assert_eq!(
        (var.as_str(), what, values),
        ("time", "time decoding", 10_000_000_000)
    );
    // Undecoded, it is still an index loaded into memory.
    let raw = OpenOptions {
        decode: DecodeOptions::none(),
        ..OpenOptions::default()
    };
    let (var, what, values) = too_large(open_zarr(url, &raw));
    assert_eq!(
        (var.as_str(), what, values),
        ("time", "index coordinate", 10_000_000_000)
    );
    std::fs::remove_dir_all(&d).unwrap();

    // The limit is an option: ten values refused under a limit of five, read by default.
    let d = scratch("small");
    coord(&d, "lat", 10, 5, serde_json::json!({}));
    let url = d.to_str().unwrap();
    let tight = OpenOptions {
        decode: DecodeOptions {
            max_index_values: 5,
            ..DecodeOptions::default()
        },
        ..OpenOptions::default()
    };
    let (var, _, values) = too_large(open_zarr(url, &tight));
    assert_eq!((var.as_str(), values), ("lat", 10));
    let ds = open_zarr(url, &OpenOptions::default()).unwrap();
    assert_eq!(
        ds.dims().into_iter().collect::<Vec<_>>(),
        [("lat".to_owned(), 10)]
    );
    std::fs::remove_dir_all(&d).unwrap();
}
