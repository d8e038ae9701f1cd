//! The gateway's JupyterHub authenticator against a real JupyterHub (the pinned one of
//! `scripts/jupyterhub-setup.sh`, in `target/hub-venv`; `GRIDFLOW_HUB_VENV` to use another):
//! the hub runs on a free 127.0.0.1 port with `scripts/jupyterhub_test_config.py` — its
//! dummy authenticator, users alice and bob, admin root, and a service whose token may
//! create and revoke users' tokens; a proxy class that does nothing (only the hub's REST
//! API is used, so no configurable-http-proxy). Users' tokens come from the hub's REST API, as
//! the tokens of users' notebook servers do, and a `gridflow gateway` process checks them
//! with the hub. Without the hub the tests are skipped with a notice, unless CI=true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::Cluster;
use gridflow_gateway::{ClusterOptions, Gateway, GatewayError};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{gridflow, xarray_case};

/// The hub service's API token (the hub is on 127.0.0.1 for this test only).
const SERVICE_TOKEN: &str = "gridflow-test-service-0123456789abcdef";

fn hub_program() -> Option<PathBuf> {
    let venv = std::env::var_os("GRIDFLOW_HUB_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/hub-venv"),
        PathBuf::from,
    );
    let p = venv.join("bin/jupyterhub");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no JupyterHub at {}: run scripts/jupyterhub-setup.sh",
        p.display()
    );
    eprintln!(
        "skipped: no JupyterHub at {} (run scripts/jupyterhub-setup.sh)",
        p.display()
    );
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 request (the server closes the connection after answering): the status
/// and the body as JSON (`null` when empty).
fn http(method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: token {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {url}: {e}: {body}"))
    };
    (status, body)
}

