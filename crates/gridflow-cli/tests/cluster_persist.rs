//! On a local cluster of `gridflow worker` processes: `persist` of dataset variables (later
//! computations read the blocks held on the workers by key, not the store, whose chunks are
//! corrupted after persisting) and `to_zarr` as store-write tasks on the workers; results
//! equal the local executor's exactly.
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

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, base, out);
        } else {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    files(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn to_zarr_on_a_cluster_writes_from_the_workers_and_equals_the_local_write() {
    let cluster = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(env!("CARGO_BIN_EXE_gridflow").into()),
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = ran.clone();
    let client = cluster
        .client()
        .unwrap()
        .with_progress(std::sync::Arc::new(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    let dir = std::env::temp_dir().join(format!("gridflow-to-zarr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ds = open_zarr(fixture().to_str().unwrap(), &OpenOptions::default()).unwrap();
    let zonal = gridflow_dataset::Dataset::from_dataarray(
        &ds.get("tas").unwrap().mean(Some(&["lon"])).unwrap(),
    )
    .unwrap();
    for (name, d) in [("whole", ds.clone()), ("zonal", zonal)] {
        let local = dir.join(format!("{name}-local.zarr"));
        let remote = dir.join(format!("{name}-cluster.zarr"));
        let opts = gridflow_dataset::ToZarrOptions::default();
        d.to_zarr(local.to_str().unwrap(), &opts).unwrap();
        let before = ran.load(std::sync::atomic::Ordering::SeqCst);
        d.to_zarr_with(remote.to_str().unwrap(), &opts, &client)
            .unwrap();
        assert!(
            ran.load(std::sync::atomic::Ordering::SeqCst) > before,
            "{name}: no task ran on the cluster"
        );
        // Byte for byte: the same chunks (same compressor) and the same metadata.
        let (a, b) = (tree(&local), tree(&remote));
        assert_eq!(
            a.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            b.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "{name}: different keys"
        );
        for ((k, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{name}: {k} differs");
        }
        // And it opens to the same values.
        let back = open_zarr(remote.to_str().unwrap(), &OpenOptions::default()).unwrap();
        for v in d.data_vars().keys() {
            let got = back.get(v).unwrap().to_f64_vec().unwrap();
            let want = d.get(v).unwrap().compute().unwrap().to_f64_vec().unwrap();
            assert_eq!(bits(&got), bits(&want), "{name}: {v}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_output_on_a_local_cluster_equals_the_local_write() {
    let dir = std::env::temp_dir().join(format!("gridflow-eval-o-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let expr = "(ds.tas - 273.15).mean(\"lon\")";
    let mut trees = Vec::new();
    for (name, how) in [
        ("local", ["--threads", "2"]),
        ("cluster", ["--cluster", "local:2x1"]),
    ] {
        let out = dir.join(format!("{name}.zarr"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_gridflow"))
            .args(["eval", "--store"])
            .arg(fixture())
            .args(how)
            .arg("-o")
            .arg(&out)
            .arg(expr)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        trees.push(tree(&out));
    }
    assert!(!trees[0].is_empty());
    assert!(trees[0] == trees[1], "the cluster wrote another store");
    let _ = std::fs::remove_dir_all(&dir);
}
