//! `to_dataset_dict`: opening the assets of a (searched) catalog and combining them as
//! intake-esm 2025.12.12 does with xarray 2026.9.0 (`tests/to_dataset_dict.rs` compares the
//! results with what they returned for the fixtures).
//!
//! For each dataset key ([`DatasetPlan`]), every asset is opened (concurrently, lazily) and
//! prepared as intake-esm's `_open_dataset` does:
//!
//! 1. after a search on a list-valued variable column, only the requested variables are
//!    kept (with the coordinates along their dimensions);
//! 2. its variables ([`AssetRef::variables`]) get one new leading dimension per `join_new`
//!    aggregation, in declared order, of size 1 with the row's value as coordinate (text as
//!    strings, numbers as numbers, a missing value as a float64 NaN);
//! 3. attributes `intake_esm_vars` (its variables) and `intake_esm_attrs:<column>` (the
//!    row's cells).
//!
//! A dataset of one asset (or whose first asset has no data variables) is that asset.
//! Otherwise every variable but the asset's own becomes a coordinate and the assets go
//! through xarray's `combine_by_coords` with an outer join and
//! `combine_attrs="drop_conflicts"` ([`gridflow_dataset::combine`]): grouped by variables,
//! concatenated along every dimension whose labels differ (join_new labels, time pieces in
//! time order), merged; missing combinations are NaN. Finally `intake_esm_dataset_key`.
//! The plan's tree ([`crate::PlanNode`]) describes the same structure before anything is
//! opened; here the opened coordinates decide, as in xarray.

use crate::catalog::EsmCatalog;
use crate::plan::{AssetRef, DatasetPlan, Label, PlanOptions};
use gridflow_dataset::{
    CombineOptions, Dataset, DatasetError, Index, IndexValues, OpenOptions, Variable,
    combine_by_coords, open_netcdf, open_zarr,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Options of [`EsmCatalog::to_dataset_dict`].
#[derive(Clone, Debug)]
pub struct DatasetDictOptions {
    /// How each asset is opened (chunks, CF decoding switches, store credentials).
    pub open: OpenOptions,
    /// Assets opened (and datasets combined) at once.
    pub concurrency: usize,
    /// Print progress to stderr when there are at least this many assets (0: never).
    pub progress_from: usize,
    /// How the datasets are planned (aggregate or not, what relative asset paths are
    /// relative to).
    pub plan: PlanOptions,
}

impl Default for DatasetDictOptions {
    fn default() -> Self {
        DatasetDictOptions {
            open: OpenOptions::default(),
            concurrency: 8,
            progress_from: 16,
            plan: PlanOptions::default(),
        }
    }
}

/// Why one dataset of `to_dataset_dict` could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum DatasetDictError {
    /// An asset could not be opened or prepared (its variables, its new dimensions).
    #[error(
        "catalog {catalog}, dataset {key:?}: row {row}, column {column:?}: asset {asset}: {detail}"
    )]
    Asset {
        /// The catalog.
        catalog: String,
        /// The dataset key.
        key: String,
        /// The asset's row.
        row: usize,
        /// The assets column.
        column: String,
        /// The asset's (resolved) path or URL.
        asset: String,
        /// What went wrong.
        detail: String,
    },
    /// The opened assets could not be combined (xarray fails on the same).
    #[error(
        "catalog {catalog}, dataset {key:?}: cannot combine the assets of rows {rows:?}: {source}"
    )]
    Combine {
        /// The catalog.
        catalog: String,
        /// The dataset key.
        key: String,
        /// The rows of its assets.
        rows: Vec<usize>,
        /// The dataset layer's error.
        source: DatasetError,
    },
}

/// The datasets of `to_dataset_dict`, and the keys that could not be produced. A broken
/// asset spoils only its own dataset.
#[derive(Debug, Default)]
pub struct DatasetDict {
    /// Datasets by key.
    pub datasets: BTreeMap<String, Dataset>,
    /// Keys whose assets could not be opened or combined, with why.
    pub errors: BTreeMap<String, DatasetDictError>,
}

/// An opened (or combined) dataset, or why not.
type Opened = Result<Dataset, Box<DatasetDictError>>;

