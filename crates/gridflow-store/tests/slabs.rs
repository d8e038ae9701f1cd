//! Blosc chunks read as slabs of whole rows (`read_chunk_slabs`, `read_block_slabs`): the
//! slabs are in order, never empty, and concatenate bit for bit to the whole-chunk read,
//! including edge chunks, blocks stored out of order, uncompressed (MEMCPYED) frames and
//! short last blocks; corrupt chunk files give errors naming the chunk, never a panic.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use gridflow_array::kernels::{SliceSpec, assemble, slice};
use gridflow_array::{Chunk, ChunkSource, ChunkedArray, DType};
use gridflow_store::{
    Compression, StoreOptions, WriteOptions, ZarrArray, ZarrFormat, ZarrSource, ZarrStore, to_zarr,
};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gridflow-store-slabs-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Values that do not compress to nothing: a hash of the index, some NaNs for floats.
fn data(shape: &[usize], dtype: DType) -> Chunk {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n as u64)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) >> 7) % 20_000;
            if dtype.is_float() && i % 997 == 3 {
                f64::NAN
            } else if dtype.is_float() {
                (i as f64 * 0.001).sin() * 300.0 + h as f64 * 1e-3
            } else {
                h as f64 - 10_000.0
            }
        })
        .collect();
    Chunk::from_f64_vec(shape, v, dtype).unwrap()
}

fn write(
    dir: &Path,
    dtype: DType,
    shape: &[usize],
    chunks: &[usize],
    format: ZarrFormat,
    compression: Compression,
) -> ZarrArray {
    let x = ChunkedArray::from_chunk(data(shape, dtype), chunks.to_vec()).unwrap();
    let store = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::default()).unwrap();
    let opts = WriteOptions {
        format,
        compression,
        threads: 2,
        ..WriteOptions::default()
    };
    to_zarr(&x, &store, "v", &opts).unwrap();
    let ro = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap();
    ro.open_array("v").unwrap()
}

/// The chunk file of `idx`.
fn chunk_file(dir: &Path, a: &ZarrArray, idx: &[u64]) -> PathBuf {
    dir.join(a.chunk_key(idx))
}

/// (flags, nbytes, blocksize, cbytes) of a stored blosc frame.
fn header(bytes: &[u8]) -> (u8, usize, usize, usize) {
    let i = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    (bytes[2], i(4), i(8), i(12))
}

/// Each element's bits (so NaNs compare equal to themselves, and -0.0 differs from 0.0).
fn bits(c: &Chunk) -> Vec<u64> {
    match c {
        Chunk::F32(a) => a.iter().map(|v| u64::from(v.to_bits())).collect(),
        Chunk::F64(a) => a.iter().map(|v| v.to_bits()).collect(),
        Chunk::I16(a) => a.iter().map(|&v| v as u16 as u64).collect(),
        other => other.to_f64_vec().iter().map(|v| v.to_bits()).collect(),
    }
}

/// Reads chunk `idx` as slabs and checks them against `read_chunk`; returns the slab count.
fn check_slabs(a: &ZarrArray, idx: &[u64], slab_bytes: usize) -> usize {
    let whole = a.read_chunk(idx).unwrap();
    let mut slabs: Vec<Chunk> = Vec::new();
    a.read_chunk_slabs(idx, slab_bytes, &mut |c| {
        slabs.push(c);
        Ok(())
    })
    .unwrap();
    assert!(!slabs.is_empty(), "chunk {idx:?}: no slab");
    let mut rows = 0;
    for s in &slabs {
        assert_eq!(s.dtype(), whole.dtype());
        assert!(s.shape()[0] >= 1, "chunk {idx:?}: an empty slab");
        assert_eq!(
            s.shape()[1..],
            whole.shape()[1..],
            "chunk {idx:?}: slab shape"
        );
        rows += s.shape()[0];
    }
    assert_eq!(rows, whole.shape()[0], "chunk {idx:?}: rows of the slabs");
    let mut grid = vec![1; whole.shape().len()];
    grid[0] = slabs.len();
    let refs: Vec<&Chunk> = slabs.iter().collect();
    let joined = assemble(&refs, &grid).unwrap();
    assert_eq!(joined.shape(), whole.shape());
    // in order and bit for bit
    assert!(
        bits(&joined) == bits(&whole),
        "chunk {idx:?}, slab_bytes {slab_bytes}: slabs differ from read_chunk"
    );
    check_row_ranges(a, idx, slab_bytes, &whole);
    slabs.len()
}

