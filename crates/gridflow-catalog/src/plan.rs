//! The plan of intake-esm's `to_dataset_dict`: which assets make each dataset, and how they
//! are combined. Nothing is opened here; the dataset layer executes the plan.
//!
//! # What intake-esm 2025.12.12 does (and so what a plan means)
//!
//! For each dataset key, the key's rows are opened **in catalog order**. Each opened asset:
//!
//! 1. keeps as data variables only [`AssetRef::variables`] (the row's variable-column value,
//!    or, for list cells after a search, the requested ones); every other variable becomes a
//!    coordinate — except when the dataset has a single asset, which is returned as opened;
//! 2. gets one new leading dimension per `join_new` aggregation, in declared order, of size
//!    1 with the row's value as its coordinate ([`AssetRef::expand_dims`]) — on its data
//!    variables only;
//! 3. gets the attributes [`AssetRef::attrs`] as `intake_esm_attrs:<column>` and
//!    `intake_esm_vars` = its variables.
//!
//! Then `xarray.combine_by_coords(datasets, combine_attrs="drop_conflicts")` with xarray's
//! default `join="outer"`, `coords="different"`, `compat="no_conflicts"`: datasets are
//! grouped by their set of data variables (a [`PlanNode::Union`] child each, in order of
//! first appearance); within a group they are concatenated along every dimension whose
//! coordinate differs between them, ordered by the first coordinate value (the join_new
//! labels sort ascending — [`PlanNode::JoinNew`] lists them so —; time pieces sort by their
//! first time value, which only opening tells: [`PlanNode::JoinExisting`] lists them in
//! catalog order); groups are then merged, outer-joining their coordinates (missing
//! combinations become NaN). Finally the attribute `intake_esm_dataset_key` = the key.
//! The declared `options` of aggregations (`coords`, `compat`...) are not used by
//! intake-esm 2025.12.12.

use crate::catalog::{EsmCatalog, Location, is_url};
use crate::error::{CatalogError, Result};
use crate::spec::{AggregationType, DataFormat};
use crate::table::{Column, ColumnKind, NULL};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

/// A coordinate label of a `join_new` dimension: the row's value in the attribute column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Label {
    /// A text value (every CSV cell is text: `"r1i1p1f1"`, `"1960.0"`).
    Text(String),
    /// A whole number (numeric `catalog_dict` columns).
    Integer(i64),
    /// A number with a fraction (numeric `catalog_dict` columns).
    Float(f64),
    /// No value: intake-esm expands with `[None]` (Pangeo's `dcpp_init_year` outside DCPP).
    Missing,
}

impl Label {
    fn of(col: &Column, row: usize) -> Label {
        let code = col.codes[row];
        if code == NULL {
            return Label::Missing;
        }
        let text = &col.dict.texts[code as usize];
        match col.kind {
            ColumnKind::Integer => text
                .parse()
                .map_or_else(|_| Label::Text(text.to_string()), Label::Integer),
            ColumnKind::Float => Label::Float(col.dict.numbers[code as usize]),
            _ => Label::Text(text.to_string()),
        }
    }

    /// Ascending order as xarray ranks coordinate values (missing last).
    pub fn cmp_order(&self, other: &Label) -> Ordering {
        fn num(l: &Label) -> Option<f64> {
            match l {
                Label::Integer(i) => Some(*i as f64),
                Label::Float(f) => Some(*f),
                _ => None,
            }
        }
        match (self, other) {
            (Label::Missing, Label::Missing) => Ordering::Equal,
            (Label::Missing, _) => Ordering::Greater,
            (_, Label::Missing) => Ordering::Less,
            (Label::Text(a), Label::Text(b)) => a.cmp(b),
            (Label::Text(_), _) => Ordering::Greater,
            (_, Label::Text(_)) => Ordering::Less,
            (a, b) => num(a)
                .unwrap_or(f64::NAN)
                .total_cmp(&num(b).unwrap_or(f64::NAN)),
        }
    }

    /// The label as text (`None` when missing).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Label::Text(t) => Some(t.clone()),
            Label::Integer(i) => Some(i.to_string()),
            Label::Float(f) => Some(format!("{f:?}")),
            Label::Missing => None,
        }
    }
}

