//! `persist` of dataset variables on a local cluster of `gridflow worker` processes: later
//! computations read the blocks held on the workers by key, not the store (whose chunks
//! are corrupted after persisting), and their results equal the local executor's exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_dataset::{OpenOptions, open_zarr};
use gridflow_distributed::{LocalCluster, LocalClusterOptions};
use gridflow_runtime::LocalExecutor;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../gridflow-dataset/tests/fixtures/cmip6_fill.zarr")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn persisted_variables_are_read_by_key_and_equal_the_local_executor() {
    let cluster = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(env!("CARGO_BIN_EXE_gridflow").into()),
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let client = cluster.client().unwrap();
    let dir = std::env::temp_dir().join(format!("gridflow-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("store.zarr");
    copy_dir(&fixture(), &store);
    let ds = open_zarr(store.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let tas = ds.get("tas").unwrap();
    let local = LocalExecutor::threads(2);
    let mean = tas.mean(Some(&["time"])).unwrap();
    let total = tas.sum(Some(&["lat", "lon"])).unwrap();
    let want_mean = mean.compute_with(&local).unwrap().to_f64_vec().unwrap();
    let want_total = total.compute_with(&local).unwrap().to_f64_vec().unwrap();
    let want_blocks = tas.compute_with(&local).unwrap().to_f64_vec().unwrap();

    let kept = tas.persist_with(&client).unwrap();
    assert!(!client.held_keys().is_empty());
    // From now on the store's chunks are garbage: only the held blocks give right answers.
    let mut chunks = 0;
    for e in std::fs::read_dir(store.join("tas")).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            std::fs::write(&p, b"not a chunk").unwrap();
            chunks += 1;
        }
    }
    assert!(chunks > 1);
    let broken = tas.mean(Some(&["time"])).unwrap().compute_with(&local);
    assert!(
        broken.map_or(true, |v| bits(&v.to_f64_vec().unwrap()) != bits(&want_mean)),
        "corrupting the chunks changed nothing: the test would prove nothing"
    );

    let mean_kept = kept.mean(Some(&["time"])).unwrap();
    let got = mean_kept
        .compute_with(&client)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    assert_eq!(bits(&got), bits(&want_mean));
    let total_kept = kept.sum(Some(&["lat", "lon"])).unwrap();
    let got = total_kept
        .compute_with(&client)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    assert_eq!(bits(&got), bits(&want_total));
    let got = kept.compute_with(&client).unwrap().to_f64_vec().unwrap();
    assert_eq!(bits(&got), bits(&want_blocks));

    // Dropping every array built on the persisted blocks releases them.
    drop((kept, mean_kept, total_kept));
    assert!(client.held_keys().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
