//! intake-esm's own sample catalogs (tests/fixtures/intake-esm, copied from intake-esm) and the
//! searches of its tests/test_search.py and tests/test_core.py: every search gives the rows,
//! in the same order, and the keys the pinned intake-esm returned
//! (tests/fixtures/intake-esm-searches.json, written by tests/fixtures/generate.py).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use gridflow_catalog::{EsmCatalog, OpenOptions, Query};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("intake-esm-searches.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn open(name: &str, open_kwargs: &Value) -> EsmCatalog {
    let options = OpenOptions {
        columns_with_iterables: open_kwargs
            .get("columns_with_iterables")
            .map(strings)
            .unwrap_or_default(),
        ..OpenOptions::default()
    };
    EsmCatalog::open_with(fixtures().join(name).to_str().unwrap(), &options)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The query gridflow is given: compiled patterns of the test as their pattern text (the
/// generator checked intake-esm returns the same for both).
fn query_of(entry: &Value) -> Query {
    let q = entry.get("text_query").unwrap_or(&entry["query"]);
    let q = Query::from_json(q).unwrap_or_else(|e| panic!("{entry}: {e}"));
    match &entry["require_all_on"] {
        Value::Null => q,
        Value::String(c) => q.require_all_on([c.clone()]),
        list => q.require_all_on(strings(list)),
    }
}

#[test]
fn sample_catalogs_open_with_intake_esm_rows_and_keys() {
    let cats = expected()["catalogs"].as_object().unwrap();
    assert!(cats.len() >= 14, "only {} catalogs", cats.len());
    for (name, exp) in cats {
        let cat = open(name, &exp["open_kwargs"]);
        assert_eq!(cat.len() as u64, exp["len"].as_u64().unwrap(), "{name}");
        assert_eq!(cat.columns(), strings(&exp["columns"]), "{name}");
        assert_eq!(cat.keys().unwrap(), strings(&exp["keys"]), "{name}");
    }
}

#[test]
fn searches_of_intake_esm_tests_match_intake_esm() {
    let mut compared = 0;
    let mut errors = 0;
    for entry in expected()["searches"].as_array().unwrap() {
        let name = entry["catalog"].as_str().unwrap();
        let what = format!(
            "{} on {name}: {} require_all_on={}",
            entry["test"], entry["query"], entry["require_all_on"]
        );
        let cat = open(name, &entry["open_kwargs"]);
        let result = cat.search(&query_of(entry));
        if let Some(err) = entry.get("error").and_then(Value::as_str) {
            // intake-esm fails: so does gridflow, naming the column
            let e = result
                .err()
                .unwrap_or_else(|| panic!("{what}: intake-esm fails ({err}), gridflow does not"))
                .to_string();
            let column = entry["query"].as_object().unwrap().keys().next().unwrap();
            assert!(e.contains(column.as_str()), "{what}: {e}");
            if err.contains("Can only use .str accessor") {
                assert!(e.contains("holds numbers"), "{what}: {e}");
            }
            errors += 1;
            continue;
        }
        let sub = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(sub.len() as u64, entry["len"].as_u64().unwrap(), "{what}");
        let col = sub.spec().assets.column_name.clone();
        let paths: Vec<String> = sub
            .rows()
            .map(|r| r.get(&col).unwrap().to_owned())
            .collect();
        assert_eq!(
            paths,
            strings(&entry["paths"]),
            "{what}: rows or their order"
        );
        assert_eq!(sub.keys().unwrap(), strings(&entry["keys"]), "{what}");
        assert_eq!(
            sub.requested_variables(),
            strings(&entry["requested_variables"]).as_slice(),
            "{what}"
        );
        compared += 1;
    }
    assert!(
        compared >= 40 && errors >= 1,
        "{compared} searches, {errors} errors"
    );
}

/// The searches of those two test files that are not run here say why, and name a test of
/// them (test_search.py's are all run).
#[test]
fn searches_not_run_are_listed_with_a_reason() {
    let not_run = expected()["not_run"].as_array().unwrap();
    assert!(!not_run.is_empty());
    for n in not_run {
        let test = n["test"].as_str().unwrap();
        assert!(test.starts_with("tests/test_core.py::"), "{test}");
        assert!(n["reason"].as_str().unwrap().len() > 20, "{n}");
    }
    let run: Vec<&str> = expected()["searches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["test"].as_str().unwrap())
        .collect();
    for t in [
        "tests/test_search.py::test_search",
        "tests/test_search.py::test_search_columns_with_iterables",
        "tests/test_search.py::test_search_require_all_on_columns_with_iterables",
        "tests/test_core.py::test_catalog_search",
        "tests/test_core.py::test_catalog_search_columns_with_iterables",
        "tests/test_core.py::test_multi_variable_catalog",
        "tests/test_core.py::test_to_dask_opendap",
    ] {
        assert!(run.contains(&t), "{t} is not run");
    }
}

/// Catalogs whose assets are netCDF files: they open, search and plan (the assets are not
/// read; opening netCDF is not this crate's job).
#[test]
fn netcdf_catalogs_search_and_plan() {
    for name in [
        "intake-esm/cmip5-netcdf.json",
        "intake-esm/cmip5-netcdf-parquet.json",
    ] {
        let cat = open(name, &Value::Null);
        let sub = cat
            .search(&Query::new().with_any("experiment", ["historical", "rcp85"]))
            .unwrap();
        let exp = expected()["searches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["catalog"] == name && e["query"]["experiment"].is_array())
            .unwrap();
        assert_eq!(sub.keys().unwrap(), strings(&exp["keys"]), "{name}");
        let plans = sub.dataset_plans().unwrap();
        assert_eq!(plans.len(), exp["keys"].as_array().unwrap().len(), "{name}");
        let assets: usize = plans.iter().map(|p| p.assets.len()).sum();
        assert_eq!(assets as u64, exp["len"].as_u64().unwrap(), "{name}");
        assert!(
            plans
                .iter()
                .flat_map(|p| &p.assets)
                .all(|a| a.path.ends_with(".nc")),
            "{name}"
        );
    }
}
