//! The catalog table: dictionary-encoded columns (each distinct cell stored once, rows hold
//! codes), read from a CSV file or an inline `catalog_dict`.
//!
//! Cells follow intake-esm 2025.12.12, which reads CSVs with polars and `infer_schema=False`:
//! every CSV cell is text; an empty unquoted field is missing, a quoted empty field (`""`)
//! is the empty string; rows with fewer fields than the header are padded with missing cells,
//! rows with more are an error. `catalog_dict` values keep their JSON type: numbers make
//! numeric columns (sorted numerically in keys), lists make list columns.

use crate::error::{CatalogError, Result};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

/// Code of a missing cell.
pub(crate) const NULL: u32 = u32::MAX;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColumnKind {
    /// Text (every CSV column that is not a list column).
    Text,
    /// Whole numbers (only from `catalog_dict`).
    Integer,
    /// Numbers with fractions (only from `catalog_dict`).
    Float,
    /// Lists of values (CSV `columns_with_iterables`, or JSON arrays in `catalog_dict`).
    List,
}

/// The distinct cells of one column, indexed by code.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    /// Display text of each distinct cell (list items joined with `,`).
    pub texts: Vec<Box<str>>,
    /// List items of each distinct cell (list columns only).
    pub items: Vec<Vec<Box<str>>>,
    /// Numeric value of each distinct cell (numeric columns only).
    pub numbers: Vec<f64>,
}

/// One column: a name, a kind, shared distinct cells and one code per row.
#[derive(Clone, Debug)]
pub(crate) struct Column {
    pub name: String,
    pub kind: ColumnKind,
    pub dict: Arc<Dict>,
    pub codes: Vec<u32>,
}

impl Column {
    /// Text of the cell at `row` (`None` when missing).
    pub fn text(&self, row: usize) -> Option<&str> {
        match self.codes.get(row) {
            Some(&c) if c != NULL => self.dict.texts.get(c as usize).map(|s| &**s),
            _ => None,
        }
    }

    /// Orders two non-missing codes as pandas sorts the column's values.
    pub fn cmp_codes(&self, a: u32, b: u32) -> Ordering {
        match (a == NULL, b == NULL) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            _ => {}
        }
        match self.kind {
            ColumnKind::Integer | ColumnKind::Float => {
                self.dict.numbers[a as usize].total_cmp(&self.dict.numbers[b as usize])
            }
            _ => self.dict.texts[a as usize].cmp(&self.dict.texts[b as usize]),
        }
    }

    /// The sort rank of each distinct cell (equal values share a rank), so that rows can be
    /// ordered by comparing integers.
    pub fn ranks(&self) -> Vec<u32> {
        let n = self.dict.texts.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&a, &b| self.cmp_codes(a, b));
        let mut ranks = vec![0u32; n];
        let mut rank = 0u32;
        for (i, &code) in order.iter().enumerate() {
            if i > 0 && self.cmp_codes(order[i - 1], code).is_ne() {
                rank += 1;
            }
            ranks[code as usize] = rank;
        }
        ranks
    }

    /// The same column restricted to `rows` (distinct cells are shared, not copied).
    pub fn subset(&self, rows: &[usize]) -> Column {
        Column {
            name: self.name.clone(),
            kind: self.kind,
            dict: Arc::clone(&self.dict),
            codes: rows.iter().map(|&r| self.codes[r]).collect(),
        }
    }
}

/// The whole table.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    pub columns: Vec<Column>,
    pub rows: usize,
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    pub fn subset(&self, rows: &[usize]) -> Table {
        Table {
            columns: self.columns.iter().map(|c| c.subset(rows)).collect(),
            rows: rows.len(),
        }
    }
}

/// Interns cells of one column while reading.
#[derive(Default)]
struct Interner {
    map: FxHashMap<Box<str>, u32>,
    codes: Vec<u32>,
}

impl Interner {
    fn push(&mut self, cell: Option<&str>) {
        let code = match cell {
            None => NULL,
            Some(s) => match self.map.get(s) {
                Some(&c) => c,
                None => {
                    let c = self.map.len() as u32;
                    self.map.insert(s.into(), c);
                    c
                }
            },
        };
        self.codes.push(code);
    }

