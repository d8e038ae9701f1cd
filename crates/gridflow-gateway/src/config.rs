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
    /// The gateway's TLS certificate chain (PEM): with `tls_key`, its port speaks only
    /// TLS (`https://` for the API and dashboards, `gateway+tls://` for clusters), so API
    /// tokens never cross the network in the clear.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Where the state database, cluster tokens and logs go.
    pub state_dir: PathBuf,
    /// The `gridflow` binary started as schedulers and workers (default: this program).
    pub program: Option<PathBuf>,
    /// Seconds without computation after which a cluster is stopped (0: never).
    pub idle_timeout: f64,
    /// Seconds between checks of every cluster (idle time, adaptive scaling, dead
    /// processes).
    pub check_interval: f64,
    /// Seconds a worker must have been asked for before the gateway replaces it when it
    /// ends by itself (a walltime's retirement, a lost node); a younger worker that ends
    /// is left `failed` with its reason, so one that cannot start is not restarted for
    /// ever.
    pub replace_workers_after: f64,
    /// What a cluster may ask for.
    pub bounds: Bounds,
    /// Users known by API token.
    pub users: Vec<UserEntry>,
    /// JupyterHub as a second authenticator.
    pub jupyterhub: Option<JupyterHubConfig>,
    /// The host schedulers listen on, which the workers must reach (the gateway's host
    /// on the compute network for Slurm, SSH and Kubernetes). Schedulers run beside the
    /// gateway; clients reach them only through it. `$VAR` is read from the environment
    /// when the gateway starts (`$POD_IP` in a pod).
    pub scheduler_host: String,
    /// Where clusters' workers run.
    pub backend: BackendConfig,
}

/// Where clusters' workers run: `kind = "local" | "slurm" | "ssh" | "kubernetes"` and
/// that backend's settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// Worker processes on the gateway's machine.
    #[default]
    Local,
    /// One Slurm batch job per worker.
    Slurm(SlurmConfig),
    /// Worker processes started over SSH on a list of hosts.
    Ssh(SshConfig),
    /// One pod per worker, through `kubectl`.
    Kubernetes(KubernetesConfig),
}

impl BackendConfig {
    /// The backend's name, as in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Local => "local",
            BackendConfig::Slurm(_) => "slurm",
            BackendConfig::Ssh(_) => "ssh",
            BackendConfig::Kubernetes(_) => "kubernetes",
        }
    }

    /// The backend options a user may set (when the administrator allows them in
    /// `bounds.backend_options`).
    pub fn known_options(&self) -> &'static [&'static str] {
        match self {
            BackendConfig::Local | BackendConfig::Ssh(_) => &[],
            BackendConfig::Slurm(_) => &["partition", "account", "walltime", "qos"],
            BackendConfig::Kubernetes(_) => &["image"],
        }
    }
}

/// The Slurm backend: each worker is a batch job submitted with `sbatch`; the job script
/// and the worker's token are kept in the cluster's directory under `state_dir`, which
/// must be on a file system the compute nodes share.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// Default partition (`--partition`); a user may choose another when allowed.
    pub partition: Option<String>,
    /// Default account charged (`--account`).
    pub account: Option<String>,
    /// Default walltime in Slurm's format (`01:00:00`); workers retire before it ends.
    pub walltime: Option<String>,
    /// Extra `#SBATCH` directives, as written (`--qos=normal`).
    pub job_extra_directives: Vec<String>,
    /// Shell lines run before the worker starts (`module load ...`).
    pub job_script_prologue: Vec<String>,
    /// The worker command before the scheduler's address (default: the gateway's
    /// program with `worker`).
    pub worker_command: Vec<String>,
    /// The job's name.
    pub job_name: String,
    /// `sbatch`.
    pub sbatch: String,
    /// `squeue`.
    pub squeue: String,
    /// `scancel`.
    pub scancel: String,
}

impl Default for SlurmConfig {
    fn default() -> SlurmConfig {
        SlurmConfig {
            partition: None,
            account: None,
            walltime: None,
            job_extra_directives: Vec::new(),
            job_script_prologue: Vec::new(),
            worker_command: Vec::new(),
            job_name: "gridflow-gateway".into(),
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            scancel: "scancel".into(),
        }
    }
}

/// The SSH backend: workers are started through the gateway's own `ssh` on `hosts`,
/// detached (they outlive the `ssh` call and a gateway restart) and stopped by process
/// id.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// Hosts as `ssh` takes them (`host`, `user@host`, an alias); workers are spread over
    /// them.
    pub hosts: Vec<String>,
    /// The `ssh` program.
    pub ssh: String,
    /// Options before the host (`-F FILE`, `-o KEY=VALUE`, `-i KEY`).
    pub ssh_options: Vec<String>,
    /// The remote program before `worker` (found on the remote `PATH`).
    pub remote_command: Vec<String>,
    /// The remote directory (relative: to the remote home) holding each cluster's token,
    /// logs and spill files.
    pub remote_dir: String,
}

impl Default for SshConfig {
    fn default() -> SshConfig {
        SshConfig {
            hosts: Vec::new(),
            ssh: "ssh".into(),
            ssh_options: Vec::new(),
            remote_command: vec!["gridflow".into()],
            remote_dir: ".gridflow-gateway".into(),
        }
    }
}

