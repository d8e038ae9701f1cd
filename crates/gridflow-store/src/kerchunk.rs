//! kerchunk reference sets as read-only Zarr stores: every key of the store is either inline
//! data (text, or `base64:`) or a byte range `[url, offset, length]` (or a whole file `[url]`)
//! of another file, read by a ranged request through the ordinary storage backends (local
//! disk, HTTP, S3, GCS, Azure).
//!
//! Reads JSON version 0 (a flat `{key: value}` object) and version 1 (`{"version": 1,
//! "templates": {...}, "refs": {...}, "gen": [...]}`). Templates are `{{name}}` in target
//! URLs; `gen` entries expand over integer ranges or lists, with `{{...}}` holding a name or
//! integer arithmetic on names (`+ - * // % ( )`). Relative target paths are resolved against
//! the directory of the reference file (kerchunk writes whatever path it was given).

use crate::error::{Result, StoreError};
use crate::storage::{Storage, StoreOptions, StoreUrl};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use zarrs::storage::byte_range::ByteRange;
use zarrs::storage::{Bytes, MaybeBytes, ReadableStorageTraits, StorageError, StoreKey};

/// Largest reference file read (JSON), in bytes: reference sets of big collections are tens
/// of MB; this refuses a wrong file before it fills memory.
pub const MAX_REFERENCE_BYTES: u64 = 1 << 30;

/// Most keys one `gen` entry may generate (a typo in a range must not allocate forever).
const MAX_GENERATED_KEYS: u64 = 50_000_000;

/// Where one key's bytes are.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reference {
    /// The value itself.
    Inline(Bytes),
    /// `length` bytes at `offset` of the file at `url` (`length` `None`: the whole file from
    /// `offset`).
    Range {
        /// The resolved target URL (templates applied, relative paths made absolute).
        url: String,
        /// First byte.
        offset: u64,
        /// Number of bytes; `None` for the rest of the file.
        length: Option<u64>,
    },
}

/// A parsed reference set: the keys of a virtual Zarr store, and the storages of the files
/// they point into (opened on first use, shared between keys).
pub(crate) struct References {
    /// The reference file's URL (for messages).
    source: String,
    refs: BTreeMap<String, Reference>,
    options: StoreOptions,
    targets: Mutex<HashMap<String, Arc<Storage>>>,
}

impl std::fmt::Debug for References {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("References")
            .field("source", &self.source)
            .field("keys", &self.refs.len())
            .finish()
    }
}

/// What a file's first bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// JSON (a kerchunk reference set, if anything).
    Json,
    /// HDF5, hence netCDF-4.
    Hdf5,
    /// netCDF-3 classic, 64-bit offset or 64-bit data (`CDF\x01`, `\x02`, `\x05`).
    NetCdf3,
    /// Anything else.
    Other,
}

/// Recognises a file by its first bytes.
pub fn sniff(head: &[u8]) -> FileKind {
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return FileKind::Hdf5;
    }
    if head.len() >= 4 && head.starts_with(b"CDF") && matches!(head[3], 1 | 2 | 5) {
        return FileKind::NetCdf3;
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => FileKind::Json,
        _ => FileKind::Other,
    }
}

/// Whether `url` names a kerchunk reference set rather than a Zarr store: a local regular
/// file holding JSON, or a remote URL ending in `.json`. A local netCDF/HDF5 file or any
/// other regular file is an error saying what it is.
pub(crate) fn detect(url: &StoreUrl) -> Result<bool> {
    match url {
        StoreUrl::Local(path) => {
            let Ok(meta) = std::fs::metadata(path) else {
                return Ok(false);
            };
            if !meta.is_file() {
                return Ok(false);
            }
            let mut head = [0u8; 64];
            let n = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                .map_err(|source| StoreError::Io {
                    op: "reading",
                    path: path.clone(),
                    source,
                })?;
            let shown = path.display().to_string();
            match sniff(&head[..n]) {
                FileKind::Json => Ok(true),
                FileKind::Hdf5 | FileKind::NetCdf3 => Err(StoreError::NotAStore {
                    url: shown,
                    detail: "a netCDF/HDF5 file, which gridflow does not open as a store; \
                             open kerchunk references to it instead (kerchunk.hdf.SingleHdf5ToZarr)"
                        .into(),
                }),
                FileKind::Other => Err(StoreError::NotAStore {
                    url: shown,
                    detail: "a file that is neither a Zarr store (a directory) nor a kerchunk \
                             reference set (JSON)"
                        .into(),
                }),
            }
        }
        StoreUrl::Http(u) => Ok(u.ends_with(".json")),
        StoreUrl::S3 { prefix, .. }
        | StoreUrl::Gcs { prefix, .. }
        | StoreUrl::Azure { prefix, .. } => Ok(prefix.ends_with(".json")),
    }
}

