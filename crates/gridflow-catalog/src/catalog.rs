//! [`EsmCatalog`]: an opened intake-esm catalog (spec + table), its rows, unique values and
//! dataset keys.

use crate::error::{CatalogError, Result};
use crate::spec::{self, AggregationType, CollectionSpec};
use crate::table::{self, Column, ColumnKind, CsvSource, NULL, Table};
use gridflow_store::StoreOptions;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// How to open a catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenOptions {
    /// How to reach remote catalog JSON and CSV files (S3 endpoint, anonymous access...).
    pub store: StoreOptions,
    /// CSV columns whose cells hold lists (`"['tas', 'pr']"`), as intake-esm's
    /// `columns_with_iterables`. Lists in an inline `catalog_dict` are found by themselves.
    pub columns_with_iterables: Vec<String>,
    /// Largest catalog JSON or CSV, in bytes (local files: checked before they are read),
    /// and largest size a `.csv.gz` may decompress to. Default 1 GiB.
    pub max_bytes: u64,
}

/// Default [`OpenOptions::max_bytes`]: 1 GiB.
pub const DEFAULT_MAX_CATALOG_BYTES: u64 = 1 << 30;

/// Most a `.csv.gz` may expand relative to its compressed size (catalog CSVs compress about
/// tenfold; a decompression bomb a thousandfold), once past [`GZIP_RATIO_FLOOR`].
pub const MAX_GZIP_RATIO: u64 = 100;

/// Decompressed size always allowed whatever the ratio (small files compress very well).
pub const GZIP_RATIO_FLOOR: u64 = 64 << 20;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            store: StoreOptions::default(),
            columns_with_iterables: Vec::new(),
            max_bytes: DEFAULT_MAX_CATALOG_BYTES,
        }
    }
}

/// Reads a catalog JSON or CSV (path or URL). A local path must be a regular file no
/// bigger than `max_bytes`, checked before it is opened (a FIFO would block the read).
fn read_capped(
    catalog: &str,
    what: &'static str,
    url: &str,
    options: &OpenOptions,
) -> Result<Vec<u8>> {
    let local = match url.strip_prefix("file://") {
        Some(p) => Some(p),
        None if url.contains("://") => None,
        None => Some(url),
    };
    if let Some(path) = local
        && let Ok(meta) = std::fs::metadata(path)
    {
        if !meta.is_file() {
            return Err(CatalogError::Refused {
                catalog: catalog.to_owned(),
                what,
                url: url.to_owned(),
                detail: "is not a regular file (a FIFO, device, socket or directory); only regular files are read".into(),
            });
        }
        if meta.len() > options.max_bytes {
            return Err(CatalogError::Refused {
                catalog: catalog.to_owned(),
                what,
                url: url.to_owned(),
                detail: format!(
                    "is {} bytes, more than the cap of {} bytes (raise OpenOptions::max_bytes; gridflow: GRIDFLOW_LIMITS=catalog=SIZE)",
                    meta.len(),
                    options.max_bytes
                ),
            });
        }
    }
    gridflow_store::fetch::read_bytes_capped(url, &options.store, options.max_bytes).map_err(|e| {
        CatalogError::Fetch {
            catalog: catalog.to_owned(),
            what,
            url: url.to_owned(),
            source: Box::new(e),
        }
    })
}

/// Where the catalog JSON lives: the base for its relative `catalog_file` (and, on request,
/// for relative asset paths).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Location {
    /// A local JSON file (absolute path).
    Local(PathBuf),
    /// A remote JSON URL.
    Remote(String),
    /// JSON text with no known location.
    Inline,
}

impl Location {
    fn of(base: Option<&str>) -> Location {
        match base {
            None => Location::Inline,
            Some(b) if b.starts_with("file://") => Location::Local(PathBuf::from(&b[7..])),
            Some(b) if b.contains("://") => Location::Remote(b.to_owned()),
            Some(b) => Location::Local(std::path::absolute(b).unwrap_or_else(|_| PathBuf::from(b))),
        }
    }

