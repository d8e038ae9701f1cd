//! netCDF files (netCDF-3 classic / 64-bit offset / CDF-5 and netCDF-4 on HDF5) read
//! directly, through the pure-Rust `netcdf-reader` crate: chunked and contiguous layouts,
//! deflate and shuffle, dimensions from netCDF-4's dimension scales, unlimited dimensions.
//!
//! Each numeric variable becomes a lazy [`ChunkedArray`] whose blocks are read by a
//! [`ChunkSource`] of kind `"netcdf"` (hyperslab reads, one per block, on the executor's
//! threads); blocks follow the file's HDF5 chunks, grouped along the first dimension up to
//! about [`BLOCK_BYTES`]. Local files are mapped into memory; files on HTTP, S3, GCS or Azure
//! are read by byte ranges ([`crate::netcdf_remote`]).

use crate::error::{Result, StoreError};
use crate::netcdf_remote::{RangeFile, is_remote};
use crate::storage::StoreOptions;
use gridflow_array::{Chunk, ChunkSource, ChunkedArray, DType};
use netcdf_reader::{NcAttrValue, NcFile, NcFormat, NcSliceInfo, NcSliceInfoElem, NcType};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Target decoded bytes of one block (whole HDF5 chunks along the other dimensions, as many
/// rows of them along the first as fit).
pub const BLOCK_BYTES: usize = 32 << 20;

/// Target decoded bytes of one slab of a streamed read (whole HDF5 chunk rows along the first
/// dimension, at least one): a task that reduces or slices a block holds this much at a time.
pub const SLAB_BYTES: usize = 4 << 20;

/// One variable of a netCDF file.
#[derive(Clone, Debug)]
pub struct NcVar {
    /// The variable's name.
    pub name: String,
    /// Dimension names.
    pub dims: Vec<String>,
    /// The shape.
    pub shape: Vec<usize>,
    /// The data type; `None` for types gridflow does not read (char, string, compound...).
    pub dtype: Option<DType>,
    /// The netCDF type, for messages.
    pub nc_type: String,
    /// Attributes as JSON (numbers, strings, lists of them), netCDF's own hidden ones left
    /// out.
    pub attrs: Map<String, Value>,
    /// Text: a netCDF-4 `string` variable, or a `char` array whose last dimension (the
    /// string length, left out of `dims` and `shape`) holds the characters; read with
    /// [`NetcdfFile::read_strings`].
    pub text: bool,
    /// How the variable is stored, under the names of xarray's `encoding` (netcdf4
    /// engine): `original_shape`, `char_dim_name` for char arrays, and for netCDF-4 files
    /// `chunksizes`, `contiguous`, `zlib`, `complevel`, `shuffle`, `fletcher32`, `szip`,
    /// `zstd`, `bzip2`, `blosc`.
    pub encoding: Map<String, Value>,
    /// The variable's path in the file (`group/sub/name`).
    path: String,
}

/// An open netCDF file: its variables and global attributes.
#[derive(Clone)]
pub struct NetcdfFile {
    url: String,
    group: String,
    unlimited: Vec<String>,
    options: StoreOptions,
    file: Arc<NcFile>,
    vars: Vec<NcVar>,
    attrs: Map<String, Value>,
}

impl std::fmt::Debug for NetcdfFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetcdfFile")
            .field("url", &self.url)
            .field("variables", &self.vars.len())
            .finish()
    }
}

