//! Who may connect, on real processes over 127.0.0.1: shared-secret challenge–response on
//! the scheduler and the workers' data ports, TLS with mutual certificates, the refusal to
//! listen beyond loopback without authentication, and a scheduler that survives 10,000
//! random and mutated frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::{Client, LocalCluster, LocalClusterOptions, Security, TlsFiles};
use gridflow_runtime::conformance::{num, tree};
use gridflow_runtime::{Executor, LocalExecutor};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_gridflow-test-node");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-auth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cluster(security: Security) -> LocalCluster {
    LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        security,
        ..LocalClusterOptions::default()
    })
    .unwrap()
}

fn check_computes(client: &Client) {
    let (g, out, _) = tree(40, 64);
    let want = LocalExecutor::threads(1)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    let got = client.run(&g, &[out]).unwrap();
    assert_eq!(got, want);
    assert_eq!(num(&got[0]), (1..=40u64).map(|v| 2 * v).sum::<u64>());
}

#[test]
fn a_token_cluster_serves_the_right_token_and_refuses_wrong_or_missing_ones() {
    let sec = Security::none().with_token("s3cret-token").unwrap();
    let c = cluster(sec);
    // The right token: workers joined (they were given it) and the client computes.
    let client = c.client().unwrap();
    assert_eq!(client.workers().unwrap().len(), 2);
    check_computes(&client);
    // A missing token.
    let e = Client::connect_with(&c.address(), Security::none()).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("authentication failed") && m.contains("required"),
        "{m}"
    );
    // A wrong token.
    let wrong = Security::none().with_token("another").unwrap();
    let e = Client::connect_with(&c.address(), wrong.clone()).unwrap_err();
    assert!(e.to_string().contains("wrong auth token"), "{e}");
    // A worker's data port demands the token too: a client with the wrong token cannot
    // fetch, and one without cannot either.
    let data = client.workers().unwrap()[0].address.clone();
    let mut s = std::net::TcpStream::connect(&data).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut pre = Vec::from(*b"GFLW");
    pre.extend_from_slice(&gridflow_distributed::frame::PROTOCOL_VERSION.to_le_bytes());
    s.write_all(&pre).unwrap();
    let mut theirs = [0u8; 8];
    s.read_exact(&mut theirs).unwrap();
    // The first frame is a challenge carrying a nonce (postcard: variant 1, 32 bytes).
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    let mut msg = vec![0u8; u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize];
    s.read_exact(&mut msg).unwrap();
    assert_eq!(&msg[..2], &[1, 32], "a data port must challenge: {msg:?}");
    // The cluster still works for the right token.
    check_computes(&c.client().unwrap());
}

