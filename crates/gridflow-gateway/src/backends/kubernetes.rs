//! Workers as Kubernetes pods made with `kubectl` (one pod per worker, never restarted by
//! Kubernetes: the gateway decides), the cluster's token in a Secret mounted read-only.
//! Pod states come from one `kubectl get pods` per check: a pod that cannot be scheduled
//! or whose image cannot be pulled is reported with Kubernetes' reason.

use super::{Ctx, Seen};
use crate::config::KubernetesConfig;
use crate::db::{ClusterRecord, WorkerRecord};
use crate::{GatewayError, Result, lock};
use gridflow_deploy::run_command;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) struct KubernetesWorkers {
    config: KubernetesConfig,
    /// Each pod's state from the last `kubectl get pods`.
    pods: Mutex<HashMap<String, Seen>>,
}

/// The label every object the gateway makes carries.
const MANAGED: &str = "app.kubernetes.io/managed-by=gridflow-gateway";
/// The label naming an object's cluster.
const CLUSTER_LABEL: &str = "gridflow.io/cluster";
/// Where the token is mounted in a worker's pod.
const TOKEN_DIR: &str = "/etc/gridflow";

fn err(source: gridflow_deploy::DeployError) -> GatewayError {
    GatewayError::Backend {
        backend: "kubernetes",
        source: Box::new(source),
    }
}

/// The name of cluster `id`'s Secret.
fn secret_name(id: &str) -> String {
    format!("gridflow-{id}")
}

/// A worker's pod name (names are lowercase hex ids and numbers: valid DNS labels).
fn pod_name(worker: &str) -> String {
    format!("gridflow-{}", worker.to_ascii_lowercase())
}

impl KubernetesWorkers {
    pub fn new(config: KubernetesConfig) -> KubernetesWorkers {
        KubernetesWorkers {
            config,
            pods: Mutex::default(),
        }
    }

    fn kubectl(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(c) = &self.config.context {
            a.push(format!("--context={c}"));
        }
        a.push(format!("--namespace={}", self.config.namespace));
        a.extend(args.iter().map(|s| (*s).to_owned()));
        run_command(&self.config.kubectl, &a, input).map_err(err)
    }

    fn labels(&self, id: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "gridflow",
            "app.kubernetes.io/component": "worker",
            "app.kubernetes.io/managed-by": "gridflow-gateway",
            CLUSTER_LABEL: id,
        })
    }

    /// The Secret and the Pod of one worker, as a `v1` List for `kubectl apply`.
    pub fn manifests(&self, ctx: &Ctx<'_>, name: &str) -> Value {
        let image = ctx
            .spec
            .backend
            .get("image")
            .cloned()
            .unwrap_or_else(|| self.config.image.clone());
        let mut command = self.config.worker_command.clone();
        command.extend([
            ctx.address.to_owned(),
            "--nthreads".into(),
            ctx.spec.threads.max(1).to_string(),
            "--name".into(),
            name.to_owned(),
            // Kubernetes substitutes the pod's IP (from the environment below).
            "--host".into(),
            "$(POD_IP)".into(),
            "--auth-token-file".into(),
            format!("{TOKEN_DIR}/token"),
            "--local-directory".into(),
            "/tmp/gridflow-worker".into(),
        ]);
        let mut requests = json!({"cpu": ctx.spec.threads.max(1).to_string()});
        let mut resources = json!({});
        if ctx.spec.memory > 0 {
            command.extend(["--memory-limit".into(), ctx.spec.memory.to_string()]);
            requests["memory"] = json!(ctx.spec.memory.to_string());
            resources["limits"] = json!({"memory": ctx.spec.memory.to_string()});
        }
        resources["requests"] = requests;
        let mut container = json!({
            "name": "worker",
            "image": image,
            "command": command,
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "resources": resources,
            "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR, "readOnly": true}],
        });
        if let Some(p) = &self.config.image_pull_policy {
            container["imagePullPolicy"] = json!(p);
        }
        let mut spec = json!({
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": [{"name": "token", "secret": {"secretName": secret_name(ctx.id), "defaultMode": 0o400}}],
        });
        if let Some(sa) = &self.config.service_account {
            spec["serviceAccountName"] = json!(sa);
        }
        if !self.config.node_selector.is_empty() {
            spec["nodeSelector"] = json!(self.config.node_selector);
        }
        json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret_name(ctx.id), "labels": self.labels(ctx.id)},
                    "type": "Opaque",
                    "stringData": {"token": ctx.token},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod_name(name), "labels": self.labels(ctx.id)},
                    "spec": spec,
                },
            ],
        })
    }

    pub fn start(&self, ctx: &Ctx<'_>, name: &str) -> Result<WorkerRecord> {
        let doc = self.manifests(ctx, name).to_string();
        self.kubectl(&["apply", "-f", "-"], Some(&doc))?;
        let pod = pod_name(name);
        lock(&self.pods).insert(pod.clone(), Seen::Queued("created".into()));
        Ok(WorkerRecord {
            name: name.to_owned(),
            pid: 0,
            failed: None,
            job: Some(pod),
            host: None,
            asked: crate::now(),
        })
    }

    pub fn poll(&self, clusters: &[ClusterRecord]) -> Result<()> {
        let pods: Vec<String> = clusters
            .iter()
            .flat_map(|c| &c.workers)
            .filter(|w| w.failed.is_none())
            .filter_map(|w| w.job.clone())
            .collect();
        if pods.is_empty() {
            return Ok(());
        }
        let out = self.kubectl(&["get", "pods", "-l", MANAGED, "-o", "json"], None)?;
        let doc: Value = serde_json::from_str(&out).map_err(|source| GatewayError::Json {
            what: "kubectl get pods".into(),
            source,
        })?;
        let mut found = pod_states(&doc);
        let mut seen = lock(&self.pods);
        seen.clear();
        for p in pods {
            let s = found
                .remove(&p)
                .unwrap_or_else(|| Seen::Ended(format!("pod {p} is gone")));
            seen.insert(p, s);
        }
        Ok(())
    }

    pub fn seen(&self, w: &WorkerRecord) -> Seen {
        let Some(pod) = &w.job else {
            return Seen::Ended("no pod recorded".into());
        };
        lock(&self.pods)
            .get(pod)
            .cloned()
            .unwrap_or_else(|| Seen::Queued(String::new()))
    }

    pub fn stop(&self, workers: &[WorkerRecord]) -> Result<()> {
        let pods: Vec<&str> = workers.iter().filter_map(|w| w.job.as_deref()).collect();
        if pods.is_empty() {
            return Ok(());
        }
        let mut args = vec!["delete", "pod", "--wait=false", "--ignore-not-found"];
        args.extend(pods.iter().copied());
        self.kubectl(&args, None)?;
        let mut seen = lock(&self.pods);
        for p in pods {
            seen.remove(p);
        }
        Ok(())
    }

    /// Deletes every pod and the Secret of cluster `id`.
    pub fn remove(&self, id: &str) -> Result<()> {
        let selector = format!("{CLUSTER_LABEL}={id}");
        self.kubectl(
            &[
                "delete",
                "pods,secrets",
                "-l",
                &selector,
                "--wait=false",
                "--ignore-not-found",
            ],
            None,
        )
        .map(|_| ())
    }
}