/// One asset of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssetRef {
    /// Its row in the catalog.
    pub row: usize,
    /// The resolved path or URL (see [`AssetBase`]): URLs (`s3://`, `https://`, `gs://`,
    /// `file://`...) and absolute paths as written, relative paths made absolute.
    pub path: String,
    /// `zarr`, `zarr2`, `zarr3`, `netcdf`, `reference` or `opendap`.
    pub format: String,
    /// The variables it contributes (its data variables once opened).
    pub variables: Vec<String>,
    /// The row's values in the columns the aggregations name (missing ones left out).
    pub values: BTreeMap<String, String>,
    /// `(dim, label)` for each `join_new` aggregation, in declared order.
    pub expand_dims: Vec<(String, Label)>,
    /// What intake-esm stores as `intake_esm_attrs:<column>`: every non-missing cell of the
    /// row (lists joined with `,`), the format under `_data_format_`.
    pub attrs: BTreeMap<String, String>,
}

/// A declared aggregation, resolved for one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AggregationStep {
    /// Merge the variables (the attribute is the variable column).
    Union {
        /// The column.
        attribute: String,
    },
    /// A new dimension named after the attribute.
    JoinNew {
        /// The column (= the new dimension's name).
        attribute: String,
        /// The dimension's coordinate in the combined dataset: the sorted labels of all
        /// assets.
        labels: Vec<Label>,
    },
    /// Concatenation along an existing dimension.
    JoinExisting {
        /// The column the spec names (intake-esm does not read it).
        attribute: String,
        /// `options.dim`, when given.
        dim: Option<String>,
        /// The declared options.
        options: BTreeMap<String, Value>,
    },
}

/// How one dataset is put together from its assets (indices into [`DatasetPlan::assets`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PlanNode {
    /// Open `assets[i]` (with its `expand_dims`).
    Asset(usize),
    /// Concatenate the children along the new dimension `dim`; child `i` carries `labels[i]`
    /// (ascending). The children's other coordinates are outer-joined.
    JoinNew {
        /// The new dimension.
        dim: String,
        /// One label per child, ascending.
        labels: Vec<Label>,
        /// The children.
        children: Vec<PlanNode>,
    },
    /// Concatenate assets holding the same variables and labels along an existing
    /// dimension: order them by the first value of their `dim` coordinate (listed here in
    /// catalog order). `dim` is `None` when no join_existing aggregation is declared; xarray
    /// then concatenates along whichever dimension coordinates differ.
    JoinExisting {
        /// `options.dim` of the join_existing aggregation.
        dim: Option<String>,
        /// The children, in catalog order.
        children: Vec<PlanNode>,
    },
    /// Merge the children, each holding the variables listed at the same index (outer join
    /// of coordinates).
    Union {
        /// The (sorted) variable names of each child.
        variables: Vec<Vec<String>>,
        /// The children, in order of first appearance in the catalog.
        children: Vec<PlanNode>,
    },
}

impl PlanNode {
    /// The asset indices under this node, depth first.
    pub fn assets(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<usize>) {
        match self {
            PlanNode::Asset(i) => out.push(*i),
            PlanNode::JoinNew { children, .. }
            | PlanNode::JoinExisting { children, .. }
            | PlanNode::Union { children, .. } => children.iter().for_each(|c| c.collect(out)),
        }
    }
}

/// Something in a dataset intake-esm/xarray may combine differently from what the plan
/// suggests, or may fail on (depending on coordinate values only opening reveals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssueKind {
    /// The assets of one variable group do not hold every combination of join_new labels:
    /// xarray fills the missing ones with NaN (Pangeo's DCPP datasets do this).
    RaggedJoinNew,
    /// Some variables lack join_new labels other variables have: NaN after the merge.
    RaggedUnion,
    /// Several assets hold the same variables and labels but no join_existing is declared:
    /// xarray concatenates along whatever coordinates differ (or keeps only the first
    /// dataset of the key, with a warning, when none differ).
    UndeclaredConcat,
    /// join_existing cells split into different numbers of pieces: xarray usually fails
    /// ("does not have monotonic global indexes").
    UnevenPieces,
    /// The same asset path appears twice: xarray keeps one of them silently.
    DuplicateAsset,
}

