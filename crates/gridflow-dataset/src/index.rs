//! Indexes on dimension coordinates and label-based lookups (`sel`).

use crate::error::{DatasetError, Result, time_err};
use crate::variable::{IndexSel, ValueKind, Variable};
use gridflow_array::DType;
use gridflow_cftime::Calendar;
use std::sync::Arc;

/// The in-memory labels of a dimension coordinate.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexValues {
    /// Floating-point labels.
    Float(Arc<Vec<f64>>),
    /// Integer labels.
    Int(Arc<Vec<i64>>),
    /// Datetimes (ticks: microseconds since 1970-01-01 in the calendar).
    Time {
        /// The ticks.
        ticks: Arc<Vec<i64>>,
        /// Their calendar.
        calendar: Calendar,
    },
    /// String labels.
    Str(Arc<Vec<String>>),
}

/// Whether an index is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Non-decreasing.
    Ascending,
    /// Non-increasing.
    Descending,
    /// Neither.
    Unordered,
}

/// An index over one dimension: its labels in memory and their order.
#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    values: IndexValues,
    order: Order,
}

/// A label to look up in an index.
#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    /// A number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A string: a string label, or a (partial) ISO datetime on a time index.
    Str(String),
    /// A datetime as ticks in the index's calendar.
    Ticks(i64),
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Float(v) => write!(f, "{v}"),
            Label::Int(v) => write!(f, "{v}"),
            Label::Str(s) => write!(f, "{s:?}"),
            Label::Ticks(t) => write!(f, "ticks {t}"),
        }
    }
}

impl From<f64> for Label {
    fn from(v: f64) -> Label {
        Label::Float(v)
    }
}

impl From<i64> for Label {
    fn from(v: i64) -> Label {
        Label::Int(v)
    }
}

impl From<&str> for Label {
    fn from(v: &str) -> Label {
        Label::Str(v.to_owned())
    }
}

/// A label-based selection along one dimension, as in xarray's `sel`.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// One label (drops the dimension, except partial datetime strings, which select every
    /// time in the period as xarray does).
    Label(Label),
    /// An inclusive label slice (`slice("1850-02", "1850-03")`, `slice(60, 30)` on a
    /// descending latitude).
    Slice {
        /// First label (inclusive).
        start: Option<Label>,
        /// Last label (inclusive).
        stop: Option<Label>,
        /// Positional step.
        step: Option<isize>,
    },
    /// A list of labels.
    List(Vec<Label>),
}

/// How `sel` matches labels that are not in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// Only exact matches.
    #[default]
    Exact,
    /// The nearest label (ties go to the larger label).
    Nearest,
    /// The last label at or before (`ffill`/`pad`).
    Pad,
    /// The first label at or after (`bfill`/`backfill`).
    Backfill,
}

impl std::str::FromStr for Method {
    type Err = DatasetError;
    fn from_str(s: &str) -> Result<Method> {
        match s {
            "nearest" => Ok(Method::Nearest),
            "pad" | "ffill" => Ok(Method::Pad),
            "backfill" | "bfill" => Ok(Method::Backfill),
            "exact" => Ok(Method::Exact),
            other => Err(crate::error::invalid(
                "sel",
                format!(
                    "unknown method {other:?} (expected \"nearest\", \"pad\"/\"ffill\" or \"backfill\"/\"bfill\")"
                ),
            )),
        }
    }
}

/// How far a non-exact match may be from the label.
#[derive(Clone, Debug, PartialEq)]
pub enum Tolerance {
    /// In the index's units.
    Value(f64),
    /// A duration for time indexes: `"1D"`, `"3h"`, `"30min"`, `"10s"`.
    Duration(String),
}

/// Options of `sel`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SelOptions {
    /// Matching method.
    pub method: Method,
    /// Maximum distance of a non-exact match.
    pub tolerance: Option<Tolerance>,
}

/// Parses a pandas-style duration (`"1D"`, `"3h"`, `"90min"`, `"10s"`, `"2W"`) to
/// microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = if num.is_empty() {
        1.0
    } else {
        num.parse().ok()?
    };
    let us = match unit.trim() {
        "W" | "w" => 7.0 * 86_400e6,
        "D" | "d" | "day" | "days" => 86_400e6,
        "h" | "H" | "hour" | "hours" => 3_600e6,
        "min" | "T" | "m" | "minute" | "minutes" => 60e6,
        "s" | "S" | "sec" | "second" | "seconds" => 1e6,
        "ms" | "L" => 1e3,
        "us" | "U" => 1.0,
        _ => return None,
    };
    Some((n * us).round() as i64)
}

