//! [`DataArray`]: a variable with a name, coordinates and indexes.

use crate::error::{DatasetError, Result, invalid};
use crate::index::{Index, SelOptions, Selector};
use crate::variable::{Attrs, IndexSel, ValueKind, Variable};
use gridflow_array::kernels::{BinaryOp, ReduceOp, UnaryOp};
use gridflow_array::{
    ArrayOp, ChunkedArray, DType, Executor, LocalExecutor, ReduceOptions, Scalar,
};
use indexmap::IndexMap;

/// Coordinates by name, in insertion order.
pub type Coords = IndexMap<String, Variable>;

/// A reduction by dimension name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Sum.
    Sum,
    /// Mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Standard deviation with `ddof`.
    Std(usize),
    /// Variance with `ddof`.
    Var(usize),
    /// Number of valid values.
    Count,
    /// Median.
    Median,
    /// Product.
    Prod,
    /// Any non-zero.
    Any,
    /// All non-zero.
    All,
}

impl Reduction {
    /// The xarray method name.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::Min => "min",
            Reduction::Max => "max",
            Reduction::Std(_) => "std",
            Reduction::Var(_) => "var",
            Reduction::Count => "count",
            Reduction::Median => "median",
            Reduction::Prod => "prod",
            Reduction::Any => "any",
            Reduction::All => "all",
        }
    }

    /// Parses an xarray method name (`ddof` 0 for std/var).
    pub fn parse(name: &str) -> Option<Reduction> {
        Some(match name {
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            "min" => Reduction::Min,
            "max" => Reduction::Max,
            "std" => Reduction::Std(0),
            "var" => Reduction::Var(0),
            "count" => Reduction::Count,
            "median" => Reduction::Median,
            "prod" => Reduction::Prod,
            "any" => Reduction::Any,
            "all" => Reduction::All,
            _ => return None,
        })
    }
}

/// A labeled, lazy n-d array: xarray's `DataArray`.
///
/// ```
/// use gridflow_array::{ChunkedArray, DType};
/// use gridflow_dataset::{DataArray, Variable, Coords};
/// let data = ChunkedArray::ones(&[3, 4], [3, 2], DType::F64).unwrap();
/// let mut coords = Coords::new();
/// coords.insert("lat".into(), Variable::from_f64("lat", vec![-10.0, 0.0, 10.0]).unwrap());
/// let da = DataArray::new(Variable::new(["lat", "lon"], data).unwrap(), coords, Some("x")).unwrap();
/// let m = da.reduce(gridflow_dataset::Reduction::Sum, Some(&["lon"]), None).unwrap();
/// assert_eq!(m.to_f64_vec().unwrap(), vec![4.0, 4.0, 4.0]);
/// ```
#[derive(Clone, Debug)]
pub struct DataArray {
    pub(crate) name: Option<String>,
    pub(crate) variable: Variable,
    pub(crate) coords: Coords,
    pub(crate) indexes: IndexMap<String, Index>,
}

/// Loads the index of every 1-d coordinate named like its dimension.
pub(crate) fn build_indexes(
    coords: &Coords,
    known: &IndexMap<String, Index>,
) -> Result<IndexMap<String, Index>> {
    let mut out = IndexMap::new();
    for (name, v) in coords {
        if v.ndim() == 1 && v.dims()[0] == *name {
            let idx = match known.get(name) {
                Some(i) if i.len() == v.shape()[0] => i.clone(),
                _ => Index::from_variable(v)?,
            };
            out.insert(name.clone(), idx);
        }
    }
    Ok(out)
}

