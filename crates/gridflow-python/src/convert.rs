//! Python values to gridflow's selectors and scalars, computed chunks to NumPy arrays.

use crate::error::{PyResultExt, err};
use gridflow_array::{ArrayOp, Chunk, Executor, Scalar};
use gridflow_dataset::{IndexSel, Label, Selector, ValueKind, Variable};
use numpy::PyArray;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PySlice, PyString, PyTuple};

/// A Python scalar (bool, int, float, or a NumPy scalar) as a gridflow [`Scalar`].
pub fn scalar(obj: &Bound<'_, PyAny>) -> PyResult<Scalar> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(Scalar::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Scalar::Int(i));
        }
        return Ok(Scalar::UInt(obj.extract()?));
    }
    if let Ok(x) = obj.extract::<f64>() {
        return Ok(Scalar::Float(x));
    }
    Err(err(format!(
        "expected a number, got {}",
        obj.get_type().name()?
    )))
}

/// One label of `sel`: a number or a string (datetimes arrive as ISO strings).
fn label(obj: &Bound<'_, PyAny>) -> PyResult<Label> {
    if obj.is_instance_of::<PyString>() {
        return Ok(Label::Str(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        return Ok(Label::Int(obj.extract()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Label::Float(obj.extract()?));
    }
    match scalar(obj) {
        Ok(Scalar::Int(i)) => Ok(Label::Int(i)),
        Ok(Scalar::Float(x)) => Ok(Label::Float(x)),
        _ => Err(err(format!(
            "sel: cannot use a {} as a label (numbers, strings and datetimes can be)",
            obj.get_type().name()?
        ))),
    }
}

fn opt<T>(
    obj: Bound<'_, PyAny>,
    f: impl Fn(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Option<T>> {
    if obj.is_none() {
        Ok(None)
    } else {
        f(&obj).map(Some)
    }
}

/// A `sel` selector: a label, a `slice` of labels, or a list of labels.
pub fn selector(obj: &Bound<'_, PyAny>) -> PyResult<Selector> {
    if let Ok(s) = obj.cast::<PySlice>() {
        return Ok(Selector::Slice {
            start: opt(s.getattr("start")?, label)?,
            stop: opt(s.getattr("stop")?, label)?,
            step: opt(s.getattr("step")?, |o| o.extract::<isize>())?,
        });
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = obj.extract()?;
        return Ok(Selector::List(
            items.iter().map(label).collect::<PyResult<_>>()?,
        ));
    }
    Ok(Selector::Label(label(obj)?))
}

/// An `isel` selector: an integer, a `slice` of positions, or a list of positions.
pub fn index_sel(obj: &Bound<'_, PyAny>) -> PyResult<IndexSel> {
    if let Ok(s) = obj.cast::<PySlice>() {
        let part = |name: &str| opt(s.getattr(name)?, |o| o.extract::<isize>());
        return Ok(IndexSel::Slice {
            start: part("start")?,
            stop: part("stop")?,
            step: part("step")?,
        });
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return Ok(IndexSel::List(obj.extract()?));
    }
    obj.extract::<isize>().map(IndexSel::Int).map_err(|_| {
        err(format!(
            "isel: expected an integer, a slice or a list of integers, got {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })
}

/// A computed chunk as a NumPy array owning the Rust buffer (no copy).
pub fn chunk_to_numpy(py: Python<'_>, chunk: Chunk) -> Py<PyAny> {
    match chunk {
        Chunk::Bool(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::I8(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::I16(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::I32(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::I64(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::U8(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::U16(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::U32(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::U64(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::F32(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
        Chunk::F64(a) => PyArray::from_owned_array(py, a).into_any().unbind(),
    }
}

/// What a variable's numbers stand for, for the Python side: `None` (numbers),
/// `("time", calendar)` (int64 microseconds since 1970 in that calendar) or
/// `("strings", table)` (int64 codes into the table).
pub fn kind_to_py(py: Python<'_>, kind: &ValueKind) -> PyResult<Py<PyAny>> {
    Ok(match kind {
        ValueKind::Numeric => py.None(),
        ValueKind::Time(cal) => ("time", cal.name()).into_pyobject(py)?.into_any().unbind(),
        ValueKind::Strings(table) => ("strings", table.as_slice())
            .into_pyobject(py)?
            .into_any()
            .unbind(),
    })
}

/// JSON text of attributes (the Python side loads it with `json.loads`).
pub fn attrs_json(a: &gridflow_dataset::Attrs) -> PyResult<String> {
    serde_json::to_string(a).py()
}

/// A variable computed on `executor` (GIL released) as the tuple
/// `(name, dims, values, kind, attrs_json, encoding_json)`.
pub fn variable_to_py(
    py: Python<'_>,
    name: &str,
    v: &Variable,
    executor: &(dyn Executor<ArrayOp> + Sync),
) -> PyResult<Py<PyAny>> {
    let data = v.data().clone();
    let chunk = py.detach(|| data.compute_with(executor)).py()?;
    let values = chunk_to_numpy(py, chunk);
    Ok((
        name,
        v.dims().to_vec(),
        values,
        kind_to_py(py, v.kind())?,
        attrs_json(&v.attrs)?,
        attrs_json(&v.encoding)?,
    )
        .into_pyobject(py)?
        .into_any()
        .unbind())
}
