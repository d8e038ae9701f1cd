//! Aligning datasets on their indexes, as xarray's `align` and `reindex` do: the indexes of
//! every dimension coordinate are joined (outer join by default) and each dataset is
//! reindexed onto the joined labels. Labels a dataset lacks become missing values (NaN,
//! NaT), integers are promoted to floats to hold them, as xarray does.
//!
//! Reindexing stays lazy: a gather of the existing positions, concatenated with constant
//! blocks of missing values; nothing is read or computed.
//!
//! ```
//! use gridflow_dataset::{Coords, Dataset, Join, Variable, align};
//! use gridflow_array::{ChunkedArray, DType};
//! let one = |labels: Vec<f64>| {
//!     let n = labels.len();
//!     let mut coords = Coords::new();
//!     coords.insert("x".into(), Variable::from_f64("x", labels).unwrap());
//!     let mut vars = indexmap::IndexMap::new();
//!     let data = ChunkedArray::ones(&[n], [n], DType::I32).unwrap();
//!     vars.insert("v".to_string(), Variable::new(["x"], data).unwrap());
//!     Dataset::new(vars, coords, Default::default()).unwrap()
//! };
//! let out = align(&[one(vec![1.0, 2.0]), one(vec![2.0, 3.0])], Join::Outer, &[]).unwrap();
//! let v = out[0].get("v").unwrap();
//! assert_eq!(v.dtype(), DType::F64); // int32 promoted to hold NaN
//! let got = v.to_f64_vec().unwrap();
//! assert_eq!(got[..2], [1.0, 1.0]);
//! assert!(got[2].is_nan());
//! ```

use crate::dataarray::Coords;
use crate::dataset::Dataset;
use crate::error::{Result, invalid};
use crate::index::{Index, IndexValues};
use crate::variable::{Attrs, ValueKind, Variable};
use gridflow_array::{Chunk, ChunkedArray, DType, Indexer, Scalar, promote};
use gridflow_cftime::Calendar;
use indexmap::{IndexMap, IndexSet};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// How the indexes of the objects being aligned are joined (xarray's `join`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Join {
    /// The union of the labels, sorted; missing values where an object lacks a label.
    #[default]
    Outer,
    /// The labels every object has, in the first object's order.
    Inner,
    /// The first object's labels.
    Left,
    /// The last object's labels.
    Right,
    /// The labels must be equal already (an error otherwise).
    Exact,
}

// ------------------------------------------------------------------ frames

/// A dataset as xarray holds it: one ordered map of all variables (data variables and
/// coordinates interleaved, the order that fixes the order of the dimensions), the names
/// of the coordinates, and the indexes. The combining functions work on frames.
#[derive(Clone, Debug, Default)]
pub(crate) struct Frame {
    pub(crate) vars: IndexMap<String, Variable>,
    pub(crate) coords: IndexSet<String>,
    pub(crate) indexes: HashMap<String, Index>,
    pub(crate) attrs: Attrs,
    pub(crate) encoding: Attrs,
}

impl Frame {
    pub(crate) fn from_dataset(ds: &Dataset) -> Frame {
        Frame {
            vars: ds
                .ordered_variables()
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            coords: ds.coords.keys().cloned().collect(),
            indexes: ds
                .indexes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            attrs: ds.attrs.clone(),
            encoding: ds.encoding.clone(),
        }
    }

    pub(crate) fn into_dataset(self) -> Result<Dataset> {
        let order: Vec<String> = self.vars.keys().cloned().collect();
        let mut data_vars = IndexMap::new();
        let mut coords = Coords::new();
        for (k, v) in self.vars {
            if self.coords.contains(&k) {
                coords.insert(k, v);
            } else {
                data_vars.insert(k, v);
            }
        }
        let mut indexes = IndexMap::new();
        for (k, v) in &coords {
            if v.ndim() == 1 && v.dims()[0] == *k {
                let idx = match self.indexes.get(k) {
                    Some(i) if i.len() == v.shape()[0] => i.clone(),
                    _ => Index::from_variable(v)?,
                };
                indexes.insert(k.clone(), idx);
            }
        }
        let ds = Dataset {
            data_vars,
            coords,
            indexes,
            attrs: self.attrs,
            encoding: self.encoding,
            order,
        };
        ds.dims_checked()?;
        Ok(ds)
    }