fn err(source: &str, detail: impl Into<String>) -> StoreError {
    StoreError::References {
        url: source.to_owned(),
        detail: detail.into(),
    }
}

impl References {
    /// Reads and parses the reference file at `url` (a path or URL).
    pub(crate) fn open(url: &StoreUrl, options: &StoreOptions) -> Result<References> {
        let source = url.to_string();
        let text = match url {
            StoreUrl::Local(p) => {
                crate::fetch::read_bytes_capped(&p.to_string_lossy(), options, MAX_REFERENCE_BYTES)?
            }
            _ => crate::fetch::read_bytes_capped(&source, options, MAX_REFERENCE_BYTES)?,
        };
        let json: Value = serde_json::from_slice(&text)
            .map_err(|e| err(&source, format!("not a JSON reference set: {e}")))?;
        References::from_json(&source, &json, options)
    }

    /// Parses a reference set already read; relative target URLs are resolved against the
    /// directory of `source`.
    pub(crate) fn from_json(
        source: &str,
        json: &Value,
        options: &StoreOptions,
    ) -> Result<References> {
        let Value::Object(top) = json else {
            return Err(err(source, "the reference set is not a JSON object"));
        };
        let base = source
            .rsplit_once('/')
            .map(|(d, _)| d.to_owned())
            .unwrap_or_default();
        let version = match top.get("version") {
            None => 0,
            Some(Value::Number(n)) if n.as_u64() == Some(1) => 1,
            Some(v) => {
                return Err(err(
                    source,
                    format!("unsupported reference version {v} (gridflow reads 0 and 1)"),
                ));
            }
        };
        let mut refs = BTreeMap::new();
        if version == 0 {
            for (k, v) in top {
                refs.insert(k.clone(), parse_ref(source, &base, k, v, &Map::new())?);
            }
        } else {
            let templates = match top.get("templates") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(t)) => t.clone(),
                Some(_) => return Err(err(source, "\"templates\" is not an object")),
            };
            match top.get("refs") {
                Some(Value::Object(r)) => {
                    for (k, v) in r {
                        refs.insert(k.clone(), parse_ref(source, &base, k, v, &templates)?);
                    }
                }
                None => {}
                Some(_) => return Err(err(source, "\"refs\" is not an object")),
            }
            match top.get("gen") {
                None | Some(Value::Null) => {}
                Some(Value::Array(gens)) => {
                    for (i, g) in gens.iter().enumerate() {
                        expand_gen(source, &base, i, g, &templates, &mut refs)?;
                    }
                }
                Some(_) => return Err(err(source, "\"gen\" is not a list")),
            }
        }
        if !refs.contains_key(".zgroup") && !refs.contains_key("zarr.json") {
            return Err(err(
                source,
                "no .zgroup or zarr.json key: not a kerchunk reference set of a Zarr group",
            ));
        }
        let mut options = options.clone();
        options.read_only = true;
        Ok(References {
            source: source.to_owned(),
            refs,
            options,
            targets: Mutex::new(HashMap::new()),
        })
    }

    /// The number of keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.refs.len()
    }

    /// The reference of `key`, if the set has it.
    #[cfg(test)]
    pub(crate) fn reference(&self, key: &str) -> Option<&Reference> {
        self.refs.get(key)
    }

    /// The storage holding the file at `url` and the file's key in it.
    fn target(&self, url: &str) -> std::result::Result<(Arc<Storage>, StoreKey), StorageError> {
        let (dir, name) = url
            .rsplit_once('/')
            .filter(|(_, n)| !n.is_empty())
            .ok_or_else(|| {
                StorageError::Other(format!(
                    "kerchunk references {}: target {url:?} names no file",
                    self.source
                ))
            })?;
        let dir = if dir.is_empty() { "/" } else { dir };
        let key = StoreKey::new(name).map_err(|e| {
            StorageError::Other(format!(
                "kerchunk references {}: target {url:?}: {e}",
                self.source
            ))
        })?;
        let mut targets = self
            .targets
            .lock()
            .map_err(|_| StorageError::Other("kerchunk target cache poisoned".into()))?;
        if let Some(s) = targets.get(dir) {
            return Ok((s.clone(), key));
        }
        let parsed = StoreUrl::parse(dir).map_err(|e| {
            StorageError::Other(format!(
                "kerchunk references {}: target {url:?}: {e}",
                self.source
            ))
        })?;
        let storage = Arc::new(Storage::new(&parsed, &self.options).map_err(|e| {
            StorageError::Other(format!(
                "kerchunk references {}: target {url:?}: {e}",
                self.source
            ))
        })?);
        targets.insert(dir.to_owned(), storage.clone());
        Ok((storage, key))
    }

    /// Reads `ranges` (relative to the key's value) of `key`.
    pub(crate) fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> std::result::Result<Option<Vec<Bytes>>, StorageError> {
        let Some(r) = self.refs.get(key) else {
            return Ok(None);
        };
        match r {
            Reference::Inline(b) => {
                let n = b.len() as u64;
                ranges
                    .iter()
                    .map(|r| {
                        let (s, e) = (r.start(n), r.end(n));
                        if s > e || e > n {
                            return Err(StorageError::Other(format!(
                                "kerchunk references {}: byte range {s}..{e} outside the {n} inline bytes of {key:?}",
                                self.source
                            )));
                        }
                        Ok(b.slice(s as usize..e as usize))
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(Some)
            }
            Reference::Range {
                url,
                offset,
                length,
            } => {
                let (storage, file) = self.target(url)?;
                let size = match length {
                    Some(l) => *l,
                    None => storage
                        .size_key(&file)?
                        .ok_or_else(|| self.missing(key, url))?
                        .saturating_sub(*offset),
                };
                let mapped: Vec<ByteRange> = ranges
                    .iter()
                    .map(|r| {
                        let (s, e) = (r.start(size), r.end(size));
                        ByteRange::FromStart(offset.saturating_add(s), Some(e.saturating_sub(s)))
                    })
                    .collect();
                let end = mapped
                    .iter()
                    .map(|r| r.end(u64::MAX))
                    .max()
                    .unwrap_or(*offset);
                let got = storage
                    .get_partial_many(&file, Box::new(mapped.into_iter()))
                    .and_then(|g| match g {
                        Some(it) => it.collect::<std::result::Result<Vec<Bytes>, _>>().map(Some),
                        None => Ok(None),
                    })
                    .map_err(|e| {
                        // say why when the file is too short (local reads fail with EOF)
                        let why = match storage.size_key(&file) {
                            Ok(Some(n)) if n < end => format!(
                                "{url} is {n} bytes, shorter than the reference says (it ends at byte {end})"
                            ),
                            _ => format!("reading {url}: {e}"),
                        };
                        StorageError::Other(format!(
                            "kerchunk references {}: key {key:?}: {why}",
                            self.source
                        ))
                    })?
                    .ok_or_else(|| self.missing(key, url))?;
                for (b, r) in got.iter().zip(ranges) {
                    let want = r.end(size).saturating_sub(r.start(size));
                    if b.len() as u64 != want {
                        return Err(StorageError::Other(format!(
                            "kerchunk references {}: key {key:?}: {url} ended after {} of the {want} bytes at offset {} (the file is shorter than the reference says)",
                            self.source,
                            b.len(),
                            offset.saturating_add(r.start(size))
                        )));
                    }
                }
                Ok(Some(got))
            }
        }
    }

    fn missing(&self, key: &str, url: &str) -> StorageError {
        StorageError::Other(format!(
            "kerchunk references {}: key {key:?} points into {url}, which does not exist",
            self.source
        ))
    }

    /// The whole value of `key`.
    pub(crate) fn get(&self, key: &str) -> std::result::Result<MaybeBytes, StorageError> {
        Ok(self
            .get_ranges(key, &[ByteRange::FromStart(0, None)])?
            .and_then(|v| v.into_iter().next()))
    }

    /// The size of `key`'s value.
    pub(crate) fn size(&self, key: &str) -> std::result::Result<Option<u64>, StorageError> {
        match self.refs.get(key) {
            None => Ok(None),
            Some(Reference::Inline(b)) => Ok(Some(b.len() as u64)),
            Some(Reference::Range {
                length: Some(l), ..
            }) => Ok(Some(*l)),
            Some(Reference::Range {
                url,
                offset,
                length: None,
            }) => {
                let (storage, file) = self.target(url)?;
                Ok(storage.size_key(&file)?.map(|s| s.saturating_sub(*offset)))
            }
        }
    }

    /// One level of keys under `prefix` (`""` or `"a/b/"`): (keys, child prefixes ending in
    /// `/`), sorted.
    pub(crate) fn list_dir(&self, prefix: &str) -> (Vec<String>, Vec<String>) {
        let mut keys = Vec::new();
        let mut dirs: Vec<String> = Vec::new();
        for k in self.refs.keys() {
            let Some(rest) = k.strip_prefix(prefix) else {
                continue;
            };
            match rest.split_once('/') {
                None => keys.push(k.clone()),
                Some((d, _)) => {
                    let d = format!("{prefix}{d}/");
                    if dirs.last() != Some(&d) && !dirs.contains(&d) {
                        dirs.push(d);
                    }
                }
            }
        }
        dirs.sort();
        (keys, dirs)
    }
}

/// Makes a target URL absolute: URLs with a scheme and absolute paths as they are, relative
/// paths against `base` (the reference file's directory).
pub(crate) fn resolve(base: &str, url: &str) -> String {
    if url.contains("://") || url.starts_with('/') || base.is_empty() {
        return url.to_owned();
    }
    let mut base = base.trim_end_matches('/').to_owned();
    let mut rest = url;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("../") {
            if let Some((b, _)) = base.rsplit_once('/')
                && !b.ends_with('/')
                && !b.is_empty()
            {
                base = b.to_owned();
            }
            rest = r;
        } else {
            break;
        }
    }
    format!("{base}/{rest}")
}

