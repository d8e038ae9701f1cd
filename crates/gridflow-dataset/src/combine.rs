//! Combining datasets as xarray 2026.9 does: [`concat`], [`merge`] and
//! [`combine_by_coords`] with xarray's default `data_vars="all"`, `coords="different"`,
//! `compat="no_conflicts"`, an outer join of the indexes (NaN where labels are missing,
//! see [`crate::align`]) and a choice of [`CombineAttrs`]. Variables, coordinates and
//! dimensions come out in xarray's order. Plus the per-file steps of intake-esm's
//! `to_dataset_dict`: [`Dataset::expand_variables`] and [`Dataset::subset`].
//!
//! Data stay lazy, except where xarray compares values too: coordinates that may differ
//! between the datasets (`coords="different"`) and variables present in several merged
//! datasets (`compat="no_conflicts"`) are computed to compare them.
//!
//! ```
//! use gridflow_dataset::{CombineOptions, Coords, Dataset, Variable, combine_by_coords};
//! use gridflow_array::{ChunkedArray, DType};
//! let piece = |name: &str, x: Vec<f64>| {
//!     let n = x.len();
//!     let mut coords = Coords::new();
//!     coords.insert("x".into(), Variable::from_f64("x", x).unwrap());
//!     let mut vars = indexmap::IndexMap::new();
//!     let data = ChunkedArray::ones(&[n], [n], DType::F32).unwrap();
//!     vars.insert(name.to_string(), Variable::new(["x"], data).unwrap());
//!     Dataset::new(vars, coords, Default::default()).unwrap()
//! };
//! // two pieces of `a` along x (given out of order) and a shorter `b`
//! let parts = [piece("a", vec![2.0, 3.0]), piece("a", vec![0.0, 1.0]), piece("b", vec![1.0])];
//! let ds = combine_by_coords(&parts, &CombineOptions::default()).unwrap();
//! assert_eq!(ds.dims()["x"], 4);
//! let b = ds.get("b").unwrap().to_f64_vec().unwrap();
//! assert_eq!(b.iter().filter(|v| v.is_nan()).count(), 3);
//! ```

use crate::align::{
    Frame, Join, Key, Kind, align_frames, calculate_dimensions, concat_indexes, in_memory_like,
    index_equals, index_variable, keys, kind_of, monotonic, reindex_variable,
};
use crate::dataset::Dataset;
use crate::error::{DatasetError, Result, invalid};
use crate::index::Index;
use crate::variable::{Attrs, NAT, ValueKind, Variable};
use gridflow_array::{Chunk, ChunkedArray, promote};
use indexmap::{IndexMap, IndexSet};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How the attributes of combined objects are combined (xarray's `combine_attrs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CombineAttrs {
    /// No attributes.
    Drop,
    /// All attributes must be identical.
    Identical,
    /// The union; the same key with different values is an error.
    #[default]
    NoConflicts,
    /// The union, leaving out keys whose values differ.
    DropConflicts,
    /// The first object's attributes.
    Override,
}

/// Options of [`concat`], [`merge`] and [`combine_by_coords`]. The other xarray options are
/// fixed at their defaults: `data_vars="all"`, `coords="different"`,
/// `compat="no_conflicts"`, `fill_value=NaN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CombineOptions {
    /// How indexes along other dimensions are joined (outer: NaN where labels are missing).
    pub join: Join,
    /// How the attributes are combined.
    pub combine_attrs: CombineAttrs,
}

impl CombineOptions {
    /// What intake-esm's `to_dataset_dict` passes: an outer join, attributes with
    /// `drop_conflicts`.
    pub fn intake_esm() -> CombineOptions {
        CombineOptions {
            join: Join::Outer,
            combine_attrs: CombineAttrs::DropConflicts,
        }
    }
}

// ------------------------------------------------------------------ attributes

/// Whether two attribute values are equal as Python compares them (`1 == 1.0`).
fn attr_equiv(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| attr_equiv(p, q))
        }
        _ => a == b,
    }
}