    /// The dimensions in order of first appearance (an error on conflicting sizes).
    pub(crate) fn dims(&self) -> Result<IndexMap<String, usize>> {
        calculate_dimensions(self.vars.iter())
    }

    /// The names of the indexed coordinates, in variable order.
    pub(crate) fn index_names(&self) -> Vec<String> {
        self.vars
            .keys()
            .filter(|k| self.indexes.contains_key(*k))
            .cloned()
            .collect()
    }

    /// The names of the data variables, in order.
    pub(crate) fn data_names(&self) -> impl Iterator<Item = &String> {
        self.vars.keys().filter(|k| !self.coords.contains(*k))
    }
}

/// The dimensions of variables in order of first appearance; an error names the two
/// variables that disagree on a size.
pub(crate) fn calculate_dimensions<'a>(
    vars: impl Iterator<Item = (&'a String, &'a Variable)>,
) -> Result<IndexMap<String, usize>> {
    let mut dims: IndexMap<String, usize> = IndexMap::new();
    let mut whose: HashMap<String, &String> = HashMap::new();
    for (name, v) in vars {
        for (d, n) in v.sizes() {
            match dims.get(&d) {
                Some(&m) if m != n => {
                    return Err(invalid(
                        "align",
                        format!(
                            "conflicting sizes for dimension {d:?}: length {n} on {name:?} and length {m} on {:?}",
                            whose.get(&d).map_or("?", |s| s.as_str())
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    whose.insert(d.clone(), name);
                    dims.insert(d, n);
                }
            }
        }
    }
    Ok(dims)
}

// ------------------------------------------------------------------ labels

/// A float label that hashes and orders totally (one NaN, sorted last; -0 equals 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Num(f64);

impl Num {
    fn norm(self) -> f64 {
        if self.0.is_nan() {
            f64::NAN
        } else if self.0 == 0.0 {
            0.0
        } else {
            self.0
        }
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Num) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Num) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Num) -> Ordering {
        self.norm().total_cmp(&other.norm())
    }
}

impl Hash for Num {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.norm().to_bits().hash(state);
    }
}

/// One label, comparable across the labels of indexes of one [`Kind`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Int(i64),
    Num(Num),
    Time(i64),
    Str(String),
}

impl Key {
    fn is_nan(&self) -> bool {
        matches!(self, Key::Num(n) if n.0.is_nan())
    }
}

/// What the labels of an index are, for comparing labels of several indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Time(Calendar),
    Str,
}

pub(crate) fn kind_of(values: &IndexValues) -> Kind {
    match values {
        IndexValues::Int(_) => Kind::Int,
        IndexValues::Float(_) => Kind::Float,
        IndexValues::Time { calendar, .. } => Kind::Time(*calendar),
        IndexValues::Str(_) => Kind::Str,
    }
}

/// The kind that holds the labels of both (`None`: times and other labels, or two
/// calendars, which cannot be compared).
pub(crate) fn common_kind(a: Kind, b: Kind) -> Option<Kind> {
    match (a, b) {
        _ if a == b => Some(a),
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Some(Kind::Float),
        (Kind::Time(_), _) | (_, Kind::Time(_)) => None,
        _ => Some(Kind::Str),
    }
}

fn common_kind_of<'a>(op: &str, dim: &str, idx: impl Iterator<Item = &'a Index>) -> Result<Kind> {
    let mut kind: Option<Kind> = None;
    for i in idx {
        let k = kind_of(i.values());
        kind = Some(match kind {
            None => k,
            Some(prev) => common_kind(prev, k).ok_or_else(|| {
                invalid(
                    op,
                    format!(
                        "the labels along dimension {dim:?} mix kinds that cannot be compared ({prev:?} and {k:?})"
                    ),
                )
            })?,
        });
    }
    Ok(kind.unwrap_or(Kind::Float))
}

