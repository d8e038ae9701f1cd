//! `groupby`, `resample`, `weighted` and `rolling` on data arrays.

use crate::dataarray::{Coords, DataArray, Reduction, union_dims};
use crate::error::{DatasetError, Result, invalid, time_err};
use crate::index::{Index, IndexValues};
use crate::variable::{IndexSel, ValueKind, Variable};
use gridflow_array::groupby::{GroupOptions, GroupStat};
use gridflow_array::kernels::BinaryOp;
use gridflow_array::{ChunkedArray, DType, Scalar};
use gridflow_cftime::{Calendar, DateTime, Frequency};
use indexmap::IndexMap;

/// A datetime component usable as a group key (`"time.month"`).
fn component(cal: Calendar, t: i64, name: &str) -> Option<GroupKey> {
    let dt: DateTime = cal.from_ticks(t);
    Some(match name {
        "year" => GroupKey::Int(i64::from(dt.year())),
        "month" => GroupKey::Int(i64::from(dt.month())),
        "day" => GroupKey::Int(i64::from(dt.day())),
        "hour" => GroupKey::Int(i64::from(dt.hour())),
        "minute" => GroupKey::Int(i64::from(dt.minute())),
        "second" => GroupKey::Int(i64::from(dt.second())),
        "dayofyear" => GroupKey::Int(i64::from(cal.dayofyear(&dt))),
        "dayofweek" => GroupKey::Int(i64::from(cal.dayofweek(&dt))),
        "season" => GroupKey::Str(gridflow_cftime::season(dt.month()).to_owned()),
        _ => return None,
    })
}

const COMPONENTS: &str = "year, month, day, hour, minute, second, dayofyear, dayofweek, season";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    Int(i64),
    Str(String),
    Float(u64),
}

/// Positions grouped by a key: the result of `groupby` or `resample`, waiting for a
/// reduction or for group-wise arithmetic.
#[derive(Clone, Debug)]
pub struct GroupBy {
    obj: DataArray,
    /// The dimension grouped along.
    dim: String,
    /// The name of the groups' dimension in results (`month`, `season`, or `time` when
    /// resampling).
    group_dim: String,
    /// Group of each position along `dim` (`-1`: none).
    codes: Vec<i64>,
    /// The groups' labels.
    labels: Variable,
}

