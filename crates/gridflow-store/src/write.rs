//! Writing chunked arrays to Zarr stores: metadata in zarr-python's layout, then one store
//! chunk per block, computed and written in parallel in bounded batches.

use crate::array::{ZarrArray, ZarrStore};
use crate::error::{Result, StoreError};
use crate::metadata::{self, ArrayEntry, ZarrFormat};
use crate::storage::StoreUrl;
use gridflow_array::{
    ArrayOp, Chunk, ChunkedArray, Chunking, DType, Executor, Scheduler, Value as ArrayValue,
};
use gridflow_graph::{Graph, Key, Task};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use zarrs::storage::{ReadableStorageTraits, StoreKey, StorePrefix, WritableStorageTraits};

/// What to do when the target already exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Refuse (the default): never overwrite what the user has.
    #[default]
    Create,
    /// Replace what is at the target (explicit): for [`to_zarr`] the array at its path
    /// (deleted first, not atomic); for `Dataset::to_zarr` the whole store (an atomic swap
    /// on local disk, see [`crate::staging`]).
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
    /// Create the root and intermediate groups' metadata where absent (default true). A
    /// caller writing several arrays turns it off and writes the root group last, so that
    /// an interrupted write leaves no store that opens.
    pub groups: bool,
    /// The array's `fill_value` (in the array's dtype; `None`: NaN for floats, none for
    /// integers in v2 and 0 in v3). xarray takes a v2 variable's `_FillValue` from it, so a
    /// CF-encoded variable (CMIP6: 1e20) must write its fill value here.
    pub fill_value: Option<f64>,
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
            groups: true,
            fill_value: None,
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

