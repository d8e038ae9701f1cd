//! Hostile metadata and inputs against the `gridflow` binary (issue 12), each run as a
//! child process under a 2 GB address-space limit (`ulimit -v`), so that a regression that
//! allocates per chunk fails here instead of taking the machine's memory: refusals are
//! clear errors (exit 1), never an abort (134) or a panic (101), and never a hang.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Address space of each run, KiB.
const LIMIT_KIB: u64 = 2_000_000;

fn gridflow_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("GRIDFLOW_LIMITS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn gridflow(args: &[&str]) -> Output {
    gridflow_env(args, &[])
}

/// A clean refusal: exit 1 and `needles` in the message.
#[track_caller]
fn refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-bounds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A v2 store with one array `x` of this shape, chunks, dtype and dimension names.
fn store(dir: &Path, shape: &str, chunks: &str, dtype: &str, dims: &str, attrs: &str) -> String {
    std::fs::write(dir.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
    std::fs::create_dir_all(dir.join("x")).unwrap();
    std::fs::write(
        dir.join("x/.zarray"),
        format!(
            r#"{{"zarr_format":2,"shape":{shape},"chunks":{chunks},"dtype":"{dtype}","compressor":null,"fill_value":0,"order":"C","filters":null}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("x/.zattrs"),
        format!(r#"{{"_ARRAY_DIMENSIONS":{dims}{attrs}}}"#),
    )
    .unwrap();
    dir.to_str().unwrap().to_owned()
}

#[test]
fn info_on_a_hundred_million_chunks_prints_without_per_chunk_memory() {
    let d = scratch("grid");
    let s = store(
        &d,
        "[100000, 100000]",
        "[10, 10]",
        "<f4",
        r#"["a", "b"]"#,
        "",
    );
    let out = gridflow(&["info", &s]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("npartitions=100000000"), "{text}");
    // computing it all is refused by counting, naming the tasks
    let out = gridflow(&["eval", "--store", &s, "--threads", "2", "ds.x.sum()"]);
    refused(&out, &["100000000 tasks", "--memory-limit"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn shapes_past_two_to_the_62_are_refused_naming_array_and_shape() {
    let d = scratch("shape");
    let s = store(&d, "[4611686018427387904]", "[1]", "<f8", r#"["t"]"#, "");
    refused(
        &gridflow(&["info", &s]),
        &["\"x\"", "[4611686018427387904]"],
    );
    // 2^60 one-byte values are countable, their 2^60 chunks are not
    let s = store(&d, "[1152921504606846976]", "[1]", "|i1", r#"["t"]"#, "");
    refused(&gridflow(&["info", &s]), &["\"x\"", "blocks along axis 0"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_time_coordinate_of_ten_billion_values_is_refused_before_loading() {
    let d = scratch("time");
    std::fs::write(d.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
    std::fs::create_dir_all(d.join("time")).unwrap();
    std::fs::write(
        d.join("time/.zarray"),
        r#"{"zarr_format":2,"shape":[10000000000],"chunks":[1000000],"dtype":"<i8","compressor":null,"fill_value":0,"order":"C","filters":null}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("time/.zattrs"),
        r#"{"_ARRAY_DIMENSIONS":["time"],"units":"days since 2000-01-01"}"#,
    )
    .unwrap();
    let s = d.to_str().unwrap();
    refused(
        &gridflow(&["info", s]),
        &["\"time\"", "10000000000 values", "GRIDFLOW_LIMITS"],
    );
    // the limit is raisable, and a bad GRIDFLOW_LIMITS is an error, not ignored
    let out = gridflow_env(&["info", s], &[("GRIDFLOW_LIMITS", "index=5")]);
    refused(&out, &["limit of 5"]);
    let out = gridflow_env(&["info", s], &[("GRIDFLOW_LIMITS", "bogus=1")]);
    refused(&out, &["unknown limit \"bogus\""]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn task_graphs_count_against_the_memory_limit() {
    let out = gridflow(&[
        "eval",
        "--threads",
        "2",
        "--memory-limit",
        "1GB",
        "da.ones((3000000,), chunks=1).sum()",
    ]);
    refused(&out, &["3000000 tasks", "--memory-limit"]);
    let out = gridflow(&[
        "eval",
        "--threads",
        "2",
        "--memory-limit",
        "8GB",
        "da.ones((10000000,), chunks=1).sum()",
    ]);
    refused(&out, &["10000000 tasks"]);
    let out = gridflow(&[
        "eval",
        "--threads",
        "2",
        "da.ones((1000000000000,), chunks=1)",
    ]);
    refused(&out, &["1000000000000 tasks"]);
    // a graph that fits computes
    let out = gridflow(&[
        "eval",
        "--threads",
        "2",
        "--memory-limit",
        "1GB",
        "da.ones((3000,), chunks=1).sum()",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("3000.0"), "{text}");
}

#[test]
fn a_two_gigabyte_zmetadata_is_refused_unread() {
    let d = scratch("zmeta");
    let s = store(&d, "[10]", "[5]", "<f8", r#"["t"]"#, "");
    let f = std::fs::File::create(d.join(".zmetadata")).unwrap();
    f.set_len(2 << 30).unwrap();
    refused(
        &gridflow(&["info", &s]),
        &[".zmetadata", "2147483648 bytes", "GRIDFLOW_LIMITS"],
    );
    std::fs::remove_file(d.join(".zmetadata")).unwrap();
    // the cap comes from GRIDFLOW_LIMITS
    let out = gridflow_env(&["info", &s], &[("GRIDFLOW_LIMITS", "metadata=100B")]);
    refused(&out, &[".zarray", "cap of 100 bytes"]);
    let out = gridflow(&["info", &s]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Makes `path` a FIFO with a writer waiting to hand it `text` (so a regression reads the
/// text and fails the test instead of hanging); `release` lets the writer go.
fn fifo(path: &Path, text: &'static str) -> std::thread::JoinHandle<()> {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
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
fn fifos_where_metadata_or_catalogs_belong_are_refused() {
    let d = scratch("fifo");
    let s = store(&d, "[10]", "[5]", "<f8", r#"["t"]"#, "");
    let zarray = d.join("x/.zarray");
    std::fs::remove_file(&zarray).unwrap();
    let w = fifo(
        &zarray,
        r#"{"zarr_format":2,"shape":[10],"chunks":[5],"dtype":"<f8","compressor":null,"fill_value":0,"order":"C","filters":null}"#,
    );
    refused(
        &gridflow(&["info", &s]),
        &["x/.zarray", "not a regular file"],
    );
    release(&zarray, w);

    let cat = d.join("cat.json");
    let w = fifo(&cat, "{}");
    refused(
        &gridflow(&["catalog", "search", cat.to_str().unwrap()]),
        &["cat.json", "not a regular file"],
    );
    release(&cat, w);
    std::fs::remove_dir_all(&d).unwrap();
}