    /// Resolves a relative path against the JSON's directory.
    pub(crate) fn join(&self, rel: &str) -> String {
        match self {
            Location::Local(json) => json
                .parent()
                .unwrap_or_else(|| Path::new("/"))
                .join(rel)
                .display()
                .to_string(),
            Location::Remote(url) => {
                let dir = url.rsplit_once('/').map_or(url.as_str(), |(d, _)| d);
                format!("{dir}/{}", rel.strip_prefix("./").unwrap_or(rel))
            }
            Location::Inline => std::path::absolute(rel)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| rel.to_owned()),
        }
    }
}

/// True for `scheme://...` URLs.
pub(crate) fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    })
}

/// An intake-esm catalog: the collection spec and its table of assets (one row per asset).
///
/// ```no_run
/// use gridflow_catalog::{EsmCatalog, Query};
/// use gridflow_store::StoreOptions;
/// let cat = EsmCatalog::open("https://storage.googleapis.com/cmip6/pangeo-cmip6.json",
///                            &StoreOptions { anonymous: true, ..StoreOptions::read_only() })?;
/// let sub = cat.search(&Query::new().with("variable_id", "tas").with("table_id", "Amon")
///     .with_any("experiment_id", ["historical", "ssp585"]))?;
/// println!("{}", sub.summary());
/// for plan in sub.dataset_plans()? {
///     println!("{}: {} assets", plan.key, plan.assets.len());
/// }
/// # Ok::<(), gridflow_catalog::CatalogError>(())
/// ```
#[derive(Clone, Debug)]
pub struct EsmCatalog {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) spec: CollectionSpec,
    pub(crate) table: Table,
    pub(crate) warnings: Vec<String>,
    pub(crate) requested_variables: Vec<String>,
    /// The datasets (aggregated), computed on first use.
    pub(crate) groups_cache: OnceLock<Groups>,
}

/// Datasets: (key, rows in catalog order), sorted by key values.
pub(crate) type Groups = Arc<Vec<(String, Vec<usize>)>>;

/// One cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// No value (an empty CSV field, a JSON `null` or absent key).
    Missing,
    /// A text or number cell, as text (numbers as Python prints them).
    Text(&'a str),
    /// A list cell.
    List(&'a [Box<str>]),
}

/// One row of the table (see [`EsmCatalog::rows`]).
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    cat: &'a EsmCatalog,
    index: usize,
}

impl<'a> Row<'a> {
    /// The row number (0-based, in this catalog).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The value in `column` (list cells joined with `,`); `None` when missing or when the
    /// column does not exist.
    pub fn get(&self, column: &str) -> Option<&'a str> {
        self.cat.value(self.index, column)
    }

    /// (column, value) pairs in column order, missing values as `None`.
    pub fn values(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let index = self.index;
        self.cat
            .table
            .columns
            .iter()
            .map(move |c| (c.name.as_str(), c.text(index)))
    }
}

impl EsmCatalog {
    /// Opens a catalog JSON from a path, `file://`, `http(s)://`, `s3://` or public `gs://`
    /// URL, and reads its rows (`catalog_file` or inline `catalog_dict`).
    ///
    /// A relative `catalog_file` is resolved as intake-esm does: first against the working
    /// directory (local catalogs only), then against the JSON's directory (or URL).
    pub fn open(url_or_path: &str, options: &StoreOptions) -> Result<EsmCatalog> {
        EsmCatalog::open_with(
            url_or_path,
            &OpenOptions {
                store: options.clone(),
                ..OpenOptions::default()
            },
        )
    }

    /// [`EsmCatalog::open`] with list columns and store options.
    pub fn open_with(url_or_path: &str, options: &OpenOptions) -> Result<EsmCatalog> {
        let bytes = read_capped(url_or_path, "the catalog JSON", url_or_path, options)?;
        let text = String::from_utf8(bytes).map_err(|e| CatalogError::Json {
            catalog: url_or_path.to_owned(),
            line: 1,
            column: 1,
            detail: format!("not UTF-8 text: {e}"),
        })?;
        EsmCatalog::build(url_or_path, Location::of(Some(url_or_path)), &text, options)
    }

