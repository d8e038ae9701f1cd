//! Named kernels for `map_blocks` and named chunk sources for lazy reads.
//!
//! Tasks are data, so a task cannot hold a closure. User code registers a function under a
//! name (in every process that runs tasks, e.g. every worker), and tasks refer to it by name.

use crate::{ArrayError, Chunk, Result};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock, RwLock};

/// A block function for [`crate::ChunkedArray::map_blocks`]: input blocks and JSON parameters
/// in, one block out.
pub type BlockKernel = Arc<dyn Fn(&[&Chunk], &serde_json::Value) -> Result<Chunk> + Send + Sync>;

fn kernels() -> &'static RwLock<BTreeMap<String, BlockKernel>> {
    static K: OnceLock<RwLock<BTreeMap<String, BlockKernel>>> = OnceLock::new();
    K.get_or_init(|| RwLock::new(BTreeMap::new()))
}

/// Registers `kernel` under `name` (replacing any previous one of that name).
///
/// ```
/// use gridflow_array::{register_kernel, Chunk};
/// register_kernel("double", |blocks: &[&Chunk], _params: &serde_json::Value| {
///     gridflow_array::kernels::binary_scalar(
///         gridflow_array::kernels::BinaryOp::Mul, blocks[0], gridflow_array::Scalar::Int(2), false)
/// });
/// ```
pub fn register_kernel<F>(name: &str, kernel: F)
where
    F: Fn(&[&Chunk], &serde_json::Value) -> Result<Chunk> + Send + Sync + 'static,
{
    let mut k = kernels()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    k.insert(name.to_owned(), Arc::new(kernel));
}

/// Looks up a registered kernel.
pub fn kernel(name: &str) -> Result<BlockKernel> {
    let k = kernels()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    k.get(name)
        .cloned()
        .ok_or_else(|| ArrayError::NotRegistered {
            what: "map_blocks kernel",
            name: name.to_owned(),
            hint: hint(k.keys()),
        })
}

fn hint<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        " (none are registered)".into()
    } else {
        format!(" (registered: {})", v.join(", "))
    }
}

/// Where a lazily read array's blocks come from (a Zarr array in a store, for example).
///
/// The store layer implements this. A source is described by a `kind` and a `spec` string
/// (e.g. a URL and an array path) so that read tasks stay plain data: another process
/// rebuilds the source from them through [`register_source_kind`].
pub trait ChunkSource: Send + Sync + Debug {
    /// The registered kind name (e.g. `"zarr"`).
    fn kind(&self) -> &str;
    /// A self-contained description from which the kind's factory rebuilds the source.
    fn spec(&self) -> String;
    /// Reads block `block` (its index in the array's block grid) as a chunk.
    fn read_block(&self, block: &[usize]) -> Result<Chunk>;

    /// Reads block `block` as consecutive slabs of whole rows along axis 0, in order, calling
    /// `visit` with each: the slabs concatenated along axis 0 are `read_block(block)`. A
    /// source that can decode part of a stored chunk at a time (blosc) then holds one slab
    /// (a few MiB) instead of the whole block, so a task that slices or reduces the block
    /// streams it. The default reads the whole block as one slab.
    fn read_block_slabs(
        &self,
        block: &[usize],
        visit: &mut dyn FnMut(Chunk) -> Result<()>,
    ) -> Result<()> {
        visit(self.read_block(block)?)
    }

    /// Like [`ChunkSource::read_block_slabs`], but only the rows `rows` (along axis 0, clipped
    /// to the block) are visited: a source that decodes part of a chunk at a time (blosc)
    /// decodes only the parts holding them. The default cuts them out of every slab.
    fn read_rows_slabs(
        &self,
        block: &[usize],
        rows: std::ops::Range<usize>,
        visit: &mut dyn FnMut(Chunk) -> Result<()>,
    ) -> Result<()> {
        let mut offset = 0usize;
        self.read_block_slabs(block, &mut |slab: Chunk| {
            let n = slab.shape().first().copied().unwrap_or(0);
            let (lo, hi) = (rows.start.max(offset), rows.end.min(offset + n));
            let first = offset;
            offset += n;
            if lo >= hi {
                return Ok(());
            }
            if lo == first && hi == first + n {
                return visit(slab);
            }
            visit(crate::kernels::slice_rows(&slab, lo - first..hi - first)?)
        })
    }

    /// The shape of block `block`, if known without reading it (for memory estimates).
    fn block_shape(&self, _block: &[usize]) -> Option<Vec<usize>> {
        None
    }

    /// About how many decoded bytes one slab of [`ChunkSource::read_block_slabs`] holds, or
    /// `None` when a block is read whole.
    fn slab_bytes(&self) -> Option<usize> {
        None
    }
}

/// Rebuilds a source of some kind from its spec string.
pub type SourceFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn ChunkSource>> + Send + Sync>;

fn factories() -> &'static RwLock<BTreeMap<String, SourceFactory>> {
    static F: OnceLock<RwLock<BTreeMap<String, SourceFactory>>> = OnceLock::new();
    F.get_or_init(|| RwLock::new(BTreeMap::new()))
}

/// Registers how to rebuild sources of `kind` from their spec (needed where read tasks are
/// deserialized, e.g. on remote workers).
pub fn register_source_kind<F>(kind: &str, factory: F)
where
    F: Fn(&str) -> Result<Arc<dyn ChunkSource>> + Send + Sync + 'static,
{
    let mut f = factories()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f.insert(kind.to_owned(), Arc::new(factory));
}

/// Rebuilds a source from its kind and spec.
pub fn open_source(kind: &str, spec: &str) -> Result<Arc<dyn ChunkSource>> {
    let factory = {
        let f = factories()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.get(kind)
            .cloned()
            .ok_or_else(|| ArrayError::NotRegistered {
                what: "chunk source kind",
                name: kind.to_owned(),
                hint: hint(f.keys()),
            })?
    };
    factory(spec)
}

/// A source inside a read task: serialized as (kind, spec), rebuilt on deserialization.
#[derive(Clone, Debug)]
pub struct SourceRef(pub Arc<dyn ChunkSource>);

impl serde::Serialize for SourceRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.0.kind(), self.0.spec()).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SourceRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (kind, spec): (String, String) = serde::Deserialize::deserialize(d)?;
        open_source(&kind, &spec)
            .map(SourceRef)
            .map_err(serde::de::Error::custom)
    }
}
