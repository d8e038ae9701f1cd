//! intake-esm catalogs for gridflow: open an ESM collection (JSON + CSV, or inline rows),
//! search it, and plan what intake-esm's `to_dataset_dict` would load and how it would
//! combine the assets. Opening and combining the datasets is the dataset layer's job.
//!
//! Behaviour follows intake-esm 2025.12.12 (with xarray 2026.9.0); the tests compare against
//! values that version returned (`tests/fixtures/generate.py`).
//!
//! * [`EsmCatalog::open`] a path, `file://`, `http(s)://`, `s3://` or public `gs://` URL;
//! * [`EsmCatalog::search`] with a [`Query`] (exact values, regular-expression patterns,
//!   lists, missing values, `require_all_on`);
//! * [`EsmCatalog::keys`], [`EsmCatalog::unique`], [`EsmCatalog::nunique`],
//!   [`EsmCatalog::summary`];
//! * [`EsmCatalog::dataset_plans`]: one [`DatasetPlan`] per dataset key.
//!
//! ```
//! use gridflow_catalog::{EsmCatalog, PlanNode, Query};
//! let cat = EsmCatalog::from_json_str(r#"{
//!   "esmcat_version": "0.1.0", "id": "mini", "attributes": [],
//!   "assets": {"column_name": "path", "format": "zarr"},
//!   "aggregation_control": {"variable_column_name": "var", "groupby_attrs": ["model"],
//!     "aggregations": [{"type": "union", "attribute_name": "var"},
//!                      {"type": "join_new", "attribute_name": "member"}]},
//!   "catalog_dict": [
//!     {"model": "m", "member": "r2", "var": "tas", "path": "s3://b/r2/tas.zarr"},
//!     {"model": "m", "member": "r1", "var": "tas", "path": "s3://b/r1/tas.zarr"},
//!     {"model": "m", "member": "r1", "var": "pr", "path": "s3://b/r1/pr.zarr"}]}"#, None)?;
//! let tas = cat.search(&Query::new().with("var", "tas"))?;
//! assert_eq!(tas.len(), 2);
//! let plan = &cat.dataset_plans()?[0];
//! assert_eq!(plan.key, "m");
//! let PlanNode::Union { variables, children } = &plan.root else { unreachable!() };
//! assert_eq!(variables, &[vec!["tas".to_string()], vec!["pr".to_string()]]);
//! let PlanNode::JoinNew { dim, labels, .. } = &children[0] else { unreachable!() };
//! assert_eq!((dim.as_str(), labels.len()), ("member", 2)); // r1 then r2
//! # Ok::<(), gridflow_catalog::CatalogError>(())
//! ```

pub mod catalog;
pub mod error;
pub mod open;
pub mod plan;
pub mod query;
pub mod spec;
mod table;

pub use catalog::{Cell, EsmCatalog, OpenOptions, Row};
pub use error::{CatalogError, Result};
pub use open::{DatasetDict, DatasetDictOptions};
pub use plan::{
    AggregationStep, AssetBase, AssetRef, DatasetPlan, IssueKind, Label, PlanIssue, PlanNode,
    PlanOptions,
};
pub use query::{Query, QueryValue, is_pattern};
pub use spec::{
    Aggregation, AggregationControl, AggregationType, Assets, Attribute, CollectionSpec, DataFormat,
};
pub use table::ColumnKind;
