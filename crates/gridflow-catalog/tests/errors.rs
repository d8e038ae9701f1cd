//! Malformed catalogs and bad queries give errors naming the catalog, and where they apply
//! the file, line, row, column, dataset key and asset path (fixtures in tests/fixtures/malformed,
//! intake-esm's own reaction to each recorded in expected.json).
#![allow(clippy::unwrap_used)]

use gridflow_catalog::{CatalogError, EsmCatalog, PlanOptions, Query};
use gridflow_store::StoreOptions;
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn path(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn open(name: &str) -> gridflow_catalog::Result<EsmCatalog> {
    EsmCatalog::open(&path(name), &StoreOptions::read_only())
}

fn intake_esm_error(case: &str) -> String {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["errors"][case]["cause"].as_str().unwrap().to_owned()
}

#[test]
fn missing_required_field() {
    let e = open("malformed/missing-field.json").unwrap_err();
    assert!(
        matches!(&e, CatalogError::Spec { field, .. } if field == "assets"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("missing-field.json") && msg.contains("required field is missing"),
        "{msg}"
    );
    assert!(intake_esm_error("missing-field").contains("ValidationError"));
}

#[test]
fn bad_json_gives_line_and_column() {
    let e = open("malformed/bad-json.json").unwrap_err();
    // intake-esm (Python's json): "Expecting ',' delimiter: line 5 column 3"
    assert!(intake_esm_error("bad-json").contains("line 5 column 3"));
    match &e {
        CatalogError::Json {
            catalog,
            line,
            column,
            ..
        } => {
            assert!(catalog.ends_with("bad-json.json"));
            assert_eq!((*line, *column), (5, 3), "{e}");
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn invalid_spec_values() {
    let e = open("malformed/format-both.json").unwrap_err().to_string();
    assert!(
        e.contains("`assets`") && e.contains("cannot set both"),
        "{e}"
    );
    let e = open("malformed/bad-aggregation-type.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("aggregation_control.aggregations[0]") && e.contains("join_sideways"),
        "{e}"
    );
}

#[test]
fn csv_columns_not_matching_the_spec() {
    // intake-esm opens these and fails later (KeyError); we refuse at open, naming the column
    assert_eq!(
        intake_esm_error("missing-assets-column"),
        "KeyError: 'zstore'"
    );
    let e = open("malformed/missing-assets-column.json").unwrap_err();
    match &e {
        CatalogError::MissingColumn {
            column,
            role,
            columns,
            ..
        } => {
            assert_eq!(column, "zstore");
            assert_eq!(role, "assets.column_name");
            assert!(columns.contains(&"variable_id".to_string()));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(e.to_string().contains("missing-assets-column.json"), "{e}");
    let e = open("malformed/missing-groupby-column.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"grid_label\"") && e.contains("aggregation_control.groupby_attrs"),
        "{e}"
    );
}

#[test]
fn malformed_csv_rows_give_line_and_row() {
    // header on line 1, three good rows, then a row with an extra field
    let e = open("malformed/bad-row.json").unwrap_err();
    match &e {
        CatalogError::Csv {
            file,
            line,
            row,
            detail,
            ..
        } => {
            assert!(file.ends_with("bad-row.csv"), "{e}");
            assert_eq!((*line, *row), (5, Some(3)), "{e}");
            assert!(
                detail.contains("found 12 fields") && detail.contains("11 columns"),
                "{e}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    let e = open("malformed/unterminated-quote.json").unwrap_err();
    assert!(
        matches!(
            &e,
            CatalogError::Csv {
                line: 4,
                row: Some(2),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("unterminated quoted field"), "{e}");
}

#[test]
fn missing_catalog_file_names_it() {
    let e = open("malformed/missing-catalog-file.json").unwrap_err();
    assert!(matches!(&e, CatalogError::Fetch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("missing-catalog-file.json") && msg.contains("no-such.csv"),
        "{msg}"
    );
    let e = open("malformed/no-such-catalog.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-catalog.json"), "{e}");
}

#[test]
fn missing_asset_is_found_when_checked() {
    let cat = open("malformed/missing-asset.json").unwrap();
    // planning alone never touches the assets
    let plans = cat.dataset_plans().unwrap();
    assert_eq!(plans.len(), 1);
    // intake-esm fails at load time with FileNotFoundError; checking first names row and path
    assert!(intake_esm_error("missing-asset").contains("stores/does/not/exist does not exist"));
    let opts = PlanOptions {
        check_local_assets: true,
        ..PlanOptions::default()
    };
    // asset paths are relative to the working directory (as in intake-esm), which is the
    // fixtures directory for the generator: place the same JSON there and resolve against it
    let text = std::fs::read_to_string(fixtures().join("malformed/missing-asset.json"))
        .unwrap()
        .replace("\"missing-asset.csv\"", "\"malformed/missing-asset.csv\"");
    let cat = EsmCatalog::from_json_str(&text, Some(&path("missing-asset.json"))).unwrap();
    let opts_here = PlanOptions {
        asset_base: gridflow_catalog::AssetBase::CatalogDirectory,
        ..opts.clone()
    };
    let e = cat.dataset_plans_with(&opts_here).unwrap_err();
    match &e {
        CatalogError::AssetNotFound {
            key,
            row,
            column,
            path,
            ..
        } => {
            assert_eq!(key, "CMIP.NCAR.CESM2.historical.Amon.gn");
            assert_eq!(*row, 2);
            assert_eq!(column, "zstore");
            assert!(path.contains("stores/does/not/exist"), "{path}");
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn groupby_column_with_some_missing_values() {
    let cat = open("malformed/mixed-nan-groupby.json").unwrap();
    assert!(
        intake_esm_error("mixed-nan-groupby")
            .contains("grid_label column should either be all NaN")
    );
    for e in [cat.keys().unwrap_err(), cat.dataset_plans().unwrap_err()] {
        assert!(
            matches!(&e, CatalogError::Grouping { column, .. } if column == "grid_label"),
            "{e}"
        );
        assert!(e.to_string().contains("rows [2]"), "{e}");
    }
    assert!(cat.to_string().contains("? dataset(s)"));
}

#[test]
fn query_errors_name_column_and_value() {
    let cat = open("pangeo-cmip6.json").unwrap();
    let e = cat
        .search(&Query::new().with("variable_id", "tas(*"))
        .unwrap_err();
    assert!(
        matches!(&e, CatalogError::Query { column, value, .. } if column == "variable_id" && value == "tas(*"),
        "{e}"
    );
    assert!(e.to_string().contains("invalid regular expression"), "{e}");
    let e = cat
        .search(&Query::new().with("variable", "tas"))
        .unwrap_err();
    match &e {
        CatalogError::UnknownColumn {
            column, columns, ..
        } => {
            assert_eq!(column, "variable");
            assert_eq!(columns.len(), 11);
        }
        other => panic!("unexpected error {other}"),
    }
    let e = cat
        .search(
            &Query::new()
                .with("variable_id", "tas")
                .require_all_on(["nope"]),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"nope\"") && e.contains("pangeo-cmip6.json"),
        "{e}"
    );
    // require_all_on covering every queried column fails in intake-esm too
    let e = cat
        .search(
            &Query::new()
                .with("source_id", "CESM2")
                .require_all_on(["source_id"]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("require_all_on"), "{e}");
    // a dataset key that does not exist
    let e = cat
        .dataset_plan("CMIP.X", &PlanOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"CMIP.X\""), "{e}");
}

#[test]
fn inline_catalog_errors() {
    let base = r#"{"esmcat_version": "0.1.0", "attributes": [],
        "assets": {"column_name": "path", "format_column_name": "fmt"},
        "aggregation_control": {"variable_column_name": "path", "groupby_attrs": ["path"]},
        "catalog_dict": ROWS}"#;
    let with =
        |rows: &str| EsmCatalog::from_json_str(&base.replace("ROWS", rows), Some("mem.json"));
    let e = with(r#"[{"path": "a", "fmt": "zarr"}, 3]"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("catalog_dict[1]"), "{e}");
    let e = with(
        r#"[{"path": "a", "fmt": "zarr", "v": ["x"]}, {"path": "b", "fmt": "zarr", "v": "y"}]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 1") && e.contains("\"v\""), "{e}");
    // an unknown format in the format column: named with row and column when planning
    let cat = with(r#"[{"path": "a", "fmt": "grib"}]"#).unwrap();
    let e = cat.dataset_plans().unwrap_err().to_string();
    assert!(
        e.contains("row 0") && e.contains("\"fmt\"") && e.contains("grib"),
        "{e}"
    );
    let cat = with(r#"[{"path": "a", "fmt": "zarr"}, {"path": "b"}]"#).unwrap();
    let e = cat.dataset_plans().unwrap_err().to_string();
    assert!(e.contains("row 1") && e.contains("no data format"), "{e}");
    let e = with(r#"[{"path": "a"}]"#).unwrap_err().to_string();
    assert!(
        e.contains("\"fmt\"") && e.contains("assets.format_column_name"),
        "{e}"
    );
    let e = EsmCatalog::from_json_str("[1, 2]", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("<inline JSON>") && e.contains("object"), "{e}");
}

/// An inline catalog whose aggregations are `aggs` (JSON list items) over rows with the
/// columns `m`, `var`, `path` and `c0`..`c69`.
fn catalog_with_aggregations(aggs: &[String]) -> gridflow_catalog::Result<EsmCatalog> {
    let row = |member: &str| {
        let extra: String = (0..70).map(|i| format!(r#", "c{i}": "x{i}""#)).collect();
        format!(
            r#"{{"m": "model", "var": "tas", "member": "{member}", "path": "{member}.zarr", "fmt": "zarr"{extra}}}"#
        )
    };
    let json = format!(
        r#"{{"esmcat_version": "0.1.0", "id": "aggs", "attributes": [],
        "assets": {{"column_name": "path", "format": "zarr"}},
        "aggregation_control": {{"variable_column_name": "var", "groupby_attrs": ["m"],
          "aggregations": [{}]}},
        "catalog_dict": [{}, {}]}}"#,
        aggs.join(", "),
        row("r1"),
        row("r2")
    );
    EsmCatalog::from_json_str(&json, Some("mem.json"))
}

/// Fuzz case: 1000 `join_new` aggregations over the same column overflowed the stack while
/// planning (one tree level per aggregation). intake-esm keys `expand_dims` by column, so a
/// repeated join_new adds no dimension.
#[test]
fn repeated_join_new_aggregations_add_one_dimension() {
    let one = r#"{"type": "join_new", "attribute_name": "member"}"#.to_string();
    let plan_of = |n: usize| {
        let cat = catalog_with_aggregations(&vec![one.clone(); n]).unwrap();
        let plans = cat.dataset_plans().unwrap();
        assert_eq!(plans.len(), 1);
        plans[0].root.clone()
    };
    let single = format!("{:?}", plan_of(1));
    assert!(single.contains("JoinNew"), "{single}");
    assert_eq!(format!("{:?}", plan_of(1000)), single);
}

/// More join_new dimensions than a NumPy array can have (64) are refused up front, naming
/// the field, instead of planning a tree that deep.
#[test]
fn too_many_join_new_dimensions_are_refused() {
    let aggs = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!(r#"{{"type": "join_new", "attribute_name": "c{i}"}}"#))
            .collect()
    };
    assert!(
        catalog_with_aggregations(&aggs(64))
            .unwrap()
            .dataset_plans()
            .is_ok()
    );
    let e = catalog_with_aggregations(&aggs(65)).unwrap_err();
    assert!(matches!(e, CatalogError::Spec { .. }), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("aggregation_control.aggregations") && e.contains("65") && e.contains("64"),
        "{e}"
    );
}

/// Fuzz case: a column name longer than 65535 characters made `summary` panic ("Formatting
/// argument out of range": a `{:width$}` width beyond u16::MAX).
#[test]
fn summary_of_a_very_long_column_name() {
    let long = "x".repeat(70_000);
    let json = format!(
        r#"{{"esmcat_version": "0.1.0", "id": "long", "attributes": [],
        "assets": {{"column_name": "path", "format": "zarr"}},
        "catalog_dict": [{{"path": "a.zarr", "{long}": "v"}}]}}"#
    );
    let cat = EsmCatalog::from_json_str(&json, Some("mem.json")).unwrap();
    let s = cat.summary();
    let line = s.lines().find(|l| l.contains(&long)).unwrap();
    assert!(
        line.trim_end().ends_with(" 1"),
        "{}",
        &line[line.len() - 20..]
    );
    let path = s
        .lines()
        .find(|l| l.trim_start().starts_with("path "))
        .unwrap();
    // columns padded to the longest name, counts aligned
    assert_eq!(path.len(), line.len());
}
