//! [`Variable`]: named dimensions over a lazy chunked array, with attributes and encoding.

use crate::error::{DatasetError, Result, invalid};
use gridflow_array::{Chunk, ChunkedArray, DType, Indexer};
use gridflow_cftime::Calendar;
use std::sync::Arc;

/// Attributes (and encodings): an ordered JSON object, as in a Zarr `.zattrs`.
pub type Attrs = serde_json::Map<String, serde_json::Value>;

/// What the numbers of a variable's array stand for.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// Plain numbers (or booleans).
    Numeric,
    /// Datetimes: int64 microseconds since 1970-01-01 in this calendar (`i64::MIN` is NaT).
    Time(Calendar),
    /// Strings: int64 codes into this table.
    Strings(Arc<Vec<String>>),
}

/// The "not a time" marker in time-valued arrays.
pub const NAT: i64 = i64::MIN;

/// One array with named dimensions, attributes and encoding (how it is stored on disk),
/// like xarray's `Variable`. The data stay lazy until computed.
#[derive(Clone, Debug)]
pub struct Variable {
    pub(crate) dims: Vec<String>,
    pub(crate) data: ChunkedArray,
    /// Attributes (`units`, `long_name`, ...).
    pub attrs: Attrs,
    /// How the variable is stored (`dtype`, `_FillValue`, `scale_factor`, `units` and
    /// `calendar` of times, `chunks`), kept so that writing back round-trips.
    pub encoding: Attrs,
    pub(crate) kind: ValueKind,
}

/// A positional selection along one dimension, as in xarray's `isel`.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexSel {
    /// One position (negative counts from the end); drops the dimension.
    Int(isize),
    /// `start:stop:step` with Python's rules.
    Slice {
        /// First position.
        start: Option<isize>,
        /// End (exclusive).
        stop: Option<isize>,
        /// Step (not 0).
        step: Option<isize>,
    },
    /// A list of positions.
    List(Vec<isize>),
}

impl IndexSel {
    /// `start..stop` with step 1.
    pub fn range(start: usize, stop: usize) -> IndexSel {
        IndexSel::Slice {
            start: Some(start as isize),
            stop: Some(stop as isize),
            step: None,
        }
    }

    /// The positions this selects on an axis of length `n` (Python semantics).
    pub fn positions(&self, n: usize) -> Result<Vec<usize>> {
        let norm = |i: isize| -> Result<usize> {
            let j = if i < 0 { i + n as isize } else { i };
            if j < 0 || j >= n as isize {
                Err(invalid(
                    "isel",
                    format!("index {i} is out of bounds for length {n}"),
                ))
            } else {
                Ok(j as usize)
            }
        };
        match self {
            IndexSel::Int(i) => Ok(vec![norm(*i)?]),
            IndexSel::List(v) => v.iter().map(|&i| norm(i)).collect(),
            IndexSel::Slice { start, stop, step } => {
                let step = step.unwrap_or(1);
                if step == 0 {
                    return Err(invalid("isel", "slice step cannot be zero"));
                }
                let n = n as isize;
                let clamp = |v: isize, lo: isize, hi: isize| v.clamp(lo, hi);
                let fix = |v: isize| if v < 0 { v + n } else { v };
                let mut out = Vec::new();
                if step > 0 {
                    let (s, e) = (
                        clamp(start.map_or(0, fix), 0, n),
                        clamp(stop.map_or(n, fix), 0, n),
                    );
                    let mut i = s;
                    while i < e {
                        out.push(i as usize);
                        i += step;
                    }
                } else {
                    let (s, e) = (
                        clamp(start.map_or(n - 1, fix), -1, n - 1),
                        clamp(stop.map_or(-1, |v| fix(v).max(-1)), -1, n - 1),
                    );
                    let mut i = s;
                    while i > e {
                        out.push(i as usize);
                        i += step;
                    }
                }
                Ok(out)
            }
        }
    }
}

fn dims_list(dims: &[String]) -> String {
    format!("({})", dims.join(", "))
}

