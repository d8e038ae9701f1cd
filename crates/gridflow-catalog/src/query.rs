//! Searching a catalog, as intake-esm 2025.12.12's `search` does.
//!
//! For each queried column a row matches when its cell matches any of the column's values;
//! a row is kept when it matches every queried column. A value matches:
//!
//! * in a list column: when it equals one of the cell's items (no patterns);
//! * when it is a *pattern* — text containing `*`, `?`, `$` or `^` not preceded by `\` — as a
//!   regular expression **searched** anywhere in the cell text, case-sensitively (`(?i)`
//!   turns that off). Note `*` is a regex quantifier, not a glob: `r1*` matches every cell
//!   holding an `r`. A value such as `ta.` has no pattern character and is compared exactly.
//!   A pattern on a numeric column is an error (intake-esm fails on it too);
//! * [`QueryValue::Missing`]: when the cell is missing;
//! * otherwise, with its type, as pandas' `==` compares: a [`QueryValue::Text`] equals a text
//!   cell with the same text, a number ([`QueryValue::Int`], [`QueryValue::Float`]) a numeric
//!   cell with the same value (`1960` and `1960.0` are equal). Text never equals a number
//!   (nor does a number equal a list item): CSV columns are all text
//!   (intake-esm reads them so), so `1960.0` there is the text `"1960.0"`; Parquet and inline
//!   (`catalog_dict`) columns keep their numbers, so there it is the number `1960.0`.
//!
//! A query with no column returns no rows (as intake-esm). `require_all_on` then keeps only
//! the groups of rows (grouped by those columns) that hold every combination of the queried
//! values of the other columns, compared literally; the result lists the kept groups in
//! sorted order of their values.

use crate::catalog::EsmCatalog;
use crate::error::{CatalogError, Result};
use crate::table::{Column, ColumnKind, NULL};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

/// One value to look for.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    /// A text value or pattern (a Python `str` in an intake-esm query).
    Text(String),
    /// A whole number (a Python `int`): matches numeric cells of equal value only.
    Int(i64),
    /// A number with a fraction or exponent (a Python `float`): matches numeric cells of
    /// equal value only (`1960.0` equals `1960`).
    Float(f64),
    /// A missing cell (Python `None` / NaN in an intake-esm query).
    Missing,
}

impl QueryValue {
    /// The value as the Python value of an intake-esm query would print (`'tas'`, `1960.0`,
    /// `None`), for messages.
    pub fn python_repr(&self) -> String {
        match self {
            QueryValue::Text(t) => format!("{t:?}"),
            QueryValue::Int(i) => i.to_string(),
            QueryValue::Float(f) => crate::table::py_float(*f),
            QueryValue::Missing => "None".to_owned(),
        }
    }

    /// The value of a number (catalog numbers are f64 too: integers beyond 2^53 compare as
    /// their nearest f64); `None` for text and missing values.
    pub fn number(&self) -> Option<f64> {
        match self {
            QueryValue::Int(i) => Some(*i as f64),
            QueryValue::Float(f) => Some(*f),
            QueryValue::Text(_) | QueryValue::Missing => None,
        }
    }
}

impl From<f64> for QueryValue {
    fn from(n: f64) -> Self {
        QueryValue::Float(n)
    }
}

impl From<i64> for QueryValue {
    fn from(n: i64) -> Self {
        QueryValue::Int(n)
    }
}

impl From<i32> for QueryValue {
    fn from(n: i32) -> Self {
        QueryValue::Int(n.into())
    }
}

impl From<&str> for QueryValue {
    fn from(s: &str) -> Self {
        QueryValue::Text(s.to_owned())
    }
}

impl From<String> for QueryValue {
    fn from(s: String) -> Self {
        QueryValue::Text(s)
    }
}

impl From<&String> for QueryValue {
    fn from(s: &String) -> Self {
        QueryValue::Text(s.clone())
    }
}

