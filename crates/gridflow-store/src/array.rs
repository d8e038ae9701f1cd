//! Opening stores, groups and arrays; lazy reads through a [`ChunkSource`]; region reads of
//! sharded arrays that fetch only the inner chunks they need.

use crate::blosc::Frame;
use crate::error::{Result, StoreError};
use crate::metadata::{self, ArrayEntry, GroupMeta, ZarrFormat};
use crate::storage::{Storage, StoreOptions, StoreUrl};
use gridflow_array::kernels::{SliceSpec, assemble, slice, slice_rows};
use gridflow_array::{Chunk, ChunkSource, ChunkedArray, DType, Scalar};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use zarrs::array::codec::api::{BytesPartialDecoderTraits, CodecError, CodecMetadataOptions};
use zarrs::array::{
    Array, ArrayMetadata, ArrayMetadataV2, ArrayMetadataV3, ArrayShardedExt,
    ArrayShardedReadableExt, ArrayShardedReadableExtCache, ArraySubset, BytesRepresentation,
    CodecOptions,
};
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{ReadableStorageTraits, StorageError, StoreKey};

/// Decoded bytes per slab when a blosc chunk is decoded slab by slab (below glibc's mmap
/// threshold, so the slab buffers are reused instead of mapped and unmapped each time).
const BLOSC_SLAB_BYTES: usize = 4 << 20;

/// Bytes of chunk data decoded by this process so far (see [`decoded_bytes`]).
static DECODED_BYTES: AtomicU64 = AtomicU64::new(0);

/// How many bytes of chunk data this process has decoded from stores so far (whole chunks
/// and streamed blosc blocks): what a benchmark reports to show that a selection decodes
/// only what it keeps.
pub fn decoded_bytes() -> u64 {
    DECODED_BYTES.load(Ordering::Relaxed)
}

/// Whether the array's codecs are exactly `bytes` (little-endian or no endianness) then
/// `blosc`, with no array-to-array codec: what [`ZarrArray::read_blosc_chunk`] decodes.
fn blosc_le_chain(array: &Array<Storage>) -> bool {
    let codecs = array.codecs();
    if !codecs.array_to_array_codecs().is_empty() || codecs.bytes_to_bytes_codecs().len() != 1 {
        return false;
    }
    let metas = codecs.create_metadatas(&CodecMetadataOptions::default());
    let Ok(Value::Array(metas)) = serde_json::to_value(&metas) else {
        return false;
    };
    let name = |m: &Value| {
        m.as_str()
            .or_else(|| m.get("name").and_then(Value::as_str))
            .map(str::to_string)
    };
    match metas.as_slice() {
        [bytes, blosc] => {
            let endian = bytes.get("configuration").and_then(|c| c.get("endian"));
            name(bytes).as_deref() == Some("bytes")
                && name(blosc).as_deref() == Some("blosc")
                && matches!(endian.and_then(Value::as_str), None | Some("little"))
                && cfg!(target_endian = "little")
        }
        _ => false,
    }
}

/// An encoded chunk in memory, handed to a codec's partial decoder without copying it.
struct EncodedChunk(Vec<u8>);

impl BytesPartialDecoderTraits for EncodedChunk {
    fn exists(&self) -> std::result::Result<bool, StorageError> {
        Ok(true)
    }

    fn size_held(&self) -> usize {
        self.0.len()
    }

    fn partial_decode_many(
        &self,
        decoded_regions: ByteRangeIterator,
        _options: &CodecOptions,
    ) -> std::result::Result<Option<Vec<std::borrow::Cow<'_, [u8]>>>, CodecError> {
        let n = self.0.len() as u64;
        decoded_regions
            .map(|r| {
                let (start, end) = (r.start(n), r.end(n));
                if start > end || end > n {
                    return Err(CodecError::from(format!(
                        "byte range {start}..{end} outside an encoded chunk of {n} bytes"
                    )));
                }
                Ok(std::borrow::Cow::Borrowed(
                    &self.0[start as usize..end as usize],
                ))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some)
    }

    fn supports_partial_decode(&self) -> bool {
        true
    }
}

/// Where the bytes of one stored blosc chunk are read from while it is decoded slab by slab.
enum FrameSource<'a> {
    /// A stored chunk read by byte ranges (a local file, or a remote object by ranged
    /// requests).
    Ranged { storage: &'a Storage, key: StoreKey },
    /// The whole encoded chunk, already fetched (remote stores: one request per chunk).
    Memory(Vec<u8>),
}

impl FrameSource<'_> {
    fn read(&self, r: Range<usize>) -> std::result::Result<Cow<'_, [u8]>, String> {
        match self {
            FrameSource::Memory(e) => e
                .get(r.clone())
                .map(Cow::Borrowed)
                .ok_or_else(|| format!("byte range {r:?} outside the {} stored bytes", e.len())),
            FrameSource::Ranged { storage, key } => storage
                .get_partial(
                    key,
                    ByteRange::FromStart(r.start as u64, Some(r.len() as u64)),
                )
                .map_err(|e| format!("reading bytes {r:?}: {e}"))?
                .map(|b| Cow::Owned(Vec::from(b)))
                .ok_or_else(|| "the chunk vanished while it was read".to_owned()),
        }
    }
}

/// An open store: a URL, its options and the storage adapter (with its read counters).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ZarrStore {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    url: StoreUrl,
    options: StoreOptions,
    storage: Arc<Storage>,
}

