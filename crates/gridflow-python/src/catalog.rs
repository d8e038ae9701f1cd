//! intake-esm catalogs from `gridflow-catalog`.

use crate::error::{PyResultExt, err};
use crate::objects::PyDataset;
use gridflow_catalog::{DatasetDictOptions, EsmCatalog, OpenOptions, Query};
use pyo3::prelude::*;

/// An intake-esm catalog (or a search result of one).
#[pyclass(name = "EsmCatalog", module = "gridflow._gridflow", frozen)]
pub struct PyCatalog {
    inner: EsmCatalog,
}

#[pymethods]
impl PyCatalog {
    /// Rows matching `query_json` (a JSON object of column: value(s), `null` for a missing
    /// cell), with `require_all_on` as intake-esm's.
    #[pyo3(signature = (query_json, require_all_on=None))]
    fn search(&self, query_json: &str, require_all_on: Option<Vec<String>>) -> PyResult<PyCatalog> {
        let value: serde_json::Value = serde_json::from_str(query_json).py()?;
        let mut q = Query::from_json(&value).py()?;
        if let Some(cols) = require_all_on {
            q = q.require_all_on(cols);
        }
        self.inner.search(&q).py().map(|inner| PyCatalog { inner })
    }

    /// Notes on query values that cannot match their column's type.
    fn type_mismatches(&self, query_json: &str) -> PyResult<Vec<String>> {
        let value: serde_json::Value = serde_json::from_str(query_json).py()?;
        let q = Query::from_json(&value).py()?;
        Ok(self.inner.type_mismatches(&q))
    }

    /// Dataset keys, as intake-esm's `keys()`.
    fn keys(&self) -> PyResult<Vec<String>> {
        self.inner.keys().py()
    }

    /// The rows of each key.
    fn key_rows(&self, key: &str) -> PyResult<Vec<usize>> {
        self.inner.key_rows(key).py()
    }

    /// Column names.
    fn columns(&self) -> Vec<String> {
        self.inner.columns()
    }

    /// Every cell as text (`None`: missing), row by row.
    fn rows(&self) -> Vec<Vec<Option<String>>> {
        self.inner
            .rows()
            .map(|r| r.values().map(|(_, v)| v.map(str::to_owned)).collect())
            .collect()
    }

    /// Unique values per column.
    fn unique(&self) -> Vec<(String, Vec<String>)> {
        self.inner.unique().into_iter().collect()
    }

    /// The catalog's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// An intake-esm-like summary.
    fn summary(&self) -> String {
        self.inner.summary()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Opens every dataset lazily, combined as intake-esm's `to_dataset_dict`; fails
    /// naming each dataset that could not be produced.
    #[pyo3(signature = (storage_options=None))]
    fn to_dataset_dict(
        &self,
        py: Python<'_>,
        storage_options: Option<Vec<(String, String)>>,
    ) -> PyResult<Vec<(String, PyDataset)>> {
        let mut options = DatasetDictOptions::default();
        for (k, v) in storage_options.unwrap_or_default() {
            options
                .open
                .store
                .set(&k, &v)
                .map_err(|e| err(format!("storage_options: {e}")))?;
        }
        let dict = py.detach(|| self.inner.to_dataset_dict(&options)).py()?;
        if !dict.errors.is_empty() {
            let msgs: Vec<String> = dict.errors.values().map(ToString::to_string).collect();
            return Err(err(msgs.join("\n")));
        }
        Ok(dict
            .datasets
            .into_iter()
            .map(|(k, inner)| (k, PyDataset { inner }))
            .collect())
    }
}

/// Opens an intake-esm catalog (JSON path or URL).
#[pyfunction]
#[pyo3(signature = (path, columns_with_iterables=None, storage_options=None))]
pub fn open_esm_datastore(
    py: Python<'_>,
    path: &str,
    columns_with_iterables: Option<Vec<String>>,
    storage_options: Option<Vec<(String, String)>>,
) -> PyResult<PyCatalog> {
    let mut options = OpenOptions::default();
    if let Some(c) = columns_with_iterables {
        options.columns_with_iterables = c;
    }
    for (k, v) in storage_options.unwrap_or_default() {
        options
            .store
            .set(&k, &v)
            .map_err(|e| err(format!("storage_options: {e}")))?;
    }
    let p = path.to_owned();
    py.detach(|| EsmCatalog::open_with(&p, &options))
        .py()
        .map(|inner| PyCatalog { inner })
}
