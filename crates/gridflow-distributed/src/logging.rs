//! Structured logs for every gridflow process: `tracing` events in the scheduler, workers
//! and the local cluster, written to stderr by one subscriber per process.
//!
//! The level comes from `--log-level` (a level such as `debug`, or a full filter such as
//! `gridflow_distributed=debug,info`), else `GRIDFLOW_LOG`, else `RUST_LOG`, else the
//! process's default: `info` for `gridflow scheduler` and `worker`, `warn` where the
//! scheduler runs inside another program (the CLI's local cluster, Python), as Dask's
//! `LocalCluster` quiets its logs.

use crate::{DistError, Result};
use tracing_subscriber::EnvFilter;

/// The environment variable read for the filter before `RUST_LOG`.
pub const LOG_ENV: &str = "GRIDFLOW_LOG";

/// The filter `--log-level` (or the environment) asks for.
pub fn filter(level: Option<&str>, default: &str) -> Result<EnvFilter> {
    let (spec, from) = match level {
        Some(l) => (l.to_owned(), "--log-level"),
        None => match std::env::var(LOG_ENV).ok().filter(|v| !v.trim().is_empty()) {
            Some(v) => (v, LOG_ENV),
            None => match std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
            {
                Some(v) => (v, "RUST_LOG"),
                None => (default.to_owned(), "the default"),
            },
        },
    };
    EnvFilter::try_new(&spec).map_err(|e| {
        DistError::Option(format!(
            "log filter {spec:?} (from {from}): {e}; use a level (error, warn, info, debug, \
             trace) or directives such as gridflow_distributed=debug,info"
        ))
    })
}

/// Installs the stderr subscriber for this process (once; later calls do nothing), with
/// `level` or the environment's filter, else `default`.
pub fn init(level: Option<&str>, default: &str) -> Result<()> {
    let filter = filter(level, default)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
    use super::*;

    #[test]
    fn bad_filters_are_named() {
        assert!(filter(Some("debug"), "info").is_ok());
        assert!(filter(Some("gridflow_distributed=trace,warn"), "info").is_ok());
        let e = filter(Some("gridflow=loud"), "info")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"gridflow=loud\"") && e.contains("--log-level"),
            "{e}"
        );
    }
}