impl DataArray {
    /// Groups along a coordinate's dimension by its values, or by a datetime component
    /// (`"time.month"`, `"time.season"`, `"time.year"`, `"time.dayofyear"`, `"time.hour"`).
    /// Groups come out sorted, as in xarray.
    pub fn groupby(&self, key: &str) -> Result<GroupBy> {
        let (coord_name, comp) = match key.split_once('.') {
            Some((c, p)) => (c, Some(p)),
            None => (key, None),
        };
        let coord = self
            .coords
            .get(coord_name)
            .ok_or_else(|| DatasetError::UnknownName {
                op: "groupby".into(),
                name: coord_name.to_owned(),
                available: self.coords.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        if coord.ndim() != 1 {
            return Err(invalid(
                "groupby",
                format!(
                    "{coord_name:?} has dims {:?}; grouping needs a 1-d coordinate",
                    coord.dims()
                ),
            ));
        }
        let dim = coord.dims()[0].clone();
        let keys: Vec<GroupKey> = match (comp, coord.kind()) {
            (Some(c), ValueKind::Time(cal)) => {
                let ticks = coord.ticks()?;
                ticks
                    .iter()
                    .map(|&t| {
                        component(*cal, t, c).ok_or_else(|| {
                            invalid(
                                "groupby",
                                format!("{key:?}: unknown datetime component {c:?} (known: {COMPONENTS})"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?
            }
            (Some(_), _) => {
                return Err(invalid(
                    "groupby",
                    format!("{key:?}: {coord_name:?} does not hold datetimes"),
                ));
            }
            (None, ValueKind::Strings(table)) => coord
                .ticks()?
                .iter()
                .map(|&c| GroupKey::Str(table.get(c as usize).cloned().unwrap_or_default()))
                .collect(),
            (None, ValueKind::Time(_)) => coord.ticks()?.into_iter().map(GroupKey::Int).collect(),
            (None, ValueKind::Numeric) if coord.dtype().is_float() => coord
                .to_f64_vec()?
                .into_iter()
                .map(|v| GroupKey::Float(order_bits(v)))
                .collect(),
            (None, ValueKind::Numeric) => coord.ticks()?.into_iter().map(GroupKey::Int).collect(),
        };
        let mut uniq: Vec<GroupKey> = keys.clone();
        uniq.sort();
        uniq.dedup();
        let codes: Vec<i64> = keys
            .iter()
            .map(|k| uniq.binary_search(k).map_or(-1, |i| i as i64))
            .collect();
        let group_dim = comp.unwrap_or(coord_name).to_owned();
        let labels = match uniq.first() {
            Some(GroupKey::Str(_)) => Variable::from_strings(
                &group_dim,
                uniq.iter()
                    .map(|k| match k {
                        GroupKey::Str(s) => s.clone(),
                        _ => String::new(),
                    })
                    .collect(),
            )?,
            Some(GroupKey::Float(_)) => Variable::from_f64(
                &group_dim,
                uniq.iter()
                    .map(|k| match k {
                        GroupKey::Float(b) => from_order_bits(*b),
                        _ => f64::NAN,
                    })
                    .collect(),
            )?,
            _ => {
                let ints: Vec<i64> = uniq
                    .iter()
                    .map(|k| match k {
                        GroupKey::Int(i) => *i,
                        _ => 0,
                    })
                    .collect();
                match (comp, coord.kind()) {
                    (None, ValueKind::Time(cal)) => {
                        Variable::from_ticks([group_dim.as_str()], &[ints.len()], ints, *cal)?
                    }
                    _ => Index::new(IndexValues::Int(ints.into())).to_variable(&group_dim)?,
                }
            }
        };
        Ok(GroupBy {
            obj: self.clone(),
            dim,
            group_dim,
            codes,
            labels,
        })
    }

    /// Groups a time dimension into bins of `freq` (`"1D"`, `"6h"`, `"MS"`, `"ME"`, `"YS"`,
    /// ...), as xarray's `resample(time=freq)`; empty bins give NaN.
    pub fn resample(&self, dim: &str, freq: &str) -> Result<GroupBy> {
        let index = self
            .indexes
            .get(dim)
            .ok_or_else(|| DatasetError::UnknownDim {
                op: "resample".into(),
                dim: dim.to_owned(),
                available: format!("{:?}", self.dims()),
            })?;
        let (ticks, cal) = index.time_ticks(&format!("resample({dim}={freq:?})"))?;
        let f =
            Frequency::parse(freq).map_err(|e| time_err(format!("resample({dim}={freq:?})"), e))?;
        if ticks.windows(2).any(|w| w[1] < w[0]) {
            return Err(invalid(
                "resample",
                format!("the {dim:?} index is not sorted"),
            ));
        }
        let (codes, labels) = resample_bins(cal, ticks, &f)?;
        Ok(GroupBy {
            obj: self.clone(),
            dim: dim.to_owned(),
            group_dim: dim.to_owned(),
            codes,
            labels: Variable::from_ticks([dim], &[labels.len()], labels, cal)?,
        })
    }

    /// Weighted reductions with `weights` (aligned by dimension name), as xarray's
    /// `weighted`.
    pub fn weighted(&self, weights: &DataArray) -> Result<Weighted> {
        if !matches!(weights.variable.kind(), ValueKind::Numeric) {
            return Err(invalid("weighted", "weights must be numbers"));
        }
        Ok(Weighted {
            obj: self.clone(),
            weights: weights.clone(),
        })
    }

    /// A moving window of `window` positions along `dim`, ending at each position (xarray's
    /// `rolling(dim=window)`, `center=False`, `min_periods=window` unless set).
    pub fn rolling(&self, dim: &str, window: usize) -> Result<Rolling> {
        let axis = self.variable.axis_of("rolling", dim)?;
        if window == 0 || window > self.shape()[axis].max(1) {
            return Err(invalid(
                "rolling",
                format!(
                    "window {window} must be between 1 and the length {} of {dim:?}",
                    self.shape()[axis]
                ),
            ));
        }
        Ok(Rolling {
            obj: self.clone(),
            dim: dim.to_owned(),
            window,
            min_periods: None,
        })
    }
}

/// Bins of a resample: the code of every tick and the bin labels.
pub(crate) fn resample_bins(
    cal: Calendar,
    ticks: &[i64],
    f: &Frequency,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let Some(&first) = ticks.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let d = cal.from_ticks(first);
    let day = DateTime::new(cal, d.year(), d.month(), d.day(), 0, 0, 0, 0)
        .map_err(|e| time_err("resample", e))?;
    let origin = cal.to_ticks(&day);
    let floors: Vec<i64> = ticks.iter().map(|&t| f.floor(cal, t, origin)).collect();
    let last = floors.iter().copied().max().unwrap_or(first);
    let mut labels = vec![floors[0]];
    while let Some(&l) = labels.last() {
        if l >= last {
            break;
        }
        let next = f.advance(cal, l, 1);
        if next <= l || labels.len() > 50_000_000 {
            return Err(time_err("resample", "the frequency does not advance"));
        }
        labels.push(next);
    }
    let codes = floors
        .iter()
        .map(|fl| labels.binary_search(fl).map_or(-1, |i| i as i64))
        .collect();
    Ok((codes, labels))
}

/// Float keys as order-preserving bits (so they sort and dedup as numbers).
fn order_bits(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

fn from_order_bits(b: u64) -> f64 {
    if b >> 63 == 1 {
        f64::from_bits(b & !(1 << 63))
    } else {
        f64::from_bits(!b)
    }
}

impl GroupBy {
    /// The number of groups.
    pub fn len(&self) -> usize {
        self.labels.shape()[0]
    }

    /// True when there are no groups.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The group labels as a variable along the groups' dimension.
    pub fn labels(&self) -> &Variable {
        &self.labels
    }

    /// The dimension grouped along.
    pub fn dim(&self) -> &str {
        &self.dim
    }

    /// Reduces every group (over the grouped dimension) with map-reduce inside the task
    /// graph; see [`gridflow_array::groupby`].
    pub fn reduce(&self, reduction: Reduction, skipna: Option<bool>) -> Result<DataArray> {
        let obj = &self.obj;
        let axis = obj.variable.axis_of("groupby", &self.dim)?;
        let ngroups = self.len();
        let data = if reduction == Reduction::Median {
            self.median_by_group(axis)?
        } else {
            let stat = match reduction {
                Reduction::Sum => GroupStat::Sum,
                Reduction::Mean => GroupStat::Mean,
                Reduction::Min => GroupStat::Min,
                Reduction::Max => GroupStat::Max,
                Reduction::Std(d) => GroupStat::Std(d),
                Reduction::Var(d) => GroupStat::Var(d),
                Reduction::Count => GroupStat::Count,
                Reduction::Any => GroupStat::Any,
                Reduction::All => GroupStat::All,
                Reduction::Prod | Reduction::Median => {
                    return Err(invalid(
                        "groupby",
                        format!("{} is not supported on groups", reduction.name()),
                    ));
                }
            };
            if !matches!(obj.variable.kind(), ValueKind::Numeric) {
                return Err(invalid(
                    "groupby",
                    format!("{} does not hold numbers", obj.label()),
                ));
            }
            let opts = GroupOptions {
                skipna: skipna.unwrap_or(true),
                ..GroupOptions::default()
            };
            obj.data()
                .group_reduce(axis as isize, &self.codes, ngroups, stat, opts)?
        };
        let mut dims = obj.dims().to_vec();
        dims[axis] = self.group_dim.clone();
        let variable = Variable::derived_keeping(dims, data, &obj.variable.attrs);
        let mut coords: Coords = obj
            .coords
            .iter()
            .filter(|(_, c)| c.axis(&self.dim).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        coords.insert(self.group_dim.clone(), self.labels.clone());
        let mut indexes: IndexMap<String, Index> = obj
            .indexes
            .iter()
            .filter(|(k, _)| **k != self.dim)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        indexes.insert(self.group_dim.clone(), Index::from_variable(&self.labels)?);
        Ok(DataArray::from_parts(
            obj.name.clone(),
            variable,
            coords,
            indexes,
        ))
    }

    fn median_by_group(&self, axis: usize) -> Result<ChunkedArray> {
        let mut parts = Vec::with_capacity(self.len());
        for g in 0..self.len() as i64 {
            let pos: Vec<isize> = self
                .codes
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == g)
                .map(|(i, _)| i as isize)
                .collect();
            let part = if pos.is_empty() {
                let mut shape = self.obj.shape().to_vec();
                shape[axis] = 1;
                ChunkedArray::full(
                    &shape,
                    Scalar::Float(f64::NAN),
                    shape.iter().map(|&s| s.max(1)).collect::<Vec<_>>(),
                    self.obj.dtype().mean_dtype(),
                )?
            } else {
                let sel = self.obj.data().take(&pos, axis as isize)?;
                sel.median(Some(&[axis as isize]), true)?
                    .expand_dims(axis as isize)?
            };
            parts.push(part);
        }
        let refs: Vec<&ChunkedArray> = parts.iter().collect();
        Ok(ChunkedArray::concatenate(&refs, axis as isize)?)
    }

    /// Group-wise arithmetic: `other` has the groups' dimension (a climatology indexed by
    /// month, say); each position is combined with its group's entry, as in
    /// `x.groupby("time.month") - clim`.
    pub fn binary(&self, op: BinaryOp, other: &DataArray) -> Result<DataArray> {
        let g = other
            .variable
            .axis_of("groupby arithmetic", &self.group_dim)?;
        let other_index = other.indexes.get(&self.group_dim).cloned();
        let mine = Index::from_variable(&self.labels)?;
        // position in `other` of each of our groups
        let map: Vec<Option<usize>> = match &other_index {
            Some(oi) => (0..mine.len())
                .map(|i| {
                    let one = mine.take(&[i]);
                    oi.inner_join(&one)
                        .map_or(Some(i), |(a, _)| a.first().copied())
                })
                .collect(),
            None if other.shape()[g] == mine.len() => (0..mine.len()).map(Some).collect(),
            None => {
                return Err(invalid(
                    "groupby arithmetic",
                    format!(
                        "{} groups but {} entries along {:?}",
                        mine.len(),
                        other.shape()[g],
                        self.group_dim
                    ),
                ));
            }
        };
        let mut take = Vec::with_capacity(self.codes.len());
        for (i, &c) in self.codes.iter().enumerate() {
            let p = (c >= 0).then(|| map[c as usize]).flatten().ok_or_else(|| {
                invalid(
                    "groupby arithmetic",
                    format!(
                        "position {i} of {:?} has no entry in the right-hand operand",
                        self.dim
                    ),
                )
            })?;
            take.push(p as isize);
        }
        let mut expanded = other.isel(&[(self.group_dim.as_str(), IndexSel::List(take))])?;
        // the taken axis now runs along our dimension; its coordinate becomes non-index
        expanded.indexes.shift_remove(&self.group_dim);
        let group_coord = expanded.coords.shift_remove(&self.group_dim);
        expanded = expanded.rename_dims(&[(self.group_dim.as_str(), self.dim.as_str())])?;
        expanded.indexes.shift_remove(&self.dim);
        expanded.coords.shift_remove(&self.dim);
        // match the chunks of our grouped dimension so the op stays blockwise
        let ax = expanded.variable.axis_of("groupby arithmetic", &self.dim)?;
        let my_ax = self.obj.variable.axis_of("groupby arithmetic", &self.dim)?;
        let mut chunks = expanded.data().chunks().to_vec();
        chunks[ax] = self.obj.data().chunks()[my_ax].clone();
        let data = expanded.data().rechunk(chunks)?;
        expanded.variable = expanded.variable.replace(expanded.dims().to_vec(), data);
        let mut out = self.obj.binary(op, &expanded)?;
        if let Some(mut c) = group_coord {
            c.dims = vec![self.dim.clone()];
            let c = c.replace(
                vec![self.dim.clone()],
                c.data()
                    .rechunk(vec![self.obj.data().chunks()[my_ax].clone()])?,
            );
            out.coords.insert(self.group_dim.clone(), c);
        }
        Ok(out)
    }
}

/// Weighted reductions (see [`DataArray::weighted`]).
#[derive(Clone, Debug)]
pub struct Weighted {
    obj: DataArray,
    weights: DataArray,
}

impl Weighted {
    fn dims_or_all(&self, dims: Option<&[&str]>) -> Vec<String> {
        match dims {
            Some(d) => d.iter().map(|s| (*s).to_owned()).collect(),
            None => union_dims(self.obj.dims(), self.weights.dims()),
        }
    }

    /// Reduced dims the weights do not vary along: reduced first, before the (wider)
    /// product with the weights is formed — `sum(x * w(lat), (lat, lon))` is
    /// `sum(w(lat) * sum(x, lon), lat)` — so no weighted copy of the data is ever built.
    fn split_dims(&self, dims: &[String]) -> (Vec<String>, Vec<String>) {
        dims.iter().cloned().partition(|d| {
            self.weights.variable().axis(d).is_none() && self.obj.variable().axis(d).is_some()
        })
    }

    /// The sum of the weights where the data are valid.
    pub fn sum_of_weights(&self, dims: Option<&[&str]>) -> Result<DataArray> {
        let dims = self.dims_or_all(dims);
        let (pre, rest) = self.split_dims(&dims);
        let p: Vec<&str> = pre.iter().map(String::as_str).collect();
        // valid values per remaining cell, then weighted
        let count = if p.is_empty() {
            self.obj.notnull()?
        } else {
            self.obj.reduce(Reduction::Count, Some(&p), None)?
        };
        self.weigh_count(count, &rest)
    }

    /// `Σ count × w` over `rest`, from the valid values per cell left after the pre-reduction.
    fn weigh_count(&self, count: DataArray, rest: &[String]) -> Result<DataArray> {
        let r: Vec<&str> = rest.iter().map(String::as_str).collect();
        let count = count.astype(self.weights.dtype().mean_dtype())?;
        count
            .binary(BinaryOp::Mul, &self.weights)?
            .reduce(Reduction::Sum, Some(&r), None)
    }

    /// The weighted sum (missing values count as 0).
    pub fn sum(&self, dims: Option<&[&str]>) -> Result<DataArray> {
        let dims = self.dims_or_all(dims);
        let (pre, rest) = self.split_dims(&dims);
        let p: Vec<&str> = pre.iter().map(String::as_str).collect();
        let partial = if p.is_empty() {
            self.obj.clone()
        } else {
            self.obj.reduce(Reduction::Sum, Some(&p), Some(true))?
        };
        self.weigh_sum(partial, &rest)
    }

    /// `Σ x × w` over `rest`, from the data left after the pre-reduction.
    fn weigh_sum(&self, partial: DataArray, rest: &[String]) -> Result<DataArray> {
        let r: Vec<&str> = rest.iter().map(String::as_str).collect();
        let prod = partial.binary(BinaryOp::Mul, &self.weights)?;
        let mut out = prod.reduce(Reduction::Sum, Some(&r), Some(true))?;
        out.name = self.obj.name.clone();
        out.variable.attrs = self.obj.attrs().clone();
        Ok(out)
    }

    /// The weighted mean: weighted sum over the sum of the weights of valid values (NaN
    /// where that is 0).
    pub fn mean(&self, dims: Option<&[&str]>) -> Result<DataArray> {
        let all = self.dims_or_all(dims);
        let (pre, rest) = self.split_dims(&all);
        let (s, w) = if !pre.is_empty() && self.obj.dtype().is_float() {
            // The sum and the count of the pre-reduction share one read of every block.
            let p: Vec<&str> = pre.iter().map(String::as_str).collect();
            let sum = self.obj.reduce(Reduction::Sum, Some(&p), Some(true))?;
            let count = self.obj.reduce(Reduction::Count, Some(&p), None)?;
            let axes = p
                .iter()
                .map(|d| Ok(self.obj.variable.axis_of("weighted", d)? as isize))
                .collect::<Result<Vec<isize>>>()?;
            let (sum_data, count_data) = self.obj.data().sum_and_count(Some(&axes))?;
            let sum = sum.with_data(sum_data)?;
            let count = count.with_data(count_data)?;
            (self.weigh_sum(sum, &rest)?, self.weigh_count(count, &rest)?)
        } else {
            (self.sum(dims)?, self.sum_of_weights(dims)?)
        };
        let zero = w.binary_scalar(BinaryOp::Eq, Scalar::Float(0.0), false)?;
        let w = w.where_(
            &zero.unary(gridflow_array::kernels::UnaryOp::LogicalNot)?,
            None,
        )?;
        let mut out = s.binary(BinaryOp::Div, &w)?;
        out.name = self.obj.name.clone();
        // xarray keeps the weighted array's attributes (not the weights').
        out.variable.attrs = self.obj.attrs().clone();
        Ok(out)
    }
}

/// A moving window (see [`DataArray::rolling`]).
#[derive(Clone, Debug)]
pub struct Rolling {
    obj: DataArray,
    dim: String,
    window: usize,
    min_periods: Option<usize>,
}

impl Rolling {
    /// The minimum number of valid values for a result (default: the window).
    pub fn min_periods(mut self, n: usize) -> Rolling {
        self.min_periods = Some(n.max(1));
        self
    }

    fn shifted(&self) -> Result<Vec<ChunkedArray>> {
        let axis = self.obj.variable.axis_of("rolling", &self.dim)?;
        let n = self.obj.shape()[axis];
        let w = self.window;
        (0..w)
            .map(|k| {
                let mut idx = vec![gridflow_array::Indexer::Full; self.obj.dims().len()];
                idx[axis] = gridflow_array::Indexer::range(k as isize, (n + 1 - w + k) as isize);
                Ok(self.obj.data().index(&idx)?)
            })
            .collect()
    }

    fn finish(&self, values: ChunkedArray, count: &ChunkedArray) -> Result<DataArray> {
        let axis = self.obj.variable.axis_of("rolling", &self.dim)?;
        let min = self.min_periods.unwrap_or(self.window) as i64;
        let enough = count.binary_scalar(BinaryOp::Ge, Scalar::Int(min), false)?;
        let values = gridflow_array::where_(&enough, &values, Scalar::Float(f64::NAN))?;
        let mut shape = self.obj.shape().to_vec();
        shape[axis] = self.window - 1;
        let out = if self.window > 1 {
            let pad = ChunkedArray::full(
                &shape,
                Scalar::Float(f64::NAN),
                shape.iter().map(|&s| s.max(1)).collect::<Vec<_>>(),
                values.dtype(),
            )?;
            ChunkedArray::concatenate(&[&pad, &values], axis as isize)?
        } else {
            values
        };
        let mut chunks = out.chunks().to_vec();
        chunks[axis] = self.obj.data().chunks()[axis].clone();
        let out = out.rechunk(chunks)?;
        let mut da = self.obj.clone();
        da.variable =
            Variable::derived_keeping(self.obj.dims().to_vec(), out, &self.obj.variable.attrs);
        Ok(da)
    }

    fn sum_count(&self) -> Result<(ChunkedArray, ChunkedArray)> {
        let parts = self.shifted()?;
        let mut sum: Option<ChunkedArray> = None;
        let mut count: Option<ChunkedArray> = None;
        for p in parts {
            let valid = p.notnull()?;
            let v = gridflow_array::where_(&valid, &p, Scalar::Float(0.0))?
                .astype(p.dtype().mean_dtype())?;
            let c = valid.astype(DType::I64)?;
            sum = Some(match sum {
                None => v,
                Some(s) => s.binary(BinaryOp::Add, &v)?,
            });
            count = Some(match count {
                None => c,
                Some(s) => s.binary(BinaryOp::Add, &c)?,
            });
        }
        match (sum, count) {
            (Some(s), Some(c)) => Ok((s, c)),
            _ => Err(invalid("rolling", "empty window")),
        }
    }

    /// The moving mean.
    pub fn mean(&self) -> Result<DataArray> {
        let (s, c) = self.sum_count()?;
        let m = s.binary(BinaryOp::Div, &c.astype(s.dtype())?)?;
        self.finish(m, &c)
    }

    /// The moving sum.
    pub fn sum(&self) -> Result<DataArray> {
        let (s, c) = self.sum_count()?;
        self.finish(s, &c)
    }

    /// The moving minimum or maximum.
    fn extreme(&self, op: BinaryOp) -> Result<DataArray> {
        let parts = self.shifted()?;
        let mut acc: Option<ChunkedArray> = None;
        let mut count: Option<ChunkedArray> = None;
        for p in parts {
            let c = p.notnull()?.astype(DType::I64)?;
            acc = Some(match acc {
                None => p,
                Some(a) => a.binary(op, &p)?,
            });
            count = Some(match count {
                None => c,
                Some(s) => s.binary(BinaryOp::Add, &c)?,
            });
        }
        match (acc, count) {
            (Some(a), Some(c)) => self.finish(a, &c),
            _ => Err(invalid("rolling", "empty window")),
        }
    }

    /// The moving minimum.
    pub fn min(&self) -> Result<DataArray> {
        self.extreme(BinaryOp::Fmin)
    }

    /// The moving maximum.
    pub fn max(&self) -> Result<DataArray> {
        self.extreme(BinaryOp::Fmax)
    }
}