impl From<Option<&str>> for QueryValue {
    fn from(s: Option<&str>) -> Self {
        s.map_or(QueryValue::Missing, QueryValue::from)
    }
}

/// A search: for each column, the values any of which a row must match, and optionally the
/// columns across which all combinations must be present (`require_all_on`).
///
/// ```
/// use gridflow_catalog::Query;
/// let q = Query::new()
///     .with("table_id", "Amon")
///     .with_any("variable_id", ["tas", "pr"])
///     .with("member_id", "^r1i1p1f[0-9]$")   // a pattern: contains ^ or $, * or ?
///     .require_all_on(["source_id"]);
/// assert_eq!(q.columns().count(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    terms: Vec<(String, Vec<QueryValue>)>,
    require_all_on: Vec<String>,
}

impl Query {
    /// An empty query (which matches no row, as in intake-esm).
    pub fn new() -> Query {
        Query::default()
    }

    /// Looks for one value in `column` (replacing what the query had for it).
    pub fn with(self, column: &str, value: impl Into<QueryValue>) -> Query {
        self.with_any(column, [value])
    }

    /// Looks for any of `values` in `column` (replacing what the query had for it).
    pub fn with_any<I, V>(mut self, column: &str, values: I) -> Query
    where
        I: IntoIterator<Item = V>,
        V: Into<QueryValue>,
    {
        let values: Vec<QueryValue> = values.into_iter().map(Into::into).collect();
        match self.terms.iter_mut().find(|(c, _)| c == column) {
            Some(t) => t.1 = values,
            None => self.terms.push((column.to_owned(), values)),
        }
        self
    }

    /// Sets the columns across which every combination of the other queried values must be
    /// present for a group to be kept.
    pub fn require_all_on<I, S>(mut self, columns: I) -> Query
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require_all_on = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Reads a query from a JSON object mapping columns to a value or a list of values
    /// (`null` is [`QueryValue::Missing`], numbers are [`QueryValue::Int`] or
    /// [`QueryValue::Float`], booleans the text Python prints for them).
    ///
    /// ```
    /// use gridflow_catalog::{Query, QueryValue};
    /// let q = Query::from_json(&serde_json::json!({"variable_id": ["tas", "pr"], "dcpp_init_year": null, "scode": 482}))?;
    /// assert_eq!(q.values("dcpp_init_year"), Some(&[QueryValue::Missing][..]));
    /// assert_eq!(q.values("scode"), Some(&[QueryValue::Int(482)][..]));
    /// # Ok::<(), gridflow_catalog::CatalogError>(())
    /// ```
    pub fn from_json(value: &Value) -> Result<Query> {
        let bad = |detail: String| CatalogError::Query {
            catalog: "(query)".to_owned(),
            column: String::new(),
            value: value.to_string(),
            detail,
        };
        let Value::Object(obj) = value else {
            return Err(bad(
                "a query must be a JSON object of column: value(s)".to_owned()
            ));
        };
        let mut q = Query::new();
        for (column, v) in obj {
            let one = |v: &Value| match v {
                Value::Null => Ok(QueryValue::Missing),
                Value::Number(n) => n
                    .as_i64()
                    .map(QueryValue::Int)
                    .or_else(|| n.as_f64().map(QueryValue::Float))
                    .ok_or_else(|| {
                        bad(format!(
                            "column {column:?}: {n} is not a representable number"
                        ))
                    }),
                Value::Array(_) | Value::Object(_) => Err(bad(format!(
                    "column {column:?}: values must be text, numbers or null"
                ))),
                other => Ok(QueryValue::Text(crate::table::scalar_text(other))),
            };
            let values = match v {
                Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>>>()?,
                other => vec![one(other)?],
            };
            q = q.with_any(column, values);
        }
        Ok(q)
    }

    /// The queried columns, in the order they were added.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|(c, _)| c.as_str())
    }

    /// The values queried for `column`.
    pub fn values(&self, column: &str) -> Option<&[QueryValue]> {
        self.terms
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| v.as_slice())
    }

    /// The `require_all_on` columns.
    pub fn required_columns(&self) -> &[String] {
        &self.require_all_on
    }
}