impl ZarrStore {
    /// Opens a store at a path, `file://`, `http(s)://` or `s3://bucket/prefix` URL.
    /// Nothing is read yet. Pass [`StoreOptions::read_only`] to guarantee no writes.
    ///
    /// A kerchunk reference set opens as a read-only store: a local regular file whose
    /// content is JSON, or a remote URL ending in `.json` (read here, whole). A local netCDF
    /// or HDF5 file is refused with a message saying so.
    pub fn open(url: &str, options: StoreOptions) -> Result<ZarrStore> {
        let parsed = StoreUrl::parse(url)?;
        let storage = match crate::kerchunk::detect(&parsed)? {
            true => {
                let refs = crate::kerchunk::References::open(&parsed, &options)?;
                Arc::new(Storage::references(&parsed, &options, refs))
            }
            false => Arc::new(Storage::new(&parsed, &options)?),
        };
        Ok(ZarrStore {
            inner: Arc::new(StoreInner {
                url: parsed,
                options,
                storage,
            }),
        })
    }

    /// The parsed URL.
    pub fn url(&self) -> &StoreUrl {
        &self.inner.url
    }

    /// The options it was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// True if the store refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.inner.storage.is_read_only()
    }

    /// Bytes read from this store so far (chunk and metadata values, byte ranges).
    pub fn bytes_read(&self) -> u64 {
        self.inner.storage.bytes_read()
    }

    /// Read requests made so far.
    pub fn requests(&self) -> u64 {
        self.inner.storage.requests()
    }

    /// Resets [`ZarrStore::bytes_read`] and [`ZarrStore::requests`].
    pub fn reset_counters(&self) {
        self.inner.storage.reset_counters();
    }

    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.inner.storage
    }

    pub(crate) fn url_string(&self) -> String {
        self.inner.storage.url().to_owned()
    }

    /// Opens the group at `path` (`""` for the root): `.zmetadata` when present (one
    /// request), else the v3 `zarr.json` (with inline consolidated metadata if any), else
    /// `.zgroup` and a listing of the store.
    pub fn open_group(&self, path: &str) -> Result<ZarrGroup> {
        let path = path.trim_matches('/').to_owned();
        let meta = metadata::open_group(self.storage(), &path)?;
        Ok(ZarrGroup {
            store: self.clone(),
            path,
            meta,
        })
    }

    /// Opens one array directly from its own metadata (`.zarray`/`.zattrs`, else `zarr.json`).
    pub fn open_array(&self, path: &str) -> Result<ZarrArray> {
        let path = path.trim_matches('/');
        let entry = metadata::read_array_entry(self.storage(), path)?;
        ZarrArray::from_entry(self.clone(), path, entry)
    }
}

/// An opened group: its attributes and the metadata of every array below it.
#[derive(Clone, Debug)]
pub struct ZarrGroup {
    store: ZarrStore,
    path: String,
    meta: GroupMeta,
}

impl ZarrGroup {
    /// The store.
    pub fn store(&self) -> &ZarrStore {
        &self.store
    }

    /// The group's path in the store (`""` for the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The format.
    pub fn zarr_format(&self) -> ZarrFormat {
        self.meta.format
    }

    /// True if the metadata came from consolidated metadata.
    pub fn is_consolidated(&self) -> bool {
        self.meta.consolidated
    }

    /// The group's attributes.
    pub fn attrs(&self) -> &Map<String, Value> {
        &self.meta.attrs
    }

    /// Paths (relative to this group) of every array below it, sorted.
    pub fn array_paths(&self) -> Vec<String> {
        self.meta.arrays.keys().cloned().collect()
    }

    /// Paths (relative to this group) of every sub-group, sorted, with their attributes.
    pub fn groups(&self) -> &BTreeMap<String, Map<String, Value>> {
        &self.meta.groups
    }

    /// The metadata of the array at `path` (relative to the group), if there is one.
    pub(crate) fn entry(&self, path: &str) -> Option<&ArrayEntry> {
        self.meta.arrays.get(path.trim_matches('/'))
    }

    /// The array at `path` (relative to this group), built from the metadata already read.
    pub fn array(&self, path: &str) -> Result<ZarrArray> {
        let rel = path.trim_matches('/');
        let full = metadata::join(&self.path, rel);
        let entry = self
            .meta
            .arrays
            .get(rel)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                url: self.store.url_string(),
                what: "array",
                path: full.clone(),
            })?;
        ZarrArray::from_entry(self.store.clone(), &full, entry)
    }
}

/// Which dimension a chunk request refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// By dimension name.
    Name(String),
    /// By axis number.
    Axis(usize),
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::Name(s.to_owned())
    }
}

impl From<usize> for Dim {
    fn from(a: usize) -> Self {
        Dim::Axis(a)
    }
}

/// One Zarr array: metadata, and reads of its chunks.
#[derive(Clone)]
pub struct ZarrArray {
    store: ZarrStore,
    path: String,
    entry: ArrayEntry,
    array: Arc<Array<Storage>>,
    dtype: DType,
    shape: Vec<usize>,
    chunk_shape: Vec<usize>,
    grid_shape: Vec<usize>,
    fill_value: Option<Scalar>,
    attrs: Map<String, Value>,
    dims: Option<Vec<String>>,
    shard_cache: Arc<OnceLock<ArrayShardedReadableExtCache>>,
    /// Whether the codecs are `bytes` + `blosc` (see [`blosc_le_chain`]), worked out once.
    blosc_le: Arc<OnceLock<bool>>,
}

impl std::fmt::Debug for ZarrArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrArray")
            .field("store", &self.store.url_string())
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("chunks", &self.chunk_shape)
            .field("dtype", &self.dtype)
            .finish()
    }
}