/// Parses one reference value.
fn parse_ref(
    source: &str,
    base: &str,
    key: &str,
    v: &Value,
    vars: &Map<String, Value>,
) -> Result<Reference> {
    let bad = |detail: String| err(source, format!("key {key:?}: {detail}"));
    match v {
        Value::String(s) => match s.strip_prefix("base64:") {
            Some(b64) => base64_decode(b64)
                .map(|b| Reference::Inline(Bytes::from(b)))
                .map_err(|e| bad(format!("bad base64 data: {e}"))),
            None => Ok(Reference::Inline(Bytes::from(s.clone().into_bytes()))),
        },
        // inline JSON values (zarr metadata kept as objects by some writers)
        Value::Object(_) => Ok(Reference::Inline(Bytes::from(v.to_string().into_bytes()))),
        Value::Array(parts) => {
            let url = match parts.first() {
                Some(Value::String(u)) => render(u, vars).map_err(bad)?,
                // `[null, offset, length]`: kerchunk's "no file" (a missing chunk)
                Some(Value::Null) | None => {
                    return Err(bad("a reference without a target URL".into()));
                }
                Some(other) => return Err(bad(format!("target URL {other} is not a string"))),
            };
            let int = |i: usize, what: &str| -> Result<u64> {
                match parts.get(i) {
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .ok_or_else(|| bad(format!("{what} {n} is not a non-negative integer"))),
                    Some(other) => Err(bad(format!("{what} {other} is not an integer"))),
                    None => Err(bad(format!("no {what}"))),
                }
            };
            let (offset, length) = match parts.len() {
                1 => (0, None),
                3 => (int(1, "offset")?, Some(int(2, "length")?)),
                n => {
                    return Err(bad(format!(
                        "a reference has 1 or 3 elements ([url] or [url, offset, length]), not {n}"
                    )));
                }
            };
            Ok(Reference::Range {
                url: resolve(base, &url),
                offset,
                length,
            })
        }
        other => Err(bad(format!(
            "expected a string or [url, offset, length], got {other}"
        ))),
    }
}

