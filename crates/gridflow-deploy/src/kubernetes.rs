//! Clusters on Kubernetes: the manifests of a cluster (the auth token as a Secret, a
//! scheduler Deployment and Service with the scheduler and dashboard ports, a worker
//! Deployment with CPU and memory requests and limits), printed for review or applied,
//! scaled and deleted through `kubectl`.
//!
//! Why `kubectl` rather than the `kube` crate or HTTP requests of our own: it talks to the
//! same Kubernetes API with the user's kubeconfig exactly as they use it (contexts, and the
//! exec credential plugins of EKS, GKE and AKS, which a hand-rolled client would not run),
//! and costs no compile time (`kube` with `k8s-openapi` takes minutes on 2 cores and
//! dominates the binary). The manifests are plain JSON (a subset of YAML), so what
//! `--dry-run` prints can be kept and applied by hand.

use crate::command::run;
use crate::{DeployError, Result};
use gridflow_distributed::{
    Adaptive, AdaptiveOptions, Client, Cluster, Security, WorkerState, WorkerStatus,
};
use serde_json::{Value, json};
use std::sync::Mutex;

/// How to deploy a cluster on Kubernetes.
#[derive(Clone, Debug)]
pub struct KubernetesOptions {
    /// The cluster's name: prefix of every object's name and its `instance` label.
    pub name: String,
    /// The namespace; `None`: the kubeconfig context's.
    pub namespace: Option<String>,
    /// The image holding the `gridflow` binary (see the repository's `Dockerfile`).
    pub image: String,
    /// `imagePullPolicy` (`IfNotPresent`, `Always`, `Never`).
    pub image_pull_policy: String,
    /// Worker pods at first.
    pub n_workers: usize,
    /// CPU of each worker pod (a Kubernetes quantity: `1`, `500m`), its request and limit.
    pub worker_cpu: String,
    /// Memory of each worker pod (`4Gi`), its request and limit; the worker's memory limit
    /// is set a little below it, so that it spills before the kernel kills it.
    pub worker_memory: String,
    /// Threads per worker; 0: the CPU quantity rounded up.
    pub worker_threads: usize,
    /// CPU of the scheduler pod.
    pub scheduler_cpu: String,
    /// Memory of the scheduler pod.
    pub scheduler_memory: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// The dashboard's port (served by the scheduler's HTTP server).
    pub dashboard_port: u16,
    /// The Service's type (`ClusterIP`, `LoadBalancer`, `NodePort`).
    pub service_type: String,
    /// The shared secret; `None`: a fresh one.
    pub token: Option<String>,
    /// The `kubectl` program.
    pub kubectl: String,
    /// Options before every `kubectl` command (`--context C`, `--kubeconfig F`).
    pub kubectl_options: Vec<String>,
    /// Where this process reaches the scheduler (e.g. through `kubectl port-forward`);
    /// needed by [`Cluster::adapt`] and for graceful scale-down. `None`: the Service's
    /// address inside the cluster.
    pub client_address: Option<String>,
}

impl Default for KubernetesOptions {
    fn default() -> KubernetesOptions {
        KubernetesOptions {
            name: "gridflow".into(),
            namespace: None,
            image: format!("gridflow:{}", env!("CARGO_PKG_VERSION")),
            image_pull_policy: "IfNotPresent".into(),
            n_workers: 1,
            worker_cpu: "1".into(),
            worker_memory: "2Gi".into(),
            worker_threads: 0,
            scheduler_cpu: "1".into(),
            scheduler_memory: "1Gi".into(),
            scheduler_port: 8786,
            dashboard_port: 8787,
            service_type: "ClusterIP".into(),
            token: None,
            kubectl: "kubectl".into(),
            kubectl_options: Vec::new(),
            client_address: None,
        }
    }
}

/// Parses a Kubernetes quantity (`500m`, `2`, `4Gi`, `1.5G`, `128974848`) as a number of
/// units (cores or bytes).
pub fn parse_quantity(q: &str) -> Result<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| DeployError::Invalid(format!("{q:?} is not a Kubernetes quantity")))?;
    let m = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(DeployError::Invalid(format!(
                "{q:?}: unknown quantity suffix {suffix:?} (m, k, M, G, T, Ki, Mi, Gi, Ti)"
            )));
        }
    };
    Ok(n * m)
}

/// A DNS-1123 name (lower-case letters, digits, '-'; starts and ends alphanumeric; at most
/// 40 characters here, leaving room for suffixes).
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DeployError::Invalid(format!(
            "kubernetes: the name {name:?} must be lower-case letters, digits and '-', start \
             and end with a letter or digit, at most 40 characters"
        )))
    }
}

