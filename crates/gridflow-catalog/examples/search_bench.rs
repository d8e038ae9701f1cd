//! Times opening and searching a synthetic 500,000-row catalog shaped like Pangeo's CMIP6
//! one (11 columns). Run: `cargo run --release -p gridflow-catalog --example search_bench [rows]`.

#[path = "../tests/common/synth.rs"]
mod synth;

use gridflow_catalog::{EsmCatalog, Query};
use gridflow_store::StoreOptions;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500_000);
    let dir = std::env::temp_dir().join(format!("gridflow-catalog-bench-{}", std::process::id()));
    let json = synth::write(&dir, rows);
    let csv_bytes = std::fs::metadata(dir.join("pangeo-like.csv"))?.len();
    println!("catalog: {rows} rows, CSV {:.1} MB", csv_bytes as f64 / 1e6);

    let t = Instant::now();
    let cat = EsmCatalog::open(&json.display().to_string(), &StoreOptions::read_only())?;
    println!(
        "{:<72} {:>8.1} ms",
        "open (JSON + CSV parse)",
        t.elapsed().as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let keys = cat.keys()?;
    println!(
        "{:<72} {:>8.1} ms  ({} keys)",
        "keys() of the whole catalog",
        t.elapsed().as_secs_f64() * 1e3,
        keys.len()
    );

    let queries: Vec<(&str, Query)> = vec![
        (
            "variable_id=tas, table_id=Amon, experiment_id=[historical, ssp585]",
            Query::new()
                .with("variable_id", "tas")
                .with("table_id", "Amon")
                .with_any("experiment_id", ["historical", "ssp585"]),
        ),
        (
            "source_id=^CESM (regex)",
            Query::new().with("source_id", "^CESM"),
        ),
        (
            "member_id=r1i1p1f1$ and variable_id=[tas, pr, tos]",
            Query::new()
                .with("member_id", "r1i1p1f1$")
                .with_any("variable_id", ["tas", "pr", "tos"]),
        ),
        (
            "zstore=/Amon/tas/ (regex over 500k distinct paths)",
            Query::new().with("zstore", "/Amon/tas/.*$"),
        ),
        (
            "variable_id=[tas, pr], experiment_id=[historical, ssp585], require_all_on=[source_id, member_id]",
            Query::new()
                .with_any("variable_id", ["tas", "pr"])
                .with_any("experiment_id", ["historical", "ssp585"])
                .require_all_on(["source_id", "member_id"]),
        ),
    ];
    for (label, q) in &queries {
        let t = Instant::now();
        let sub = cat.search(q)?;
        let search_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let plans = sub.dataset_plans()?;
        let plan_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "search {label:<65} {search_ms:>8.1} ms  ({} rows; {} dataset plans in {plan_ms:.1} ms)",
            sub.len(),
            plans.len()
        );
    }
    let t = Instant::now();
    let u = cat.unique();
    println!(
        "{:<72} {:>8.1} ms  ({} zstores)",
        "unique()",
        t.elapsed().as_secs_f64() * 1e3,
        u["zstore"].len()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
