//! `gridflow cluster`: the Slurm job script and Kubernetes manifests it prints, and against
//! the one-node Slurm of `scripts/slurm-setup.sh` a real run: two worker jobs of `gridflow
//! worker` join, `gridflow eval --scheduler` on them equals the local executor, and SIGTERM
//! cancels every job (none left in `squeue`). Without Slurm that part says so and passes,
//! except under CI=true, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::slurm_up;

fn gridflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gridflow"))
}

/// Kills the process it holds when dropped (its signal handler then cancels its jobs).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `gridflow cluster ...` process whose workers have started: the process (stopped on
/// drop), the scheduler's address and every line it printed so far.
struct Started {
    guard: Guard,
    address: String,
    lines: Vec<String>,
}

/// Runs `cmd` (a `gridflow cluster` command) and reads its output until `workers` workers
/// are reported running, failing after `timeout`.
fn start_cluster(mut cmd: Command, workers: usize, timeout: Duration) -> Started {
    let mut guard = Guard(cmd.stdout(Stdio::piped()).spawn().unwrap());
    let out = BufReader::new(guard.0.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in out.map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let (mut address, mut lines, mut running) = (None, Vec::new(), 0);
    let start = Instant::now();
    while running < workers {
        assert!(
            start.elapsed() < timeout,
            "workers did not start: {lines:#?}"
        );
        let Ok(l) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(a) = l.strip_prefix("scheduler at ") {
            address = Some(a.to_owned());
        }
        if l.ends_with(": running") {
            running += 1;
        }
        lines.push(l);
    }
    Started {
        guard,
        address: address.expect("the cluster printed its scheduler's address"),
        lines,
    }
}

/// Sends SIGTERM to the cluster process and waits for it: it must exit by the signal
/// (status 143) once it has stopped its workers.
fn sigterm(guard: &mut Guard) {
    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = guard.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status}");
}