/// The labels of `values` as keys of `kind` (a kind [`common_kind`] gave).
pub(crate) fn keys(values: &IndexValues, kind: Kind) -> Vec<Key> {
    let text = |x: f64| crate::repr::format_f64(x);
    match (values, kind) {
        (IndexValues::Int(v), Kind::Int) => v.iter().map(|&x| Key::Int(x)).collect(),
        (IndexValues::Int(v), Kind::Str) => v.iter().map(|x| Key::Str(x.to_string())).collect(),
        (IndexValues::Int(v), _) => v.iter().map(|&x| Key::Num(Num(x as f64))).collect(),
        (IndexValues::Float(v), Kind::Str) => v.iter().map(|&x| Key::Str(text(x))).collect(),
        (IndexValues::Float(v), _) => v.iter().map(|&x| Key::Num(Num(x))).collect(),
        (IndexValues::Time { ticks, .. }, _) => ticks.iter().map(|&x| Key::Time(x)).collect(),
        (IndexValues::Str(v), _) => v.iter().map(|x| Key::Str(x.clone())).collect(),
    }
}

/// Index values of `kind` from keys.
fn from_keys(keys: Vec<Key>, kind: Kind) -> IndexValues {
    match kind {
        Kind::Int => IndexValues::Int(Arc::new(
            keys.into_iter()
                .map(|k| match k {
                    Key::Int(i) | Key::Time(i) => i,
                    Key::Num(n) => n.0 as i64,
                    Key::Str(_) => 0,
                })
                .collect(),
        )),
        Kind::Float => IndexValues::Float(Arc::new(
            keys.into_iter()
                .map(|k| match k {
                    Key::Int(i) | Key::Time(i) => i as f64,
                    Key::Num(n) => n.0,
                    Key::Str(_) => f64::NAN,
                })
                .collect(),
        )),
        Kind::Time(calendar) => IndexValues::Time {
            ticks: Arc::new(
                keys.into_iter()
                    .map(|k| match k {
                        Key::Int(i) | Key::Time(i) => i,
                        _ => crate::variable::NAT,
                    })
                    .collect(),
            ),
            calendar,
        },
        Kind::Str => IndexValues::Str(Arc::new(
            keys.into_iter()
                .map(|k| match k {
                    Key::Str(s) => s,
                    Key::Int(i) | Key::Time(i) => i.to_string(),
                    Key::Num(n) => crate::repr::format_f64(n.0),
                })
                .collect(),
        )),
    }
}

/// Whether two indexes hold the same labels (NaN equals NaN, as pandas' `Index.equals`).
pub(crate) fn index_equals(a: &Index, b: &Index) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.values() == b.values() {
        return true;
    }
    match common_kind(kind_of(a.values()), kind_of(b.values())) {
        Some(k @ (Kind::Int | Kind::Float | Kind::Time(_))) => {
            keys(a.values(), k) == keys(b.values(), k)
        }
        // strings equal other labels only as strings
        Some(Kind::Str) => {
            matches!(
                (a.values(), b.values()),
                (IndexValues::Str(_), IndexValues::Str(_))
            ) && a.values() == b.values()
        }
        None => false,
    }
}

/// Whether the labels increase and whether they decrease (both false with a NaN, as in
/// pandas).
pub(crate) fn monotonic(idx: &Index) -> (bool, bool) {
    let k = keys(idx.values(), kind_of(idx.values()));
    if k.iter().any(Key::is_nan) {
        return (false, false);
    }
    (
        k.windows(2).all(|w| w[0] <= w[1]),
        k.windows(2).all(|w| w[0] >= w[1]),
    )
}

/// pandas' `Index.union`: the labels of both, sorted (NaN last); `a` itself when equal.
pub(crate) fn union(dim: &str, a: &Index, b: &Index) -> Result<Index> {
    if index_equals(a, b) || b.is_empty() {
        return Ok(a.clone());
    }
    if a.is_empty() {
        return Ok(b.clone());
    }
    let kind = common_kind_of("align", dim, [a, b].into_iter())?;
    let mut out = keys(a.values(), kind);
    let seen: HashSet<Key> = out.iter().cloned().collect();
    let mut added: HashSet<Key> = HashSet::new();
    for k in keys(b.values(), kind) {
        if !seen.contains(&k) && added.insert(k.clone()) {
            out.push(k);
        }
    }
    out.sort();
    Ok(Index::new(from_keys(out, kind)))
}