impl Query {
    /// Reads a query from command-line search terms, `COLUMN=VALUE[,VALUE...]` each (the
    /// syntax of `gridflow catalog search` and `gridflow eval --search`):
    ///
    /// * commas separate values, any of which may match; a comma inside a value is written
    ///   `\,` or the value is quoted, `'...'` or `"..."` (quotes keep everything literal,
    ///   spaces and commas included; `\'`/`\"` inside them is a quote);
    /// * values are read as the Python value of an intake-esm query would be: unquoted values
    ///   are trimmed; an unquoted `None` is a missing cell (Python's `None`), an unquoted
    ///   number (`1960`, `1960.0`, `-1.5e3`) a number, which matches numeric columns only
    ///   (Parquet and inline catalogs have them; CSV columns are text); anything quoted
    ///   (`'None'`, `'1960.0'`) is text;
    /// * a column given in several terms matches any of their values;
    /// * `require_all_on` columns as in [`Query::require_all_on`].
    ///
    /// ```
    /// use gridflow_catalog::{Query, QueryValue};
    /// let q = Query::from_terms(
    ///     &["member_id=r1i1p1f1,r2i1p1f1", "start_date='1900-01-01, 00:00:00'",
    ///       "member_id=r3i1p1f1", "dcpp_init_year=None", r"source_id=^C.{2\,3}$",
    ///       "scode=482,'484'"],
    ///     &["source_id"],
    /// )?;
    /// assert_eq!(q.values("member_id").map(<[_]>::len), Some(3));
    /// assert_eq!(q.values("scode"), Some(&[QueryValue::Int(482), QueryValue::from("484")][..]));
    /// assert_eq!(q.values("start_date"), Some(&[QueryValue::from("1900-01-01, 00:00:00")][..]));
    /// assert_eq!(q.values("dcpp_init_year"), Some(&[QueryValue::Missing][..]));
    /// assert_eq!(q.values("source_id"), Some(&[QueryValue::from("^C.{2,3}$")][..]));
    /// # Ok::<(), gridflow_catalog::CatalogError>(())
    /// ```
    pub fn from_terms<T: AsRef<str>, C: AsRef<str>>(
        terms: &[T],
        require_all_on: &[C],
    ) -> Result<Query> {
        let mut q = Query::new();
        for term in terms {
            let term = term.as_ref();
            let bad = |column: &str, detail: String| CatalogError::Query {
                catalog: "(search terms)".to_owned(),
                column: column.to_owned(),
                value: term.to_owned(),
                detail,
            };
            let Some((column, text)) = term.split_once('=') else {
                return Err(bad("", "expected COLUMN=VALUE[,VALUE...]".to_owned()));
            };
            let column = column.trim();
            if column.is_empty() {
                return Err(bad(column, "the column name is empty".to_owned()));
            }
            let values = split_values(text).map_err(|detail| bad(column, detail))?;
            if values.is_empty() {
                return Err(bad(
                    column,
                    "no value (to look for a missing cell, write None)".to_owned(),
                ));
            }
            for v in &values {
                if let QueryValue::Text(t) = v
                    && is_pattern(t)
                    && let Err(e) = regex::Regex::new(t)
                {
                    let hint = if text.contains(',') && !t.contains(',') {
                        " (a comma separates values: quote the value or write \\, to keep it in)"
                    } else {
                        ""
                    };
                    return Err(bad(
                        column,
                        format!("{t:?} is not a valid regular expression{hint}: {e}"),
                    ));
                }
            }
            match q.terms.iter_mut().find(|(c, _)| c == column) {
                Some((_, old)) => old.extend(values),
                None => q.terms.push((column.to_owned(), values)),
            }
        }
        Ok(q.require_all_on(require_all_on.iter().map(|c| c.as_ref().trim().to_owned())))
    }
}

