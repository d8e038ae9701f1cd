//! Helpers shared by the store tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use gridflow_array::{Chunk, DType, Scheduler};
use gridflow_store::{StoreOptions, ZarrArray, ZarrStore};
use serde_json::Value;
use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture store location: a local path, or `GRIDFLOW_STORE_TEST_BASE_URL/<name>` when that
/// variable is set (so the same tests run against an HTTP server or an object store holding
/// the fixtures: `scripts/test.sh` runs them over http-server and fake-gcs-server).
pub fn store_url(name: &str) -> String {
    match std::env::var("GRIDFLOW_STORE_TEST_BASE_URL") {
        Ok(base) if !base.is_empty() => format!("{}/{name}", base.trim_end_matches('/')),
        _ => fixtures().join(name).to_string_lossy().into_owned(),
    }
}

/// True when the fixture stores are read over plain HTTP, which cannot list directories
/// (`GRIDFLOW_STORE_TEST_BASE_URL=http://...`, as `scripts/test.sh` sets for a rerun).
pub fn over_http() -> bool {
    store_url("x").starts_with("http")
}

/// True when the fixture stores are read from a server (HTTP or an object store such as
/// `gs://`): `GRIDFLOW_STORE_TEST_BASE_URL` is set.
pub fn remote_run() -> bool {
    store_url("x").contains("://")
}

/// True for the fixture stores with consolidated metadata (openable as a group over plain
/// HTTP, which cannot list directories).
pub fn is_consolidated(name: &str) -> bool {
    name.contains("consolidated") || name.starts_with("cmip6")
}