#[test]
fn a_scheduler_process_logs_refusals_and_a_token_file_must_be_private() {
    let dir = tmpdir("file");
    let token = dir.join("token");
    std::fs::write(&token, "file-secret\n").unwrap();
    // Readable by others: refused with a clear message.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(NODE)
        .args(["scheduler", "--port", "0", "--auth-token-file"])
        .arg(&token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    let e = Security::none().with_token_file(&token).unwrap_err();
    assert!(e.to_string().contains("may be read by other users"), "{e}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = dir.join("scheduler.json");
    let mut sched = Command::new(NODE)
        .args(["scheduler", "--port", "0", "--scheduler-file"])
        .arg(&file)
        .env("GRIDFLOW_AUTH_TOKEN_FILE", &token)
        .env_remove("GRIDFLOW_AUTH_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = wait_for_address(&file);
    let mut worker = Command::new(NODE)
        .args(["worker", &address, "--auth-token-file"])
        .arg(&token)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let right = Security::none().with_token_file(&token).unwrap();
    let client = Client::connect_with(&address, right).unwrap();
    client.wait_for_workers(1, Duration::from_secs(20)).unwrap();
    check_computes(&client);
    let wrong = Security::none().with_token("not-it").unwrap();
    let e = Client::connect_with(&address, wrong).unwrap_err();
    assert!(e.to_string().contains("wrong auth token"), "{e}");
    // A worker without the token exits, saying why.
    let out = Command::new(NODE)
        .args(["worker", &address])
        .env_remove("GRIDFLOW_AUTH_TOKEN")
        .env_remove("GRIDFLOW_AUTH_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth token is required"), "{err}");
    drop(client);
    worker.kill().unwrap();
    worker.wait().unwrap();
    sched.kill().unwrap();
    sched.wait().unwrap();
    let mut log = String::new();
    sched
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // The scheduler's side names the peer and the reason.
    assert!(
        log.contains("connection from 127.0.0.1:") && log.contains("wrong auth token"),
        "{log}"
    );
    assert!(log.contains("none was given"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn wait_for_address(file: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Ok(t) = std::fs::read_to_string(file) {
            let v: serde_json_lite::Value = serde_json_lite::parse(&t);
            return v.address;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no scheduler file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The scheduler file's one field the tests need.
mod serde_json_lite {
    pub struct Value {
        pub address: String,
    }
    pub fn parse(t: &str) -> Value {
        let a = t.split("\"address\": \"").nth(1).unwrap();
        Value {
            address: a.split('"').next().unwrap().to_owned(),
        }
    }
}

#[test]
fn listening_beyond_loopback_needs_authentication() {
    let out = Command::new(NODE)
        .args(["scheduler", "--host", "0.0.0.0", "--port", "0"])
        .env_remove("GRIDFLOW_AUTH_TOKEN")
        .env_remove("GRIDFLOW_AUTH_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0 without authentication"),
        "{err}"
    );
    assert!(Security::none().check_listen("127.0.0.1").is_ok());
    assert!(
        Security::none()
            .with_token("t")
            .unwrap()
            .check_listen("0.0.0.0")
            .is_ok()
    );
}

/// A CA and certificates for 127.0.0.1, made with the `openssl` command.
fn make_certs(dir: &Path, ca_name: &str, nodes: &[&str]) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is needed to make test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca_key = format!("{ca_name}.key");
    let ca_pem = format!("{ca_name}.pem");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca_pem,
        "-days",
        "2",
        "-subj",
        &format!("/CN={ca_name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    for n in nodes {
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{n}.key"),
            "-out",
            &format!("{n}.csr"),
            "-subj",
            &format!("/CN={n}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{n}.csr"),
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &format!("{n}.pem"),
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
    }
}

fn tls(dir: &Path, ca: &str, node: &str) -> Security {
    Security::none()
        .with_tls(TlsFiles {
            ca: dir.join(format!("{ca}.pem")),
            cert: dir.join(format!("{node}.pem")),
            key: dir.join(format!("{node}.key")),
        })
        .unwrap()
}

#[test]
fn a_tls_cluster_serves_clients_of_its_ca_and_refuses_others() {
    let dir = tmpdir("tls");
    make_certs(&dir, "ca", &["node", "client"]);
    make_certs(&dir, "otherca", &["stranger"]);
    let c = cluster(tls(&dir, "ca", "node"));
    assert!(c.address().starts_with("tls://"));
    // A client with a certificate from the cluster's CA computes; the workers' data ports
    // (where it gathers results) are TLS too.
    let client = Client::connect_with(&c.address(), tls(&dir, "ca", "client")).unwrap();
    let w = client.workers().unwrap();
    assert!(w.iter().all(|x| x.address.starts_with("tls://")), "{w:?}");
    check_computes(&client);
    // A client trusting another CA (with its own certificate) is refused.
    let e = Client::connect_with(&c.address(), tls(&dir, "otherca", "stranger")).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("TLS handshake failed"), "{m}");
    // A client without TLS at all is told the peer speaks TLS.
    let plain = c.address().replace("tls://", "tcp://");
    let e = Client::connect_with(&plain, Security::none()).unwrap_err();
    assert!(e.to_string().contains("speaks TLS"), "{e}");
    // Nor can a plain connection read a worker's data.
    let e = Client::connect_with(&w[0].address, Security::none()).unwrap_err();
    assert!(e.to_string().contains("no TLS certificates"), "{e}");
    // Still serving.
    check_computes(&client);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small deterministic generator (xorshift) for the fuzz test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn frame(msg: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&((4 + msg.len() + payload.len()) as u32).to_le_bytes());
    f.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    f.extend_from_slice(msg);
    f.extend_from_slice(payload);
    f
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    match rng.below(5) {
        0 if !b.is_empty() => {
            // Flip bytes.
            for _ in 0..=rng.below(4) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
        2 => {
            let i = rng.below(b.len() as u64 + 1) as usize;
            for _ in 0..rng.below(16) {
                b.insert(i, rng.next() as u8);
            }
        }
        3 if b.len() >= 4 => {
            // A lying length.
            let v = [0u32, 3, 7, u32::MAX, 1 << 31, rng.next() as u32][rng.below(6) as usize];
            b[..4].copy_from_slice(&v.to_le_bytes());
        }
        _ => b = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
    }
    b
}

#[test]
fn ten_thousand_random_and_mutated_frames_leave_the_scheduler_serving() {
    use gridflow_distributed::messages::{FromClient, Hello, SubmitTask};
    let c = cluster(Security::none());
    let hostport = c.address().strip_prefix("tcp://").unwrap().to_owned();
    let enc = |m: &dyn erased::Enc| m.enc();
    // Valid messages to mutate: hellos, submissions (good and malformed), releases, info.
    let seeds: Vec<Vec<u8>> = vec![
        enc(&Hello::Client),
        enc(&Hello::Worker {
            name: "w".into(),
            nthreads: 1,
            memory_limit: 0,
            data_address: "127.0.0.1:1".into(),
        }),
        enc(&FromClient::Submit {
            tasks: vec![
                SubmitTask {
                    payload: vec![1, 2, 3],
                    inputs: vec![],
                },
                SubmitTask {
                    payload: vec![],
                    inputs: vec![0, 0],
                },
            ],
            outputs: vec![1],
            held: vec![7],
            groups: Default::default(),
        }),
        enc(&FromClient::Release { job: 3 }),
        enc(&FromClient::Info),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let (mut sent, mut handshakes) = (0usize, 0usize);
    let mut pre = Vec::from(*b"GFLW");
    pre.extend_from_slice(&gridflow_distributed::frame::PROTOCOL_VERSION.to_le_bytes());
    while sent < 10_000 {
        let mut s = std::net::TcpStream::connect(&hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let mode = rng.below(4);
        if mode == 0 {
            // Garbage from the first byte (a mutated preamble).
            let _ = s.write_all(&mutate(&mut rng, pre.clone()));
            sent += 1;
        } else {
            let _ = s.write_all(&pre);
            let mut theirs = [0u8; 8];
            if s.read_exact(&mut theirs).is_err() {
                continue;
            }
            handshakes += 1;
            // The open challenge, answered properly (or not).
            let mut head = [0u8; 8];
            let _ = s.read_exact(&mut head);
            let mlen = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
            let mut msg = vec![0u8; mlen.min(4096)];
            let _ = s.read_exact(&mut msg);
            let response = {
                let mut r = vec![32u8];
                r.extend((0..32).map(|_| rng.next() as u8));
                r.push(0);
                r
            };
            let response = if mode == 1 {
                mutate(&mut rng, frame(&response, &[]))
            } else {
                frame(&response, &[])
            };
            let _ = s.write_all(&response);
            sent += 1;
            // Then a burst of frames: mutated encodings of real messages.
            for _ in 0..rng.below(20) {
                let seed = seeds[rng.below(seeds.len() as u64) as usize].clone();
                let f = if rng.below(3) == 0 {
                    frame(&seed, &[])
                } else if rng.below(2) == 0 {
                    frame(&mutate(&mut rng, seed), &[])
                } else {
                    mutate(&mut rng, frame(&seed, &[]))
                };
                if s.write_all(&f).is_err() {
                    break;
                }
                sent += 1;
            }
        }
        drop(s);
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "fuzzing took too long ({sent} frames)"
        );
    }
    // Most connections got past the preamble, so the decoders behind it were exercised.
    assert!(
        handshakes > 300,
        "{handshakes} handshakes for {sent} frames"
    );
    // The scheduler still serves a correct computation, on both workers (fake workers that
    // said hello are gone once their connections' ends are noticed).
    let client = c.client().unwrap();
    let start = Instant::now();
    while client.workers().unwrap().len() != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fake workers stay"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    check_computes(&client);
}

/// Encoding any message for the fuzz seeds.
mod erased {
    pub trait Enc {
        fn enc(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn enc(&self) -> Vec<u8> {
            gridflow_distributed::frame::encode(self).unwrap()
        }
    }
}