    /// The distinct cells in code order.
    fn into_parts(self) -> (Vec<Box<str>>, Vec<u32>) {
        let mut texts: Vec<Option<Box<str>>> = vec![None; self.map.len()];
        for (s, c) in self.map {
            texts[c as usize] = Some(s);
        }
        (
            texts.into_iter().map(Option::unwrap_or_default).collect(),
            self.codes,
        )
    }
}

/// Where a CSV comes from, for error messages.
pub(crate) struct CsvSource<'a> {
    pub catalog: &'a str,
    pub file: &'a str,
}

impl CsvSource<'_> {
    fn err(&self, line: usize, row: Option<usize>, detail: impl Into<String>) -> CatalogError {
        CatalogError::Csv {
            catalog: self.catalog.to_owned(),
            file: self.file.to_owned(),
            line,
            row,
            detail: detail.into(),
        }
    }
}

/// A minimal RFC 4180 reader over UTF-8 text that keeps line numbers and tells a missing
/// field (empty, unquoted) from an empty string (`""`).
struct CsvReader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> CsvReader<'a> {
    /// Reads the next record into `fields`; returns the line it started on, or `None` at the
    /// end. Blank lines are skipped.
    fn next_record(
        &mut self,
        fields: &mut Vec<Option<Cow<'a, str>>>,
    ) -> std::result::Result<Option<usize>, (usize, String)> {
        let bytes = self.text.as_bytes();
        fields.clear();
        // skip blank lines
        loop {
            if self.pos >= bytes.len() {
                return Ok(None);
            }
            match bytes[self.pos] {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                b'\r' if bytes.get(self.pos + 1) == Some(&b'\n') => {
                    self.pos += 2;
                    self.line += 1;
                }
                _ => break,
            }
        }
        let start_line = self.line;
        loop {
            if bytes.get(self.pos) == Some(&b'"') {
                let quote_line = self.line;
                let mut i = self.pos + 1;
                let mut owned: Option<String> = None;
                let mut seg_start = i;
                loop {
                    match memchr_quote_or_newline(bytes, i) {
                        None => {
                            return Err((
                                quote_line,
                                "unterminated quoted field (a '\"' opens it and nothing closes it)"
                                    .to_owned(),
                            ));
                        }
                        Some(j) if bytes[j] == b'\n' => {
                            self.line += 1;
                            i = j + 1;
                        }
                        Some(j) => {
                            if bytes.get(j + 1) == Some(&b'"') {
                                // doubled quote: an escaped '"'
                                let o = owned.get_or_insert_with(String::new);
                                o.push_str(&self.text[seg_start..=j]);
                                i = j + 2;
                                seg_start = i;
                            } else {
                                let tail = &self.text[seg_start..j];
                                let value = match owned {
                                    Some(mut o) => {
                                        o.push_str(tail);
                                        Cow::Owned(o)
                                    }
                                    None => Cow::Borrowed(tail),
                                };
                                fields.push(Some(value));
                                self.pos = j + 1;
                                break;
                            }
                        }
                    }
                }
                match bytes.get(self.pos) {
                    None => return Ok(Some(start_line)),
                    Some(b',') => self.pos += 1,
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                        return Ok(Some(start_line));
                    }
                    Some(b'\r') if bytes.get(self.pos + 1) == Some(&b'\n') => {
                        self.pos += 2;
                        self.line += 1;
                        return Ok(Some(start_line));
                    }
                    Some(_) => {
                        return Err((
                            self.line,
                            "unexpected character after a closing quote".to_owned(),
                        ));
                    }
                }
            } else {
                let start = self.pos;
                let mut end = start;
                while end < bytes.len() && !matches!(bytes[end], b',' | b'\n' | b'\r') {
                    end += 1;
                }
                let field = &self.text[start..end];
                fields.push((!field.is_empty()).then_some(Cow::Borrowed(field)));
                self.pos = end;
                match bytes.get(end) {
                    None => return Ok(Some(start_line)),
                    Some(b',') => self.pos += 1,
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                        return Ok(Some(start_line));
                    }
                    Some(_) => {
                        // '\r': end of record when followed by '\n', else part of nothing
                        self.pos += if bytes.get(end + 1) == Some(&b'\n') {
                            2
                        } else {
                            1
                        };
                        self.line += 1;
                        return Ok(Some(start_line));
                    }
                }
            }
        }
    }
}