/// The Kubernetes backend: each worker is a pod made with `kubectl`, the cluster's token
/// in a Secret. The gateway (and so the schedulers) runs where pods can reach
/// `scheduler_host`, typically in the same Kubernetes cluster.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// The `kubectl` program.
    pub kubectl: String,
    /// The kubeconfig context (`--context`); none: the current one.
    pub context: Option<String>,
    /// The namespace of the pods and secrets.
    pub namespace: String,
    /// The workers' image (holding `gridflow`).
    pub image: String,
    /// `imagePullPolicy`.
    pub image_pull_policy: Option<String>,
    /// The worker command before the scheduler's address.
    pub worker_command: Vec<String>,
    /// The pods' service account.
    pub service_account: Option<String>,
    /// Node labels the pods must match.
    pub node_selector: BTreeMap<String, String>,
}

impl Default for KubernetesConfig {
    fn default() -> KubernetesConfig {
        KubernetesConfig {
            kubectl: "kubectl".into(),
            context: None,
            namespace: "default".into(),
            image: String::new(),
            image_pull_policy: None,
            worker_command: vec!["gridflow".into(), "worker".into()],
            service_account: None,
            node_selector: BTreeMap::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            address: "127.0.0.1:8786".into(),
            public_address: None,
            tls_cert: None,
            tls_key: None,
            state_dir: PathBuf::from("gridflow-gateway"),
            program: None,
            idle_timeout: 3600.0,
            check_interval: 2.0,
            replace_workers_after: 60.0,
            bounds: Bounds::default(),
            users: Vec::new(),
            jupyterhub: None,
            scheduler_host: "127.0.0.1".into(),
            backend: BackendConfig::Local,
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
    /// `https://` hubs' certificates are checked against the system's roots (or
    /// `GRIDFLOW_GATEWAY_CA`).
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

impl JupyterHubConfig {
    /// The URL of the hub's "whose token is this" endpoint (`…/hub/api/user`) for the
    /// configured URL — the hub's base (with its `base_url`, if any) or its API
    /// (`…/hub/api`, as `JUPYTERHUB_API_URL` gives it) — after checking the hub's settings.
    pub fn user_url(&self) -> Result<String> {
        let hub = self;
        let invalid = |d: String| GatewayError::Invalid(format!("jupyterhub: {d}"));
        let base = hub.url.trim().trim_end_matches('/');
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| {
                invalid(format!(
                    "url {:?} must start with http:// or https:// (the hub's API, such as \
                     http://127.0.0.1:8081)",
                    hub.url
                ))
            })?;
        if host.is_empty() || host.starts_with('/') {
            return Err(invalid(format!("url {:?} names no host", hub.url)));
        }
        if !(hub.cache_seconds.is_finite() && hub.cache_seconds >= 0.0) {
            return Err(invalid(format!(
                "cache_seconds = {} must be a number of seconds, at least 0",
                hub.cache_seconds
            )));
        }
        if !(hub.timeout_seconds.is_finite() && hub.timeout_seconds > 0.0) {
            return Err(invalid(format!(
                "timeout_seconds = {} must be a number of seconds above 0",
                hub.timeout_seconds
            )));
        }
        Ok(if base.ends_with("/hub/api") {
            format!("{base}/user")
        } else {
            format!("{base}/hub/api/user")
        })
    }
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
    /// `scheduler_host`, a `$VAR` read from the environment.
    pub fn scheduler_host(&self) -> Result<String> {
        match self.scheduler_host.strip_prefix('$') {
            None => Ok(self.scheduler_host.clone()),
            Some(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    GatewayError::Invalid(format!(
                        "scheduler_host = \"${var}\": the environment variable {var} is not set"
                    ))
                }),
        }
    }

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
            if parse_hex32(&u.token_sha256).is_none() {
                return Err(GatewayError::Invalid(format!(
                    "user {}: token_sha256 must be 64 hex digits (the SHA-256 of the token; \
                     `gridflow gateway token` prints one)",
                    u.name
                )));
            }
        }
        if let Some(hub) = &self.jupyterhub {
            hub.user_url()?;
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(GatewayError::Invalid(
                "tls_cert and tls_key go together: give both (PEM files) or neither".into(),
            ));
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
        for k in self.bounds.backend_options.keys() {
            if !self.backend.known_options().contains(&k.as_str()) {
                return Err(GatewayError::Invalid(format!(
                    "bounds.backend_options: the {} backend has no option {k:?} (it has: {:?})",
                    self.backend.kind(),
                    self.backend.known_options()
                )));
            }
        }
        let host = self.scheduler_host()?;
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback && matches!(self.backend, BackendConfig::Kubernetes(_)) {
            return Err(GatewayError::Invalid(format!(
                "scheduler_host = {host:?}: pods cannot reach the gateway's loopback; give \
                 the gateway's address on the pods' network (e.g. \"$POD_IP\")"
            )));
        }
        match &self.backend {
            BackendConfig::Ssh(s) if s.hosts.is_empty() => {
                return Err(GatewayError::Invalid(
                    "backend (ssh): hosts must name at least one host".into(),
                ));
            }
            BackendConfig::Kubernetes(k) if k.image.trim().is_empty() => {
                return Err(GatewayError::Invalid(
                    "backend (kubernetes): image must name the workers' image".into(),
                ));
            }
            _ => {}
        }
        let positive = self.check_interval.is_finite() && self.check_interval > 0.0;
        if !positive
            || self.idle_timeout.is_nan()
            || self.idle_timeout < 0.0
            || self.replace_workers_after.is_nan()
            || self.replace_workers_after < 0.0
        {
            return Err(GatewayError::Invalid(
                "check_interval must be above 0, idle_timeout and replace_workers_after at \
                 least 0 (seconds)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// 64 hex digits as 32 bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let txt = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}
