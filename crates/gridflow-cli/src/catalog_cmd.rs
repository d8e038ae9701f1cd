//! `gridflow catalog search` and the catalog steps of `demo` and `eval`.

use anyhow::{Context, Result, bail};
use gridflow_catalog::{DatasetDictOptions, EsmCatalog, Query};
use gridflow_dataset::{Dataset, OpenOptions};
use serde_json::json;
use std::path::Path;

/// A dataset found through a catalog search.
pub struct Found {
    /// The dataset key.
    pub key: String,
    /// Catalog rows the search matched.
    pub rows: usize,
    /// The dataset, lazily opened.
    pub dataset: Dataset,
}

/// `col=value` pairs as a query; `value` may list several comma-separated values (any of).
fn query(pairs: &[(&str, &str)]) -> Query {
    let mut q = Query::new();
    for (col, val) in pairs {
        let vals: Vec<&str> = val
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        q = if vals.len() == 1 {
            q.with(col, vals[0])
        } else {
            q.with_any(col, vals)
        };
    }
    q
}

fn open_catalog(path: &Path) -> Result<EsmCatalog> {
    let p = path.to_str().context("the catalog path is not UTF-8")?;
    let options = crate::common::Limits::from_env()?.catalog_options();
    EsmCatalog::open_with(p, &options).with_context(|| format!("opening the catalog {p}"))
}

/// Searches `catalog` and opens the one dataset the search leaves.
pub fn search_and_open(
    catalog: &Path,
    pairs: &[(&str, &str)],
    open: &OpenOptions,
) -> Result<Found> {
    search_and_open_key(catalog, pairs, None, open)
}

/// Searches `catalog` and opens the dataset `key` (or the only one).
pub fn search_and_open_key(
    catalog: &Path,
    pairs: &[(&str, &str)],
    key: Option<&str>,
    open: &OpenOptions,
) -> Result<Found> {
    let cat = open_catalog(catalog)?;
    let found = cat.search(&query(pairs))?;
    let keys = found.keys()?;
    let key = match (key, keys.as_slice()) {
        (Some(k), _) if keys.iter().any(|x| x == k) => k.to_owned(),
        (Some(k), _) => bail!(
            "the search leaves no dataset {k:?} (it leaves: {})",
            keys.join(", ")
        ),
        (None, [one]) => one.clone(),
        (None, []) => bail!("the search matched no dataset in {}", catalog.display()),
        (None, many) => bail!(
            "the search leaves {} datasets; narrow it with --search or pick one with --key: {}",
            many.len(),
            many.join(", ")
        ),
    };
    let rows = found.key_rows(&key)?.len();
    let mut dict = found.to_dataset_dict(&DatasetDictOptions {
        open: open.clone(),
        ..DatasetDictOptions::default()
    })?;
    if let Some(e) = dict.errors.remove(&key) {
        bail!("{e}");
    }
    let dataset = dict
        .datasets
        .remove(&key)
        .with_context(|| format!("dataset {key} was not produced"))?;
    Ok(Found { key, rows, dataset })
}

/// Runs `gridflow catalog search`.
pub fn search(catalog: &Path, terms: &[String], unique: bool, as_json: bool) -> Result<()> {
    let pairs: Vec<(String, String)> = terms
        .iter()
        .map(|t| {
            t.split_once('=')
                .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                .with_context(|| format!("search term {t:?}: expected COLUMN=VALUE"))
        })
        .collect::<Result<_>>()?;
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let cat = open_catalog(catalog)?;
    let found = cat.search(&query(&refs))?;
    let keys = found.keys()?;
    if as_json {
        let mut doc = json!({"rows": found.len(), "keys": keys});
        if unique {
            doc["unique"] = json!(found.unique());
        }
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(());
    }
    println!("{} row(s), {} dataset(s)", found.len(), keys.len());
    for k in &keys {
        println!("  {k}  ({} row(s))", found.key_rows(k)?.len());
    }
    if unique {
        println!("unique values:");
        for (col, vals) in found.unique() {
            println!("  {col} ({}): {}", vals.len(), vals.join(", "));
        }
    }
    Ok(())
}