/// xarray's `merge_attrs`.
pub(crate) fn merge_attrs(list: &[&Attrs], how: CombineAttrs) -> Result<Attrs> {
    let Some(first) = list.first() else {
        return Ok(Attrs::new());
    };
    match how {
        CombineAttrs::Drop => Ok(Attrs::new()),
        CombineAttrs::Override => Ok((*first).clone()),
        CombineAttrs::Identical => {
            for a in &list[1..] {
                let same = a.len() == first.len()
                    && a.iter()
                        .all(|(k, v)| first.get(k).is_some_and(|w| attr_equiv(v, w)));
                if !same {
                    return Err(invalid(
                        "combine_attrs",
                        format!(
                            "combine_attrs='identical', but attrs differ: first is {}, other is {}",
                            Value::Object((*first).clone()),
                            Value::Object((*a).clone())
                        ),
                    ));
                }
            }
            Ok((*first).clone())
        }
        CombineAttrs::NoConflicts => {
            let mut out = (*first).clone();
            for a in &list[1..] {
                for (k, v) in a.iter() {
                    match out.get(k) {
                        Some(w) if !attr_equiv(v, w) => {
                            return Err(invalid(
                                "combine_attrs",
                                format!(
                                    "combine_attrs='no_conflicts', but some values are not the same: attribute {k:?} is {w} and {v}"
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            Ok(out)
        }
        CombineAttrs::DropConflicts => {
            let mut out = Attrs::new();
            let mut dropped: HashSet<&String> = HashSet::new();
            for a in list {
                for (k, v) in a.iter() {
                    if !out.contains_key(k) && !dropped.contains(k) {
                        out.insert(k.clone(), v.clone());
                    }
                }
                out.retain(|k, v| a.get(k).is_none_or(|w| attr_equiv(v, w)));
                for k in a.keys() {
                    if !out.contains_key(k) {
                        dropped.insert(k);
                    }
                }
            }
            Ok(out)
        }
    }
}

// ------------------------------------------------------------------ comparing variables

/// A variable's values in memory, for comparisons.
enum Vals {
    Num(Vec<f64>),
    Ticks(Vec<i64>),
    Str(Vec<String>),
}

fn vals(v: &Variable) -> Result<Vals> {
    Ok(match v.kind() {
        ValueKind::Numeric => Vals::Num(v.to_f64_vec()?),
        ValueKind::Time(_) => Vals::Ticks(v.ticks()?),
        ValueKind::Strings(table) => Vals::Str(
            v.ticks()?
                .iter()
                .map(|&c| table.get(c as usize).cloned().unwrap_or_default())
                .collect(),
        ),
    })
}

/// `v` over `dims` (a superset of its own, sizes `shape`): missing dimensions are
/// broadcast (xarray's `Variable.set_dims`), lazily.
fn set_dims(v: &Variable, dims: &[String], shape: &[usize]) -> Result<Variable> {
    if v.dims() == dims {
        return Ok(v.clone());
    }
    let mut data = v.data.clone();
    let mut have: Vec<String> = v.dims().to_vec();
    for (d, &n) in dims.iter().zip(shape).rev() {
        if have.contains(d) {
            continue;
        }
        data = data.expand_dims(0)?;
        if n != 1 {
            let copies: Vec<&ChunkedArray> = std::iter::repeat_n(&data, n).collect();
            data = ChunkedArray::concatenate(&copies, 0)?;
        }
        have.insert(0, d.clone());
    }
    v.replace(have, data).transpose(dims)
}

/// Both variables over the union of their dimensions (`None` when a shared dimension has
/// two sizes).
fn broadcast_pair(a: &Variable, b: &Variable) -> Result<Option<(Variable, Variable)>> {
    let mut dims: Vec<String> = a.dims().to_vec();
    let mut shape: Vec<usize> = a.shape().to_vec();
    for (d, n) in b.sizes() {
        match dims.iter().position(|x| *x == d) {
            Some(i) if shape[i] != n => return Ok(None),
            Some(_) => {}
            None => {
                dims.push(d);
                shape.push(n);
            }
        }
    }
    Ok(Some((
        set_dims(a, &dims, &shape)?,
        set_dims(b, &dims, &shape)?,
    )))
}

/// xarray's `Variable.no_conflicts`: equal after broadcasting, where both have values.
pub(crate) fn no_conflicts(a: &Variable, b: &Variable) -> Result<bool> {
    if a.dims() == b.dims() && a.kind() == b.kind() && a.data.name() == b.data.name() {
        return Ok(true);
    }
    let Some((a, b)) = broadcast_pair(a, b)? else {
        return Ok(false);
    };
    Ok(match (vals(&a)?, vals(&b)?) {
        (Vals::Num(x), Vals::Num(y)) => x
            .iter()
            .zip(&y)
            .all(|(p, q)| p == q || p.is_nan() || q.is_nan()),
        (Vals::Ticks(x), Vals::Ticks(y)) => {
            a.calendar() == b.calendar()
                && x.iter()
                    .zip(&y)
                    .all(|(p, q)| p == q || *p == NAT || *q == NAT)
        }
        (Vals::Str(x), Vals::Str(y)) => x == y,
        _ => false,
    })
}

/// xarray's `fillna` of `out` by `others` (where `out` is missing and another has a value);
/// `out` itself, still lazy, when it has no missing values.
fn fill_missing(out: &Variable, others: &[&Variable]) -> Result<Variable> {
    let mut mine = match vals(out)? {
        Vals::Str(_) => return Ok(out.clone()),
        v => v,
    };
    let missing = |v: &Vals| -> usize {
        match v {
            Vals::Num(x) => x.iter().filter(|p| p.is_nan()).count(),
            Vals::Ticks(x) => x.iter().filter(|p| **p == NAT).count(),
            Vals::Str(_) => 0,
        }
    };
    if missing(&mine) == 0 {
        return Ok(out.clone());
    }
    for o in others {
        let same_dims = o.ndim() == out.ndim() && o.dims().iter().all(|d| out.axis(d).is_some());
        if !same_dims {
            continue;
        }
        let o = o.transpose(out.dims())?;
        if o.shape() != out.shape() {
            continue;
        }
        match (&mut mine, vals(&o)?) {
            (Vals::Num(x), Vals::Num(y)) => x
                .iter_mut()
                .zip(y)
                .filter(|(p, _)| p.is_nan())
                .for_each(|(p, q)| *p = q),
            (Vals::Ticks(x), Vals::Ticks(y)) => x
                .iter_mut()
                .zip(y)
                .filter(|(p, _)| **p == NAT)
                .for_each(|(p, q)| *p = q),
            _ => {}
        }
    }
    let chunk = match mine {
        Vals::Num(x) => Chunk::from_f64_vec(out.shape(), x, out.dtype())?,
        Vals::Ticks(x) => Chunk::I64(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(out.shape()), x)
                .map_err(|e| invalid("merge", e.to_string()))?,
        ),
        Vals::Str(_) => return Ok(out.clone()),
    };
    let data = in_memory_like(out, chunk)?;
    Ok(out.replace(out.dims().to_vec(), data))
}

/// xarray's `unique_variable` with `compat="no_conflicts"`.
fn unique_variable(name: &str, vars: &[&Variable], known: Option<bool>) -> Result<Variable> {
    let out = vars[0];
    if vars.len() == 1 {
        return Ok(out.clone());
    }
    let equal = match known {
        Some(e) => e,
        None => {
            let mut eq = true;
            for v in &vars[1..] {
                if !no_conflicts(out, v)? {
                    eq = false;
                    break;
                }
            }
            eq
        }
    };
    if !equal {
        return Err(invalid(
            "merge",
            format!(
                "conflicting values for variable {name:?} on objects to be combined. You can skip this check by specifying compat='override'."
            ),
        ));
    }
    if vars[1..].iter().all(|v| v.data.name() == out.data.name()) {
        return Ok(out.clone());
    }
    fill_missing(out, &vars[1..])
}

type Collected = IndexMap<String, Vec<(Variable, Option<Index>)>>;

/// Every variable of the frames with its index, by name in order of first appearance.
fn collect(frames: &[Frame]) -> Collected {
    let mut out: Collected = IndexMap::new();
    for f in frames {
        for (k, v) in &f.vars {
            out.entry(k.clone())
                .or_default()
                .push((v.clone(), f.indexes.get(k).cloned()));
        }
    }
    out
}

/// xarray's `merge_collected`: one variable per name; indexes must agree, other variables
/// must not conflict.
fn merge_collected(
    grouped: Collected,
    equals: &HashMap<String, bool>,
    how: CombineAttrs,
) -> Result<(IndexMap<String, Variable>, HashMap<String, Index>)> {
    let mut vars = IndexMap::new();
    let mut indexes = HashMap::new();
    for (name, elements) in grouped {
        let indexed: Vec<(&Variable, &Index)> = elements
            .iter()
            .filter_map(|(v, i)| i.as_ref().map(|i| (v, i)))
            .collect();
        let all: Vec<&Variable> = elements.iter().map(|(v, _)| v).collect();
        let attrs: Vec<&Attrs> = all.iter().map(|v| &v.attrs).collect();
        if let Some((v, ix)) = indexed.first() {
            if indexed[1..].iter().any(|(_, o)| !index_equals(ix, o)) {
                return Err(invalid(
                    "merge",
                    format!("conflicting values for index {name:?} on objects to be combined"),
                ));
            }
            let mut v = (*v).clone();
            let idx_attrs: Vec<&Attrs> = indexed.iter().map(|(v, _)| &v.attrs).collect();
            v.attrs = merge_attrs(&idx_attrs, how)?;
            indexes.insert(name.clone(), (*ix).clone());
            vars.insert(name, v);
        } else {
            let mut v = unique_variable(&name, &all, equals.get(&name).copied())?;
            v.attrs = merge_attrs(&attrs, how)?;
            vars.insert(name, v);
        }
    }
    Ok((vars, indexes))
}

// ------------------------------------------------------------------ concat

/// The variables of one name over common dimensions (the concatenation dimension first
/// when some lack it), as xarray's `ensure_common_dims`.
fn ensure_common_dims(
    parts: &[(&Variable, usize)],
    dim: &str,
    sizes: &HashMap<String, usize>,
) -> Result<Vec<Variable>> {
    let mut common: Vec<String> = Vec::new();
    for (v, _) in parts {
        for d in v.dims() {
            if !common.contains(d) {
                common.push(d.clone());
            }
        }
    }
    if !common.iter().any(|d| d == dim) {
        common.insert(0, dim.to_owned());
    }
    parts
        .iter()
        .map(|(v, len)| {
            if v.dims() == common.as_slice() {
                return Ok((*v).clone());
            }
            let shape: Vec<usize> = common
                .iter()
                .map(|d| sizes.get(d).copied().unwrap_or(*len))
                .collect();
            set_dims(v, &common, &shape)
        })
        .collect()
}

/// Variables with the same dimensions joined along `dim` (dtypes promoted; strings are
/// recoded in memory onto one table).
fn concat_variables(name: &str, vars: &[Variable], dim: &str) -> Result<Variable> {
    let first = &vars[0];
    let axis = first.axis_of("concat", dim)?;
    for v in &vars[1..] {
        if v.dims() != first.dims() {
            return Err(invalid(
                "concat",
                format!(
                    "variable {name:?} has dimensions {:?} in one dataset but {:?} in the first",
                    v.dims(),
                    first.dims()
                ),
            ));
        }
    }
    let mismatch = || {
        invalid(
            "concat",
            format!("variable {name:?} holds times, strings and numbers in different datasets"),
        )
    };
    let data = match first.kind() {
        ValueKind::Numeric => {
            if vars.iter().any(|v| !matches!(v.kind(), ValueKind::Numeric)) {
                return Err(mismatch());
            }
            let dtype = vars
                .iter()
                .map(Variable::dtype)
                .reduce(promote)
                .unwrap_or(first.dtype());
            let cast: Vec<ChunkedArray> = vars
                .iter()
                .map(|v| v.data.astype(dtype))
                .collect::<std::result::Result<_, _>>()?;
            let refs: Vec<&ChunkedArray> = cast.iter().collect();
            ChunkedArray::concatenate(&refs, axis as isize)?
        }
        ValueKind::Time(c) => {
            if vars.iter().any(|v| v.calendar() != Some(*c)) {
                return Err(mismatch());
            }
            let refs: Vec<&ChunkedArray> = vars.iter().map(|v| &v.data).collect();
            ChunkedArray::concatenate(&refs, axis as isize)?
        }
        ValueKind::Strings(_) => {
            let mut table: IndexSet<String> = IndexSet::new();
            let mut blocks = Vec::new();
            for v in vars {
                let ValueKind::Strings(t) = v.kind() else {
                    return Err(mismatch());
                };
                let codes = v.ticks()?;
                let recoded: Vec<i64> = codes
                    .iter()
                    .map(|&c| {
                        let s = t.get(c as usize).cloned().unwrap_or_default();
                        table.insert_full(s).0 as i64
                    })
                    .collect();
                blocks.push(
                    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(v.shape()), recoded)
                        .map_err(|e| invalid("concat", e.to_string()))?,
                );
            }
            let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
            let joined = ndarray::concatenate(ndarray::Axis(axis), &views)
                .map_err(|e| invalid("concat", e.to_string()))?;
            let shape = joined.shape().to_vec();
            let out = ChunkedArray::from_chunk(
                Chunk::I64(joined),
                shape.iter().map(|&s| s.max(1)).collect::<Vec<usize>>(),
            )?;
            let mut v = first.replace(first.dims().to_vec(), out);
            v.kind = ValueKind::Strings(Arc::new(table.into_iter().collect()));
            return Ok(v);
        }
    };
    Ok(first.replace(first.dims().to_vec(), data))
}

/// xarray's `concat(datasets, dim)` of datasets that all have `dim` as a dimension or as
/// nothing (a new dimension), on frames.
pub(crate) fn concat_frames(frames: Vec<Frame>, dim: &str, opts: &CombineOptions) -> Result<Frame> {
    const OP: &str = "concat";
    if frames.is_empty() {
        return Err(invalid(OP, "no datasets to concatenate"));
    }
    let frames = align_frames(frames, opts.join, &[dim.to_owned()])?;
    // what the datasets hold
    let frame_dims: Vec<IndexMap<String, usize>> =
        frames.iter().map(Frame::dims).collect::<Result<_>>()?;
    let mut all_dims: IndexSet<String> = IndexSet::new();
    let mut dim_coords: IndexMap<String, Variable> = IndexMap::new();
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let mut coord_names: IndexSet<String> = IndexSet::new();
    let mut data_names: IndexSet<String> = IndexSet::new();
    let mut vars_order: IndexSet<String> = IndexSet::new();
    for (f, dims) in frames.iter().zip(&frame_dims) {
        sizes.extend(dims.iter().map(|(k, v)| (k.clone(), *v)));
        coord_names.extend(f.coords.iter().filter(|c| f.vars.contains_key(*c)).cloned());
        data_names.extend(f.data_names().cloned());
        vars_order.extend(f.vars.keys().cloned());
        for d in dims.keys() {
            if !all_dims.contains(d)
                && f.coords.contains(d)
                && !dim_coords.contains_key(d)
                && let Some(v) = f.vars.get(d)
            {
                dim_coords.insert(d.clone(), v.clone());
            }
        }
        all_dims.extend(dims.keys().cloned());
    }
    let both: Vec<&String> = coord_names.intersection(&data_names).collect();
    if !both.is_empty() {
        return Err(invalid(
            OP,
            format!("{both:?} is a coordinate in some datasets but not others"),
        ));
    }
    let indexed = dim_coords.contains_key(dim);
    dim_coords.shift_remove(dim);
    sizes.remove(dim);
    if (coord_names.contains(dim) || data_names.contains(dim)) && !indexed {
        return Err(invalid(
            OP,
            format!("concatenating along the scalar coordinate {dim:?} is not supported"),
        ));
    }
    // which variables to concatenate
    let mut concat_over: HashSet<String> = HashSet::new();
    let mut equals: HashMap<String, bool> = HashMap::new();
    let mut skip_merge: HashSet<String> = HashSet::new();
    let mut lengths: Vec<usize> = Vec::new();
    if all_dims.contains(dim) {
        concat_over.insert(dim.to_owned());
    }
    for (f, dims) in frames.iter().zip(&frame_dims) {
        concat_over.extend(
            f.vars
                .iter()
                .filter(|(_, v)| v.axis(dim).is_some())
                .map(|(k, _)| k.clone()),
        );
        if f.indexes.contains_key(dim) {
            skip_merge.insert(dim.to_owned());
        }
        lengths.push(dims.get(dim).copied().unwrap_or(1));
    }
    // data_vars="all"
    for (f, dims) in frames.iter().zip(&frame_dims) {
        concat_over.extend(f.data_names().filter(|k| !dims.contains_key(*k)).cloned());
    }
    // coords="different": coordinates whose values differ between the datasets
    let first = &frames[0];
    for k in first.vars.keys().filter(|k| first.coords.contains(*k)) {
        if concat_over.contains(k) {
            continue;
        }
        let vars: Vec<&Variable> = frames.iter().filter_map(|f| f.vars.get(k)).collect();
        if vars.len() == 1 {
            // as xarray: a coordinate only one dataset has ends the comparisons
            break;
        }
        if vars.len() != frames.len() {
            return Err(invalid(
                OP,
                format!(
                    "{k:?} not present in all datasets and coords='different'. Either add {k:?} to datasets where it is missing or specify coords='minimal'."
                ),
            ));
        }
        let mut equal = true;
        for v in &vars[1..] {
            if !no_conflicts(vars[0], v)? {
                equal = false;
                break;
            }
        }
        if !equal {
            concat_over.insert(k.clone());
        }
        equals.insert(k.clone(), equal);
    }
    // the others are merged
    let grouped: Collected = collect(&frames)
        .into_iter()
        .filter(|(k, _)| {
            (coord_names.contains(k) || data_names.contains(k))
                && !concat_over.contains(k)
                && !skip_merge.contains(k)
        })
        .collect();
    let (mut result_vars, mut result_indexes) =
        merge_collected(grouped, &equals, CombineAttrs::Override)?;
    for (k, v) in dim_coords {
        result_vars.insert(k, v);
    }
    let attr_list: Vec<&Attrs> = frames.iter().map(|f| &f.attrs).collect();
    let attrs = merge_attrs(&attr_list, opts.combine_attrs)?;
    let encoding = first.encoding.clone();
    for name in &vars_order {
        if concat_over.contains(name) && !result_indexes.contains_key(name) {
            let mut parts: Vec<(&Variable, usize)> = Vec::new();
            let mut present: Vec<bool> = Vec::new();
            for (f, &len) in frames.iter().zip(&lengths) {
                match f.vars.get(name) {
                    Some(v) => {
                        parts.push((v, len));
                        present.push(true);
                    }
                    None if coord_names.contains(name) => {
                        return Err(invalid(
                            OP,
                            format!("coordinate {name:?} not present in all datasets"),
                        ));
                    }
                    None => present.push(false),
                }
            }
            let var_attrs: Vec<&Attrs> = parts.iter().map(|(v, _)| &v.attrs).collect();
            let merged_attrs = merge_attrs(&var_attrs, opts.combine_attrs)?;
            let with_index: Vec<&Index> =
                frames.iter().filter_map(|f| f.indexes.get(name)).collect();
            if !with_index.is_empty() {
                if with_index.len() < frames.len() {
                    return Err(invalid(
                        OP,
                        format!(
                            "{name:?} must have either an index or no index in all datasets, found {}/{} datasets with an index",
                            with_index.len(),
                            frames.len()
                        ),
                    ));
                }
                let idx = concat_indexes(name, &with_index)?;
                let dtype = parts.iter().map(|(v, _)| v.dtype()).reduce(promote);
                let mut v = index_variable(&idx, name, Some(parts[0].0), dtype)?;
                v.attrs = merged_attrs;
                result_indexes.insert(name.clone(), idx);
                result_vars.insert(name.clone(), v);
            } else {
                let common = ensure_common_dims(&parts, dim, &sizes)?;
                let mut v = concat_variables(name, &common, dim)?;
                v.attrs = merged_attrs;
                if present.contains(&false) {
                    // NaN where a dataset lacks the variable
                    let mut pos = Vec::new();
                    let mut at = 0;
                    for (&p, &len) in present.iter().zip(&lengths) {
                        for _ in 0..len {
                            pos.push(if p {
                                at += 1;
                                Some(at - 1)
                            } else {
                                None
                            });
                        }
                    }
                    v = reindex_variable(&v, &[(dim.to_owned(), pos)])?;
                }
                result_vars.insert(name.clone(), v);
            }
        } else if let Some(v) = result_vars.shift_remove(name) {
            // keep the variables' order
            result_vars.insert(name.clone(), v);
        }
    }
    let absent: Vec<&String> = coord_names
        .iter()
        .filter(|c| !result_vars.contains_key(*c))
        .collect();
    if !absent.is_empty() {
        return Err(invalid(
            OP,
            format!("variables {absent:?} are coordinates in some datasets but not others"),
        ));
    }
    let mut coords: IndexSet<String> = coord_names;
    coords.extend(result_indexes.keys().cloned());
    // data variables first, then coordinates (xarray's Dataset constructor)
    let mut vars: IndexMap<String, Variable> = IndexMap::new();
    for (k, v) in &result_vars {
        if !coords.contains(k) {
            vars.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in result_vars {
        if coords.contains(&k) {
            vars.insert(k, v);
        }
    }
    Ok(Frame {
        vars,
        coords,
        indexes: result_indexes,
        attrs,
        encoding,
    })
}

// ------------------------------------------------------------------ merge

/// xarray's `merge` on frames: aligned, then one variable per name.
pub(crate) fn merge_frames(frames: Vec<Frame>, opts: &CombineOptions) -> Result<Frame> {
    let aligned = align_frames(frames, opts.join, &[])?;
    let mut coord_names: IndexSet<String> = IndexSet::new();
    let mut data_names: HashSet<String> = HashSet::new();
    for f in &aligned {
        coord_names.extend(f.coords.iter().cloned());
        data_names.extend(f.data_names().cloned());
    }
    let (vars, indexes) = merge_collected(collect(&aligned), &HashMap::new(), opts.combine_attrs)?;
    let dims = calculate_dimensions(vars.iter())?;
    coord_names.retain(|k| vars.contains_key(k));
    for d in dims.keys() {
        if vars.contains_key(d) {
            coord_names.insert(d.clone());
        }
    }
    let ambiguous: Vec<&String> = coord_names
        .iter()
        .filter(|k| data_names.contains(*k))
        .collect();
    if !ambiguous.is_empty() {
        return Err(invalid(
            "merge",
            format!(
                "unable to determine if these variables should be coordinates or not in the merged result: {ambiguous:?}"
            ),
        ));
    }
    let attr_list: Vec<&Attrs> = aligned.iter().map(|f| &f.attrs).collect();
    Ok(Frame {
        vars,
        coords: coord_names,
        indexes,
        attrs: merge_attrs(&attr_list, opts.combine_attrs)?,
        encoding: Attrs::new(),
    })
}

// ------------------------------------------------------------------ combine_by_coords

/// xarray's `_infer_concat_order_from_coords`: the dimensions whose index differs between
/// the datasets, and each dataset's position along them (ranked by first label).
fn infer_concat_order(frames: &[Frame]) -> Result<(Vec<Vec<usize>>, Vec<String>)> {
    const OP: &str = "combine_by_coords";
    let mut tiles: Vec<Vec<usize>> = vec![Vec::new(); frames.len()];
    let mut concat_dims = Vec::new();
    let ds0 = &frames[0];
    for dim in ds0.dims()?.keys() {
        if !ds0.vars.contains_key(dim) {
            continue;
        }
        let mut idx: Vec<&Index> = Vec::with_capacity(frames.len());
        for f in frames {
            idx.push(f.indexes.get(dim).ok_or_else(|| {
                invalid(
                    OP,
                    format!(
                        "Every dimension requires a corresponding 1D coordinate and index for inferring concatenation order but the coordinate {dim:?} has no corresponding index"
                    ),
                )
            })?);
        }
        if idx[1..].iter().all(|i| index_equals(i, idx[0])) {
            continue;
        }
        concat_dims.push(dim.clone());
        let mono: Vec<(bool, bool)> = idx.iter().map(|i| monotonic(i)).collect();
        let ascending = if mono.iter().all(|m| m.0) {
            true
        } else if mono.iter().all(|m| m.1) {
            false
        } else {
            return Err(invalid(
                OP,
                format!(
                    "Coordinate variable {dim} is neither monotonically increasing nor monotonically decreasing on all datasets"
                ),
            ));
        };
        if idx.iter().any(|i| i.is_empty()) {
            return Err(invalid(OP, "Cannot handle size zero dimensions"));
        }
        // first labels, ranked densely; they must be of one kind (numbers mix)
        let kinds: Vec<Kind> = idx.iter().map(|i| kind_of(i.values())).collect();
        let kind = if kinds.iter().all(|k| *k == kinds[0]) {
            kinds[0]
        } else if kinds.iter().all(|k| matches!(k, Kind::Int | Kind::Float)) {
            Kind::Float
        } else {
            return Err(invalid(
                OP,
                format!("Cannot combine along dimension {dim:?} with mixed types"),
            ));
        };
        let firsts: Vec<Key> = idx
            .iter()
            .map(|i| keys(i.values(), kind).swap_remove(0))
            .collect();
        let mut distinct: Vec<Key> = firsts.clone();
        distinct.sort();
        distinct.dedup();
        if !ascending {
            distinct.reverse();
        }
        for (t, k) in tiles.iter_mut().zip(&firsts) {
            t.push(distinct.iter().position(|d| d == k).unwrap_or(0));
        }
    }
    if frames.len() > 1 && concat_dims.is_empty() {
        return Err(invalid(
            OP,
            "Could not find any dimension coordinates to use to order the Dataset objects for concatenation",
        ));
    }
    Ok((tiles, concat_dims))
}

/// xarray's `_combine_single_variable_hypercube`: datasets holding the same variables,
/// concatenated along each differing dimension in turn.
fn combine_hypercube(frames: Vec<Frame>, opts: &CombineOptions) -> Result<Frame> {
    let (tiles, concat_dims) = infer_concat_order(&frames)?;
    let mut ids: IndexMap<Vec<usize>, Frame> = IndexMap::new();
    for (t, f) in tiles.into_iter().zip(frames) {
        // as a Python dict: the same position twice keeps the last dataset
        ids.insert(t, f);
    }
    for dim in &concat_dims {
        let mut lines: IndexMap<Vec<usize>, Vec<(Vec<usize>, Frame)>> = IndexMap::new();
        for (t, f) in ids {
            lines.entry(t[1..].to_vec()).or_default().push((t, f));
        }
        let mut next = IndexMap::new();
        for (id, mut line) in lines {
            line.sort_by(|a, b| a.0.cmp(&b.0));
            let parts = line.into_iter().map(|(_, f)| f).collect();
            next.insert(id, concat_frames(parts, dim, opts)?);
        }
        ids = next;
    }
    let out = ids
        .into_iter()
        .next()
        .map(|(_, f)| f)
        .ok_or_else(|| invalid("combine_by_coords", "no datasets"))?;
    for dim in &concat_dims {
        let ok = out.indexes.get(dim).is_some_and(|i| {
            let (up, down) = monotonic(i);
            up || down
        });
        if !ok {
            return Err(invalid(
                "combine_by_coords",
                format!(
                    "Resulting object does not have monotonic global indexes along dimension {dim}"
                ),
            ));
        }
    }
    Ok(out)
}

/// Combines datasets by their coordinates, as xarray's `combine_by_coords`: datasets are
/// grouped by their data variables (in order of first appearance); each group is
/// concatenated along every dimension whose index differs between its datasets, ordered by
/// the first label (dimensions in the first dataset's order); the groups are then merged.
/// Other indexes are joined as `options.join` says (outer: NaN where a dataset lacks
/// labels). Errors name the operation and the dimension or variable.
pub fn combine_by_coords(datasets: &[Dataset], options: &CombineOptions) -> Result<Dataset> {
    let frames = datasets.iter().map(Frame::from_dataset).collect();
    combine_frames(frames, options)?.into_dataset()
}

pub(crate) fn combine_frames(frames: Vec<Frame>, opts: &CombineOptions) -> Result<Frame> {
    if frames.is_empty() {
        return Ok(Frame::default());
    }
    let mut groups: IndexMap<Vec<String>, Vec<Frame>> = IndexMap::new();
    for f in frames {
        let mut names: Vec<String> = f.data_names().cloned().collect();
        names.sort();
        groups.entry(names).or_default().push(f);
    }
    let combined = groups
        .into_values()
        .map(|g| combine_hypercube(g, opts))
        .collect::<Result<Vec<Frame>>>()?;
    merge_frames(combined, opts)
}

/// Concatenates datasets along `dim` (an existing dimension with an index, or a new one),
/// as xarray's `concat` with `data_vars="all"`, `coords="different"`,
/// `compat="no_conflicts"`: other indexes are joined first (`options.join`), variables
/// lacking from some datasets are NaN there.
pub fn concat(datasets: &[Dataset], dim: &str, options: &CombineOptions) -> Result<Dataset> {
    let frames = datasets.iter().map(Frame::from_dataset).collect();
    concat_frames(frames, dim, options)?.into_dataset()
}

/// Merges datasets, as xarray's `merge` with `compat="no_conflicts"`: aligned first
/// (`options.join`), then one variable per name (values present in several must agree
/// where both have them).
pub fn merge(datasets: &[Dataset], options: &CombineOptions) -> Result<Dataset> {
    let frames = datasets.iter().map(Frame::from_dataset).collect();
    merge_frames(frames, options)?.into_dataset()
}

// ------------------------------------------------------------------ per-file steps

fn unknown(op: &str, name: &str, f: &Frame) -> DatasetError {
    DatasetError::UnknownName {
        op: op.to_owned(),
        name: name.to_owned(),
        available: f.vars.keys().cloned().collect::<Vec<_>>().join(", "),
    }
}

impl Dataset {
    /// xarray's `ds[v] = ds[v].expand_dims({dim: labels, ...})` for each of `names`: the
    /// data variables get the new dimensions in front, in order (each as long as its 1-d
    /// coordinate in `new_dims`), in place; the new coordinates follow the other variables.
    /// What intake-esm does to each asset for its `join_new` aggregations.
    pub fn expand_variables(
        &self,
        names: &[&str],
        new_dims: &[(&str, Variable)],
    ) -> Result<Dataset> {
        const OP: &str = "expand_dims";
        let mut f = Frame::from_dataset(self);
        let dims = f.dims()?;
        for (d, label) in new_dims {
            if label.ndim() != 1 || label.dims()[0] != *d {
                return Err(invalid(
                    OP,
                    format!("the coordinate of new dimension {d:?} must be 1-d along it"),
                ));
            }
            if dims.contains_key(*d) || f.vars.contains_key(*d) {
                return Err(invalid(OP, format!("dimension {d:?} already exists")));
            }
        }
        for n in names {
            let v = f.vars.get(*n).ok_or_else(|| unknown(OP, n, &f))?;
            if f.coords.contains(*n) {
                return Err(invalid(
                    OP,
                    format!("{n:?} is a coordinate, not a data variable"),
                ));
            }
            let mut data = v.data.clone();
            let mut vdims: Vec<String> = Vec::new();
            for (i, (d, label)) in new_dims.iter().enumerate() {
                data = data.expand_dims(i as isize)?;
                let len = label.shape()[0];
                if len != 1 {
                    let copies: Vec<&ChunkedArray> = std::iter::repeat_n(&data, len).collect();
                    data = ChunkedArray::concatenate(&copies, i as isize)?;
                }
                vdims.push((*d).to_owned());
            }
            vdims.extend(v.dims().iter().cloned());
            let expanded = v.replace(vdims, data);
            f.vars.insert((*n).to_owned(), expanded);
        }
        if !names.is_empty() {
            for (d, label) in new_dims {
                f.indexes
                    .insert((*d).to_owned(), Index::from_variable(label)?);
                f.coords.insert((*d).to_owned());
                f.vars.insert((*d).to_owned(), label.clone());
            }
        }
        f.into_dataset()
    }

    /// The listed variables with the coordinates along their dimensions (xarray's
    /// `ds[[names]]`); attributes are kept.
    pub fn subset(&self, names: &[&str]) -> Result<Dataset> {
        let f = Frame::from_dataset(self);
        let mut vars: IndexMap<String, Variable> = IndexMap::new();
        let mut needed: HashSet<String> = HashSet::new();
        for n in names {
            let v = f.vars.get(*n).ok_or_else(|| unknown("subset", n, &f))?;
            needed.extend(v.dims().iter().cloned());
            vars.insert((*n).to_owned(), v.clone());
        }
        for (k, v) in &f.vars {
            if f.coords.contains(k)
                && !vars.contains_key(k)
                && v.dims().iter().all(|d| needed.contains(d))
            {
                vars.insert(k.clone(), v.clone());
            }
        }
        let coords: IndexSet<String> = f
            .coords
            .iter()
            .filter(|c| vars.contains_key(*c))
            .cloned()
            .collect();
        let indexes = f
            .indexes
            .into_iter()
            .filter(|(k, _)| coords.contains(k))
            .collect();
        Frame {
            vars,
            coords,
            indexes,
            attrs: f.attrs,
            encoding: f.encoding,
        }
        .into_dataset()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dataarray::Coords;
    use gridflow_array::DType;

    fn piece(var: &str, member: &str, t0: f64, nt: usize, value: f64) -> Dataset {
        let mut coords = Coords::new();
        coords.insert(
            "time".into(),
            Variable::from_f64("time", (0..nt).map(|i| t0 + i as f64).collect()).unwrap(),
        );
        let data = ChunkedArray::full(
            &[nt],
            gridflow_array::Scalar::Float(value),
            [nt],
            DType::F32,
        )
        .unwrap();
        let mut vars = IndexMap::new();
        vars.insert(var.to_string(), Variable::new(["time"], data).unwrap());
        let mut attrs = Attrs::new();
        attrs.insert("member".into(), member.into());
        attrs.insert("source".into(), "m".into());
        let ds = Dataset::new(vars, coords, attrs).unwrap();
        let label = Variable::from_strings("member", vec![member.to_owned()]).unwrap();
        ds.expand_variables(&[var], &[("member", label)]).unwrap()
    }

    #[test]
    fn expand_variables_keeps_the_order_and_appends_the_coordinate() {
        let p = piece("tas", "r1", 0.0, 3, 1.0);
        assert_eq!(p.variable_order(), ["tas", "time", "member"]);
        assert_eq!(p.get("tas").unwrap().dims(), ["member", "time"]);
        let e = p
            .expand_variables(
                &["tas"],
                &[("member", Variable::from_f64("member", vec![1.0]).unwrap())],
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists"), "{e}");
    }

    #[test]
    fn ragged_members_and_time_pieces_combine_with_nan_blocks() {
        // r1 has two time pieces (given late first), r2 only the first; pr only for r1
        let parts = [
            piece("tas", "r1", 3.0, 3, 1.0),
            piece("tas", "r1", 0.0, 3, 2.0),
            piece("tas", "r2", 0.0, 3, 3.0),
            piece("pr", "r1", 0.0, 6, 4.0),
        ];
        let ds = combine_by_coords(&parts, &CombineOptions::intake_esm()).unwrap();
        assert_eq!(ds.dims().keys().collect::<Vec<_>>(), ["member", "time"]);
        let tas = ds.get("tas").unwrap();
        let v = tas.to_f64_vec().unwrap();
        // r1: 2 2 2 1 1 1; r2: 3 3 3 NaN NaN NaN
        assert_eq!(v[..6], [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]);
        assert_eq!(v[6..9], [3.0, 3.0, 3.0]);
        assert!(v[9..].iter().all(|x| x.is_nan()));
        assert_eq!(tas.dtype(), DType::F32);
        let pr = ds.get("pr").unwrap().to_f64_vec().unwrap();
        assert_eq!(pr.iter().filter(|x| x.is_nan()).count(), 6);
        // xarray 2026.9 gives the same (variables in its order included)
        assert_eq!(ds.variable_order(), ["member", "time", "tas", "pr"]);
        // attributes: conflicting ones are dropped where datasets are joined, but the lone
        // r1 piece brings its member back (drop_conflicts, node by node, as xarray)
        assert_eq!(ds.attrs.get("source"), Some(&Value::from("m")));
        assert_eq!(ds.attrs.get("member"), Some(&Value::from("r1")));
        let two = combine_by_coords(&parts[1..3], &CombineOptions::intake_esm()).unwrap();
        assert!(!two.attrs.contains_key("member"));
        let members = ds.get("member").unwrap();
        assert_eq!(members.dims(), ["member"]);
        assert_eq!(ds.indexes()["member"].label_string(1), "r2");
    }

    #[test]
    fn non_monotonic_results_and_missing_indexes_fail_like_xarray() {
        let parts = [
            piece("tas", "r1", 0.0, 6, 1.0),
            piece("tas", "r2", 0.0, 4, 1.0),
            piece("tas", "r2", 4.0, 2, 1.0),
            piece("tas", "r1", 6.0, 3, 1.0),
        ];
        let e = combine_by_coords(&parts, &CombineOptions::intake_esm())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monotonic global indexes along dimension time"),
            "{e}"
        );
        let same = [
            piece("tas", "r1", 0.0, 2, 1.0),
            piece("tas", "r1", 0.0, 2, 1.0),
        ];
        let e = combine_by_coords(&same, &CombineOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Could not find any dimension coordinates"),
            "{e}"
        );
    }

    #[test]
    fn merge_attrs_follows_xarray() {
        let a: Attrs = serde_json::from_str(r#"{"x": 1, "y": [1, 2], "z": "a"}"#).unwrap();
        let b: Attrs = serde_json::from_str(r#"{"x": 1.0, "y": [1, 3], "w": true}"#).unwrap();
        let c: Attrs = serde_json::from_str(r#"{"y": [1, 2]}"#).unwrap();
        let d = merge_attrs(&[&a, &b, &c], CombineAttrs::DropConflicts).unwrap();
        assert_eq!(
            Value::Object(d),
            serde_json::json!({"x": 1, "z": "a", "w": true})
        );
        assert!(merge_attrs(&[&a, &b], CombineAttrs::NoConflicts).is_err());
        assert_eq!(merge_attrs(&[&a, &b], CombineAttrs::Override).unwrap(), a);
        assert!(
            merge_attrs(&[&a, &b], CombineAttrs::Drop)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn concat_fills_variables_missing_from_some_datasets() {
        let mut a = piece("tas", "r1", 0.0, 2, 1.0);
        a.insert("pr", a.get("tas").unwrap().variable().clone())
            .unwrap();
        let b = piece("tas", "r2", 0.0, 2, 5.0);
        let e = concat(
            &[a.clone(), b.clone()],
            "member",
            &CombineOptions::default(),
        );
        assert!(e.unwrap_err().to_string().contains("no_conflicts"));
        let out = concat(&[a, b], "member", &CombineOptions::intake_esm()).unwrap();
        let pr = out.get("pr").unwrap();
        assert_eq!(pr.dims(), ["member", "time"]);
        let v = pr.to_f64_vec().unwrap();
        assert_eq!(v[..2], [1.0, 1.0]);
        assert!(v[2..].iter().all(|x| x.is_nan()));
    }

    /// A dataset of 1-d float coordinates and data variables over them.
    fn build(vars: &[(&str, &[&str], Vec<f64>, DType)], coords: &[(&str, Vec<f64>)]) -> Dataset {
        let mut c = Coords::new();
        for (name, v) in coords {
            c.insert((*name).into(), Variable::from_f64(name, v.clone()).unwrap());
        }
        let mut d = IndexMap::new();
        for (name, dims, values, dtype) in vars {
            let shape: Vec<usize> = dims.iter().map(|x| c[*x].shape()[0]).collect();
            let chunk = Chunk::from_f64_vec(&shape, values.clone(), *dtype).unwrap();
            let data = ChunkedArray::from_chunk(chunk, shape.clone()).unwrap();
            d.insert(
                (*name).to_string(),
                Variable::new(dims.iter().copied(), data).unwrap(),
            );
        }
        Dataset::new(d, c, Attrs::new()).unwrap()
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn a_ragged_hypercube_gives_what_xarray_gives() {
        // expected values: xarray 2026.9.0's combine_by_coords on the same datasets
        let a = build(
            &[(
                "v",
                &["time", "lat"],
                (0..6).map(f64::from).collect(),
                DType::I16,
            )],
            &[("time", vec![0.0, 1.0, 2.0]), ("lat", vec![10.0, 20.0])],
        );
        let b = build(
            &[(
                "v",
                &["time", "lat"],
                (10..16).map(f64::from).collect(),
                DType::I16,
            )],
            &[("time", vec![3.0, 4.0, 5.0]), ("lat", vec![20.0, 30.0])],
        );
        let r = combine_by_coords(&[a, b], &CombineOptions::intake_esm()).unwrap();
        assert_eq!(r.variable_order(), ["v", "time", "lat"]);
        let lat = r.get("lat").unwrap().to_f64_vec().unwrap();
        assert_eq!(lat, [10.0, 20.0, 20.0, 30.0]);
        let v = r.get("v").unwrap();
        assert_eq!(v.dtype(), DType::F32);
        let n = f64::NAN;
        let want = [
            0.0, 1.0, n, n, 2.0, 3.0, n, n, 4.0, 5.0, n, n, n, n, 10.0, 11.0, n, n, 12.0, 13.0, n,
            n, 14.0, 15.0,
        ];
        assert!(same(&v.to_f64_vec().unwrap(), &want));
    }

    #[test]
    fn overlapping_groups_fill_each_other_as_in_xarray() {
        // tas alone for r1, tas and pr for r2: tas is in both groups and merged (no_conflicts)
        let member = |m: &str| Variable::from_strings("member_id", vec![m.to_owned()]).unwrap();
        let h0 = build(
            &[("tas", &["time"], vec![1.0, 2.0, 3.0], DType::F32)],
            &[("time", vec![0.0, 1.0, 2.0])],
        )
        .expand_variables(&["tas"], &[("member_id", member("r1"))])
        .unwrap();
        let h1 = build(
            &[
                ("tas", &["time"], vec![4.0, 5.0, 6.0], DType::F32),
                ("pr", &["time"], vec![7.0, 8.0, 9.0], DType::F64),
            ],
            &[("time", vec![0.0, 1.0, 2.0])],
        )
        .expand_variables(&["tas", "pr"], &[("member_id", member("r2"))])
        .unwrap();
        let r = combine_by_coords(&[h0, h1], &CombineOptions::intake_esm()).unwrap();
        assert_eq!(r.variable_order(), ["time", "member_id", "tas", "pr"]);
        assert_eq!(r.dims().keys().collect::<Vec<_>>(), ["time", "member_id"]);
        let tas = r.get("tas").unwrap();
        assert_eq!(tas.dims(), ["member_id", "time"]);
        assert_eq!(tas.to_f64_vec().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let pr = r.get("pr").unwrap().to_f64_vec().unwrap();
        assert!(same(&pr, &[f64::NAN, f64::NAN, f64::NAN, 7.0, 8.0, 9.0]));
    }
}