/// pandas' `Index.intersection`: the labels of `a` that `b` has, in `a`'s order.
pub(crate) fn intersection(dim: &str, a: &Index, b: &Index) -> Result<Index> {
    if index_equals(a, b) {
        return Ok(a.clone());
    }
    let kind = common_kind_of("align", dim, [a, b].into_iter())?;
    let theirs: HashSet<Key> = keys(b.values(), kind).into_iter().collect();
    let mut seen = HashSet::new();
    let out: Vec<Key> = keys(a.values(), kind)
        .into_iter()
        .filter(|k| theirs.contains(k) && seen.insert(k.clone()))
        .collect();
    Ok(Index::new(from_keys(out, kind)))
}

/// The labels of several indexes one after the other (the index of a concatenation).
pub(crate) fn concat_indexes(dim: &str, parts: &[&Index]) -> Result<Index> {
    let kind = common_kind_of("concat", dim, parts.iter().copied())?;
    let all: Vec<Key> = parts.iter().flat_map(|p| keys(p.values(), kind)).collect();
    Ok(Index::new(from_keys(all, kind)))
}

/// For each label of `to`, its position in `from` (`None` when `from` lacks it): pandas'
/// `get_indexer`. `from` must not repeat labels.
pub(crate) fn positions(dim: &str, from: &Index, to: &Index) -> Result<Vec<Option<usize>>> {
    let kind = common_kind_of("reindex", dim, [from, to].into_iter())?;
    let mut at: HashMap<Key, usize> = HashMap::with_capacity(from.len());
    for (i, k) in keys(from.values(), kind).into_iter().enumerate() {
        if at.insert(k, i).is_some() {
            return Err(invalid(
                "reindex",
                format!(
                    "cannot reindex or align along dimension {dim:?} because its index has duplicate values"
                ),
            ));
        }
    }
    Ok(keys(to.values(), kind)
        .into_iter()
        .map(|k| at.get(&k).copied())
        .collect())
}

/// A coordinate variable holding the labels of `idx`, with the metadata of `like` and, for
/// numbers, `dtype` (xarray keeps a coordinate's dtype through joins).
pub(crate) fn index_variable(
    idx: &Index,
    name: &str,
    like: Option<&Variable>,
    dtype: Option<DType>,
) -> Result<Variable> {
    let mut v = idx.to_variable(name)?;
    if let Some(t) = dtype
        && matches!(v.kind(), ValueKind::Numeric)
        && v.dtype() != t
        && (v.dtype().is_float() == t.is_float())
    {
        v.data = v.data.astype(t)?;
    }
    if let Some(l) = like {
        v.attrs = l.attrs.clone();
        v.encoding = l.encoding.clone();
    }
    Ok(v)
}

// ------------------------------------------------------------------ reindexing

/// The fill value of missing positions and the dtype and kind that hold it (xarray's
/// `maybe_promote`: small integers to float32, other integers and booleans to float64,
/// times NaT; strings get a `"nan"` entry).
fn missing_value(v: &Variable) -> (DType, Scalar, ValueKind) {
    match v.kind() {
        ValueKind::Time(_) => (
            DType::I64,
            Scalar::Int(crate::variable::NAT),
            v.kind.clone(),
        ),
        ValueKind::Strings(table) => {
            let mut t: Vec<String> = table.as_ref().clone();
            let code = t.iter().position(|s| s == "nan").unwrap_or_else(|| {
                t.push("nan".to_owned());
                t.len() - 1
            });
            (
                DType::I64,
                Scalar::Int(code as i64),
                ValueKind::Strings(Arc::new(t)),
            )
        }
        ValueKind::Numeric => {
            let d = v.dtype();
            let to = if d.is_float() {
                d
            } else if d.is_int() && d.size() <= 2 {
                DType::F32
            } else {
                DType::F64
            };
            (to, Scalar::Float(f64::NAN), ValueKind::Numeric)
        }
    }
}

