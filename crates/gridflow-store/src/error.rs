//! The error type of the store layer. Every message names the store URL and, where they
//! apply, the array path and the chunk key.

use thiserror::Error;

/// Everything that can go wrong opening, reading or writing a Zarr store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A store URL that cannot be parsed or is not supported.
    #[error("invalid store URL {url:?}: {detail}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The store backend could not be created (bad options, no runtime...).
    #[error("cannot open zarr store {url}: {detail}")]
    Open {
        /// The store URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// A storage request failed (I/O, HTTP status, time-out) outside any one array.
    #[error("zarr store {url}: {detail}")]
    Storage {
        /// The store URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// No group or array at a path.
    #[error("zarr store {url}: no {what} at {path:?}")]
    NotFound {
        /// The store URL.
        url: String,
        /// `"group"`, `"array"` or `"node"`.
        what: &'static str,
        /// The path inside the store.
        path: String,
    },
    /// Metadata that cannot be parsed or is inconsistent (shape vs chunks, unknown codec...).
    #[error("zarr store {url}, array {path:?}: invalid metadata: {detail}")]
    Metadata {
        /// The store URL.
        url: String,
        /// The array (or group) path.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A metadata document bigger than [`crate::StoreOptions::max_metadata_bytes`], refused
    /// before it was read.
    #[error(
        "zarr store {url}: {key} is {size} bytes, more than the metadata size cap of {limit} bytes; refusing to read it (raise StoreOptions::max_metadata_bytes; gridflow: GRIDFLOW_LIMITS=metadata=SIZE)"
    )]
    TooLarge {
        /// The store URL.
        url: String,
        /// The key of the document.
        key: String,
        /// Its size in bytes.
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
    /// A local path that should hold a file is a FIFO, device, socket or directory.
    #[error(
        "zarr store {url}: {path} is not a regular file (a FIFO, device, socket or directory); only regular files are read"
    )]
    NotRegularFile {
        /// The store URL.
        url: String,
        /// The path on disk.
        path: String,
    },
    /// A data type gridflow has no `DType` for.
    #[error("zarr store {url}, array {path:?}: unsupported data type {dtype}{detail}")]
    UnsupportedDType {
        /// The store URL.
        url: String,
        /// The array path.
        path: String,
        /// The data type as the metadata spells it.
        dtype: String,
        /// Extra explanation (may be empty).
        detail: String,
    },
    /// Reading or decoding one chunk failed (truncated or corrupt bytes, I/O, HTTP...).
    #[error("zarr store {url}, array {path:?}, chunk {key:?}: {detail}")]
    Chunk {
        /// The store URL.
        url: String,
        /// The array path.
        path: String,
        /// The chunk's store key.
        key: String,
        /// What failed.
        detail: String,
    },
    /// Writing failed.
    #[error("zarr store {url}, array {path:?}, key {key:?}: write failed: {detail}")]
    Write {
        /// The store URL.
        url: String,
        /// The array path (empty for the root group).
        path: String,
        /// The key being written.
        key: String,
        /// What failed.
        detail: String,
    },
    /// `WriteMode::Create` found something at the target.
    #[error(
        "zarr store {url}: {path:?} already exists (WriteMode::Create never overwrites; use WriteMode::Overwrite to replace it)"
    )]
    Exists {
        /// The store URL.
        url: String,
        /// The existing node path.
        path: String,
    },
    /// A local file operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done (`"creating"`, `"renaming"`...).
        op: &'static str,
        /// The path it was done to.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An output path where something already is, and the write may not replace it.
    #[error("{} already exists ({what}); nothing was written{hint}", path.display())]
    OutputExists {
        /// The output path (symlinks resolved).
        path: std::path::PathBuf,
        /// What is there (`"a Zarr store"`, `"a file"`...).
        what: &'static str,
        /// How to replace it, if it may be replaced at all (may be empty).
        hint: &'static str,
    },
    /// The output is one of the stores the result is computed from (or inside one, or holds
    /// one): writing would destroy the data before it is read.
    #[error(
        "refusing to write {output}: the result reads from {input}, which {relation}; nothing was written (write to another path)"
    )]
    OutputIsInput {
        /// The output store.
        output: String,
        /// The input store.
        input: String,
        /// How they overlap (`"is the same store"`...).
        relation: &'static str,
    },
    /// A write was attempted on a store opened read-only.
    #[error("zarr store {url} is opened read-only; nothing was written")]
    ReadOnly {
        /// The store URL.
        url: String,
    },
    /// An invalid argument (chunk request, region, dims...).
    #[error("zarr store {url}, array {path:?}: {detail}")]
    Invalid {
        /// The store URL.
        url: String,
        /// The array path.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A kerchunk reference set that cannot be read (bad JSON, bad reference, bad template).
    #[error("kerchunk references {url}: {detail}")]
    References {
        /// The reference file's URL.
        url: String,
        /// What is wrong, naming the key.
        detail: String,
    },
    /// A netCDF file that cannot be read.
    #[error("netCDF file {path}: {detail}")]
    Netcdf {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// A netCDF file that cannot be written.
    #[error("writing netCDF file {path}: {detail}: {source}")]
    NetcdfWrite {
        /// The file.
        path: String,
        /// Which variable or attribute, or which step.
        detail: String,
        /// The writer's error.
        source: netcdf_writer::Error,
    },
    /// A file that is neither a Zarr store nor a reference set gridflow reads.
    #[error("{url}: {detail}")]
    NotAStore {
        /// The path or URL.
        url: String,
        /// What it is, and what gridflow reads instead.
        detail: String,
    },
    /// An error from the array layer (computing the blocks to write, for example).
    #[error(transparent)]
    Array(#[from] gridflow_array::ArrayError),
}

/// The result type of the store layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<StoreError> for gridflow_array::ArrayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Array(a) => a,
            other => gridflow_array::ArrayError::Read(other.to_string()),
        }
    }
}
