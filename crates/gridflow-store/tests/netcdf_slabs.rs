//! Streamed netCDF reads: a block read in slabs of whole HDF5 chunk rows (and a row range of
//! it) holds exactly the rows a whole-block read gives, and a time mean computed through the
//! streamed plan equals the one computed from whole blocks.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_array::kernels::{ReduceOp, SliceSpec, concatenate, slice};
use gridflow_array::{Chunk, ChunkedArray};
use gridflow_store::netcdf::NetcdfFile;
use std::path::PathBuf;

fn file(name: &str) -> NetcdfFile {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/netcdf")
        .join(name);
    NetcdfFile::open(p.to_str().unwrap()).unwrap()
}

fn same(a: &Chunk, b: &Chunk, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(
            p == q || (p.is_nan() && q.is_nan()),
            "{what}[{i}]: {p} vs {q}"
        );
    }
}

#[test]
fn slabs_follow_the_chunks_and_equal_the_block() {
    // tas: 400 days chunked by 50 (std_netcdf4.nc, deflate + shuffle, packed int16);
    // 1-byte slabs: one chunk row (50 rows) per slab
    gridflow_store::register();
    for (name, chunk_rows) in [
        ("std_netcdf4.nc", 50),
        ("noleap_h5netcdf.nc", 64),
        ("std_classic.nc", 1),
    ] {
        let f = file(name);
        let arr = f.to_chunked_with_slabs("tas", 1).unwrap();
        let src = arr.sources().pop().unwrap();
        let n = arr.shape()[0];
        let whole = src.read_block(&[0, 0, 0]).unwrap();
        let mut slabs = Vec::new();
        src.read_block_slabs(&[0, 0, 0], &mut |c| {
            slabs.push(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(slabs.len(), n.div_ceil(chunk_rows), "{name}: slab count");
        assert!(slabs.iter().all(|s| s.shape()[0] <= chunk_rows), "{name}");
        let refs: Vec<&Chunk> = slabs.iter().collect();
        same(&concatenate(&refs, 0).unwrap(), &whole, name);
        // a row range that starts and ends inside chunks
        let (lo, hi) = (37, 123.min(n));
        let mut parts = Vec::new();
        src.read_rows_slabs(&[0, 0, 0], lo..hi, &mut |c| {
            parts.push(c);
            Ok(())
        })
        .unwrap();
        let refs: Vec<&Chunk> = parts.iter().collect();
        let mut specs: Vec<SliceSpec> = whole.shape().iter().map(|&k| SliceSpec::full(k)).collect();
        specs[0] = SliceSpec::range(lo, hi);
        same(
            &concatenate(&refs, 0).unwrap(),
            &slice(&whole, &specs).unwrap(),
            name,
        );
    }
}

#[test]
fn a_streamed_time_mean_equals_the_whole_block_one() {
    gridflow_store::register();
    let f = file("std_netcdf4.nc");
    let mean = |a: &ChunkedArray| {
        a.astype(gridflow_array::DType::F64)
            .unwrap()
            .reduce(
                ReduceOp::Mean,
                &gridflow_array::reduction::ReduceOptions {
                    axes: Some(vec![0]),
                    skipna: true,
                    ..Default::default()
                },
            )
            .unwrap()
            .compute()
            .unwrap()
    };
    let streamed = mean(&f.to_chunked_with_slabs("tas", 1).unwrap());
    let whole = mean(&f.to_chunked_with_slabs("tas", usize::MAX).unwrap());
    same(&streamed, &whole, "time mean");
}