/// Array metadata as a JSON object.
fn pairs_object(pairs: &[(&str, Value)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<Map<_, _>>()
        .into()
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
/// Every block is stored as one store chunk first: blocks are computed with gridflow's
/// scheduler in batches of `batch_blocks` and each batch is encoded and stored by parallel
/// writers. Then the array's metadata, then (with `groups`) the root and intermediate groups
/// where absent, and last, for v2 stores, a refreshed consolidated `.zmetadata`: a write that
/// fails partway leaves chunks that no metadata points to, never an array that opens with
/// missing chunks. Irregular chunks are first rechunked to their first block size.
///
/// An array that reads from `path` in the same store (or from inside it, or from a node that
/// holds it) is refused before anything is touched. [`WriteMode::Overwrite`] deletes the old
/// array's keys before writing the new ones: it is not atomic (an interrupted overwrite
/// leaves no array at `path`). `Dataset::to_zarr` in gridflow-dataset writes whole local
/// stores atomically.
pub fn to_zarr(
    array: &ChunkedArray,
    store: &ZarrStore,
    path: &str,
    options: &WriteOptions,
) -> Result<ZarrArray> {
    let w = ArrayWrite::prepare(array, store, path, options)?;
    w.write_here(options)?;
    w.finish()
}

/// [`to_zarr`] on an executor: when it is a cluster, every block's chunk is written by a
/// store-write task on the worker that computes the block, straight to the store (which
/// workers must be able to open: a local path they share, or an object store), and the
/// whole array is one graph, so nothing shared between blocks is computed twice. On the
/// local executor this is [`to_zarr`].
pub fn to_zarr_with(
    array: &ChunkedArray,
    store: &ZarrStore,
    path: &str,
    options: &WriteOptions,
    executor: &dyn Executor<ArrayOp>,
) -> Result<ZarrArray> {
    if !executor.persists_remotely() {
        return to_zarr(array, store, path, options);
    }
    let w = ArrayWrite::prepare(array, store, path, options)?;
    write_with(std::slice::from_ref(&w), executor)?;
    w.finish()
}

/// Writes the chunks of several prepared arrays as store-write tasks of one graph on
/// `executor` (see [`to_zarr_with`]); their metadata is written by [`ArrayWrite::finish`].
pub fn write_with(writes: &[ArrayWrite], executor: &dyn Executor<ArrayOp>) -> Result<()> {
    register_write_kernel();
    let mut graph: Graph<ArrayOp> = Graph::new();
    let mut keys = Vec::new();
    for w in writes {
        graph.merge(&w.array.graph());
        for (k, t) in w.write_tasks()? {
            graph.insert(k.clone(), t);
            keys.push(k);
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    executor
        .run(&graph, &keys)
        .map_err(gridflow_array::ArrayError::from)?;
    Ok(())
}

/// One array's write, prepared: checked, the old array erased when overwriting, its
/// metadata computed (written by [`ArrayWrite::finish`], after the chunks).
#[derive(Debug)]
pub struct ArrayWrite {
    store: ZarrStore,
    path: String,
    /// The array, rechunked to regular chunks.
    array: ChunkedArray,
    zarr: ZarrArray,
    entry: ArrayEntry,
    meta_keys: Vec<(String, Vec<u8>)>,
    format: ZarrFormat,
    groups: bool,
    consolidated: bool,
}

impl ArrayWrite {
    /// Checks and prepares writing `array` to `path` in `store` (see [`to_zarr`]).
    pub fn prepare(
        array: &ChunkedArray,
        store: &ZarrStore,
        path: &str,
        options: &WriteOptions,
    ) -> Result<ArrayWrite> {
        prepare(array, store, path, options)
    }

    /// The store-write tasks: one per block, reading the block's key and writing its chunk.
    pub fn write_tasks(&self) -> Result<Vec<(Key, Task<ArrayOp>)>> {
        let spec = serde_json::to_string(&WriteSpec {
            url: self.store.url_string(),
            options: self.store.options().clone(),
            path: self.path.clone(),
            entry: self.entry.clone(),
        })
        .map_err(|e| StoreError::Invalid {
            url: self.store.url_string(),
            path: self.path.clone(),
            detail: format!("describing the write for workers: {e}"),
        })?;
        let name = gridflow_graph::tokenize(
            "zarr-write",
            &[spec.as_bytes(), self.array.name().as_bytes()],
        );
        Ok(block_indices(&self.array.numblocks())
            .into_iter()
            .map(|idx| {
                let index: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
                let task = Task::new(
                    ArrayOp::MapBlocks {
                        kernel: WRITE_KERNEL.into(),
                        params: json!({"spec": spec, "block": idx}),
                        dtype: DType::U8,
                    },
                    vec![self.array.block_key(&idx)],
                );
                (Key::new(name.as_str(), &index), task)
            })
            .collect())
    }

    /// Computes and writes the chunks from this process, in bounded parallel batches.
    pub fn write_here(&self, options: &WriteOptions) -> Result<()> {
        write_chunks(&self.array, &self.zarr, options)
    }

    /// Writes the metadata (after the chunks), the groups and the consolidated metadata as
    /// the options asked, and returns the array opened for reading.
    pub fn finish(self) -> Result<ZarrArray> {
        for (key, bytes) in self.meta_keys {
            put(&self.store, &self.path, &key, bytes)?;
        }
        if self.groups {
            write_groups(&self.store, &self.path, self.format)?;
        }
        if self.format == ZarrFormat::V2 && self.consolidated {
            consolidate_metadata(&self.store)?;
        }
        Ok(self.zarr)
    }
}

/// What a worker needs to write chunks of an array without reading any metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct WriteSpec {
    url: String,
    options: crate::StoreOptions,
    path: String,
    entry: ArrayEntry,
}

/// The registered name of the store-write kernel.
pub const WRITE_KERNEL: &str = "gridflow-zarr-write";

/// Registers the store-write kernel (done by [`crate::register`], which every worker calls).
pub fn register_write_kernel() {
    gridflow_array::register_kernel(WRITE_KERNEL, |blocks: &[&Chunk], params: &Value| {
        write_kernel(blocks, params).map_err(|e| gridflow_array::ArrayError::Kernel {
            op: "zarr-write".into(),
            detail: e.to_string(),
        })
    });
}

/// Writes one block (the kernel's only input) as the chunk `params.block` of the array
/// `params.spec`; returns a 0-d `u8` (the task's result is only "done"). Each process opens
/// an array once per spec.
fn write_kernel(blocks: &[&Chunk], params: &Value) -> Result<Chunk> {
    static OPEN: std::sync::OnceLock<std::sync::Mutex<Vec<(String, ZarrArray)>>> =
        std::sync::OnceLock::new();
    let bad = |detail: String| StoreError::Invalid {
        url: String::new(),
        path: String::new(),
        detail,
    };
    let spec = params
        .get("spec")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("zarr-write: no spec".into()))?;
    let block: Vec<usize> = params
        .get("block")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_u64)
                .map(|x| x as usize)
                .collect()
        })
        .ok_or_else(|| bad("zarr-write: no block index".into()))?;
    let [chunk] = blocks else {
        return Err(bad(format!(
            "zarr-write: {} inputs, expected 1",
            blocks.len()
        )));
    };
    let open = OPEN.get_or_init(Default::default);
    let cached = open
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(s, _)| s == spec)
        .map(|(_, z)| z.clone());
    let zarr = match cached {
        Some(z) => z,
        None => {
            let s: WriteSpec = serde_json::from_str(spec)
                .map_err(|e| bad(format!("zarr-write: not a write spec: {e}")))?;
            let store = ZarrStore::open(&s.url, s.options)?;
            let z = ZarrArray::from_entry(store, &s.path, s.entry)?;
            let mut o = open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A few arrays are written at a time: keep the last ones.
            if o.len() >= 64 {
                o.remove(0);
            }
            o.push((spec.to_owned(), z.clone()));
            z
        }
    };
    write_block(&zarr, &block, chunk)?;
    Ok(Chunk::U8(ndarray::ArrayD::zeros(ndarray::IxDyn(&[]))))
}

