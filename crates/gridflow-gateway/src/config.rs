//! The gateway's configuration (`--config FILE`, TOML or JSON by its extension): where it
//! listens and keeps its state, its users, and the administrator's bounds on what a
//! cluster may ask for.

use crate::{GatewayError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The gateway's configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `host:port` the gateway listens on (REST API and cluster routing on one port).
    pub address: String,
    /// The `host:port` clients are told to use (default: the address bound).
    pub public_address: Option<String>,
    /// Where the state database, cluster tokens and logs go.
    pub state_dir: PathBuf,
    /// The `gridflow` binary started as schedulers and workers (default: this program).
    pub program: Option<PathBuf>,
    /// Seconds without computation after which a cluster is stopped (0: never).
    pub idle_timeout: f64,
    /// Seconds between checks of every cluster (idle time, adaptive scaling, dead
    /// processes).
    pub check_interval: f64,
    /// What a cluster may ask for.
    pub bounds: Bounds,
    /// Users known by API token.
    pub users: Vec<UserEntry>,
    /// JupyterHub as a second authenticator.
    pub jupyterhub: Option<JupyterHubConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            address: "127.0.0.1:8786".into(),
            public_address: None,
            state_dir: PathBuf::from("gridflow-gateway"),
            program: None,
            idle_timeout: 3600.0,
            check_interval: 2.0,
            bounds: Bounds::default(),
            users: Vec::new(),
            jupyterhub: None,
        }
    }
}

/// A user known by API token. Only the token's SHA-256 is kept (`gridflow gateway token`
/// prints a new token and its hash).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The user's name.
    pub name: String,
    /// SHA-256 of the user's API token, in hex.
    pub token_sha256: String,
    /// May list and stop every user's clusters.
    #[serde(default)]
    pub admin: bool,
}

/// JupyterHub's token check: a token is a user's when the hub's `/hub/api/user` says so.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JupyterHubConfig {
    /// The hub's URL: its base (`http://127.0.0.1:8081`, with JupyterHub's `base_url` if
    /// it has one) or its API (`http://127.0.0.1:8081/hub/api`, as `JUPYTERHUB_API_URL`).
    /// Plain `http://` only (the hub's internal API port).
    pub url: String,
    /// Seconds a hub answer is reused for the same token (the hub is not asked on every
    /// request of a busy user).
    #[serde(default = "default_cache")]
    pub cache_seconds: f64,
    /// Hub users treated as gateway administrators (besides the hub's own admins).
    #[serde(default)]
    pub admin_users: Vec<String>,
    /// Seconds the hub may take to answer before the request is refused (503), so a hub
    /// that hangs does not hang the gateway's callers.
    #[serde(default = "default_hub_timeout")]
    pub timeout_seconds: f64,
}

fn default_hub_timeout() -> f64 {
    10.0
}

fn default_cache() -> f64 {
    60.0
}

/// The administrator's bounds and defaults for cluster options.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bounds {
    /// Most workers a cluster may have.
    pub max_workers: usize,
    /// Most threads per worker.
    pub max_threads: usize,
    /// Most memory per worker in bytes (0: no bound, and no limit by default).
    pub max_memory: u64,
    /// Most clusters one user may run at once.
    pub max_clusters_per_user: usize,
    /// Workers of a cluster that asks for none.
    pub default_workers: usize,
    /// Threads per worker when not asked for.
    pub default_threads: usize,
    /// Memory per worker when not asked for (0: none).
    pub default_memory: u64,
    /// Backend-specific options a user may set, each with the values allowed (an empty
    /// list: any value).
    pub backend_options: BTreeMap<String, Vec<String>>,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            max_workers: 8,
            max_threads: 4,
            max_memory: 0,
            max_clusters_per_user: 4,
            default_workers: 1,
            default_threads: 1,
            default_memory: 0,
            backend_options: BTreeMap::new(),
        }
    }
}

/// What a user asks for when creating a cluster (every field optional).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterOptions {
    /// Workers.
    pub workers: Option<usize>,
    /// Threads per worker.
    pub threads: Option<usize>,
    /// Memory limit per worker in bytes.
    pub memory: Option<u64>,
    /// Backend-specific options (must be allowed by the administrator).
    pub backend: BTreeMap<String, String>,
}