/// Each pod's state in a `kubectl get pods -o json` answer, with Kubernetes' reasons.
fn pod_states(doc: &Value) -> HashMap<String, Seen> {
    let mut out = HashMap::new();
    let Some(items) = doc["items"].as_array() else {
        return out;
    };
    for p in items {
        let Some(name) = p["metadata"]["name"].as_str() else {
            continue;
        };
        let status = &p["status"];
        let container = &status["containerStatuses"][0]["state"];
        let waiting = container["waiting"]["reason"].as_str();
        let unschedulable = status["conditions"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["reason"].as_str().unwrap_or("not scheduled"),
                        c["message"].as_str().unwrap_or("")
                    )
                })
        });
        let terminated = || {
            let t = &container["terminated"];
            let mut s = format!(
                "pod {name} {}",
                status["phase"].as_str().unwrap_or("ended").to_lowercase()
            );
            if let Some(r) = t["reason"].as_str() {
                s.push_str(&format!(": {r}"));
            }
            if let Some(c) = t["exitCode"].as_i64() {
                s.push_str(&format!(", exit code {c}"));
            }
            if let Some(m) = t["message"].as_str().or(status["message"].as_str()) {
                s.push_str(&format!(", {}", m.trim()));
            }
            s
        };
        let seen = match status["phase"].as_str() {
            Some("Running") => Seen::Running,
            Some("Succeeded" | "Failed") => Seen::Ended(terminated()),
            _ => Seen::Queued(
                unschedulable
                    .or_else(|| {
                        waiting.map(|w| match container["waiting"]["message"].as_str() {
                            Some(m) => format!("{w}: {m}"),
                            None => w.to_owned(),
                        })
                    })
                    .unwrap_or_else(|| "Pending".into()),
            ),
        };
        out.insert(name.to_owned(), seen);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pod_states_carry_kubernetes_reasons() {
        let doc = json!({"items": [
            {"metadata": {"name": "a"}, "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient cpu."}]}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending", "containerStatuses": [
                {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}},
            {"metadata": {"name": "c"}, "status": {"phase": "Running"}},
            {"metadata": {"name": "d"}, "status": {"phase": "Failed", "containerStatuses": [
                {"state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}},
        ]});
        let s = pod_states(&doc);
        assert_eq!(
            s["a"],
            Seen::Queued("Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.".into())
        );
        assert_eq!(
            s["b"],
            Seen::Queued("ImagePullBackOff: Back-off pulling image".into())
        );
        assert_eq!(s["c"], Seen::Running);
        assert_eq!(
            s["d"],
            Seen::Ended("pod d failed: OOMKilled, exit code 137".into())
        );
        assert!(pod_states(&json!({})).is_empty());
    }
}
