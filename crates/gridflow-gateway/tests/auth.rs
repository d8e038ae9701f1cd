//! The gateway's authenticators against a running gateway (in this process): API tokens
//! from the configuration, and JupyterHub's token check against a stand-in hub — a small
//! HTTP server answering `/hub/api/user` as JupyterHub does, which counts the requests it
//! gets. The same against a real JupyterHub: `crates/gridflow-cli/tests/gateway_hub.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_gateway::auth::{hex, sha256};
use gridflow_gateway::config::{JupyterHubConfig, UserEntry};
use gridflow_gateway::{Config, Gateway, GatewayError, GatewayServer};
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A stand-in hub: `token hub-alice` is alice, `token hub-root` is an admin, anything
/// else is refused with 403, as JupyterHub does. Counts the requests.
fn hub() -> (String, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", l.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (mut path, mut auth) = (String::new(), String::new());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            path.push_str(line.split_whitespace().nth(1).unwrap_or(""));
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    auth = v.trim().to_owned();
                }
            }
            let (status, body) = match (path.as_str(), auth.as_str()) {
                ("/hub/api/user", "token hub-alice") => (
                    "200 OK",
                    r#"{"name": "alice", "admin": false, "kind": "user"}"#,
                ),
                ("/hub/api/user", "token hub-root") => (
                    "200 OK",
                    r#"{"name": "root", "admin": true, "kind": "user"}"#,
                ),
                _ => (
                    "403 Forbidden",
                    r#"{"status": 403, "message": "Forbidden"}"#,
                ),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, calls)
}

#[test]
fn api_tokens_and_jupyterhub() {
    let (hub_url, calls) = hub();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gateway-auth");
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        address: "127.0.0.1:0".into(),
        state_dir: dir,
        users: vec![UserEntry {
            name: "carol".into(),
            token_sha256: hex(&sha256(b"carol-secret")),
            admin: false,
        }],
        jupyterhub: Some(JupyterHubConfig {
            url: hub_url,
            cache_seconds: 60.0,
            admin_users: Vec::new(),
            timeout_seconds: 10.0,
        }),
        ..Config::default()
    };
    let server = GatewayServer::start(config).unwrap();
    let address = server.address().to_string();
    let who = |t: &str| Gateway::new(&address, t).unwrap().whoami();

    let carol = who("carol-secret").unwrap();
    assert_eq!((carol.name.as_str(), carol.admin), ("carol", false));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a configured user's token went to the hub"
    );

    let alice = who("hub-alice").unwrap();
    assert_eq!((alice.name.as_str(), alice.admin), ("alice", false));
    let root = who("hub-root").unwrap();
    assert!(root.admin);
    let before = calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(who("hub-alice").unwrap().name, "alice");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "the hub's answer was not reused"
    );

    let e = who("hub-mallory").unwrap_err();
    match &e {
        GatewayError::Remote {
            status: 401,
            message,
            ..
        } => {
            assert!(message.contains("unknown API token"), "{message}");
        }
        other => panic!("expected 401, got {other}"),
    }
    server.shutdown();
}

#[test]
fn bad_configurations_are_named() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gateway-config");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[[users]]\nname = \"a\"\ntoken_sha256 = \"abc\"\n").unwrap();
    let e = Config::from_file(&f).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("64 hex digits"), "{e}");
    std::fs::write(&f, "adress = \"127.0.0.1:1\"\n").unwrap();
    let e = Config::from_file(&f).unwrap_err().to_string();
    assert!(e.contains("adress"), "{e}");
    let j = dir.join("ok.json");
    std::fs::write(&j, r#"{"bounds": {"max_workers": 3}, "idle_timeout": 60}"#).unwrap();
    let c = Config::from_file(&j).unwrap();
    assert_eq!(c.bounds.max_workers, 3);
    let e = c
        .bounds
        .resolve(&gridflow_gateway::ClusterOptions {
            threads: Some(99),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("threads = 99"), "{e}");
}