/// Maps a v2 `dtype` string or a v3 `data_type` name to a gridflow dtype.
fn map_dtype(format: ZarrFormat, meta: &Value) -> std::result::Result<DType, String> {
    match format {
        ZarrFormat::V2 => {
            let s = match meta.get("dtype") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => return Err(other.to_string()),
                None => return Err("(missing)".into()),
            };
            let body = s.trim_start_matches(['<', '>', '|', '=']);
            Ok(match body {
                "b1" | "?" => DType::Bool,
                "i1" => DType::I8,
                "i2" => DType::I16,
                "i4" => DType::I32,
                "i8" => DType::I64,
                "u1" => DType::U8,
                "u2" => DType::U16,
                "u4" => DType::U32,
                "u8" => DType::U64,
                "f4" => DType::F32,
                "f8" => DType::F64,
                _ => return Err(s),
            })
        }
        ZarrFormat::V3 => {
            let s = match meta.get("data_type") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => return Err(other.to_string()),
                None => return Err("(missing)".into()),
            };
            Ok(match s.as_str() {
                "bool" => DType::Bool,
                "int8" => DType::I8,
                "int16" => DType::I16,
                "int32" => DType::I32,
                "int64" => DType::I64,
                "uint8" => DType::U8,
                "uint16" => DType::U16,
                "uint32" => DType::U32,
                "uint64" => DType::U64,
                "float32" => DType::F32,
                "float64" => DType::F64,
                _ => return Err(s),
            })
        }
    }
}

fn fill_scalar(dtype: DType, b: &[u8]) -> Option<Scalar> {
    macro_rules! ne {
        ($t:ty) => {
            <$t>::from_ne_bytes(b.try_into().ok()?)
        };
    }
    Some(match dtype {
        DType::Bool => Scalar::Bool(b.first().copied()? != 0),
        DType::I8 => Scalar::Int(i64::from(ne!(i8))),
        DType::I16 => Scalar::Int(i64::from(ne!(i16))),
        DType::I32 => Scalar::Int(i64::from(ne!(i32))),
        DType::I64 => Scalar::Int(ne!(i64)),
        DType::U8 => Scalar::Int(i64::from(ne!(u8))),
        DType::U16 => Scalar::Int(i64::from(ne!(u16))),
        DType::U32 => Scalar::Int(i64::from(ne!(u32))),
        DType::U64 => {
            let v = ne!(u64);
            i64::try_from(v).map_or(Scalar::UInt(v), Scalar::Int)
        }
        DType::F32 => Scalar::Float(f64::from(ne!(f32))),
        DType::F64 => Scalar::Float(ne!(f64)),
    })
}

fn to_usize(v: &[u64]) -> Vec<usize> {
    v.iter()
        .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
        .collect()
}