/// Whether the hub on `port` answers `GET /hub/api/` with 200 (false, not a panic, while
/// it starts).
fn hub_answers(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = String::new();
    write!(s, "GET /hub/api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// A JupyterHub process with users alice and bob, admin root, and the service
/// `gridflow-test`. Killed when dropped.
struct Hub {
    child: Option<Child>,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT` (the hub's own port: its API is under `/hub/api`).
    url: String,
}

impl Hub {
    fn start(program: &Path, name: &str) -> Hub {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hub-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let hub_port = free_port();
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/jupyterhub_test_config.py");
        let log = std::fs::File::create(dir.join("hub.log")).unwrap();
        let child = Command::new(program)
            .arg("-f")
            .arg(&config)
            .env("GRIDFLOW_HUB_DIR", &dir)
            .env("GRIDFLOW_HUB_PORT", hub_port.to_string())
            .env("GRIDFLOW_HUB_SERVICE_TOKEN", SERVICE_TOKEN)
            .current_dir(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut hub = Hub {
            child: Some(child),
            url: format!("http://127.0.0.1:{hub_port}"),
            dir,
        };
        let start = Instant::now();
        loop {
            if hub_answers(hub_port) {
                break;
            }
            let exited = hub.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || start.elapsed() > Duration::from_secs(60) {
                panic!("JupyterHub did not start ({exited:?}):\n{}", hub.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("JupyterHub up at {} in {:?}", hub.url, start.elapsed());
        hub
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default()
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().id().to_string()
    }

    /// A new API token of `user` made through the hub's REST API by the service: (token,
    /// its id at the hub).
    fn new_token(&self, user: &str) -> (String, String) {
        self.new_token_with(user, json!({}))
    }

    /// [`Hub::new_token`] with more fields of the request (`scopes`).
    fn new_token_with(&self, user: &str, mut request: Value) -> (String, String) {
        request["note"] = json!("gridflow gateway test");
        request["expires_in"] = json!(3600);
        let (status, v) = http(
            "POST",
            &format!("{}/hub/api/users/{user}/tokens", self.url),
            SERVICE_TOKEN,
            Some(&request),
        );
        assert_eq!(status, 201, "creating a token of {user}: {v}");
        (
            v["token"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Revokes `user`'s `token` (whose id at the hub is `id`) at the hub.
    fn revoke(&self, user: &str, id: &str, token: &str) {
        let (status, v) = http(
            "DELETE",
            &format!("{}/hub/api/users/{user}/tokens/{id}", self.url),
            SERVICE_TOKEN,
            None,
        );
        assert_eq!(status, 204, "revoking {user}'s token {id}: {v}");
        // The hub itself no longer accepts it.
        let (status, _) = http("GET", &format!("{}/hub/api/user", self.url), token, None);
        assert_eq!(status, 403, "the hub still accepts a revoked token");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `gridflow gateway` process whose only authenticator is the hub. Killed, with any
/// cluster process it left, when dropped.
struct GatewayProcess {
    child: Child,
    dir: PathBuf,
    address: String,
}

impl GatewayProcess {
    fn start(name: &str, hub: &Hub, cache_seconds: f64, timeout_seconds: f64) -> GatewayProcess {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gateway-hub-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = json!({
            "address": "127.0.0.1:0",
            "state_dir": dir.join("state"),
            "idle_timeout": 0,
            "check_interval": 0.2,
            "bounds": {"max_workers": 1, "max_threads": 1},
            "jupyterhub": {
                // As JUPYTERHUB_API_URL gives it.
                "url": format!("{}/hub/api", hub.url),
                "cache_seconds": cache_seconds,
                "timeout_seconds": timeout_seconds,
                "admin_users": ["bob"],
            },
        });
        let path = dir.join("gateway.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let mut child = gridflow()
            .args(["gateway", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("gridflow gateway at http://")
            .unwrap_or_else(|| panic!("gateway said {line:?}"))
            .to_owned();
        GatewayProcess {
            child,
            dir,
            address,
        }
    }

    fn client(&self, token: &str) -> Gateway {
        Gateway::new(&self.address, token).unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let needle = self.dir.join("state").to_string_lossy().into_owned();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_err() {
                continue;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                let _ = Command::new("kill").args(["-9", &name]).status();
            }
        }
    }
}

/// The gateway's refusal: its HTTP status and message.
fn refused(r: Result<impl std::fmt::Debug, GatewayError>) -> (u16, String) {
    match r {
        Err(GatewayError::Remote {
            status, message, ..
        }) => (status, message),
        other => panic!("expected the gateway to refuse, got {other:?}"),
    }
}

#[test]
fn hub_users_use_the_gateway() {
    let Some(program) = hub_program() else { return };
    let hub = Hub::start(&program, "users");
    // A short cache, so that a revocation at the hub shows within the test.
    let gw = GatewayProcess::start("users", &hub, 1.0, 10.0);
    let (alice_token, _) = hub.new_token("alice");
    let (bob_token, _) = hub.new_token("bob");
    let (root_token, _) = hub.new_token("root");

    // Who the hub says each token's owner is; hub admins and the gateway's admin_users
    // (bob) are gateway administrators, a plain hub user is not.
    let alice = gw.client(&alice_token);
    let me = alice.whoami().unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("alice", false));
    let me = gw.client(&root_token).whoami().unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("root", true));
    let me = gw.client(&bob_token).whoami().unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("bob", true));
    // A token with only the scopes of a user's server token (as JUPYTERHUB_API_TOKEN in a
    // notebook) identifies its owner all the same, admin flag included.
    let (server_like, _) = hub.new_token_with(
        "root",
        json!({"scopes": ["access:servers!user", "users:activity!user"]}),
    );
    let me = gw.client(&server_like).whoami().unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("root", true));

    // A hub service's token is the hub's, not a user's: refused, saying so.
    let (status, message) = refused(gw.client(SERVICE_TOKEN).whoami());
    assert_eq!(status, 401, "{message}");
    assert!(
        message.contains("service") && message.contains("gridflow-test"),
        "{message}"
    );
    // A token nobody issued: 401, naming the hub's refusal.
    let (status, message) = refused(gw.client("0123456789abcdef-bogus").whoami());
    assert_eq!(status, 401, "{message}");
    assert!(
        message.contains("unknown API token") && message.contains("JupyterHub at"),
        "{message}"
    );

    // Alice makes a tiny cluster and computes xarray's numbers through the gateway.
    let cluster = alice
        .new_cluster(&ClusterOptions {
            workers: Some(1),
            threads: Some(1),
            ..ClusterOptions::default()
        })
        .unwrap();
    cluster
        .wait_for_workers(1, Duration::from_secs(60))
        .unwrap();
    assert_eq!(cluster.report().owner, "alice");
    let (store, expr, want) = xarray_case();
    let out = gridflow()
        .args([
            "eval",
            "--json",
            "--scheduler",
            &cluster.scheduler_address(),
        ])
        .env(
            "GRIDFLOW_AUTH_TOKEN",
            cluster.report().token.clone().unwrap(),
        )
        .arg("--store")
        .arg(&store)
        .arg(&expr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f64> = got["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{g} vs xarray's {w}"
        );
    }

    // In a notebook on the hub, the CLI (as the library's and Python's `Gateway`) needs
    // no token of its own: JUPYTERHUB_API_TOKEN is the user's.
    let out = gridflow()
        .args(["gateway", "list", "--json"])
        .env("GRIDFLOW_GATEWAY_ADDRESS", &gw.address)
        .env("JUPYTERHUB_API_TOKEN", &alice_token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], cluster.id(), "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // The hub admin sees alice's cluster; alice stops it.
    let all = gw.client(&root_token).list_clusters().unwrap();
    assert!(all.iter().any(|r| r.id == cluster.id()), "{all:?}");
    cluster.close().unwrap();
    assert!(alice.list_clusters().unwrap().is_empty());

    // A token revoked at the hub is refused once the gateway's cached answer is older
    // than cache_seconds (1 s here).
    let (t, id) = hub.new_token("alice");
    assert_eq!(gw.client(&t).whoami().unwrap().name, "alice");
    hub.revoke("alice", &id, &t);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, message) = refused(gw.client(&t).whoami());
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("refused it (HTTP 403"), "{message}");
}

#[test]
fn hub_cached_stopped_or_hung() {
    let Some(program) = hub_program() else { return };
    let mut hub = Hub::start(&program, "down");
    // A long cache, and a short time limit on the hub's answers.
    let gw = GatewayProcess::start("down", &hub, 600.0, 1.0);
    let hub_url = format!("{}/hub/api/user", hub.url);
    let (cached, cached_id) = hub.new_token("alice");
    let (t2, _) = hub.new_token("bob");
    let (t3, _) = hub.new_token("bob");
    assert_eq!(gw.client(&cached).whoami().unwrap().name, "alice");

    // The cached answer is used without asking the hub: a revocation there is not seen
    // within cache_seconds.
    hub.revoke("alice", &cached_id, &cached);
    assert_eq!(gw.client(&cached).whoami().unwrap().name, "alice");

    // A hub that hangs (stopped by SIGSTOP) is given timeout_seconds, then the gateway
    // answers 503 naming it; cached tokens still pass.
    let pid = hub.pid();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let (status, message) = refused(gw.client(&t2).whoami());
    let took = start.elapsed();
    assert_eq!(status, 503, "{message}");
    assert!(
        message.contains(&hub_url) && message.contains("did not answer within"),
        "{message}"
    );
    // 1 s asked; a wide margin for a loaded machine, far below a hang.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(gw.client(&cached).whoami().unwrap().name, "alice");
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(gw.client(&t2).whoami().unwrap().name, "bob");

    // A token the hub refused is refused again without asking it (below: even once the
    // hub is gone, it stays 401, not 503).
    let bogus = "0123456789abcdef0123456789abcdef";
    assert_eq!(refused(gw.client(bogus).whoami()).0, 401);

    // With the hub gone: 503 at once, naming the hub's URL; cached tokens still pass.
    hub.kill();
    let (status, message) = refused(gw.client(bogus).whoami());
    assert_eq!(status, 401, "a refusal is kept: {message}");
    let start = Instant::now();
    let (status, message) = refused(gw.client(&t3).whoami());
    let took = start.elapsed();
    assert_eq!(status, 503, "{message}");
    assert!(
        message.contains(&hub_url) && message.contains("unreachable"),
        "{message}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(gw.client(&cached).whoami().unwrap().name, "alice");
    assert_eq!(gw.client(&t2).whoami().unwrap().name, "bob");
}
