//! `gridflow catalog search` and `eval --catalog` reach the whole search language of the
//! library: every search of intake-esm's expectations (`gridflow-catalog/tests/fixtures`,
//! computed by intake-esm itself) gives the same rows and keys through the command line.
#![allow(clippy::unwrap_used)]

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

/// A query value as a command-line value: `None` for a missing cell, otherwise quoted.
fn cli_value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => format!("'{}'", s.replace('\'', "\\'")),
        other => format!("'{other}'"),
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
        // a column given twice matches either term: lists go in as one term per value
        for (col, v) in entry["query"].as_object().unwrap() {
            match v {
                Value::Array(items) => {
                    for item in items {
                        args.push(format!("{col}={}", cli_value(item)));
                    }
                }
                other => args.push(format!("{col}={}", cli_value(other))),
            }
        }
        match &entry["require_all_on"] {
            Value::Null => {}
            Value::String(c) => args.push(format!("--require-all-on={c}")),
            list => args.push(format!("--require-all-on={}", strings(list).join(","))),
        }
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
            if err.starts_with("AttributeError: Can only use .str accessor") {
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