    /// Reads a catalog from JSON text. `base` is where the JSON would live (a path or URL):
    /// a relative `catalog_file` is resolved against its directory; without it, against the
    /// working directory.
    ///
    /// ```
    /// use gridflow_catalog::EsmCatalog;
    /// let cat = EsmCatalog::from_json_str(r#"{
    ///   "esmcat_version": "0.1.0", "id": "demo", "attributes": [],
    ///   "assets": {"column_name": "path", "format": "zarr"},
    ///   "aggregation_control": {"variable_column_name": "var", "groupby_attrs": ["model"],
    ///     "aggregations": [{"type": "union", "attribute_name": "var"}]},
    ///   "catalog_dict": [{"model": "m1", "var": "tas", "path": "a.zarr"},
    ///                    {"model": "m1", "var": "pr", "path": "b.zarr"}]}"#, None)?;
    /// assert_eq!(cat.len(), 2);
    /// assert_eq!(cat.keys()?, ["m1"]);
    /// assert_eq!(cat.to_string(), "<demo catalog with 1 dataset(s) from 2 asset(s)>");
    /// # Ok::<(), gridflow_catalog::CatalogError>(())
    /// ```
    pub fn from_json_str(json: &str, base: Option<&str>) -> Result<EsmCatalog> {
        EsmCatalog::from_json_str_with(json, base, &OpenOptions::default())
    }

    /// [`EsmCatalog::from_json_str`] with list columns and store options.
    pub fn from_json_str_with(
        json: &str,
        base: Option<&str>,
        options: &OpenOptions,
    ) -> Result<EsmCatalog> {
        let name = base.unwrap_or("<inline JSON>");
        EsmCatalog::build(name, Location::of(base), json, options)
    }

    fn build(
        name: &str,
        location: Location,
        text: &str,
        options: &OpenOptions,
    ) -> Result<EsmCatalog> {
        let (spec, dict_rows) = spec::parse(name, text)?;
        let table = match (&spec.catalog_file, dict_rows) {
            (_, Some(rows)) => {
                let t = table::read_dict(name, &rows)?;
                check_list_columns(name, &t, &options.columns_with_iterables)?;
                t
            }
            (Some(file), None) => read_catalog_file(name, &location, file, options)?,
            // spec::parse refuses a catalog with neither
            (None, None) => Table::default(),
        };
        let mut cat = EsmCatalog {
            name: name.to_owned(),
            location,
            spec,
            table,
            warnings: Vec::new(),
            requested_variables: Vec::new(),
            groups_cache: OnceLock::new(),
        };
        cat.check_columns()?;
        Ok(cat)
    }

    /// Columns the spec makes intake-esm read must exist; other mismatches are warnings.
    fn check_columns(&mut self) -> Result<()> {
        let columns = self.table.names();
        let missing = |column: &str, role: &str| CatalogError::MissingColumn {
            catalog: self.name.clone(),
            column: column.to_owned(),
            role: role.to_owned(),
            columns: columns.clone(),
        };
        let has = |c: &str| columns.iter().any(|x| x == c);
        let assets = &self.spec.assets;
        if !has(&assets.column_name) {
            return Err(missing(&assets.column_name, "assets.column_name"));
        }
        if let Some(f) = &assets.format_column_name
            && !has(f)
        {
            return Err(missing(f, "assets.format_column_name"));
        }
        let mut warnings = Vec::new();
        if let Some(ac) = &self.spec.aggregation_control {
            if !has(&ac.variable_column_name) {
                return Err(missing(
                    &ac.variable_column_name,
                    "aggregation_control.variable_column_name",
                ));
            }
            for g in &ac.groupby_attrs {
                if !has(g) {
                    return Err(missing(g, "aggregation_control.groupby_attrs"));
                }
            }
            for (i, agg) in ac.aggregations.iter().enumerate() {
                if has(&agg.attribute_name) {
                    continue;
                }
                if agg.kind == AggregationType::JoinNew {
                    return Err(missing(
                        &agg.attribute_name,
                        &format!("aggregation_control.aggregations[{i}].attribute_name (join_new)"),
                    ));
                }
                warnings.push(format!(
                    "aggregation_control.aggregations[{i}] names column {:?}, which the table does not have (intake-esm does not read it)",
                    agg.attribute_name
                ));
            }
        }
        for a in &self.spec.attributes {
            if !has(&a.column_name) {
                warnings.push(format!(
                    "attribute {:?} is not a column of the table (ignored, as intake-esm does)",
                    a.column_name
                ));
            }
        }
        self.warnings = warnings;
        Ok(())
    }