fn nc_err(path: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Netcdf {
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

/// Open files by URL (absolute path for local ones), shared by every read task of this
/// process.
fn cache() -> &'static Mutex<HashMap<String, Opened>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Opened>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// An open file, and for a remote one the ranged reader under it (whose block cache a
/// second, HDF5-level look at the metadata shares).
#[derive(Clone)]
struct Opened {
    nc: Arc<NcFile>,
    remote: Option<Arc<RangeFile>>,
}

/// Opens `url`: a remote file through ranged reads, else an absolute local path. A local
/// file is cached under its size and modification time, so a file replaced
/// since (a `to_netcdf --overwrite`) is opened again rather than read through a stale map.
fn open_cached(url: &str, options: &StoreOptions) -> Result<Opened> {
    let local = (!is_remote(url))
        .then(|| {
            let path = PathBuf::from(url);
            let meta = std::fs::metadata(&path).map_err(|source| StoreError::Io {
                op: "opening",
                path: path.clone(),
                source,
            })?;
            if !meta.is_file() {
                return Err(nc_err(url, "not a regular file"));
            }
            Ok((path, meta))
        })
        .transpose()?;
    let key = match &local {
        Some((_, meta)) => format!("{url}\0{}\0{:?}", meta.len(), meta.modified().ok()),
        None => url.to_owned(),
    };
    if let Ok(c) = cache().lock()
        && let Some(f) = c.get(&key)
    {
        return Ok(f.clone());
    }
    let f = match &local {
        None => {
            let storage = Arc::new(RangeFile::open(url, options)?);
            Opened {
                nc: Arc::new(
                    NcFile::from_storage_with_options(storage.clone(), nc_options())
                        .map_err(|e| nc_err(url, e))?,
                ),
                remote: Some(storage),
            }
        }
        Some((path, _)) => Opened {
            nc: Arc::new(
                NcFile::open_with_options(path, nc_options()).map_err(|e| nc_err(url, e))?,
            ),
            remote: None,
        },
    };
    if let Ok(mut c) = cache().lock() {
        // one entry per URL: a replaced file's old map is dropped with its entry
        c.retain(|k, _| k.split('\0').next() != Some(url));
        c.insert(key, f.clone());
    }
    Ok(f)
}

/// How files are opened: netcdf-reader's defaults, but deflate decoded by
/// [`inflate_chunk`].
fn nc_options() -> netcdf_reader::NcOpenOptions {
    let mut filters = hdf5_reader::FilterRegistry::new();
    filters.register(
        hdf5_reader::messages::filter_pipeline::FILTER_DEFLATE,
        Box::new(|_, data, _| inflate_chunk(data)),
    );
    netcdf_reader::NcOpenOptions {
        filter_registry: Some(filters),
        ..netcdf_reader::NcOpenOptions::default()
    }
}

/// Inflates one deflated HDF5 chunk. hdf5-reader 0.9's own deflate stops at the decoded
/// chunk's size plus one byte, which cuts off the 4-byte Fletcher-32 checksum netCDF-C puts
/// after the data (`fletcher32=True` with `zlib=True`: checksum, then deflate), so such
/// chunks failed their checksum. Here the output is bounded by deflate's largest ratio
/// (1032:1) instead; the decoded length is checked by the reader afterwards.
fn inflate_chunk(data: &[u8]) -> hdf5_reader::error::Result<Vec<u8>> {
    use std::io::Read;
    let cap = (data.len() as u64).saturating_mul(1032).saturating_add(64);
    let mut out = Vec::with_capacity(data.len().saturating_mul(2).min(64 << 20));
    flate2::read::ZlibDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| {
            hdf5_reader::error::Error::DecompressionError(format!(
                "DEFLATE decompression failed: {e}"
            ))
        })?;
    // the chunk cache keeps this buffer: no spare capacity in it
    out.shrink_to_fit();
    Ok(out)
}

fn dtype_of(t: &NcType) -> Option<DType> {
    Some(match t {
        NcType::Byte => DType::I8,
        NcType::UByte => DType::U8,
        NcType::Short => DType::I16,
        NcType::UShort => DType::U16,
        NcType::Int => DType::I32,
        NcType::UInt => DType::U32,
        NcType::Int64 => DType::I64,
        NcType::UInt64 => DType::U64,
        NcType::Float => DType::F32,
        NcType::Double => DType::F64,
        _ => return None,
    })
}

/// A float as JSON, with xarray's spellings of the values JSON lacks.
fn float_json(x: f64) -> Value {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

/// An attribute value as JSON: one number as a number, several as a list, text as a string.
fn attr_json(v: &NcAttrValue) -> Value {
    fn list<T: Copy>(v: &[T], f: impl Fn(T) -> Value) -> Value {
        match v {
            [one] => f(*one),
            many => Value::Array(many.iter().map(|&x| f(x)).collect()),
        }
    }
    match v {
        NcAttrValue::Chars(s) => json!(s.trim_end_matches('\0')),
        NcAttrValue::Strings(s) => match s.as_slice() {
            [one] => json!(one),
            many => json!(many),
        },
        NcAttrValue::Bytes(v) => list(v, |x| json!(x)),
        NcAttrValue::UBytes(v) => list(v, |x| json!(x)),
        NcAttrValue::Shorts(v) => list(v, |x| json!(x)),
        NcAttrValue::UShorts(v) => list(v, |x| json!(x)),
        NcAttrValue::Ints(v) => list(v, |x| json!(x)),
        NcAttrValue::UInts(v) => list(v, |x| json!(x)),
        NcAttrValue::Int64s(v) => list(v, |x| json!(x)),
        NcAttrValue::UInt64s(v) => list(v, |x| json!(x)),
        NcAttrValue::Floats(v) => list(v, |x| float_json(f64::from(x))),
        NcAttrValue::Doubles(v) => list(v, float_json),
    }
}

/// Attributes netCDF-C and HDF5 keep for themselves (xarray does not show them either).
fn hidden(name: &str) -> bool {
    name.starts_with("_Netcdf4")
        || name.starts_with("_nc3")
        || matches!(
            name,
            "DIMENSION_LIST" | "REFERENCE_LIST" | "CLASS" | "NAME" | "_NCProperties" | "_IsNetcdf4"
        )
}

fn attrs_json(attrs: &[netcdf_reader::NcAttribute]) -> Map<String, Value> {
    attrs
        .iter()
        .filter(|a| !hidden(&a.name))
        .map(|a| (a.name.clone(), attr_json(&a.value)))
        .collect()
}

impl NetcdfFile {
    /// [`NetcdfFile::open_with`] with default (read-only) store options.
    pub fn open(url: &str) -> Result<NetcdfFile> {
        NetcdfFile::open_with(url, &StoreOptions::read_only())
    }

    /// Opens a netCDF file and reads its metadata: a local path or `file://` URL, or an
    /// `http(s)://`, `s3://`, `gs://` or `az://` URL read by byte ranges with `options`.
    pub fn open_with(url: &str, options: &StoreOptions) -> Result<NetcdfFile> {
        NetcdfFile::open_group(url, options, "")
    }

    /// [`NetcdfFile::open_with`] of one group of the file (`""` or `/`: the root;
    /// `forecast/member1`: a nested group), as xarray's `group=`: its variables and
    /// attributes.
    pub fn open_group(url: &str, options: &StoreOptions, group: &str) -> Result<NetcdfFile> {
        let url = if is_remote(url) {
            url.to_owned()
        } else {
            let path = match url.strip_prefix("file://") {
                Some(p) => PathBuf::from(p),
                None if url.contains("://") => {
                    return Err(StoreError::Url {
                        url: url.to_owned(),
                        detail: "unsupported scheme for a netCDF file (use a path, file://, \
                                 http(s)://, s3://, gs://, az://, abfs:// or abfss://)"
                            .into(),
                    });
                }
                None => PathBuf::from(url),
            };
            let abs = std::path::absolute(&path).map_err(|source| StoreError::Io {
                op: "resolving",
                path: path.clone(),
                source,
            })?;
            abs.to_str()
                .ok_or_else(|| nc_err(&abs.display().to_string(), "the path is not UTF-8"))?
                .to_owned()
        };
        let path = url.as_str();
        let opened = open_cached(path, options)?;
        let file = opened.nc.clone();
        // netCDF-4: the HDF5 layer again, for what netcdf-reader does not tell (filters,
        // layout); a file it cannot parse only loses these encodings
        let hdf5 = match file.format() {
            NcFormat::Nc4 | NcFormat::Nc4Classic => match &opened.remote {
                Some(r) => hdf5_reader::Hdf5File::from_storage(r.clone()).ok(),
                None => hdf5_reader::Hdf5File::open(path).ok(),
            },
            _ => None,
        };
        let group = group.trim_matches('/').to_owned();
        let g = if group.is_empty() {
            file.root_group()
        } else {
            file.group(&group)
        }
        .map_err(|e| {
            let have = file
                .root_group()
                .map(|r| group_names(r, ""))
                .unwrap_or_default();
            nc_err(
                path,
                format!("group {group:?}: {e} (groups in the file: {have:?})"),
            )
        })?;
        let mut vars = Vec::new();
        for v in &g.variables {
            let mut dims: Vec<String> = v.dimensions().iter().map(|d| d.name.clone()).collect();
            let mut shape: Vec<usize> = v
                .shape()
                .iter()
                .map(|&n| usize::try_from(n).unwrap_or(usize::MAX))
                .collect();
            let text = matches!(v.dtype(), NcType::String | NcType::Char);
            let var_path = if group.is_empty() {
                v.name().to_owned()
            } else {
                format!("{group}/{}", v.name())
            };
            let mut encoding = Map::new();
            if !matches!(v.dtype(), NcType::String) {
                // xarray reports no storage for variable-length strings
                if let Some(h) = &hdf5 {
                    encoding = hdf5_encoding(h, &var_path);
                }
                encoding.insert("original_shape".into(), json!(shape));
            }
            if matches!(v.dtype(), NcType::Char) && !dims.is_empty() {
                // the last dimension is the string length
                if let Some(d) = dims.pop() {
                    encoding.insert("char_dim_name".into(), json!(d));
                }
                shape.pop();
            }
            vars.push(NcVar {
                name: v.name().to_owned(),
                dims,
                shape,
                dtype: dtype_of(v.dtype()),
                nc_type: format!("{:?}", v.dtype()),
                attrs: attrs_json(v.attributes()),
                text,
                encoding,
                path: var_path,
            });
        }
        let attrs = attrs_json(&g.attributes);
        // unlimited dimensions used by the group's variables (they may be defined above it)
        let mut unlimited: Vec<String> = Vec::new();
        for v in &g.variables {
            for d in v.dimensions() {
                if d.is_unlimited && !unlimited.contains(&d.name) {
                    unlimited.push(d.name.clone());
                }
            }
        }
        Ok(NetcdfFile {
            url,
            group,
            unlimited,
            options: options.clone(),
            file,
            vars,
            attrs,
        })
    }

    /// The file's absolute path, or its URL when remote.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The unlimited dimensions of the group's variables.
    pub fn unlimited_dims(&self) -> &[String] {
        &self.unlimited
    }

    /// The group read (`""`: the root).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The values of a text variable (see [`NcVar::text`]), one string per element in
    /// row-major order, trailing NULs of char arrays removed.
    pub fn read_strings(&self, name: &str) -> Result<Vec<String>> {
        let v = self.var(name)?;
        if !v.text {
            return Err(nc_err(
                &self.url,
                format!("variable {name:?} is of type {}, not text", v.nc_type),
            ));
        }
        let values = self
            .file
            .read_variable_as_strings(&v.path)
            .map_err(|e| nc_err(&self.url, format!("variable {name:?}: {e}")))?;
        let want: usize = v.shape.iter().product();
        if values.len() != want {
            return Err(nc_err(
                &self.url,
                format!(
                    "variable {name:?}: read {} strings, its shape {:?} holds {want}",
                    values.len(),
                    v.shape
                ),
            ));
        }
        Ok(values
            .into_iter()
            .map(|s| s.trim_end_matches('\0').to_owned())
            .collect())
    }

    /// The variables, in file order.
    pub fn variables(&self) -> &[NcVar] {
        &self.vars
    }

    /// The global attributes.
    pub fn attrs(&self) -> &Map<String, Value> {
        &self.attrs
    }

    fn var(&self, name: &str) -> Result<&NcVar> {
        self.vars
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| nc_err(&self.url, format!("no variable {name:?}")))
    }

    /// The block shape of `name`: its HDF5 chunks (the whole array when contiguous or
    /// netCDF-3), with whole chunks grouped along the first dimension up to [`BLOCK_BYTES`];
    /// and the rows of one streamed slab (whole chunks up to `slab_bytes`).
    fn block_shape(&self, v: &NcVar, dtype: DType, slab_bytes: usize) -> (Vec<usize>, usize) {
        let chunk: Vec<usize> = self
            .file
            .iter_variable_chunks(&v.path)
            .ok()
            .and_then(|mut it| it.next())
            .and_then(|c| c.ok())
            .map(|c| {
                c.shape()
                    .iter()
                    .map(|&n| usize::try_from(n).unwrap_or(1).max(1))
                    .collect::<Vec<usize>>()
            })
            .filter(|c| c.len() == v.shape.len())
            .unwrap_or_else(|| {
                // contiguous: whole rows along the first dimension
                let mut s = v.shape.clone();
                if let Some(first) = s.first_mut() {
                    *first = 1;
                }
                s
            });
        let mut block: Vec<usize> = chunk
            .iter()
            .zip(&v.shape)
            .map(|(&c, &n)| c.min(n.max(1)))
            .collect();
        let mut slab_rows = 1;
        if let Some(&rows) = block.first() {
            let row_bytes = block[1..]
                .iter()
                .fold(dtype.size(), |a, &c| a.saturating_mul(c))
                .max(1);
            let chunk_bytes = row_bytes.saturating_mul(rows).max(1);
            let per = (BLOCK_BYTES / chunk_bytes).max(1);
            block[0] = rows.saturating_mul(per).min(v.shape[0].max(1));
            slab_rows = rows
                .saturating_mul((slab_bytes / chunk_bytes).max(1))
                .max(1);
        }
        (block, slab_rows)
    }

    /// A lazy array over variable `name`.
    pub fn to_chunked(&self, name: &str) -> Result<ChunkedArray> {
        self.to_chunked_with_slabs(name, SLAB_BYTES)
    }

    /// [`NetcdfFile::to_chunked`] whose streamed reads hold about `slab_bytes` (whole HDF5
    /// chunk rows, at least one) at a time.
    pub fn to_chunked_with_slabs(&self, name: &str, slab_bytes: usize) -> Result<ChunkedArray> {
        let v = self.var(name)?;
        let dtype = v.dtype.ok_or_else(|| {
            nc_err(
                &self.url,
                format!(
                    "variable {name:?} is of type {}, which gridflow does not read",
                    v.nc_type
                ),
            )
        })?;
        let (block, slab_rows) = self.block_shape(v, dtype, slab_bytes);
        let chunks: Vec<Vec<usize>> = v
            .shape
            .iter()
            .zip(&block)
            .map(|(&n, &b)| {
                if n == 0 {
                    vec![0]
                } else {
                    let mut c = vec![b; n / b];
                    if n % b != 0 {
                        c.push(n % b);
                    }
                    c
                }
            })
            .collect();
        let source = NetcdfSource {
            spec: SourceSpec {
                url: self.url.clone(),
                options: self.options.clone(),
                var: v.path.clone(),
                shape: v.shape.clone(),
                block,
                dtype: dtype.name().to_owned(),
                slab_rows,
            },
            dtype,
            file: OnceLock::new(),
        };
        Ok(ChunkedArray::from_source(
            Arc::new(source),
            &v.shape,
            chunks,
            dtype,
        )?)
    }
}

/// What a `"netcdf"` read task needs to rebuild its source in any process.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct SourceSpec {
    /// An absolute local path or a remote URL.
    url: String,
    options: StoreOptions,
    var: String,
    shape: Vec<usize>,
    block: Vec<usize>,
    dtype: String,
    /// Rows of one streamed slab: whole HDF5 chunks along the first dimension, so slab
    /// boundaries fall on chunk boundaries and no chunk is decoded twice.
    #[serde(default = "one")]
    slab_rows: usize,
}

