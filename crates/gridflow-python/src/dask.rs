//! gridflow graphs as Dask graphs: each optimized task ships as its serialized expression
//! (the payload a gridflow worker receives) and runs through [`gridflow_runtime::run_task`]
//! inside a Dask task, so a Dask cluster runs gridflow's own operations.

use crate::convert::chunk_to_numpy;
use crate::error::{PyResultExt, err};
use crate::objects::PyDataArray;
use gridflow_array::{ArrayOp, Value};
use gridflow_graph::{Expr, Key};
use gridflow_runtime::WireValue;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Arc;

/// What `__reduce__` returns: the constructor and its arguments (wire header, body).
type Reduced<'py> = (
    Bound<'py, PyAny>,
    (Bound<'py, PyBytes>, Bound<'py, PyBytes>),
);

/// A value passed between gridflow tasks inside Dask (a block or a partial reduction);
/// pickles as gridflow's wire encoding, so it can move between Dask workers.
#[pyclass(name = "TaskValue", module = "gridflow._gridflow", frozen)]
pub struct PyTaskValue {
    value: Arc<Value>,
}

#[pymethods]
impl PyTaskValue {
    /// Rebuilds a value from its wire header and body (for unpickling).
    #[staticmethod]
    fn from_wire(header: &[u8], body: Vec<u8>) -> PyResult<PyTaskValue> {
        let value = Value::from_parts(header, body).map_err(err)?;
        Ok(PyTaskValue {
            value: Arc::new(value),
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Reduced<'py>> {
        let py = slf.py();
        let v = &slf.get().value;
        let mut header = Vec::new();
        v.write_header(&mut header);
        let body = v.body();
        let ctor = py
            .import("gridflow._gridflow")?
            .getattr("TaskValue")?
            .getattr("from_wire")?;
        Ok((ctor, (PyBytes::new(py, &header), PyBytes::new(py, &body))))
    }

    /// The block as a NumPy array (a copy: the value may be shared with other tasks).
    fn to_numpy(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &*self.value {
            Value::Chunk(c) => Ok(chunk_to_numpy(py, c.clone())),
            Value::Partial(_) => Err(err(
                "this task value is a partial reduction, not a block of the array",
            )),
        }
    }
}

/// Runs one serialized gridflow task (GIL released) on its input values.
#[pyfunction]
pub fn run_task(
    py: Python<'_>,
    payload: &[u8],
    key: &str,
    inputs: Vec<Bound<'_, PyTaskValue>>,
) -> PyResult<PyTaskValue> {
    // Read tasks are rebuilt from their spec: the store's source kinds must be known in
    // every process that runs them (a Dask worker too).
    gridflow_store::register();
    let expr: Expr<ArrayOp> = gridflow_distributed::frame::decode_task(payload).map_err(err)?;
    let inputs: Vec<Arc<Value>> = inputs.iter().map(|v| v.get().value.clone()).collect();
    let key = Key::new(key, &[]);
    let value = py
        .detach(|| gridflow_runtime::run_task(&expr, &inputs, &key))
        .py()?;
    Ok(PyTaskValue { value })
}

/// The optimized graph of a data array as plain data for Dask: `(tasks, outputs,
/// numblocks)`, each task `(key, payload, input_keys)`, outputs the block keys in C
/// order.
#[allow(clippy::type_complexity)]
pub fn dask_tasks(
    da: &PyDataArray,
) -> PyResult<(Vec<(String, Vec<u8>, Vec<String>)>, Vec<String>, Vec<usize>)> {
    let data = da.inner.data();
    let graph = data.optimized_graph().py()?;
    let mut tasks = Vec::with_capacity(graph.len());
    for (k, t) in graph.iter() {
        let payload = gridflow_distributed::frame::encode_task(&t.expr).map_err(err)?;
        tasks.push((
            k.to_string(),
            payload,
            t.inputs.iter().map(ToString::to_string).collect(),
        ));
    }
    let outputs = data.keys().iter().map(ToString::to_string).collect();
    Ok((tasks, outputs, data.numblocks()))
}