/// `data` at `pos` along `axis`, missing positions filled with `fill`: gathers of the
/// existing runs and constant blocks for the missing ones, concatenated (lazy).
fn take_with_fill(
    data: &ChunkedArray,
    axis: usize,
    pos: &[Option<usize>],
    fill: Scalar,
) -> Result<ChunkedArray> {
    let mut pieces: Vec<ChunkedArray> = Vec::new();
    let mut i = 0;
    while i < pos.len() {
        let start = i;
        if pos[i].is_some() {
            while i < pos.len() && pos[i].is_some() {
                i += 1;
            }
            let run: Vec<usize> = pos[start..i].iter().flatten().copied().collect();
            pieces.push(take_run(data, axis, &run)?);
        } else {
            while i < pos.len() && pos[i].is_none() {
                i += 1;
            }
            let mut shape = data.shape().to_vec();
            shape[axis] = i - start;
            let mut chunks: Vec<Vec<usize>> = data.chunks().to_vec();
            chunks[axis] = vec![i - start];
            pieces.push(ChunkedArray::full(&shape, fill, chunks, data.dtype())?);
        }
    }
    match pieces.len() {
        0 => take_run(data, axis, &[]),
        1 => Ok(pieces.remove(0)),
        _ => {
            let refs: Vec<&ChunkedArray> = pieces.iter().collect();
            Ok(ChunkedArray::concatenate(&refs, axis as isize)?)
        }
    }
}

/// Positions along an axis: a slice when they are a run, a gather otherwise.
fn take_run(data: &ChunkedArray, axis: usize, run: &[usize]) -> Result<ChunkedArray> {
    let contiguous = run.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous {
        let start = run.first().copied().unwrap_or(0);
        if start == 0 && run.len() == data.shape()[axis] {
            return Ok(data.clone());
        }
        let mut sel = vec![Indexer::Full; data.ndim()];
        sel[axis] = Indexer::Slice {
            start: Some(start as isize),
            stop: Some((start + run.len()) as isize),
            step: None,
        };
        return Ok(data.index(&sel)?);
    }
    let idx: Vec<isize> = run.iter().map(|&p| p as isize).collect();
    Ok(data.take(&idx, axis as isize)?)
}

/// A variable reindexed along some of its dimensions (`pos[i]`: the old position of new
/// position `i`, `None` for missing). Dimensions it lacks are ignored; an identity leaves
/// the data untouched; the dtype is promoted only where values go missing.
pub(crate) fn reindex_variable(
    v: &Variable,
    indexers: &[(String, Vec<Option<usize>>)],
) -> Result<Variable> {
    let mut out = v.clone();
    for (dim, pos) in indexers {
        let Some(axis) = out.axis(dim) else { continue };
        let n = out.shape()[axis];
        if pos.len() == n && pos.iter().enumerate().all(|(i, p)| *p == Some(i)) {
            continue;
        }
        let mut fill = Scalar::Float(f64::NAN);
        if pos.iter().any(Option::is_none) {
            let (dtype, value, kind) = missing_value(&out);
            if dtype != out.dtype() {
                out.data = out.data.astype(dtype)?;
            }
            out.kind = kind;
            fill = value;
        }
        out.data = take_with_fill(&out.data, axis, pos, fill)?;
    }
    Ok(out)
}

/// Everything needed to reindex objects onto one joined index.
struct Aligned {
    index: Index,
    reindex: bool,
    /// A variable of the objects holding the index (metadata for objects that lack it).
    like: Variable,
    dtype: Option<DType>,
}