/// Splits the values of one search term (see [`Query::from_terms`]).
fn split_values(text: &str) -> std::result::Result<Vec<QueryValue>, String> {
    let mut values = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '\'' || first == '"' {
            chars.next();
            let mut v = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&first) => {
                        v.push(first);
                        chars.next();
                    }
                    c if c == first => {
                        closed = true;
                        break;
                    }
                    c => v.push(c),
                }
            }
            if !closed {
                return Err(format!(
                    "the quote {first} opened before {v:?} is not closed"
                ));
            }
            values.push(QueryValue::Text(v));
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            match chars.next() {
                None | Some(',') => {}
                Some(c) => return Err(format!("{c:?} after a quoted value (expected a comma)")),
            }
        } else {
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&',') => {
                        v.push(',');
                        chars.next();
                    }
                    ',' => break,
                    c => v.push(c),
                }
            }
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            values.push(if v == "None" {
                QueryValue::Missing
            } else if let Some(n) = python_number(v) {
                n
            } else {
                QueryValue::Text(v.to_owned())
            });
        }
    }
    Ok(values)
}

/// The value of a Python int or float literal, optionally signed (`482`, `1960.0`, `.5`,
/// `-1e3`, `1_000`); `None` for anything else (`inf`, `nan`, `0x1f` stay text).
fn python_number(v: &str) -> Option<QueryValue> {
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let digits_ok = |s: &str| {
        // digits, with single underscores between digits (Python's grouping)
        !s.is_empty()
            && !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.chars().all(|c| c.is_ascii_digit() || c == '_')
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits_ok(mantissa),
        Some((int, frac)) => {
            (int.is_empty() || digits_ok(int))
                && (frac.is_empty() || digits_ok(frac))
                && !(int.is_empty() && frac.is_empty())
        }
    };
    let exponent_ok = exponent.is_none_or(|e| digits_ok(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    let plain = v.replace('_', "");
    if exponent.is_none() && !mantissa.contains('.') {
        // an int (one too big for i64 is kept as the nearest float, as catalogs hold them)
        return Some(match plain.parse::<i64>() {
            Ok(i) => QueryValue::Int(i),
            Err(_) => QueryValue::Float(plain.parse::<f64>().ok()?),
        });
    }
    plain.parse::<f64>().ok().map(QueryValue::Float)
}

/// intake-esm's `is_pattern`: a `*`, `?`, `$` or `^` that is not escaped with `\`.
pub fn is_pattern(value: &str) -> bool {
    let mut v = value.to_owned();
    for c in ['*', '?', '$', '^'] {
        v = v.replace(&format!("\\{c}"), "");
    }
    v.contains(['*', '?', '$', '^'])
}

impl EsmCatalog {
    /// A catalog holding the rows that match `query` (see the [module docs](crate::query)).
    ///
    /// Errors: a column (or `require_all_on` column) the catalog does not have — the message
    /// lists the columns —, a pattern that is not a valid regular expression, and a
    /// `require_all_on` that covers every queried column (intake-esm fails on it too).
    pub fn search(&self, query: &Query) -> Result<EsmCatalog> {
        let columns = self.columns();
        for c in query
            .columns()
            .chain(query.require_all_on.iter().map(String::as_str))
        {
            if self.column(c).is_none() {
                return Err(CatalogError::UnknownColumn {
                    catalog: self.name.clone(),
                    column: c.to_owned(),
                    columns,
                });
            }
        }
        let requested = self.requested_for(query);
        if query.terms.is_empty() {
            return Ok(self.subset(&[], requested));
        }
        let mut keep = vec![true; self.len()];
        for (column, values) in &query.terms {
            let Some(col) = self.column(column) else {
                continue;
            };
            let (hits, null_hit) = self.matching_codes(col, values)?;
            for (k, &code) in keep.iter_mut().zip(&col.codes) {
                if *k {
                    *k = if code == NULL {
                        null_hit
                    } else {
                        hits[code as usize]
                    };
                }
            }
        }
        let mut rows: Vec<usize> = (0..self.len()).filter(|&r| keep[r]).collect();
        if !query.require_all_on.is_empty() && !rows.is_empty() {
            rows = self.apply_require_all_on(query, &rows)?;
        }
        Ok(self.subset(&rows, requested))
    }

    /// Values of `query` that cannot match their column because of their type — a number
    /// in a text or list column, number-like text in a numeric column —, one sentence each.
    /// intake-esm returns no rows for them without a word; a caller may want to say why.
    ///
    /// ```
    /// use gridflow_catalog::{EsmCatalog, Query};
    /// let cat = EsmCatalog::from_json_str(r#"{"esmcat_version": "0.1.0", "id": "c",
    ///   "attributes": [], "assets": {"column_name": "path", "format": "zarr"},
    ///   "catalog_dict": [{"year": 1960, "member": "5", "path": "a.zarr"}]}"#, None)?;
    /// let q = Query::from_terms(&["member=5", "year='1960'"], &[] as &[&str])?;
    /// assert_eq!(cat.search(&q)?.len(), 0);
    /// assert_eq!(cat.type_mismatches(&q).len(), 2);
    /// # Ok::<(), gridflow_catalog::CatalogError>(())
    /// ```
    pub fn type_mismatches(&self, query: &Query) -> Vec<String> {
        let mut out = Vec::new();
        for (column, values) in &query.terms {
            let Some(col) = self.column(column) else {
                continue;
            };
            let numeric = matches!(col.kind, ColumnKind::Integer | ColumnKind::Float);
            for v in values {
                match v {
                    QueryValue::Int(_) | QueryValue::Float(_) if !numeric => {
                        let t = v.python_repr();
                        out.push(format!(
                            "{column} holds text, so the number {t} matches no cell (as in intake-esm); to look for the text, quote the value, in a shell \"{column}='{t}'\""
                        ));
                    }
                    QueryValue::Text(t)
                        if numeric && !is_pattern(t) && python_number(t).is_some() =>
                    {
                        out.push(format!(
                            "{column} holds numbers, so the text {t:?} matches no cell (as in intake-esm); to look for the number, leave it unquoted: {column}={t}"
                        ));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// For each distinct cell of `col`, whether it matches any of `values`; and whether a
    /// missing cell does.
    fn matching_codes(&self, col: &Column, values: &[QueryValue]) -> Result<(Vec<bool>, bool)> {
        let n = col.dict.texts.len();
        let mut hits = vec![false; n];
        let mut null_hit = false;
        for v in values {
            let text = match v {
                QueryValue::Missing => {
                    null_hit = true;
                    continue;
                }
                QueryValue::Int(_) | QueryValue::Float(_) => {
                    // pandas' `==`: a number equals numeric cells only (never text nor lists)
                    if let Some(n) = v.number()
                        && matches!(col.kind, ColumnKind::Integer | ColumnKind::Float)
                    {
                        for (h, &x) in hits.iter_mut().zip(&col.dict.numbers) {
                            *h = *h || x == n;
                        }
                    }
                    continue;
                }
                QueryValue::Text(t) => t,
            };
            if matches!(col.kind, ColumnKind::Integer | ColumnKind::Float) {
                if is_pattern(text) {
                    return Err(CatalogError::Query {
                        catalog: self.name.clone(),
                        column: col.name.clone(),
                        value: text.clone(),
                        detail: "the column holds numbers, and patterns (regular expressions) search text columns only (intake-esm fails here too); look for a number, e.g. 1960.0".to_owned(),
                    });
                }
                // text never equals a number
                continue;
            }
            if col.kind == ColumnKind::List {
                for (h, items) in hits.iter_mut().zip(&col.dict.items) {
                    *h = *h || items.iter().any(|i| **i == **text);
                }
            } else if is_pattern(text) {
                let re = regex::Regex::new(text).map_err(|e| CatalogError::Query {
                    catalog: self.name.clone(),
                    column: col.name.clone(),
                    value: text.clone(),
                    detail: format!("invalid regular expression: {e}"),
                })?;
                for (h, t) in hits.iter_mut().zip(&col.dict.texts) {
                    *h = *h || re.is_match(t);
                }
            } else {
                for (h, t) in hits.iter_mut().zip(&col.dict.texts) {
                    *h = *h || **t == **text;
                }
            }
        }
        Ok((hits, null_hit))
    }

    /// intake-esm's `_requested_variables`: the queried values of the variable column when
    /// that column holds lists, else none.
    fn requested_for(&self, query: &Query) -> Vec<String> {
        let Some(ac) = &self.spec.aggregation_control else {
            return Vec::new();
        };
        if self.column_kind(&ac.variable_column_name) != Some(ColumnKind::List) {
            return Vec::new();
        }
        let mut out: Vec<String> = query
            .values(&ac.variable_column_name)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match v {
                QueryValue::Text(t) => Some(t.clone()),
                QueryValue::Int(_) | QueryValue::Float(_) | QueryValue::Missing => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn apply_require_all_on(&self, query: &Query, rows: &[usize]) -> Result<Vec<usize>> {
        let group_cols: Vec<&Column> = query
            .require_all_on
            .iter()
            .filter_map(|c| self.column(c))
            .collect();
        let rest: Vec<(&Column, &[QueryValue])> = query
            .terms
            .iter()
            .filter(|(c, _)| !query.require_all_on.contains(c))
            .filter_map(|(c, v)| self.column(c).map(|col| (col, v.as_slice())))
            .collect();
        if rest.is_empty() {
            let (column, value) = query
                .terms
                .first()
                .map(|(c, v)| (c.clone(), format!("{v:?}")))
                .unwrap_or_default();
            return Err(CatalogError::Query {
                catalog: self.name.clone(),
                column,
                value,
                detail: format!(
                    "require_all_on {:?} covers every queried column, so nothing is left to require (intake-esm 2025.12.12 fails here too)",
                    query.require_all_on
                ),
            });
        }
        // every combination of the queried values (compared literally, as intake-esm does)
        let mut condition: Vec<Vec<Key<'_>>> = vec![Vec::new()];
        for (_, values) in &rest {
            let mut next = Vec::with_capacity(condition.len() * values.len());
            for prefix in &condition {
                for v in *values {
                    let mut t = prefix.clone();
                    t.push(Key::of_query(v));
                    next.push(t);
                }
            }
            condition = next;
        }
        condition.sort();
        condition.dedup();
        // groups by the require_all_on values (rows with a missing one are dropped, as pandas)
        let mut index: FxHashMap<Vec<u32>, usize> = FxHashMap::default();
        let mut groups: Vec<(Vec<u32>, Vec<usize>)> = Vec::new();
        for &r in rows {
            let key: Vec<u32> = group_cols.iter().map(|c| c.codes[r]).collect();
            if key.contains(&NULL) {
                continue;
            }
            match index.get(&key) {
                Some(&g) => groups[g].1.push(r),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, vec![r]));
                }
            }
        }
        let ranks: Vec<Vec<u32>> = group_cols.iter().map(|c| c.ranks()).collect();
        groups.sort_by_cached_key(|(codes, _)| {
            codes
                .iter()
                .zip(&ranks)
                .map(|(&c, r)| r[c as usize])
                .collect::<Vec<u32>>()
        });
        let mut out = Vec::new();
        for (_, group_rows) in groups {
            let mut present: FxHashSet<Vec<Key<'_>>> = FxHashSet::default();
            for &r in &group_rows {
                // list cells are unpacked: each item makes its own combination
                let mut combos: Vec<Vec<Key<'_>>> = vec![Vec::new()];
                for (col, _) in &rest {
                    let code = col.codes[r];
                    let options: Vec<Key<'_>> = if code == NULL {
                        vec![Key::Missing]
                    } else {
                        match col.kind {
                            ColumnKind::List => col.dict.items[code as usize]
                                .iter()
                                .map(|s| Key::Text(s))
                                .collect(),
                            ColumnKind::Integer | ColumnKind::Float => {
                                vec![Key::number(col.dict.numbers[code as usize])]
                            }
                            ColumnKind::Text => vec![Key::Text(&col.dict.texts[code as usize])],
                        }
                    };
                    combos = combos
                        .iter()
                        .flat_map(|p| {
                            options.iter().map(move |o| {
                                let mut t = p.clone();
                                t.push(*o);
                                t
                            })
                        })
                        .collect();
                }
                present.extend(combos);
            }
            if condition.iter().all(|c| present.contains(c)) {
                out.extend(group_rows);
            }
        }
        Ok(out)
    }
}

/// A queried value or a cell, compared as Python compares them in a set of tuples: text with
/// text, numbers by value (`1 == 1.0`), never text with a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key<'a> {
    Missing,
    Text(&'a str),
    /// The bits of the f64 value (with -0.0 as 0.0, so that equal values are equal keys).
    Number(u64),
}

impl<'a> Key<'a> {
    fn number(n: f64) -> Key<'a> {
        Key::Number(if n == 0.0 { 0.0f64 } else { n }.to_bits())
    }

    fn of_query(v: &'a QueryValue) -> Key<'a> {
        match v {
            QueryValue::Text(s) => Key::Text(s),
            QueryValue::Int(_) | QueryValue::Float(_) => {
                Key::number(v.number().unwrap_or(f64::NAN))
            }
            QueryValue::Missing => Key::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_detected_as_intake_esm_does() {
        assert!(is_pattern("r1*"));
        assert!(is_pattern("^tas"));
        assert!(is_pattern("tas$"));
        assert!(is_pattern("ta?s"));
        assert!(!is_pattern("ta.s"));
        assert!(!is_pattern("tas"));
        assert!(!is_pattern(r"a\*b"));
        assert!(is_pattern(r"a\*b*"));
    }

    #[test]
    fn python_number_literals() {
        assert_eq!(python_number("482"), Some(QueryValue::Int(482)));
        assert_eq!(python_number("-1_000"), Some(QueryValue::Int(-1000)));
        for (t, n) in [
            ("1960.0", 1960.0),
            ("-1.5e3", -1500.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
        ] {
            assert_eq!(python_number(t), Some(QueryValue::Float(n)), "{t}");
        }
        assert_eq!(
            python_number("99999999999999999999"),
            Some(QueryValue::Float(1e20))
        );
        for t in [
            "", ".", "-", "1e", "1_", "1__0", "inf", "nan", "0x1f", "1960-01", "r1", "1.2.3",
        ] {
            assert_eq!(python_number(t), None, "{t}");
        }
    }

    #[test]
    fn builder_replaces_and_reads_json() {
        let q = Query::new()
            .with("a", "x")
            .with_any("a", ["y", "z"])
            .with("b", None::<&str>)
            .with_any("n", [1960.0]);
        assert_eq!(q.values("n"), Some(&[QueryValue::Float(1960.0)][..]));
        let q = q.with("n", 1960);
        assert_eq!(
            q.values("a"),
            Some(&[QueryValue::from("y"), QueryValue::from("z")][..])
        );
        assert_eq!(q.values("b"), Some(&[QueryValue::Missing][..]));
        let j =
            Query::from_json(&serde_json::json!({"a": ["y", "z"], "b": null, "n": 1960})).unwrap();
        assert_eq!(j.values("a"), q.values("a"));
        assert_eq!(j.values("n"), Some(&[QueryValue::Int(1960)][..]));
        assert_eq!(j.values("n"), q.values("n"));
        assert!(Query::from_json(&serde_json::json!(["a"])).is_err());
        assert!(Query::from_json(&serde_json::json!({"a": [["x"]]})).is_err());
    }
}