/// A label in hashable form, for joins.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LabelKey {
    Int(i64),
    Float(u64),
    Time(i64),
    Str(String),
}

fn order_of<T: PartialOrd>(v: &[T]) -> Order {
    if v.windows(2).all(|w| w[0] <= w[1]) {
        Order::Ascending
    } else if v.windows(2).all(|w| w[0] >= w[1]) {
        Order::Descending
    } else {
        Order::Unordered
    }
}

impl Index {
    /// Builds an index from labels.
    pub fn new(values: IndexValues) -> Index {
        let order = match &values {
            IndexValues::Float(v) => {
                if v.iter().any(|x| x.is_nan()) {
                    Order::Unordered
                } else {
                    order_of(v)
                }
            }
            IndexValues::Int(v) => order_of(v),
            IndexValues::Time { ticks, .. } => order_of(ticks),
            IndexValues::Str(v) => order_of(v),
        };
        Index { values, order }
    }

    /// Loads the labels of a 1-d coordinate variable.
    pub fn from_variable(v: &Variable) -> Result<Index> {
        if v.ndim() != 1 {
            return Err(crate::error::invalid(
                "index",
                format!("an index needs a 1-d coordinate, got dims {:?}", v.dims()),
            ));
        }
        let values = match v.kind() {
            ValueKind::Time(cal) => IndexValues::Time {
                ticks: Arc::new(v.ticks()?),
                calendar: *cal,
            },
            ValueKind::Strings(table) => {
                let codes = v.ticks()?;
                IndexValues::Str(Arc::new(
                    codes
                        .iter()
                        .map(|&c| table.get(c as usize).cloned().unwrap_or_default())
                        .collect(),
                ))
            }
            ValueKind::Numeric if v.dtype().is_float() => {
                IndexValues::Float(Arc::new(v.to_f64_vec()?))
            }
            ValueKind::Numeric => IndexValues::Int(Arc::new(v.ticks()?)),
        };
        Ok(Index::new(values))
    }

    /// The labels.
    pub fn values(&self) -> &IndexValues {
        &self.values
    }

