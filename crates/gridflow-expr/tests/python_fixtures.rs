//! Agreement with CPython's own parser on the cases in tests/fixtures/python_ast.json.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{python_float_repr, sexpr, spans};
use gridflow_expr::parse;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_ast.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cases(doc: &Value) -> &Vec<Value> {
    doc["cases"].as_array().unwrap()
}

#[test]
fn fixture_is_substantial() {
    let doc = fixture();
    let all = cases(&doc);
    let ok = all.iter().filter(|c| c["ok"] == true).count();
    let unsupported = all.iter().filter(|c| c["python"] == "accepts").count();
    let rejected = all.iter().filter(|c| c["python"] == "rejects").count();
    assert!(ok >= 150, "{ok} valid cases");
    assert!(unsupported >= 25, "{unsupported} unsupported cases");
    assert!(rejected >= 60, "{rejected} invalid cases");
}

#[test]
fn valid_cases_match_cpython_trees_and_spans() {
    let doc = fixture();
    let mut failures = Vec::new();
    for case in cases(&doc).iter().filter(|c| c["ok"] == true) {
        let src = case["src"].as_str().unwrap();
        let expr = match parse(src) {
            Ok(expr) => expr,
            Err(err) => {
                failures.push(format!("{src:?}: rejected:\n{}", err.render(src)));
                continue;
            }
        };
        let want = case["sexpr"].as_str().unwrap();
        let got = sexpr(&expr);
        if got != want {
            failures.push(format!("{src:?}:\n  cpython {want}\n  ours    {got}"));
            continue;
        }
        let want: Vec<(usize, usize)> = case["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s[0].as_u64().unwrap() as usize,
                    s[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let got = spans(&expr);
        if got != want {
            failures.push(format!(
                "{src:?} spans:\n  cpython {want:?}\n  ours    {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejected_cases_fail_at_the_expected_place_with_the_expected_message() {
    let doc = fixture();
    let mut failures = Vec::new();
    for case in cases(&doc).iter().filter(|c| c["ok"] == false) {
        let src = case["src"].as_str().unwrap();
        let at = case["at"].as_u64().unwrap() as usize;
        let fragment = case["message"].as_str().unwrap();
        match parse(src) {
            Ok(expr) => failures.push(format!("{src:?}: accepted as {}", sexpr(&expr))),
            Err(err) => {
                let rendered = err.render(src);
                if err.span.start != at || !err.message.contains(fragment) {
                    failures.push(format!(
                        "{src:?}: want {fragment:?} at {at}, got {:?} at {}:\n{rendered}",
                        err.message, err.span.start
                    ));
                }
                assert!(err.span.start <= err.span.end && err.span.end <= src.len());
                assert!(src.is_char_boundary(err.span.start) && src.is_char_boundary(err.span.end));
                assert!(rendered.starts_with("error at "), "{rendered}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn float_rendering_of_these_tests_matches_cpython_repr() {
    let doc = fixture();
    let floats = doc["float_reprs"].as_array().unwrap();
    assert!(floats.len() >= 50);
    for f in floats {
        let value = f64::from_bits(f["bits"].as_u64().unwrap());
        assert_eq!(
            python_float_repr(value),
            f["repr"].as_str().unwrap(),
            "{value:e}"
        );
    }
}
