//! gridflow's errors as Python exceptions.

use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;

create_exception!(
    _gridflow,
    GridflowError,
    PyValueError,
    "An error reported by gridflow (bad input, a store or catalog that cannot be read, a failed computation); the message is gridflow's."
);

/// Any displayable Rust error as a [`GridflowError`] with its whole cause chain in the
/// message (the chain is what names the store, variable or row involved).
pub fn to_py<E: std::error::Error>(e: E) -> PyErr {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    GridflowError::new_err(msg)
}

/// A [`GridflowError`] with this message.
pub fn err(msg: impl Into<String>) -> PyErr {
    GridflowError::new_err(msg.into())
}

/// Results converted to Python exceptions.
pub trait PyResultExt<T> {
    /// The error as a [`GridflowError`].
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T, E: std::error::Error> PyResultExt<T> for Result<T, E> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
