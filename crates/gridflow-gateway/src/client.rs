//! The gateway's client: [`Gateway`] talks to the REST API; its clusters implement
//! [`Cluster`], so code written for a `LocalCluster` runs on a gateway's cluster.

use crate::api::{AdaptRequest, ClusterReport, ErrorBody, ScaleRequest, WhoAmI};
use crate::config::ClusterOptions;
use crate::{GatewayError, Result};
use gridflow_distributed::{Client, Cluster, DistError, Security, WorkerStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Inner {
    /// `host:port` of the gateway.
    address: String,
    /// The CA file a TLS gateway's certificate is checked against (None: the system's
    /// roots, or plain HTTP).
    ca: Option<std::path::PathBuf>,
    token: String,
    rt: tokio::runtime::Runtime,
    /// The kept-alive connection to the gateway.
    conn: std::sync::Mutex<crate::http::Connection>,
}

/// A connection to a gateway as one user (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gateway({})", self.inner.address)
    }
}

impl Gateway {
    /// A client of the gateway at `address` (`http://host:port`, `https://host:port` or
    /// `host:port`) with the user's API token. A TLS gateway's certificate is checked
    /// against the CA file in `GRIDFLOW_GATEWAY_CA`, else the system's roots.
    pub fn new(address: &str, token: impl Into<String>) -> Result<Gateway> {
        let ca = std::env::var_os(gridflow_distributed::auth::GATEWAY_CA_ENV)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from);
        Gateway::with_ca(address, token, ca.as_deref())
    }

    /// [`Gateway::new`] checking a TLS gateway's certificate against the CA(s) in PEM file
    /// `ca` (`None`: the system's roots).
    pub fn with_ca(
        address: &str,
        token: impl Into<String>,
        ca: Option<&std::path::Path>,
    ) -> Result<Gateway> {
        let tls = address.starts_with("https://") || address.starts_with("gateway+tls://");
        let address = address
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_start_matches("gateway+tls://")
            .trim_start_matches("gateway://")
            .trim_end_matches('/')
            .to_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GatewayError::io("starting the gateway client's event loop", e))?;
        let mut conn = crate::http::Connection::new(&address);
        if tls {
            conn = conn.with_tls(gridflow_distributed::auth::gateway_client_config(ca)?);
        }
        Ok(Gateway {
            inner: Arc::new(Inner {
                conn: std::sync::Mutex::new(conn),
                ca: ca.map(std::path::Path::to_path_buf),
                address,
                token: token.into(),
                rt,
            }),
        })
    }

    /// A client as a notebook on JupyterHub (or a shell) expects one: the address and
    /// token given, else from the environment — the address from
    /// `GRIDFLOW_GATEWAY_ADDRESS`, the token from `GRIDFLOW_GATEWAY_TOKEN`, else
    /// `JUPYTERHUB_API_TOKEN` (which JupyterHub sets in every user's server: a gateway
    /// with the hub authenticator accepts it).
    pub fn from_env(address: Option<&str>, token: Option<&str>) -> Result<Gateway> {
        let (address, token) = resolve_from(address, token, |k| std::env::var(k).ok())?;
        Gateway::new(&address, token)
    }

    /// The gateway's `host:port`.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let auth = format!("token {}", self.inner.token);
        let mut conn = crate::lock(&self.inner.conn);
        let (status, bytes) = self.inner.rt.block_on(conn.request(
            method,
            path,
            &[("Authorization", &auth)],
            body.unwrap_or_default(),
        ))?;
        drop(conn);
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(GatewayError::Remote {
                address: self.inner.address.clone(),
                status,
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| GatewayError::Json {
            what: format!("the answer to {method} {path}"),
            source,
        })
    }

    fn json<T: serde::Serialize>(body: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(body).map_err(|source| GatewayError::Json {
            what: "encoding a request".into(),
            source,
        })
    }

    /// Who the gateway says this token belongs to.
    pub fn whoami(&self) -> Result<WhoAmI> {
        self.call("GET", "/api/whoami", None)
    }

    /// Creates a cluster and returns once its scheduler runs (workers join as they
    /// start: see [`Cluster::worker_status`], or [`GatewayCluster::wait_for_workers`]).
    pub fn new_cluster(&self, options: &ClusterOptions) -> Result<GatewayCluster> {
        let report: ClusterReport =
            self.call("POST", "/api/clusters", Some(Gateway::json(options)?))?;
        GatewayCluster::new(self.clone(), report)
    }

    /// This user's clusters (an administrator's: everyone's).
    pub fn list_clusters(&self) -> Result<Vec<ClusterReport>> {
        self.call("GET", "/api/clusters", None)
    }

    /// One cluster's report (with its token, for its owner).
    pub fn cluster_report(&self, id: &str) -> Result<ClusterReport> {
        self.call("GET", &format!("/api/clusters/{id}"), None)
    }

    /// A handle on an existing cluster of this user.
    pub fn connect(&self, id: &str) -> Result<GatewayCluster> {
        GatewayCluster::new(self.clone(), self.cluster_report(id)?)
    }

    /// Scales a cluster to `workers` workers.
    pub fn scale_cluster(&self, id: &str, workers: usize) -> Result<ClusterReport> {
        self.call(
            "POST",
            &format!("/api/clusters/{id}/scale"),
            Some(Gateway::json(&ScaleRequest { workers })?),
        )
    }

    /// Scales a cluster between `minimum` and `maximum` workers by its pending work.
    pub fn adapt_cluster(&self, id: &str, minimum: usize, maximum: usize) -> Result<ClusterReport> {
        self.call(
            "POST",
            &format!("/api/clusters/{id}/adapt"),
            Some(Gateway::json(&AdaptRequest { minimum, maximum })?),
        )
    }

    /// Stops a cluster.
    pub fn stop_cluster(&self, id: &str) -> Result<()> {
        let _: serde_json::Value = self.call("DELETE", &format!("/api/clusters/{id}"), None)?;
        Ok(())
    }
}