impl KubernetesOptions {
    fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "gridflow",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": component,
        })
    }

    fn metadata(&self, suffix: &str, component: &str) -> Value {
        let mut m = json!({
            "name": format!("{}-{suffix}", self.name),
            "labels": self.labels(component),
        });
        if let (Some(ns), Some(o)) = (&self.namespace, m.as_object_mut()) {
            o.insert("namespace".into(), json!(ns));
        }
        m
    }

    /// The scheduler's address inside the cluster (the Service's DNS name).
    pub fn in_cluster_address(&self) -> String {
        let ns = self
            .namespace
            .as_ref()
            .map_or_else(String::new, |n| format!(".{n}.svc"));
        format!("tcp://{}-scheduler{ns}:{}", self.name, self.scheduler_port)
    }

    /// The manifests, in the order to apply them: Secret, scheduler Deployment and Service,
    /// worker Deployment. `token`: the shared secret.
    pub fn manifests(&self, token: &str) -> Result<Vec<Value>> {
        check_name(&self.name)?;
        let cpu = parse_quantity(&self.worker_cpu)?;
        let mem = parse_quantity(&self.worker_memory)?;
        parse_quantity(&self.scheduler_cpu)?;
        parse_quantity(&self.scheduler_memory)?;
        if cpu <= 0.0 || mem <= 0.0 {
            return Err(DeployError::Invalid(
                "kubernetes: worker CPU and memory must be above 0".into(),
            ));
        }
        let threads = if self.worker_threads > 0 {
            self.worker_threads
        } else {
            cpu.ceil().max(1.0) as usize
        };
        // 95% of the pod's limit: the worker spills and pauses before the OOM killer acts.
        let memory_limit = (mem * 0.95) as u64;
        let token_mount = json!({"name": "auth", "mountPath": "/etc/gridflow", "readOnly": true});
        let token_volume = json!({"name": "auth", "secret": {
            "secretName": format!("{}-auth", self.name), "defaultMode": 0o400}});
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self.metadata("auth", "auth"),
            "type": "Opaque",
            "stringData": {"token": token},
        });
        let scheduler = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata("scheduler", "scheduler"),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": self.labels("scheduler")},
                "template": {
                    "metadata": {"labels": self.labels("scheduler")},
                    "spec": {
                        "containers": [{
                            "name": "scheduler",
                            "image": self.image,
                            "imagePullPolicy": self.image_pull_policy,
                            "args": [
                                "scheduler",
                                "--host", "0.0.0.0",
                                "--port", self.scheduler_port.to_string(),
                                "--auth-token-file", "/etc/gridflow/token",
                                "--dashboard-address", format!("0.0.0.0:{}", self.dashboard_port),
                            ],
                            "ports": [
                                {"name": "scheduler", "containerPort": self.scheduler_port},
                                {"name": "dashboard", "containerPort": self.dashboard_port},
                            ],
                            "readinessProbe": {
                                "tcpSocket": {"port": "scheduler"},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": self.scheduler_cpu, "memory": self.scheduler_memory},
                                "limits": {"cpu": self.scheduler_cpu, "memory": self.scheduler_memory},
                            },
                            "volumeMounts": [token_mount.clone()],
                        }],
                        "volumes": [token_volume.clone()],
                    },
                },
            },
        });
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata("scheduler", "scheduler"),
            "spec": {
                "type": self.service_type,
                "selector": self.labels("scheduler"),
                "ports": [
                    {"name": "scheduler", "port": self.scheduler_port, "targetPort": "scheduler"},
                    {"name": "dashboard", "port": self.dashboard_port, "targetPort": "dashboard"},
                ],
            },
        });
        let workers = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata("worker", "worker"),
            "spec": {
                "replicas": self.n_workers,
                "selector": {"matchLabels": self.labels("worker")},
                "template": {
                    "metadata": {"labels": self.labels("worker")},
                    "spec": {
                        // SIGTERM retires a worker (results moved first): give it time.
                        "terminationGracePeriodSeconds": 60,
                        "containers": [{
                            "name": "worker",
                            "image": self.image,
                            "imagePullPolicy": self.image_pull_policy,
                            // $(VAR) is expanded by Kubernetes from the container's env.
                            "args": [
                                "worker", self.in_cluster_address(),
                                "--nthreads", threads.to_string(),
                                "--memory-limit", memory_limit.to_string(),
                                "--name", "$(POD_NAME)",
                                "--host", "$(POD_IP)",
                                "--auth-token-file", "/etc/gridflow/token",
                                "--local-directory", "/scratch",
                            ],
                            "env": [
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            ],
                            "resources": {
                                "requests": {"cpu": self.worker_cpu, "memory": self.worker_memory},
                                "limits": {"cpu": self.worker_cpu, "memory": self.worker_memory},
                            },
                            "volumeMounts": [
                                token_mount,
                                {"name": "scratch", "mountPath": "/scratch"},
                            ],
                        }],
                        "volumes": [token_volume, {"name": "scratch", "emptyDir": {}}],
                    },
                },
            },
        });
        Ok(vec![secret, scheduler, service, workers])
    }

    /// The manifests as one multi-document YAML stream (each document JSON, which YAML
    /// reads as is), as `--dry-run` prints them.
    pub fn render(&self, token: &str) -> Result<String> {
        let docs = self.manifests(token)?;
        let mut out = String::new();
        for d in docs {
            out.push_str("---\n");
            out.push_str(
                &serde_json::to_string_pretty(&d)
                    .map_err(|e| DeployError::Invalid(format!("rendering a manifest: {e}")))?,
            );
            out.push('\n');
        }
        Ok(out)
    }

    fn kubectl(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut a: Vec<String> = self.kubectl_options.clone();
        if let Some(ns) = &self.namespace {
            a.extend(["--namespace".into(), ns.clone()]);
        }
        a.extend(args.iter().map(|s| (*s).to_owned()));
        run(&self.kubectl, &a, input)
    }

    /// Deletes every object of the cluster named `name` (by its `instance` label).
    pub fn delete(&self) -> Result<()> {
        self.kubectl(
            &[
                "delete",
                "deployment,service,secret",
                "-l",
                &format!("app.kubernetes.io/instance={}", self.name),
                "--wait=false",
            ],
            None,
        )
        .map(|_| ())
    }

    fn selector(&self, component: &str) -> String {
        format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/component={component}",
            self.name
        )
    }
}

