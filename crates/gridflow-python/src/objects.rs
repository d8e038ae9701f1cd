//! Lazy `DataArray`, `Dataset` and the group-by / weighted / rolling helpers, forwarding
//! to `gridflow-dataset`.

use crate::cluster::with_executor;
use crate::convert::{attrs_json, index_sel, kind_to_py, scalar, selector, variable_to_py};
use crate::error::{PyResultExt, err};
use gridflow_array::kernels::{BinaryOp, UnaryOp};
use gridflow_array::{Chunk, ChunkedArray, DType};
use gridflow_dataset::{
    Coords, DataArray, Dataset, GroupBy, IndexSel, Method, OpenOptions, Reduction, Rolling,
    SelOptions, Selector, Tolerance, Variable, Weighted,
};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

fn reduction(name: &str, ddof: usize) -> PyResult<Reduction> {
    match Reduction::parse(name) {
        Some(Reduction::Std(_)) => Ok(Reduction::Std(ddof)),
        Some(Reduction::Var(_)) => Ok(Reduction::Var(ddof)),
        Some(r) => Ok(r),
        None => Err(err(format!("unknown reduction {name:?}"))),
    }
}

fn unary_op(name: &str) -> PyResult<UnaryOp> {
    UnaryOp::ALL
        .into_iter()
        .find(|o| o.name() == name)
        .ok_or_else(|| err(format!("{name}: not an elementwise function gridflow has")))
}

fn binary_op(name: &str) -> PyResult<BinaryOp> {
    BinaryOp::ALL
        .into_iter()
        .find(|o| o.name() == name)
        .ok_or_else(|| err(format!("{name}: not a binary operation gridflow has")))
}

/// The NumPy names of the elementwise functions gridflow computes (`np.cos`, ...).
#[pyfunction]
pub fn unary_op_names() -> Vec<&'static str> {
    UnaryOp::ALL.iter().map(|o| o.name()).collect()
}

/// The NumPy names of the binary operations gridflow computes (`add`, `less`, ...).
#[pyfunction]
pub fn binary_op_names() -> Vec<&'static str> {
    BinaryOp::ALL.iter().map(|o| o.name()).collect()
}

fn dims_arg(dims: &Option<Vec<String>>) -> Option<Vec<&str>> {
    dims.as_ref()
        .map(|d| d.iter().map(String::as_str).collect())
}

fn sel_options(method: Option<&str>, tolerance: Option<&Bound<'_, PyAny>>) -> PyResult<SelOptions> {
    let method = match method {
        Some(m) => m.parse::<Method>().py()?,
        None => Method::Exact,
    };
    let tolerance = match tolerance {
        None => None,
        Some(t) if t.is_none() => None,
        Some(t) if t.is_instance_of::<PyString>() => Some(Tolerance::Duration(t.extract()?)),
        Some(t) => Some(Tolerance::Value(t.extract()?)),
    };
    Ok(SelOptions { method, tolerance })
}

fn selectors(indexers: &Bound<'_, PyDict>) -> PyResult<Vec<(String, Selector)>> {
    indexers
        .iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, selector(&v)?)))
        .collect()
}

fn index_sels(indexers: &Bound<'_, PyDict>) -> PyResult<Vec<(String, IndexSel)>> {
    indexers
        .iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, index_sel(&v)?)))
        .collect()
}

fn borrow<T>(v: &[(String, T)]) -> Vec<(&str, T)>
where
    T: Clone,
{
    v.iter().map(|(k, s)| (k.as_str(), s.clone())).collect()
}

fn chunks_of(data: &ChunkedArray) -> Vec<Vec<usize>> {
    data.chunks().to_vec()
}

/// A lazy labeled array (gridflow's `DataArray`).
#[pyclass(name = "DataArray", module = "gridflow._gridflow", frozen)]
#[derive(Clone)]
pub struct PyDataArray {
    pub(crate) inner: DataArray,
}

fn da(inner: DataArray) -> PyDataArray {
    PyDataArray { inner }
}

#[pymethods]
impl PyDataArray {
    /// The name, if any.
    #[getter]
    fn name(&self) -> Option<String> {
        self.inner.name().map(str::to_owned)
    }

    /// Dimension names.
    #[getter]
    fn dims(&self) -> Vec<String> {
        self.inner.dims().to_vec()
    }

