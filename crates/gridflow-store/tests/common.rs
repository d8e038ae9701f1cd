//! Helpers shared by the store tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use gridflow_array::Chunk;
use serde_json::Value;
use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture store location: a local path, or `GRIDFLOW_STORE_TEST_BASE_URL/<name>` when that
/// variable is set (so the same tests run against an HTTP or S3 server holding the fixtures).
pub fn store_url(name: &str) -> String {
    match std::env::var("GRIDFLOW_STORE_TEST_BASE_URL") {
        Ok(base) if !base.is_empty() => format!("{}/{name}", base.trim_end_matches('/')),
        _ => fixtures().join(name).to_string_lossy().into_owned(),
    }
}

/// True when the fixture stores are read over HTTP (`GRIDFLOW_STORE_TEST_BASE_URL` is set,
/// as `scripts/test.sh` does for its second run of the fixture tests).
pub fn over_http() -> bool {
    store_url("x").starts_with("http")
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