/// xarray's `align` on frames: joins the indexes of every dimension coordinate (except
/// along `exclude`) and reindexes every frame onto them.
pub(crate) fn align_frames(
    frames: Vec<Frame>,
    join: Join,
    exclude: &[String],
) -> Result<Vec<Frame>> {
    if frames.len() <= 1 {
        return Ok(frames);
    }
    // the indexes of each coordinate, in order of first appearance
    let mut all: IndexMap<String, Vec<(usize, Index)>> = IndexMap::new();
    for (i, f) in frames.iter().enumerate() {
        for name in f.index_names() {
            if exclude.contains(&name) {
                continue;
            }
            all.entry(name.clone())
                .or_default()
                .push((i, f.indexes[&name].clone()));
        }
    }
    // sizes of dimensions without an index
    let mut unindexed: IndexMap<String, BTreeSet<usize>> = IndexMap::new();
    for f in &frames {
        for (d, n) in f.dims()? {
            if !exclude.contains(&d) && !f.indexes.contains_key(&d) {
                unindexed.entry(d).or_default().insert(n);
            }
        }
    }
    let mut aligned: IndexMap<String, Aligned> = IndexMap::new();
    for (name, matching) in &all {
        let first = &matching[0].1;
        let mut need = matching[1..].iter().any(|(_, ix)| !index_equals(ix, first));
        if let Some(sizes) = unindexed.get(name) {
            need |= sizes.len() > 1 || sizes.iter().any(|&s| s != first.len());
        }
        let index = if !need {
            first.clone()
        } else {
            match join {
                Join::Outer => matching[1..]
                    .iter()
                    .try_fold(first.clone(), |acc, (_, ix)| union(name, &acc, ix))?,
                Join::Inner => matching[1..]
                    .iter()
                    .try_fold(first.clone(), |acc, (_, ix)| intersection(name, &acc, ix))?,
                Join::Left => first.clone(),
                Join::Right => matching[matching.len() - 1].1.clone(),
                Join::Exact => {
                    return Err(invalid(
                        "align",
                        format!(
                            "cannot align objects with join='exact' where index/labels/sizes are not equal along these coordinates (dimensions): {name:?} ({name:?},)"
                        ),
                    ));
                }
            }
        };
        let vars: Vec<&Variable> = matching
            .iter()
            .filter_map(|(i, _)| frames[*i].vars.get(name))
            .collect();
        let Some(like) = vars.first().map(|v| (*v).clone()) else {
            continue;
        };
        let dtype = vars
            .iter()
            .filter(|v| matches!(v.kind(), ValueKind::Numeric))
            .map(|v| v.dtype())
            .reduce(promote);
        aligned.insert(
            name.clone(),
            Aligned {
                index,
                reindex: need,
                like,
                dtype,
            },
        );
    }
    // dimensions without an index must agree (with the index along them, if any)
    for (dim, sizes) in &unindexed {
        let mut sizes = sizes.clone();
        if let Some(a) = aligned.get(dim) {
            sizes.insert(a.index.len());
        }
        if sizes.len() > 1 {
            return Err(invalid(
                "align",
                format!(
                    "cannot reindex or align along dimension {dim:?} because of conflicting dimension sizes: {sizes:?}"
                ),
            ));
        }
    }
    frames
        .into_iter()
        .map(|f| reindex_frame(f, &aligned, exclude))
        .collect()
}

/// One frame onto the joined indexes (xarray's `Dataset._reindex_callback`): when anything
/// moves, the index coordinates come first, then the variables in their order.
fn reindex_frame(
    f: Frame,
    aligned: &IndexMap<String, Aligned>,
    exclude: &[String],
) -> Result<Frame> {
    let dims = f.dims()?;
    let mut new_vars: IndexMap<String, Variable> = IndexMap::new();
    let mut new_indexes: HashMap<String, Index> = HashMap::new();
    let mut indexers: Vec<(String, Vec<Option<usize>>)> = Vec::new();
    for (name, a) in aligned {
        let own = f.indexes.get(name);
        if own.is_none() && !dims.contains_key(name) {
            continue;
        }
        let var = match (a.reindex, f.vars.get(name)) {
            (false, Some(v)) if own.is_some() => v.clone(),
            (_, mine) => index_variable(&a.index, name, Some(mine.unwrap_or(&a.like)), a.dtype)?,
        };
        new_vars.insert(name.clone(), var);
        new_indexes.insert(name.clone(), a.index.clone());
        if let Some(own) = own
            && a.reindex
        {
            indexers.push((name.clone(), positions(name, own, &a.index)?));
        }
    }
    // indexes along excluded dimensions pass through
    for name in f.index_names() {
        if exclude.contains(&name) {
            new_vars.insert(name.clone(), f.vars[&name].clone());
            new_indexes.insert(name.clone(), f.indexes[&name].clone());
        }
    }
    let mut f = f;
    if indexers.is_empty() {
        if new_indexes.keys().all(|k| f.indexes.contains_key(k)) {
            return Ok(f);
        }
        // only indexes along dimensions that had none are added
        for (k, v) in new_vars {
            if !f.indexes.contains_key(&k) {
                f.coords.insert(k.clone());
                f.vars.insert(k, v);
            }
        }
        f.indexes.extend(new_indexes);
        return Ok(f);
    }
    let mut vars = new_vars;
    for (k, v) in &f.vars {
        if !vars.contains_key(k) {
            vars.insert(k.clone(), reindex_variable(v, &indexers)?);
        }
    }
    f.coords.extend(new_indexes.keys().cloned());
    f.indexes.extend(new_indexes);
    f.vars = vars;
    Ok(f)
}