/// Environment variable naming the gateway's address (`host:port` or `http://host:port`).
pub const ADDRESS_ENV: &str = "GRIDFLOW_GATEWAY_ADDRESS";
/// Environment variable holding the user's gateway API token.
pub const TOKEN_ENV: &str = "GRIDFLOW_GATEWAY_TOKEN";
/// The token JupyterHub gives each user's server (used when no gateway token is set).
pub const JUPYTERHUB_TOKEN_ENV: &str = "JUPYTERHUB_API_TOKEN";

/// [`Gateway::from_env`]'s choice of address and token, with `env` reading variables
/// (empty values count as unset).
fn resolve_from(
    address: Option<&str>,
    token: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(String, String)> {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let address = match address {
        Some(a) => a.to_owned(),
        None => env(ADDRESS_ENV).ok_or_else(|| {
            GatewayError::Invalid(format!("no gateway address: give one or set {ADDRESS_ENV}"))
        })?,
    };
    let token = match token {
        Some(t) => t.to_owned(),
        None => env(TOKEN_ENV)
            .or_else(|| env(JUPYTERHUB_TOKEN_ENV))
            .ok_or_else(|| {
                GatewayError::Unauthenticated(format!(
                    "no API token: give one, or set {TOKEN_ENV} (or {JUPYTERHUB_TOKEN_ENV}, \
                     as JupyterHub does in users' servers)"
                ))
            })?,
    };
    Ok((address, token.trim().to_owned()))
}

/// A cluster of a gateway: a [`Cluster`] whose clients reach the scheduler through the
/// gateway's address with the cluster's own token.
pub struct GatewayCluster {
    gateway: Gateway,
    report: ClusterReport,
    security: Security,
}

impl std::fmt::Debug for GatewayCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewayCluster({})", self.report.address)
    }
}

fn dist(e: GatewayError) -> DistError {
    match e {
        GatewayError::Dist(d) => d,
        other => DistError::Cluster(other.to_string()),
    }
}

impl GatewayCluster {
    fn new(gateway: Gateway, report: ClusterReport) -> Result<GatewayCluster> {
        let token = report.token.clone().ok_or_else(|| {
            GatewayError::Forbidden(format!(
                "cluster {}: the gateway gave no token (only its owner gets one)",
                report.id
            ))
        })?;
        let mut security = Security::none().with_token(token)?;
        if let Some(ca) = &gateway.inner.ca {
            security = security.with_gateway_ca(ca)?;
        }
        Ok(GatewayCluster {
            security,
            gateway,
            report,
        })
    }

