//! A synthetic catalog shaped like Pangeo's CMIP6 one (same 11 columns, similar numbers of
//! distinct values), for the search benchmark and the large-catalog test.

// Test and benchmark setup: a failure here is a broken fixture, loud on purpose.
#![allow(clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The CSV columns, in Pangeo's order.
pub const COLUMNS: [&str; 11] = [
    "activity_id",
    "institution_id",
    "source_id",
    "experiment_id",
    "member_id",
    "table_id",
    "variable_id",
    "grid_label",
    "zstore",
    "dcpp_init_year",
    "version",
];

/// Deterministic pseudo-random numbers (a 64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn pick(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// The rows as CSV text: `rows` rows, with the fixed names the benchmark queries
/// (`CMIP`, `historical`, `ssp585`, `tas`, `pr`, `Amon`, `r1i1p1f1`, `CESM2`...) among the values.
pub fn csv(rows: usize) -> String {
    let mut activity = vec!["CMIP".to_string(), "ScenarioMIP".into(), "DCPP".into()];
    activity.extend(names("MIP", 7));
    let institution = names("INST", 23);
    let mut source = vec![
        "CESM2".to_string(),
        "CESM2-WACCM".into(),
        "IPSL-CM6A-LR".into(),
    ];
    source.extend(names("MODEL-", 45));
    let mut experiment = vec![
        "historical".to_string(),
        "ssp585".into(),
        "dcppA-hindcast".into(),
    ];
    experiment.extend(names("exp", 26));
    let members: Vec<String> = (1..=86).map(|i| format!("r{i}i1p1f1")).collect();
    let mut tables = vec!["Amon".to_string(), "Omon".into(), "day".into()];
    tables.extend(names("T", 16));
    let mut variables = vec!["tas".to_string(), "pr".into(), "tos".into()];
    variables.extend(names("var", 184));
    let grids = ["gn", "gr", "gr1", "gm", "gr2", "gna", "gnz"];
    let mut rng = Lcg(20261125);
    let mut out = String::with_capacity(rows * 160);
    out.push_str(&COLUMNS.join(","));
    out.push('\n');
    for i in 0..rows {
        // skewed picks: the first values (the ones queried) are the most common, as in CMIP6
        let skew = |rng: &mut Lcg, n: usize| {
            if rng.pick(3) == 0 {
                rng.pick(3.min(n))
            } else {
                rng.pick(n)
            }
        };
        // hierarchical like CMIP6: a source belongs to one institution and uses one or two
        // grids; an experiment belongs to one activity
        let si = skew(&mut rng, source.len());
        let ei = skew(&mut rng, experiment.len());
        let s = &source[si];
        let inst = &institution[si % institution.len()];
        let e = &experiment[ei];
        let a = &activity[ei % activity.len()];
        let m = &members[skew(&mut rng, members.len())];
        let t = &tables[skew(&mut rng, tables.len())];
        let v = &variables[skew(&mut rng, variables.len())];
        let g = grids[(si + rng.pick(2)) % grids.len()];
        let version = format!("v2019{:04}", rng.pick(400));
        let dcpp = if e.starts_with("dcpp") {
            format!("{}.0", 1960 + rng.pick(59))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{a},{inst},{s},{e},{m},{t},{v},{g},gs://cmip6/CMIP6/{a}/{inst}/{s}/{e}/{m}/{t}/{v}/{g}/{version}/{i}/,{dcpp},{version}"
        );
    }
    out
}

/// Writes `pangeo-like.json` + `pangeo-like.csv` (same JSON as Pangeo's) into `dir`.
pub fn write(dir: &Path, rows: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the benchmark directory");
    std::fs::write(dir.join("pangeo-like.csv"), csv(rows)).expect("write the CSV");
    let json = r#"{
  "esmcat_version": "0.1.0",
  "id": "pangeo-like",
  "description": "Synthetic catalog shaped like Pangeo's CMIP6 one",
  "catalog_file": "pangeo-like.csv",
  "attributes": [
    {"column_name": "activity_id", "vocabulary": ""}, {"column_name": "source_id", "vocabulary": ""},
    {"column_name": "institution_id", "vocabulary": ""}, {"column_name": "experiment_id", "vocabulary": ""},
    {"column_name": "member_id", "vocabulary": ""}, {"column_name": "table_id", "vocabulary": ""},
    {"column_name": "variable_id", "vocabulary": ""}, {"column_name": "grid_label", "vocabulary": ""},
    {"column_name": "version", "vocabulary": ""}, {"column_name": "dcpp_init_year", "vocabulary": ""}
  ],
  "assets": {"column_name": "zstore", "format": "zarr"},
  "aggregation_control": {
    "variable_column_name": "variable_id",
    "groupby_attrs": ["activity_id", "institution_id", "source_id", "experiment_id", "table_id", "grid_label"],
    "aggregations": [
      {"type": "join_new", "attribute_name": "member_id", "options": {"coords": "minimal", "compat": "override"}},
      {"type": "join_new", "attribute_name": "dcpp_init_year", "options": {"coords": "minimal", "compat": "override"}},
      {"type": "union", "attribute_name": "variable_id", "options": {"compat": "override"}}
    ]
  }
}
"#;
    let path = dir.join("pangeo-like.json");
    std::fs::write(&path, json).expect("write the JSON");
    path
}