pub fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A chunk's values in the expected.json encoding (C order; NaN as null, infinities as strings).
pub fn values(c: &Chunk) -> Vec<Value> {
    fn float(v: f64) -> Value {
        if v.is_nan() {
            Value::Null
        } else if v.is_infinite() {
            Value::from(if v > 0.0 { "inf" } else { "-inf" })
        } else {
            Value::from(v)
        }
    }
    match c {
        Chunk::Bool(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::I8(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::I16(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::I32(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::I64(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::U8(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::U16(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::U32(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::U64(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Chunk::F32(a) => a.iter().map(|&v| float(f64::from(v))).collect(),
        Chunk::F64(a) => a.iter().map(|&v| float(v)).collect(),
    }
}

/// Compares values, treating numbers as f64 (JSON integers vs floats) and null as NaN.
pub fn assert_values_eq(what: &str, got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{what}: number of values");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = match (g, w) {
            (Value::Number(a), Value::Number(b)) => {
                if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                    x == y
                } else if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                    x == y
                } else {
                    a.as_f64() == b.as_f64()
                }
            }
            _ => g == w,
        };
        assert!(same, "{what}: value {i}: got {g}, expected {w}");
    }
}

/// numpy dtype string (as zarr-python reports it) to gridflow's name.
pub fn numpy_name(s: &str) -> String {
    match s.trim_start_matches(['<', '>', '|', '=']) {
        "b1" | "bool" => "bool".into(),
        "i1" => "int8".into(),
        "i2" => "int16".into(),
        "i4" => "int32".into(),
        "i8" => "int64".into(),
        "u1" => "uint8".into(),
        "u2" => "uint16".into(),
        "u4" => "uint32".into(),
        "u8" => "uint64".into(),
        "f4" => "float32".into(),
        "f8" => "float64".into(),
        other => other.into(),
    }
}

/// True in CI (`CI` set to anything but `false`/`0`, as scripts/test.sh does): tests that
/// need a server or the fixtures venv fail instead of skipping with a notice.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The fixtures venv's python, if it exists.
pub fn venv_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var("GRIDFLOW_FIXTURES_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/fixtures-venv"));
    let py = venv.join("bin/python");
    py.exists().then_some(py)
}

// The comparisons of stores read remotely (HTTP, S3, GCS, Azure) with the same stores read
// from the local fixtures.

/// The stores with consolidated metadata (openable as a group over plain HTTP, which cannot
/// list directories).
pub const CONSOLIDATED: [&str; 3] = [
    "v2_consolidated.zarr",
    "v3_consolidated.zarr",
    "cmip6_mini.zarr",
];
/// Stores without consolidated metadata (their arrays are opened one by one over HTTP).
pub const PLAIN: [&str; 2] = ["v2_plain.zarr", "v3_plain.zarr"];

/// Every value of `a` through the lazy path (one read task per store chunk, 2 threads).
pub fn read_all(a: &ZarrArray) -> gridflow_array::Chunk {
    a.to_chunked(None)
        .unwrap()
        .compute_with(&Scheduler::threads(2))
        .unwrap()
}

/// `remote` (an array opened over HTTP or S3) equals `local` in metadata and every value.
pub fn assert_same_array(what: &str, local: &ZarrArray, remote: &ZarrArray) {
    assert_eq!(remote.shape(), local.shape(), "{what}: shape");
    assert_eq!(remote.chunk_shape(), local.chunk_shape(), "{what}: chunks");
    assert_eq!(remote.dtype(), local.dtype(), "{what}: dtype");
    assert_eq!(remote.dims(), local.dims(), "{what}: dims");
    assert_eq!(remote.attrs(), local.attrs(), "{what}: attrs");
    let (l, r) = (read_all(local), read_all(remote));
    assert_eq!(r.shape(), l.shape(), "{what}: computed shape");
    assert_eq!(r.dtype(), l.dtype(), "{what}: computed dtype");
    assert_values_eq(what, &values(&r), &values(&l));
    // A reduction streams each remote chunk slab by slab (`read_block_slabs`): the same sums.
    if local.dtype() != DType::Bool && local.shape().first().is_some_and(|&n| n > 0) {
        let sum = |a: &ZarrArray| {
            a.to_chunked(None)
                .unwrap()
                .sum(Some(&[0]))
                .unwrap()
                .compute_with(&Scheduler::threads(2))
                .unwrap()
        };
        let (ls, rs) = (sum(local), sum(remote));
        assert_eq!(rs.shape(), ls.shape(), "{what}: sum shape");
        assert_values_eq(
            &format!("{what}: sum over axis 0"),
            &values(&rs),
            &values(&ls),
        );
    }
}

/// Opens `name` as a group remotely and locally and compares every array.
pub fn compare_group(what: &str, name: &str, remote: &ZarrStore) -> usize {
    let local = ZarrStore::open(
        fixtures().join(name).to_str().unwrap(),
        StoreOptions::read_only(),
    )
    .unwrap()
    .open_group("")
    .unwrap();
    let g = remote.open_group("").unwrap();
    assert_eq!(g.zarr_format(), local.zarr_format(), "{what}");
    assert_eq!(g.is_consolidated(), local.is_consolidated(), "{what}");
    assert_eq!(g.attrs(), local.attrs(), "{what}: group attrs");
    assert_eq!(g.array_paths(), local.array_paths(), "{what}: array paths");
    for p in local.array_paths() {
        let w = format!("{what}/{p}");
        assert_same_array(&w, &local.array(&p).unwrap(), &g.array(&p).unwrap());
    }
    local.array_paths().len()
}

/// The array paths zarr-python found in a fixture store.
pub fn expected_paths(name: &str) -> Vec<String> {
    let exp = expected();
    exp[name]["arrays"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Spawns this test binary again to run `child` with extra environment variables
/// (`std::env::set_var` is unsafe, and credential variables must not leak into other tests).
pub fn run_child(child: &str, envs: &[(&str, &str)]) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([child, "--exact", "--nocapture", "--test-threads", "1"])
        .env("GRIDFLOW_TEST_CHILD", child)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{child} failed:\n{text}");
    assert!(text.contains("1 passed"), "{child} did not run:\n{text}");
}