/// Aligns datasets on their indexed dimension coordinates, as xarray's
/// `align(*datasets, join=join, exclude=exclude)`: the labels of each indexed dimension
/// are joined and every dataset is reindexed onto them, lazily; labels a dataset lacks are
/// filled with NaN (NaT for times), integers promoted to floats to hold them.
pub fn align(datasets: &[Dataset], join: Join, exclude: &[&str]) -> Result<Vec<Dataset>> {
    let exclude: Vec<String> = exclude.iter().map(|s| (*s).to_owned()).collect();
    let frames = datasets.iter().map(Frame::from_dataset).collect();
    align_frames(frames, join, &exclude)?
        .into_iter()
        .map(Frame::into_dataset)
        .collect()
}

impl Dataset {
    /// Conforms the dataset to new labels along indexed dimensions, as xarray's `reindex`:
    /// values at labels the dataset lacks are missing (NaN, NaT), integers promoted to
    /// floats to hold them. Lazy: nothing is read.
    pub fn reindex(&self, indexers: &[(&str, Index)]) -> Result<Dataset> {
        let mut frame = Frame::from_dataset(self);
        let mut pos = Vec::new();
        for (dim, target) in indexers {
            let own = self.indexes.get(*dim).ok_or_else(|| {
                invalid(
                    "reindex",
                    format!("dimension {dim:?} has no index to reindex (add a coordinate)"),
                )
            })?;
            pos.push(((*dim).to_owned(), positions(dim, own, target)?));
        }
        // as in xarray, the new index coordinates lead
        let mut vars = IndexMap::new();
        for (dim, target) in indexers {
            let like = frame.vars.get(*dim);
            let dtype = like.map(Variable::dtype);
            vars.insert((*dim).to_owned(), index_variable(target, dim, like, dtype)?);
        }
        for (k, v) in &frame.vars {
            if !vars.contains_key(k) {
                vars.insert(k.clone(), reindex_variable(v, &pos)?);
            }
        }
        for (dim, target) in indexers {
            frame.indexes.insert((*dim).to_owned(), target.clone());
        }
        frame.vars = vars;
        frame.into_dataset()
    }
}

