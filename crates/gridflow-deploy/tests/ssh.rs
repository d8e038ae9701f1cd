//! `SshCluster` against a real sshd on 127.0.0.1 (Debian's openssh-server, its own host key
//! and an authorized test key, started by `scripts/sshd-setup.sh`; the client configuration
//! from `target/sshd/env`): a 2-worker cluster computes the local executor's result and
//! leaves no process behind on close (checked with pgrep). Without the sshd the tests say so
//! and pass, except under CI=true, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_deploy::{SshCluster, SshOptions};
use gridflow_distributed::{Client, Cluster, WorkerState};
use gridflow_runtime::conformance::tree;
use gridflow_runtime::{Executor, LocalExecutor};
use std::process::Command;
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_gridflow-deploy-test-node");

/// The ssh client configuration and host, when the test sshd runs.
fn sshd() -> Option<(String, String)> {
    let conf = std::env::var("GRIDFLOW_TEST_SSH_CONFIG").ok();
    let host = std::env::var("GRIDFLOW_TEST_SSH_HOST").ok();
    match (conf, host) {
        (Some(c), Some(h)) => Some((c, h)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but no test sshd: run scripts/sshd-setup.sh and source target/sshd/env"
            );
            eprintln!("skipped: no test sshd (run scripts/sshd-setup.sh; source target/sshd/env)");
            None
        }
    }
}

/// Processes whose command line contains `marker`.
fn pgrep(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // Not pgrep's own shell or this test's ssh client lines.
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_owned)
        .collect()
}

fn options(config: &str, host: &str, name: &str) -> SshOptions {
    SshOptions {
        hosts: vec![host.into(), host.into(), host.into()],
        ssh_options: vec!["-F".into(), config.into()],
        remote_command: vec![NODE.into()],
        n_workers: 2,
        nthreads: 1,
        name: format!("gfssh{}{name}", std::process::id()),
        timeout: Duration::from_secs(30),
        ..SshOptions::default()
    }
}

#[test]
fn a_two_worker_ssh_cluster_computes_and_leaves_no_process_behind() {
    let Some((config, host)) = sshd() else { return };
    let o = options(&config, &host, "compute");
    let marker = o.name.clone();
    let c = SshCluster::new(o).unwrap();
    let client = Client::connect_with(&c.scheduler_address(), c.security()).unwrap();
    let workers = client.workers().unwrap();
    assert_eq!(workers.len(), 2);
    assert!(
        workers.iter().all(|w| w.name.starts_with(&marker)),
        "{workers:?}"
    );
    assert!(
        c.worker_status()
            .unwrap()
            .iter()
            .all(|w| w.state == WorkerState::Running)
    );
    // The scheduler and both workers run (started by sshd, not by this process).
    let running = pgrep(&marker);
    assert!(
        running.iter().filter(|l| l.contains(NODE)).count() >= 3,
        "{running:#?}"
    );

    // The remote scheduler's dashboard answers the scaling endpoint.
    let start = Instant::now();
    let link = loop {
        if let Some(l) = c.dashboard_link() {
            break l;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no dashboard link"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, body) = get(&link, "/api/v1/adaptive_target");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"workers\":2"), "{body}");

    let (g, out, _) = tree(200, 1024);
    let want = LocalExecutor::threads(1)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    assert_eq!(
        client.run(&g, std::slice::from_ref(&out)).unwrap()[0],
        want[0]
    );

    // Scaling works over SSH too: one more, then back to one (retired gracefully).
    c.scale(3).unwrap();
    client.wait_for_workers(3, Duration::from_secs(30)).unwrap();
    c.scale(1).unwrap();
    assert_eq!(client.workers().unwrap().len(), 1);
    assert_eq!(
        client.run(&g, std::slice::from_ref(&out)).unwrap()[0],
        want[0]
    );

    drop(client);
    c.close().unwrap();
    let start = Instant::now();
    loop {
        let left = pgrep(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "processes left after close: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_scheduler_that_cannot_start_is_reported() {
    let Some((config, host)) = sshd() else { return };
    let o = SshOptions {
        remote_command: vec!["/nonexistent/gridflow".into()],
        timeout: Duration::from_secs(20),
        ..options(&config, &host, "missing")
    };
    let marker = o.name.clone();
    let e = match SshCluster::new(o) {
        Ok(_) => panic!("a missing remote program started a cluster"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("scheduler") && e.contains(&host), "{e}");
    assert!(pgrep(&marker).is_empty());
}

/// `GET path` from the dashboard at `link`: the status and the body.
fn get(link: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let host = link
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_owned())
}