    /// The sort order.
    pub fn order(&self) -> Order {
        self.order
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        match &self.values {
            IndexValues::Float(v) => v.len(),
            IndexValues::Int(v) => v.len(),
            IndexValues::Time { ticks, .. } => ticks.len(),
            IndexValues::Str(v) => v.len(),
        }
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The calendar of a time index.
    pub fn calendar(&self) -> Option<Calendar> {
        match &self.values {
            IndexValues::Time { calendar, .. } => Some(*calendar),
            _ => None,
        }
    }

    /// The index restricted to `positions`.
    pub fn take(&self, positions: &[usize]) -> Index {
        let values = match &self.values {
            IndexValues::Float(v) => {
                IndexValues::Float(Arc::new(positions.iter().map(|&i| v[i]).collect()))
            }
            IndexValues::Int(v) => {
                IndexValues::Int(Arc::new(positions.iter().map(|&i| v[i]).collect()))
            }
            IndexValues::Time { ticks, calendar } => IndexValues::Time {
                ticks: Arc::new(positions.iter().map(|&i| ticks[i]).collect()),
                calendar: *calendar,
            },
            IndexValues::Str(v) => {
                IndexValues::Str(Arc::new(positions.iter().map(|&i| v[i].clone()).collect()))
            }
        };
        Index::new(values)
    }

    /// Label `i` as text (ISO for times).
    pub fn label_string(&self, i: usize) -> String {
        match &self.values {
            IndexValues::Float(v) => crate::repr::format_f64(v[i]),
            IndexValues::Int(v) => v[i].to_string(),
            IndexValues::Time { ticks, calendar } => calendar.format_iso(ticks[i]),
            IndexValues::Str(v) => v[i].clone(),
        }
    }

    /// The labels as numbers on one axis (ticks for times, positions for strings), for
    /// distance computations.
    fn numeric(&self) -> Option<Vec<f64>> {
        match &self.values {
            IndexValues::Float(v) => Some(v.to_vec()),
            IndexValues::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            IndexValues::Time { ticks, .. } => Some(ticks.iter().map(|&x| x as f64).collect()),
            IndexValues::Str(_) => None,
        }
    }

    fn label_err(&self, dim: &str, detail: String) -> DatasetError {
        DatasetError::Label {
            op: "sel".into(),
            dim: dim.to_owned(),
            detail,
        }
    }

    fn range_text(&self) -> String {
        if self.is_empty() {
            "the index is empty".into()
        } else {
            format!(
                "the index runs from {} to {}",
                self.label_string(0),
                self.label_string(self.len() - 1)
            )
        }
    }

    /// A label as a point on the numeric axis of this index.
    fn point(&self, dim: &str, label: &Label) -> Result<f64> {
        match (&self.values, label) {
            (IndexValues::Str(_), _) => Err(self.label_err(
                dim,
                format!("cannot compare label {label} with a string index"),
            )),
            (IndexValues::Time { calendar, .. }, Label::Str(s)) => calendar
                .parse_datetime(s)
                .map(|t| t as f64)
                .map_err(|e| self.label_err(dim, format!("label {s:?}: {e}"))),
            (IndexValues::Time { .. }, Label::Ticks(t)) => Ok(*t as f64),
            (IndexValues::Time { .. }, other) => Err(self.label_err(
                dim,
                format!(
                    "label {other} is not a datetime; use an ISO string such as \"1850-01-16\""
                ),
            )),
            (_, Label::Float(v)) => Ok(*v),
            (_, Label::Int(v)) => Ok(*v as f64),
            (_, Label::Ticks(t)) => Ok(*t as f64),
            (_, Label::Str(s)) => Err(self.label_err(
                dim,
                format!("label {s:?} is a string but the index holds numbers"),
            )),
        }
    }

    fn tolerance_value(&self, dim: &str, tol: &Option<Tolerance>) -> Result<Option<f64>> {
        match tol {
            None => Ok(None),
            Some(Tolerance::Value(v)) if *v >= 0.0 => Ok(Some(*v)),
            Some(Tolerance::Value(v)) => {
                Err(self.label_err(dim, format!("tolerance {v} must not be negative")))
            }
            Some(Tolerance::Duration(s)) => match parse_duration(s) {
                Some(us) if self.calendar().is_some() => Ok(Some(us as f64)),
                Some(_) => Err(self.label_err(
                    dim,
                    format!("tolerance {s:?} is a duration but the index is not a time index"),
                )),
                None => Err(self.label_err(
                    dim,
                    format!("tolerance {s:?} is not a duration such as \"1D\" or \"3h\""),
                )),
            },
        }
    }

    /// The position of one label (exact, nearest, pad or backfill).
    pub fn get_loc(&self, dim: &str, label: &Label, opts: &SelOptions) -> Result<usize> {
        if let (IndexValues::Str(v), Label::Str(s)) = (&self.values, label) {
            return v.iter().position(|x| x == s).ok_or_else(|| {
                self.label_err(
                    dim,
                    format!("label {s:?} not found ({})", self.range_text()),
                )
            });
        }
        let target = self.point(dim, label)?;
        let Some(values) = self.numeric() else {
            return Err(self.label_err(dim, format!("label {label} not found")));
        };
        if target.is_nan() {
            return Err(self.label_err(dim, "cannot look up a NaN label".into()));
        }
        let tol = self.tolerance_value(dim, &opts.tolerance)?;
        let found = match opts.method {
            Method::Exact => values.iter().position(|&v| v == target),
            Method::Nearest => {
                let mut best: Option<(usize, f64)> = None;
                for (i, &v) in values.iter().enumerate() {
                    let d = (v - target).abs();
                    let better = match best {
                        None => true,
                        Some((bi, bd)) => d < bd || (d == bd && v > values[bi]),
                    };
                    if better && !d.is_nan() {
                        best = Some((i, d));
                    }
                }
                best.map(|(i, _)| i)
            }
            Method::Pad => values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v <= target)
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i),
            Method::Backfill => values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v >= target)
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i),
        };
        let Some(i) = found else {
            let hint = if opts.method == Method::Exact {
                "; method=\"nearest\" picks the nearest label"
            } else {
                ""
            };
            return Err(self.label_err(
                dim,
                format!("label {label} not found ({}){hint}", self.range_text()),
            ));
        };
        if let Some(t) = tol {
            let d = (values[i] - target).abs();
            if d > t {
                let shown = match &opts.tolerance {
                    Some(Tolerance::Duration(s)) => s.clone(),
                    _ => crate::repr::format_f64(t),
                };
                return Err(self.label_err(
                    dim,
                    format!(
                        "no label within tolerance {shown} of {label} (the nearest is {})",
                        self.label_string(i)
                    ),
                ));
            }
        }
        Ok(i)
    }

    /// Resolves a selector into positions.
    pub fn locate(&self, dim: &str, sel: &Selector, opts: &SelOptions) -> Result<IndexSel> {
        match sel {
            Selector::Label(Label::Str(s))
                if self.calendar().is_some() && opts.method == Method::Exact =>
            {
                // a (partial) datetime string selects every time in its period
                let (lo, hi) = self.period(dim, s)?;
                let IndexValues::Time { ticks, .. } = &self.values else {
                    unreachable_time()?
                };
                let pos: Vec<isize> = ticks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| **t >= lo && **t < hi)
                    .map(|(i, _)| i as isize)
                    .collect();
                let first_out = ticks.iter().all(|t| *t < lo) || ticks.iter().all(|t| *t >= hi);
                if pos.is_empty() && first_out {
                    return Err(self.label_err(
                        dim,
                        format!("no time in the period {s:?} ({})", self.range_text()),
                    ));
                }
                Ok(contiguous_or_list(pos))
            }
            Selector::Label(l) => Ok(IndexSel::Int(self.get_loc(dim, l, opts)? as isize)),
            Selector::List(labels) => Ok(IndexSel::List(
                labels
                    .iter()
                    .map(|l| self.get_loc(dim, l, opts).map(|i| i as isize))
                    .collect::<Result<_>>()?,
            )),
            Selector::Slice { start, stop, step } => {
                let (s, e) = self.slice_locs(dim, start.as_ref(), stop.as_ref())?;
                Ok(IndexSel::Slice {
                    start: Some(s as isize),
                    stop: Some(e.max(s) as isize),
                    step: *step,
                })
            }
        }
    }

    /// The [start, end) ticks a (partial) datetime string covers.
    fn period(&self, dim: &str, s: &str) -> Result<(i64, i64)> {
        let Some(cal) = self.calendar() else {
            return Err(self.label_err(dim, format!("label {s:?} is not a time")));
        };
        cal.parse_partial(s)
            .map_err(|e| self.label_err(dim, format!("label {s:?}: {e}")))
    }

    /// Positions `[start, end)` of an inclusive label slice.
    pub fn slice_locs(
        &self,
        dim: &str,
        start: Option<&Label>,
        stop: Option<&Label>,
    ) -> Result<(usize, usize)> {
        let n = self.len();
        if self.order == Order::Unordered {
            return Err(self.label_err(
                dim,
                "cannot slice by label: the index is not monotonic (sort it first)".into(),
            ));
        }
        let asc = self.order == Order::Ascending;
        // each bound as an interval [lo, hi) on the numeric axis (partial datetimes cover
        // a period; other labels a point)
        let bound = |l: &Label| -> Result<(f64, f64, bool)> {
            match (&self.values, l) {
                (IndexValues::Time { .. }, Label::Str(s)) => {
                    let (lo, hi) = self.period(dim, s)?;
                    Ok((lo as f64, hi as f64, true))
                }
                _ => {
                    let p = self.point(dim, l)?;
                    Ok((p, p, false))
                }
            }
        };
        if let IndexValues::Str(v) = &self.values {
            let find = |l: &Label| -> Result<usize> {
                let Label::Str(s) = l else {
                    return Err(self.label_err(dim, format!("label {l} is not a string")));
                };
                let p = if asc {
                    v.partition_point(|x| x < s)
                } else {
                    v.partition_point(|x| x > s)
                };
                Ok(p)
            };
            let s = start.map(find).transpose()?.unwrap_or(0);
            let e = match stop {
                None => n,
                Some(Label::Str(t)) => {
                    if asc {
                        v.partition_point(|x| x <= t)
                    } else {
                        v.partition_point(|x| x >= t)
                    }
                }
                Some(l) => return Err(self.label_err(dim, format!("label {l} is not a string"))),
            };
            return Ok((s, e.max(s)));
        }
        let Some(values) = self.numeric() else {
            return Ok((0, n));
        };
        let s = match start {
            None => 0,
            Some(l) => {
                let (lo, hi, period) = bound(l)?;
                if asc {
                    values.partition_point(|&v| v < lo)
                } else if period {
                    values.partition_point(|&v| v >= hi)
                } else {
                    values.partition_point(|&v| v > lo)
                }
            }
        };
        let e = match stop {
            None => n,
            Some(l) => {
                let (lo, hi, period) = bound(l)?;
                if asc {
                    if period {
                        values.partition_point(|&v| v < hi)
                    } else {
                        values.partition_point(|&v| v <= lo)
                    }
                } else {
                    values.partition_point(|&v| v >= lo)
                }
            }
        };
        Ok((s, e.max(s)))
    }

    /// Positions in `self` and `other` of their common labels, in `self`'s order (an inner
    /// join), or `None` when both hold the same labels. Hashes the labels: linear time.
    pub fn inner_join(&self, other: &Index) -> Option<(Vec<usize>, Vec<usize>)> {
        if self.values == other.values {
            return None;
        }
        let (mine, theirs) = (self.keys(), other.keys());
        let mut first: std::collections::HashMap<&LabelKey, usize> =
            std::collections::HashMap::with_capacity(theirs.len());
        for (j, k) in theirs.iter().enumerate() {
            first.entry(k).or_insert(j);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, k) in mine.iter().enumerate() {
            if let Some(&j) = first.get(k) {
                a.push(i);
                b.push(j);
            }
        }
        Some((a, b))
    }

    /// Hashable labels (integer-valued floats equal to the same integers).
    fn keys(&self) -> Vec<LabelKey> {
        let num = |v: f64| {
            if v == v.trunc() && v.abs() < 9.0e15 {
                LabelKey::Int(v as i64)
            } else {
                LabelKey::Float(v.to_bits())
            }
        };
        match &self.values {
            IndexValues::Float(v) => v.iter().map(|&x| num(x)).collect(),
            IndexValues::Int(v) => v.iter().map(|&x| LabelKey::Int(x)).collect(),
            IndexValues::Time { ticks, .. } => ticks.iter().map(|&x| LabelKey::Time(x)).collect(),
            IndexValues::Str(v) => v.iter().map(|x| LabelKey::Str(x.clone())).collect(),
        }
    }

    /// The labels as a variable along `dim`.
    pub fn to_variable(&self, dim: &str) -> Result<Variable> {
        match &self.values {
            IndexValues::Float(v) => Variable::from_f64(dim, v.to_vec()),
            IndexValues::Int(v) => {
                let n = v.len();
                let chunk = gridflow_array::Chunk::I64(
                    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[n]), v.to_vec())
                        .map_err(|e| crate::error::invalid("index", e.to_string()))?,
                );
                Variable::new(
                    [dim],
                    gridflow_array::ChunkedArray::from_chunk(chunk, [n.max(1)])?,
                )
            }
            IndexValues::Time { ticks, calendar } => {
                Variable::from_ticks([dim], &[ticks.len()], ticks.to_vec(), *calendar)
            }
            IndexValues::Str(v) => Variable::from_strings(dim, v.to_vec()),
        }
    }

    /// The numeric dtype the labels would have as an array.
    pub fn dtype(&self) -> DType {
        match &self.values {
            IndexValues::Float(_) => DType::F64,
            _ => DType::I64,
        }
    }

    /// The time-valued labels' ticks and calendar, or an error naming `what`.
    pub fn time_ticks(&self, what: &str) -> Result<(&[i64], Calendar)> {
        match &self.values {
            IndexValues::Time { ticks, calendar } => Ok((ticks, *calendar)),
            _ => Err(time_err(what, "the index is not a datetime index")),
        }
    }
}

fn unreachable_time<T>() -> Result<T> {
    Err(crate::error::invalid(
        "sel",
        "internal: expected a time index",
    ))
}

/// A slice when the positions are a contiguous run, else a list.
fn contiguous_or_list(pos: Vec<isize>) -> IndexSel {
    match (pos.first(), pos.last()) {
        (Some(&a), Some(&b)) if (b - a + 1) as usize == pos.len() => IndexSel::Slice {
            start: Some(a),
            stop: Some(b + 1),
            step: None,
        },
        (None, _) => IndexSel::Slice {
            start: Some(0),
            stop: Some(0),
            step: None,
        },
        _ => IndexSel::List(pos),
    }
}
