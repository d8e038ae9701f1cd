//! The Kubernetes deployment without a live cluster: the rendered manifests validate
//! (strictly: no unknown field) against the schemas of Kubernetes 1.33 and 1.37 with PyPI's
//! `kubernetes-validate` (pinned; installed into target/k8s-validate-venv by
//! `scripts/k8s-validate-setup.sh`), and the cluster's `kubectl` calls (apply, scale, pod
//! states, delete) are checked against a stand-in `kubectl` that records them. What a live
//! cluster would add is listed in docs/deploy.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_deploy::{KubernetesCluster, KubernetesOptions};
use gridflow_distributed::{Cluster, WorkerState};
use std::path::{Path, PathBuf};
use std::process::Command;

fn validator() -> Option<PathBuf> {
    let p = std::env::var_os("GRIDFLOW_K8S_VALIDATE").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/k8s-validate-venv/bin/kubernetes-validate")
        },
        PathBuf::from,
    );
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no kubernetes-validate at {}: run scripts/k8s-validate-setup.sh",
        p.display()
    );
    eprintln!("skipped: no kubernetes-validate (run scripts/k8s-validate-setup.sh)");
    None
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-k8s-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn rendered_manifests_validate_against_pinned_kubernetes_schemas() {
    let Some(validate) = validator() else { return };
    let dir = temp_dir("validate");
    let o = KubernetesOptions {
        name: "climate".into(),
        namespace: Some("science".into()),
        n_workers: 4,
        worker_cpu: "1500m".into(),
        worker_memory: "6Gi".into(),
        service_type: "LoadBalancer".into(),
        ..KubernetesOptions::default()
    };
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, o.render("token").unwrap()).unwrap();
    for version in ["1.33.0", "1.37.0"] {
        let out = Command::new(&validate)
            .args(["--strict", "-k", version])
            .arg(&file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "Kubernetes {version}:\n{text}");
        // Four documents, each reported valid.
        assert_eq!(
            text.matches(" passed for resource ").count(),
            4,
            "Kubernetes {version}:\n{text}"
        );
    }

    // The validator does reject a broken manifest (so its pass above means something).
    let broken = std::fs::read_to_string(&file).unwrap().replacen(
        "\"replicas\": 4",
        "\"replicas\": \"four\"",
        1,
    );
    std::fs::write(&file, broken).unwrap();
    let out = Command::new(&validate)
        .args(["--strict", "-k", "1.37.0"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A stand-in `kubectl`: appends its arguments (and standard input, for `apply`) to a log,
/// answers `get pods` with two pods, and fails with a message when `FAIL` exists.
fn fake_kubectl(dir: &Path) -> PathBuf {
    let p = dir.join("kubectl");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nd={}\nif [ -e \"$d/FAIL\" ]; then echo 'error: You must be logged in to the server (Unauthorized)' >&2; exit 1; fi\n\
             printf '%s\\n' \"$*\" >> \"$d/calls\"\n\
             case \"$*\" in *apply*) cat > \"$d/applied\";; *'get pods'*) printf 'w-1|Running|\\nw-2|Pending|ContainerCreating\\n';; esac\n",
            dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_cluster_applies_scales_lists_and_deletes_through_kubectl() {
    let dir = temp_dir("kubectl");
    let kubectl = fake_kubectl(&dir);
    let o = KubernetesOptions {
        name: "demo".into(),
        kubectl: kubectl.display().to_string(),
        kubectl_options: vec!["--context".into(), "lab".into()],
        n_workers: 2,
        ..KubernetesOptions::default()
    };
    let c = KubernetesCluster::new(o).unwrap();
    let applied = std::fs::read_to_string(dir.join("applied")).unwrap();
    assert_eq!(applied.matches("\"kind\"").count(), 4);
    assert!(applied.contains(&String::from_utf8_lossy(c.security().token().unwrap()).to_string()));
    assert_eq!(c.scheduler_address(), "tcp://demo-scheduler:8786");

    c.scale(5).unwrap();
    let status = c.worker_status().unwrap();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].state, WorkerState::Running);
    assert_eq!(
        status[1].state,
        WorkerState::Queued {
            reason: "ContainerCreating".into()
        }
    );
    let e = c.adapt(0, 3).unwrap_err().to_string();
    assert!(e.contains("port-forward"), "{e}");
    c.close().unwrap();
    drop(c); // already deleted: no second delete

    let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(
        calls.iter().all(|c| c.starts_with("--context lab ")),
        "{calls:#?}"
    );
    assert!(calls[0].ends_with("apply -f -"));
    assert!(calls[1].ends_with("scale deployment/demo-worker --replicas=5"));
    assert!(calls[2].contains(
        "get pods -l app.kubernetes.io/instance=demo,app.kubernetes.io/component=worker"
    ));
    assert!(
        calls[3].contains("delete deployment,service,secret -l app.kubernetes.io/instance=demo")
    );
}

#[test]
fn kubectl_refusing_gives_its_message() {
    let dir = temp_dir("refused");
    let kubectl = fake_kubectl(&dir);
    std::fs::write(dir.join("FAIL"), "").unwrap();
    let e = match KubernetesCluster::new(KubernetesOptions {
        kubectl: kubectl.display().to_string(),
        ..KubernetesOptions::default()
    }) {
        Ok(_) => panic!("a refused apply made a cluster"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("Unauthorized") && e.contains("apply"), "{e}");
}
