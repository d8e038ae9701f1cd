//! `to_dataset_dict`: opening the assets of a (searched) catalog and combining them as
//! intake-esm does, following the [`DatasetPlan`]s.

use crate::catalog::EsmCatalog;
use crate::plan::{DatasetPlan, Label, PlanNode};
use gridflow_dataset::{Dataset, OpenOptions, Variable, open_zarr};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Options of [`EsmCatalog::to_dataset_dict`].
#[derive(Clone, Debug)]
pub struct DatasetDictOptions {
    /// How each asset is opened (chunks, CF decoding switches, store credentials).
    pub open: OpenOptions,
    /// Assets opened at once.
    pub concurrency: usize,
    /// Print progress to stderr when there are at least this many assets (0: never).
    pub progress_from: usize,
}

impl Default for DatasetDictOptions {
    fn default() -> Self {
        DatasetDictOptions {
            open: OpenOptions::default(),
            concurrency: 8,
            progress_from: 16,
        }
    }
}

/// The datasets of `to_dataset_dict`, and the keys that could not be opened (each error
/// names the catalog, the row, the column and the asset).
#[derive(Debug, Default)]
pub struct DatasetDict {
    /// Datasets by key.
    pub datasets: BTreeMap<String, Dataset>,
    /// Keys whose assets could not be opened or combined, with why.
    pub errors: BTreeMap<String, String>,
}

fn label_variable(dim: &str, labels: &[Label]) -> gridflow_dataset::Result<Variable> {
    let numbers: Option<Vec<f64>> = labels
        .iter()
        .map(|l| match l {
            Label::Integer(i) => Some(*i as f64),
            Label::Float(f) => Some(*f),
            Label::Missing => Some(f64::NAN),
            Label::Text(_) => None,
        })
        .collect();
    match numbers {
        // all-missing labels (Pangeo's dcpp_init_year outside DCPP) are a float NaN, as in
        // intake-esm
        Some(v) => Variable::from_f64(dim, v),
        _ => Variable::from_strings(
            dim,
            labels
                .iter()
                .map(|l| l.as_text().unwrap_or_else(|| "nan".to_owned()))
                .collect(),
        ),
    }
}

impl EsmCatalog {
    /// Opens every dataset of this catalog (usually a search result) lazily: one dataset per
    /// combination of the `groupby_attrs`, keyed like intake-esm (`a.b.c`), its assets
    /// combined by the declared aggregations (`join_new` adds a dimension whose coordinate
    /// holds the attribute values, `join_existing` concatenates along a dimension, `union`
    /// merges variables). Assets are opened concurrently. A broken asset spoils only its own
    /// dataset: the error is reported in [`DatasetDict::errors`].
    pub fn to_dataset_dict(&self, options: &DatasetDictOptions) -> crate::Result<DatasetDict> {
        let plans = self.dataset_plans()?;
        let jobs: Vec<(usize, usize)> = plans
            .iter()
            .enumerate()
            .flat_map(|(p, plan)| (0..plan.assets.len()).map(move |a| (p, a)))
            .collect();
        let opened: Mutex<BTreeMap<(usize, usize), Result<Dataset, String>>> =
            Mutex::new(BTreeMap::new());
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let show = options.progress_from > 0 && jobs.len() >= options.progress_from;
        let workers = options.concurrency.clamp(1, 64).min(jobs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(p, a)) = jobs.get(i) else { break };
                        let r = self.open_asset(&plans[p], a, &options.open);
                        opened
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert((p, a), r);
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if show {
                            eprint!("\r  opening assets: {n}/{}", jobs.len());
                            if n == jobs.len() {
                                eprintln!();
                            }
                        }
                    }
                });
            }
        });
        let mut opened = opened
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = DatasetDict::default();
        for (p, plan) in plans.iter().enumerate() {
            let mut assets: Vec<Option<Result<Dataset, String>>> = (0..plan.assets.len())
                .map(|a| opened.remove(&(p, a)))
                .collect();
            match combine(plan, &plan.root, &mut assets) {
                Ok(mut ds) => {
                    ds.attrs
                        .insert("intake_esm_dataset_key".into(), plan.key.clone().into());
                    for (k, v) in &plan.attrs {
                        ds.attrs
                            .insert(format!("intake_esm_attrs:{k}"), v.clone().into());
                    }
                    out.datasets.insert(plan.key.clone(), ds);
                }
                Err(e) => {
                    out.errors.insert(plan.key.clone(), e);
                }
            }
        }
        Ok(out)
    }

    fn open_asset(
        &self,
        plan: &DatasetPlan,
        a: usize,
        open: &OpenOptions,
    ) -> Result<Dataset, String> {
        let asset = &plan.assets[a];
        let column = self.spec().assets.column_name.clone();
        let whence = format!(
            "catalog {:?}, row {}, column {:?}, asset {:?}",
            self.name(),
            asset.row,
            column,
            asset.path
        );
        if !asset.format.starts_with("zarr") {
            return Err(format!(
                "{whence}: {} assets are not supported (only Zarr)",
                asset.format
            ));
        }
        let ds = open_zarr(&asset.path, open).map_err(|e| format!("{whence}: {e}"))?;
        // keep only the variables a search on a list-valued variable column asked for
        if plan.requested_variables.is_empty() {
            return Ok(ds);
        }
        let keep: Vec<&str> = plan
            .requested_variables
            .iter()
            .map(String::as_str)
            .collect();
        let mut ds = ds;
        let names: Vec<String> = ds.data_vars().keys().cloned().collect();
        let mut vars = indexmap::IndexMap::new();
        for n in names {
            if keep.contains(&n.as_str()) {
                vars.insert(n.clone(), ds.data_vars()[&n].clone());
            }
        }
        let attrs = ds.attrs.clone();
        ds =
            Dataset::new(vars, ds.coords().clone(), attrs).map_err(|e| format!("{whence}: {e}"))?;
        Ok(ds)
    }
}

