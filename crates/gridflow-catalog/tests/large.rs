//! A synthetic catalog shaped like Pangeo's CMIP6 one (11 columns, 100,000 rows here; the
//! `search_bench` example runs 500,000): searches agree with a brute-force scan of the CSV,
//! and the open/search times are printed (not asserted: they depend on the machine and the
//! build profile).
#![allow(clippy::unwrap_used)]

mod common;

use common::synth;
use gridflow_catalog::{EsmCatalog, Query};
use gridflow_store::StoreOptions;
use std::time::Instant;

#[test]
fn large_catalog_searches_agree_with_a_scan() {
    let rows = 100_000;
    let dir = std::env::temp_dir().join(format!("gridflow-catalog-large-{}", std::process::id()));
    let json = synth::write(&dir, rows);
    let t = Instant::now();
    let cat = EsmCatalog::open(json.to_str().unwrap(), &StoreOptions::read_only()).unwrap();
    println!(
        "open {rows} rows: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(cat.len(), rows);
    assert_eq!(cat.columns(), synth::COLUMNS);

    // brute force over the CSV text
    let csv = std::fs::read_to_string(dir.join("pangeo-like.csv")).unwrap();
    let records: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let col = |name: &str| synth::COLUMNS.iter().position(|c| *c == name).unwrap();
    let (v, t_, e, s, m) = (
        col("variable_id"),
        col("table_id"),
        col("experiment_id"),
        col("source_id"),
        col("member_id"),
    );

    let q = Query::new()
        .with("variable_id", "tas")
        .with("table_id", "Amon")
        .with_any("experiment_id", ["historical", "ssp585"]);
    let t = Instant::now();
    let sub = cat.search(&q).unwrap();
    println!(
        "exact search: {:.2} ms, {} rows",
        t.elapsed().as_secs_f64() * 1e3,
        sub.len()
    );
    let want: Vec<usize> = (0..rows)
        .filter(|&r| {
            let x = &records[r];
            x[v] == "tas" && x[t_] == "Amon" && (x[e] == "historical" || x[e] == "ssp585")
        })
        .collect();
    assert!(!want.is_empty());
    let got: Vec<String> = sub
        .rows()
        .map(|r| r.get("zstore").unwrap().to_owned())
        .collect();
    let want_paths: Vec<String> = want
        .iter()
        .map(|&r| records[r][col("zstore")].to_owned())
        .collect();
    assert_eq!(got, want_paths);

    let t = Instant::now();
    let sub = cat
        .search(&Query::new().with("source_id", "^CESM2"))
        .unwrap();
    println!(
        "regex search: {:.2} ms, {} rows",
        t.elapsed().as_secs_f64() * 1e3,
        sub.len()
    );
    let n = records.iter().filter(|x| x[s].starts_with("CESM2")).count();
    assert_eq!(sub.len(), n);

    // require_all_on: (source, member) groups holding both variables in both experiments
    let q = Query::new()
        .with_any("variable_id", ["tas", "pr"])
        .with_any("experiment_id", ["historical", "ssp585"])
        .require_all_on(["source_id", "member_id"]);
    let t = Instant::now();
    let sub = cat.search(&q).unwrap();
    println!(
        "require_all_on search: {:.2} ms, {} rows",
        t.elapsed().as_secs_f64() * 1e3,
        sub.len()
    );
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<usize>> = Default::default();
    for (r, x) in records.iter().enumerate() {
        if (x[v] == "tas" || x[v] == "pr") && (x[e] == "historical" || x[e] == "ssp585") {
            groups.entry((x[s], x[m])).or_default().push(r);
        }
    }
    let mut want = Vec::new();
    for rows_of in groups.values() {
        let combos: std::collections::BTreeSet<(&str, &str)> = rows_of
            .iter()
            .map(|&r| (records[r][v], records[r][e]))
            .collect();
        if combos.len() == 4 {
            want.extend(
                rows_of
                    .iter()
                    .map(|&r| records[r][col("zstore")].to_owned()),
            );
        }
    }
    let got: Vec<String> = sub
        .rows()
        .map(|r| r.get("zstore").unwrap().to_owned())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);

    let t = Instant::now();
    let keys = cat.keys().unwrap();
    println!(
        "keys: {:.1} ms, {} keys",
        t.elapsed().as_secs_f64() * 1e3,
        keys.len()
    );
    let mut sorted = keys.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), keys.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
