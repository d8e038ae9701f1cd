//! Stores that opened wrongly or made gridflow panic, found with the fuzz harness
//! (`crates/gridflow-cli/tests/fuzz.rs`) and while building its seeds.
//!
//! Zarr v3 stores written by xarray keep a float `_FillValue` attribute base64-encoded
//! (little-endian float64; xarray's `FillValueCoder`): gridflow decodes it as xarray does.
//! Every float variable xarray 2026.9.0 writes to v3 has one (NaN by default), and gridflow
//! refused to open such stores.
#![allow(clippy::unwrap_used)]

use gridflow_dataset::{OpenOptions, open_zarr};
use std::path::PathBuf;

/// A v3 store laid out as xarray 2026.9.0 writes
/// `Dataset({"tas": ("t", [1, nan, 3] as float32)}, coords={"t": [0.5, 1, 2]})` with
/// `encoding={"tas": {"_FillValue": -999.0}}` (chunks uncompressed here).
fn store(name: &str, tas_fill: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tas/c")).unwrap();
    std::fs::create_dir_all(dir.join("t/c")).unwrap();
    std::fs::write(
        dir.join("zarr.json"),
        r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#,
    )
    .unwrap();
    let array = |dtype: &str, fill: &str| {
        format!(
            r#"{{"zarr_format": 3, "node_type": "array", "shape": [3], "data_type": "{dtype}",
            "chunk_grid": {{"name": "regular", "configuration": {{"chunk_shape": [3]}}}},
            "chunk_key_encoding": {{"name": "default", "configuration": {{"separator": "/"}}}},
            "fill_value": "NaN",
            "codecs": [{{"name": "bytes", "configuration": {{"endian": "little"}}}}],
            "attributes": {{"_FillValue": {fill}}}, "dimension_names": ["t"]}}"#
        )
    };
    std::fs::write(dir.join("tas/zarr.json"), array("float32", tas_fill)).unwrap();
    std::fs::write(
        dir.join("t/zarr.json"),
        array("float64", r#""AAAAAAAA+H8=""#),
    )
    .unwrap();
    let tas: Vec<u8> = [1.0f32, -999.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.join("tas/c/0"), tas).unwrap();
    let t: Vec<u8> = [0.5f64, 1.0, 2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.join("t/c/0"), t).unwrap();
    dir
}

#[test]
fn base64_fill_value_masks_as_in_xarray() {
    let dir = store("v3-fill-b64.zarr", r#""AAAAAAA4j8A=""#);
    let ds = open_zarr(dir.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let tas = ds.get("tas").unwrap().to_f64_vec().unwrap();
    // xarray.open_zarr(...).tas.values == [1.0, nan, 3.0]
    assert_eq!(tas[0], 1.0);
    assert!(tas[1].is_nan(), "{tas:?}");
    assert_eq!(tas[2], 3.0);
    assert_eq!(ds.get("t").unwrap().to_f64_vec().unwrap(), [0.5, 1.0, 2.0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fill_value_that_is_not_base64_is_an_error() {
    // xarray raises too (binascii.Error); gridflow also takes the plain "NaN" that its own
    // v3 stores held before it wrote base64, since that text cannot mean anything else
    let dir = store("v3-fill-nan-text.zarr", r#""NaN""#);
    open_zarr(dir.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let dir = store("v3-fill-bad.zarr", r#""not base64!""#);
    let e = open_zarr(dir.to_str().unwrap(), &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tas") && e.contains("_FillValue") && e.contains("base64"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fuzz case: an attribute name (or a variable name) longer than 65535 characters made the
/// dataset repr panic ("Formatting argument out of range": a `{:<w$}` width beyond u16::MAX).
#[test]
fn repr_with_very_long_names() {
    let dir = store("long-names.zarr", r#""AAAAAAA4j8A=""#);
    let long = "k".repeat(70_000);
    std::fs::write(
        dir.join("zarr.json"),
        format!(r#"{{"zarr_format": 3, "node_type": "group", "attributes": {{"{long}": 1}}}}"#),
    )
    .unwrap();
    let ds = open_zarr(dir.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let text = ds.to_string();
    let line = text.lines().find(|l| l.contains(&long)).unwrap();
    assert!(line.ends_with(": 1"), "{}", &line[line.len() - 10..]);
    let _ = std::fs::remove_dir_all(&dir);
}
