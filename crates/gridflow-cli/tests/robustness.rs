//! The `gridflow` binary on hostile or careless use: closed pipes and full disks, numbers
//! as Python and NumPy give them, long expressions, odd demo options. Expected values are
//! what CPython 3.11 / NumPy 2 / Dask print for the same expressions (noted per case).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn gridflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gridflow"));
    c.env("RUST_BACKTRACE", "0");
    c
}

fn run(args: &[&str]) -> Output {
    gridflow().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `eval --json EXPR`'s document, or its error message.
fn eval_json(expr: &str) -> Result<Value, String> {
    let o = run(&["eval", "--json", "--", expr]);
    if o.status.success() {
        Ok(serde_json::from_slice(&o.stdout).unwrap())
    } else {
        assert_eq!(o.status.code(), Some(1), "{expr}: {}", stderr(&o));
        Err(stderr(&o))
    }
}

fn value(expr: &str) -> Value {
    match eval_json(expr) {
        Ok(doc) => doc["value"].clone(),
        Err(e) => panic!("{expr}: {e}"),
    }
}

fn values(expr: &str) -> Value {
    match eval_json(expr) {
        Ok(doc) => doc["values"].clone(),
        Err(e) => panic!("{expr}: {e}"),
    }
}

fn catalog() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../gridflow-catalog/tests/fixtures/urls.json")
        .to_string_lossy()
        .into_owned()
}

