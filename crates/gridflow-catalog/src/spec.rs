//! The ESM collection spec (the catalog JSON), as intake-esm 2025.12.12 validates it.

use crate::error::{CatalogError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most `join_new` aggregations (distinct columns) a catalog may declare: each adds a
/// dimension, and NumPy (so xarray) arrays have at most 64.
const MAX_JOIN_NEW: usize = 64;

/// The catalog JSON without its rows (`catalog_dict` is read into the table).
///
/// Required: `esmcat_version`, `attributes`, `assets`; everything else is optional. Unknown
/// fields are ignored, as intake-esm does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    /// Version of the ESM collection spec (`"0.1.0"`).
    pub esmcat_version: String,
    /// Catalog id (may be empty).
    #[serde(default)]
    pub id: String,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub title: Option<String>,
    /// As written in the JSON (not parsed).
    pub last_updated: Option<String>,
    /// The attribute columns. Names that are not table columns are tolerated (Pangeo's real
    /// catalog lists `dcpp_start_year`, its CSV has `dcpp_init_year`); see
    /// [`crate::EsmCatalog::warnings`].
    pub attributes: Vec<Attribute>,
    /// Where the asset paths and their format are.
    pub assets: Assets,
    /// How assets are grouped and combined into datasets.
    pub aggregation_control: Option<AggregationControl>,
    /// The CSV (`.csv` or `.csv.gz`) holding the rows, as written in the JSON.
    pub catalog_file: Option<String>,
}

/// One attribute column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// The column name.
    pub column_name: String,
    /// A URL of its controlled vocabulary (may be empty).
    #[serde(default)]
    pub vocabulary: String,
}

/// The asset column and the data format: exactly one of `format` and `format_column_name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assets {
    /// The column holding asset paths or URLs.
    pub column_name: String,
    /// One format for every asset.
    pub format: Option<DataFormat>,
    /// A column holding each asset's format.
    pub format_column_name: Option<String>,
}

/// The data formats intake-esm knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// netCDF files.
    Netcdf,
    /// Zarr stores (any version).
    Zarr,
    /// Zarr v2 stores.
    Zarr2,
    /// Zarr v3 stores.
    Zarr3,
    /// Kerchunk references.
    Reference,
    /// OPeNDAP URLs.
    Opendap,
}

impl DataFormat {
    /// The name as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Netcdf => "netcdf",
            DataFormat::Zarr => "zarr",
            DataFormat::Zarr2 => "zarr2",
            DataFormat::Zarr3 => "zarr3",
            DataFormat::Reference => "reference",
            DataFormat::Opendap => "opendap",
        }
    }
}

/// `aggregation_control`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregationControl {
    /// The column naming the variable(s) each asset holds.
    pub variable_column_name: String,
    /// The columns whose values identify a dataset (its key, joined with `.`).
    pub groupby_attrs: Vec<String>,
    /// The declared aggregations, in order.
    #[serde(default)]
    pub aggregations: Vec<Aggregation>,
}

/// One declared aggregation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregation {
    /// `join_new`, `join_existing` or `union`.
    #[serde(rename = "type")]
    pub kind: AggregationType,
    /// The column it is about.
    pub attribute_name: String,
    /// xarray options (`dim`, `coords`, `compat`...), kept as written.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

impl Aggregation {
    /// `options.dim` when it is a string.
    pub fn dim(&self) -> Option<&str> {
        self.options.get("dim").and_then(Value::as_str)
    }
}

/// The aggregation types of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregationType {
    /// Concatenate along a new dimension named after the attribute.
    JoinNew,
    /// Concatenate along an existing dimension (`options.dim`).
    JoinExisting,
    /// Merge datasets holding different variables.
    Union,
}

