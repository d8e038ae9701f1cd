//! `gridflow catalog search` and the catalog steps of `demo` and `eval`.

use crate::common::StorageArgs;
use crate::out::{note, outln};
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

/// How search terms are read, shared by `catalog search` and `eval --catalog`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SearchOptions {
    /// Keep only the groups of rows (grouped by COL) that hold every combination of the
    /// other searched values, as intake-esm's `require_all_on` (repeat, or COL1,COL2).
    #[arg(long, value_name = "COL", value_delimiter = ',')]
    pub require_all_on: Vec<String>,
    /// CSV columns whose cells hold lists (`"['tas', 'pr']"`), as intake-esm's
    /// `columns_with_iterables`: a value then matches one item of the list (repeat, or
    /// COL1,COL2).
    #[arg(long, value_name = "COL", value_delimiter = ',')]
    pub columns_with_iterables: Vec<String>,
}

/// The syntax of search terms, for `--help`.
pub const TERMS_HELP: &str = "Search terms are COLUMN=VALUE: VALUE may list several values separated by commas \
(any of them matches), a comma inside a value is written \\, or the value is quoted ('...' or \"...\"); \
an unquoted None looks for a missing cell; an unquoted number (1960, 1960.0) is a number, which matches \
numeric columns only (Parquet and inline catalogs have them; CSV columns hold text: quote the value, \
dcpp_init_year='1960.0', to look for text); values holding * ? ^ or $ are regular expressions searched in \
the cell, as in intake-esm (member_id='^r1i1p1f[0-9]$'); a column given twice matches either term.";

/// Searches `cat`, first saying on standard error which values cannot match their column
/// because of their type (intake-esm returns no rows for them without a word).
fn search_noting_types(cat: &EsmCatalog, query: &Query) -> Result<EsmCatalog> {
    for m in cat.type_mismatches(query) {
        note!("note: {m}");
    }
    Ok(cat.search(query)?)
}

fn open_catalog(path: &Path, opts: &SearchOptions, storage: &StorageArgs) -> Result<EsmCatalog> {
    let p = path.to_str().context("the catalog path is not UTF-8")?;
    let mut options = crate::common::catalog_options(storage)?;
    options.columns_with_iterables = opts.columns_with_iterables.clone();
    EsmCatalog::open_with(p, &options).with_context(|| format!("opening the catalog {p}"))
}

/// Searches `catalog` and opens the one dataset the search leaves.
pub fn search_and_open(catalog: &Path, terms: &[String], open: &OpenOptions) -> Result<Found> {
    let storage = StorageArgs::default();
    search_and_open_key(
        catalog,
        terms,
        &SearchOptions::default(),
        &storage,
        None,
        open,
    )
}

/// Searches `catalog` and opens the dataset `key` (or the only one).
pub fn search_and_open_key(
    catalog: &Path,
    terms: &[String],
    opts: &SearchOptions,
    storage: &StorageArgs,
    key: Option<&str>,
    open: &OpenOptions,
) -> Result<Found> {
    let query = Query::from_terms(terms, &opts.require_all_on)?;
    let cat = open_catalog(catalog, opts, storage)?;
    let found = search_noting_types(&cat, &query)?;
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
pub fn search(
    catalog: &Path,
    terms: &[String],
    opts: &SearchOptions,
    storage: &StorageArgs,
    unique: bool,
    as_json: bool,
) -> Result<()> {
    let query = Query::from_terms(terms, &opts.require_all_on)?;
    let cat = open_catalog(catalog, opts, storage)?;
    let found = search_noting_types(&cat, &query)?;
    let keys = found.keys()?;
    if as_json {
        let mut doc = json!({"rows": found.len(), "keys": keys});
        if unique && let Some(map) = doc.as_object_mut() {
            map.insert("unique".to_owned(), json!(found.unique()));
        }
        outln!("{}", serde_json::to_string(&doc)?)?;
        return Ok(());
    }
    outln!("{} row(s), {} dataset(s)", found.len(), keys.len())?;
    for k in &keys {
        outln!("  {k}  ({} row(s))", found.key_rows(k)?.len())?;
    }
    if unique {
        outln!("unique values:")?;
        for (col, vals) in found.unique() {
            outln!("  {col} ({}): {}", vals.len(), vals.join(", "))?;
        }
    }
    Ok(())
}