fn memchr_quote_or_newline(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from.min(bytes.len())..]
        .iter()
        .position(|&b| b == b'"' || b == b'\n')
        .map(|p| p + from)
}

/// Reads CSV bytes (already decompressed). `list_columns` are parsed as intake-esm's
/// `columns_with_iterables` (`"['a', 'b']"`, tuples and sets too).
pub(crate) fn read_csv(
    src: &CsvSource<'_>,
    bytes: &[u8],
    list_columns: &[String],
) -> Result<Table> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        src.err(line, None, format!("not UTF-8 text: {e}"))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = CsvReader {
        text,
        pos: 0,
        line: 1,
    };
    let mut fields = Vec::new();
    let header_line = reader
        .next_record(&mut fields)
        .map_err(|(line, d)| src.err(line, None, d))?
        .ok_or_else(|| src.err(1, None, "the file is empty (no header row)"))?;
    let mut names: Vec<String> = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let name = f.as_deref().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(src.err(
                header_line,
                None,
                format!("header column {} has no name", i + 1),
            ));
        }
        if names.contains(&name) {
            return Err(src.err(header_line, None, format!("duplicate column name {name:?}")));
        }
        names.push(name);
    }
    for l in list_columns {
        if !names.contains(l) {
            return Err(CatalogError::MissingColumn {
                catalog: src.catalog.to_owned(),
                column: l.clone(),
                role: "columns_with_iterables".to_owned(),
                columns: names.clone(),
            });
        }
    }
    let mut interners: Vec<Interner> = names.iter().map(|_| Interner::default()).collect();
    let mut rows = 0usize;
    loop {
        let line = match reader.next_record(&mut fields) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err((line, d)) => return Err(src.err(line, Some(rows), d)),
        };
        if fields.len() > names.len() {
            return Err(src.err(
                line,
                Some(rows),
                format!(
                    "found {} fields, the header has {} columns ({})",
                    fields.len(),
                    names.len(),
                    names.join(",")
                ),
            ));
        }
        for (i, interner) in interners.iter_mut().enumerate() {
            interner.push(fields.get(i).and_then(|f| f.as_deref()));
        }
        rows += 1;
    }
    let mut columns = Vec::with_capacity(names.len());
    for (name, interner) in names.into_iter().zip(interners) {
        let (texts, codes) = interner.into_parts();
        let column = if list_columns.contains(&name) {
            let mut dict = Dict::default();
            for (code, raw) in texts.iter().enumerate() {
                let items = parse_list_cell(raw).map_err(|detail| {
                    let row = codes.iter().position(|&c| c as usize == code).unwrap_or(0);
                    CatalogError::Cell {
                        catalog: src.catalog.to_owned(),
                        row,
                        column: name.clone(),
                        detail: format!("cannot read a list from {raw:?}: {detail}"),
                    }
                })?;
                dict.texts.push(items.join(",").into());
                dict.items.push(items);
            }
            Column {
                name,
                kind: ColumnKind::List,
                dict: Arc::new(dict),
                codes,
            }
        } else {
            Column {
                name,
                kind: ColumnKind::Text,
                dict: Arc::new(Dict {
                    texts,
                    ..Dict::default()
                }),
                codes,
            }
        };
        columns.push(column);
    }
    Ok(Table { columns, rows })
}

/// Reads a list cell the way intake-esm's polars reader does: the first and last characters
/// become `[` and `]` (so tuples and sets read as lists), a trailing `,` before `]` goes,
/// single quotes become double quotes, and the result is read as JSON.
fn parse_list_cell(raw: &str) -> std::result::Result<Vec<Box<str>>, String> {
    let mut chars = raw.chars();
    let (Some(_), Some(_)) = (chars.next(), chars.next_back()) else {
        return Err("too short for a list".to_owned());
    };
    let mut s = format!("[{}]", chars.as_str());
    if s.ends_with(",]") {
        s.replace_range(s.len() - 2.., "]");
    }
    let s = s.replace('\'', "\"");
    let value: Value = serde_json::from_str(&s).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Err("not a list".to_owned());
    };
    Ok(items.iter().map(|v| scalar_text(v).into()).collect())
}