    /// The catalog's name in messages: the path or URL it was opened from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection spec (the JSON without its rows).
    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    /// Spec/table mismatches intake-esm tolerates (an attribute naming no column...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Column names, in table order.
    pub fn columns(&self) -> Vec<String> {
        self.table.names()
    }

    /// The kind of a column (`None` if there is no such column).
    pub fn column_kind(&self, column: &str) -> Option<ColumnKind> {
        self.column(column).map(|c| c.kind)
    }

    /// Columns whose cells are lists (intake-esm's `columns_with_iterables`).
    pub fn columns_with_iterables(&self) -> Vec<String> {
        self.table
            .columns
            .iter()
            .filter(|c| c.kind == ColumnKind::List)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Number of rows (assets).
    pub fn len(&self) -> usize {
        self.table.rows
    }

    /// True when the catalog has no rows.
    pub fn is_empty(&self) -> bool {
        self.table.rows == 0
    }

    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.table.columns.iter().find(|c| c.name == name)
    }

    /// The value at (`row`, `column`): `None` when missing, out of range or no such column.
    /// List cells are joined with `,` (see [`EsmCatalog::cell`] for the items).
    pub fn value(&self, row: usize, column: &str) -> Option<&str> {
        self.column(column).and_then(|c| c.text(row))
    }