/// The coordinate of a join_new label: strings for text, numbers for numbers, a float64
/// NaN for a missing value (Pangeo's `dcpp_init_year` outside DCPP), as intake-esm's
/// `expand_dims({column: [value]})` makes it.
fn label_variable(dim: &str, label: &Label) -> gridflow_dataset::Result<Variable> {
    match label {
        Label::Text(t) => Variable::from_strings(dim, vec![t.clone()]),
        Label::Integer(i) => Index::new(IndexValues::Int(Arc::new(vec![*i]))).to_variable(dim),
        Label::Float(f) => Variable::from_f64(dim, vec![*f]),
        Label::Missing => Variable::from_f64(dim, vec![f64::NAN]),
    }
}

/// Runs `f` on every item with up to `workers` threads; results in item order (`None` only
/// if a worker died).
fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<Option<R>> {
    let n = items.len();
    let inputs: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let outputs: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, 64).min(n.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = inputs.get(i) else { break };
                    let item = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(item) = item {
                        let r = f(item);
                        *outputs[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
                    }
                }
            });
        }
    });
    outputs
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect()
}

/// intake-esm's per-asset steps on an opened asset (see the module docs).
fn prepare_asset(
    mut ds: Dataset,
    plan: &DatasetPlan,
    asset: &AssetRef,
    columns: &[String],
) -> gridflow_dataset::Result<Dataset> {
    let mut vars: Vec<String> = asset.variables.clone();
    if !plan.requested_variables.is_empty() {
        vars.retain(|v| {
            plan.requested_variables.contains(v)
                && (ds.data_vars().contains_key(v) || ds.coords().contains_key(v))
        });
        vars.dedup();
        let scalars: Vec<String> = ds
            .data_vars()
            .iter()
            .filter(|(_, v)| v.ndim() == 0)
            .map(|(k, _)| k.clone())
            .collect();
        if !scalars.is_empty() {
            let refs: Vec<&str> = scalars.iter().map(String::as_str).collect();
            ds = ds.set_coords(&refs)?;
        }
        let refs: Vec<&str> = vars.iter().map(String::as_str).collect();
        ds = ds.subset(&refs)?;
        ds.attrs
            .insert("intake_esm_vars".into(), vars.clone().into());
    } else if !vars.is_empty() {
        ds.attrs
            .insert("intake_esm_vars".into(), vars.clone().into());
    }
    if !asset.expand_dims.is_empty() {
        let labels: Vec<(&str, Variable)> = asset
            .expand_dims
            .iter()
            .map(|(d, l)| Ok((d.as_str(), label_variable(d, l)?)))
            .collect::<gridflow_dataset::Result<_>>()?;
        let refs: Vec<&str> = vars.iter().map(String::as_str).collect();
        ds = ds.expand_variables(&refs, &labels)?;
    }
    // the row's cells, in column order (the data format last)
    let mut cells: Vec<(&String, &String)> = columns
        .iter()
        .filter_map(|c| asset.attrs.get_key_value(c))
        .collect();
    cells.extend(asset.attrs.iter().filter(|(k, _)| !columns.contains(k)));
    for (k, v) in cells {
        ds.attrs
            .insert(format!("intake_esm_attrs:{k}"), Value::String(v.clone()));
    }
    Ok(ds)
}

/// The datasets of one key combined as intake-esm does (see the module docs).
fn combine_assets(plan: &DatasetPlan, datasets: Vec<Dataset>) -> gridflow_dataset::Result<Dataset> {
    let single = datasets.len() <= 1 || datasets.first().is_some_and(|d| d.data_vars().is_empty());
    let mut ds = if single {
        // intake-esm returns the first asset as opened
        datasets
            .into_iter()
            .next()
            .ok_or_else(|| gridflow_dataset::DatasetError::Invalid {
                op: "to_dataset_dict".into(),
                detail: "the dataset has no assets".into(),
            })?
    } else {
        let mut ready = Vec::with_capacity(datasets.len());
        for (d, asset) in datasets.iter().zip(&plan.assets) {
            // every variable but the asset's own becomes a coordinate
            let own: Vec<String> = match d.attrs.get("intake_esm_vars") {
                Some(Value::Array(v)) => v
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                _ => asset.variables.clone(),
            };
            let others: Vec<&str> = d
                .data_vars()
                .keys()
                .filter(|k| !own.contains(k))
                .map(String::as_str)
                .collect();
            ready.push(d.set_coords(&others)?);
        }
        combine_by_coords(&ready, &CombineOptions::intake_esm())?
    };
    ds.attrs
        .insert("intake_esm_dataset_key".into(), plan.key.clone().into());
    Ok(ds)
}

