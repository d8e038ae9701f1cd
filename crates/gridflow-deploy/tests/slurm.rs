//! `SlurmCluster` against a real one-node Slurm (Debian's slurmctld, slurmd and munge,
//! started by `scripts/slurm-setup.sh`; `SLURM_CONF` from `target/slurm/env`): two worker
//! jobs compute a graph with the local executor's result, adapt retires them down to 0,
//! close leaves no job in `squeue`; `sbatch`'s refusal carries Slurm's message; a job held
//! pending is reported past its time-out. Without Slurm the tests say so and pass, except
//! under CI=true, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_deploy::{SlurmCluster, SlurmOptions};
use gridflow_distributed::{AdaptiveOptions, Client, Cluster, WorkerState};
use gridflow_runtime::conformance::tree;
use gridflow_runtime::{Executor, LocalExecutor};
use std::process::Command;
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_gridflow-deploy-test-node");

/// True when a Slurm is reachable; false (with a notice) when not and not on CI.
fn slurm() -> bool {
    let conf = std::env::var("SLURM_CONF").ok();
    let up = conf.is_some()
        && Command::new("sinfo")
            .arg("-h")
            .output()
            .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Slurm: run scripts/slurm-setup.sh and source target/slurm/env \
             (SLURM_CONF={conf:?})"
        );
        eprintln!("skipped: no Slurm (run scripts/slurm-setup.sh; source target/slurm/env)");
    }
    up
}

fn options(name: &str) -> SlurmOptions {
    let logs = std::env::temp_dir().join(format!("gridflow-slurm-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();
    SlurmOptions {
        cores: 1,
        partition: std::env::var("GRIDFLOW_TEST_SLURM_PARTITION").ok(),
        job_name: format!("gridflow-test-{name}"),
        worker_command: vec![NODE.into(), "worker".into()],
        log_directory: Some(logs),
        walltime: Some(Duration::from_secs(600)),
        pending_timeout: Duration::from_secs(60),
        ..SlurmOptions::default()
    }
}

/// The ids among `ids` that `squeue` still lists.
fn in_squeue(ids: &[String]) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i"])
        .output()
        .unwrap();
    assert!(out.status.success(), "squeue: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| ids.contains(l))
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_worker_jobs_compute_then_adapt_down_to_zero_and_close_leaves_no_job() {
    if !slurm() {
        return;
    }
    let o = options("scale");
    let logs = o.log_directory.clone().unwrap();
    let c = SlurmCluster::new(o).unwrap();
    assert!(c.job_script().contains("#SBATCH --cpus-per-task=1"));
    c.scale(2).unwrap();
    let ids = c.job_ids().unwrap();
    assert_eq!(ids.len(), 2, "one job per worker: {ids:?}");
    c.wait_for_workers(2, Duration::from_secs(90)).unwrap();
    let client = Client::connect_with(&c.scheduler_address(), c.security()).unwrap();
    assert!(c.dashboard_link().is_some_and(|l| l.starts_with("http://")));
    let mut names: Vec<String> = client
        .workers()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    names.sort();
    let mut want_names: Vec<String> = ids.iter().map(|id| format!("slurm-{id}-0")).collect();
    want_names.sort();
    assert_eq!(names, want_names);
    assert!(
        c.worker_status()
            .unwrap()
            .iter()
            .all(|w| w.state == WorkerState::Running)
    );

    let (g, out, _) = tree(200, 1024);
    let want = LocalExecutor::threads(1)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    let got = client.run(&g, std::slice::from_ref(&out)).unwrap();
    assert_eq!(got[0], want[0]);

    c.adapt_with(AdaptiveOptions {
        minimum: 0,
        maximum: 2,
        interval: Duration::from_millis(200),
        wait_count: 2,
        cooldown: Duration::from_millis(500),
    })
    .unwrap();
    wait_until("adapt down to 0 jobs", Duration::from_secs(60), || {
        c.job_ids().unwrap().is_empty() && client.workers().unwrap().is_empty()
    });
    wait_until("the jobs leave squeue", Duration::from_secs(30), || {
        in_squeue(&ids).is_empty()
    });
    c.scale(1).unwrap();
    let more = c.job_ids().unwrap();
    assert_eq!(more.len(), 1);
    c.close().unwrap();
    wait_until("close leaves no job", Duration::from_secs(30), || {
        in_squeue(&more).is_empty()
    });
    let _ = std::fs::remove_dir_all(logs);
}

#[test]
fn sbatch_refusing_a_job_gives_slurms_message() {
    if !slurm() {
        return;
    }
    let c = SlurmCluster::new(SlurmOptions {
        partition: Some("gridflow-no-such-partition".into()),
        ..options("refused")
    })
    .unwrap();
    let e = c.scale(1).unwrap_err().to_string();
    assert!(e.contains("sbatch"), "{e}");
    assert!(e.to_lowercase().contains("invalid partition"), "{e}");
    assert!(c.job_ids().unwrap().is_empty());
}

#[test]
fn a_job_pending_past_its_time_out_is_reported_with_slurms_reason() {
    if !slurm() {
        return;
    }
    let c = SlurmCluster::new(SlurmOptions {
        // Held back an hour: it stays pending with reason BeginTime.
        job_extra_directives: vec!["--begin=now+3600".into()],
        pending_timeout: Duration::from_secs(2),
        ..options("pending")
    })
    .unwrap();
    c.scale(1).unwrap();
    let ids = c.job_ids().unwrap();
    let start = Instant::now();
    let e = c
        .wait_for_workers(1, Duration::from_secs(60))
        .unwrap_err()
        .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(e.contains(&ids[0]) && e.contains("pending"), "{e}");
    assert!(e.contains("BeginTime"), "{e}");
    let status = c.worker_status().unwrap();
    assert!(
        matches!(&status[0].state, WorkerState::Queued { reason } if reason.contains("BeginTime") && reason.contains("time-out")),
        "{status:?}"
    );
    drop(c);
    assert!(in_squeue(&ids).is_empty(), "drop cancels the job");
}