/// Every block index of a grid, in C order (none when an axis has no blocks).
fn block_indices(numblocks: &[usize]) -> Vec<Vec<usize>> {
    let mut indices: Vec<Vec<usize>> = vec![vec![]];
    for &n in numblocks {
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
    indices
}

fn prepare(
    array: &ChunkedArray,
    store: &ZarrStore,
    path: &str,
    options: &WriteOptions,
) -> Result<ArrayWrite> {
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
    check_not_input(store.url(), &path, &input_stores(array))?;
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
                // the metadata first, so that a half-erased array does not open
                for key in [".zarray", ".zattrs", "zarr.json", ".zgroup"] {
                    erase(store, &path, &format!("{path}/{key}"))?;
                }
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

    // array metadata, written after the chunks
    let dtype = array.dtype();
    let shape: Vec<usize> = array.shape().to_vec();
    let chunk_shape: Vec<usize> = array
        .chunks()
        .iter()
        .map(|c| c.first().copied().unwrap_or(0).max(1))
        .collect();
    let mut meta_keys: Vec<(String, Vec<u8>)> = Vec::new();
    let entry = match options.format {
        ZarrFormat::V2 => {
            let fill = match options.fill_value {
                Some(f) => fill_json(f, dtype),
                None if dtype.is_float() => json!("NaN"),
                None => Value::Null,
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
            meta_keys.push((
                format!("{path}/.zattrs"),
                serde_json::to_string_pretty(&attrs)
                    .unwrap_or_default()
                    .into_bytes(),
            ));
            meta_keys.push((format!("{path}/.zarray"), ordered_json(&pairs).into_bytes()));
            ArrayEntry {
                format: ZarrFormat::V2,
                meta: pairs_object(&pairs),
                attrs,
            }
        }
        ZarrFormat::V3 => {
            let fill = match (options.fill_value, dtype) {
                (Some(f), _) => fill_json(f, dtype),
                (None, DType::F32 | DType::F64) => json!("NaN"),
                (None, DType::Bool) => json!(false),
                (None, _) => json!(0),
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
            meta_keys.push((
                format!("{path}/zarr.json"),
                ordered_json(&pairs).into_bytes(),
            ));
            ArrayEntry {
                format: ZarrFormat::V3,
                meta: pairs_object(&pairs),
                attrs: Map::new(),
            }
        }
    };
    let zarr = ZarrArray::from_entry(store.clone(), &path, entry.clone())?;
    Ok(ArrayWrite {
        store: store.clone(),
        path,
        array,
        zarr,
        entry,
        meta_keys,
        format: options.format,
        groups: options.groups,
        consolidated: options.consolidated,
    })
}

/// Computes the blocks here in batches and writes them with parallel writers.
fn write_chunks(array: &ChunkedArray, zarr: &ZarrArray, options: &WriteOptions) -> Result<()> {
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
    let indices = block_indices(&array.numblocks());
    let graph = array.graph();
    for group_idx in indices.chunks(batch.max(1)) {
        let keys: Vec<_> = group_idx.iter().map(|i| array.block_key(i)).collect();
        let values = scheduler
            .run(&graph, &keys)
            .map_err(gridflow_array::ArrayError::from)?;
        let jobs: Vec<(&Vec<usize>, &ArrayValue)> =
            group_idx.iter().zip(values.iter().map(|v| &**v)).collect();
        let per = jobs.len().div_ceil(threads).max(1);
        let zarr_ref = zarr;
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
    Ok(())
}

/// Creates the metadata of the root group and every intermediate group of `path` where
/// absent (deepest first, so that the root, which makes the store open, comes last).
fn write_groups(store: &ZarrStore, path: &str, format: ZarrFormat) -> Result<()> {
    let parts: Vec<&str> = path.split('/').collect();
    let groups: Vec<String> = (0..parts.len())
        .map(|n| parts.iter().take(n).copied().collect::<Vec<_>>().join("/"))
        .collect();
    for group in groups.iter().rev() {
        match format {
            ZarrFormat::V2 => {
                if !exists(store, &metadata::join(group, ".zgroup"))? {
                    put(
                        store,
                        group,
                        &metadata::join(group, ".zgroup"),
                        b"{\n  \"zarr_format\": 2\n}".to_vec(),
                    )?;
                }
            }
            ZarrFormat::V3 => {
                if !exists(store, &metadata::join(group, "zarr.json"))? {
                    let g = ordered_json(&[
                        ("attributes", json!({})),
                        ("zarr_format", json!(3)),
                        ("node_type", json!("group")),
                    ]);
                    put(
                        store,
                        group,
                        &metadata::join(group, "zarr.json"),
                        g.into_bytes(),
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn erase(store: &ZarrStore, path: &str, key: &str) -> Result<()> {
    let werr = |detail: String| StoreError::Write {
        url: store.url_string(),
        path: path.to_owned(),
        key: key.to_owned(),
        detail,
    };
    let k = StoreKey::new(key).map_err(|e| werr(e.to_string()))?;
    store
        .storage()
        .erase(&k)
        .map_err(|e| werr(format!("erasing: {e}")))
}

/// Makes a store ready for a whole-store write ([`to_zarr`] of every array, then the root
/// group): refuses a store that holds any key in [`WriteMode::Create`]; deletes every key in
/// [`WriteMode::Overwrite`], the root metadata first so that a half-deleted store does not
/// open. Not atomic: meant for object stores, which have no rename (local stores are
/// replaced whole through [`crate::staging::StagedDir`]).
pub fn clear_store(store: &ZarrStore, mode: WriteMode) -> Result<()> {
    let url = store.url_string();
    if store.is_read_only() {
        return Err(StoreError::ReadOnly { url });
    }
    let keys = store
        .storage()
        .list_recursive("")
        .map_err(|e| StoreError::Storage {
            url: url.clone(),
            detail: format!("listing: {e}"),
        })?;
    if keys.is_empty() {
        return Ok(());
    }
    if mode == WriteMode::Create {
        return Err(StoreError::Exists {
            url,
            path: String::new(),
        });
    }
    let root_meta = [".zmetadata", ".zgroup", ".zattrs", "zarr.json"];
    let first = root_meta.iter().filter(|k| keys.iter().any(|x| x == *k));
    for key in first.map(|k| (*k).to_owned()).chain(
        keys.iter()
            .filter(|k| !root_meta.contains(&k.as_str()))
            .cloned(),
    ) {
        erase(store, "", &key)?;
    }
    Ok(())
}

/// Where a `"zarr"` read task reads from (the part of its spec that says so).
#[derive(serde::Deserialize)]
struct SourceLocation {
    url: String,
    path: String,
}

/// The Zarr arrays `array` reads from: each distinct store and array path of its read
/// tasks, once.
pub fn input_stores(array: &ChunkedArray) -> Vec<(StoreUrl, String)> {
    let mut out: Vec<(StoreUrl, String)> = Vec::new();
    for src in array.sources() {
        // a netCDF file read directly is an input too (its spec names the file)
        if src.kind() == "netcdf" {
            if let Ok(Value::Object(spec)) = serde_json::from_str::<Value>(&src.spec())
                && let Some(Value::String(p)) = spec.get("url")
                && let Ok(url) = StoreUrl::parse(p)
            {
                let item = (url, String::new());
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            continue;
        }
        if src.kind() != "zarr" {
            continue;
        }
        let Ok(loc) = serde_json::from_str::<SourceLocation>(&src.spec()) else {
            continue;
        };
        let Ok(url) = StoreUrl::parse(&loc.url) else {
            continue;
        };
        let item = (url, loc.path.trim_matches('/').to_owned());
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The non-empty `/`-separated components of a key prefix.
fn parts(prefix: &str) -> Vec<String> {
    prefix
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A node's place as a scheme and path components, symlinks of local paths resolved.
fn location(url: &StoreUrl, path: &str) -> (String, Vec<String>) {
    let inner = path.split('/').filter(|p| !p.is_empty()).map(str::to_owned);
    let (scheme, mut comps): (String, Vec<String>) = match url {
        StoreUrl::Local(p) => {
            let real = crate::staging::resolve_output(p).unwrap_or_else(|_| p.clone());
            (
                "file".into(),
                real.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect(),
            )
        }
        StoreUrl::S3 { bucket, prefix } => (format!("s3://{bucket}"), parts(prefix)),
        StoreUrl::Gcs { bucket, prefix } => (format!("gs://{bucket}"), parts(prefix)),
        // the account is part of the place; az:// and abfs:// name the same containers
        StoreUrl::Azure {
            container,
            host,
            prefix,
            ..
        } => {
            let account = host
                .as_deref()
                .and_then(|h| h.split('.').next())
                .unwrap_or("");
            (format!("az://{account}/{container}"), parts(prefix))
        }
        StoreUrl::Http(u) => (
            "http".into(),
            u.split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    };
    comps.extend(inner);
    (scheme, comps)
}

/// Refuses to write the node at `path` in the store at `output` when the result reads from
/// it, from inside it, or from a node that holds it (`inputs` as [`input_stores`] gives
/// them). Local paths are compared with symlinks resolved.
pub fn check_not_input(output: &StoreUrl, path: &str, inputs: &[(StoreUrl, String)]) -> Result<()> {
    let (os, oc) = location(output, path);
    for (url, ipath) in inputs {
        let (is, ic) = location(url, ipath);
        if is != os {
            continue;
        }
        let relation = if ic == oc {
            "is the output itself"
        } else if ic.starts_with(&oc) {
            "is inside the output"
        } else if oc.starts_with(&ic) {
            "holds the output"
        } else {
            continue;
        };
        let show = |u: &StoreUrl, p: &str| {
            if p.is_empty() {
                u.to_string()
            } else {
                format!("{u} (array {p:?})")
            }
        };
        return Err(StoreError::OutputIsInput {
            output: show(output, path.trim_matches('/')),
            input: show(url, ipath),
            relation,
        });
    }
    Ok(())
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

/// A fill value as Zarr metadata JSON in `dtype`: the float32 rounding for float32 arrays
/// (1e20 is written as 1.0000000200408773e20, as zarr-python does), NaN and infinities as
/// Zarr's strings, integers as integers.
fn fill_json(f: f64, dtype: DType) -> Value {
    let f = if dtype == DType::F32 {
        f64::from(f as f32)
    } else {
        f
    };
    if f.is_nan() {
        json!("NaN")
    } else if f.is_infinite() {
        json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else if dtype.is_float() {
        json!(f)
    } else if dtype == DType::Bool {
        json!(f != 0.0)
    } else if f < 0.0 {
        json!(f as i64)
    } else {
        json!(f as u64)
    }
}