fn combine(
    plan: &DatasetPlan,
    node: &PlanNode,
    assets: &mut [Option<Result<Dataset, String>>],
) -> Result<Dataset, String> {
    let ctx = |e: gridflow_dataset::DatasetError| format!("dataset {:?}: {e}", plan.key);
    match node {
        PlanNode::Asset(i) => match assets.get_mut(*i).and_then(Option::take) {
            Some(r) => r,
            None => Err(format!("dataset {:?}: asset {i} was not opened", plan.key)),
        },
        PlanNode::JoinNew {
            dim,
            labels,
            children,
        } => {
            let parts: Vec<Dataset> = children
                .iter()
                .map(|c| combine(plan, c, assets))
                .collect::<Result<_, _>>()?;
            let lv = label_variable(dim, labels).map_err(ctx)?;
            Dataset::concat(&parts, dim, Some(lv)).map_err(ctx)
        }
        PlanNode::JoinExisting { dim, children } => {
            let mut parts: Vec<Dataset> = children
                .iter()
                .map(|c| combine(plan, c, assets))
                .collect::<Result<_, _>>()?;
            let Some(dim) = dim.clone().or_else(|| guess_concat_dim(&parts)) else {
                return Err(format!(
                    "dataset {:?}: several assets hold the same variables and no join_existing dimension is declared",
                    plan.key
                ));
            };
            // order by the first value along the dimension, as xarray's combine_by_coords
            let first = |d: &Dataset| -> f64 {
                d.indexes()
                    .get(&dim)
                    .and_then(|ix| match ix.values() {
                        gridflow_dataset::IndexValues::Float(v) => v.first().copied(),
                        gridflow_dataset::IndexValues::Int(v) => v.first().map(|&x| x as f64),
                        gridflow_dataset::IndexValues::Time { ticks, .. } => {
                            ticks.first().map(|&x| x as f64)
                        }
                        gridflow_dataset::IndexValues::Str(_) => None,
                    })
                    .unwrap_or(f64::NAN)
            };
            parts.sort_by(|a, b| first(a).total_cmp(&first(b)));
            Dataset::concat(&parts, &dim, None).map_err(ctx)
        }
        PlanNode::Union { children, .. } => {
            let parts: Vec<Dataset> = children
                .iter()
                .map(|c| combine(plan, c, assets))
                .collect::<Result<_, _>>()?;
            Dataset::merge(&parts).map_err(ctx)
        }
    }
}

/// The dimension whose coordinate differs between the parts (xarray's combine_by_coords).
fn guess_concat_dim(parts: &[Dataset]) -> Option<String> {
    let first = parts.first()?;
    first
        .indexes()
        .iter()
        .find(|(k, ix)| parts[1..].iter().any(|p| p.indexes().get(*k) != Some(*ix)))
        .map(|(k, _)| k.clone())
}