/// One issue, with the rows involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanIssue {
    /// What kind.
    pub kind: IssueKind,
    /// Catalog rows involved.
    pub rows: Vec<usize>,
    /// Explanation.
    pub detail: String,
}

/// The plan of one dataset of `to_dataset_dict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetPlan {
    /// The key (groupby values joined with `.`).
    pub key: String,
    /// The groupby column values of this dataset.
    pub attrs: BTreeMap<String, String>,
    /// The assets, in catalog order (the order intake-esm opens and combines them).
    pub assets: Vec<AssetRef>,
    /// The declared aggregations, in declared order, resolved for this dataset.
    pub aggregations: Vec<AggregationStep>,
    /// How the assets combine (see the [module docs](crate::plan)).
    pub root: PlanNode,
    /// Variables requested by a search on a list-valued variable column (only these are
    /// kept from each asset); empty means all of each asset's variables.
    pub requested_variables: Vec<String>,
    /// Structures intake-esm may combine surprisingly or fail on.
    pub issues: Vec<PlanIssue>,
}

impl DatasetPlan {
    /// The join_new dimensions with their labels, in declared order.
    pub fn new_dims(&self) -> Vec<(&str, &[Label])> {
        self.aggregations
            .iter()
            .filter_map(|a| match a {
                AggregationStep::JoinNew { attribute, labels } => {
                    Some((attribute.as_str(), labels.as_slice()))
                }
                _ => None,
            })
            .collect()
    }
}

/// What relative asset paths are relative to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssetBase {
    /// The working directory of the process, as intake-esm (which hands the path to xarray
    /// unchanged).
    #[default]
    WorkingDirectory,
    /// The directory (or URL) of the catalog JSON — for catalogs that travel with their data.
    CatalogDirectory,
}

/// Options of [`EsmCatalog::dataset_plans_with`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// `false`: one dataset per distinct row (intake-esm's `aggregate=False`).
    pub aggregate: bool,
    /// Make any [`PlanIssue`] an error ([`CatalogError::Aggregation`]).
    pub strict: bool,
    /// What relative asset paths are relative to.
    pub asset_base: AssetBase,
    /// Check that local asset paths exist ([`CatalogError::AssetNotFound`]).
    pub check_local_assets: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            aggregate: true,
            strict: false,
            asset_base: AssetBase::WorkingDirectory,
            check_local_assets: false,
        }
    }
}

impl EsmCatalog {
    /// The plans of every dataset, in key order (what `to_dataset_dict` would load).
    pub fn dataset_plans(&self) -> Result<Vec<DatasetPlan>> {
        self.dataset_plans_with(&PlanOptions::default())
    }

    /// [`EsmCatalog::dataset_plans`] with options.
    pub fn dataset_plans_with(&self, options: &PlanOptions) -> Result<Vec<DatasetPlan>> {
        let groups = self.groups(options.aggregate)?;
        let group_cols = self.group_columns(options.aggregate)?;
        groups
            .iter()
            .map(|(key, rows)| self.plan(key, rows, &group_cols, options))
            .collect()
    }

    /// The plan of one dataset (intake-esm's `cat[key]`).
    pub fn dataset_plan(&self, key: &str, options: &PlanOptions) -> Result<DatasetPlan> {
        let groups = self.groups(options.aggregate)?;
        let (_, rows) =
            groups
                .iter()
                .find(|(k, _)| k == key)
                .ok_or_else(|| CatalogError::UnknownKey {
                    catalog: self.name.clone(),
                    key: key.to_owned(),
                })?;
        let group_cols = self.group_columns(options.aggregate)?;
        self.plan(key, rows, &group_cols, options)
    }

