//! Writing chunked arrays to Zarr stores: metadata in zarr-python's layout, then one store
//! chunk per block, computed and written in parallel in bounded batches.

use crate::array::{ZarrArray, ZarrStore};
use crate::error::{Result, StoreError};
use crate::metadata::{self, ArrayEntry, ZarrFormat};
use gridflow_array::{Chunk, ChunkedArray, Chunking, DType, Scheduler, Value as ArrayValue};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use zarrs::storage::{ReadableStorageTraits, StoreKey, StorePrefix, WritableStorageTraits};

/// What to do when the target already exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Refuse (the default): never overwrite what the user has.
    #[default]
    Create,
    /// Replace the array at the target path (explicit).
    Overwrite,
}

/// The compressor of written chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// Blosc with LZ4 (the default: clevel 5, byte shuffle), as xarray/zarr-python default.
    BloscLz4 {
        /// Compression level 0..=9.
        clevel: u8,
    },
    /// Zstandard.
    Zstd {
        /// Level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::BloscLz4 { clevel: 5 }
    }
}

/// How [`to_zarr`] writes.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// v2 (default; with consolidated `.zmetadata`) or v3.
    pub format: ZarrFormat,
    /// Create (default) or Overwrite.
    pub mode: WriteMode,
    /// Dimension names (v2 `_ARRAY_DIMENSIONS`, v3 `dimension_names`).
    pub dims: Option<Vec<String>>,
    /// Array attributes.
    pub attrs: Map<String, Value>,
    /// Compressor.
    pub compression: Compression,
    /// Write/refresh consolidated `.zmetadata` (v2 only; default true).
    pub consolidated: bool,
    /// Worker threads computing and writing blocks (0: available parallelism).
    pub threads: usize,
    /// Blocks computed per batch (bounds memory; 0: 2 × threads).
    pub batch_blocks: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            format: ZarrFormat::V2,
            mode: WriteMode::Create,
            dims: None,
            attrs: Map::new(),
            compression: Compression::default(),
            consolidated: true,
            threads: 0,
            batch_blocks: 0,
        }
    }
}

/// Pretty JSON with keys in the given order (2-space indent, as zarr-python writes).
fn ordered_json(pairs: &[(&str, Value)]) -> String {
    let mut s = String::from("{\n");
    for (i, (k, v)) in pairs.iter().enumerate() {
        let pretty = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
        let body = pretty.replace('\n', "\n  ");
        let key = serde_json::to_string(k).unwrap_or_default();
        s.push_str(&format!("  {key}: {body}"));
        s.push_str(if i + 1 < pairs.len() { ",\n" } else { "\n" });
    }
    s.push('}');
    s
}