    /// The cell at (`row`, `column`) (`Missing` when out of range or no such column).
    pub fn cell(&self, row: usize, column: &str) -> Cell<'_> {
        let Some(c) = self.column(column) else {
            return Cell::Missing;
        };
        match c.codes.get(row) {
            Some(&code) if code != NULL => match c.kind {
                ColumnKind::List => Cell::List(&c.dict.items[code as usize]),
                _ => Cell::Text(&c.dict.texts[code as usize]),
            },
            _ => Cell::Missing,
        }
    }

    /// Iterates over the rows, in order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        (0..self.len()).map(move |index| Row { cat: self, index })
    }

    /// One row (`None` when out of range).
    pub fn row(&self, index: usize) -> Option<Row<'_>> {
        (index < self.len()).then_some(Row { cat: self, index })
    }

    /// The variables a search asked for, when the variable column holds lists (intake-esm's
    /// `_requested_variables`); only these are loaded from multi-variable assets.
    pub fn requested_variables(&self) -> &[String] {
        &self.requested_variables
    }

    /// Unique values of each column in first-appearance order, missing values left out,
    /// list cells flattened (intake-esm's `unique()` without the `derived_*` entry).
    pub fn unique(&self) -> BTreeMap<String, Vec<String>> {
        self.table
            .columns
            .iter()
            .map(|c| (c.name.clone(), unique_of(c)))
            .collect()
    }

    /// Number of distinct values of each column, a missing value counting as one (as
    /// intake-esm's polars-based `nunique()` does; list cells are flattened first).
    pub fn nunique(&self) -> BTreeMap<String, usize> {
        self.table
            .columns
            .iter()
            .map(|c| (c.name.clone(), nunique_of(c)))
            .collect()
    }

    /// The columns the datasets are grouped by (intake-esm's `grouped`): the `groupby_attrs`
    /// minus columns with no value at all; when none are left (or there is no
    /// `aggregation_control`, or they are all the columns), every column with values.
    /// A groupby column with values in some rows only is an error, as in intake-esm.
    pub(crate) fn group_columns(&self, aggregate: bool) -> Result<Vec<usize>> {
        let check = |i: usize| -> Result<bool> {
            let c = &self.table.columns[i];
            let nulls = c.codes.iter().filter(|&&x| x == NULL).count();
            if nulls == 0 {
                Ok(true)
            } else if nulls == c.codes.len() {
                Ok(false)
            } else {
                let rows: Vec<usize> = c
                    .codes
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| **x == NULL)
                    .map(|(r, _)| r)
                    .take(10)
                    .collect();
                Err(CatalogError::Grouping {
                    catalog: self.name.clone(),
                    column: c.name.clone(),
                    detail: format!(
                        "it must have a value in every row or in none; {nulls} of {} rows have none (rows {rows:?}{})",
                        c.codes.len(),
                        if nulls > rows.len() { ", ..." } else { "" }
                    ),
                })
            }
        };
        let mut chosen = Vec::new();
        if let Some(ac) = self.spec.aggregation_control.as_ref().filter(|_| aggregate) {
            for g in &ac.groupby_attrs {
                if let Some(i) = self.table.column_index(g)
                    && check(i)?
                    && !chosen.contains(&i)
                {
                    chosen.push(i);
                }
            }
            if !chosen.is_empty() && chosen.len() != self.table.columns.len() {
                return Ok(chosen);
            }
        }
        let mut all = Vec::new();
        for i in 0..self.table.columns.len() {
            if check(i)? {
                all.push(i);
            }
        }
        Ok(all)
    }

    /// The datasets: (key, rows) sorted by their groupby values as pandas sorts them.
    pub(crate) fn groups(&self, aggregate: bool) -> Result<Groups> {
        if aggregate && let Some(g) = self.groups_cache.get() {
            return Ok(Arc::clone(g));
        }
        let groups = Arc::new(self.compute_groups(aggregate)?);
        if aggregate {
            let _ = self.groups_cache.set(Arc::clone(&groups));
        }
        Ok(groups)
    }

    fn compute_groups(&self, aggregate: bool) -> Result<Vec<(String, Vec<usize>)>> {
        let cols = self.group_columns(aggregate)?;
        let columns: Vec<&Column> = cols.iter().map(|&i| &self.table.columns[i]).collect();
        let mut index: FxHashMap<Vec<u32>, usize> = FxHashMap::default();
        let mut groups: Vec<(Vec<u32>, Vec<usize>)> = Vec::new();
        let mut buf: Vec<u32> = Vec::with_capacity(columns.len());
        for row in 0..self.len() {
            buf.clear();
            buf.extend(columns.iter().map(|c| c.codes[row]));
            // pandas drops rows with a missing groupby value (only all-missing columns are
            // grouped on, and those are filtered out above)
            if buf.contains(&NULL) {
                continue;
            }
            match index.get(buf.as_slice()) {
                Some(&g) => groups[g].1.push(row),
                None => {
                    index.insert(buf.clone(), groups.len());
                    groups.push((buf.clone(), vec![row]));
                }
            }
        }
        drop(index);
        // sort by the ranks of the values: integer comparisons
        let ranks: Vec<Vec<u32>> = columns.iter().map(|c| c.ranks()).collect();
        let mut keyed: Vec<(Vec<u32>, Vec<u32>, Vec<usize>)> = groups
            .into_iter()
            .map(|(codes, rows)| {
                let r = codes
                    .iter()
                    .zip(&ranks)
                    .map(|(&c, rk)| rk[c as usize])
                    .collect();
                (r, codes, rows)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed
            .into_iter()
            .map(|(_, codes, rows)| {
                let mut key = String::new();
                for (i, (c, &x)) in columns.iter().zip(&codes).enumerate() {
                    if i > 0 {
                        key.push('.');
                    }
                    key.push_str(&c.dict.texts[x as usize]);
                }
                (key, rows)
            })
            .collect())
    }

    /// The dataset keys: the groupby values of each dataset joined with `.`, sorted by those
    /// values (text columns as text, numeric `catalog_dict` columns as numbers), as
    /// intake-esm's `keys()`.
    pub fn keys(&self) -> Result<Vec<String>> {
        Ok(self.groups(true)?.iter().map(|(k, _)| k.clone()).collect())
    }

    /// The rows of one dataset, in catalog order (intake-esm's `cat[key].df`).
    pub fn key_rows(&self, key: &str) -> Result<Vec<usize>> {
        self.groups(true)?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, rows)| rows.clone())
            .ok_or_else(|| CatalogError::UnknownKey {
                catalog: self.name.clone(),
                key: key.to_owned(),
            })
    }

    /// How keys are made (intake-esm's `key_template`), e.g.
    /// `activity_id.institution_id.source_id.experiment_id.table_id.grid_label`.
    pub fn key_template(&self) -> Result<String> {
        let cols = self.group_columns(true)?;
        Ok(cols
            .iter()
            .map(|&i| self.table.columns[i].name.as_str())
            .collect::<Vec<_>>()
            .join("."))
    }

    /// A text summary like intake-esm's repr and HTML view: the
    /// `<id catalog with N dataset(s) from M asset(s)>` line, then the number of unique values
    /// per column.
    pub fn summary(&self) -> String {
        let nunique = self.nunique();
        let width = self
            .table
            .columns
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        // padded by hand: `{:width$}` panics on widths beyond u16::MAX (a column name
        // can be that long)
        let pad = |name: &str| " ".repeat(width.saturating_sub(name.chars().count()));
        let mut out = format!("{self}:\n");
        out.push_str(&format!("  column{}  unique\n", pad("column")));
        for c in &self.table.columns {
            out.push_str(&format!(
                "  {}{}  {:>6}\n",
                c.name,
                pad(&c.name),
                nunique.get(&c.name).copied().unwrap_or(0)
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("  note: {w}\n"));
        }
        out
    }

    /// This catalog restricted to `rows` (in that order).
    pub(crate) fn subset(&self, rows: &[usize], requested_variables: Vec<String>) -> EsmCatalog {
        EsmCatalog {
            name: self.name.clone(),
            location: self.location.clone(),
            spec: self.spec.clone(),
            table: self.table.subset(rows),
            warnings: self.warnings.clone(),
            requested_variables,
            groups_cache: OnceLock::new(),
        }
    }
}