    fn resolve_asset(&self, raw: &str, base: AssetBase) -> String {
        if is_url(raw) || Path::new(raw).is_absolute() {
            return raw.to_owned();
        }
        match (base, &self.location) {
            (AssetBase::CatalogDirectory, loc @ (Location::Local(_) | Location::Remote(_))) => {
                loc.join(raw)
            }
            _ => std::path::absolute(raw)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| raw.to_owned()),
        }
    }

    fn plan(
        &self,
        key: &str,
        rows: &[usize],
        group_cols: &[usize],
        options: &PlanOptions,
    ) -> Result<DatasetPlan> {
        let ac = self.spec.aggregation_control.as_ref();
        let attrs: BTreeMap<String, String> = group_cols
            .iter()
            .filter_map(|&i| {
                let c = &self.table.columns[i];
                rows.first()
                    .and_then(|&r| c.text(r))
                    .map(|t| (c.name.clone(), t.to_owned()))
            })
            .collect();
        let aggregations = ac.map(|a| a.aggregations.as_slice()).unwrap_or_default();
        // intake-esm keys expand_dims by column: a repeated join_new adds no dimension
        let mut join_new: Vec<&Column> = Vec::new();
        for c in aggregations
            .iter()
            .filter(|a| a.kind == AggregationType::JoinNew)
            .filter_map(|a| self.column(&a.attribute_name))
        {
            if !join_new.iter().any(|j| j.name == c.name) {
                join_new.push(c);
            }
        }
        let join_existing = aggregations
            .iter()
            .find(|a| a.kind == AggregationType::JoinExisting);
        let var_col = ac.and_then(|a| self.column(&a.variable_column_name));
        let asset_col = self.column(&self.spec.assets.column_name);
        let format_col = self
            .spec
            .assets
            .format_column_name
            .as_deref()
            .and_then(|f| self.column(f));

        let mut assets = Vec::with_capacity(rows.len());
        for &row in rows {
            let cell_err = |column: &str, detail: &str| CatalogError::Cell {
                catalog: self.name.clone(),
                row,
                column: column.to_owned(),
                detail: format!("dataset {key:?}: {detail}"),
            };
            let raw = asset_col
                .and_then(|c| c.text(row))
                .ok_or_else(|| cell_err(&self.spec.assets.column_name, "no asset path"))?;
            let format = match (self.spec.assets.format, format_col) {
                (Some(f), _) => f.as_str().to_owned(),
                (None, Some(c)) => {
                    let f = c
                        .text(row)
                        .ok_or_else(|| cell_err(&c.name, "no data format"))?;
                    let known: std::result::Result<DataFormat, _> =
                        serde_json::from_value(Value::String(f.to_owned()));
                    if known.is_err() {
                        return Err(cell_err(
                            &c.name,
                            &format!(
                                "unknown data format {f:?} (netcdf, zarr, zarr2, zarr3, reference or opendap)"
                            ),
                        ));
                    }
                    f.to_owned()
                }
                (None, None) => String::new(),
            };
            let mut variables: Vec<String> = match var_col {
                Some(c) if c.codes[row] != NULL => match c.kind {
                    ColumnKind::List => c.dict.items[c.codes[row] as usize]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    _ => vec![c.dict.texts[c.codes[row] as usize].to_string()],
                },
                _ => Vec::new(),
            };
            if !self.requested_variables.is_empty() {
                variables.retain(|v| self.requested_variables.contains(v));
            }
            let values: BTreeMap<String, String> = aggregations
                .iter()
                .filter_map(|a| self.column(&a.attribute_name))
                .filter_map(|c| c.text(row).map(|t| (c.name.clone(), t.to_owned())))
                .collect();
            let expand_dims = join_new
                .iter()
                .map(|c| (c.name.clone(), Label::of(c, row)))
                .collect();
            let mut row_attrs: BTreeMap<String, String> = BTreeMap::new();
            for c in &self.table.columns {
                if let Some(t) = c.text(row) {
                    let name = if format_col.is_some_and(|f| f.name == c.name) {
                        "_data_format_".to_owned()
                    } else {
                        c.name.clone()
                    };
                    row_attrs.insert(name, t.to_owned());
                }
            }
            if let Some(f) = self.spec.assets.format {
                row_attrs.insert("_data_format_".to_owned(), f.as_str().to_owned());
            }
            let path = self.resolve_asset(raw, options.asset_base);
            if options.check_local_assets {
                let local = if is_url(&path) {
                    path.strip_prefix("file://")
                } else {
                    Some(path.as_str())
                };
                if let Some(p) = local
                    && !Path::new(p).exists()
                {
                    return Err(CatalogError::AssetNotFound {
                        catalog: self.name.clone(),
                        key: key.to_owned(),
                        row,
                        column: self.spec.assets.column_name.clone(),
                        path,
                    });
                }
            }
            assets.push(AssetRef {
                row,
                path,
                format,
                variables,
                values,
                expand_dims,
                attrs: row_attrs,
            });
        }

        let jdim = join_existing.and_then(|a| a.dim().map(str::to_owned));
        let mut issues = Vec::new();
        let all: Vec<usize> = (0..assets.len()).collect();
        let root = if var_col.is_some() {
            // groups of assets with the same variables, in order of first appearance
            let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
            for (i, a) in assets.iter().enumerate() {
                let mut vars = a.variables.clone();
                vars.sort();
                vars.dedup();
                match groups.iter_mut().find(|(v, _)| *v == vars) {
                    Some(g) => g.1.push(i),
                    None => groups.push((vars, vec![i])),
                }
            }
            let children = groups
                .iter()
                .map(|(_, ids)| build(&assets, ids, 0, join_new.len(), &jdim))
                .collect();
            for (vars, ids) in &groups {
                check_group(
                    &assets,
                    vars,
                    ids,
                    join_new.len(),
                    join_existing.is_some(),
                    &mut issues,
                );
            }
            check_union(&assets, &groups, join_new.len(), &mut issues);
            PlanNode::Union {
                variables: groups.into_iter().map(|(v, _)| v).collect(),
                children,
            }
        } else {
            check_group(
                &assets,
                &[],
                &all,
                join_new.len(),
                join_existing.is_some(),
                &mut issues,
            );
            build(&assets, &all, 0, join_new.len(), &jdim)
        };
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &assets {
            if let Some(first) = seen.insert(&a.path, a.row) {
                issues.push(PlanIssue {
                    kind: IssueKind::DuplicateAsset,
                    rows: vec![first, a.row],
                    detail: format!(
                        "asset {} appears twice; xarray keeps only one of them",
                        a.path
                    ),
                });
            }
        }
        if options.strict
            && let Some(issue) = issues.first()
        {
            let paths = issue
                .rows
                .iter()
                .filter_map(|r| assets.iter().find(|a| a.row == *r).map(|a| a.path.clone()))
                .collect();
            return Err(CatalogError::Aggregation {
                catalog: self.name.clone(),
                key: key.to_owned(),
                rows: issue.rows.clone(),
                paths,
                detail: issue.detail.clone(),
            });
        }

        let steps = aggregations
            .iter()
            .map(|a| match a.kind {
                AggregationType::Union => AggregationStep::Union {
                    attribute: a.attribute_name.clone(),
                },
                AggregationType::JoinNew => {
                    let pos = join_new.iter().position(|c| c.name == a.attribute_name);
                    let mut labels: Vec<Label> = Vec::new();
                    if let Some(p) = pos {
                        for asset in &assets {
                            let l = &asset.expand_dims[p].1;
                            if !labels.contains(l) {
                                labels.push(l.clone());
                            }
                        }
                    }
                    labels.sort_by(Label::cmp_order);
                    AggregationStep::JoinNew {
                        attribute: a.attribute_name.clone(),
                        labels,
                    }
                }
                AggregationType::JoinExisting => AggregationStep::JoinExisting {
                    attribute: a.attribute_name.clone(),
                    dim: a.dim().map(str::to_owned),
                    options: a.options.clone(),
                },
            })
            .collect();
        Ok(DatasetPlan {
            key: key.to_owned(),
            attrs,
            assets,
            aggregations: steps,
            root,
            requested_variables: self.requested_variables.clone(),
            issues,
        })
    }
}

