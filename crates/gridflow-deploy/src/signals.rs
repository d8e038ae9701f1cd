//! Clean-up on Ctrl-C and SIGTERM: a cluster registers how to stop what it started (Slurm
//! jobs to `scancel`, remote processes to kill), and [`cancel_on_signals`] runs every such
//! clean-up before the process exits, so that an interrupted run leaves no job queued or
//! process running behind it.

use crate::{DeployError, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

type Cleanup = Arc<dyn Fn() + Send + Sync>;

static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static INSTALLED: OnceLock<()> = OnceLock::new();

fn cleanups() -> std::sync::MutexGuard<'static, Vec<(u64, Cleanup)>> {
    CLEANUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A registered clean-up; dropping it unregisters it (the cluster closed normally).
pub(crate) struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        cleanups().retain(|(id, _)| *id != self.0);
    }
}

/// Registers `f` to run if the process is interrupted (once [`cancel_on_signals`] is on).
pub(crate) fn register(f: impl Fn() + Send + Sync + 'static) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    cleanups().push((id, Arc::new(f)));
    Registration(id)
}

/// Runs every registered clean-up now (what a signal does before exiting).
pub fn run_cleanups() {
    let all: Vec<Cleanup> = cleanups().iter().map(|(_, f)| f.clone()).collect();
    for f in all {
        f();
    }
}

/// From now on, SIGINT (Ctrl-C) and SIGTERM run every registered clean-up (each cluster's
/// `scancel` of its jobs, the kill of its remote processes), then exit with status 130 or
/// 143. Calling it again does nothing.
pub fn cancel_on_signals() -> Result<()> {
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DeployError::io("starting the signal handler", e))?;
    // Registered here, before returning, so no signal is missed in between.
    let (mut int, mut term) = rt
        .block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .map_err(|e| DeployError::io("listening for SIGINT and SIGTERM", e))?;
    std::thread::Builder::new()
        .name("gridflow-signals".into())
        .spawn(move || {
            let code = rt.block_on(async {
                tokio::select! {
                    _ = int.recv() => 130,
                    _ = term.recv() => 143,
                }
            });
            eprintln!("gridflow: interrupted; stopping the cluster's jobs and processes");
            run_cleanups();
            std::process::exit(code);
        })
        .map_err(|e| DeployError::io("starting the signal handler", e))?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// For a worker process: on SIGTERM (a Kubernetes pod being stopped, `scancel`, a job's
/// `--signal`), retire gracefully instead of dying — ask the scheduler at `address` to
/// retire worker `name`, which moves its results to other workers and then tells it to
/// exit. If the scheduler cannot be asked, or a second SIGTERM comes, exit at once (143).
pub fn retire_on_sigterm(
    address: &str,
    name: &str,
    security: gridflow_distributed::Security,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DeployError::io("starting the SIGTERM handler", e))?;
    let mut term = rt
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })
        .map_err(|e| DeployError::io("listening for SIGTERM", e))?;
    let (address, name) = (address.to_owned(), name.to_owned());
    std::thread::Builder::new()
        .name("gridflow-sigterm".into())
        .spawn(move || {
            rt.block_on(term.recv());
            eprintln!("gridflow worker {name}: SIGTERM: retiring (results moved to other workers)");
            // A second SIGTERM while retiring: stop now.
            std::thread::spawn(move || {
                rt.block_on(term.recv());
                std::process::exit(143);
            });
            let retired = gridflow_distributed::Client::connect_with(&address, security)
                .and_then(|c| c.retire_workers(std::slice::from_ref(&name)));
            if let Err(e) = retired {
                eprintln!("gridflow worker {name}: retiring on SIGTERM failed: {e}; exiting");
                std::process::exit(143);
            }
        })
        .map_err(|e| DeployError::io("starting the SIGTERM handler", e))?;
    Ok(())
}