fn one() -> usize {
    1
}

/// Reads the blocks of one netCDF variable by hyperslab.
struct NetcdfSource {
    spec: SourceSpec,
    dtype: DType,
    file: OnceLock<Arc<NcFile>>,
}

impl std::fmt::Debug for NetcdfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetcdfSource")
            .field("spec", &self.spec)
            .finish()
    }
}

impl NetcdfSource {
    fn file(&self) -> Result<&Arc<NcFile>> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let f = open_cached(&self.spec.url, &self.spec.options)?.nc;
        Ok(self.file.get_or_init(|| f))
    }

    fn region(&self, block: &[usize]) -> Option<Vec<std::ops::Range<usize>>> {
        (block.len() == self.spec.shape.len()).then(|| {
            block
                .iter()
                .zip(&self.spec.block)
                .zip(&self.spec.shape)
                .map(|((&b, &s), &n)| {
                    let start = b.saturating_mul(s).min(n);
                    start..start.saturating_add(s).min(n)
                })
                .collect()
        })
    }
}

impl ChunkSource for NetcdfSource {
    fn kind(&self) -> &str {
        "netcdf"
    }

    fn spec(&self) -> String {
        serde_json::to_string(&self.spec).unwrap_or_default()
    }

    fn read_block(&self, block: &[usize]) -> gridflow_array::Result<Chunk> {
        let path = self.spec.url.as_str();
        let region = self
            .region(block)
            .ok_or_else(|| nc_err(path, format!("block index {block:?} has the wrong length")))?;
        self.read_region(block, &region)
    }