/// Text of a JSON scalar as Python's `str()` shows it.
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A float as Python's `str()` shows it (`1960.0`, `0.5`).
pub(crate) fn py_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else if f.is_nan() {
        "nan".to_owned()
    } else {
        format!("{f:?}")
    }
}

/// Reads a Parquet catalog file (as pandas writes it): its rows become the objects of an
/// inline catalog, so lists are list columns, nulls and NaN are missing cells, and numbers
/// keep their type, as in intake-esm's `pd.read_parquet`.
pub(crate) fn read_parquet(catalog: &str, file: &str, raw: Vec<u8>) -> Result<Table> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bad = |detail: String| CatalogError::Csv {
        catalog: catalog.to_owned(),
        file: file.to_owned(),
        line: 0,
        row: None,
        detail: format!("not a readable Parquet file: {detail}"),
    };
    let reader =
        SerializedFileReader::new(bytes::Bytes::from(raw)).map_err(|e| bad(e.to_string()))?;
    let n = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut rows = Vec::with_capacity(n);
    for row in reader.get_row_iter(None).map_err(|e| bad(e.to_string()))? {
        let row = row.map_err(|e| bad(e.to_string()))?;
        rows.push(row.to_json_value());
    }
    read_dict(catalog, &rows)
}

/// Reads an inline `catalog_dict` (a list of objects; columns in first-appearance order).
pub(crate) fn read_dict(catalog: &str, rows: &[Value]) -> Result<Table> {
    let mut names: Vec<String> = Vec::new();
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(obj) = row else {
            return Err(CatalogError::Spec {
                catalog: catalog.to_owned(),
                field: format!("catalog_dict[{i}]"),
                detail: "expected an object mapping column names to values".to_owned(),
            });
        };
        for k in obj.keys() {
            if !index.contains_key(k.as_str()) {
                index.insert(k.as_str(), names.len());
                names.push(k.clone());
            }
        }
    }
    let mut columns = Vec::with_capacity(names.len());
    for name in &names {
        let cells: Vec<&Value> = rows
            .iter()
            .map(|r| r.get(name).unwrap_or(&Value::Null))
            .collect();
        columns.push(dict_column(catalog, name, &cells)?);
    }
    Ok(Table {
        columns,
        rows: rows.len(),
    })
}