/// Runs `args` with stdout a pipe whose read end is already closed: every write fails
/// with EPIPE, as after `| head -1` has read its line.
fn with_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = gridflow()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_141() {
    let cat = catalog();
    let cases: [&[&str]; 4] = [
        &["catalog", "search", &cat, "--unique"],
        &["catalog", "search", &cat, "--unique", "--json"],
        &["eval", "--json", "da.ones((4, 4), chunks=2)"],
        &["eval", "1 + 1"],
    ];
    for args in cases {
        let o = with_closed_pipe(args);
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    // A reader that takes one line and leaves, as `head -1` does.
    let mut child = gridflow()
        .args(["catalog", "search", &cat, "--unique"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert!(matches!(o.status.code(), Some(0 | 141)), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn a_full_disk_on_stdout_is_a_clear_error() {
    let Ok(full) = std::fs::File::create("/dev/full") else {
        panic!("/dev/full is missing: this test needs Linux");
    };
    let o = gridflow()
        .args(["catalog", "search", &catalog(), "--unique"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: writing to standard output: No space left on device"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    // --help too (clap's own printing would ignore the error and exit 0).
    let o = gridflow()
        .args(["eval", "--help"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn scalar_integers_are_exact_and_overflow_is_an_error() {
    // Python: 2 ** 10 == 1024 (an int), 2 ** -1 == 0.5, 7 // -2 == -4, -7 % 2 == 1.
    assert_eq!(value("2 ** 10"), json!(1024));
    assert_eq!(value("2 ** -1"), json!(0.5));
    assert_eq!(value("7 // -2"), json!(-4));
    assert_eq!(value("-7 % 2"), json!(1));
    assert_eq!(value("-7.5 // 2"), json!(-4.0));
    assert_eq!(value("9223372036854775806 + 1"), json!(i64::MAX));
    assert_eq!(value("True + True"), json!(2));
    assert_eq!(value("6 ^ 3"), json!(5));
    for expr in [
        "9223372036854775807 + 1",
        "-9223372036854775807 - 2",
        "2 ** 64",
        "4294967296 * 4294967296",
        "-(-9223372036854775807 - 1)",
    ] {
        let e = eval_json(expr).unwrap_err();
        assert!(
            e.contains("OverflowError") && e.contains("64-bit"),
            "{expr}: {e}"
        );
    }
}

#[test]
fn scalar_division_by_zero_is_an_error_as_in_python() {
    // CPython's ZeroDivisionError messages.
    for (expr, message) in [
        ("1/0", "division by zero"),
        ("1//0", "integer division or modulo by zero"),
        ("1%0", "integer modulo by zero"),
        ("0**-1", "0.0 cannot be raised to a negative power"),
        ("1.5/0", "float division by zero"),
        ("1.5//0.0", "float floor division by zero"),
        ("1.5%0", "float modulo"),
    ] {
        let e = eval_json(expr).unwrap_err();
        assert!(
            e.contains(&format!("ZeroDivisionError: {message}")),
            "{expr}: {e}"
        );
    }
}

#[test]
fn arrays_follow_numpy_wrapping_and_inf_nan_on_division_by_zero() {
    // NumPy: np.ones(2, int64) + 9223372036854775807 wraps to -9223372036854775808;
    // int // 0 and int % 0 are 0; float / 0 is ±inf or nan.
    let ints = "da.ones((2,), dtype=\"int64\")";
    assert_eq!(
        values(&format!("{ints} + 9223372036854775807")),
        json!([i64::MIN, i64::MIN])
    );
    assert_eq!(values(&format!("{ints} // 0")), json!([0, 0]));
    assert_eq!(values(&format!("{ints} % 0")), json!([0, 0]));
    assert_eq!(
        values("da.arange(-1, 2) / 0"),
        json!(["-Infinity", "NaN", "Infinity"])
    );
}

#[test]
fn json_keeps_nan_and_infinities_apart() {
    assert_eq!(value("np.nan"), json!("NaN"));
    assert_eq!(value("np.inf"), json!("Infinity"));
    assert_eq!(value("-np.inf"), json!("-Infinity"));
    assert_eq!(value("1e308 * 10"), json!("Infinity"));
    assert_eq!(value("1.5"), json!(1.5));
    let v = values("da.full((3,), 1.0) * da.arange(-1, 2) / 0 * 0 + da.arange(-1, 2) / 0");
    assert_eq!(v, json!(["NaN", "NaN", "NaN"]));
    // The text form prints Python's spellings.
    let o = run(&["eval", "--", "-np.inf"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "-inf");
    let help = run(&["eval", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("\"Infinity\""));
}

#[test]
fn chained_comparisons_work_as_in_python() {
    assert_eq!(value("1 < 2 < 3"), json!(true));
    assert_eq!(value("1 < 3 < 2"), json!(false));
    assert_eq!(value("3 > 2 == 2 >= 1"), json!(true));
    // `a < b and b < c`: the chain stops at the first false, so 1/0 is never evaluated.
    assert_eq!(value("3 < 2 < 1/0"), json!(false));
    assert_eq!(value("\"a\" < \"b\" <= \"b\""), json!(true));
    assert_eq!(
        values("0 < da.arange(-1, 3) < 2"),
        json!([false, false, true, false])
    );
}

#[test]
fn long_flat_expressions_evaluate() {
    // (100,000 terms exceed the kernel's limit on one argument; eval.rs's unit tests
    // evaluate those in process.)
    for n in [101, 10_000] {
        let src = vec!["1"; n].join(" + ");
        assert_eq!(value(&src), json!(n), "{n} terms");
    }
    let src = format!("1000000{}", " - 1 + 2 * 1".repeat(10_000));
    assert_eq!(value(&src), json!(1_010_000));
    // A long chain of array operations: its graph compiles without overflowing the stack.
    let src = format!("da.ones((3,)){}", " + 1".repeat(10_000));
    assert_eq!(values(&src), json!([10_001.0, 10_001.0, 10_001.0]));
    // Deep nesting (not length) is still refused, with a clear error.
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = eval_json(&deep).unwrap_err();
    assert!(e.contains("nested too deeply"), "{e}");
}

#[test]
fn chunk_specifications_are_checked_as_dask_checks_them() {
    // Dask: chunks=(5,) for a 2-d shape and chunks=0 raise; -1/None mean the whole axis.
    for (expr, message) in [
        (
            "da.ones((10, 10), chunks=(5,))",
            "chunks and shape must have the same number of dimensions",
        ),
        ("da.ones((10,), chunks=0)", "must be positive"),
        ("da.ones((10,), chunks=-2)", "must be positive"),
        (
            "da.ones((10,), chunks=2.5)",
            "chunks can only contain integers",
        ),
        (
            "da.ones((10,), chunks=((3, 3),))",
            "do not add up to the shape",
        ),
        ("da.ones((10,), chunks=\"big\")", "chunks"),
    ] {
        let e = eval_json(expr).unwrap_err();
        assert!(e.contains(message), "{expr}: {e}");
        assert!(!e.contains("panicked"), "{expr}: {e}");
    }
    // `.chunk(dim=n)` follows the same rules.
    for (expr, message) in [
        ("da.ones((10,)).chunk(dim_0=0)", "must be positive"),
        (
            "da.ones((10,)).chunk(dim_0=2.5)",
            "chunks can only contain integers",
        ),
    ] {
        let e = eval_json(expr).unwrap_err();
        assert!(e.contains(message), "{expr}: {e}");
    }
    // Valid forms (the library's tests check the blocks they give).
    for expr in [
        "da.ones((10, 10), chunks=(None, 3))",
        "da.ones((10, 10), chunks=-1)",
        "da.ones((10, 10), chunks=((3, 7), 5))",
        "da.ones((10, 10), chunks=4.0)",
        "da.ones((10, 10), chunks=\"auto\")",
        "da.ones((10, 10), chunks=[5, 5])",
        "da.ones((10, 10)).chunk(dim_0=-1, dim_1=None)",
        "da.ones((10, 10)).chunk(dim_0=3)",
    ] {
        assert_eq!(values(&format!("{expr}.sum()")), json!([100.0]), "{expr}");
    }
}

#[test]
fn the_demo_with_one_step_runs() {
    // `--steps 1` used to index a squeezed-away time axis and panic.
    let dir = std::env::temp_dir().join(format!("gridflow-demo-one-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for steps in ["1", "3"] {
        let o = run(&[
            "demo",
            "--steps",
            steps,
            "--threads",
            "2",
            "--data",
            dir.join(format!("data{steps}")).to_str().unwrap(),
            "--out",
            dir.join(format!("out{steps}")).to_str().unwrap(),
        ]);
        assert!(o.status.success(), "--steps {steps}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(&format!("a series of {steps} time steps")),
            "{text}"
        );
    }
    for bad in [
        ["--steps", "0"],
        ["--years", "0"],
        ["--years", "18446744073709551615"],
    ] {
        let o = run(&[
            "demo",
            bad[0],
            bad[1],
            "--data",
            dir.join("x").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{bad:?}");
        assert!(stderr(&o).starts_with("error: "), "{bad:?}: {}", stderr(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// NumPy's and Dask's `arange`: integer arguments give int64, any float argument float64,
/// and `dtype=` wins.
#[test]
fn arange_keeps_integers_as_numpy_does() {
    let dtype = |e: &str| eval_json(e).unwrap()["dtype"].as_str().unwrap().to_owned();
    assert_eq!(dtype("da.arange(100000, chunks=1)"), "int64");
    assert_eq!(dtype("da.arange(2, 10, 3)"), "int64");
    assert_eq!(dtype("da.arange(0, 5, 0.5)"), "float64");
    assert_eq!(dtype("da.arange(5.0)"), "float64");
    assert_eq!(dtype("da.arange(5, dtype=\"float32\")"), "float32");
    // an integer sum stays exact past 2**53 / 1000 and prints as an integer
    assert_eq!(
        values("da.arange(100000, chunks=1000).sum()"),
        serde_json::json!([4_999_950_000_i64])
    );
    assert_eq!(values("da.arange(2, 10, 3)"), serde_json::json!([2, 5, 8]));
}

/// An unnamed result cannot be stored (Zarr reserves xarray's `__xarray_dataarray_variable__`):
/// refused before computing with a hint, and the named one is written.
#[test]
fn an_unnamed_result_is_refused_for_o_with_a_hint() {
    let dir = std::env::temp_dir().join(format!("gridflow-unnamed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("u.zarr");
    let o = run(&[
        "eval",
        "da.ones((4,), chunks=2)",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("rename"), "{}", stderr(&o));
    assert!(!out.exists());
    let o = run(&[
        "eval",
        "da.ones((4,), chunks=2).rename(\"x\")",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("x/.zarray").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