/// A numeric variable over an in-memory chunk, chunked like `like`.
pub(crate) fn in_memory_like(like: &Variable, chunk: Chunk) -> Result<ChunkedArray> {
    Ok(ChunkedArray::from_chunk(
        chunk,
        like.data.chunks().to_vec(),
    )?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ds(labels: Vec<f64>, dtype: DType) -> Dataset {
        let n = labels.len();
        let mut coords = Coords::new();
        coords.insert("x".into(), Variable::from_f64("x", labels).unwrap());
        let mut vars = IndexMap::new();
        let data = ChunkedArray::arange(0.0, n as f64, 1.0, n, dtype).unwrap();
        vars.insert("v".to_string(), Variable::new(["x"], data).unwrap());
        Dataset::new(vars, coords, Attrs::new()).unwrap()
    }

    fn values(d: &Dataset, name: &str) -> Vec<f64> {
        d.get(name).unwrap().to_f64_vec().unwrap()
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn outer_join_fills_nan_and_promotes_only_where_needed() {
        let a = ds(vec![1.0, 3.0], DType::I64);
        let b = ds(vec![3.0, 2.0, 1.0], DType::I16);
        let out = align(&[a, b], Join::Outer, &[]).unwrap();
        assert!(same(&values(&out[0], "x"), &[1.0, 2.0, 3.0]));
        assert!(same(&values(&out[0], "v"), &[0.0, f64::NAN, 1.0]));
        assert_eq!(out[0].get("v").unwrap().dtype(), DType::F64);
        // b has every label: reordered, not promoted
        assert!(same(&values(&out[1], "v"), &[2.0, 1.0, 0.0]));
        assert_eq!(out[1].get("v").unwrap().dtype(), DType::I16);
        // the index coordinate leads the reindexed dataset
        assert_eq!(out[0].variable_order(), ["x", "v"]);
    }

    #[test]
    fn small_integers_promote_to_float32_and_other_joins() {
        let a = ds(vec![1.0, 2.0], DType::I16);
        let b = ds(vec![2.0, 3.0], DType::F32);
        let out = align(&[a.clone(), b.clone()], Join::Outer, &[]).unwrap();
        assert_eq!(out[0].get("v").unwrap().dtype(), DType::F32);
        let inner = align(&[a.clone(), b.clone()], Join::Inner, &[]).unwrap();
        assert!(same(&values(&inner[0], "v"), &[1.0]));
        assert!(same(&values(&inner[1], "v"), &[0.0]));
        let left = align(&[a.clone(), b.clone()], Join::Left, &[]).unwrap();
        assert!(same(&values(&left[1], "x"), &[1.0, 2.0]));
        assert!(same(&values(&left[1], "v"), &[f64::NAN, 0.0]));
        let e = align(&[a.clone(), b], Join::Exact, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("join='exact'") && e.contains("\"x\""), "{e}");
        // excluded dimensions are left alone
        let c = ds(vec![5.0], DType::F64);
        let err = align(&[a.clone(), c.clone()], Join::Outer, &["x"]);
        assert!(err.is_ok(), "{err:?}");
        assert_eq!(err.unwrap()[1].dims()["x"], 1);
    }

    #[test]
    fn reindex_is_lazy_on_arrays_too_big_to_compute() {
        let n = 1_000_000;
        let mut coords = Coords::new();
        coords.insert(
            "x".into(),
            Variable::from_f64("x", (0..n).map(|i| i as f64).collect()).unwrap(),
        );
        let big = ChunkedArray::zeros(&[n, n], [1000, 1000], DType::F64).unwrap();
        let mut vars = IndexMap::new();
        vars.insert("v".to_string(), Variable::new(["x", "y"], big).unwrap());
        let d = Dataset::new(vars, coords, Attrs::new()).unwrap();
        let target = Index::new(IndexValues::Float(Arc::new(vec![-1.0, 0.0, 1.0, 5e6])));
        let r = d.reindex(&[("x", target)]).unwrap();
        assert_eq!(r.dims()["x"], 4);
        let v = r
            .get("v")
            .unwrap()
            .isel(&[("y", crate::IndexSel::range(0, 2))])
            .unwrap();
        assert!(same(
            &v.to_f64_vec().unwrap(),
            &[f64::NAN, f64::NAN, 0.0, 0.0, 0.0, 0.0, f64::NAN, f64::NAN]
        ));
    }

    #[test]
    fn labels_compare_with_nan_equal_and_union_sorts() {
        let f = |v: Vec<f64>| Index::new(IndexValues::Float(Arc::new(v)));
        assert!(index_equals(&f(vec![f64::NAN]), &f(vec![f64::NAN])));
        assert!(!index_equals(&f(vec![1.0]), &f(vec![f64::NAN])));
        let u = union("x", &f(vec![3.0, f64::NAN]), &f(vec![1.0])).unwrap();
        let IndexValues::Float(v) = u.values() else {
            panic!()
        };
        assert_eq!(v[..2], [1.0, 3.0]);
        assert!(v[2].is_nan());
        let s = |v: &[&str]| {
            Index::new(IndexValues::Str(Arc::new(
                v.iter().map(|x| x.to_string()).collect(),
            )))
        };
        let u = union("m", &s(&["r2", "r1"]), &s(&["r10"])).unwrap();
        assert_eq!(u.values(), s(&["r1", "r10", "r2"]).values());
        let e = positions("m", &s(&["a", "a"]), &s(&["a"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate"), "{e}");
        assert_eq!(monotonic(&f(vec![f64::NAN])), (false, false));
        assert_eq!(monotonic(&f(vec![2.0, 2.0])), (true, true));
    }
}