/// `read_chunk_rows_slabs` over ranges of rows (first, middle, last, past the end, all)
/// equals those rows of the whole chunk, bit for bit.
fn check_row_ranges(a: &ZarrArray, idx: &[u64], slab_bytes: usize, whole: &Chunk) {
    let n = whole.shape()[0];
    for rows in [
        0..1,
        n / 3..n / 3 + 2,
        n.saturating_sub(2)..n + 5,
        0..n,
        n / 2..n / 2 + n / 3,
    ] {
        let mut slabs: Vec<Chunk> = Vec::new();
        a.read_chunk_rows_slabs(idx, Some(rows.clone()), slab_bytes, &mut |c| {
            slabs.push(c);
            Ok(())
        })
        .unwrap();
        let (lo, hi) = (rows.start.min(n), rows.end.min(n));
        let mut specs: Vec<SliceSpec> = whole.shape().iter().map(|&l| SliceSpec::full(l)).collect();
        specs[0] = SliceSpec::range(lo, hi);
        let want = slice(whole, &specs).unwrap();
        let got: Vec<u64> = slabs.iter().flat_map(bits).collect();
        assert!(
            got == bits(&want),
            "chunk {idx:?}, rows {rows:?}, slab_bytes {slab_bytes}: differ from the rows of read_chunk"
        );
    }
}