    fn block_shape(&self, block: &[usize]) -> Option<Vec<usize>> {
        self.region(block)
            .map(|r| r.iter().map(|x| x.len()).collect())
    }

    fn read_block_slabs(
        &self,
        block: &[usize],
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> gridflow_array::Result<()> {
        self.read_rows_slabs(block, 0..usize::MAX, visit)
    }

    fn read_rows_slabs(
        &self,
        block: &[usize],
        rows: std::ops::Range<usize>,
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> gridflow_array::Result<()> {
        let path = self.spec.url.as_str();
        let region = self
            .region(block)
            .ok_or_else(|| nc_err(path, format!("block index {block:?} has the wrong length")))?;
        let Some(first) = region.first().cloned() else {
            // a 0-d variable: one slab
            return visit(self.read_region(block, &region)?);
        };
        let step = self.spec.slab_rows.max(1);
        let hi = first.start.saturating_add(rows.end.min(first.len()));
        let mut at = first.start.saturating_add(rows.start.min(first.len()));
        while at < hi {
            // slab ends on the next multiple of `step` rows of the variable (chunk boundaries)
            let end = ((at / step).saturating_add(1).saturating_mul(step)).min(hi);
            let mut part = region.clone();
            part[0] = at..end;
            visit(self.read_region(block, &part)?)?;
            at = end;
        }
        Ok(())
    }
}

impl NetcdfSource {
    /// Reads the hyperslab `region` (absolute ranges) of the variable.
    fn read_region(
        &self,
        block: &[usize],
        region: &[std::ops::Range<usize>],
    ) -> gridflow_array::Result<Chunk> {
        let path = self.spec.url.as_str();
        let sel = NcSliceInfo {
            selections: region
                .iter()
                .map(|r| NcSliceInfoElem::Slice {
                    start: r.start as u64,
                    end: r.end as u64,
                    step: 1,
                })
                .collect(),
        };
        let file = self.file()?;
        let var = &self.spec.var;
        let fail = |e: netcdf_reader::Error| {
            nc_err(path, format!("variable {var:?}, block {block:?}: {e}"))
        };
        macro_rules! rd {
            ($t:ty, $v:ident) => {
                Chunk::$v(file.read_variable_slice::<$t>(var, &sel).map_err(fail)?)
            };
        }
        let chunk = match self.dtype {
            DType::I8 => rd!(i8, I8),
            DType::U8 => rd!(u8, U8),
            DType::I16 => rd!(i16, I16),
            DType::U16 => rd!(u16, U16),
            DType::I32 => rd!(i32, I32),
            DType::U32 => rd!(u32, U32),
            DType::I64 => rd!(i64, I64),
            DType::U64 => rd!(u64, U64),
            DType::F32 => rd!(f32, F32),
            DType::F64 => rd!(f64, F64),
            DType::Bool => {
                return Err(nc_err(path, "netCDF has no boolean type").into());
            }
        };
        let want: Vec<usize> = region.iter().map(|r| r.len()).collect();
        if chunk.shape() != want.as_slice() {
            return Err(nc_err(
                path,
                format!(
                    "variable {var:?}, block {block:?}: read shape {:?}, expected {want:?}",
                    chunk.shape()
                ),
            )
            .into());
        }
        Ok(chunk)
    }
}

/// Rebuilds a `"netcdf"` source from its spec (registered by [`crate::register`]).
pub(crate) fn source_from_spec(spec: &str) -> Result<Arc<dyn ChunkSource>> {
    let s: SourceSpec = serde_json::from_str(spec).map_err(|e| StoreError::Url {
        url: spec.chars().take(200).collect(),
        detail: format!("not a netcdf source spec: {e}"),
    })?;
    let dtype = DType::parse(&s.dtype).ok_or_else(|| StoreError::Url {
        url: s.url.clone(),
        detail: format!("unknown dtype {:?} in a netcdf source spec", s.dtype),
    })?;
    Ok(Arc::new(NetcdfSource {
        spec: s,
        dtype,
        file: OnceLock::new(),
    }))
}

/// Filter ids netCDF-C names in xarray's encoding besides HDF5's own (deflate, shuffle,
/// fletcher32, szip): the registered zstd, bzip2 and blosc filters.
const FILTER_ZSTD: u16 = 32015;
const FILTER_BZIP2: u16 = 307;
const FILTER_BLOSC: u16 = 32001;

/// A netCDF-4 variable's storage as xarray's netcdf4 engine reports it (netCDF4-python's
/// `filters()` and `chunking()`): `zlib`, `szip`, `zstd`, `bzip2`, `blosc`, `shuffle`,
/// `complevel`, `fletcher32`, `contiguous`, `chunksizes` (`null` unless chunked). Empty when
/// the dataset's header cannot be read.
fn hdf5_encoding(h: &hdf5_reader::Hdf5File, path: &str) -> Map<String, Value> {
    use hdf5_reader::messages::HdfMessage;
    use hdf5_reader::messages::filter_pipeline::{
        FILTER_DEFLATE, FILTER_FLETCHER32, FILTER_SHUFFLE, FILTER_SZIP,
    };
    let mut out = Map::new();
    let Some(header) = h
        .dataset(path)
        .ok()
        .and_then(|d| h.get_or_parse_header(d.address()).ok())
    else {
        return out;
    };
    let mut filters = Vec::new();
    let mut chunks: Option<Vec<u32>> = None;
    let mut contiguous = false;
    for m in &header.messages {
        match m {
            HdfMessage::FilterPipeline(p) => filters.extend(p.filters.iter().cloned()),
            HdfMessage::DataLayout(l) => match &l.layout {
                hdf5_reader::messages::layout::DataLayout::Chunked { dims, .. } => {
                    chunks = Some(dims.clone());
                }
                hdf5_reader::messages::layout::DataLayout::Contiguous { .. } => contiguous = true,
                hdf5_reader::messages::layout::DataLayout::Compact { .. } => {}
            },
            _ => {}
        }
    }
    let has = |id: u16| filters.iter().any(|f| f.id == id);
    // netCDF4-python reports the last compressor's level (deflate's, zstd's or bzip2's)
    let complevel = filters
        .iter()
        .filter(|f| matches!(f.id, FILTER_DEFLATE | FILTER_ZSTD | FILTER_BZIP2))
        .filter_map(|f| f.client_data.first().copied())
        .next_back()
        .unwrap_or(0);
    out.insert("zlib".into(), json!(has(FILTER_DEFLATE)));
    out.insert("szip".into(), json!(has(FILTER_SZIP)));
    out.insert("zstd".into(), json!(has(FILTER_ZSTD)));
    out.insert("bzip2".into(), json!(has(FILTER_BZIP2)));
    out.insert("blosc".into(), json!(has(FILTER_BLOSC)));
    out.insert("shuffle".into(), json!(has(FILTER_SHUFFLE)));
    out.insert("complevel".into(), json!(complevel));
    out.insert("fletcher32".into(), json!(has(FILTER_FLETCHER32)));
    out.insert("contiguous".into(), json!(contiguous));
    out.insert("chunksizes".into(), json!(chunks));
    out
}

/// Every group path under `g` (for messages).
fn group_names(g: &netcdf_reader::NcGroup, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in &g.groups {
        let p = if prefix.is_empty() {
            sub.name.clone()
        } else {
            format!("{prefix}/{}", sub.name)
        };
        let below = group_names(sub, &p);
        out.push(p);
        out.extend(below);
    }
    out
}