impl fmt::Display for EsmCatalog {
    /// intake-esm's repr: `<pangeo-cmip6 catalog with 5 dataset(s) from 15 asset(s)>`
    /// (`?` datasets when the rows cannot be grouped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let datasets = match self.groups(true) {
            Ok(g) => g.len().to_string(),
            Err(_) => "?".to_owned(),
        };
        write!(
            f,
            "<{} catalog with {datasets} dataset(s) from {} asset(s)>",
            self.spec.id,
            self.len()
        )
    }
}

fn check_list_columns(catalog: &str, t: &Table, wanted: &[String]) -> Result<()> {
    for w in wanted {
        match t.columns.iter().find(|c| &c.name == w) {
            None => {
                return Err(CatalogError::MissingColumn {
                    catalog: catalog.to_owned(),
                    column: w.clone(),
                    role: "columns_with_iterables".to_owned(),
                    columns: t.names(),
                });
            }
            Some(c) if c.kind != ColumnKind::List && c.codes.iter().any(|&x| x != NULL) => {
                let row = c.codes.iter().position(|&x| x != NULL).unwrap_or(0);
                return Err(CatalogError::Cell {
                    catalog: catalog.to_owned(),
                    row,
                    column: w.clone(),
                    detail:
                        "columns_with_iterables names it but its catalog_dict values are not lists"
                            .to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn read_catalog_file(
    name: &str,
    location: &Location,
    file: &str,
    options: &OpenOptions,
) -> Result<Table> {
    let resolved = if is_url(file) || Path::new(file).is_absolute() {
        file.to_owned()
    } else {
        match location {
            // intake-esm: `fs.exists(catalog_file)` first, i.e. relative to the working directory
            Location::Local(_) if Path::new(file).exists() => file.to_owned(),
            _ => location.join(file),
        }
    };
    let lower = resolved.to_ascii_lowercase();
    if lower.ends_with(".parquet") {
        let raw = read_capped(name, "the catalog file", &resolved, options)?;
        return table::read_parquet(name, &resolved, raw);
    }
    let gz = if lower.ends_with(".csv.gz") {
        true
    } else if lower.ends_with(".csv") {
        false
    } else {
        let detail = if lower.ends_with(".csv.bz2") {
            format!(
                "{file:?}: .csv.bz2 catalog files are not supported (use .csv, .csv.gz or .parquet)"
            )
        } else {
            format!("{file:?}: unsupported file type (expected .csv, .csv.gz or .parquet)")
        };
        return Err(CatalogError::Spec {
            catalog: name.to_owned(),
            field: "catalog_file".to_owned(),
            detail,
        });
    };
    let raw = read_capped(name, "the catalog file", &resolved, options)?;
    let src = CsvSource {
        catalog: name,
        file: &resolved,
    };
    // trust the bytes over the name: gzip magic means gzip
    let bytes = if gz || raw.starts_with(&[0x1f, 0x8b]) {
        // Decompress at most the cap plus one byte: a bomb stops at the cap.
        let raw_len = raw.len() as u64;
        let cap = options
            .max_bytes
            .min(raw_len.saturating_mul(MAX_GZIP_RATIO).max(GZIP_RATIO_FLOOR));
        let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(cap.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| CatalogError::Csv {
                catalog: name.to_owned(),
                file: resolved.clone(),
                line: 1,
                row: None,
                detail: format!("cannot decompress gzip: {e}"),
            })?;
        if out.len() as u64 > cap {
            return Err(CatalogError::Refused {
                catalog: name.to_owned(),
                what: "the catalog file",
                url: resolved.clone(),
                detail: format!(
                    "decompresses to more than {cap} bytes from {raw_len} (at most {MAX_GZIP_RATIO} times its compressed size past {GZIP_RATIO_FLOOR} bytes, and at most {} bytes: OpenOptions::max_bytes, gridflow: GRIDFLOW_LIMITS=catalog=SIZE); refusing it as a decompression bomb",
                    options.max_bytes
                ),
            });
        }
        out
    } else {
        raw
    };
    table::read_csv(&src, &bytes, &options.columns_with_iterables)
}

fn unique_of(c: &Column) -> Vec<String> {
    match c.kind {
        ColumnKind::List => {
            let mut seen: rustc_hash::FxHashSet<&str> = Default::default();
            let mut out = Vec::new();
            let mut code_seen = vec![false; c.dict.items.len()];
            for &code in &c.codes {
                if code == NULL || std::mem::replace(&mut code_seen[code as usize], true) {
                    continue;
                }
                for item in &c.dict.items[code as usize] {
                    if seen.insert(item) {
                        out.push(item.to_string());
                    }
                }
            }
            out
        }
        _ => {
            let mut seen = vec![false; c.dict.texts.len()];
            let mut out = Vec::new();
            for &code in &c.codes {
                if code != NULL && !std::mem::replace(&mut seen[code as usize], true) {
                    out.push(c.dict.texts[code as usize].to_string());
                }
            }
            out
        }
    }
}

fn nunique_of(c: &Column) -> usize {
    let has_null = c.codes.contains(&NULL);
    match c.kind {
        // polars explodes lists first: an empty list becomes a null
        ColumnKind::List => {
            let empty = c
                .codes
                .iter()
                .any(|&x| x != NULL && c.dict.items[x as usize].is_empty());
            unique_of(c).len() + usize::from(has_null || empty)
        }
        _ => {
            let mut seen = vec![false; c.dict.texts.len()];
            let mut n = 0;
            for &code in &c.codes {
                if code != NULL && !std::mem::replace(&mut seen[code as usize], true) {
                    n += 1;
                }
            }
            n + usize::from(has_null)
        }
    }
}
