//! `gridflow catalog search` and `eval --catalog` reach the whole search language of the
//! library: every search of intake-esm's expectations (`gridflow-catalog/tests/fixtures`,
//! computed by intake-esm itself) gives the same rows and keys through the command line.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gridflow-catalog/tests/fixtures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn gridflow(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// A query value (JSON of the Python value) as a command-line value: `None` for a missing
/// cell, a number unquoted (as Python prints it), text quoted.
fn cli_value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => format!("'{}'", s.replace('\'', "\\'")),
        Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap()),
        Value::Number(n) => n.to_string(),
        other => panic!("no command-line form for {other}"),
    }
}

/// The search terms of a query: a column given twice matches either term, so lists go in
/// as one term per value.
fn cli_terms(query: &Value) -> Vec<String> {
    let mut terms = Vec::new();
    for (col, v) in query.as_object().unwrap() {
        match v {
            Value::Array(items) => {
                for item in items {
                    terms.push(format!("{col}={}", cli_value(item)));
                }
            }
            other => terms.push(format!("{col}={}", cli_value(other))),
        }
    }
    terms
}

fn require_all_on_arg(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(c) => Some(format!("--require-all-on={c}")),
        list => Some(format!("--require-all-on={}", strings(list).join(","))),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_intake_esm_search_runs_from_the_command_line() {
    let e = expected();
    let mut compared = 0;
    for entry in e["searches"].as_array().unwrap() {
        let name = entry["catalog"].as_str().unwrap();
        let mut args = vec![
            "catalog".to_owned(),
            "search".to_owned(),
            fixtures().join(name).display().to_string(),
            "--json".to_owned(),
        ];
        args.extend(cli_terms(&entry["query"]));
        args.extend(require_all_on_arg(&entry["require_all_on"]));
        if let Some(lists) = e["catalogs"][name]["open_kwargs"].get("columns_with_iterables") {
            args.push(format!(
                "--columns-with-iterables={}",
                strings(lists).join(",")
            ));
        }
        let out = gridflow(&args);
        let what = format!("{args:?}");
        let mut want = entry;
        if let Some(err) = entry.get("error").and_then(Value::as_str) {
            if err.starts_with("AttributeError: Can only use .str accessor")
                && err.ends_with("unknown-array")
            {
                // an intake-esm + pandas 3 bug on list columns read from CSV: the same rows
                // inline are what intake-esm returns
                want = e["searches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| {
                        x["catalog"] == "iterables-inline.json"
                            && x["query"] == entry["query"]
                            && x["require_all_on"] == entry["require_all_on"]
                    })
                    .unwrap();
            } else {
                assert!(!out.status.success(), "{what}: intake-esm fails ({err})");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(stderr.starts_with("error"), "{what}: {stderr}");
                continue;
            }
        }
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["rows"], want["len"], "{what}");
        assert_eq!(got["keys"], want["keys"], "{what}");
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} searches compared");
}