/// The tree over assets `ids` from join_new level `level` on.
fn build(
    assets: &[AssetRef],
    ids: &[usize],
    level: usize,
    levels: usize,
    jdim: &Option<String>,
) -> PlanNode {
    if level == levels {
        return match ids {
            [one] => PlanNode::Asset(*one),
            _ => PlanNode::JoinExisting {
                dim: jdim.clone(),
                children: ids.iter().map(|&i| PlanNode::Asset(i)).collect(),
            },
        };
    }
    let mut labels: Vec<Label> = Vec::new();
    for &i in ids {
        let l = &assets[i].expand_dims[level].1;
        if !labels.contains(l) {
            labels.push(l.clone());
        }
    }
    labels.sort_by(Label::cmp_order);
    let children = labels
        .iter()
        .map(|l| {
            let sub: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&i| &assets[i].expand_dims[level].1 == l)
                .collect();
            build(assets, &sub, level + 1, levels, jdim)
        })
        .collect();
    PlanNode::JoinNew {
        dim: assets[ids[0]].expand_dims[level].0.clone(),
        labels,
        children,
    }
}

fn rows_of(assets: &[AssetRef], ids: &[usize]) -> Vec<usize> {
    ids.iter().map(|&i| assets[i].row).collect()
}

/// Issues inside one variable group: ragged join_new cubes, several assets per cell.
fn check_group(
    assets: &[AssetRef],
    vars: &[String],
    ids: &[usize],
    levels: usize,
    has_join_existing: bool,
    issues: &mut Vec<PlanIssue>,
) {
    let what = if vars.is_empty() {
        "the assets".to_owned()
    } else {
        format!("the assets of {vars:?}")
    };
    let mut cells: Vec<(Vec<&Label>, Vec<usize>)> = Vec::new();
    for &i in ids {
        let labels: Vec<&Label> = assets[i].expand_dims.iter().map(|(_, l)| l).collect();
        match cells.iter_mut().find(|(l, _)| *l == labels) {
            Some(c) => c.1.push(i),
            None => cells.push((labels, vec![i])),
        }
    }
    if levels > 0 {
        let mut full = 1usize;
        let mut dims = Vec::new();
        for level in 0..levels {
            let mut distinct: Vec<&Label> = Vec::new();
            for (l, _) in &cells {
                if !distinct.contains(&l[level]) {
                    distinct.push(l[level]);
                }
            }
            full = full.saturating_mul(distinct.len());
            dims.push(assets[ids[0]].expand_dims[level].0.clone());
        }
        if cells.len() < full {
            issues.push(PlanIssue {
                kind: IssueKind::RaggedJoinNew,
                rows: rows_of(assets, ids),
                detail: format!(
                    "{what} hold {} of the {full} combinations of {dims:?}; xarray fills the others with NaN",
                    cells.len()
                ),
            });
        }
    }
    let multi: Vec<&(Vec<&Label>, Vec<usize>)> =
        cells.iter().filter(|(_, c)| c.len() > 1).collect();
    if !multi.is_empty() && !has_join_existing {
        let rows: Vec<usize> = multi.iter().flat_map(|(_, c)| rows_of(assets, c)).collect();
        issues.push(PlanIssue {
            kind: IssueKind::UndeclaredConcat,
            rows,
            detail: format!(
                "{what}: several assets share the same variables and join_new labels, and no join_existing aggregation is declared; xarray concatenates them along whatever dimension coordinates differ"
            ),
        });
    }
    if has_join_existing {
        let counts: Vec<usize> = cells.iter().map(|(_, c)| c.len()).collect();
        if counts.iter().any(|&n| n != counts[0]) {
            issues.push(PlanIssue {
                kind: IssueKind::UnevenPieces,
                rows: rows_of(assets, ids),
                detail: format!(
                    "{what} are split into different numbers of pieces per join_new cell ({counts:?}); xarray usually fails on this (non-monotonic global index)"
                ),
            });
        }
    }
}

/// Issues across variable groups: a variable lacking labels the others have.
fn check_union(
    assets: &[AssetRef],
    groups: &[(Vec<String>, Vec<usize>)],
    levels: usize,
    issues: &mut Vec<PlanIssue>,
) {
    for level in 0..levels {
        let mut all: Vec<&Label> = Vec::new();
        for a in assets {
            if !all.contains(&&a.expand_dims[level].1) {
                all.push(&a.expand_dims[level].1);
            }
        }
        for (vars, ids) in groups {
            let have: Vec<&Label> = ids
                .iter()
                .map(|&i| &assets[i].expand_dims[level].1)
                .collect();
            let lacking: Vec<String> = all
                .iter()
                .filter(|l| !have.contains(l))
                .map(|l| l.as_text().unwrap_or_else(|| "(missing)".to_owned()))
                .collect();
            if !lacking.is_empty() {
                let dim = &assets[ids[0]].expand_dims[level].0;
                issues.push(PlanIssue {
                    kind: IssueKind::RaggedUnion,
                    rows: rows_of(assets, ids),
                    detail: format!("{vars:?} lack {dim} {lacking:?}, which other variables have; NaN there after the merge"),
                });
            }
        }
    }
}
