//! kerchunk reference sets as stores: the arrays of kerchunk's references over xarray-written
//! netCDF files (tests/fixtures/netcdf, from generate_netcdf.py), and the errors of broken
//! references (missing or short target files, bad JSON, a netCDF file given as a store).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_array::DType;
use gridflow_store::{StoreOptions, ZarrStore};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn netcdf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netcdf")
}

fn open(path: &Path) -> gridflow_store::Result<ZarrStore> {
    ZarrStore::open(path.to_str().unwrap(), StoreOptions::read_only())
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-kerchunk-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn reference_set_opens_as_a_group_of_packed_arrays() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(netcdf_dir().join("expected.json")).unwrap())
            .unwrap();
    let store = open(&netcdf_dir().join("std_netcdf4.json")).unwrap();
    assert!(store.is_read_only());
    let group = store.open_group("").unwrap();
    assert_eq!(group.array_paths(), ["lat", "lon", "orog", "tas", "time"]);
    let tas = group.array("tas").unwrap();
    assert_eq!(tas.dtype(), DType::I16);
    assert_eq!(tas.shape(), [400, 4, 5]);
    assert_eq!(tas.chunk_shape(), [50, 2, 5]);
    assert_eq!(tas.dims().unwrap(), ["time", "lat", "lon"]);
    // chunk (0, 0, 0) unpacked by hand equals xarray's point series at lat=1, lon=2
    let raw = tas.read_chunk(&[0, 0, 0]).unwrap().to_f64_vec();
    let want = &expected["std"]["point_series"];
    for t in 0..50 {
        let packed = raw[t * 10 + 5 + 2];
        let got = if packed == -32767.0 {
            None
        } else {
            Some(packed * 0.01 + 280.0)
        };
        let w = want[t].as_f64();
        match (got, w) {
            (None, None) => {}
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "t={t}: {g} vs {w}"),
            other => panic!("t={t}: {other:?}"),
        }
    }
    // the version-0 set of the h5netcdf file and the combined run read as well
    let noleap = open(&netcdf_dir().join("noleap_h5netcdf.json")).unwrap();
    assert_eq!(noleap.open_array("tas").unwrap().shape(), [400, 4, 5]);
    let run = open(&netcdf_dir().join("run_noleap.json")).unwrap();
    let tas = run.open_array("tas").unwrap();
    assert_eq!(tas.shape(), [420, 4, 5]);
    // its last chunk lies in the third file
    let last = tas.grid_shape()[0] as u64 - 1;
    assert_eq!(last, 13);
    assert_eq!(tas.read_chunk(&[last, 1, 0]).unwrap().shape(), [30, 2, 5]);
}

#[test]
fn broken_references_fail_naming_the_key_and_the_file() {
    let dir = scratch("broken");
    let text = std::fs::read_to_string(netcdf_dir().join("std_netcdf4.json")).unwrap();
    // a target that does not exist
    let p = dir.join("missing.json");
    std::fs::write(&p, text.replace("\"std_netcdf4.nc\"", "\"nowhere.nc\"")).unwrap();
    let tas = open(&p).unwrap().open_array("tas").unwrap();
    let e = tas.read_chunk(&[0, 0, 0]).unwrap_err().to_string();
    assert!(
        e.contains("nowhere.nc") && e.contains("does not exist"),
        "{e}"
    );
    // a target shorter than the references say
    let nc = std::fs::read(netcdf_dir().join("std_netcdf4.nc")).unwrap();
    std::fs::write(dir.join("short.nc"), &nc[..nc.len() / 2]).unwrap();
    let p = dir.join("short.json");
    std::fs::write(&p, text.replace("\"std_netcdf4.nc\"", "\"short.nc\"")).unwrap();
    let tas = open(&p).unwrap().open_array("tas").unwrap();
    let last = tas.grid_shape()[0] as u64 - 1;
    let e = tas.read_chunk(&[last, 1, 0]).unwrap_err().to_string();
    assert!(e.contains("short.nc") && e.contains("shorter"), "{e}");
    // not JSON, and JSON that is not a reference set
    let p = dir.join("bad.json");
    std::fs::write(&p, "{\"refs\": [1, 2").unwrap();
    let e = open(&p).unwrap_err().to_string();
    assert!(
        e.contains("bad.json") && e.contains("not a JSON reference set"),
        "{e}"
    );
    std::fs::write(&p, "{\"a\": \"b\"}").unwrap();
    let e = open(&p).unwrap_err().to_string();
    assert!(e.contains("no .zgroup"), "{e}");
    // a netCDF file, and some other file, given as the store
    let e = open(&netcdf_dir().join("std_netcdf4.nc"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("std_netcdf4.nc") && e.contains("netCDF/HDF5"),
        "{e}"
    );
    std::fs::write(&p, "PAR1").unwrap();
    let e = open(&p).unwrap_err().to_string();
    assert!(e.contains("neither a Zarr store"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reference_stores_refuse_writes() {
    let store = open(&netcdf_dir().join("std_netcdf4.json")).unwrap();
    let arr = store.open_array("orog").unwrap();
    let chunked = arr.to_chunked(None).unwrap();
    let e = gridflow_store::to_zarr(
        &chunked,
        &store,
        "copy",
        &gridflow_store::WriteOptions::default(),
    );
    let e = e.unwrap_err().to_string();
    assert!(e.contains("read-only"), "{e}");
}