impl EsmCatalog {
    /// Opens every dataset of this catalog (usually a search result) lazily, as
    /// intake-esm's `to_dataset_dict`: one dataset per combination of the `groupby_attrs`,
    /// keyed like intake-esm (`a.b.c`), its assets combined the way intake-esm and xarray
    /// combine them (see the [module docs](crate::open)). Assets are opened concurrently.
    /// A broken asset spoils only its own dataset: the error, naming the catalog, row,
    /// column and asset, is in [`DatasetDict::errors`]. Only planning errors fail the call.
    pub fn to_dataset_dict(&self, options: &DatasetDictOptions) -> crate::Result<DatasetDict> {
        let plans = self.dataset_plans_with(&options.plan)?;
        let columns = self.columns();
        let jobs: Vec<(usize, usize)> = plans
            .iter()
            .enumerate()
            .flat_map(|(p, plan)| (0..plan.assets.len()).map(move |a| (p, a)))
            .collect();
        let total = jobs.len();
        let done = AtomicUsize::new(0);
        let show = options.progress_from > 0 && total >= options.progress_from;
        let opened = parallel_map(jobs.clone(), options.concurrency, |(p, a)| {
            let r = self.open_asset(&plans[p], a, &options.open, &columns);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if show {
                eprint!("\r  opening assets: {n}/{total}");
                if n == total {
                    eprintln!();
                }
            }
            r
        });
        let mut per_plan: Vec<Vec<Option<Opened>>> = plans.iter().map(|_| Vec::new()).collect();
        for (&(p, _), r) in jobs.iter().zip(opened) {
            per_plan[p].push(r);
        }
        let work: Vec<(&DatasetPlan, Vec<Option<Opened>>)> = plans.iter().zip(per_plan).collect();
        let combined = parallel_map(work, options.concurrency, |(plan, assets)| -> Opened {
            let mut datasets = Vec::with_capacity(assets.len());
            for (a, r) in assets.into_iter().enumerate() {
                match r {
                    Some(Ok(ds)) => datasets.push(ds),
                    Some(Err(e)) => return Err(e),
                    None => return Err(self.asset_error(plan, a, "was not opened".into())),
                }
            }
            combine_assets(plan, datasets).map_err(|source| {
                Box::new(DatasetDictError::Combine {
                    catalog: self.name().to_owned(),
                    key: plan.key.clone(),
                    rows: plan.assets.iter().map(|a| a.row).collect(),
                    source,
                })
            })
        });
        let mut out = DatasetDict::default();
        for (plan, r) in plans.iter().zip(combined) {
            match r {
                Some(Ok(ds)) => {
                    out.datasets.insert(plan.key.clone(), ds);
                }
                Some(Err(e)) => {
                    out.errors.insert(plan.key.clone(), *e);
                }
                None => {
                    let e = self.asset_error(plan, 0, "was not combined".into());
                    out.errors.insert(plan.key.clone(), *e);
                }
            }
        }
        Ok(out)
    }

    fn asset_error(&self, plan: &DatasetPlan, a: usize, detail: String) -> Box<DatasetDictError> {
        let asset = plan.assets.get(a);
        Box::new(DatasetDictError::Asset {
            catalog: self.name().to_owned(),
            key: plan.key.clone(),
            row: asset.map_or(0, |x| x.row),
            column: self.spec().assets.column_name.clone(),
            asset: asset.map(|x| x.path.clone()).unwrap_or_default(),
            detail,
        })
    }

    fn open_asset(
        &self,
        plan: &DatasetPlan,
        a: usize,
        open: &OpenOptions,
        columns: &[String],
    ) -> Opened {
        let asset = &plan.assets[a];
        // intake-esm's formats: "zarr"/"zarr2"/"zarr3", "netcdf", and "reference" (kerchunk
        // reference sets, which open as Zarr stores)
        let opened = if asset.format.starts_with("zarr") || asset.format == "reference" {
            open_zarr(&asset.path, open)
        } else if asset.format == "netcdf" {
            open_netcdf(&asset.path, open)
        } else {
            let detail = format!(
                "{} assets are not supported (zarr, netcdf and reference are)",
                asset.format
            );
            return Err(self.asset_error(plan, a, detail));
        };
        let ds = opened.map_err(|e| self.asset_error(plan, a, e.to_string()))?;
        prepare_asset(ds, plan, asset, columns)
            .map_err(|e| self.asset_error(plan, a, e.to_string()))
    }
}