/// Parses the JSON text into the spec and the raw `catalog_dict` rows (if any).
pub(crate) fn parse(catalog: &str, text: &str) -> Result<(CollectionSpec, Option<Vec<Value>>)> {
    let value: Value = serde_json::from_str(text).map_err(|e| CatalogError::Json {
        catalog: catalog.to_owned(),
        line: e.line(),
        column: e.column(),
        detail: e.to_string(),
    })?;
    let spec_err = |field: &str, detail: String| CatalogError::Spec {
        catalog: catalog.to_owned(),
        field: field.to_owned(),
        detail,
    };
    let Value::Object(mut obj) = value else {
        return Err(spec_err(
            "(top level)",
            "the catalog JSON must be an object".into(),
        ));
    };
    let f = Fields { catalog, obj: &obj };
    let esmcat_version: String = f.required("esmcat_version")?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // pydantic coerces a number id to str
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(spec_err("id", format!("expected a string, got {other}"))),
    };
    let description = f.optional("description")?;
    let title = f.optional("title")?;
    let last_updated = f.optional("last_updated")?;
    let attributes: Vec<Attribute> = f.required_list("attributes")?;
    let assets: Assets = f.required("assets")?;
    if let Some(fmt) = &assets.format_column_name
        && assets.format.is_some()
    {
        return Err(spec_err(
            "assets",
            format!("cannot set both format and format_column_name ({fmt:?})"),
        ));
    }
    if assets.format.is_none() && assets.format_column_name.is_none() {
        return Err(spec_err(
            "assets",
            "must set one of format or format_column_name".into(),
        ));
    }
    let aggregation_control: Option<AggregationControl> = match obj.get("aggregation_control") {
        None | Some(Value::Null) => None,
        Some(Value::Object(ac)) => {
            let g = Fields { catalog, obj: ac };
            let aggregations = match ac.get("aggregations") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        serde_json::from_value(item.clone()).map_err(|e| {
                            spec_err(
                                &format!("aggregation_control.aggregations[{i}]"),
                                e.to_string(),
                            )
                        })
                    })
                    .collect::<Result<Vec<Aggregation>>>()?,
                Some(other) => {
                    return Err(spec_err(
                        "aggregation_control.aggregations",
                        format!("expected a list, got {other}"),
                    ));
                }
            };
            let mut join_new: Vec<&str> = Vec::new();
            for a in &aggregations {
                if a.kind == AggregationType::JoinNew
                    && !join_new.contains(&a.attribute_name.as_str())
                {
                    join_new.push(&a.attribute_name);
                }
            }
            if join_new.len() > MAX_JOIN_NEW {
                return Err(spec_err(
                    "aggregation_control.aggregations",
                    format!(
                        "{} join_new aggregations over distinct columns; at most {MAX_JOIN_NEW} (each adds a dimension, and NumPy arrays have at most {MAX_JOIN_NEW})",
                        join_new.len()
                    ),
                ));
            }
            Some(AggregationControl {
                variable_column_name: g
                    .required_in("aggregation_control", "variable_column_name")?,
                groupby_attrs: g.required_in("aggregation_control", "groupby_attrs")?,
                aggregations,
            })
        }
        Some(other) => {
            return Err(spec_err(
                "aggregation_control",
                format!("expected an object, got {other}"),
            ));
        }
    };
    let catalog_file: Option<String> = f.optional("catalog_file")?;
    let catalog_dict = match obj.remove("catalog_dict") {
        None | Some(Value::Null) => None,
        Some(Value::Array(rows)) => Some(rows),
        Some(other) => {
            return Err(spec_err(
                "catalog_dict",
                format!("expected a list of objects, got {}", kind(&other)),
            ));
        }
    };
    match (&catalog_file, &catalog_dict) {
        (Some(_), Some(_)) => {
            return Err(spec_err(
                "catalog_file",
                "catalog_dict and catalog_file cannot be set at the same time".into(),
            ));
        }
        (None, None) => {
            return Err(spec_err(
                "catalog_file",
                "the catalog needs a catalog_file or an inline catalog_dict".into(),
            ));
        }
        _ => {}
    }
    Ok((
        CollectionSpec {
            esmcat_version,
            id,
            description,
            title,
            last_updated,
            attributes,
            assets,
            aggregation_control,
            catalog_file,
        },
        catalog_dict,
    ))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Typed access to the fields of one JSON object, with errors naming the field.
