//! Task keys and deterministic tokens.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The name of a task's output: a layer name plus a block index, like Dask's
/// `("sum-9f2c...", 0, 3)`.
///
/// Layer names are built with [`tokenize`] from an operation and its inputs, so the same
/// computation on the same inputs always gets the same key and is computed once.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    name: Arc<str>,
    index: Box<[u32]>,
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
        Key {
            name: name.into(),
            index: index.into(),
        }
    }

    /// A key sharing an already-allocated layer name (cheap: no string copy).
    pub fn with_shared_name(name: &Arc<str>, index: &[u32]) -> Key {
        Key {
            name: Arc::clone(name),
            index: index.into(),
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