#[test]
fn the_job_script_shows_every_option_before_anything_is_submitted() {
    let out = gridflow()
        .args([
            "cluster",
            "slurm",
            "--cores",
            "4",
            "--memory",
            "8GiB",
            "--walltime",
            "02:00:00",
            "--partition",
            "compute",
            "--account",
            "proj",
            "--processes",
            "2",
            "--job-extra-directive=--qos=low",
            "--prologue",
            "module load netcdf",
            "--job-script",
        ])
        .env("SLURM_CONF", "/nonexistent") // nothing may reach Slurm
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    for want in [
        "#SBATCH --partition=compute",
        "#SBATCH --account=proj",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8192M",
        "#SBATCH --time=02:00:00",
        "#SBATCH --qos=low",
        "module load netcdf",
        "worker tcp://SCHEDULER_ADDRESS --nthreads 2 --memory-limit 4294967296",
    ] {
        assert!(s.contains(want), "{want:?} missing:\n{s}");
    }
    let bad = gridflow()
        .args(["cluster", "slurm", "--walltime", "soon", "--job-script"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("walltime \"soon\""));
}

#[test]
fn kubernetes_dry_run_prints_four_manifests() {
    let out = gridflow()
        .args([
            "cluster",
            "kubernetes",
            "--dry-run",
            "--workers",
            "3",
            "--worker-memory",
            "4Gi",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = s
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Secret", "Deployment", "Service", "Deployment"]);
    assert_eq!(docs[3]["spec"]["replicas"], 3);
}

fn squeue_ids() -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn a_slurm_cluster_computes_and_sigterm_cancels_its_jobs() {
    if !slurm_up() {
        return;
    }
    let logs = std::env::temp_dir().join(format!("gridflow-cli-slurm-{}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = gridflow();
    cmd.args([
        "cluster",
        "slurm",
        "--jobs",
        "2",
        "--cores",
        "1",
        "--walltime",
        "00:10:00",
    ])
    .arg("--log-directory")
    .arg(&logs);
    if let Ok(p) = std::env::var("GRIDFLOW_TEST_SLURM_PARTITION") {
        cmd.args(["--partition", &p]);
    }
    let Started {
        mut guard,
        address,
        lines,
    } = start_cluster(cmd, 2, Duration::from_secs(90));
    let jobs: Vec<String> = lines
        .iter()
        .find_map(|l| l.strip_prefix("submitted 2 job(s): "))
        .map(|ids| ids.split(", ").map(str::to_owned).collect())
        .unwrap_or_default();
    assert_eq!(jobs.len(), 2, "{lines:#?}");
    let expr = "(da.arange(4000, chunks=250) * 3).sum()";
    let remote = gridflow()
        .args(["eval", "--json", "--scheduler", &address, expr])
        .output()
        .unwrap();
    assert!(
        remote.status.success(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let local = gridflow()
        .args(["eval", "--json", "--threads", "2", expr])
        .output()
        .unwrap();
    assert_eq!(remote.stdout, local.stdout);

    sigterm(&mut guard);
    // Cancelled jobs pass through COMPLETING while Slurm stops their processes.
    let start = Instant::now();
    loop {
        let left: Vec<String> = squeue_ids()
            .into_iter()
            .filter(|i| jobs.contains(i))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "jobs left after SIGTERM: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&logs);
}

#[test]
fn eval_on_a_slurm_cluster_started_for_the_run_equals_the_local_executor() {
    if !slurm_up() {
        return;
    }
    let mut spec = "slurm:2,cores=1,walltime=00:10:00".to_owned();
    if let Ok(p) = std::env::var("GRIDFLOW_TEST_SLURM_PARTITION") {
        spec.push_str(&format!(",partition={p}"));
    }
    let expr = "(da.arange(3000, chunks=200) ** 2).sum()";
    let before = squeue_ids();
    let remote = gridflow()
        .args(["eval", "--json", "--cluster", &spec, expr])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&remote.stderr);
    assert!(remote.status.success(), "{err}");
    assert!(err.contains("2 Slurm job(s)"), "{err}");
    let local = gridflow()
        .args(["eval", "--json", "--threads", "2", expr])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&remote.stdout).lines().next(),
        String::from_utf8_lossy(&local.stdout).lines().next()
    );
    // Its jobs were cancelled at the end.
    let start = Instant::now();
    while squeue_ids().iter().any(|i| !before.contains(i)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "jobs left: {:?}",
            squeue_ids()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigterm_retires_a_gridflow_worker_gracefully() {
    let c = gridflow_distributed::LocalCluster::with_options(
        gridflow_distributed::LocalClusterOptions {
            n_workers: 2,
            threads_per_worker: 1,
            program: Some(env!("CARGO_BIN_EXE_gridflow").into()),
            restart_workers: false,
            ..Default::default()
        },
    )
    .unwrap();
    let client = c.client().unwrap();
    let pids = c.worker_pids();
    let names: Vec<String> = client
        .workers()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        Command::new("kill")
            .args(["-TERM", &pids[1].to_string()])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    while client.workers().unwrap().len() != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the worker did not retire"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = c.log();
    assert!(
        log.iter().any(|l| l.starts_with("retired worker local-1")),
        "retired, not lost: {log:?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("lost worker")), "{log:?}");
}

#[test]
fn an_ssh_cluster_from_the_command_line_leaves_nothing_after_sigterm() {
    let (Ok(config), Ok(host)) = (
        std::env::var("GRIDFLOW_TEST_SSH_CONFIG"),
        std::env::var("GRIDFLOW_TEST_SSH_HOST"),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no test sshd: run scripts/sshd-setup.sh; source target/sshd/env"
        );
        eprintln!("skipped: no test sshd (run scripts/sshd-setup.sh; source target/sshd/env)");
        return;
    };
    let exe = env!("CARGO_BIN_EXE_gridflow");
    let mut cmd = gridflow();
    cmd.args([
        "cluster",
        "ssh",
        "-F",
        &config,
        &host,
        &host,
        "--workers",
        "2",
    ])
    .args(["--remote-command", exe]);
    let Started {
        mut guard, address, ..
    } = start_cluster(cmd, 2, Duration::from_secs(60));
    let port = address.rsplit(':').next().unwrap().to_owned();
    // The remote scheduler and workers (all name the scheduler's port on their command line).
    let remote = || -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-a", "-f", exe])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!(":{port}")) || l.contains("scheduler --host"))
            .filter(|l| !l.contains("cluster ssh"))
            .map(str::to_owned)
            .collect()
    };
    assert!(remote().len() >= 2, "{:#?}", remote());
    sigterm(&mut guard);
    let start = Instant::now();
    while !remote().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left: {:#?}",
            remote()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