/// A cluster whose scheduler and workers run as Kubernetes Deployments; deleted on close
/// and on drop.
pub struct KubernetesCluster {
    options: KubernetesOptions,
    security: Security,
    adaptive: Mutex<Option<Adaptive>>,
    closed: Mutex<bool>,
}

impl KubernetesCluster {
    /// Applies the manifests (`kubectl apply`); the pods start as the cluster schedules
    /// them.
    pub fn new(options: KubernetesOptions) -> Result<KubernetesCluster> {
        let token = match &options.token {
            Some(t) => t.clone(),
            None => gridflow_distributed::auth::generate_token()?,
        };
        let manifests = options.render(&token)?;
        options.kubectl(&["apply", "-f", "-"], Some(&manifests))?;
        Ok(KubernetesCluster {
            security: Security::none().with_token(&token)?,
            options,
            adaptive: Mutex::new(None),
            closed: Mutex::new(false),
        })
    }

    fn scale_to(options: &KubernetesOptions, security: &Security, n: usize) -> Result<()> {
        // Graceful when the scheduler is reachable: the pods that go are chosen, marked as
        // the cheapest to delete, and retired (results moved) before the Deployment shrinks.
        if let Some(addr) = &options.client_address {
            let client = Client::connect_with(addr, security.clone())?;
            let names: Vec<String> = client.workers()?.into_iter().map(|w| w.name).collect();
            if names.len() > n {
                let leaving: Vec<String> = names[n..].to_vec();
                for pod in &leaving {
                    options.kubectl(
                        &[
                            "annotate",
                            "--overwrite",
                            &format!("pod/{pod}"),
                            "controller.kubernetes.io/pod-deletion-cost=-1000",
                        ],
                        None,
                    )?;
                }
                client.retire_workers(&leaving)?;
            }
        }
        options.kubectl(
            &[
                "scale",
                &format!("deployment/{}-worker", options.name),
                &format!("--replicas={n}"),
            ],
            None,
        )?;
        Ok(())
    }

    fn delete(&self) -> Result<()> {
        let mut closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *closed {
            return Ok(());
        }
        if let Some(mut a) = self
            .adaptive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            a.stop();
        }
        self.options.delete()?;
        *closed = true;
        Ok(())
    }

    /// Leaves the cluster running in Kubernetes when this handle goes (the CLI's `gridflow
    /// cluster kubernetes` applies and exits; `--delete` removes it later).
    pub fn keep(self) {
        *self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    }
}

impl Cluster for KubernetesCluster {
    fn scheduler_address(&self) -> String {
        self.options
            .client_address
            .clone()
            .unwrap_or_else(|| self.options.in_cluster_address())
    }

    fn security(&self) -> Security {
        self.security.clone()
    }