impl ZarrArray {
    pub(crate) fn from_entry(store: ZarrStore, path: &str, entry: ArrayEntry) -> Result<ZarrArray> {
        let url = store.url_string();
        let meta_err = |detail: String| StoreError::Metadata {
            url: url.clone(),
            path: path.to_owned(),
            detail,
        };
        let dtype =
            map_dtype(entry.format, &entry.meta).map_err(|d| StoreError::UnsupportedDType {
                url: url.clone(),
                path: path.to_owned(),
                dtype: d,
                detail: " (gridflow reads bool, int8..int64, uint8..uint64, float32, float64)"
                    .into(),
            })?;
        let md = match entry.format {
            ZarrFormat::V2 => {
                let mut v2: ArrayMetadataV2 = serde_json::from_value(entry.meta.clone())
                    .map_err(|e| meta_err(format!(".zarray: {e}")))?;
                v2.attributes = entry.attrs.clone();
                ArrayMetadata::V2(v2)
            }
            ZarrFormat::V3 => ArrayMetadata::V3(
                serde_json::from_value::<ArrayMetadataV3>(entry.meta.clone())
                    .map_err(|e| meta_err(format!("zarr.json: {e}")))?,
            ),
        };
        let array = Array::new_with_metadata(store.storage().clone(), &format!("/{path}"), md)
            .map_err(|e| meta_err(e.to_string()))?;
        let ndim = array.shape().len();
        let chunk_shape: Vec<usize> = array
            .chunk_shape(&vec![0; ndim])
            .map_err(|e| meta_err(e.to_string()))?
            .iter()
            .map(|c| usize::try_from(c.get()).unwrap_or(usize::MAX))
            .collect();
        // The whole array's size must be countable: shapes come from a file anyone can write.
        let nbytes = array
            .shape()
            .iter()
            .try_fold(dtype.size() as u64, |a, &n| a.checked_mul(n))
            .filter(|&b| usize::try_from(b).is_ok());
        if nbytes.is_none() {
            return Err(meta_err(format!(
                "shape {:?} of {} holds more than 2^64 bytes; refusing it",
                array.shape(),
                dtype.name()
            )));
        }
        // zarrs multiplies a chunk's size out unchecked (a panic, or a wrapped size)
        if chunk_shape
            .iter()
            .try_fold(dtype.size(), |a, &c| a.checked_mul(c))
            .is_none()
        {
            return Err(meta_err(format!(
                "chunks {chunk_shape:?}: a chunk's size in bytes overflows"
            )));
        }
        let shape = to_usize(array.shape());
        let grid_shape = to_usize(array.chunk_grid_shape());
        let null_fill = entry.format == ZarrFormat::V2
            && entry.meta.get("fill_value").is_none_or(Value::is_null);
        let fill_value = if null_fill {
            None
        } else {
            fill_scalar(dtype, array.fill_value().as_ne_bytes())
        };
        let mut attrs = array.attributes().clone();
        let dims = match entry.format {
            ZarrFormat::V2 => match attrs.remove("_ARRAY_DIMENSIONS") {
                Some(Value::Array(v)) => Some(
                    v.iter()
                        .enumerate()
                        .map(|(i, d)| d.as_str().map_or_else(|| format!("dim_{i}"), str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            },
            ZarrFormat::V3 => array.dimension_names().as_ref().map(|names| {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.clone().unwrap_or_else(|| format!("dim_{i}")))
                    .collect()
            }),
        };
        if let Some(d) = &dims
            && d.len() != ndim
        {
            return Err(meta_err(format!(
                "{} dimension names {d:?} for {ndim} dimensions",
                d.len()
            )));
        }
        Ok(ZarrArray {
            store,
            path: path.to_owned(),
            entry,
            array: Arc::new(array),
            dtype,
            shape,
            chunk_shape,
            grid_shape,
            fill_value,
            attrs,
            dims,
            shard_cache: Arc::new(OnceLock::new()),
            blosc_le: Arc::new(OnceLock::new()),
        })
    }

    /// The store.
    pub fn store(&self) -> &ZarrStore {
        &self.store
    }

    /// The array's path in the store.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The underlying zarrs array.
    pub fn zarrs(&self) -> &Array<Storage> {
        &self.array
    }

    /// The store chunk shape (for sharded v3 arrays: the shard shape).
    pub fn chunk_shape(&self) -> &[usize] {
        &self.chunk_shape
    }

    /// The inner chunk shape of a sharded v3 array.
    pub fn inner_chunk_shape(&self) -> Option<Vec<usize>> {
        self.array.subchunk_shape().map(|s| {
            s.iter()
                .map(|c| usize::try_from(c.get()).unwrap_or(usize::MAX))
                .collect()
        })
    }

    /// Number of store chunks along each axis.
    pub fn grid_shape(&self) -> &[usize] {
        &self.grid_shape
    }

    /// The gridflow dtype (big-endian data is decoded to native order).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The fill value; `None` for a v2 `fill_value: null` (missing chunks then read as zeros,
    /// exactly as zarr-python 3.1 reads them).
    pub fn fill_value(&self) -> Option<Scalar> {
        self.fill_value
    }

    /// Attributes (v2: `.zattrs` without `_ARRAY_DIMENSIONS`; v3: `attributes`).
    pub fn attrs(&self) -> &Map<String, Value> {
        &self.attrs
    }

    /// Dimension names (v2: `_ARRAY_DIMENSIONS`; v3: `dimension_names`; unnamed ones are
    /// `dim_<axis>`).
    pub fn dims(&self) -> Option<&[String]> {
        self.dims.as_deref()
    }

    /// The format.
    pub fn zarr_format(&self) -> ZarrFormat {
        self.entry.format
    }

    /// The store key of chunk `idx` (e.g. `tas/1.0.0` or `tas/c/1/0/0`).
    pub fn chunk_key(&self, idx: &[u64]) -> String {
        self.array.chunk_key(idx).as_str().to_owned()
    }

    fn chunk_err(&self, idx: &[u64], detail: impl std::fmt::Display) -> StoreError {
        StoreError::Chunk {
            url: self.store.url_string(),
            path: self.path.clone(),
            key: self.chunk_key(idx),
            detail: detail.to_string(),
        }
    }

    fn invalid(&self, detail: String) -> StoreError {
        StoreError::Invalid {
            url: self.store.url_string(),
            path: self.path.clone(),
            detail,
        }
    }

    /// Reads store chunk `idx` trimmed to the array's shape (missing chunks: fill value).
    pub fn read_chunk(&self, idx: &[u64]) -> Result<Chunk> {
        self.check_chunk_index(idx)?;
        if self.array.is_sharded() {
            // The shard index and then each inner chunk by byte ranges: never the whole
            // shard file at once, whatever its size on disk.
            let ranges: Vec<Range<usize>> = idx
                .iter()
                .zip(&self.chunk_shape)
                .zip(&self.shape)
                .map(|((&i, &c), &n)| {
                    let start = (i as usize).saturating_mul(c).min(n);
                    start..start.saturating_add(c).min(n)
                })
                .collect();
            return self.read_region(&ranges);
        }
        macro_rules! rd {
            ($t:ty, $v:ident) => {{
                let streamed = if *self.blosc_le.get_or_init(|| blosc_le_chain(&self.array)) {
                    self.read_blosc_chunk(idx, <$t>::from_le_bytes)?
                } else {
                    None
                };
                Chunk::$v(match streamed {
                    Some(a) => a,
                    None => self
                        .array
                        .retrieve_chunk::<ndarray::ArrayD<$t>>(idx)
                        .map_err(|e| self.chunk_err(idx, e))?,
                })
            }};
        }
        let full = match self.dtype {
            DType::Bool => Chunk::Bool(
                self.array
                    .retrieve_chunk::<ndarray::ArrayD<bool>>(idx)
                    .map_err(|e| self.chunk_err(idx, e))?,
            ),
            DType::I8 => rd!(i8, I8),
            DType::I16 => rd!(i16, I16),
            DType::I32 => rd!(i32, I32),
            DType::I64 => rd!(i64, I64),
            DType::U8 => rd!(u8, U8),
            DType::U16 => rd!(u16, U16),
            DType::U32 => rd!(u32, U32),
            DType::U64 => rd!(u64, U64),
            DType::F32 => rd!(f32, F32),
            DType::F64 => rd!(f64, F64),
        };
        DECODED_BYTES.fetch_add(full.nbytes() as u64, Ordering::Relaxed);
        // edge chunks come back with the full chunk shape: trim them
        self.trim(full, &self.chunk_extent(idx), idx)
    }

    fn check_chunk_index(&self, idx: &[u64]) -> Result<()> {
        if idx.len() != self.shape.len()
            || idx
                .iter()
                .zip(&self.grid_shape)
                .any(|(&i, &g)| i as usize >= g)
        {
            return Err(self.invalid(format!(
                "chunk index {idx:?} is outside the chunk grid {:?}",
                self.grid_shape
            )));
        }
        Ok(())
    }

    /// The part of chunk `idx` inside the array, per axis, relative to the chunk's origin.
    fn chunk_extent(&self, idx: &[u64]) -> Vec<Range<usize>> {
        idx.iter()
            .zip(&self.chunk_shape)
            .zip(&self.shape)
            .map(|((&i, &c), &n)| {
                let start = i as usize * c;
                0..(n.min(start + c) - start)
            })
            .collect()
    }

    /// Reads store chunk `idx` (trimmed to the array's shape, as [`ZarrArray::read_chunk`])
    /// as consecutive slabs of whole rows along axis 0, in order, calling `visit` with each;
    /// the slabs concatenated along axis 0 equal `read_chunk(idx)`. A `bytes` + `blosc`
    /// chunk is decoded about `slab_bytes` at a time (whole blosc blocks; a slab holds at
    /// least one row) and, on a local store, only the compressed bytes of those blocks are
    /// read, so the chunk is never held whole, compressed or decoded. Any other chunk (other
    /// codecs, sharding, bool, a missing chunk) is read whole and visited once.
    pub fn read_chunk_slabs(
        &self,
        idx: &[u64],
        slab_bytes: usize,
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> Result<()> {
        self.read_chunk_rows_slabs(idx, None, slab_bytes, visit)
    }

    /// [`ZarrArray::read_chunk_slabs`] restricted to the rows `rows` of the chunk (along axis
    /// 0, clipped to it): a `bytes` + `blosc` chunk decodes only the blosc blocks holding
    /// them (and, on a local store, reads only their compressed bytes). Other chunks are
    /// read whole and the rows cut out.
    pub fn read_chunk_rows_slabs(
        &self,
        idx: &[u64],
        rows: Option<Range<usize>>,
        slab_bytes: usize,
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> Result<()> {
        self.check_chunk_index(idx)?;
        let streamable = self.dtype != DType::Bool
            && !self.shape.is_empty()
            && !self.array.is_sharded()
            && *self.blosc_le.get_or_init(|| blosc_le_chain(&self.array));
        macro_rules! st {
            ($t:ty, $v:ident) => {
                self.stream_blosc_chunk(
                    idx,
                    rows.clone(),
                    slab_bytes,
                    <$t>::from_le_bytes,
                    Chunk::$v,
                    visit,
                )?
            };
        }
        let streamed = streamable
            && match self.dtype {
                DType::Bool => false,
                DType::I8 => st!(i8, I8),
                DType::I16 => st!(i16, I16),
                DType::I32 => st!(i32, I32),
                DType::I64 => st!(i64, I64),
                DType::U8 => st!(u8, U8),
                DType::U16 => st!(u16, U16),
                DType::U32 => st!(u32, U32),
                DType::U64 => st!(u64, U64),
                DType::F32 => st!(f32, F32),
                DType::F64 => st!(f64, F64),
            };
        if !streamed {
            let whole = self.read_chunk(idx)?;
            let n = whole.shape().first().copied().unwrap_or(0);
            match rows {
                Some(r) if r.start > 0 || r.end < n => visit(slice_rows(&whole, r)?)?,
                _ => visit(whole)?,
            }
        }
        Ok(())
    }

    /// Streams store chunk `idx` of a `bytes` (little-endian) + `blosc` array to `visit` as
    /// slabs of whole rows (see [`ZarrArray::read_chunk_slabs`]). `Ok(false)`, before any
    /// visit, when the chunk is missing or cannot be streamed (the caller reads it whole).
    fn stream_blosc_chunk<T: Copy, const N: usize>(
        &self,
        idx: &[u64],
        rows: Option<Range<usize>>,
        slab_bytes: usize,
        from_le: fn([u8; N]) -> T,
        wrap: fn(ndarray::ArrayD<T>) -> Chunk,
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> Result<bool> {
        let codecs = self.array.codecs();
        let Some(codec) = codecs.bytes_to_bytes_codecs().first() else {
            return Ok(false);
        };
        let Some((&chunk_rows, rest)) = self.chunk_shape.split_first() else {
            return Ok(false);
        };
        let Some(row_elems) = rest.iter().try_fold(1usize, |a, &b| a.checked_mul(b)) else {
            return Ok(false);
        };
        let expected = chunk_rows
            .checked_mul(row_elems)
            .and_then(|e| e.checked_mul(N))
            .unwrap_or(0);
        if expected == 0 {
            return Ok(false);
        }
        let extent = self.chunk_extent(idx);
        let kept_rows = extent.first().map_or(0, Range::len);
        // the rows visited: rows past the array's end are never decoded (past their last
        // block), nor rows outside `rows`
        let wanted = rows.map_or(0..kept_rows, |r| {
            r.start.min(kept_rows)..r.end.min(kept_rows)
        });
        let row_bytes = row_elems * N;
        let need = wanted.len() * row_bytes;
        let start_byte = wanted.start * row_bytes;
        let storage = self.store.storage();
        // A remote chunk is fetched whole in one request, unless the task wants less than
        // half of its rows: then the frame's header, block table and the blocks holding
        // those rows are fetched by byte ranges (fewer bytes for a time range).
        let ranged = wanted.len() * 2 <= kept_rows;
        let src = if self.store.url().is_remote() && !ranged {
            match self
                .array
                .retrieve_encoded_chunk(idx)
                .map_err(|e| self.chunk_err(idx, e))?
            {
                Some(e) => FrameSource::Memory(e),
                None => return Ok(false),
            }
        } else {
            FrameSource::Ranged {
                storage,
                key: self.array.chunk_key(idx),
            }
        };
        let size = match &src {
            FrameSource::Memory(e) => e.len(),
            FrameSource::Ranged { storage, key } => {
                match storage.size_key(key).map_err(|e| self.chunk_err(idx, e))? {
                    Some(s) => usize::try_from(s).unwrap_or(usize::MAX),
                    None => return Ok(false),
                }
            }
        };
        let mut read = |r: Range<usize>| src.read(r);
        let frame = Frame::open(size, expected, &mut read).map_err(|e| self.chunk_err(idx, e))?;
        let blocksize = frame.blocksize();
        if blocksize % N != 0 {
            // slabs would split elements; rare enough to read whole
            return Ok(false);
        }
        let opts = CodecOptions::default();
        let mut decode = |f: &[u8], n: usize| {
            codec
                .decode(
                    Cow::Borrowed(f),
                    &BytesRepresentation::FixedSize(n as u64),
                    &opts,
                )
                .map(Cow::into_owned)
                .map_err(|e| e.to_string())
        };
        let per_slab = (slab_bytes / blocksize).max(1);
        let need_blocks = (start_byte + need).div_ceil(blocksize);
        // bytes of the first decoded block before the first wanted row
        let mut skip = start_byte % blocksize;
        let slab_elems = |left: usize| (per_slab * blocksize).min(left) / N;
        let mut shape = self.chunk_shape.clone();
        let mut ranges = extent;
        let mut pending: Vec<T> = Vec::with_capacity(slab_elems(need));
        let mut done = 0;
        let mut first = start_byte / blocksize;
        while first < need_blocks {
            let end = (first + per_slab).min(need_blocks);
            let bytes = frame
                .decode_blocks(first..end, &mut read, &mut decode)
                .map_err(|e| self.chunk_err(idx, e))?;
            DECODED_BYTES.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let from = skip.min(bytes.len());
            skip -= from;
            let take = (bytes.len() - from).min(need - done);
            done += take;
            pending.extend(bytes[from..from + take].chunks_exact(N).map(|b| {
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                from_le(a)
            }));
            drop(bytes);
            first = end;
            let rows = pending.len() / row_elems;
            if rows == 0 {
                continue;
            }
            // carry the partial row into the next slab's buffer
            let whole = rows * row_elems;
            let mut next = Vec::with_capacity(pending.len() - whole + slab_elems(need - done));
            next.extend_from_slice(&pending[whole..]);
            pending.truncate(whole);
            let slab = std::mem::replace(&mut pending, next);
            shape[0] = rows;
            ranges[0] = 0..rows;
            let a = ndarray::ArrayD::from_shape_vec(shape.clone(), slab)
                .map_err(|e| self.chunk_err(idx, e))?;
            visit(self.trim(wrap(a), &ranges, idx)?)?;
        }
        if done != need || !pending.is_empty() {
            return Err(self.chunk_err(
                idx,
                format!(
                    "decoded {done} of {need} bytes, {} left over",
                    pending.len() * N
                ),
            ));
        }
        Ok(true)
    }

    /// Reads store chunk `idx` of a `bytes` (little-endian) + `blosc` array by decoding it
    /// slab by slab straight into the chunk's element vector. zarrs' whole-chunk decode
    /// returns a byte buffer that then has to be copied into a `Vec<T>` (a fresh, page-faulted
    /// allocation of the full chunk size); the slabs are small enough to be reused from the
    /// heap. `None` if the chunk is missing (the caller falls back to the fill value).
    fn read_blosc_chunk<T, const N: usize>(
        &self,
        idx: &[u64],
        from_le: fn([u8; N]) -> T,
    ) -> Result<Option<ndarray::ArrayD<T>>> {
        let codecs = self.array.codecs();
        let Some(codec) = codecs.bytes_to_bytes_codecs().first().cloned() else {
            return Ok(None);
        };
        let Some(encoded) = self
            .array
            .retrieve_encoded_chunk(idx)
            .map_err(|e| self.chunk_err(idx, e))?
        else {
            return Ok(None);
        };
        let nbytes = self
            .chunk_shape
            .iter()
            .try_fold(N, |a, &b| a.checked_mul(b))
            .ok_or_else(|| self.chunk_err(idx, "the chunk shape's size overflows"))?;
        let n = nbytes / N;
        // the frame says how many bytes it holds: a chunk shape that disagrees (metadata
        // claiming gigabytes over a small frame) is refused before anything is allocated
        if let Some(claimed) = encoded
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            && usize::try_from(claimed).ok() != Some(nbytes)
        {
            return Err(self.chunk_err(
                idx,
                format!(
                    "the blosc frame holds {claimed} bytes, the chunk shape {:?} {nbytes}",
                    self.chunk_shape
                ),
            ));
        }
        let opts = CodecOptions::default();
        let decoder = codec
            .partial_decoder(
                Arc::new(EncodedChunk(encoded)),
                &BytesRepresentation::FixedSize(nbytes as u64),
                &opts,
            )
            .map_err(|e| self.chunk_err(idx, e))?;
        let mut out: Vec<T> = Vec::with_capacity(n);
        let slab = (BLOSC_SLAB_BYTES / N).max(1) * N;
        let mut start = 0;
        while start < nbytes {
            let len = slab.min(nbytes - start);
            let bytes = decoder
                .partial_decode(ByteRange::FromStart(start as u64, Some(len as u64)), &opts)
                .map_err(|e| self.chunk_err(idx, e))?
                .ok_or_else(|| self.chunk_err(idx, "the encoded chunk vanished"))?;
            if bytes.len() != len {
                return Err(self.chunk_err(
                    idx,
                    format!("decoded {} bytes where {len} were expected", bytes.len()),
                ));
            }
            out.extend(bytes.chunks_exact(N).map(|b| {
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                from_le(a)
            }));
            start += len;
        }
        ndarray::ArrayD::from_shape_vec(self.chunk_shape.clone(), out)
            .map(Some)
            .map_err(|e| self.chunk_err(idx, e))
    }

    fn trim(&self, c: Chunk, ranges: &[Range<usize>], idx: &[u64]) -> Result<Chunk> {
        if ranges
            .iter()
            .zip(c.shape())
            .all(|(r, &n)| r.start == 0 && r.end == n)
        {
            return Ok(c);
        }
        let specs: Vec<SliceSpec> = ranges
            .iter()
            .map(|r| SliceSpec::range(r.start, r.end))
            .collect();
        slice(&c, &specs).map_err(|e| self.chunk_err(idx, e))
    }

    /// Reads the region `ranges` (one range per axis) by reading every store chunk that
    /// intersects it and assembling the parts.
    pub fn read_chunks_region(&self, ranges: &[Range<usize>]) -> Result<Chunk> {
        self.check_region(ranges)?;
        let per_axis: Vec<Vec<usize>> = ranges
            .iter()
            .zip(&self.chunk_shape)
            .map(|(r, &c)| {
                if r.is_empty() {
                    vec![]
                } else {
                    (r.start / c..r.end.div_ceil(c)).collect()
                }
            })
            .collect();
        if per_axis.iter().any(Vec::is_empty) {
            return Ok(Chunk::full(
                &ranges.iter().map(|r| r.len()).collect::<Vec<_>>(),
                Scalar::Int(0),
                self.dtype,
            ));
        }
        let grid: Vec<usize> = per_axis.iter().map(Vec::len).collect();
        let mut parts = Vec::new();
        let mut counter = vec![0usize; grid.len()];
        loop {
            let idx: Vec<u64> = counter
                .iter()
                .zip(&per_axis)
                .map(|(&k, v)| v[k] as u64)
                .collect();
            let c = self.read_chunk(&idx)?;
            let local: Vec<Range<usize>> = idx
                .iter()
                .zip(&self.chunk_shape)
                .zip(ranges)
                .zip(c.shape())
                .map(|(((&i, &cs), r), &len)| {
                    let start = i as usize * cs;
                    let lo = r.start.max(start) - start;
                    let hi = r.end.min(start + len) - start;
                    lo..hi
                })
                .collect();
            parts.push(self.trim(c, &local, &idx)?);
            // next index, last axis fastest (C order, as assemble expects)
            let mut ax = grid.len();
            loop {
                if ax == 0 {
                    let refs: Vec<&Chunk> = parts.iter().collect();
                    return if refs.len() == 1 {
                        Ok(parts.swap_remove(0))
                    } else {
                        assemble(&refs, &grid).map_err(|e| self.invalid(e.to_string()))
                    };
                }
                ax -= 1;
                counter[ax] += 1;
                if counter[ax] < grid[ax] {
                    break;
                }
                counter[ax] = 0;
            }
        }
    }

    fn check_region(&self, ranges: &[Range<usize>]) -> Result<()> {
        if ranges.len() != self.shape.len()
            || ranges
                .iter()
                .zip(&self.shape)
                .any(|(r, &n)| r.start > r.end || r.end > n)
        {
            return Err(self.invalid(format!(
                "region {ranges:?} is not inside the array shape {:?}",
                self.shape
            )));
        }
        Ok(())
    }

    /// Reads a region. For sharded v3 arrays only the shard indexes and the inner chunks
    /// that intersect the region are fetched (byte-range reads; shard indexes are cached
    /// per array); otherwise every intersecting store chunk is read.
    pub fn read_region(&self, ranges: &[Range<usize>]) -> Result<Chunk> {
        self.check_region(ranges)?;
        if !self.array.is_sharded() {
            return self.read_chunks_region(ranges);
        }
        let cache = self
            .shard_cache
            .get_or_init(|| ArrayShardedReadableExtCache::new(&self.array));
        let subset = ArraySubset::new_with_ranges(
            &ranges
                .iter()
                .map(|r| r.start as u64..r.end as u64)
                .collect::<Vec<_>>(),
        );
        let opts = CodecOptions::default();
        let err = |e: zarrs::array::ArrayError| {
            let first: Vec<u64> = ranges
                .iter()
                .zip(&self.chunk_shape)
                .map(|(r, &c)| (r.start / c) as u64)
                .collect();
            self.chunk_err(&first, format!("reading region {ranges:?}: {e}"))
        };
        macro_rules! rd {
            ($t:ty, $v:ident) => {
                Chunk::$v(
                    self.array
                        .retrieve_array_subset_sharded_opt::<ndarray::ArrayD<$t>>(
                            cache, &subset, &opts,
                        )
                        .map_err(err)?,
                )
            };
        }
        Ok(match self.dtype {
            DType::Bool => rd!(bool, Bool),
            DType::I8 => rd!(i8, I8),
            DType::I16 => rd!(i16, I16),
            DType::I32 => rd!(i32, I32),
            DType::I64 => rd!(i64, I64),
            DType::U8 => rd!(u8, U8),
            DType::U16 => rd!(u16, U16),
            DType::U32 => rd!(u32, U32),
            DType::U64 => rd!(u64, U64),
            DType::F32 => rd!(f32, F32),
            DType::F64 => rd!(f64, F64),
        })
    }

    /// A lazy gridflow array over this Zarr array. By default one block per store chunk
    /// (edge blocks trimmed). `chunks` asks for bigger blocks along some dimensions (as
    /// xarray's `open_zarr(chunks={"time": 2400})`): sizes are rounded up to a whole number
    /// of store chunks, and each block's task reads all the store chunks of its block.
    pub fn to_chunked(&self, chunks: Option<&[(Dim, usize)]>) -> Result<ChunkedArray> {
        let mut per_block = vec![1usize; self.shape.len()];
        for (dim, size) in chunks.unwrap_or(&[]) {
            let axis = match dim {
                Dim::Axis(a) => *a,
                Dim::Name(n) => self
                    .dims
                    .as_ref()
                    .and_then(|d| d.iter().position(|x| x == n))
                    .ok_or_else(|| {
                        self.invalid(format!(
                            "no dimension named {n:?} (dimensions: {:?})",
                            self.dims
                        ))
                    })?,
            };
            if axis >= self.shape.len() {
                return Err(self.invalid(format!(
                    "axis {axis} out of range for {} dimensions",
                    self.shape.len()
                )));
            }
            let c = self.chunk_shape[axis].max(1);
            per_block[axis] = if *size == 0 {
                self.grid_shape[axis].max(1)
            } else {
                size.div_ceil(c).max(1)
            };
        }
        // One size per block along each axis is allocated below: count them first.
        let max_blocks = gridflow_array::limits::max_tasks();
        for (axis, ((&n, &c), &m)) in self
            .shape
            .iter()
            .zip(&self.chunk_shape)
            .zip(&per_block)
            .enumerate()
        {
            let b = c.saturating_mul(m).max(1);
            let blocks = n.div_ceil(b);
            if blocks > max_blocks {
                return Err(self.invalid(format!(
                    "shape {:?} with chunks {:?} has {blocks} blocks along axis {axis}, more than the {max_blocks} tasks the graph memory limit of {} bytes allows; open it with bigger chunks or raise the limit (gridflow: --memory-limit)",
                    self.shape,
                    self.chunk_shape,
                    gridflow_array::graph_memory_limit()
                )));
            }
        }
        let source = ZarrSource {
            array: self.clone(),
            per_block: per_block.clone(),
        };
        let block_chunks: Vec<Vec<usize>> = self
            .shape
            .iter()
            .zip(&self.chunk_shape)
            .zip(&per_block)
            .map(|((&n, &c), &m)| {
                let b = c.saturating_mul(m).max(1);
                if n == 0 {
                    vec![0]
                } else {
                    let mut v = vec![b; n / b];
                    if n % b != 0 {
                        v.push(n % b);
                    }
                    v
                }
            })
            .collect();
        Ok(ChunkedArray::from_source(
            Arc::new(source),
            &self.shape,
            block_chunks,
            self.dtype,
        )?)
    }
}

/// The spec of a Zarr read source: enough to rebuild it in another process without any
/// metadata request.
#[derive(serde::Serialize, serde::Deserialize)]
struct SourceSpec {
    url: String,
    options: StoreOptions,
    path: String,
    entry: ArrayEntry,
    per_block: Vec<usize>,
}

/// A [`ChunkSource`] of kind `"zarr"`: block `b` covers `per_block[d]` store chunks per axis.
#[derive(Debug)]
pub struct ZarrSource {
    array: ZarrArray,
    per_block: Vec<usize>,
}

impl ZarrSource {
    /// A source over `array` with one store chunk per block (what
    /// `array.to_chunked(None)` reads through).
    pub fn new(array: &ZarrArray) -> ZarrSource {
        ZarrSource {
            array: array.clone(),
            per_block: vec![1; array.shape.len()],
        }
    }
}

impl ChunkSource for ZarrSource {
    fn kind(&self) -> &str {
        "zarr"
    }

    fn spec(&self) -> String {
        let spec = SourceSpec {
            url: self.array.store.url_string(),
            options: self.array.store.options().clone(),
            path: self.array.path.clone(),
            entry: self.array.entry.clone(),
            per_block: self.per_block.clone(),
        };
        serde_json::to_string(&spec).unwrap_or_default()
    }

    fn read_block(&self, block: &[usize]) -> gridflow_array::Result<Chunk> {
        let a = &self.array;
        if block.len() != a.shape.len() {
            return Err(a
                .invalid(format!("block index {block:?} has the wrong length"))
                .into());
        }
        if self.per_block.iter().all(|&m| m == 1) {
            let idx: Vec<u64> = block.iter().map(|&b| b as u64).collect();
            return Ok(a.read_chunk(&idx)?);
        }
        let ranges: Vec<Range<usize>> = block
            .iter()
            .zip(&self.per_block)
            .zip(&a.chunk_shape)
            .zip(&a.shape)
            .map(|(((&b, &m), &c), &n)| {
                let size = m * c;
                (b * size).min(n)..((b + 1) * size).min(n)
            })
            .collect();
        Ok(a.read_region(&ranges)?)
    }

    /// One store chunk per block: streamed through [`ZarrArray::read_chunk_slabs`] (blosc
    /// chunks ~4 MiB of decoded rows at a time). Bigger blocks are read whole.
    fn read_block_slabs(
        &self,
        block: &[usize],
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> gridflow_array::Result<()> {
        if block.len() == self.array.shape.len() && self.per_block.iter().all(|&m| m == 1) {
            let idx: Vec<u64> = block.iter().map(|&b| b as u64).collect();
            return Ok(self.array.read_chunk_slabs(&idx, BLOSC_SLAB_BYTES, visit)?);
        }
        visit(self.read_block(block)?)
    }

    fn read_rows_slabs(
        &self,
        block: &[usize],
        rows: Range<usize>,
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> gridflow_array::Result<()> {
        if block.len() == self.array.shape.len() && self.per_block.iter().all(|&m| m == 1) {
            let idx: Vec<u64> = block.iter().map(|&b| b as u64).collect();
            return Ok(self.array.read_chunk_rows_slabs(
                &idx,
                Some(rows),
                BLOSC_SLAB_BYTES,
                visit,
            )?);
        }
        visit(slice_rows(&self.read_block(block)?, rows)?)
    }

    fn block_shape(&self, block: &[usize]) -> Option<Vec<usize>> {
        let a = &self.array;
        if block.len() != a.shape.len() {
            return None;
        }
        Some(
            block
                .iter()
                .zip(&self.per_block)
                .zip(&a.chunk_shape)
                .zip(&a.shape)
                .map(|(((&b, &m), &c), &n)| {
                    let size = m.saturating_mul(c);
                    n.min(b.saturating_add(1).saturating_mul(size))
                        .saturating_sub(b.saturating_mul(size))
                })
                .collect(),
        )
    }

    fn slab_bytes(&self) -> Option<usize> {
        let streams = self.per_block.iter().all(|&m| m == 1)
            && !self.array.array.is_sharded()
            && *self
                .array
                .blosc_le
                .get_or_init(|| blosc_le_chain(&self.array.array));
        streams.then_some(BLOSC_SLAB_BYTES)
    }
}

/// Rebuilds a `"zarr"` source from its spec (registered by [`crate::register`]).
pub(crate) fn source_from_spec(spec: &str) -> Result<Arc<dyn ChunkSource>> {
    let s: SourceSpec = serde_json::from_str(spec).map_err(|e| StoreError::Url {
        url: spec.chars().take(200).collect(),
        detail: format!("not a zarr source spec: {e}"),
    })?;
    let store = ZarrStore::open(&s.url, s.options)?;
    let array = ZarrArray::from_entry(store, &s.path, s.entry)?;
    Ok(Arc::new(ZarrSource {
        array,
        per_block: s.per_block,
    }))
}
