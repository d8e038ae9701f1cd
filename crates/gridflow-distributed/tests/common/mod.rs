//! Set-up shared by the integration tests (`mod common;` in each): graphs of counted
//! sources, their read logs, and polling.
// Each test binary uses only some of these.
#![allow(dead_code, clippy::unwrap_used)]

use gridflow_graph::{Graph, Key, Task};
use gridflow_runtime::conformance::TestOp;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `n` sources of `bytes` bytes each that append a byte to `log` whenever they run,
/// doubled: the graph and the doubled keys (`doubled-i` holds 2·(i + 1)).
pub fn counted(n: u32, bytes: usize, log: &Path) -> (Graph<TestOp>, Vec<Key>) {
    let mut g = Graph::new();
    let mut out = Vec::new();
    for i in 0..n {
        let m = Key::new("read", &[i]);
        let d = Key::new("doubled", &[i]);
        g.insert(
            m.clone(),
            Task::new(
                TestOp::Counted {
                    value: u64::from(i) + 1,
                    bytes,
                    log: log.to_str().unwrap().to_owned(),
                },
                vec![],
            ),
        );
        g.insert(d.clone(), Task::new(TestOp::Double, vec![m]));
        out.push(d);
    }
    (g, out)
}

/// How many times the sources of a [`counted`] graph ran.
pub fn reads(log: &Path) -> usize {
    std::fs::read(log).map_or(0, |b| b.len())
}

/// An empty read log for test `name` of suite `suite`, in a directory of this process.
pub fn temp_log(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridflow-{suite}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("reads.log");
    let _ = std::fs::remove_file(&p);
    p
}

/// Polls `ok` every 50 ms; fails naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
