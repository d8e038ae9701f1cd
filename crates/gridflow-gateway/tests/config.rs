//! The gateway's backend configuration as administrators write it (TOML): every backend
//! parses, and mistakes are refused naming the key or value at fault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_gateway::{BackendConfig, Config};

fn parse(name: &str, text: &str) -> Result<Config, String> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gateway-backend-config");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!("{name}.toml"));
    std::fs::write(&f, text).unwrap();
    Config::from_file(&f).map_err(|e| e.to_string())
}

#[test]
fn every_backend_parses_from_toml() {
    let c = parse(
        "slurm",
        r#"
scheduler_host = "10.1.0.5"
[backend]
kind = "slurm"
partition = "compute"
walltime = "02:00:00"
job_extra_directives = ["--qos=normal"]
[bounds]
backend_options = { partition = ["compute", "debug"], walltime = [] }
"#,
    )
    .unwrap();
    match &c.backend {
        BackendConfig::Slurm(s) => {
            assert_eq!(s.partition.as_deref(), Some("compute"));
            assert_eq!(s.sbatch, "sbatch");
        }
        other => panic!("{other:?}"),
    }
    let c = parse(
        "ssh",
        "[backend]\nkind = \"ssh\"\nhosts = [\"n1\", \"alice@n2\"]\nssh_options = [\"-F\", \"/etc/cfg\"]\n",
    )
    .unwrap();
    assert!(
        matches!(&c.backend, BackendConfig::Ssh(s) if s.hosts.len() == 2 && s.remote_dir == ".gridflow-gateway")
    );
    let c = parse(
        "k8s",
        "scheduler_host = \"10.2.0.7\"\n[backend]\nkind = \"kubernetes\"\nimage = \"gridflow:1\"\nnamespace = \"science\"\n",
    )
    .unwrap();
    assert_eq!(c.backend.kind(), "kubernetes");
    assert_eq!(parse("default", "").unwrap().backend.kind(), "local");
}

#[test]
fn backend_mistakes_are_named() {
    let e = parse("typo", "[backend]\nkind = \"slurm\"\npartiton = \"x\"\n").unwrap_err();
    assert!(e.contains("partiton"), "{e}");
    let e = parse("kind", "[backend]\nkind = \"pbs\"\n").unwrap_err();
    assert!(e.contains("pbs"), "{e}");
    let e = parse(
        "option",
        "[backend]\nkind = \"slurm\"\n[bounds]\nbackend_options = { image = [] }\n",
    )
    .unwrap_err();
    assert!(e.contains("slurm backend has no option \"image\""), "{e}");
    let e = parse("nohosts", "[backend]\nkind = \"ssh\"\n").unwrap_err();
    assert!(e.contains("hosts"), "{e}");
    let e = parse(
        "noimage",
        "scheduler_host = \"10.0.0.1\"\n[backend]\nkind = \"kubernetes\"\n",
    )
    .unwrap_err();
    assert!(e.contains("image"), "{e}");
    let e = parse(
        "loop",
        "[backend]\nkind = \"kubernetes\"\nimage = \"g:1\"\n",
    )
    .unwrap_err();
    assert!(e.contains("loopback") && e.contains("127.0.0.1"), "{e}");
    let e = parse(
        "var",
        "scheduler_host = \"$GRIDFLOW_TEST_UNSET_HOST_VAR\"\n",
    )
    .unwrap_err();
    assert!(e.contains("GRIDFLOW_TEST_UNSET_HOST_VAR"), "{e}");
    let e = parse("tls", "tls_cert = \"/etc/gw.pem\"\n").unwrap_err();
    assert!(e.contains("tls_key"), "{e}");
}