    /// The cluster's id.
    pub fn id(&self) -> &str {
        &self.report.id
    }

    /// The gateway's report at creation (or connection).
    pub fn report(&self) -> &ClusterReport {
        &self.report
    }

    /// Waits until `n` workers have joined (failing early, with the reason, if workers
    /// failed to start).
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let status = self.gateway.cluster_report(&self.report.id)?.workers;
            let running = status
                .iter()
                .filter(|w| w.state == gridflow_distributed::WorkerState::Running)
                .count();
            if running >= n {
                return Ok(());
            }
            // Still to come: starting, or queued by a batch system.
            let starting = status
                .iter()
                .filter(|w| {
                    matches!(
                        w.state,
                        gridflow_distributed::WorkerState::Starting
                            | gridflow_distributed::WorkerState::Queued { .. }
                    )
                })
                .count();
            let failed = status.iter().find_map(|w| match &w.state {
                gridflow_distributed::WorkerState::Failed { reason } => Some(reason.clone()),
                _ => None,
            });
            if let Some(f) = failed
                && running + starting < n
            {
                return Err(GatewayError::cluster(
                    &self.report.id,
                    format!("a worker failed: {f}"),
                ));
            }
            if start.elapsed() > timeout {
                return Err(GatewayError::cluster(
                    &self.report.id,
                    format!("{running} of {n} workers running after {timeout:?}: {status:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Cluster for GatewayCluster {
    fn scheduler_address(&self) -> String {
        self.report.address.clone()
    }

    fn security(&self) -> Security {
        self.security.clone()
    }

    fn dashboard_link(&self) -> Option<String> {
        self.report.dashboard.clone()
    }

    fn client(&self) -> gridflow_distributed::Result<Client> {
        Client::connect_with(&self.report.address, self.security.clone())
    }

    fn scale(&self, n: usize) -> gridflow_distributed::Result<()> {
        self.gateway
            .scale_cluster(&self.report.id, n)
            .map(|_| ())
            .map_err(dist)
    }

    fn adapt(&self, minimum: usize, maximum: usize) -> gridflow_distributed::Result<()> {
        self.gateway
            .adapt_cluster(&self.report.id, minimum, maximum)
            .map(|_| ())
            .map_err(dist)
    }

    fn worker_status(&self) -> gridflow_distributed::Result<Vec<WorkerStatus>> {
        self.gateway
            .cluster_report(&self.report.id)
            .map(|r| r.workers)
            .map_err(dist)
    }

    fn close(&self) -> gridflow_distributed::Result<()> {
        match self.gateway.stop_cluster(&self.report.id) {
            Ok(()) => Ok(()),
            // Already stopped (by an earlier close, or as idle): nothing to do.
            Err(GatewayError::Remote { status: 404, .. }) => Ok(()),
            Err(e) => Err(dist(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn address_and_token_from_the_environment() {
        let hub = [
            (ADDRESS_ENV, "10.0.0.1:8786"),
            (JUPYTERHUB_TOKEN_ENV, "hubtoken\n"),
        ];
        let got = resolve_from(None, None, env(&hub)).unwrap();
        assert_eq!(got, ("10.0.0.1:8786".into(), "hubtoken".into()));
        // The gateway's own token wins over the hub's; given values win over both.
        let both = [
            (ADDRESS_ENV, "a:1"),
            (TOKEN_ENV, "gw"),
            (JUPYTERHUB_TOKEN_ENV, "hub"),
        ];
        assert_eq!(resolve_from(None, None, env(&both)).unwrap().1, "gw");
        let got = resolve_from(Some("b:2"), Some("mine"), env(&both)).unwrap();
        assert_eq!(got, ("b:2".into(), "mine".into()));
        let empty = [(TOKEN_ENV, ""), (JUPYTERHUB_TOKEN_ENV, "hub")];
        assert_eq!(
            resolve_from(Some("a:1"), None, env(&empty)).unwrap().1,
            "hub"
        );
        let e = resolve_from(None, None, env(&[])).unwrap_err().to_string();
        assert!(e.contains(ADDRESS_ENV), "{e}");
        let e = resolve_from(Some("a:1"), None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(TOKEN_ENV) && e.contains(JUPYTERHUB_TOKEN_ENV),
            "{e}"
        );
    }
}