fn v2_dtype(d: DType) -> &'static str {
    match d {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

/// Writes array metadata as ordered JSON under `key` and returns it as a JSON object.
fn put_metadata(
    store: &ZarrStore,
    path: &str,
    key: &str,
    pairs: &[(&str, Value)],
) -> Result<Value> {
    put(store, path, key, ordered_json(pairs).into_bytes())?;
    Ok(pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<Map<_, _>>()
        .into())
}

fn put(store: &ZarrStore, path: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
    let werr = |detail: String| StoreError::Write {
        url: store.url_string(),
        path: path.to_owned(),
        key: key.to_owned(),
        detail,
    };
    let k = StoreKey::new(key).map_err(|e| werr(e.to_string()))?;
    store
        .storage()
        .set(&k, bytes.into())
        .map_err(|e| werr(e.to_string()))
}

fn exists(store: &ZarrStore, key: &str) -> Result<bool> {
    let k = StoreKey::new(key).map_err(|e| StoreError::Storage {
        url: store.url_string(),
        detail: format!("bad key {key:?}: {e}"),
    })?;
    store
        .storage()
        .size_key(&k)
        .map(|s| s.is_some())
        .map_err(|e| StoreError::Storage {
            url: store.url_string(),
            detail: format!("checking {key}: {e}"),
        })
}

/// Writes the attributes of the group at `path` (creating the group's metadata), e.g. a
/// dataset's global attributes. v2: `.zgroup` + `.zattrs`; v3: the group's `zarr.json`.
pub fn write_group_attrs(
    store: &ZarrStore,
    path: &str,
    format: ZarrFormat,
    attrs: &Map<String, Value>,
) -> Result<()> {
    if store.is_read_only() {
        return Err(StoreError::ReadOnly {
            url: store.url_string(),
        });
    }
    let path = path.trim_matches('/');
    let body = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    match format {
        ZarrFormat::V2 => {
            put(
                store,
                path,
                &metadata::join(path, ".zgroup"),
                body(&json!({"zarr_format": 2})),
            )?;
            put(
                store,
                path,
                &metadata::join(path, ".zattrs"),
                body(&Value::Object(attrs.clone())),
            )
        }
        ZarrFormat::V3 => put(
            store,
            path,
            &metadata::join(path, "zarr.json"),
            body(&json!({"zarr_format": 3, "node_type": "group", "attributes": attrs})),
        ),
    }
}

/// Writes `array` to `path` in `store` and returns the written array opened for reading.
///
/// Metadata first (root and intermediate groups if absent, then the array), then every block
/// as one store chunk: blocks are computed with gridflow's scheduler in batches of
/// `batch_blocks` and each batch is encoded and stored by parallel writers. Irregular chunks
/// are first rechunked to their first block size. v2 stores get a refreshed consolidated
/// `.zmetadata`.
pub fn to_zarr(
    array: &ChunkedArray,
    store: &ZarrStore,
    path: &str,
    options: &WriteOptions,
) -> Result<ZarrArray> {
    let url = store.url_string();
    let path = path.trim_matches('/').to_owned();
    if store.is_read_only() {
        return Err(StoreError::ReadOnly { url });
    }
    if path.is_empty() {
        return Err(StoreError::Invalid {
            url,
            path,
            detail: "an array needs a non-empty path inside the store".into(),
        });
    }
    let ndim = array.ndim();
    if let Some(d) = &options.dims
        && d.len() != ndim
    {
        return Err(StoreError::Invalid {
            url,
            path,
            detail: format!("{} dimension names {d:?} for {ndim} dimensions", d.len()),
        });
    }
    // regular chunks: every block along an axis as big as the first one (the last may be smaller)
    let regular = array.chunks().iter().all(|c| {
        c.iter().take(c.len().saturating_sub(1)).all(|&b| b == c[0]) && c.last() <= c.first()
    });
    let first: Vec<usize> = array
        .chunks()
        .iter()
        .map(|c| c.first().copied().unwrap_or(0).max(1))
        .collect();
    let array = if regular {
        array.clone()
    } else {
        array.rechunk(Chunking::Sizes(first.clone()))?
    };

    // existing target?
    let prefix = format!("{path}/");
    let present = exists(store, &format!("{path}/.zarray"))?
        || exists(store, &format!("{path}/zarr.json"))?
        || exists(store, &format!("{path}/.zgroup"))?
        || !store
            .storage()
            .list_dir(&prefix)
            .map_err(|e| StoreError::Storage {
                url: url.clone(),
                detail: format!("listing {prefix}: {e}"),
            })?
            .0
            .is_empty()
        || exists(store, &path)?;
    if present {
        match options.mode {
            WriteMode::Create => return Err(StoreError::Exists { url, path }),
            WriteMode::Overwrite => {
                let p = StorePrefix::new(prefix.clone()).map_err(|e| StoreError::Write {
                    url: url.clone(),
                    path: path.clone(),
                    key: prefix.clone(),
                    detail: e.to_string(),
                })?;
                store
                    .storage()
                    .erase_prefix(&p)
                    .map_err(|e| StoreError::Write {
                        url: url.clone(),
                        path: path.clone(),
                        key: prefix.clone(),
                        detail: format!("erasing the old array: {e}"),
                    })?;
            }
        }
    }

    // groups: root and intermediate
    let mut group = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            group = metadata::join(&group, parts[i - 1]);
        }
        let _ = part;
        match options.format {
            ZarrFormat::V2 => {
                if !exists(store, &metadata::join(&group, ".zgroup"))? {
                    put(
                        store,
                        &group,
                        &metadata::join(&group, ".zgroup"),
                        b"{\n  \"zarr_format\": 2\n}".to_vec(),
                    )?;
                }
            }
            ZarrFormat::V3 => {
                if !exists(store, &metadata::join(&group, "zarr.json"))? {
                    let g = ordered_json(&[
                        ("attributes", json!({})),
                        ("zarr_format", json!(3)),
                        ("node_type", json!("group")),
                    ]);
                    put(
                        store,
                        &group,
                        &metadata::join(&group, "zarr.json"),
                        g.into_bytes(),
                    )?;
                }
            }
        }
    }

    // array metadata
    let dtype = array.dtype();
    let shape: Vec<usize> = array.shape().to_vec();
    let chunk_shape: Vec<usize> = array
        .chunks()
        .iter()
        .map(|c| c.first().copied().unwrap_or(0).max(1))
        .collect();
    let entry = match options.format {
        ZarrFormat::V2 => {
            let fill = if dtype.is_float() {
                json!("NaN")
            } else {
                Value::Null
            };
            let compressor = match options.compression {
                Compression::None => Value::Null,
                Compression::BloscLz4 { clevel } => {
                    json!({"id": "blosc", "cname": "lz4", "clevel": clevel, "shuffle": 1, "blocksize": 0})
                }
                Compression::Zstd { level } => json!({"id": "zstd", "level": level}),
            };
            let pairs = [
                ("shape", json!(shape)),
                ("chunks", json!(chunk_shape)),
                ("dtype", json!(v2_dtype(dtype))),
                ("fill_value", fill),
                ("order", json!("C")),
                ("filters", Value::Null),
                ("dimension_separator", json!(".")),
                ("compressor", compressor),
                ("zarr_format", json!(2)),
            ];
            let mut attrs = options.attrs.clone();
            if let Some(d) = &options.dims {
                attrs.insert("_ARRAY_DIMENSIONS".into(), json!(d));
            }
            put(
                store,
                &path,
                &format!("{path}/.zattrs"),
                serde_json::to_string_pretty(&attrs)
                    .unwrap_or_default()
                    .into_bytes(),
            )?;
            let meta = put_metadata(store, &path, &format!("{path}/.zarray"), &pairs)?;
            ArrayEntry {
                format: ZarrFormat::V2,
                meta,
                attrs,
            }
        }
        ZarrFormat::V3 => {
            let fill = match dtype {
                DType::F32 | DType::F64 => json!("NaN"),
                DType::Bool => json!(false),
                _ => json!(0),
            };
            let mut codecs = vec![if dtype.size() == 1 {
                json!({"name": "bytes"})
            } else {
                json!({"name": "bytes", "configuration": {"endian": "little"}})
            }];
            match options.compression {
                Compression::None => {}
                Compression::BloscLz4 { clevel } => codecs.push(json!({"name": "blosc", "configuration":
                    {"typesize": dtype.size(), "cname": "lz4", "clevel": clevel, "shuffle": "shuffle", "blocksize": 0}})),
                Compression::Zstd { level } => codecs.push(json!({"name": "zstd", "configuration": {"level": level, "checksum": false}})),
            }
            let mut pairs = vec![
                ("shape", json!(shape)),
                ("data_type", json!(dtype.to_string())),
                (
                    "chunk_grid",
                    json!({"name": "regular", "configuration": {"chunk_shape": chunk_shape}}),
                ),
                (
                    "chunk_key_encoding",
                    json!({"name": "default", "configuration": {"separator": "/"}}),
                ),
                ("fill_value", fill),
                ("codecs", Value::Array(codecs)),
                ("attributes", Value::Object(options.attrs.clone())),
                ("zarr_format", json!(3)),
                ("node_type", json!("array")),
                ("storage_transformers", json!([])),
            ];
            if let Some(d) = &options.dims {
                pairs.push(("dimension_names", json!(d)));
            }
            let meta = put_metadata(store, &path, &format!("{path}/zarr.json"), &pairs)?;
            ArrayEntry {
                format: ZarrFormat::V3,
                meta,
                attrs: Map::new(),
            }
        }
    };
    let zarr = ZarrArray::from_entry(store.clone(), &path, entry)?;

    // chunks, in bounded parallel batches
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
    } else {
        options.threads
    };
    let batch = if options.batch_blocks == 0 {
        2 * threads
    } else {
        options.batch_blocks
    };
    let scheduler = Scheduler::threads(threads);
    let numblocks = array.numblocks();
    let mut indices: Vec<Vec<usize>> = vec![vec![]];
    for &n in &numblocks {
        indices = indices
            .into_iter()
            .flat_map(|p| {
                (0..n).map(move |i| {
                    let mut q = p.clone();
                    q.push(i);
                    q
                })
            })
            .collect();
    }
    if numblocks.contains(&0) {
        indices.clear();
    }
    let graph = array.graph();
    for group_idx in indices.chunks(batch.max(1)) {
        let keys: Vec<_> = group_idx.iter().map(|i| array.block_key(i)).collect();
        let values = scheduler
            .run(&graph, &keys)
            .map_err(gridflow_array::ArrayError::from)?;
        let jobs: Vec<(&Vec<usize>, &ArrayValue)> =
            group_idx.iter().zip(values.iter().map(|v| &**v)).collect();
        let per = jobs.len().div_ceil(threads).max(1);
        let zarr_ref = &zarr;
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .chunks(per)
                .map(|part| {
                    s.spawn(move || -> Result<()> {
                        for (idx, v) in part {
                            match v {
                                ArrayValue::Chunk(c) => write_block(zarr_ref, idx, c)?,
                                ArrayValue::Partial(_) => {
                                    return Err(StoreError::Invalid {
                                        url: zarr_ref.store().url_string(),
                                        path: zarr_ref.path().to_owned(),
                                        detail: "a block computed to a partial reduction".into(),
                                    });
                                }
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| StoreError::Invalid {
                    url: zarr.store().url_string(),
                    path: zarr.path().to_owned(),
                    detail: "a writer thread panicked".into(),
                })??;
            }
            Ok::<(), StoreError>(())
        })?;
    }
    if options.format == ZarrFormat::V2 && options.consolidated {
        consolidate_metadata(store)?;
    }
    Ok(zarr)
}

/// Stores one block as the store chunk of the same index, padding edge blocks to the full
/// chunk shape with the fill value.
fn write_block(zarr: &ZarrArray, idx: &[usize], c: &Chunk) -> Result<()> {
    let cidx: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
    let full: Vec<usize> = zarr.chunk_shape().to_vec();
    let err = |e: String| StoreError::Write {
        url: zarr.store().url_string(),
        path: zarr.path().to_owned(),
        key: zarr.chunk_key(&cidx),
        detail: e,
    };
    let c = c.clone().into_dtype(zarr.dtype());
    macro_rules! wr {
        ($a:expr, $fill:expr) => {{
            let a = $a;
            if a.shape() == full.as_slice() {
                zarr.zarrs().store_chunk(&cidx, &a).map_err(|e| err(e.to_string()))
            } else {
                let mut out = ndarray::ArrayD::from_elem(ndarray::IxDyn(&full), $fill);
                let sh = a.shape().to_vec();
                out.slice_each_axis_mut(|ax| ndarray::Slice::from(0..sh[ax.axis.index()])).assign(&a);
                zarr.zarrs().store_chunk(&cidx, &out).map_err(|e| err(e.to_string()))
            }
        }};
    }
    match c {
        Chunk::Bool(a) => wr!(a, false),
        Chunk::I8(a) => wr!(a, 0),
        Chunk::I16(a) => wr!(a, 0),
        Chunk::I32(a) => wr!(a, 0),
        Chunk::I64(a) => wr!(a, 0),
        Chunk::U8(a) => wr!(a, 0),
        Chunk::U16(a) => wr!(a, 0),
        Chunk::U32(a) => wr!(a, 0),
        Chunk::U64(a) => wr!(a, 0),
        Chunk::F32(a) => wr!(a, f32::NAN),
        Chunk::F64(a) => wr!(a, f64::NAN),
    }
}

/// Rewrites the v2 consolidated `.zmetadata` of the root group from the metadata of every
/// node (zarr-python's layout: `.zgroup`, `.zattrs`, then `<path>/.zattrs` and
/// `<path>/.zarray` for every array, `<path>/.zgroup` for every sub-group).
pub fn consolidate_metadata(store: &ZarrStore) -> Result<()> {
    if store.is_read_only() {
        return Err(StoreError::ReadOnly {
            url: store.url_string(),
        });
    }
    let g = metadata::scan_v2(store.storage(), "")?;
    let mut md: BTreeMap<String, Value> = BTreeMap::new();
    md.insert(".zgroup".into(), json!({"zarr_format": 2}));
    md.insert(".zattrs".into(), Value::Object(g.attrs.clone()));
    for (p, attrs) in &g.groups {
        md.insert(format!("{p}/.zgroup"), json!({"zarr_format": 2}));
        md.insert(format!("{p}/.zattrs"), Value::Object(attrs.clone()));
    }
    for (p, e) in &g.arrays {
        md.insert(format!("{p}/.zattrs"), Value::Object(e.attrs.clone()));
        md.insert(format!("{p}/.zarray"), e.meta.clone());
    }
    let body = json!({"metadata": md, "zarr_consolidated_format": 1});
    put(
        store,
        "",
        ".zmetadata",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}