    /// The shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.inner.shape().to_vec()
    }

    /// The NumPy name of the dtype of the stored numbers.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    /// `None`, `("time", calendar)` or `("strings", table)`.
    #[getter]
    fn kind(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        kind_to_py(py, self.inner.variable().kind())
    }

    /// Block sizes per axis.
    #[getter]
    fn chunks(&self) -> Vec<Vec<usize>> {
        chunks_of(self.inner.data())
    }

    /// Bytes of the whole array.
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.data().nbytes()
    }

    /// Attributes as JSON text.
    #[getter]
    fn attrs_json(&self) -> PyResult<String> {
        attrs_json(self.inner.attrs())
    }

    /// Encoding as JSON text.
    #[getter]
    fn encoding_json(&self) -> PyResult<String> {
        attrs_json(&self.inner.variable().encoding)
    }

    /// Coordinate names.
    fn coord_names(&self) -> Vec<String> {
        self.inner.coords().keys().cloned().collect()
    }

    /// A coordinate as a lazy data array.
    fn coord(&self, name: &str) -> PyResult<PyDataArray> {
        self.inner.coord(name).py().map(da)
    }

    /// A copy with these attributes (JSON text of an object).
    fn with_attrs_json(&self, attrs: &str) -> PyResult<PyDataArray> {
        let attrs: gridflow_dataset::Attrs = serde_json::from_str(attrs).py()?;
        let mut inner = self.inner.clone();
        *inner.attrs_mut() = attrs;
        Ok(da(inner))
    }

    /// A renamed copy.
    fn rename(&self, name: &str) -> PyDataArray {
        da(self.inner.rename(name))
    }

    /// Selection by label: `indexers` maps dims to labels, slices or lists.
    #[pyo3(signature = (indexers, method=None, tolerance=None))]
    fn sel(
        &self,
        indexers: &Bound<'_, PyDict>,
        method: Option<&str>,
        tolerance: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDataArray> {
        let s = selectors(indexers)?;
        self.inner
            .sel(&borrow(&s), &sel_options(method, tolerance)?)
            .py()
            .map(da)
    }

    /// Selection by position.
    fn isel(&self, indexers: &Bound<'_, PyDict>) -> PyResult<PyDataArray> {
        let s = index_sels(indexers)?;
        self.inner.isel(&borrow(&s)).py().map(da)
    }

    /// A reduction (`mean`, `sum`, `min`, `max`, `std`, ...) over `dims` (all when `None`).
    #[pyo3(signature = (name, dims=None, skipna=None, ddof=0))]
    fn reduce(
        &self,
        name: &str,
        dims: Option<Vec<String>>,
        skipna: Option<bool>,
        ddof: usize,
    ) -> PyResult<PyDataArray> {
        let d = dims_arg(&dims);
        self.inner
            .reduce(reduction(name, ddof)?, d.as_deref(), skipna)
            .py()
            .map(da)
    }

    /// An elementwise function by NumPy name (`cos`, `negative`, ...).
    fn unary(&self, name: &str) -> PyResult<PyDataArray> {
        self.inner.unary(unary_op(name)?).py().map(da)
    }

    /// `self <op> number` (`number <op> self` when `reflected`).
    fn binary_scalar(
        &self,
        op: &str,
        value: &Bound<'_, PyAny>,
        reflected: bool,
    ) -> PyResult<PyDataArray> {
        self.inner
            .binary_scalar(binary_op(op)?, scalar(value)?, reflected)
            .py()
            .map(da)
    }

    /// `self <op> other`, aligned by dimension name.
    fn binary(&self, op: &str, other: &PyDataArray) -> PyResult<PyDataArray> {
        self.inner.binary(binary_op(op)?, &other.inner).py().map(da)
    }

    /// Values where `cond` holds, `other` (NaN when `None`) elsewhere.
    #[pyo3(signature = (cond, other=None))]
    fn where_(
        &self,
        cond: &PyDataArray,
        other: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDataArray> {
        let other = match other {
            Some(o) if !o.is_none() => Some(scalar(o)?),
            _ => None,
        };
        self.inner.where_(&cond.inner, other).py().map(da)
    }

    /// Cast to a NumPy dtype name.
    fn astype(&self, dtype: &str) -> PyResult<PyDataArray> {
        let t =
            DType::parse(dtype).ok_or_else(|| err(format!("astype: unknown dtype {dtype:?}")))?;
        self.inner.astype(t).py().map(da)
    }

    /// Dimensions reordered.
    fn transpose(&self, order: Vec<String>) -> PyResult<PyDataArray> {
        let o: Vec<&str> = order.iter().map(String::as_str).collect();
        self.inner.transpose(&o).py().map(da)
    }

    /// Length-1 dimensions dropped (one, or all when `None`).
    #[pyo3(signature = (dim=None))]
    fn squeeze(&self, dim: Option<&str>) -> PyResult<PyDataArray> {
        self.inner.squeeze(dim).py().map(da)
    }

    /// Rechunked by dimension name.
    fn chunk(&self, chunks: Vec<(String, usize)>) -> PyResult<PyDataArray> {
        let c: Vec<(&str, usize)> = chunks.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        self.inner.chunk(&c).py().map(da)
    }

    /// Groups by a coordinate or a datetime component (`time.month`).
    fn groupby(&self, key: &str) -> PyResult<PyGroupBy> {
        self.inner
            .groupby(key)
            .py()
            .map(|inner| PyGroupBy { inner })
    }

    /// Groups by time period (`resample(time="1D")`).
    fn resample(&self, dim: &str, freq: &str) -> PyResult<PyGroupBy> {
        self.inner
            .resample(dim, freq)
            .py()
            .map(|inner| PyGroupBy { inner })
    }

    /// Weighted reductions by `weights`.
    fn weighted(&self, weights: &PyDataArray) -> PyResult<PyWeighted> {
        self.inner
            .weighted(&weights.inner)
            .py()
            .map(|inner| PyWeighted { inner })
    }

    /// A moving window along `dim`.
    #[pyo3(signature = (dim, window, min_periods=None))]
    fn rolling(&self, dim: &str, window: usize, min_periods: Option<usize>) -> PyResult<PyRolling> {
        let mut r = self.inner.rolling(dim, window).py()?;
        if let Some(n) = min_periods {
            r = r.min_periods(n);
        }
        Ok(PyRolling { inner: r })
    }

    /// The optimized graph for Dask: `(tasks, outputs, numblocks)` (see `gridflow.dask`).
    #[allow(clippy::type_complexity)]
    fn dask_tasks(
        &self,
    ) -> PyResult<(Vec<(String, Vec<u8>, Vec<String>)>, Vec<String>, Vec<usize>)> {
        crate::dask::dask_tasks(self)
    }

    /// Tasks in the graph as built.
    fn graph_len(&self) -> usize {
        self.inner.data().graph_len()
    }

    /// Tasks left after culling and fusion (what an executor runs).
    fn optimized_graph_len(&self) -> PyResult<usize> {
        Ok(self.inner.data().optimized_graph().py()?.len())
    }

    /// The optimized task graph as a self-contained SVG drawing.
    fn to_svg(&self) -> PyResult<String> {
        self.inner.data().to_svg().py()
    }

    /// Computes on the default client (or the local thread pool; the GIL released) and
    /// returns `(name, variable, coords)`, each variable as
    /// `(name, dims, values, kind, attrs_json, encoding_json)`.
    #[pyo3(signature = (progress=None))]
    fn compute_raw(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        with_executor(progress, |exec| {
            let name = self.inner.name().unwrap_or_default();
            let var = variable_to_py(py, name, self.inner.variable(), exec)?;
            let coords = coords_to_py(py, self.inner.coords())?;
            Ok((self.inner.name(), var, coords)
                .into_pyobject(py)?
                .into_any()
                .unbind())
        })
    }

    /// Only the values, computed (a NumPy array owning the Rust buffer).
    #[pyo3(signature = (progress=None))]
    fn compute_values(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        with_executor(progress, |exec| {
            let data = self.inner.data().clone();
            let chunk = py.detach(|| data.compute_with(exec)).py()?;
            Ok(crate::convert::chunk_to_numpy(py, chunk))
        })
    }

    fn __repr__(&self) -> String {
        self.inner.to_string()
    }
}

/// Coordinates are small (mostly labels already in memory): computed here, on the local
/// pool, without progress reports that would restart the caller's bar.
fn coords_to_py(py: Python<'_>, coords: &Coords) -> PyResult<Vec<Py<PyAny>>> {
    let local = gridflow_array::LocalExecutor::default();
    coords
        .iter()
        .map(|(k, v)| variable_to_py(py, k, v, &local))
        .collect()
}

/// A NumPy array as a (single-chunk) data array over `dims`, for arithmetic with arrays.
#[pyfunction]
pub fn from_numpy(array: &Bound<'_, PyAny>, dims: Vec<String>) -> PyResult<PyDataArray> {
    macro_rules! try_type {
        ($t:ty, $v:ident) => {
            if let Ok(a) = array.cast::<PyArrayDyn<$t>>() {
                let owned = a.readonly().as_array().to_owned();
                let shape: Vec<usize> = a.shape().iter().map(|&s| s.max(1)).collect();
                let data = ChunkedArray::from_chunk(Chunk::$v(owned), shape).py()?;
                let var = Variable::new(dims, data).py()?;
                return DataArray::new(var, Coords::new(), None).py().map(da);
            }
        };
    }
    try_type!(f64, F64);
    try_type!(f32, F32);
    try_type!(i64, I64);
    try_type!(i32, I32);
    try_type!(i16, I16);
    try_type!(i8, I8);
    try_type!(u64, U64);
    try_type!(u32, U32);
    try_type!(u16, U16);
    try_type!(u8, U8);
    try_type!(bool, Bool);
    Err(err(format!(
        "cannot use an array of {} with gridflow (numbers and booleans only)",
        array.getattr("dtype")?.str()?
    )))
}

/// Group-wise reductions (`groupby` / `resample`).
#[pyclass(name = "GroupBy", module = "gridflow._gridflow", frozen)]
pub struct PyGroupBy {
    inner: GroupBy,
}

#[pymethods]
impl PyGroupBy {
    /// A reduction of every group.
    #[pyo3(signature = (name, skipna=None, ddof=0))]
    fn reduce(&self, name: &str, skipna: Option<bool>, ddof: usize) -> PyResult<PyDataArray> {
        self.inner
            .reduce(reduction(name, ddof)?, skipna)
            .py()
            .map(da)
    }

    /// Group-wise arithmetic with one value per group (`anomalies = g - clim`).
    fn binary(&self, op: &str, other: &PyDataArray) -> PyResult<PyDataArray> {
        self.inner.binary(binary_op(op)?, &other.inner).py().map(da)
    }

    /// The number of groups.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// Weighted reductions.
#[pyclass(name = "Weighted", module = "gridflow._gridflow", frozen)]
pub struct PyWeighted {
    inner: Weighted,
}

#[pymethods]
impl PyWeighted {
    /// Weighted mean over `dims` (all when `None`).
    #[pyo3(signature = (dims=None))]
    fn mean(&self, dims: Option<Vec<String>>) -> PyResult<PyDataArray> {
        self.inner.mean(dims_arg(&dims).as_deref()).py().map(da)
    }

    /// Weighted sum over `dims`.
    #[pyo3(signature = (dims=None))]
    fn sum(&self, dims: Option<Vec<String>>) -> PyResult<PyDataArray> {
        self.inner.sum(dims_arg(&dims).as_deref()).py().map(da)
    }

    /// Sum of the weights over `dims` where values are valid.
    #[pyo3(signature = (dims=None))]
    fn sum_of_weights(&self, dims: Option<Vec<String>>) -> PyResult<PyDataArray> {
        self.inner
            .sum_of_weights(dims_arg(&dims).as_deref())
            .py()
            .map(da)
    }
}

/// Moving-window reductions.
#[pyclass(name = "Rolling", module = "gridflow._gridflow", frozen)]
pub struct PyRolling {
    inner: Rolling,
}

#[pymethods]
impl PyRolling {
    /// `mean`, `sum`, `min` or `max` of each window.
    fn reduce(&self, name: &str) -> PyResult<PyDataArray> {
        let r = match name {
            "mean" => self.inner.mean(),
            "sum" => self.inner.sum(),
            "min" => self.inner.min(),
            "max" => self.inner.max(),
            other => {
                return Err(err(format!(
                    "rolling: no reduction {other:?} (mean, sum, min, max)"
                )));
            }
        };
        r.py().map(da)
    }
}

/// A lazy dataset (gridflow's `Dataset`).
#[pyclass(name = "Dataset", module = "gridflow._gridflow", frozen)]
#[derive(Clone)]
pub struct PyDataset {
    pub(crate) inner: Dataset,
}

fn dset(inner: Dataset) -> PyDataset {
    PyDataset { inner }
}

#[pymethods]
impl PyDataset {
    /// Dimension sizes, in xarray's order.
    #[getter]
    fn sizes(&self) -> Vec<(String, usize)> {
        self.inner.dims().into_iter().collect()
    }

    /// Data variable names.
    fn data_var_names(&self) -> Vec<String> {
        self.inner.data_vars().keys().cloned().collect()
    }

    /// Coordinate names.
    fn coord_names(&self) -> Vec<String> {
        self.inner.coords().keys().cloned().collect()
    }

    /// Global attributes as JSON text.
    #[getter]
    fn attrs_json(&self) -> PyResult<String> {
        attrs_json(&self.inner.attrs)
    }

    /// Encoding as JSON text.
    #[getter]
    fn encoding_json(&self) -> PyResult<String> {
        attrs_json(&self.inner.encoding)
    }

    /// A variable or coordinate as a lazy data array.
    fn get(&self, name: &str) -> PyResult<PyDataArray> {
        self.inner.get(name).py().map(da)
    }

    /// Selection by label.
    #[pyo3(signature = (indexers, method=None, tolerance=None))]
    fn sel(
        &self,
        indexers: &Bound<'_, PyDict>,
        method: Option<&str>,
        tolerance: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDataset> {
        let s = selectors(indexers)?;
        self.inner
            .sel(&borrow(&s), &sel_options(method, tolerance)?)
            .py()
            .map(dset)
    }

    /// Selection by position.
    fn isel(&self, indexers: &Bound<'_, PyDict>) -> PyResult<PyDataset> {
        let s = index_sels(indexers)?;
        self.inner.isel(&borrow(&s)).py().map(dset)
    }

    /// A reduction of every data variable over `dims`.
    #[pyo3(signature = (name, dims=None, skipna=None, ddof=0))]
    fn reduce(
        &self,
        name: &str,
        dims: Option<Vec<String>>,
        skipna: Option<bool>,
        ddof: usize,
    ) -> PyResult<PyDataset> {
        let d = dims_arg(&dims);
        self.inner
            .reduce(reduction(name, ddof)?, d.as_deref(), skipna)
            .py()
            .map(dset)
    }

    /// Only these variables.
    fn subset(&self, names: Vec<String>) -> PyResult<PyDataset> {
        let n: Vec<&str> = names.iter().map(String::as_str).collect();
        self.inner.subset(&n).py().map(dset)
    }

    /// Rechunked by dimension name.
    fn chunk(&self, chunks: Vec<(String, usize)>) -> PyResult<PyDataset> {
        let c: Vec<(&str, usize)> = chunks.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        self.inner.chunk(&c).py().map(dset)
    }

    /// Computes every variable (one run per variable on the default client or the local
    /// pool, GIL released, so that each result's buffer goes to NumPy without a copy) and
    /// returns `(data_vars, coords, attrs_json, encoding_json)`.
    #[pyo3(signature = (progress=None))]
    fn compute_raw(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        with_executor(progress, |exec| {
            let computed = &self.inner;
            let vars = computed
                .data_vars()
                .iter()
                .map(|(k, v)| variable_to_py(py, k, v, exec))
                .collect::<PyResult<Vec<_>>>()?;
            let coords = coords_to_py(py, computed.coords())?;
            let out = PyList::new(py, [vars, coords])?;
            Ok((
                out,
                attrs_json(&computed.attrs)?,
                attrs_json(&computed.encoding)?,
            )
                .into_pyobject(py)?
                .into_any()
                .unbind())
        })
    }

    fn __repr__(&self) -> String {
        self.inner.to_string()
    }
}

/// Opens a Zarr store lazily with CF decoding.
#[pyfunction]
#[pyo3(signature = (url, chunks=None, storage_options=None, decode_cf=true))]
pub fn open_zarr(
    py: Python<'_>,
    url: &str,
    chunks: Option<Vec<(String, usize)>>,
    storage_options: Option<Vec<(String, String)>>,
    decode_cf: bool,
) -> PyResult<PyDataset> {
    let options = open_options(chunks, storage_options, decode_cf)?;
    let url = url.to_owned();
    py.detach(|| gridflow_dataset::open_zarr(&url, &options))
        .py()
        .map(dset)
}

/// Opens whatever `url` is (a netCDF file, recognised by its first bytes; a glob of them; a
/// Zarr store or a kerchunk reference set) lazily with CF decoding; `group` as xarray's.
#[pyfunction]
#[pyo3(signature = (url, chunks=None, storage_options=None, decode_cf=true, group=None))]
pub fn open_dataset(
    py: Python<'_>,
    url: &str,
    chunks: Option<Vec<(String, usize)>>,
    storage_options: Option<Vec<(String, String)>>,
    decode_cf: bool,
    group: Option<String>,
) -> PyResult<PyDataset> {
    let mut options = open_options(chunks, storage_options, decode_cf)?;
    options.group = group.unwrap_or_default().trim_matches('/').to_owned();
    let url = url.to_owned();
    py.detach(|| gridflow_dataset::open_dataset(&url, &options))
        .py()
        .map(dset)
}

fn open_options(
    chunks: Option<Vec<(String, usize)>>,
    storage_options: Option<Vec<(String, String)>>,
    decode_cf: bool,
) -> PyResult<OpenOptions> {
    let mut options = OpenOptions::default();
    if let Some(c) = chunks {
        options.chunks = c;
    }
    for (k, v) in storage_options.unwrap_or_default() {
        options
            .store
            .set(&k, &v)
            .map_err(|e| err(format!("storage_options: {e}")))?;
    }
    if !decode_cf {
        options.decode = gridflow_dataset::DecodeOptions::none();
    }
    Ok(options)
}