/// Cluster options after defaults and bounds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Workers.
    pub workers: usize,
    /// Threads per worker.
    pub threads: usize,
    /// Memory limit per worker in bytes (0: none).
    pub memory: u64,
    /// Backend-specific options.
    pub backend: BTreeMap<String, String>,
}

impl Bounds {
    /// Fills in defaults and checks every option against the bounds; an error names the
    /// option, the value and the bound.
    pub fn resolve(&self, o: &ClusterOptions) -> Result<ClusterSpec> {
        let workers = o.workers.unwrap_or(self.default_workers);
        let threads = o.threads.unwrap_or(self.default_threads);
        let memory = o.memory.unwrap_or(self.default_memory);
        self.check_workers(workers)?;
        if threads == 0 || threads > self.max_threads {
            return Err(GatewayError::Invalid(format!(
                "threads = {threads} per worker is outside the gateway's bounds 1..={}",
                self.max_threads
            )));
        }
        if self.max_memory > 0 && (memory == 0 || memory > self.max_memory) {
            return Err(GatewayError::Invalid(format!(
                "memory = {memory} bytes per worker is outside the gateway's bounds \
                 1..={} bytes",
                self.max_memory
            )));
        }
        for (k, v) in &o.backend {
            match self.backend_options.get(k) {
                None => {
                    return Err(GatewayError::Invalid(format!(
                        "backend option {k:?} is not allowed by this gateway (allowed: {:?})",
                        self.backend_options.keys().collect::<Vec<_>>()
                    )));
                }
                Some(allowed) if !allowed.is_empty() && !allowed.contains(v) => {
                    return Err(GatewayError::Invalid(format!(
                        "backend option {k} = {v:?} is not one of {allowed:?}"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(ClusterSpec {
            workers,
            threads,
            memory,
            backend: o.backend.clone(),
        })
    }

    /// Checks a worker count against `max_workers`.
    pub fn check_workers(&self, n: usize) -> Result<()> {
        if n > self.max_workers {
            return Err(GatewayError::Invalid(format!(
                "workers = {n} is above the gateway's bound of {} workers per cluster",
                self.max_workers
            )));
        }
        Ok(())
    }
}

impl Config {
    /// Reads a TOML (`.toml`) or JSON (any other extension) configuration file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let err = |detail: String| GatewayError::Config {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let c: Config = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| err(e.to_string()))?
        } else {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
        };
        c.check().map_err(|e| err(e.to_string()))?;
        Ok(c)
    }

    /// Checks what serde cannot: hashes are SHA-256 hex, names unique, bounds sane.
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for u in &self.users {
            if u.name.is_empty() || !seen.insert(&u.name) {
                return Err(GatewayError::Invalid(format!(
                    "user names must be unique and non-empty ({:?})",
                    u.name
                )));
            }
            if crate::auth::parse_hex32(&u.token_sha256).is_none() {
                return Err(GatewayError::Invalid(format!(
                    "user {}: token_sha256 must be 64 hex digits (the SHA-256 of the token; \
                     `gridflow gateway token` prints one)",
                    u.name
                )));
            }
        }
        if let Some(hub) = &self.jupyterhub {
            crate::auth::hub_user_url(hub)?;
        }
        let b = &self.bounds;
        if b.max_threads == 0 || b.default_threads == 0 {
            return Err(GatewayError::Invalid(
                "bounds: max_threads and default_threads must be at least 1".into(),
            ));
        }
        b.resolve(&ClusterOptions::default()).map_err(|e| {
            GatewayError::Invalid(format!("bounds: the defaults break the bounds: {e}"))
        })?;
        let positive = self.check_interval.is_finite() && self.check_interval > 0.0;
        if !positive || self.idle_timeout.is_nan() || self.idle_timeout < 0.0 {
            return Err(GatewayError::Invalid(
                "check_interval must be above 0 and idle_timeout at least 0 (seconds)".into(),
            ));
        }
        Ok(())
    }
}
