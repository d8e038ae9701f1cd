//! The error type of the catalog layer. Every message names the catalog (its path or URL)
//! and, where they apply, the file, line, row, column, dataset key and asset path.

use thiserror::Error;

/// Everything that can go wrong opening, searching or planning an intake-esm catalog.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The catalog JSON or its catalog file could not be read.
    #[error("catalog {catalog}: cannot read {what} {url}")]
    Fetch {
        /// The catalog (JSON path or URL).
        catalog: String,
        /// `"the catalog JSON"` or `"the catalog file"`.
        what: &'static str,
        /// The resolved path or URL that was read.
        url: String,
        /// The store-layer error.
        source: Box<gridflow_store::StoreError>,
    },
    /// A catalog JSON or CSV that is too big, decompresses too far, or is not a regular file;
    /// refused before it is read (or decompressed) further.
    #[error("catalog {catalog}: {what} {url} {detail}")]
    Refused {
        /// The catalog (path or URL).
        catalog: String,
        /// `"the catalog JSON"` or `"the catalog file"`.
        what: &'static str,
        /// The file.
        url: String,
        /// Its size and the cap, or why it is refused.
        detail: String,
    },
    /// The catalog JSON is not valid JSON.
    #[error("catalog {catalog}: invalid JSON at line {line}, column {column}: {detail}")]
    Json {
        /// The catalog.
        catalog: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        detail: String,
    },
    /// A field of the ESM collection spec is missing or invalid.
    #[error("catalog {catalog}: field `{field}`: {detail}")]
    Spec {
        /// The catalog.
        catalog: String,
        /// Dotted path of the field (`assets.format`, `aggregation_control.aggregations[1].type`).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// The catalog file (CSV) is malformed.
    #[error("catalog {catalog}: {file}, line {line}{}: {detail}", row.map(|r| format!(" (row {r})")).unwrap_or_default())]
    Csv {
        /// The catalog.
        catalog: String,
        /// The catalog file (CSV) path or URL.
        file: String,
        /// 1-based line in the (decompressed) file.
        line: usize,
        /// 0-based data row, when the problem is in a data row.
        row: Option<usize>,
        /// What is wrong.
        detail: String,
    },
    /// A column the spec refers to is not in the table.
    #[error(
        "catalog {catalog}: column {column:?} (named by `{role}`) is not in the table; columns: {columns:?}"
    )]
    MissingColumn {
        /// The catalog.
        catalog: String,
        /// The missing column.
        column: String,
        /// The spec field that names it (`assets.column_name`, `aggregation_control.groupby_attrs`...).
        role: String,
        /// The columns the table has.
        columns: Vec<String>,
    },
    /// One cell cannot be read or used (a list that does not parse, a missing format...).
    #[error("catalog {catalog}: row {row}, column {column:?}: {detail}")]
    Cell {
        /// The catalog.
        catalog: String,
        /// 0-based row.
        row: usize,
        /// The column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// A query or `require_all_on` names a column the catalog does not have.
    #[error("catalog {catalog}: query: column {column:?} not in columns {columns:?}")]
    UnknownColumn {
        /// The catalog.
        catalog: String,
        /// The unknown column.
        column: String,
        /// The catalog's columns.
        columns: Vec<String>,
    },
    /// A query value is invalid (a regular expression that does not compile...).
    #[error("catalog {catalog}: query on column {column:?}, value {value:?}: {detail}")]
    Query {
        /// The catalog.
        catalog: String,
        /// The queried column.
        column: String,
        /// The value as given.
        value: String,
        /// What is wrong.
        detail: String,
    },
    /// The rows cannot be grouped into datasets (a groupby column with some missing values).
    #[error("catalog {catalog}: cannot group by column {column:?}: {detail}")]
    Grouping {
        /// The catalog.
        catalog: String,
        /// The groupby column.
        column: String,
        /// What is wrong (with the rows).
        detail: String,
    },
    /// No dataset with this key.
    #[error("catalog {catalog}: no dataset with key {key:?} (see keys())")]
    UnknownKey {
        /// The catalog.
        catalog: String,
        /// The key asked for.
        key: String,
    },
    /// The assets of a dataset cannot be aggregated (strict planning).
    #[error("catalog {catalog}, dataset {key:?}: {detail} (rows {rows:?}: {paths:?})")]
    Aggregation {
        /// The catalog.
        catalog: String,
        /// The dataset key.
        key: String,
        /// The rows in conflict.
        rows: Vec<usize>,
        /// Their asset paths.
        paths: Vec<String>,
        /// What is wrong.
        detail: String,
    },
    /// A local asset path does not exist (checked only when asked).
    #[error(
        "catalog {catalog}, dataset {key:?}: row {row}, column {column:?}: asset {path} does not exist"
    )]
    AssetNotFound {
        /// The catalog.
        catalog: String,
        /// The dataset key.
        key: String,
        /// The row.
        row: usize,
        /// The assets column.
        column: String,
        /// The resolved path.
        path: String,
    },
}

/// The result type of the catalog layer.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