    fn scale(&self, n: usize) -> gridflow_distributed::Result<()> {
        if let Some(mut a) = self
            .adaptive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            a.stop();
        }
        KubernetesCluster::scale_to(&self.options, &self.security, n)
            .map_err(|e| e.into_dist("kubernetes"))
    }

    fn adapt(&self, minimum: usize, maximum: usize) -> gridflow_distributed::Result<()> {
        let Some(addr) = self.options.client_address.clone() else {
            return Err(DeployError::Invalid(
                "kubernetes: adapt needs the scheduler reachable from here (client_address, \
                 e.g. through kubectl port-forward service/NAME-scheduler 8786)"
                    .into(),
            )
            .into_dist("kubernetes"));
        };
        let client = Client::connect_with(&addr, self.security.clone())?;
        let current = Client::connect_with(&addr, self.security.clone())?;
        let (o, s) = (self.options.clone(), self.security.clone());
        let a = Adaptive::start(
            AdaptiveOptions::new(minimum, maximum),
            move || Ok(usize::try_from(client.adaptive_target()?.target).unwrap_or(usize::MAX)),
            move || current.workers().map_or(0, |w| w.len()),
            move |n| KubernetesCluster::scale_to(&o, &s, n).map_err(|e| e.into_dist("kubernetes")),
        )?;
        *self
            .adaptive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(a);
        Ok(())
    }

    fn worker_status(&self) -> gridflow_distributed::Result<Vec<WorkerStatus>> {
        let out = self
            .options
            .kubectl(
                &[
                    "get",
                    "pods",
                    "-l",
                    &self.options.selector("worker"),
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name}|{.status.phase}|{.status.containerStatuses[0].state.waiting.reason}{\"\\n\"}{end}",
                ],
                None,
            )
            .map_err(|e| e.into_dist("kubernetes"))?;
        Ok(out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut p = l.split('|');
                let name = p.next().unwrap_or_default().to_owned();
                let phase = p.next().unwrap_or_default();
                let reason = p.next().unwrap_or_default().to_owned();
                let state = match phase {
                    "Pending" => WorkerState::Queued { reason },
                    "Running" if reason.is_empty() => WorkerState::Running,
                    "Running" => WorkerState::Failed { reason },
                    "Succeeded" => WorkerState::Stopped,
                    other => WorkerState::Failed {
                        reason: format!("pod {other} {reason}").trim().to_owned(),
                    },
                };
                WorkerStatus {
                    id: name.clone(),
                    name,
                    state,
                }
            })
            .collect())
    }

    fn close(&self) -> gridflow_distributed::Result<()> {
        self.delete().map_err(|e| e.into_dist("kubernetes"))
    }
}

impl Drop for KubernetesCluster {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("gridflow kubernetes: deleting the cluster: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantities_parse_in_kubernetes_units() {
        assert_eq!(parse_quantity("500m").unwrap(), 0.5);
        assert_eq!(parse_quantity("2").unwrap(), 2.0);
        assert_eq!(
            parse_quantity("4Gi").unwrap(),
            4.0 * 1024.0 * 1024.0 * 1024.0
        );
        assert_eq!(parse_quantity("1.5G").unwrap(), 1.5e9);
        let e = parse_quantity("3Qi").unwrap_err().to_string();
        assert!(e.contains("Qi"), "{e}");
        assert!(parse_quantity("lots").is_err());
    }

    #[test]
    fn the_manifests_carry_resources_ports_and_the_secret() {
        let o = KubernetesOptions {
            name: "demo".into(),
            namespace: Some("science".into()),
            n_workers: 3,
            worker_cpu: "2".into(),
            worker_memory: "4Gi".into(),
            ..KubernetesOptions::default()
        };
        let m = o.manifests("s3cret").unwrap();
        let kinds: Vec<&str> = m.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Secret", "Deployment", "Service", "Deployment"]);
        assert_eq!(m[0]["stringData"]["token"], "s3cret");
        let w = &m[3]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(m[3]["spec"]["replicas"], 3);
        assert_eq!(w["resources"]["limits"]["memory"], "4Gi");
        assert_eq!(w["resources"]["requests"]["cpu"], "2");
        let args: Vec<&str> = w["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[1], "tcp://demo-scheduler.science.svc:8786");
        assert!(args.windows(2).any(|p| p == ["--nthreads", "2"]));
        let limit = (4.0 * 1024.0 * 1024.0 * 1024.0 * 0.95) as u64;
        assert!(
            args.windows(2)
                .any(|p| p[0] == "--memory-limit" && p[1] == limit.to_string())
        );
        let ports = &m[2]["spec"]["ports"];
        assert_eq!(ports[1]["name"], "dashboard");
        assert_eq!(ports[1]["port"], 8787);
        // The secret never appears outside the Secret.
        for d in &m[1..] {
            assert!(!d.to_string().contains("s3cret"));
        }
        let bad = KubernetesOptions {
            name: "Bad_Name".into(),
            ..KubernetesOptions::default()
        };
        assert!(
            bad.manifests("t")
                .unwrap_err()
                .to_string()
                .contains("Bad_Name")
        );
    }
}