#[test]
fn a_row_range_decodes_only_the_blocks_holding_it() {
    let dir = tmp("rows");
    let a = write(
        &dir,
        DType::F32,
        &[600, 64, 48],
        &[600, 64, 48],
        ZarrFormat::V2,
        Compression::default(),
    );
    let whole_bytes = 600 * 64 * 48 * 4;
    let before = gridflow_store::decoded_bytes();
    let mut rows = 0;
    a.read_chunk_rows_slabs(&[0, 0, 0], Some(100..130), 64 << 10, &mut |c| {
        rows += c.shape()[0];
        Ok(())
    })
    .unwrap();
    let decoded = gridflow_store::decoded_bytes() - before;
    assert_eq!(rows, 30);
    // 30 of 600 rows (5%) plus at most a blosc block on each side
    assert!(
        decoded > 0 && decoded < whole_bytes as u64 / 5,
        "decoded {decoded} bytes of a {whole_bytes}-byte chunk for 30 rows"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every chunk of `a`, for several slab sizes; returns the slab count of chunk 0 at the
/// smallest non-trivial size.
fn check_all(a: &ZarrArray, slab_sizes: &[usize]) -> usize {
    let grid = a.grid_shape().to_vec();
    let mut first = 0;
    let total: usize = grid.iter().product();
    for flat in 0..total {
        let mut idx = vec![0u64; grid.len()];
        let mut r = flat;
        for ax in (0..grid.len()).rev() {
            idx[ax] = (r % grid[ax]) as u64;
            r /= grid[ax];
        }
        for &s in slab_sizes {
            let n = check_slabs(a, &idx, s);
            if flat == 0 && s == slab_sizes[1] {
                first = n;
            }
        }
    }
    first
}

#[test]
fn blosc_slabs_equal_whole_chunks() {
    let dir = tmp("dtypes");
    // float32: 300 x 50 x 64 chunks (3.8 MB), edge chunks on axes 0 and 2
    let f32a = write(
        &dir.join("f32"),
        DType::F32,
        &[650, 50, 70],
        &[300, 50, 64],
        ZarrFormat::V2,
        Compression::default(),
    );
    let raw = std::fs::read(chunk_file(&dir.join("f32"), &f32a, &[0, 0, 0])).unwrap();
    let (flags, nbytes, blocksize, cbytes) = header(&raw);
    println!(
        "f32 chunk: flags {flags:#04x}, nbytes {nbytes}, blocksize {blocksize}, cbytes {cbytes}, {} blocks, leftover {}",
        nbytes.div_ceil(blocksize),
        nbytes % blocksize
    );
    assert_eq!(nbytes, 300 * 50 * 64 * 4);
    assert!(nbytes.div_ceil(blocksize) > 4, "want many blosc blocks");
    assert!(cbytes < nbytes, "the chunk should be compressed");
    // slab sizes: below one block and below one row (carry-over), a few blocks, default
    let n = check_all(&f32a, &[1, 3 * blocksize / 2, 1 << 20, 4 << 20]);
    assert!(n > 1, "the large chunk gave {n} slab(s)");

    // float64 (v3 store): 120 x 40 x 50 chunks (1.9 MB)
    let f64a = write(
        &dir.join("f64"),
        DType::F64,
        &[250, 40, 57],
        &[120, 40, 50],
        ZarrFormat::V3,
        Compression::default(),
    );
    let raw = std::fs::read(chunk_file(&dir.join("f64"), &f64a, &[0, 0, 0])).unwrap();
    let (_, nbytes, blocksize, _) = header(&raw);
    println!("f64 chunk: nbytes {nbytes}, blocksize {blocksize}");
    assert!(nbytes.div_ceil(blocksize) > 1);
    let n = check_all(&f64a, &[1, 5000, 100_000, 4 << 20]);
    assert!(n > 1);

    // int16: 300 x 33 x 40 chunks (790 KB), rows of 33*40*2 = 2640 bytes
    let i16a = write(
        &dir.join("i16"),
        DType::I16,
        &[610, 33, 41],
        &[300, 33, 40],
        ZarrFormat::V2,
        Compression::default(),
    );
    let raw = std::fs::read(chunk_file(&dir.join("i16"), &i16a, &[0, 0, 0])).unwrap();
    let (_, nbytes, blocksize, _) = header(&raw);
    println!("i16 chunk: nbytes {nbytes}, blocksize {blocksize}");
    assert!(nbytes.div_ceil(blocksize) > 1);
    let n = check_all(&i16a, &[1, 3000, 20_000, 4 << 20]);
    assert!(n > 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_block_slabs_streams_and_reads_only_needed_bytes() {
    let dir = tmp("source");
    let a = write(
        &dir,
        DType::F32,
        &[650, 50, 70],
        &[300, 50, 64],
        ZarrFormat::V2,
        Compression::default(),
    );
    let src = ZarrSource::new(&a);
    let full = a.read_chunk(&[0, 0, 0]).unwrap();
    let mut n = 0;
    let mut rows = 0;
    src.read_block_slabs(&[0, 0, 0], &mut |c| {
        n += 1;
        rows += c.shape()[0];
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, full.shape()[0]);
    // 3.84 MB decoded: a single default (4 MiB) slab
    assert_eq!(n, 1);
    // the edge chunk on axis 0 keeps 50 of 300 rows: only the blocks holding them are read
    let edge = chunk_file(&dir, &a, &[2, 0, 0]);
    let size = std::fs::metadata(&edge).unwrap().len();
    a.store().reset_counters();
    let mut got = Vec::new();
    src.read_block_slabs(&[2, 0, 0], &mut |c| {
        got.push(c);
        Ok(())
    })
    .unwrap();
    let read = a.store().bytes_read();
    println!("edge chunk: {read} of {size} bytes read");
    // (the padding rows compress to almost nothing, but their blocks are still skipped)
    assert!(read < size, "read {read} of {size} bytes");
    let refs: Vec<&Chunk> = got.iter().collect();
    let joined = assemble(&refs, &[got.len(), 1, 1]).unwrap();
    assert!(bits(&joined) == bits(&src.read_block(&[2, 0, 0]).unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites a blosc frame with its blocks stored in reverse order (as multithreaded blosc
/// may store them): still a valid frame.
fn reverse_blocks(raw: &[u8]) -> Vec<u8> {
    let (_, nbytes, blocksize, cbytes) = header(raw);
    let nblocks = nbytes.div_ceil(blocksize);
    assert!(nblocks > 1, "one block only");
    let start = |i: usize| i32::from_le_bytes(raw[16 + 4 * i..20 + 4 * i].try_into().unwrap());
    let mut starts: Vec<(usize, usize)> = (0..nblocks).map(|i| (start(i) as usize, i)).collect();
    starts.sort_unstable();
    let mut ranges = vec![0..0; nblocks];
    for (k, &(s, i)) in starts.iter().enumerate() {
        ranges[i] = s..starts.get(k + 1).map_or(cbytes, |x| x.0);
    }
    let mut out = raw[..16 + 4 * nblocks].to_vec();
    for i in (0..nblocks).rev() {
        let at = out.len() as i32;
        out[16 + 4 * i..20 + 4 * i].copy_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&raw[ranges[i].clone()]);
    }
    assert_eq!(out.len(), cbytes);
    out
}

#[test]
fn out_of_order_blocks_and_uncompressed_frames() {
    let dir = tmp("layouts");
    let a = write(
        &dir.join("rev"),
        DType::F32,
        &[301, 40, 60],
        &[150, 40, 60],
        ZarrFormat::V2,
        Compression::default(),
    );
    let want: Vec<Vec<u64>> = (0..3)
        .map(|i| bits(&a.read_chunk(&[i, 0, 0]).unwrap()))
        .collect();
    for i in 0..3 {
        let f = chunk_file(&dir.join("rev"), &a, &[i, 0, 0]);
        let raw = std::fs::read(&f).unwrap();
        std::fs::write(&f, reverse_blocks(&raw)).unwrap();
    }
    let ro = ZarrStore::open(dir.join("rev").to_str().unwrap(), StoreOptions::read_only())
        .unwrap()
        .open_array("v")
        .unwrap();
    for i in 0..3 {
        assert!(bits(&ro.read_chunk(&[i, 0, 0]).unwrap()) == want[i as usize]);
    }
    check_all(&ro, &[1, 40_000, 100_000, 4 << 20]);

    // clevel 0: blosc stores the bytes uncompressed (MEMCPYED)
    let m = write(
        &dir.join("memcpy"),
        DType::F64,
        &[41, 17, 9],
        &[20, 17, 8],
        ZarrFormat::V2,
        Compression::BloscLz4 { clevel: 0 },
    );
    let raw = std::fs::read(chunk_file(&dir.join("memcpy"), &m, &[0, 0, 0])).unwrap();
    assert_ne!(header(&raw).0 & 0x02, 0, "expected a MEMCPYED frame");
    check_all(&m, &[1, 3000, 4 << 20]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `read_chunk_slabs` on a chunk whose file was damaged by `damage`: an error naming the
/// chunk's key.
fn corrupt_case(name: &str, damage: impl Fn(&mut Vec<u8>)) {
    let dir = tmp(&format!("corrupt-{name}"));
    let a = write(
        &dir,
        DType::F32,
        &[200, 30, 40],
        &[200, 30, 40],
        ZarrFormat::V2,
        Compression::default(),
    );
    let f = chunk_file(&dir, &a, &[0, 0, 0]);
    let mut raw = std::fs::read(&f).unwrap();
    damage(&mut raw);
    std::fs::write(&f, &raw).unwrap();
    let ro = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only())
        .unwrap()
        .open_array("v")
        .unwrap();
    let key = ro.chunk_key(&[0, 0, 0]);
    let src = ZarrSource::new(&ro);
    let err = src
        .read_block_slabs(&[0, 0, 0], &mut |_| Ok(()))
        .expect_err(name)
        .to_string();
    println!("{name}: {err}");
    assert!(err.contains(&key), "{name}: {err:?} does not name {key}");
    let err = ro
        .read_chunk_slabs(&[0, 0, 0], 50_000, &mut |_| Ok(()))
        .expect_err(name)
        .to_string();
    assert!(err.contains(&key), "{name}: {err:?} does not name {key}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_chunks_give_errors_naming_the_chunk() {
    corrupt_case("truncated", |r| r.truncate(r.len() / 2));
    corrupt_case("tiny", |r| r.truncate(10));
    corrupt_case("bad-version", |r| r[0] = 7);
    corrupt_case("bad-nbytes", |r| {
        r[4..8].copy_from_slice(&1234i32.to_le_bytes())
    });
    corrupt_case("bad-blocksize", |r| {
        r[8..12].copy_from_slice(&0i32.to_le_bytes())
    });
    corrupt_case("bstart-past-end", |r| {
        r[20..24].copy_from_slice(&i32::MAX.to_le_bytes())
    });
    corrupt_case("bstart-in-table", |r| {
        r[16..20].copy_from_slice(&8i32.to_le_bytes())
    });
    corrupt_case("bstart-negative", |r| {
        r[16..20].copy_from_slice(&(-5i32).to_le_bytes())
    });
    corrupt_case("duplicate-bstart", |r| {
        let s: [u8; 4] = r[16..20].try_into().unwrap();
        r[20..24].copy_from_slice(&s);
    });
    // the first split of block 0 claims more compressed bytes than the block holds
    corrupt_case("split-length", |r| {
        let s = i32::from_le_bytes(r[16..20].try_into().unwrap()) as usize;
        r[s..s + 4].copy_from_slice(&1_000_000i32.to_le_bytes());
    });
}

/// Fixture arrays with no slab to read: 0-d arrays and arrays with a zero-length axis.
const SLAB_SKIPS: &[&str] = &[];

/// Every array of the zarr-python fixture stores (numcodecs blosc frames of every
/// compressor and shuffle, MEMCPYED small chunks, and the fallbacks: big-endian, bool,
/// sharded, other codecs, missing chunks). Remote when `GRIDFLOW_STORE_TEST_BASE_URL` is set.
#[test]
fn fixture_arrays_read_as_slabs() {
    let exp = common::expected();
    let mut arrays = 0;
    let mut skipped = Vec::new();
    for name in [
        "v2_consolidated.zarr",
        "v3_consolidated.zarr",
        "cmip6_mini.zarr",
        "v2_plain.zarr",
        "v3_plain.zarr",
    ] {
        let store = ZarrStore::open(&common::store_url(name), StoreOptions::read_only()).unwrap();
        // array by array (plain HTTP cannot list the stores without consolidated metadata)
        for path in exp[name]["arrays"].as_object().unwrap().keys() {
            let a = store.open_array(path).unwrap();
            if a.shape().is_empty() || a.grid_shape().contains(&0) {
                skipped.push(format!("{name}/{path}"));
                continue;
            }
            check_all(&a, &[1, 64, 4 << 20]);
            arrays += 1;
        }
    }
    println!("{arrays} fixture arrays read as slabs; skipped: {skipped:?}");
    assert_eq!(skipped, SLAB_SKIPS, "the arrays without slabs changed");
    assert!(arrays > 20, "only {arrays} fixture arrays");
}
