//! What `Dataset::to_netcdf` writes opens in xarray — with both the `netcdf4` (netCDF-C) and
//! the `h5netcdf` (h5py) engines, CF decoding on — as the dataset xarray reads from the Zarr
//! fixture gridflow read: the same variables, values, coordinates, dates in the same
//! calendar (every CF calendar), packed integers stored as packed integers with their
//! scale/offset/fill, and compression + chunking as asked. gridflow reads the file back too.
//!
//! Runs the pinned fixtures venv's python (`GRIDFLOW_FIXTURES_VENV` or
//! `target/fixtures-venv`); without it the test prints a notice and returns, except in CI.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_dataset::{OpenOptions, ToNetcdfOptions, open_dataset, open_zarr};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var("GRIDFLOW_FIXTURES_VENV").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures-venv"),
        PathBuf::from,
    );
    let py = venv.join("bin/python");
    py.exists().then_some(py)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridflow-nc-out-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compares each written file, in both engines, with xarray's reading of the original store.
const COMPARE: &str = r#"
import sys, numpy as np, xarray as xr
orig_path, level = sys.argv[1], int(sys.argv[2])
orig = xr.open_zarr(orig_path, use_cftime=True).load()
raw = xr.open_zarr(orig_path, decode_cf=False)
def same(x, y):
    if isinstance(y, str) or isinstance(x, str):
        return x == y
    return np.array_equal(np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8"), equal_nan=True)
for new_path in sys.argv[3:]:
    for engine in ["netcdf4", "h5netcdf"]:
        with xr.open_dataset(new_path, engine=engine, use_cftime=True) as new:
            new = new.load()
            assert sorted(new.data_vars) == sorted(orig.data_vars), (engine, list(new.data_vars))
            assert sorted(new.coords) == sorted(orig.coords), (engine, list(new.coords))
            for name in list(orig.data_vars) + list(orig.coords):
                a, b = new[name], orig[name]
                assert a.dims == b.dims, (engine, name, a.dims, b.dims)
                if b.dtype.kind == "O" and b.size and hasattr(b.values.flat[0], "calendar"):
                    assert (a.values == b.values).all(), (engine, name)
                    assert a.values.flat[0].calendar == b.values.flat[0].calendar, (engine, name)
                elif b.dtype.kind in "OUS":
                    assert [str(x) for x in a.values.flat] == [str(x) for x in b.values.flat], (engine, name)
                else:
                    assert a.dtype.kind == b.dtype.kind, (engine, name, a.dtype, b.dtype)
                    np.testing.assert_array_equal(a.values, b.values, err_msg=f"{engine} {name}")
                # packed variables stay packed: the stored dtype and the packing attributes
                # (the calendar was compared above through cftime, which takes 365_day for noleap
                # as gridflow writes it)
                for key in ["scale_factor", "add_offset", "_FillValue", "units"]:
                    if key in raw[name].attrs and key in b.encoding:
                        assert same(a.encoding.get(key), b.encoding[key]), (engine, name, key, a.encoding.get(key), b.encoding[key])
                if "scale_factor" in b.encoding:
                    assert a.encoding["dtype"] == b.encoding["dtype"], (engine, name, a.encoding["dtype"])
                if engine == "netcdf4" and a.ndim and b.dtype.kind not in "OUS":
                    assert a.encoding.get("zlib", False) == (level > 0), (name, a.encoding)
                    if level:
                        assert a.encoding["complevel"] == level, (name, a.encoding)
    print(f"{new_path}: {len(orig.data_vars)} variables, {len(orig.coords)} coordinates agree in both engines")
"#;

fn round_trip(name: &str, level: u8) {
    let Some(py) = venv_python() else {
        assert!(!in_ci(), "the fixtures venv is required in CI");
        println!("NOTICE: fixtures venv absent; {name}: netCDF round trip skipped");
        return;
    };
    let src = fixtures().join(name);
    let ds = open_zarr(src.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let dir = scratch(name);
    let out = dir.join("out.nc");
    let opts = ToNetcdfOptions {
        compression_level: Some(level),
        ..ToNetcdfOptions::default()
    };
    ds.to_netcdf(out.to_str().unwrap(), &opts).unwrap();
    // gridflow reads its own file back (recognised by content): the same values
    let back = open_dataset(out.to_str().unwrap(), &OpenOptions::default()).unwrap();
    for (v, var) in ds.data_vars() {
        if !matches!(var.kind(), gridflow_dataset::ValueKind::Numeric) {
            continue;
        }
        let (a, b) = (
            back.data_vars()[v.as_str()].to_f64_vec().unwrap(),
            var.to_f64_vec().unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{name} {v}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                x == y || (x.is_nan() && y.is_nan()),
                "{name} {v}[{i}]: {x} vs {y}"
            );
        }
    }
    let res = std::process::Command::new(&py)
        .arg("-c")
        .arg(COMPARE)
        .arg(&src)
        .arg(level.to_string())
        .arg(&out)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    println!("{text}");
    assert!(res.status.success(), "{name}: xarray disagrees:\n{text}");
    assert!(text.contains("agree in both engines"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_calendar() {
    for cal in [
        "360_day",
        "365_day",
        "366_day",
        "all_leap",
        "gregorian",
        "julian",
        "noleap",
        "proleptic_gregorian",
        "standard",
    ] {
        round_trip(&format!("cal_{cal}.zarr"), 4);
    }
}

#[test]
fn packed_integers_with_scale_offset_and_fill() {
    round_trip("packed.zarr", 9);
}

#[test]
fn cmip6_fill_values_uncompressed() {
    round_trip("cmip6_fill.zarr", 0);
}

#[test]
fn descending_coordinate_and_strings() {
    round_trip("descending.zarr", 1);
    round_trip("strings_fixed_v2.zarr", 4);
}

#[test]
fn outputs_never_cost_data() {
    let src = fixtures().join("daily_360.zarr");
    let ds = open_zarr(src.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let dir = scratch("safety");
    let out = dir.join("a.nc");
    let o = out.to_str().unwrap();
    ds.to_netcdf(o, &ToNetcdfOptions::default()).unwrap();
    let before = std::fs::read(&out).unwrap();
    // an existing file needs overwrite
    let err = ds
        .to_netcdf(o, &ToNetcdfOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a.nc") && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // a dataset read from the file cannot be written over it, even with overwrite
    let from_file = open_dataset(o, &OpenOptions::default()).unwrap();
    let over = ToNetcdfOptions {
        overwrite: true,
        ..ToNetcdfOptions::default()
    };
    let err = from_file.to_netcdf(o, &over).unwrap_err().to_string();
    assert!(err.contains("a.nc"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // a directory is never replaced
    let err = ds
        .to_netcdf(dir.to_str().unwrap(), &over)
        .unwrap_err()
        .to_string();
    assert!(err.contains("directory"), "{err}");
    // overwrite replaces the file; no temporary sibling is left
    let half = ds
        .isel(&[(
            "time",
            gridflow_dataset::IndexSel::Slice {
                start: Some(0),
                stop: Some(10),
                step: None,
            },
        )])
        .unwrap();
    half.to_netcdf(o, &over).unwrap();
    let back = open_dataset(o, &OpenOptions::default()).unwrap();
    assert_eq!(back.dims()["time"], 10);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.nc"]);
    // remote targets are refused before anything is computed
    let err = ds
        .to_netcdf("s3://bucket/x.nc", &ToNetcdfOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("local disk"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A netCDF file read and written again keeps its unlimited dimensions, its values and its
/// packing, as xarray sees them in the source.
#[test]
fn netcdf_to_netcdf_keeps_unlimited_dims_and_packing() {
    let Some(py) = venv_python() else {
        assert!(!in_ci(), "the fixtures venv is required in CI");
        println!("NOTICE: fixtures venv absent; netCDF to netCDF skipped");
        return;
    };
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../gridflow-store/tests/fixtures/netcdf/std_netcdf4.nc");
    let ds = open_dataset(src.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let dir = scratch("nc2nc");
    let out = dir.join("copy.nc");
    ds.to_netcdf(out.to_str().unwrap(), &ToNetcdfOptions::default())
        .unwrap();
    let script = r#"
import sys, numpy as np, xarray as xr
a = xr.open_dataset(sys.argv[1], use_cftime=True)
for engine in ["netcdf4", "h5netcdf"]:
    b = xr.open_dataset(sys.argv[2], engine=engine, use_cftime=True)
    assert b.encoding["unlimited_dims"] == a.encoding["unlimited_dims"], (engine, b.encoding)
    for n in ["tas", "orog", "time", "lat", "lon"]:
        if a[n].dtype.kind == "O":
            assert (a[n].values == b[n].values).all(), (engine, n)
        else:
            np.testing.assert_array_equal(a[n].values, b[n].values, err_msg=f"{engine} {n}")
    for k in ["dtype", "scale_factor", "add_offset", "_FillValue"]:
        assert b.tas.encoding[k] == a.tas.encoding[k], (engine, k, b.tas.encoding[k])
print("same unlimited dims, values and packing")
"#;
    let res = std::process::Command::new(&py)
        .args(["-c", script])
        .arg(&src)
        .arg(&out)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(res.status.success(), "{text}");
    assert!(text.contains("same unlimited dims"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