fn dict_column(catalog: &str, name: &str, cells: &[&Value]) -> Result<Column> {
    let non_null = || cells.iter().filter(|v| !v.is_null());
    let any_list = non_null().any(|v| v.is_array());
    if any_list && let Some(row) = cells.iter().position(|v| !v.is_null() && !v.is_array()) {
        return Err(CatalogError::Cell {
            catalog: catalog.to_owned(),
            row,
            column: name.to_owned(),
            detail: "this column holds lists in other rows but a single value here".to_owned(),
        });
    }
    let all_numbers = non_null().count() > 0 && non_null().all(|v| v.is_number());
    let integers = all_numbers && non_null().all(|v| v.is_i64() || v.is_u64());
    let kind = if any_list {
        ColumnKind::List
    } else if integers {
        ColumnKind::Integer
    } else if all_numbers {
        ColumnKind::Float
    } else {
        ColumnKind::Text
    };
    let mut map: FxHashMap<String, u32> = FxHashMap::default();
    let mut dict = Dict::default();
    let mut codes = Vec::with_capacity(cells.len());
    for v in cells {
        if v.is_null() {
            codes.push(NULL);
            continue;
        }
        let (dedup, text, items) = match (kind, v) {
            (ColumnKind::List, Value::Array(a)) => {
                let items: Vec<Box<str>> = a.iter().map(|x| scalar_text(x).into()).collect();
                (v.to_string(), items.join(","), items)
            }
            (ColumnKind::Float, Value::Number(n)) => {
                let t = py_float(n.as_f64().unwrap_or(f64::NAN));
                (t.clone(), t, Vec::new())
            }
            _ => {
                let t = scalar_text(v);
                (t.clone(), t, Vec::new())
            }
        };
        let code = match map.get(&dedup) {
            Some(&c) => c,
            None => {
                let c = dict.texts.len() as u32;
                map.insert(dedup, c);
                if matches!(kind, ColumnKind::Integer | ColumnKind::Float) {
                    dict.numbers.push(v.as_f64().unwrap_or(f64::NAN));
                }
                dict.texts.push(text.into());
                if kind == ColumnKind::List {
                    dict.items.push(items);
                }
                c
            }
        };
        codes.push(code);
    }
    Ok(Column {
        name: name.to_owned(),
        kind,
        dict: Arc::new(dict),
        codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str, lists: &[&str]) -> Result<Table> {
        let lists: Vec<String> = lists.iter().map(|s| s.to_string()).collect();
        read_csv(
            &CsvSource {
                catalog: "c.json",
                file: "c.csv",
            },
            text.as_bytes(),
            &lists,
        )
    }

    #[test]
    fn reads_quotes_missing_and_empty_cells() {
        let t = csv(
            "a,b,c\r\n\"\",x,\n\"q\"\"z\",,\"multi\nline\"\n\n4,5\n",
            &[],
        )
        .unwrap();
        assert_eq!(t.rows, 3);
        assert_eq!(t.columns[0].text(0), Some(""));
        assert_eq!(t.columns[1].text(0), Some("x"));
        assert_eq!(t.columns[2].text(0), None);
        assert_eq!(t.columns[0].text(1), Some("q\"z"));
        assert_eq!(t.columns[1].text(1), None);
        assert_eq!(t.columns[2].text(1), Some("multi\nline"));
        // fewer fields than the header: padded with missing cells, as polars does
        assert_eq!(t.columns[2].text(2), None);
        assert_eq!(t.columns[0].text(2), Some("4"));
    }

    #[test]
    fn malformed_rows_name_line_and_row() {
        let e = csv("a,b\n1,2\n3,4,5\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains("c.csv, line 3 (row 1)") && e.contains("found 3 fields"),
            "{e}"
        );
        let e = csv("a,b\n1,2\n\"3,4\n5,6\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains("line 3 (row 1)") && e.contains("unterminated"),
            "{e}"
        );
        let e = csv("a,a\n1,2\n", &[]).unwrap_err().to_string();
        assert!(e.contains("duplicate column name"), "{e}");
        let e = csv("", &[]).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn list_cells_read_like_intake_esm() {
        let t = csv("v\n\"['tas', 'pr']\"\n\"('a',)\"\n{'b'}\n", &["v"]).unwrap();
        let c = &t.columns[0];
        assert_eq!(c.kind, ColumnKind::List);
        assert_eq!(c.text(0), Some("tas,pr"));
        assert_eq!(c.text(1), Some("a"));
        assert_eq!(c.text(2), Some("b"));
        let e = csv("v\n\"['tas', pr]\"\n", &["v"]).unwrap_err().to_string();
        assert!(
            e.contains("row 0") && e.contains("\"v\"") && e.contains("cannot read a list"),
            "{e}"
        );
        let e = csv("v\n1\n", &["w"]).unwrap_err().to_string();
        assert!(
            e.contains("columns_with_iterables") && e.contains("\"w\""),
            "{e}"
        );
    }

    #[test]
    fn catalog_dict_keeps_types() {
        let rows: Vec<Value> = serde_json::from_str(
            r#"[{"m": "a", "y": 10, "f": 1.5, "v": ["x", "y"]}, {"m": "b", "y": 9, "f": 2, "v": []}, {"y": null}]"#,
        )
        .unwrap();
        let t = read_dict("c.json", &rows).unwrap();
        let kinds: Vec<ColumnKind> = t.columns.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ColumnKind::Text,
                ColumnKind::Integer,
                ColumnKind::Float,
                ColumnKind::List
            ]
        );
        assert_eq!(t.columns[1].text(1), Some("9"));
        assert_eq!(t.columns[2].text(1), Some("2.0"));
        assert_eq!(t.columns[3].text(0), Some("x,y"));
        assert_eq!(t.columns[0].text(2), None);
        // numeric order, not text order
        assert_eq!(
            t.columns[1].cmp_codes(t.columns[1].codes[1], t.columns[1].codes[0]),
            Ordering::Less
        );
    }
}
