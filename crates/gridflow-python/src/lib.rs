//! The `gridflow._gridflow` extension module: thin PyO3 wrappers over the Rust crates.
//!
//! Every operation here forwards to `gridflow-dataset`, `gridflow-catalog`,
//! `gridflow-array` or `gridflow-distributed`; the Python package (`python/gridflow`) gives
//! the wrappers xarray's names and turns computed results into xarray objects. Values
//! cross as NumPy arrays that own the Rust buffers (no copy), attributes as JSON text.

mod catalog;
mod cluster;
mod convert;
mod dask;
mod error;
mod objects;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _gridflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The scheduler and workers this module runs log through `tracing` (GRIDFLOW_LOG or
    // RUST_LOG choose the level); a bad filter is ignored here rather than failing import.
    let _ = gridflow_distributed::logging::init(None, "warn");
    m.add("GridflowError", m.py().get_type::<error::GridflowError>())?;
    m.add_class::<objects::PyDataArray>()?;
    m.add_class::<objects::PyDataset>()?;
    m.add_class::<objects::PyGroupBy>()?;
    m.add_class::<objects::PyWeighted>()?;
    m.add_class::<objects::PyRolling>()?;
    m.add_class::<catalog::PyCatalog>()?;
    m.add_class::<cluster::PyClient>()?;
    m.add_class::<dask::PyTaskValue>()?;
    m.add_function(wrap_pyfunction!(dask::run_task, m)?)?;
    m.add_function(wrap_pyfunction!(objects::open_zarr, m)?)?;
    m.add_function(wrap_pyfunction!(objects::open_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(objects::from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(objects::unary_op_names, m)?)?;
    m.add_function(wrap_pyfunction!(objects::binary_op_names, m)?)?;
    m.add_function(wrap_pyfunction!(catalog::open_esm_datastore, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::run_worker, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::parse_size, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::set_default_client, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::default_client, m)?)?;
    Ok(())
}