impl Variable {
    /// A numeric variable over `data` with one name per axis.
    ///
    /// ```
    /// use gridflow_array::{ChunkedArray, DType};
    /// use gridflow_dataset::Variable;
    /// let v = Variable::new(["lat", "lon"], ChunkedArray::zeros(&[3, 4], [3, 2], DType::F32).unwrap()).unwrap();
    /// assert_eq!(v.dims(), ["lat", "lon"]);
    /// ```
    pub fn new<S: Into<String>>(
        dims: impl IntoIterator<Item = S>,
        data: ChunkedArray,
    ) -> Result<Variable> {
        let dims: Vec<String> = dims.into_iter().map(Into::into).collect();
        if dims.len() != data.ndim() {
            return Err(invalid(
                "Variable",
                format!(
                    "{} dimension names {} for an array of shape {:?}",
                    dims.len(),
                    dims_list(&dims),
                    data.shape()
                ),
            ));
        }
        for (i, d) in dims.iter().enumerate() {
            if dims[..i].contains(d) {
                return Err(invalid(
                    "Variable",
                    format!("dimension {d:?} is repeated in {}", dims_list(&dims)),
                ));
            }
        }
        Ok(Variable {
            dims,
            data,
            attrs: Attrs::new(),
            encoding: Attrs::new(),
            kind: ValueKind::Numeric,
        })
    }

    /// A 1-d in-memory float64 variable (handy for coordinates).
    pub fn from_f64(dim: &str, values: Vec<f64>) -> Result<Variable> {
        let n = values.len();
        let chunk = Chunk::from_f64_vec(&[n], values, DType::F64)?;
        Variable::new([dim], ChunkedArray::from_chunk(chunk, [n.max(1)])?)
    }