pub(crate) fn check_coord(
    op: &str,
    sizes: &[(String, usize)],
    name: &str,
    c: &Variable,
) -> Result<()> {
    for (d, n) in c.sizes() {
        match sizes.iter().find(|(x, _)| *x == d) {
            Some((_, m)) if *m == n => {}
            Some((_, m)) => {
                return Err(invalid(
                    op,
                    format!("coordinate {name:?} has {n} values along {d:?} but the data has {m}"),
                ));
            }
            None => {
                return Err(invalid(
                    op,
                    format!(
                        "coordinate {name:?} has dimension {d:?}, which the data does not have (dims: {:?})",
                        sizes.iter().map(|(x, _)| x.as_str()).collect::<Vec<_>>()
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl DataArray {
    /// Builds a data array, checking that coordinates fit and loading the indexes of
    /// dimension coordinates.
    pub fn new(variable: Variable, coords: Coords, name: Option<&str>) -> Result<DataArray> {
        let sizes = variable.sizes();
        for (n, c) in &coords {
            check_coord("DataArray", &sizes, n, c)?;
        }
        let indexes = build_indexes(&coords, &IndexMap::new())?;
        Ok(DataArray {
            name: name.map(str::to_owned),
            variable,
            coords,
            indexes,
        })
    }

    pub(crate) fn from_parts(
        name: Option<String>,
        variable: Variable,
        coords: Coords,
        indexes: IndexMap<String, Index>,
    ) -> DataArray {
        DataArray {
            name,
            variable,
            coords,
            indexes,
        }
    }

    /// The name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A copy with another name.
    pub fn rename(&self, name: &str) -> DataArray {
        let mut out = self.clone();
        out.name = Some(name.to_owned());
        out
    }

    /// The underlying variable.
    pub fn variable(&self) -> &Variable {
        &self.variable
    }

    /// The lazy array.
    pub fn data(&self) -> &ChunkedArray {
        &self.variable.data
    }

    /// Dimension names.
    pub fn dims(&self) -> &[String] {
        self.variable.dims()
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        self.variable.shape()
    }

    /// Dimension sizes.
    pub fn sizes(&self) -> Vec<(String, usize)> {
        self.variable.sizes()
    }

    /// dtype of the array.
    pub fn dtype(&self) -> DType {
        self.variable.dtype()
    }

    /// Attributes.
    pub fn attrs(&self) -> &Attrs {
        &self.variable.attrs
    }

    /// Mutable attributes.
    pub fn attrs_mut(&mut self) -> &mut Attrs {
        &mut self.variable.attrs
    }

    /// Coordinates.
    pub fn coords(&self) -> &Coords {
        &self.coords
    }

    /// Indexes of dimension coordinates.
    pub fn indexes(&self) -> &IndexMap<String, Index> {
        &self.indexes
    }

    /// A coordinate as a data array (with the coordinates it shares dims with).
    pub fn coord(&self, name: &str) -> Result<DataArray> {
        let v = self
            .coords
            .get(name)
            .ok_or_else(|| DatasetError::UnknownName {
                op: "coord".into(),
                name: name.to_owned(),
                available: self.coords.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        Ok(coord_array(name, v, &self.coords, &self.indexes))
    }

    /// The same array over other data of the same shape and dtype (another graph computing
    /// the same values).
    pub(crate) fn with_data(&self, data: ChunkedArray) -> Result<DataArray> {
        if data.shape() != self.shape() || data.dtype() != self.dtype() {
            return Err(DatasetError::Invalid {
                op: "with_data".into(),
                detail: format!(
                    "data of shape {:?} ({}) cannot stand for {} of shape {:?} ({})",
                    data.shape(),
                    data.dtype(),
                    self.label(),
                    self.shape(),
                    self.dtype()
                ),
            });
        }
        Ok(self.with_variable(self.variable.replace(self.dims().to_vec(), data)))
    }

    fn with_variable(&self, variable: Variable) -> DataArray {
        DataArray {
            name: self.name.clone(),
            variable,
            coords: self.coords.clone(),
            indexes: self.indexes.clone(),
        }
    }

    fn check_dims(&self, op: &str, dims: &[&str]) -> Result<()> {
        for d in dims {
            self.variable.axis_of(op, d)?;
        }
        Ok(())
    }

    /// Positional selection by dimension name: xarray's `isel`.
    pub fn isel(&self, sel: &[(&str, IndexSel)]) -> Result<DataArray> {
        let owned: Vec<(String, IndexSel)> = sel
            .iter()
            .map(|(d, s)| ((*d).to_owned(), s.clone()))
            .collect();
        for (d, _) in &owned {
            self.variable.axis_of("isel", d)?;
        }
        let variable = self.variable.isel(&owned)?;
        let (coords, indexes) = isel_coords(&self.coords, &self.indexes, self.shape_of(), &owned)?;
        Ok(DataArray {
            name: self.name.clone(),
            variable,
            coords,
            indexes,
        })
    }

    fn shape_of(&self) -> Vec<(String, usize)> {
        self.sizes()
    }

    /// Label-based selection: xarray's `sel`.
    ///
    /// Errors name the dimension and label: unknown dimension, label not found, outside the
    /// tolerance, slicing a non-monotonic index.
    pub fn sel(&self, sel: &[(&str, Selector)], opts: &SelOptions) -> Result<DataArray> {
        let mut positional = Vec::with_capacity(sel.len());
        for (dim, s) in sel {
            self.variable.axis_of("sel", dim)?;
            let idx = self.indexes.get(*dim).ok_or_else(|| DatasetError::Label {
                op: "sel".into(),
                dim: (*dim).to_owned(),
                detail: "there is no coordinate to look labels up in (use isel)".into(),
            })?;
            positional.push((*dim, idx.locate(dim, s, opts)?));
        }
        self.isel(&positional)
    }

    /// Reduces over `dims` (all when `None`); `skipna` defaults to true for floats.
    pub fn reduce(
        &self,
        reduction: Reduction,
        dims: Option<&[&str]>,
        skipna: Option<bool>,
    ) -> Result<DataArray> {
        let op = reduction.name();
        let dims: Vec<String> = match dims {
            Some(d) => {
                self.check_dims(op, d)?;
                d.iter().map(|s| (*s).to_owned()).collect()
            }
            None => self.dims().to_vec(),
        };
        let variable = reduce_variable(&self.variable, reduction, &dims, skipna)?;
        let coords: Coords = self
            .coords
            .iter()
            .filter(|(_, c)| !c.dims().iter().any(|d| dims.contains(d)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let indexes = self
            .indexes
            .iter()
            .filter(|(k, _)| !dims.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(DataArray {
            name: self.name.clone(),
            variable,
            coords,
            indexes,
        })
    }

    /// Mean over `dims` (all when `None`), NaN-skipping.
    pub fn mean(&self, dims: Option<&[&str]>) -> Result<DataArray> {
        self.reduce(Reduction::Mean, dims, None)
    }

    /// Sum over `dims` (all when `None`), NaN-skipping.
    pub fn sum(&self, dims: Option<&[&str]>) -> Result<DataArray> {
        self.reduce(Reduction::Sum, dims, None)
    }

    /// An elementwise function (`np.cos(da)`): dims and coords are kept, attributes dropped.
    pub fn unary(&self, op: UnaryOp) -> Result<DataArray> {
        self.numeric_only(op.name())?;
        let data = self.data().unary(op)?;
        Ok(self.with_variable(Variable::derived_keeping(
            self.dims().to_vec(),
            data,
            self.attrs(),
        )))
    }

    /// Casts to `dtype`.
    pub fn astype(&self, dtype: DType) -> Result<DataArray> {
        self.numeric_only("astype")?;
        Ok(self.with_variable(
            self.variable
                .replace(self.dims().to_vec(), self.data().astype(dtype)?),
        ))
    }

    fn numeric_only(&self, op: &str) -> Result<()> {
        match self.variable.kind() {
            ValueKind::Numeric => Ok(()),
            ValueKind::Time(_) => Err(invalid(
                op,
                format!("{} holds datetimes, not numbers", self.label()),
            )),
            ValueKind::Strings(_) => Err(invalid(
                op,
                format!("{} holds strings, not numbers", self.label()),
            )),
        }
    }

    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n:?}"),
            None => "the array".into(),
        }
    }

    /// `self <op> scalar` (`scalar <op> self` when `scalar_on_left`).
    pub fn binary_scalar(
        &self,
        op: BinaryOp,
        s: Scalar,
        scalar_on_left: bool,
    ) -> Result<DataArray> {
        self.numeric_only(op.name())?;
        let data = self.data().binary_scalar(op, s, scalar_on_left)?;
        Ok(self.with_variable(Variable::derived_keeping(
            self.dims().to_vec(),
            data,
            self.attrs(),
        )))
    }

    /// `self <op> other`, aligned by dimension name: shared dimensions are inner-joined on
    /// their labels, other dimensions broadcast (the result has `self`'s dims, then
    /// `other`'s new ones).
    pub fn binary(&self, op: BinaryOp, other: &DataArray) -> Result<DataArray> {
        self.numeric_only(op.name())?;
        other.numeric_only(op.name())?;
        let (a, b) = align_pair(op.name(), self, other)?;
        let dims = union_dims(a.dims(), b.dims());
        let x = broadcast_to_dims(op.name(), &a.variable, &dims)?;
        let y = broadcast_to_dims(op.name(), &b.variable, &dims)?;
        let data = x.binary(op, &y)?;
        let name = if a.name == b.name {
            a.name.clone()
        } else {
            None
        };
        let (coords, indexes) = merge_coords(&a, &b);
        Ok(DataArray {
            name,
            variable: Variable::derived_keeping(dims, data, &drop_conflicts(a.attrs(), b.attrs())),
            coords,
            indexes,
        })
    }

    /// Keeps values where `cond` is true and puts `other` (NaN when `None`) elsewhere:
    /// xarray's `where`, aligned by dimension name.
    pub fn where_(&self, cond: &DataArray, other: Option<Scalar>) -> Result<DataArray> {
        let (a, c) = align_pair("where", self, cond)?;
        let dims = union_dims(a.dims(), c.dims());
        let x = broadcast_to_dims("where", &a.variable, &dims)?;
        let m = broadcast_to_dims("where", &c.variable, &dims)?;
        let m = if m.dtype() == DType::Bool {
            m
        } else {
            m.astype(DType::Bool)?
        };
        let fill = other.unwrap_or(Scalar::Float(f64::NAN));
        let data = gridflow_array::where_(&m, &x, fill)?;
        let (coords, indexes) = merge_coords(&a, &c);
        let mut variable = a.variable.replace(dims, data);
        if !matches!(variable.kind, ValueKind::Numeric) {
            return Err(invalid(
                "where",
                format!("{} does not hold numbers", a.label()),
            ));
        }
        variable.encoding = Attrs::new();
        Ok(DataArray {
            name: a.name.clone(),
            variable,
            coords,
            indexes,
        })
    }

    /// True where values are missing (NaN).
    pub fn isnull(&self) -> Result<DataArray> {
        self.unary(UnaryOp::IsNull)
    }

    /// True where values are present.
    pub fn notnull(&self) -> Result<DataArray> {
        self.unary(UnaryOp::NotNull)
    }

    /// Reorders dimensions (`order` must name each once).
    pub fn transpose(&self, order: &[&str]) -> Result<DataArray> {
        let order: Vec<String> = order.iter().map(|s| (*s).to_owned()).collect();
        Ok(self.with_variable(self.variable.transpose(&order)?))
    }

    /// Drops length-1 dimensions (`dim`: just that one).
    pub fn squeeze(&self, dim: Option<&str>) -> Result<DataArray> {
        let targets: Vec<String> = match dim {
            Some(d) => {
                let a = self.variable.axis_of("squeeze", d)?;
                if self.shape()[a] != 1 {
                    return Err(invalid(
                        "squeeze",
                        format!("dimension {d:?} has length {}, not 1", self.shape()[a]),
                    ));
                }
                vec![d.to_owned()]
            }
            None => self
                .sizes()
                .into_iter()
                .filter(|(_, n)| *n == 1)
                .map(|(d, _)| d)
                .collect(),
        };
        let sel: Vec<(&str, IndexSel)> = targets
            .iter()
            .map(|d| (d.as_str(), IndexSel::Int(0)))
            .collect();
        self.isel(&sel)
    }

    /// Adds a length-1 dimension in front.
    pub fn expand_dims(&self, dim: &str) -> Result<DataArray> {
        if self.variable.axis(dim).is_some() {
            return Err(invalid(
                "expand_dims",
                format!("dimension {dim:?} already exists"),
            ));
        }
        let mut dims = vec![dim.to_owned()];
        dims.extend(self.dims().iter().cloned());
        let data = self.data().expand_dims(0)?;
        let mut out = self.with_variable(self.variable.replace(dims, data));
        // a scalar coordinate of that name becomes the new dimension's coordinate
        if let Some(c) = out.coords.get(dim).cloned()
            && c.ndim() == 0
        {
            let v = c.replace(vec![dim.to_owned()], c.data().expand_dims(0)?);
            out.indexes
                .insert(dim.to_owned(), Index::from_variable(&v)?);
            out.coords.insert(dim.to_owned(), v);
        }
        Ok(out)
    }

    /// Renames dimensions (and their coordinates).
    pub fn rename_dims(&self, names: &[(&str, &str)]) -> Result<DataArray> {
        let map = |d: &String| -> String {
            names
                .iter()
                .find(|(a, _)| *a == d)
                .map_or_else(|| d.clone(), |(_, b)| (*b).to_owned())
        };
        for (a, _) in names {
            if self.variable.axis(a).is_none() && !self.coords.contains_key(*a) {
                return Err(DatasetError::UnknownDim {
                    op: "rename".into(),
                    dim: (*a).to_owned(),
                    available: format!("{:?}", self.dims()),
                });
            }
        }
        let mut variable = self.variable.clone();
        variable.dims = variable.dims.iter().map(map).collect();
        let coords: Coords = self
            .coords
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.dims = v.dims.iter().map(map).collect();
                (map(k), v)
            })
            .collect();
        let indexes = self
            .indexes
            .iter()
            .map(|(k, v)| (map(k), v.clone()))
            .collect();
        Ok(DataArray {
            name: self.name.clone(),
            variable,
            coords,
            indexes,
        })
    }

    /// Adds or replaces coordinates.
    pub fn assign_coords(&self, new: &[(&str, Variable)]) -> Result<DataArray> {
        let mut out = self.clone();
        let sizes = self.sizes();
        for (name, v) in new {
            check_coord("assign_coords", &sizes, name, v)?;
            out.coords.insert((*name).to_owned(), v.clone());
            out.indexes.shift_remove(*name);
        }
        out.indexes = build_indexes(&out.coords, &out.indexes)?;
        Ok(out)
    }

    /// Rechunks by dimension name (`0` = one chunk along that dimension).
    pub fn chunk(&self, chunks: &[(&str, usize)]) -> Result<DataArray> {
        let mut sizes: Vec<Vec<usize>> = self.data().chunks().to_vec();
        for (d, n) in chunks {
            let a = self.variable.axis_of("chunk", d)?;
            let len = self.shape()[a];
            let n = if *n == 0 { len.max(1) } else { *n };
            sizes[a] = (0..len).step_by(n).map(|s| n.min(len - s)).collect();
            if sizes[a].is_empty() {
                sizes[a] = vec![0];
            }
        }
        let data = self.data().rechunk(sizes)?;
        Ok(self.with_variable(self.variable.replace(self.dims().to_vec(), data)))
    }

    /// Computes the values on `executor`, returning an in-memory data array.
    pub fn compute_with(&self, executor: &dyn Executor<ArrayOp>) -> Result<DataArray> {
        let chunk = self.data().compute_with(executor)?;
        let chunks: Vec<usize> = chunk.shape().iter().map(|&s| s.max(1)).collect();
        let data = ChunkedArray::from_chunk(chunk, chunks)?;
        Ok(self.with_variable(self.variable.replace(self.dims().to_vec(), data)))
    }

    /// Computes on the default thread pool.
    pub fn compute(&self) -> Result<DataArray> {
        self.compute_with(&LocalExecutor::default())
    }

    /// Computes the blocks and keeps them in memory (for reuse by later computations).
    pub fn persist_with(&self, executor: &dyn Executor<ArrayOp>) -> Result<DataArray> {
        let data = self.data().persist_with(executor)?;
        Ok(self.with_variable(self.variable.replace(self.dims().to_vec(), data)))
    }

    /// The values as float64 in row-major order (computed).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.variable.to_f64_vec()
    }

    /// Concatenates along `dim`: an existing dimension (indexes joined) or a new one in
    /// front (with `labels` as its coordinate, if given).
    pub fn concat(arrays: &[DataArray], dim: &str, labels: Option<Variable>) -> Result<DataArray> {
        let first = arrays
            .first()
            .ok_or_else(|| invalid("concat", "no arrays to concatenate"))?;
        let existing = first.variable.axis(dim).is_some();
        let parts: Vec<DataArray> = if existing {
            arrays.to_vec()
        } else {
            arrays
                .iter()
                .map(|a| a.expand_dims(dim))
                .collect::<Result<_>>()?
        };
        let axis = parts[0].variable.axis_of("concat", dim)?;
        for p in &parts[1..] {
            if p.dims() != parts[0].dims() {
                return Err(invalid(
                    "concat",
                    format!("dims {:?} and {:?} differ", parts[0].dims(), p.dims()),
                ));
            }
        }
        let datas: Vec<&ChunkedArray> = parts.iter().map(|p| p.data()).collect();
        let data = ChunkedArray::concatenate(&datas, axis as isize)?;
        let variable = parts[0].variable.replace(parts[0].dims().to_vec(), data);
        let mut coords = Coords::new();
        for (name, c) in &parts[0].coords {
            if c.axis(dim).is_some() {
                let all: Vec<&ChunkedArray> = parts
                    .iter()
                    .map(|p| {
                        p.coords.get(name).map(Variable::data).ok_or_else(|| {
                            invalid(
                                "concat",
                                format!("coordinate {name:?} is missing in some arrays"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                let ax = c.axis(dim).unwrap_or(0);
                let joined = ChunkedArray::concatenate(&all, ax as isize)?;
                coords.insert(name.clone(), c.replace(c.dims().to_vec(), joined));
            } else {
                coords.insert(name.clone(), c.clone());
            }
        }
        if let Some(l) = labels {
            if l.shape() != [parts.len()] {
                return Err(invalid(
                    "concat",
                    format!(
                        "{} labels for {} arrays",
                        l.shape().iter().product::<usize>(),
                        parts.len()
                    ),
                ));
            }
            let mut l = l;
            l.dims = vec![dim.to_owned()];
            coords.insert(dim.to_owned(), l);
        }
        let sizes = variable.sizes();
        coords.retain(|n, c| check_coord("concat", &sizes, n, c).is_ok());
        let indexes = build_indexes(&coords, &IndexMap::new())?;
        Ok(DataArray {
            name: first.name.clone(),
            variable,
            coords,
            indexes,
        })
    }
}

/// A coordinate variable seen as a data array.
pub(crate) fn coord_array(
    name: &str,
    v: &Variable,
    coords: &Coords,
    indexes: &IndexMap<String, Index>,
) -> DataArray {
    let sub: Coords = coords
        .iter()
        .filter(|(_, c)| c.dims().iter().all(|d| v.dims().contains(d)))
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect();
    let idx = indexes
        .iter()
        .filter(|(k, _)| v.dims().contains(k))
        .map(|(k, i)| (k.clone(), i.clone()))
        .collect();
    DataArray {
        name: Some(name.to_owned()),
        variable: v.clone(),
        coords: sub,
        indexes: idx,
    }
}

/// Applies a positional selection to coordinates and indexes.
pub(crate) fn isel_coords(
    coords: &Coords,
    indexes: &IndexMap<String, Index>,
    sizes: Vec<(String, usize)>,
    sel: &[(String, IndexSel)],
) -> Result<(Coords, IndexMap<String, Index>)> {
    let mut out = Coords::new();
    for (k, c) in coords {
        out.insert(k.clone(), c.isel(sel)?);
    }
    let mut idx = IndexMap::new();
    for (k, i) in indexes {
        match sel.iter().find(|(d, _)| d == k) {
            None => {
                idx.insert(k.clone(), i.clone());
            }
            Some((_, IndexSel::Int(_))) => {}
            Some((_, s)) => {
                let n = sizes
                    .iter()
                    .find(|(d, _)| d == k)
                    .map_or(i.len(), |(_, n)| *n);
                idx.insert(k.clone(), i.take(&s.positions(n)?));
            }
        }
    }
    Ok((out, idx))
}

/// Reduces one variable by dimension names.
pub(crate) fn reduce_variable(
    v: &Variable,
    reduction: Reduction,
    dims: &[String],
    skipna: Option<bool>,
) -> Result<Variable> {
    let op = reduction.name();
    let axes: Vec<isize> = dims
        .iter()
        .map(|d| v.axis_of(op, d).map(|a| a as isize))
        .collect::<Result<_>>()?;
    let keep: Vec<String> = v
        .dims()
        .iter()
        .filter(|d| !dims.contains(d))
        .cloned()
        .collect();
    let time = match v.kind() {
        ValueKind::Numeric => false,
        ValueKind::Time(_)
            if matches!(
                reduction,
                Reduction::Min | Reduction::Max | Reduction::Count
            ) =>
        {
            true
        }
        _ => {
            return Err(invalid(
                op,
                format!(
                    "cannot take the {op} of non-numeric values (dims {:?})",
                    v.dims()
                ),
            ));
        }
    };
    let skipna = skipna.unwrap_or(true);
    let data = v.data();
    let out = if reduction == Reduction::Median {
        data.median(Some(&axes), skipna)?
    } else {
        let rop = match reduction {
            Reduction::Sum => ReduceOp::Sum,
            Reduction::Mean => ReduceOp::Mean,
            Reduction::Min => ReduceOp::Min,
            Reduction::Max => ReduceOp::Max,
            Reduction::Std(_) => ReduceOp::Std,
            Reduction::Var(_) => ReduceOp::Var,
            Reduction::Count => ReduceOp::Count,
            Reduction::Prod => ReduceOp::Prod,
            Reduction::Any => ReduceOp::Any,
            Reduction::All => ReduceOp::All,
            Reduction::Median => ReduceOp::Sum,
        };
        let mut ro = ReduceOptions::axes(Some(&axes));
        ro.skipna = skipna;
        if let Reduction::Std(d) | Reduction::Var(d) = reduction {
            ro.ddof = d;
        }
        data.reduce(rop, &ro)?
    };
    if time && reduction != Reduction::Count {
        Ok(v.replace(keep, out).without_encoding())
    } else {
        Ok(Variable::derived_keeping(keep, out, &v.attrs))
    }
}

/// The attributes of a binary operation's result, as xarray's default
/// `keep_attrs="drop_conflicts"`: both operands' attributes, less the keys they disagree on.
pub(crate) fn drop_conflicts(a: &Attrs, b: &Attrs) -> Attrs {
    let mut out = Attrs::new();
    for (k, v) in a.iter().chain(b.iter()) {
        let conflict = matches!((a.get(k), b.get(k)), (Some(x), Some(y)) if x != y);
        if !conflict && !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

impl Variable {
    fn without_encoding(mut self) -> Variable {
        self.encoding = Attrs::new();
        self
    }
}

/// The union of two dimension lists: `a`'s, then `b`'s new ones.
pub(crate) fn union_dims(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for d in b {
        if !out.contains(d) {
            out.push(d.clone());
        }
    }
    out
}

/// The variable's data arranged on `dims` (which contain all of its dims): transposed to
/// their order, with length-1 axes where it lacks a dimension (NumPy broadcasting does the
/// rest).
pub(crate) fn broadcast_to_dims(op: &str, v: &Variable, dims: &[String]) -> Result<ChunkedArray> {
    let order: Vec<String> = dims
        .iter()
        .filter(|d| v.axis(d).is_some())
        .cloned()
        .collect();
    if order.len() != v.ndim() {
        return Err(invalid(
            op,
            format!("dims {:?} do not cover {:?}", dims, v.dims()),
        ));
    }
    let mut data = v.transpose(&order)?.data;
    for (i, d) in dims.iter().enumerate() {
        if v.axis(d).is_none() {
            data = data.expand_dims(i as isize)?;
        }
    }
    Ok(data)
}

/// Inner-joins two arrays on the labels of their shared indexed dimensions and checks the
/// sizes of the other shared dimensions.
pub(crate) fn align_pair(op: &str, a: &DataArray, b: &DataArray) -> Result<(DataArray, DataArray)> {
    let mut sa = Vec::new();
    let mut sb = Vec::new();
    for d in a.dims() {
        let Some(bx) = b.variable.axis(d) else {
            continue;
        };
        let ax = a.variable.axis(d).unwrap_or(0);
        match (a.indexes.get(d), b.indexes.get(d)) {
            (Some(ia), Some(ib)) => {
                if let Some((pa, pb)) = ia.inner_join(ib) {
                    sa.push((
                        d.as_str(),
                        IndexSel::List(pa.iter().map(|&i| i as isize).collect()),
                    ));
                    sb.push((
                        d.as_str(),
                        IndexSel::List(pb.iter().map(|&i| i as isize).collect()),
                    ));
                }
            }
            _ => {
                let (na, nb) = (a.shape()[ax], b.shape()[bx]);
                if na != nb && na != 1 && nb != 1 {
                    return Err(invalid(
                        op,
                        format!(
                            "dimension {d:?} has size {na} on the left and {nb} on the right, and no labels to align them"
                        ),
                    ));
                }
            }
        }
    }
    let a2 = if sa.is_empty() {
        a.clone()
    } else {
        a.isel(&simplify(&sa))?
    };
    let b2 = if sb.is_empty() {
        b.clone()
    } else {
        b.isel(&simplify(&sb))?
    };
    Ok((a2, b2))
}

/// Turns contiguous position lists into slices (cheaper than gathers).
fn simplify<'a>(sel: &[(&'a str, IndexSel)]) -> Vec<(&'a str, IndexSel)> {
    sel.iter()
        .map(|(d, s)| {
            let s = match s {
                IndexSel::List(v) if !v.is_empty() && v.windows(2).all(|w| w[1] == w[0] + 1) => {
                    IndexSel::Slice {
                        start: Some(v[0]),
                        stop: Some(v[v.len() - 1] + 1),
                        step: None,
                    }
                }
                other => other.clone(),
            };
            (*d, s)
        })
        .collect()
}

/// Coordinates of a binary result: `a`'s, then `b`'s others.
pub(crate) fn merge_coords(a: &DataArray, b: &DataArray) -> (Coords, IndexMap<String, Index>) {
    let mut coords = a.coords.clone();
    let mut indexes = a.indexes.clone();
    for (k, v) in &b.coords {
        if !coords.contains_key(k) {
            coords.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &b.indexes {
        if !indexes.contains_key(k) {
            indexes.insert(k.clone(), v.clone());
        }
    }
    (coords, indexes)
}
