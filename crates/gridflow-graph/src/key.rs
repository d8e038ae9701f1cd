//! Task keys and deterministic tokens.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The name of a task's output: a layer name plus a block index, like Dask's
/// `("sum-9f2c...", 0, 3)`.
///
/// Layer names are built with [`tokenize`] from an operation and its inputs, so the same
/// computation on the same inputs always gets the same key and is computed once. A key
/// carries a hash of its name, so hashing and comparing keys does not walk the string, and
/// block indices of up to four dimensions are stored inline (no allocation).
#[derive(Clone)]
pub struct Key {
    name: Arc<str>,
    name_hash: u64,
    index: SmallVec<[u32; 4]>,
}

fn hash_name(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

impl Key {
    /// A key for block `index` of layer `name`.
    ///
    /// ```
    /// use gridflow_graph::Key;
    /// let k = Key::new("ones-1a2b", &[0, 3]);
    /// assert_eq!(k.to_string(), "('ones-1a2b', 0, 3)");
    /// ```
    pub fn new(name: impl Into<Arc<str>>, index: &[u32]) -> Key {
        let name: Arc<str> = name.into();
        Key {
            name_hash: hash_name(&name),
            name,
            index: SmallVec::from_slice(index),
        }
    }

    /// A key sharing an already-allocated layer name (no string copy).
    pub fn with_shared_name(name: &Arc<str>, index: &[u32]) -> Key {
        Key {
            name_hash: hash_name(name),
            name: Arc::clone(name),
            index: SmallVec::from_slice(index),
        }
    }

    /// Another block of the same layer (reuses the name and its hash).
    pub fn sibling(&self, index: &[u32]) -> Key {
        Key {
            name: Arc::clone(&self.name),
            name_hash: self.name_hash,
            index: SmallVec::from_slice(index),
        }
    }

    /// The layer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The layer name as a shared string.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The block index within the layer.
    pub fn index(&self) -> &[u32] {
        &self.index
    }

    /// The operation prefix of the layer name (`"sum"` for `"sum-9f2c"`).
    pub fn prefix(&self) -> &str {
        match self.name.rfind('-') {
            Some(i) if i > 0 => &self.name[..i],
            _ => &self.name,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.name_hash == other.name_hash
            && self.index == other.index
            && (Arc::ptr_eq(&self.name, &other.name) || self.name == other.name)
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.name_hash);
        for i in &self.index {
            state.write_u32(*i);
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        // Blocks of one layer share the name's allocation: skip the string comparison.
        let names = if Arc::ptr_eq(&self.name, &other.name) {
            Ordering::Equal
        } else {
            self.name.cmp(&other.name)
        };
        names.then_with(|| self.index.cmp(&other.index))
    }
}

// On the wire a key is (name, index); the hash is recomputed on arrival.
impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&*self.name, &self.index[..]).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let (name, index): (String, Vec<u32>) = Deserialize::deserialize(d)?;
        Ok(Key::new(name, &index))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "('{}'", self.name)?;
        for i in self.index.iter() {
            write!(f, ", {i}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A deterministic 128-bit token builder (xxh3), stable across runs, processes and machines.
///
/// ```
/// use gridflow_graph::Tokenizer;
/// let a = Tokenizer::new("add").str("x-1").str("y-2").finish();
/// let b = Tokenizer::new("add").str("x-1").str("y-2").finish();
/// assert_eq!(a, b);
/// assert!(a.starts_with("add-"));
/// ```
#[derive(Clone)]
pub struct Tokenizer {
    prefix: String,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl Tokenizer {
    /// Starts a token for an operation called `prefix`.
    pub fn new(prefix: &str) -> Tokenizer {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(prefix.as_bytes());
        Tokenizer {
            prefix: prefix.to_owned(),
            hasher,
        }
    }

    /// Adds raw bytes (length-prefixed, so `"ab","c"` and `"a","bc"` differ).
    pub fn bytes(mut self, b: &[u8]) -> Tokenizer {
        self.hasher.update(&(b.len() as u64).to_le_bytes());
        self.hasher.update(b);
        self
    }

    /// Adds a string.
    pub fn str(self, s: &str) -> Tokenizer {
        self.bytes(s.as_bytes())
    }

    /// Adds an integer.
    pub fn u64(self, v: u64) -> Tokenizer {
        self.bytes(&v.to_le_bytes())
    }

    /// The layer name: `"{prefix}-{32 hex digits}"`.
    pub fn finish(self) -> String {
        format!("{}-{:032x}", self.prefix, self.hasher.digest128())
    }
}

/// Tokenizes a prefix and a list of parts in one call.
pub fn tokenize(prefix: &str, parts: &[&[u8]]) -> String {
    parts
        .iter()
        .fold(Tokenizer::new(prefix), |t, p| t.bytes(p))
        .finish()
}