    /// An in-memory datetime variable of `shape` from ticks (microseconds since 1970-01-01
    /// in `calendar`).
    pub fn from_ticks<S: Into<String>>(
        dims: impl IntoIterator<Item = S>,
        shape: &[usize],
        ticks: Vec<i64>,
        calendar: Calendar,
    ) -> Result<Variable> {
        let arr = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), ticks)
            .map_err(|e| invalid("Variable", e.to_string()))?;
        let chunks: Vec<usize> = shape.iter().map(|&s| s.max(1)).collect();
        let data = ChunkedArray::from_chunk(Chunk::I64(arr), chunks)?;
        let mut v = Variable::new(dims, data)?;
        v.kind = ValueKind::Time(calendar);
        Ok(v)
    }

    /// A string variable of any shape (row-major `values`), e.g. as read from a Zarr store.
    pub fn from_string_array(
        dims: &[String],
        shape: &[usize],
        values: Vec<String>,
    ) -> Result<Variable> {
        let n = values.len();
        let codes: Vec<i64> = (0..n as i64).collect();
        let arr = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), codes)
            .map_err(|e| invalid("Variable", format!("{n} strings for shape {shape:?}: {e}")))?;
        let chunks: Vec<usize> = shape.iter().map(|&d| d.max(1)).collect();
        let data = ChunkedArray::from_chunk(Chunk::I64(arr), chunks)?;
        let mut v = Variable::new(dims.to_vec(), data)?;
        v.kind = ValueKind::Strings(Arc::new(values));
        Ok(v)
    }

    /// A 1-d in-memory string variable.
    pub fn from_strings(dim: &str, values: Vec<String>) -> Result<Variable> {
        let n = values.len();
        let codes: Vec<i64> = (0..n as i64).collect();
        let arr = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[n]), codes)
            .map_err(|e| invalid("Variable", e.to_string()))?;
        let data = ChunkedArray::from_chunk(Chunk::I64(arr), [n.max(1)])?;
        let mut v = Variable::new([dim], data)?;
        v.kind = ValueKind::Strings(Arc::new(values));
        Ok(v)
    }

    /// Sets the attributes.
    pub fn with_attrs(mut self, attrs: Attrs) -> Variable {
        self.attrs = attrs;
        self
    }

    /// The dimension names.
    pub fn dims(&self) -> &[String] {
        &self.dims
    }

    /// The lazy array.
    pub fn data(&self) -> &ChunkedArray {
        &self.data
    }

    /// What the numbers stand for.
    pub fn kind(&self) -> &ValueKind {
        &self.kind
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.dims.len()
    }

    /// The array's dtype (int64 for times and strings).
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The size of every dimension.
    pub fn sizes(&self) -> Vec<(String, usize)> {
        self.dims
            .iter()
            .cloned()
            .zip(self.shape().iter().copied())
            .collect()
    }

    /// The axis of `dim`, if the variable has it.
    pub fn axis(&self, dim: &str) -> Option<usize> {
        self.dims.iter().position(|d| d == dim)
    }

    /// The axis of `dim` or an error naming `op` and the dimensions there are.
    pub fn axis_of(&self, op: &str, dim: &str) -> Result<usize> {
        self.axis(dim).ok_or_else(|| DatasetError::UnknownDim {
            op: op.to_owned(),
            dim: dim.to_owned(),
            available: dims_list(&self.dims),
        })
    }

    /// The same metadata over new data and dims (the kind is kept).
    pub(crate) fn replace(&self, dims: Vec<String>, data: ChunkedArray) -> Variable {
        Variable {
            dims,
            data,
            attrs: self.attrs.clone(),
            encoding: self.encoding.clone(),
            kind: self.kind.clone(),
        }
    }

    /// A numeric variable over computed data (attributes dropped, as xarray does by default).
    pub(crate) fn derived_keeping(
        dims: Vec<String>,
        data: ChunkedArray,
        attrs: &Attrs,
    ) -> Variable {
        let mut v = Variable::derived(dims, data);
        v.attrs = attrs.clone();
        v
    }

    /// A derived numeric variable without attributes or encoding.
    pub(crate) fn derived(dims: Vec<String>, data: ChunkedArray) -> Variable {
        Variable {
            dims,
            data,
            attrs: Attrs::new(),
            encoding: Attrs::new(),
            kind: ValueKind::Numeric,
        }
    }

    /// Positional selection along some of this variable's dimensions (others are ignored).
    pub fn isel(&self, sel: &[(String, IndexSel)]) -> Result<Variable> {
        let mut basic = vec![Indexer::Full; self.ndim()];
        let mut lists: Vec<(usize, Vec<isize>)> = Vec::new();
        let mut any_basic = false;
        for (dim, s) in sel {
            let Some(axis) = self.axis(dim) else { continue };
            match s {
                IndexSel::Int(i) => {
                    basic[axis] = Indexer::Index(*i);
                    any_basic = true;
                }
                IndexSel::Slice { start, stop, step } => {
                    basic[axis] = Indexer::Slice {
                        start: *start,
                        stop: *stop,
                        step: *step,
                    };
                    any_basic = true;
                }
                IndexSel::List(v) => lists.push((axis, v.clone())),
            }
        }
        let mut data = self.data.clone();
        let mut dims = self.dims.clone();
        if any_basic {
            data = data.index(&basic)?;
            let dropped: Vec<usize> = basic
                .iter()
                .enumerate()
                .filter(|(_, b)| matches!(b, Indexer::Index(_)))
                .map(|(a, _)| a)
                .collect();
            for (list_axis, _) in lists.iter_mut() {
                *list_axis -= dropped.iter().filter(|&&d| d < *list_axis).count();
            }
            dims = dims
                .into_iter()
                .enumerate()
                .filter(|(a, _)| !dropped.contains(a))
                .map(|(_, d)| d)
                .collect();
        }
        for (axis, positions) in lists {
            data = data.take(&positions, axis as isize)?;
        }
        Ok(self.replace(dims, data))
    }

    /// Reorders the dimensions.
    pub fn transpose(&self, order: &[String]) -> Result<Variable> {
        if order.len() != self.ndim() || self.dims.iter().any(|d| !order.contains(d)) {
            return Err(invalid(
                "transpose",
                format!(
                    "{} is not a permutation of the dimensions {}",
                    dims_list(order),
                    dims_list(&self.dims)
                ),
            ));
        }
        if order == self.dims.as_slice() {
            return Ok(self.clone());
        }
        let axes: Vec<isize> = order
            .iter()
            .map(|d| self.axis(d).map(|a| a as isize).unwrap_or(0))
            .collect();
        Ok(self.replace(order.to_vec(), self.data.transpose(Some(&axes))?))
    }

    /// Computes the values as float64 (times as ticks, strings as codes).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(self.data.compute()?.to_f64_vec())
    }

    /// Computes time values as ticks.
    pub(crate) fn ticks(&self) -> Result<Vec<i64>> {
        match self.data.compute()?.astype(DType::I64) {
            Chunk::I64(a) => Ok(a.iter().copied().collect()),
            _ => Err(invalid("ticks", "internal: int64 cast failed")),
        }
    }

    /// The calendar of a time variable.
    pub fn calendar(&self) -> Option<Calendar> {
        match &self.kind {
            ValueKind::Time(c) => Some(*c),
            _ => None,
        }
    }
}
