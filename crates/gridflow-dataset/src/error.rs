//! The dataset layer's errors.

use gridflow_array::ArrayError;
use gridflow_store::StoreError;

/// Everything that can go wrong in the labeled-dataset layer. Messages name the operation,
/// the dimension, label, variable or attribute involved.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// An error of the chunked-array layer.
    #[error(transparent)]
    Array(#[from] ArrayError),
    /// An error of the store layer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dimension name that the object does not have.
    #[error("{op}: no dimension {dim:?} (dimensions: {available})")]
    UnknownDim {
        /// The operation.
        op: String,
        /// The dimension asked for.
        dim: String,
        /// The object's dimensions.
        available: String,
    },
    /// A variable of the store that gridflow could not read (its data type...); the rest of
    /// the dataset is usable.
    #[error("variable {name:?} could not be read (the rest of the dataset can): {detail}")]
    Unreadable {
        /// The variable.
        name: String,
        /// Why.
        detail: String,
    },
    /// A variable or coordinate name that the object does not have.
    #[error("{op}: no variable or coordinate {name:?} (available: {available})")]
    UnknownName {
        /// The operation.
        op: String,
        /// The name asked for.
        name: String,
        /// The names there are.
        available: String,
    },
    /// A label that cannot be found or used along a dimension.
    #[error("{op}: {detail} along dimension {dim:?}")]
    Label {
        /// The operation (`sel`, ...).
        op: String,
        /// The dimension.
        dim: String,
        /// What went wrong, with the label.
        detail: String,
    },
    /// An attribute that cannot be decoded (units, calendar, scale_factor...).
    #[error("variable {var:?}, attribute {attr:?}: {detail}")]
    Attribute {
        /// The variable.
        var: String,
        /// The attribute.
        attr: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// A calendar or time error.
    #[error("{context}: {detail}")]
    Time {
        /// Where (variable, operation).
        context: String,
        /// The calendar layer's message.
        detail: String,
    },
    /// A coordinate (index or time values) that opening would load into memory is longer
    /// than [`crate::DecodeOptions::max_index_values`]; refused before it is read.
    #[error(
        "{var:?}: {values} values would be loaded into memory on open ({what}), more than the limit of {limit}; raise DecodeOptions::max_index_values (gridflow: GRIDFLOW_LIMITS=index=N) or open without decoding"
    )]
    TooLarge {
        /// The variable.
        var: String,
        /// Why it is loaded (`"index coordinate"`, `"time decoding"`).
        what: &'static str,
        /// Its number of values.
        values: usize,
        /// The limit.
        limit: usize,
    },
    /// Any other invalid request, naming the operation.
    #[error("{op}: {detail}")]
    Invalid {
        /// The operation.
        op: String,
        /// What is wrong.
        detail: String,
    },
}

/// The dataset layer's result type.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

pub(crate) fn invalid(op: &str, detail: impl Into<String>) -> DatasetError {
    DatasetError::Invalid {
        op: op.to_owned(),
        detail: detail.into(),
    }
}

pub(crate) fn time_err(context: impl Into<String>, e: impl std::fmt::Display) -> DatasetError {
    DatasetError::Time {
        context: context.into(),
        detail: e.to_string(),
    }
}