/// Expands one `gen` entry into `refs`.
fn expand_gen(
    source: &str,
    base: &str,
    index: usize,
    g: &Value,
    templates: &Map<String, Value>,
    refs: &mut BTreeMap<String, Reference>,
) -> Result<()> {
    let bad = |detail: String| err(source, format!("gen[{index}]: {detail}"));
    let Value::Object(g) = g else {
        return Err(bad("not an object".into()));
    };
    let field = |name: &str| -> Result<String> {
        match g.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            None if name == "offset" || name == "length" => Ok(String::new()),
            other => Err(bad(format!("{name:?} is {other:?}, not a string"))),
        }
    };
    let (key_t, url_t, off_t, len_t) = (
        field("key")?,
        field("url")?,
        field("offset")?,
        field("length")?,
    );
    let Some(Value::Object(dims)) = g.get("dimensions") else {
        return Err(bad("no \"dimensions\" object".into()));
    };
    let mut axes: Vec<(String, Vec<i64>)> = Vec::new();
    let mut total: u64 = 1;
    for (name, d) in dims {
        let values: Vec<i64> = match d {
            Value::Array(v) => v
                .iter()
                .map(|x| {
                    x.as_i64()
                        .ok_or_else(|| bad(format!("dimension {name:?}: {x} is not an integer")))
                })
                .collect::<Result<_>>()?,
            Value::Object(r) => {
                let get = |k: &str, default: i64| -> Result<i64> {
                    match r.get(k) {
                        None => Ok(default),
                        Some(v) => v.as_i64().ok_or_else(|| {
                            bad(format!("dimension {name:?}: {k} {v} is not an integer"))
                        }),
                    }
                };
                let (start, stop, step) = (get("start", 0)?, get("stop", 0)?, get("step", 1)?);
                if step <= 0 {
                    return Err(bad(format!(
                        "dimension {name:?}: step {step} is not positive"
                    )));
                }
                let n = u64::try_from(stop.saturating_sub(start))
                    .unwrap_or(0)
                    .div_ceil(step.unsigned_abs());
                if n > MAX_GENERATED_KEYS {
                    return Err(bad(format!("dimension {name:?} has {n} values")));
                }
                (0..n as i64).map(|i| start + i * step).collect()
            }
            other => return Err(bad(format!("dimension {name:?} is {other}"))),
        };
        total = total.saturating_mul(values.len() as u64);
        if total > MAX_GENERATED_KEYS {
            return Err(bad(format!(
                "generates more than {MAX_GENERATED_KEYS} keys"
            )));
        }
        axes.push((name.clone(), values));
    }
    let mut idx = vec![0usize; axes.len()];
    if axes.iter().any(|(_, v)| v.is_empty()) {
        return Ok(());
    }
    loop {
        let mut vars = templates.clone();
        for ((name, values), &i) in axes.iter().zip(&idx) {
            vars.insert(name.clone(), Value::from(values[i]));
        }
        let key = render(&key_t, &vars).map_err(&bad)?;
        let url = render(&url_t, &vars).map_err(&bad)?;
        let num = |t: &str, what: &str| -> Result<Option<u64>> {
            if t.is_empty() {
                return Ok(None);
            }
            let s = render(t, &vars).map_err(&bad)?;
            s.trim().parse::<u64>().map(Some).map_err(|_| {
                bad(format!(
                    "{what} {s:?} (for key {key:?}) is not a non-negative integer"
                ))
            })
        };
        let offset = num(&off_t, "offset")?.unwrap_or(0);
        let length = num(&len_t, "length")?;
        refs.insert(
            key,
            Reference::Range {
                url: resolve(base, &url),
                offset,
                length,
            },
        );
        // next index, last axis fastest
        let mut d = axes.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < axes[d].1.len() {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Fills `{{ expr }}` holes in `t` with `vars` (strings or integers; `expr` a name or integer
/// arithmetic on names).
pub(crate) fn render(t: &str, vars: &Map<String, Value>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in template {t:?}"))?;
        let expr = after[..end].trim();
        match vars.get(expr) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            Some(other) => return Err(format!("template variable {expr:?} is {other}")),
            None => out.push_str(
                &eval_int(expr, vars)
                    .map_err(|e| format!("{{{{{expr}}}}}: {e}"))?
                    .to_string(),
            ),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Evaluates integer arithmetic (`+ - * // / % ( )`, names of integer variables).
fn eval_int(expr: &str, vars: &Map<String, Value>) -> std::result::Result<i64, String> {
    #[derive(Clone, Debug, PartialEq)]
    enum Tok {
        Num(i64),
        Op(&'static str),
    }
    let mut toks = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            toks.push(Tok::Num(
                expr[s..i]
                    .parse()
                    .map_err(|_| format!("number {} too big", &expr[s..i]))?,
            ));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &expr[s..i];
            let v = vars
                .get(name)
                .ok_or_else(|| format!("unknown name {name:?}"))?;
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| format!("{name:?} is {v}, not an integer"))?;
            toks.push(Tok::Num(n));
        } else if expr[i..].starts_with("//") {
            toks.push(Tok::Op("//"));
            i += 2;
        } else {
            let op = match c {
                b'+' => "+",
                b'-' => "-",
                b'*' => "*",
                b'/' => "//",
                b'%' => "%",
                b'(' => "(",
                b')' => ")",
                _ => return Err(format!("unexpected {:?}", c as char)),
            };
            toks.push(Tok::Op(op));
            i += 1;
        }
    }
    // recursive descent: sum := term (('+'|'-') term)*; term := unary (('*'|'//'|'%') unary)*
    struct P {
        toks: Vec<Tok>,
        pos: usize,
    }
    impl P {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos)
        }
        fn sum(&mut self) -> std::result::Result<i64, String> {
            let mut v = self.term()?;
            while let Some(Tok::Op(op @ ("+" | "-"))) = self.peek().cloned() {
                self.pos += 1;
                let r = self.term()?;
                v = if op == "+" {
                    v.checked_add(r)
                } else {
                    v.checked_sub(r)
                }
                .ok_or("integer overflow")?;
            }
            Ok(v)
        }
        fn term(&mut self) -> std::result::Result<i64, String> {
            let mut v = self.unary()?;
            while let Some(Tok::Op(op @ ("*" | "//" | "%"))) = self.peek().cloned() {
                self.pos += 1;
                let r = self.unary()?;
                v = match op {
                    "*" => v.checked_mul(r),
                    _ if r == 0 => return Err("division by zero".into()),
                    "//" => Some(v.div_euclid(r)),
                    _ => Some(v.rem_euclid(r)),
                }
                .ok_or("integer overflow")?;
            }
            Ok(v)
        }
        fn unary(&mut self) -> std::result::Result<i64, String> {
            match self.peek().cloned() {
                Some(Tok::Op("-")) => {
                    self.pos += 1;
                    Ok(-self.unary()?)
                }
                Some(Tok::Op("(")) => {
                    self.pos += 1;
                    let v = self.sum()?;
                    if self.peek() != Some(&Tok::Op(")")) {
                        return Err("missing )".into());
                    }
                    self.pos += 1;
                    Ok(v)
                }
                Some(Tok::Num(n)) => {
                    self.pos += 1;
                    Ok(n)
                }
                other => Err(format!("unexpected {other:?}")),
            }
        }
    }
    let mut p = P { toks, pos: 0 };
    let v = p.sum()?;
    if p.pos != p.toks.len() {
        return Err("trailing input".into());
    }
    Ok(v)
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> std::result::Result<Vec<u8>, String> {
    use base64::Engine as _;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(s.trim()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_and_arithmetic() {
        let vars = json!({"u": "http://h/d", "i": 3, "j": 2})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            render("{{u}}/f_{{ i }}.nc", &vars).unwrap(),
            "http://h/d/f_3.nc"
        );
        assert_eq!(
            render("{{(i + 1) * 1000 - j // 2}}", &vars).unwrap(),
            "3999"
        );
        assert_eq!(render("{{i % 2}}{{-j}}", &vars).unwrap(), "1-2");
        assert!(render("{{nope}}", &vars).unwrap_err().contains("nope"));
        assert!(render("{{i // 0}}", &vars).unwrap_err().contains("zero"));
        assert!(render("{{i", &vars).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn resolves_relative_targets_against_the_reference_directory() {
        assert_eq!(resolve("/a/b", "f.nc"), "/a/b/f.nc");
        assert_eq!(resolve("/a/b", "./f.nc"), "/a/b/f.nc");
        assert_eq!(resolve("/a/b", "../f.nc"), "/a/f.nc");
        assert_eq!(resolve("http://h/x", "f.nc"), "http://h/x/f.nc");
        assert_eq!(resolve("/a/b", "s3://bkt/f.nc"), "s3://bkt/f.nc");
        assert_eq!(resolve("/a/b", "/abs/f.nc"), "/abs/f.nc");
    }

    #[test]
    fn parses_version_0_and_1_with_gen() {
        let o = StoreOptions::read_only();
        let v0 = json!({".zgroup": "{\"zarr_format\":2}", "a/0": "base64:AAE=", "a/1": ["f.nc", 8, 4], "a/2": ["g.nc"]});
        let r = References::from_json("/d/r.json", &v0, &o).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r.reference("a/0"),
            Some(&Reference::Inline(Bytes::from_static(&[0, 1])))
        );
        assert_eq!(
            r.reference("a/1"),
            Some(&Reference::Range {
                url: "/d/f.nc".into(),
                offset: 8,
                length: Some(4)
            })
        );
        assert_eq!(
            r.reference("a/2"),
            Some(&Reference::Range {
                url: "/d/g.nc".into(),
                offset: 0,
                length: None
            })
        );
        let v1 = json!({"version": 1, "templates": {"u": "s3://b/p"},
            "refs": {".zgroup": "{\"zarr_format\":2}", "x/0": ["{{u}}/f.nc", 1, 2]},
            "gen": [{"key": "y/{{i}}.{{j}}", "url": "{{u}}/g{{j}}.nc", "offset": "{{i*100}}", "length": "100",
                     "dimensions": {"i": {"stop": 3}, "j": [5, 7]}}]});
        let r = References::from_json("/d/r.json", &v1, &o).unwrap();
        assert_eq!(r.len(), 2 + 6);
        assert_eq!(
            r.reference("y/2.7"),
            Some(&Reference::Range {
                url: "s3://b/p/g7.nc".into(),
                offset: 200,
                length: Some(100)
            })
        );
        assert_eq!(
            r.reference("x/0"),
            Some(&Reference::Range {
                url: "s3://b/p/f.nc".into(),
                offset: 1,
                length: Some(2)
            })
        );
        let (keys, dirs) = r.list_dir("");
        assert_eq!(keys, vec![".zgroup"]);
        assert_eq!(dirs, vec!["x/", "y/"]);
        // errors name the key and what is wrong
        for (bad, want) in [
            (
                json!({".zgroup": "{}", "a/0": ["f.nc", 1]}),
                "1 or 3 elements",
            ),
            (
                json!({".zgroup": "{}", "a/0": ["f.nc", -1, 2]}),
                "offset -1",
            ),
            (json!({".zgroup": "{}", "a/0": "base64:@@"}), "base64"),
            (json!({".zgroup": "{}", "a/0": 5}), "expected a string"),
            (json!({"a/0": "x"}), "no .zgroup"),
            (json!({"version": 2}), "version 2"),
            (
                json!({"version": 1, "refs": {".zgroup": "{}", "a": ["{{v}}/x", 0, 1]}}),
                "unknown name",
            ),
        ] {
            let e = References::from_json("/d/r.json", &bad, &o)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("/d/r.json"), "{want}: {e}");
        }
    }

    #[test]
    fn sniffs_file_kinds() {
        assert_eq!(sniff(b"  {\"version\": 1"), FileKind::Json);
        assert_eq!(sniff(b"\x89HDF\r\n\x1a\n...."), FileKind::Hdf5);
        assert_eq!(sniff(b"CDF\x01\0\0"), FileKind::NetCdf3);
        assert_eq!(sniff(b"CDF\x09"), FileKind::Other);
        assert_eq!(sniff(b"PAR1"), FileKind::Other);
    }
}
