//! netCDF files on HTTP, S3, GCS or Azure, read by byte ranges: a [`Storage`] for the
//! netCDF/HDF5 reader whose reads become ranged requests through gridflow's own store
//! backends (the same clients, credentials and time-outs as Zarr stores).
//!
//! The HDF5 parser reads metadata in many small pieces (superblock, object headers, B-tree
//! nodes, heaps); one request each would be slow, so small reads go through a cache of
//! aligned [`BLOCK`]-byte blocks. Reads of at least a block (chunk data) are fetched as they
//! are, uncached, so a computation's memory is not held by the cache.

use crate::storage::{Storage as StoreBackend, StoreOptions, StoreUrl};
use hdf5_reader::storage::{Storage, StorageBuffer};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use zarrs::storage::{ReadableStorageTraits, StoreKey, byte_range::ByteRange};

/// Size of the cached blocks small reads are served from.
pub const BLOCK: u64 = 64 << 10;
/// How many blocks one file keeps (4 MiB).
const CACHED_BLOCKS: usize = 64;

/// The URL schemes read by ranges rather than from local disk.
const REMOTE: [&str; 7] = ["http", "https", "s3", "gs", "az", "abfs", "abfss"];

/// Whether `url` names a remote file (read by ranges) rather than a local one.
pub fn is_remote(url: &str) -> bool {
    REMOTE
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|r| r.starts_with("://")))
}

/// One remote file as random-access bytes.
pub(crate) struct RangeFile {
    url: String,
    backend: StoreBackend,
    key: StoreKey,
    len: u64,
    cache: Mutex<Blocks>,
}

#[derive(Default)]
struct Blocks {
    map: HashMap<u64, Arc<[u8]>>,
    order: VecDeque<u64>,
}

fn io_err(detail: String) -> hdf5_reader::error::Error {
    hdf5_reader::error::Error::Io(std::io::Error::other(detail))
}

impl RangeFile {
    /// Opens `url` (its size is asked for once, by a HEAD or the object's metadata).
    pub(crate) fn open(url: &str, options: &StoreOptions) -> crate::Result<RangeFile> {
        let bad = |detail: String| crate::StoreError::Url {
            url: url.to_owned(),
            detail,
        };
        if url.contains('?') {
            return Err(bad("query strings are not supported".into()));
        }
        let (dir, name) = url
            .rsplit_once('/')
            .filter(|(d, n)| !n.is_empty() && !d.ends_with('/'))
            .ok_or_else(|| bad("the URL names no file".into()))?;
        let backend = StoreBackend::new(&StoreUrl::parse(dir)?, options)?;
        let key = StoreKey::new(name).map_err(|e| bad(e.to_string()))?;
        let len = backend
            .size_key(&key)
            .map_err(|e| crate::StoreError::Storage {
                url: url.to_owned(),
                detail: e.to_string(),
            })?
            .ok_or_else(|| crate::StoreError::NotFound {
                url: dir.to_owned(),
                what: "file",
                path: name.to_owned(),
            })?;
        Ok(RangeFile {
            url: url.to_owned(),
            backend,
            key,
            len,
            cache: Mutex::new(Blocks::default()),
        })
    }

    /// Fetches `len` bytes at `offset` with one ranged request.
    fn fetch(&self, offset: u64, len: u64) -> hdf5_reader::error::Result<Vec<u8>> {
        let range = ByteRange::FromStart(offset, Some(len));
        let got = self
            .backend
            .get_partial_many(&self.key, Box::new(std::iter::once(range)))
            .and_then(|g| match g {
                Some(mut it) => it.next().transpose(),
                None => Ok(None),
            })
            .map_err(|e| io_err(format!("{}: bytes {offset}+{len}: {e}", self.url)))?
            .ok_or_else(|| io_err(format!("{}: the file is gone", self.url)))?;
        if got.len() as u64 != len {
            return Err(io_err(format!(
                "{}: asked for {len} bytes at {offset}, got {} (the file changed?)",
                self.url,
                got.len()
            )));
        }
        Ok(got.to_vec())
    }

    /// The cached block starting at `start`, fetched when missing.
    fn block(&self, start: u64) -> hdf5_reader::error::Result<Arc<[u8]>> {
        if let Ok(c) = self.cache.lock()
            && let Some(b) = c.map.get(&start)
        {
            return Ok(b.clone());
        }
        let len = BLOCK.min(self.len.saturating_sub(start));
        let bytes: Arc<[u8]> = Arc::from(self.fetch(start, len)?);
        if let Ok(mut c) = self.cache.lock()
            && !c.map.contains_key(&start)
        {
            if c.order.len() >= CACHED_BLOCKS
                && let Some(old) = c.order.pop_front()
            {
                c.map.remove(&old);
            }
            c.order.push_back(start);
            c.map.insert(start, bytes.clone());
        }
        Ok(bytes)
    }
}

impl Storage for RangeFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_range(&self, offset: u64, len: usize) -> hdf5_reader::error::Result<StorageBuffer> {
        let n = len as u64;
        let end = offset
            .checked_add(n)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io_err(format!(
                    "{}: bytes {offset}+{len} are past the end of the file ({} bytes)",
                    self.url, self.len
                ))
            })?;
        if n >= BLOCK {
            return Ok(StorageBuffer::from_vec(self.fetch(offset, n)?));
        }
        let mut out = Vec::with_capacity(len);
        let mut at = offset;
        while at < end {
            let start = at - at % BLOCK;
            let block = self.block(start)?;
            let from = usize::try_from(at - start).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(start + BLOCK) - start).unwrap_or(usize::MAX);
            let piece = block.get(from..to).ok_or_else(|| {
                io_err(format!(
                    "{}: block at {start} is {} bytes, short of {to}",
                    self.url,
                    block.len()
                ))
            })?;
            out.extend_from_slice(piece);
            at = start + to as u64;
        }
        Ok(StorageBuffer::from_vec(out))
    }
}

/// The first `n` bytes (fewer for a shorter file) of the remote file `url`, for telling what
/// it is.
pub fn read_head(url: &str, options: &StoreOptions, n: u64) -> crate::Result<Vec<u8>> {
    let file = RangeFile::open(url, options)?;
    file.fetch(0, n.min(file.len))
        .map_err(|e| crate::StoreError::Storage {
            url: url.to_owned(),
            detail: e.to_string(),
        })
}