struct Fields<'a> {
    catalog: &'a str,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, detail: String) -> CatalogError {
        CatalogError::Spec {
            catalog: self.catalog.to_owned(),
            field: field.to_owned(),
            detail,
        }
    }

    fn required<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.required_in("", name)
    }

    fn required_in<T: serde::de::DeserializeOwned>(&self, parent: &str, name: &str) -> Result<T> {
        let field = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
        match self.obj.get(name) {
            None | Some(Value::Null) => Err(self.err(&field, "required field is missing".into())),
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| self.err(&field, e.to_string()))
            }
        }
    }

    fn required_list<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Err(self.err(name, "required field is missing".into())),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    serde_json::from_value(v.clone())
                        .map_err(|e| self.err(&format!("{name}[{i}]"), e.to_string()))
                })
                .collect(),
            Some(other) => Err(self.err(name, format!("expected a list, got {}", kind(other)))),
        }
    }

    fn optional<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| self.err(name, e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"esmcat_version": "0.1.0", "id": "x",
        "attributes": [{"column_name": "a", "vocabulary": ""}, {"column_name": "b"}],
        "assets": {"column_name": "path", "format": "zarr"},
        "aggregation_control": {"variable_column_name": "v", "groupby_attrs": ["a"],
            "aggregations": [{"type": "join_existing", "attribute_name": "t",
                              "options": {"dim": "time", "coords": "minimal"}}]},
        "catalog_file": "x.csv", "unknown_field": 1}"#;

    #[test]
    fn parses_a_full_spec() {
        let (spec, rows) = parse("c.json", OK).unwrap();
        assert!(rows.is_none());
        assert_eq!(spec.id, "x");
        assert_eq!(spec.attributes[1].vocabulary, "");
        assert_eq!(spec.assets.format, Some(DataFormat::Zarr));
        let ac = spec.aggregation_control.unwrap();
        assert_eq!(ac.aggregations[0].kind, AggregationType::JoinExisting);
        assert_eq!(ac.aggregations[0].dim(), Some("time"));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = OK.replace(r#""type": "join_existing""#, r#""type": "join_sideways""#);
        let e = parse("c.json", &bad).unwrap_err().to_string();
        assert!(
            e.contains("aggregation_control.aggregations[0]") && e.contains("join_sideways"),
            "{e}"
        );
        let bad = OK.replace(r#""esmcat_version": "0.1.0","#, "");
        let e = parse("c.json", &bad).unwrap_err().to_string();
        assert!(
            e.contains("c.json") && e.contains("`esmcat_version`") && e.contains("missing"),
            "{e}"
        );
        let bad = OK.replace(
            r#""format": "zarr""#,
            r#""format": "zarr", "format_column_name": "f""#,
        );
        let e = parse("c.json", &bad).unwrap_err().to_string();
        assert!(e.contains("cannot set both"), "{e}");
        let bad = OK.replace(r#""format": "zarr""#, r#""format": "grib""#);
        let e = parse("c.json", &bad).unwrap_err().to_string();
        assert!(e.contains("`assets`") && e.contains("grib"), "{e}");
        let bad = OK.replace(r#""catalog_file": "x.csv","#, "");
        let e = parse("c.json", &bad).unwrap_err().to_string();
        assert!(e.contains("catalog_file or an inline catalog_dict"), "{e}");
        let bad = OK.replace(r#""groupby_attrs": ["a"],"#, "");
        let e = parse("c.json", &bad).unwrap_err().to_string();
        assert!(e.contains("aggregation_control.groupby_attrs"), "{e}");
    }

    #[test]
    fn json_syntax_errors_give_line_and_column() {
        let e = parse("c.json", "{\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
        match e {
            CatalogError::Json { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("unexpected {other}"),
        }
    }
}