#[test]
fn commas_quotes_and_missing_values_in_terms() {
    let cat = fixtures().join("pangeo-cmip6.json").display().to_string();
    let run = |terms: &[&str]| -> Value {
        let mut args = vec![
            "catalog".to_owned(),
            "search".to_owned(),
            cat.clone(),
            "--json".into(),
        ];
        args.extend(terms.iter().map(|t| (*t).to_owned()));
        let out = gridflow(&args);
        assert!(
            out.status.success(),
            "{terms:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // a regex with a comma, quoted or escaped, is one value
    let quoted = run(&["source_id='^CES.{1,3}$'"]);
    let escaped = run(&[r"source_id=^CES.{1\,3}$"]);
    let plain = run(&["source_id=CESM2"]);
    assert_eq!(quoted["keys"], plain["keys"]);
    assert_eq!(escaped["keys"], plain["keys"]);
    assert!(plain["rows"].as_u64().unwrap() > 0);
    // the same regex unquoted is split at its comma: the error names the term and says why
    let out = gridflow(&[
        "catalog".into(),
        "search".into(),
        cat.clone(),
        "source_id=^CES.{1,3}$".into(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source_id=^CES.{1,3}$") && err.contains("quote"),
        "{err}"
    );
    // comma lists, repeated columns and None agree
    let listed = run(&["variable_id=tas,pr"]);
    let repeated = run(&["variable_id=tas", "variable_id=pr"]);
    assert_eq!(listed["keys"], repeated["keys"]);
    assert!(listed["rows"].as_u64().unwrap() > run(&["variable_id=tas"])["rows"].as_u64().unwrap());
    let missing = run(&["dcpp_init_year=None"]);
    let text_none = run(&["dcpp_init_year='None'"]);
    assert!(missing["rows"].as_u64().unwrap() > 0);
    assert_eq!(text_none["rows"], 0);
    // an unclosed quote is an error naming the term
    let out = gridflow(&[
        "catalog".into(),
        "search".into(),
        cat,
        "source_id='CESM2".into(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not closed"), "{err}");
}

/// Searches of intake-esm's own tests that the command line cannot express, with the reason.
/// Every other search of intake-esm-searches.json must run through `gridflow catalog search`
/// and `gridflow eval --search` with intake-esm's rows and keys.
const CLI_CANNOT_EXPRESS: &[(&str, &str)] = &[];

fn intake_esm_searches() -> Value {
    let text = std::fs::read_to_string(fixtures().join("intake-esm-searches.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The search arguments of one entry: terms (compiled patterns as their text, which the
/// generator checked intake-esm treats alike), --require-all-on, --columns-with-iterables.
fn entry_search_args(entry: &Value) -> (Vec<String>, Vec<String>) {
    let terms = cli_terms(entry.get("text_query").unwrap_or(&entry["query"]));
    let mut options: Vec<String> = require_all_on_arg(&entry["require_all_on"])
        .into_iter()
        .collect();
    if let Some(lists) = entry["open_kwargs"].get("columns_with_iterables") {
        options.push(format!(
            "--columns-with-iterables={}",
            strings(lists).join(",")
        ));
    }
    (terms, options)
}

#[test]
fn intake_esm_test_searches_run_from_the_command_line() {
    let e = intake_esm_searches();
    let (mut compared, mut errors) = (0, 0);
    for entry in e["searches"].as_array().unwrap() {
        let name = entry["catalog"].as_str().unwrap();
        let label = format!("{} {} {}", entry["test"], name, entry["query"]);
        if CLI_CANNOT_EXPRESS.iter().any(|(t, _)| *t == label) {
            continue;
        }
        let cat = fixtures().join(name).display().to_string();
        let (terms, options) = entry_search_args(entry);
        // gridflow catalog search CAT TERMS... --json
        let mut args = vec![
            "catalog".to_owned(),
            "search".to_owned(),
            cat.clone(),
            "--json".to_owned(),
        ];
        args.extend(terms.iter().cloned());
        args.extend(options.iter().cloned());
        let out = gridflow(&args);
        let what = format!("{label}: {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // gridflow eval --catalog CAT --search TERM... --key (none): the error lists the keys
        // the search leaves, before any asset is opened
        let mut eval = vec!["eval".to_owned(), "--catalog".to_owned(), cat];
        for t in &terms {
            eval.push("--search".to_owned());
            eval.push(t.clone());
        }
        eval.extend(options.iter().cloned());
        eval.extend([
            "--key".to_owned(),
            "(no such key)".to_owned(),
            "ds".to_owned(),
        ]);
        let eval_out = gridflow(&eval);
        assert!(!eval_out.status.success(), "{what}");
        let eval_err = String::from_utf8_lossy(&eval_out.stderr).into_owned();
        if let Some(err) = entry.get("error").and_then(Value::as_str) {
            assert!(!out.status.success(), "{what}: intake-esm fails ({err})");
            assert!(stderr.contains("error"), "{what}: {stderr}");
            assert!(!eval_err.contains("it leaves"), "{what}: {eval_err}");
            errors += 1;
            continue;
        }
        assert!(out.status.success(), "{what}: {stderr}");
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["rows"], entry["len"], "{what}");
        assert_eq!(got["keys"], entry["keys"], "{what}");
        let listed = eval_err
            .split_once("(it leaves: ")
            .unwrap_or_else(|| panic!("{what}: {eval_err}"))
            .1
            .trim_end()
            .trim_end_matches(')');
        let eval_keys: Vec<&str> = if listed.is_empty() {
            Vec::new()
        } else {
            listed.split(", ").collect()
        };
        assert_eq!(eval_keys, strings(&entry["keys"]), "{what}: eval --search");
        compared += 1;
    }
    assert!(
        compared >= 40 && errors >= 1,
        "{compared} searches, {errors} errors"
    );
    for (label, why) in CLI_CANNOT_EXPRESS {
        assert!(!why.is_empty(), "{label}");
    }
}

#[test]
fn type_mismatched_values_are_noted() {
    let cat = |n: &str| fixtures().join(n).display().to_string();
    // a number in a text (CSV) column: no rows, as intake-esm, and a note saying why
    let out = gridflow(&[
        "catalog".into(),
        "search".into(),
        cat("intake-esm/cesm1-lens-netcdf.json"),
        "member_id=5".into(),
        "--json".into(),
    ]);
    assert!(out.status.success());
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["rows"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("member_id holds text") && err.contains("member_id='5'"),
        "{err}"
    );
    // text in a numeric (Parquet) column, likewise
    let out = gridflow(&[
        "catalog".into(),
        "search".into(),
        cat("pangeo-cmip6-parquet.json"),
        "dcpp_init_year='1960.0'".into(),
        "--json".into(),
    ]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["rows"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dcpp_init_year holds numbers"), "{err}");
    // values of the right type: no note
    let out = gridflow(&[
        "catalog".into(),
        "search".into(),
        cat("pangeo-cmip6-parquet.json"),
        "dcpp_init_year=1960".into(),
        "--json".into(),
    ]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["rows"], 2);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note"));
}
