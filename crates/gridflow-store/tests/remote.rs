//! Reads over real HTTP and S3 servers equal local reads; remote failures (404, 401/403,
//! time-outs) give clear errors naming the URL, the array and the key, and never hang.
//!
//! The servers are started by `scripts/test-servers.sh start` (which `scripts/test.sh` runs):
//! npm `http-server` serving `tests/fixtures` and npm `s3rver` holding the same stores. It
//! writes `target/test-servers/env` with `GRIDFLOW_TEST_HTTP_URL`,
//! `GRIDFLOW_TEST_HTTP_AUTH_URL`, `GRIDFLOW_TEST_S3_ENDPOINT` and `GRIDFLOW_TEST_S3_BUCKET`.
//! Without those variables (plain `cargo test`) each test prints a notice and returns; in CI
//! (`CI` set to anything but `false`/`0`) a missing server fails the test instead.
//!
//! Failures real servers cannot be made to produce on demand (a 403 or a hang on chunk keys
//! only, after the metadata was served) come from a small local TCP server in this file.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::*;
use gridflow_array::{ChunkedArray, DType, Scheduler};
use gridflow_store::{StoreError, StoreOptions, WriteOptions, ZarrStore, to_zarr};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

struct Remote {
    http: String,
    http_auth: Option<String>,
    s3_endpoint: String,
    bucket: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The server addresses, or `None` (with a notice) when the test servers are not running.
fn remote(test: &str) -> Option<Remote> {
    match (
        var("GRIDFLOW_TEST_HTTP_URL"),
        var("GRIDFLOW_TEST_S3_ENDPOINT"),
        var("GRIDFLOW_TEST_S3_BUCKET"),
    ) {
        (Some(http), Some(s3_endpoint), Some(bucket)) => Some(Remote {
            http: http.trim_end_matches('/').to_owned(),
            http_auth: var("GRIDFLOW_TEST_HTTP_AUTH_URL"),
            s3_endpoint,
            bucket,
        }),
        _ => {
            let why = format!(
                "{test}: GRIDFLOW_TEST_HTTP_URL / GRIDFLOW_TEST_S3_ENDPOINT / \
                 GRIDFLOW_TEST_S3_BUCKET are not set. Run scripts/test.sh, or \
                 `scripts/test-servers.sh start && source target/test-servers/env` first."
            );
            assert!(!in_ci(), "the test servers are required in CI: {why}");
            println!("NOTICE: skipped {why}");
            None
        }
    }
}

impl Remote {
    fn http_url(&self, store: &str) -> String {
        format!("{}/{store}", self.http)
    }

    fn s3_url(&self, store: &str) -> String {
        format!("s3://{}/{store}", self.bucket)
    }

    /// Anonymous, path-style, plain-HTTP options for the local s3rver.
    fn s3_options(&self, read_only: bool) -> StoreOptions {
        StoreOptions {
            endpoint: Some(self.s3_endpoint.clone()),
            region: Some("us-east-1".into()),
            anonymous: true,
            allow_http: true,
            virtual_hosted_style: false,
            read_only,
            timeout_secs: 20,
            ..StoreOptions::default()
        }
    }

    fn http_store(&self, store: &str) -> ZarrStore {
        ZarrStore::open(&self.http_url(store), StoreOptions::read_only()).unwrap()
    }

    fn s3_store(&self, store: &str) -> ZarrStore {
        ZarrStore::open(&self.s3_url(store), self.s3_options(true)).unwrap()
    }

    /// Every key in the bucket, listed straight through the S3 API.
    fn s3_keys(&self) -> Vec<String> {
        use object_store::ObjectStore;
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.s3_endpoint.clone())
            .with_bucket_name(self.bucket.clone())
            .with_region("us-east-1")
            .with_skip_signature(true)
            .with_allow_http(true)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            let mut dirs = vec![None];
            while let Some(dir) = dirs.pop() {
                let res = s3.list_with_delimiter(dir.as_ref()).await.unwrap();
                out.extend(res.objects.into_iter().map(|o| o.location.to_string()));
                dirs.extend(res.common_prefixes.into_iter().map(Some));
            }
            out.sort();
            out
        })
    }
}

#[test]
fn http_consolidated_stores_equal_local_reads() {
    let Some(r) = remote("http_consolidated_stores_equal_local_reads") else {
        return;
    };
    for name in CONSOLIDATED {
        let store = r.http_store(name);
        let n = compare_group(&format!("http {name}"), name, &store);
        println!(
            "http {name}: {n} arrays, {} requests, {} bytes",
            store.requests(),
            store.bytes_read()
        );
        assert!(n > 0);
    }
}

#[test]
fn http_plain_store_arrays_equal_local_reads() {
    let Some(r) = remote("http_plain_store_arrays_equal_local_reads") else {
        return;
    };
    for name in PLAIN {
        let local = ZarrStore::open(
            fixtures().join(name).to_str().unwrap(),
            StoreOptions::read_only(),
        )
        .unwrap();
        let store = r.http_store(name);
        for p in expected_paths(name) {
            let w = format!("http {name}/{p}");
            assert_same_array(
                &w,
                &local.open_array(&p).unwrap(),
                &store.open_array(&p).unwrap(),
            );
        }
    }
}

#[test]
fn s3_stores_equal_local_reads() {
    let Some(r) = remote("s3_stores_equal_local_reads") else {
        return;
    };
    // S3 can list, so the plain stores open as groups too
    for name in CONSOLIDATED.iter().chain(&PLAIN) {
        let store = r.s3_store(name);
        let n = compare_group(&format!("s3 {name}"), name, &store);
        println!(
            "s3 {name}: {n} arrays, {} requests, {} bytes",
            store.requests(),
            store.bytes_read()
        );
        assert_eq!(n, expected_paths(name).len(), "{name}");
    }
}

#[test]
fn s3_store_url_forms_and_whole_bucket_root() {
    let Some(r) = remote("s3_store_url_forms_and_whole_bucket_root") else {
        return;
    };
    // a trailing slash is the same store; the bucket root opens arrays by their full path
    let a = ZarrStore::open(
        &format!("s3://{}/cmip6_mini.zarr/", r.bucket),
        r.s3_options(true),
    )
    .unwrap()
    .open_group("")
    .unwrap()
    .array("tas")
    .unwrap();
    let root = ZarrStore::open(&format!("s3://{}", r.bucket), r.s3_options(true)).unwrap();
    let b = root
        .open_group("cmip6_mini.zarr")
        .unwrap()
        .array("tas")
        .unwrap();
    assert_same_array("s3 url forms", &a, &b);
}

fn shard_bytes(name: &str, keys: &[&str]) -> u64 {
    keys.iter()
        .map(|k| {
            std::fs::metadata(fixtures().join(name).join(k))
                .unwrap()
                .len()
        })
        .sum()
}

/// A point's time series from a sharded v3 array reads the shard indexes and only the inner
/// chunks holding the point.
fn sharded_point_series(what: &str, store: &ZarrStore) {
    let a = store.open_array("sharded").unwrap();
    assert_eq!(a.inner_chunk_shape().unwrap(), vec![8, 1, 1]);
    let shards = shard_bytes("v3_plain.zarr", &["sharded/c/0/0/0", "sharded/c/1/0/0"]);
    store.reset_counters();
    let ts = a.read_region(&[0..64, 1..2, 2..3]).unwrap();
    let (bytes, requests) = (store.bytes_read(), store.requests());
    let want: Vec<f64> = (0..64).map(|t| f64::from(t * 12 + 4 + 2) * 0.5).collect();
    assert_eq!(ts.to_f64_vec(), want, "{what}");
    // 2 shard indexes (48 inner chunks x 16 bytes + crc32c) and 8 small inner chunks
    let index = 2 * (48 * 16 + 4);
    println!("{what}: point series {bytes} bytes in {requests} requests; shards hold {shards}");
    assert!(bytes >= index, "{what}: {bytes}");
    assert!(
        bytes < shards / 2,
        "{what}: read {bytes} bytes of {shards} in the shards"
    );
    // HEAD + ranged GET per shard index, one ranged GET per inner chunk
    assert!(requests <= 2 * 2 + 8, "{what}: {requests} requests");
    // again: the cached shard indexes are not fetched again
    store.reset_counters();
    a.read_region(&[0..64, 1..2, 2..3]).unwrap();
    assert!(store.bytes_read() <= bytes - index, "{what}");
    assert!(store.requests() <= 8, "{what}: {}", store.requests());
}

#[test]
fn http_sharded_point_series_reads_only_needed_inner_chunks() {
    let Some(r) = remote("http_sharded_point_series_reads_only_needed_inner_chunks") else {
        return;
    };
    sharded_point_series("http", &r.http_store("v3_plain.zarr"));
}

#[test]
fn s3_sharded_point_series_reads_only_needed_inner_chunks() {
    let Some(r) = remote("s3_sharded_point_series_reads_only_needed_inner_chunks") else {
        return;
    };
    sharded_point_series("s3", &r.s3_store("v3_plain.zarr"));
}

#[test]
fn missing_store_is_a_clear_404() {
    let Some(r) = remote("missing_store_is_a_clear_404") else {
        return;
    };
    for (url, store) in [
        (r.http_url("nope.zarr"), r.http_store("nope.zarr")),
        (r.s3_url("nope.zarr"), r.s3_store("nope.zarr")),
    ] {
        let e = store.open_group("").unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
        let msg = e.to_string();
        println!("{msg}");
        assert!(msg.contains(&url) && msg.contains("no group"), "{msg}");
        let e = store.open_array("tas").unwrap_err().to_string();
        assert!(e.contains(&url) && e.contains("no array at \"tas\""), "{e}");
    }
    // a missing array in a store that exists
    let e = r
        .http_store("cmip6_mini.zarr")
        .open_group("")
        .unwrap()
        .array("nope")
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("cmip6_mini.zarr"), "{e}");
}

#[test]
fn missing_bucket_is_a_clear_error() {
    let Some(r) = remote("missing_bucket_is_a_clear_error") else {
        return;
    };
    let url = "s3://gridflow-no-such-bucket/cmip6_mini.zarr";
    let e = ZarrStore::open(url, r.s3_options(true))
        .unwrap()
        .open_group("")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    println!("{e}");
    assert!(e.contains(url), "{e}");
}

#[test]
fn http_auth_failure_names_the_url_and_key() {
    let Some(r) = remote("http_auth_failure_names_the_url_and_key") else {
        return;
    };
    let Some(auth) = &r.http_auth else {
        assert!(!in_ci(), "GRIDFLOW_TEST_HTTP_AUTH_URL is required in CI");
        println!("NOTICE: GRIDFLOW_TEST_HTTP_AUTH_URL not set; auth failure test skipped");
        return;
    };
    // http-server with basic auth answers every request with 401; 4xx is not retried (the
    // nextest time-out bounds the test)
    let url = format!("{auth}/cmip6_mini.zarr");
    let store = ZarrStore::open(&url, StoreOptions::read_only()).unwrap();
    let e = store.open_group("").unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains(&url) && e.contains(".zmetadata"), "{e}");
    assert!(e.contains("HTTP 401 Unauthorized"), "{e}");
}

#[test]
fn s3_wrong_credentials_give_a_clear_403() {
    if remote("s3_wrong_credentials_give_a_clear_403").is_none() {
        return;
    }
    run_child(
        "s3_wrong_credentials_child",
        &[
            ("AWS_ACCESS_KEY_ID", "GRIDFLOWWRONGKEY"),
            ("AWS_SECRET_ACCESS_KEY", "gridflow-wrong-secret"),
        ],
    );
}

/// Runs only inside [`s3_wrong_credentials_give_a_clear_403`]'s child process.
#[test]
fn s3_wrong_credentials_child() {
    if var("GRIDFLOW_TEST_CHILD").as_deref() != Some("s3_wrong_credentials_child") {
        return;
    }
    let r = remote("s3_wrong_credentials_child").unwrap();
    let url = r.s3_url("cmip6_mini.zarr");
    let opts = StoreOptions {
        anonymous: false, // signed with the (wrong) AWS_* credentials from the environment
        ..r.s3_options(true)
    };
    let e = ZarrStore::open(&url, opts)
        .unwrap()
        .open_group("")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    println!("{e}");
    assert!(e.contains(&url) && e.contains(".zmetadata"), "{e}");
    assert!(
        e.contains("403") || e.contains("InvalidAccessKeyId") || e.contains("Forbidden"),
        "{e}"
    );
}

#[test]
fn s3_profile_keys_sign_requests() {
    if remote("s3_profile_keys_sign_requests").is_none() {
        return;
    }
    // s3rver checks signatures against its one account, S3RVER / S3RVER
    let dir = std::env::temp_dir().join(format!("gridflow-aws-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("credentials");
    let config = dir.join("config");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = GRIDFLOWWRONGKEY\naws_secret_access_key = wrong\n\n\
         [gridflow]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n",
    )
    .unwrap();
    std::fs::write(&config, "[profile gridflow]\nregion = us-east-1\n").unwrap();
    run_child(
        "s3_profile_child",
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs only inside [`s3_profile_keys_sign_requests`]'s child process.
#[test]
fn s3_profile_child() {
    if var("GRIDFLOW_TEST_CHILD").as_deref() != Some("s3_profile_child") {
        return;
    }
    let r = remote("s3_profile_child").unwrap();
    let url = r.s3_url("cmip6_mini.zarr");
    let with_profile = |name: &str| {
        let mut o = StoreOptions {
            anonymous: false,
            region: None,
            ..r.s3_options(true)
        };
        o.set("profile", name).unwrap();
        ZarrStore::open(&url, o)
    };
    // the right keys: the store reads as the local one
    let n = compare_group(
        "s3 profile",
        "cmip6_mini.zarr",
        &with_profile("gridflow").unwrap(),
    );
    assert!(n > 0);
    // the wrong ones (the default profile): refused, naming the URL
    let e = with_profile("default")
        .unwrap()
        .open_group("")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&url) && e.contains("403"), "{e}");
    // a profile in neither file
    let e = with_profile("nope").unwrap_err().to_string();
    assert!(
        e.contains(&url) && e.contains("AWS profile \"nope\"") && e.contains("credentials"),
        "{e}"
    );
}

/// How the local fault server answers requests for chunk keys (metadata is always served).
#[derive(Clone, Copy)]
enum Fault {
    /// `403 Forbidden` with a long HTML page.
    Forbidden,
    /// Accept, read the request, never answer.
    Hang,
    /// No fault: every key is served, with chunked transfer encoding (no `Content-Length`),
    /// honouring `Range` headers (206) or ignoring them (200 and the whole file).
    Chunked { honor_range: bool },
}

/// A long error page, as proxies and web servers send: messages must quote only its start.
fn forbidden_page() -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n<body>\n\
         <h1>Forbidden</h1>\n<p>You don't have permission to access this resource.</p>\n{}\n\
         <p>END-OF-PAGE</p></body></html>\n",
        "<p>padding padding padding padding padding padding padding padding</p>\n".repeat(200)
    )
}

/// Parses `Range: bytes=a-b` / `bytes=a-` from a request head.
fn range_header(head: &str) -> Option<(usize, Option<usize>)> {
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("range:"))?;
    let spec = line.split_once('=')?.1.trim();
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok().map(|e: usize| e + 1)))
}

/// Writes `body` with chunked transfer encoding, in pieces of at most 1000 bytes.
fn reply_chunked(s: &mut TcpStream, status: &str, body: &[u8], head_only: bool) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    if head_only {
        return;
    }
    for piece in body.chunks(1000) {
        let _ = write!(s, "{:x}\r\n", piece.len());
        let _ = s.write_all(piece);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
}

fn is_metadata(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    matches!(
        name,
        ".zmetadata" | ".zarray" | ".zattrs" | ".zgroup" | "zarr.json"
    )
}

/// A local HTTP server over `tests/fixtures` that serves metadata files and answers every
/// other key with `fault`. Returns its base URL. Threads are detached; they end with the
/// test process.
fn fault_server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || serve(stream, fault));
        }
    });
    format!("http://{addr}")
}

fn serve(mut s: TcpStream, fault: Fault) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let range = range_header(&head);
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let key = parts
        .next()
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    let reply = |s: &mut TcpStream, status: &str, body: &[u8]| {
        let body_out = if method == "HEAD" { &[][..] } else { body };
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(body_out);
    };
    if let Fault::Chunked { honor_range } = fault {
        let head_only = method == "HEAD";
        match std::fs::read(fixtures().join(&key)) {
            Ok(b) => match range.filter(|_| honor_range) {
                Some((start, end)) => {
                    let end = end.unwrap_or(b.len()).min(b.len());
                    let part = b.get(start..end).unwrap_or(&[]);
                    reply_chunked(&mut s, "206 Partial Content", part, head_only);
                }
                None => reply_chunked(&mut s, "200 OK", &b, head_only),
            },
            Err(_) => reply_chunked(&mut s, "404 Not Found", b"not found", head_only),
        }
        return;
    }
    if is_metadata(&key) {
        match std::fs::read(fixtures().join(&key)) {
            Ok(b) => reply(&mut s, "200 OK", &b),
            Err(_) => reply(&mut s, "404 Not Found", b"not found"),
        }
        return;
    }
    match fault {
        Fault::Forbidden => reply(&mut s, "403 Forbidden", forbidden_page().as_bytes()),
        Fault::Hang => std::thread::sleep(Duration::from_secs(600)),
        Fault::Chunked { .. } => {}
    }
}

/// Options that give up quickly: 1 s connect and read time-outs, no retries.
fn impatient() -> StoreOptions {
    StoreOptions {
        read_timeout_secs: 1,
        connect_timeout_secs: 1,
        max_retries: 0,
        ..StoreOptions::read_only()
    }
}

fn chunk_failure(fault: Fault, options: StoreOptions) -> String {
    let base = fault_server(fault);
    let url = format!("{base}/cmip6_mini.zarr");
    let store = ZarrStore::open(&url, options).unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    let e = tas.read_chunk(&[1, 0, 0]).unwrap_err();
    assert!(matches!(e, StoreError::Chunk { .. }), "{e:?}");
    let msg = e.to_string();
    println!("{msg}");
    assert!(
        msg.contains(&url) && msg.contains("\"tas\"") && msg.contains("tas/1.0.0"),
        "{msg}"
    );
    // through the lazy array and the executor, the message survives
    let lazy = tas
        .to_chunked(None)
        .unwrap()
        .compute_with(&Scheduler::threads(2))
        .unwrap_err()
        .to_string();
    assert!(lazy.contains(&url) && lazy.contains("tas/"), "{lazy}");
    msg
}

#[test]
fn forbidden_chunk_names_url_status_and_a_short_excerpt() {
    // 4xx is not retried; nextest's time-out bounds the test
    let msg = chunk_failure(Fault::Forbidden, StoreOptions::read_only());
    assert!(
        msg.contains("HTTP 403 Forbidden: 403 Forbidden Forbidden You don't have permission"),
        "{msg}"
    );
    // one line, the page's start only (not 15 KB of HTML)
    assert!(!msg.contains('\n') && !msg.contains("<h1>"), "{msg}");
    assert!(!msg.contains("END-OF-PAGE"), "{msg}");
    assert!(msg.len() < 600, "{} bytes: {msg}", msg.len());
}

#[test]
fn chunk_read_time_out_names_url_and_time_out() {
    let msg = chunk_failure(Fault::Hang, impatient());
    assert!(
        msg.contains("GET http://") && msg.contains("/cmip6_mini.zarr/tas/1.0.0"),
        "{msg}"
    );
    assert!(msg.contains("read time-out of 1 s"), "{msg}");
    assert!(msg.contains("GRIDFLOW_HTTP_READ_TIMEOUT"), "{msg}");
}

#[test]
fn chunk_time_out_is_not_retried() {
    // retries are for 5xx and dropped connections; a time-out ends the read (the nextest
    // time-out, not this test, bounds how long that takes)
    let opts = StoreOptions {
        max_retries: 2,
        ..impatient()
    };
    let msg = chunk_failure(Fault::Hang, opts);
    assert!(msg.contains("read time-out of 1 s"), "{msg}");
}

#[test]
fn time_outs_default_to_10_s_connect_and_30_s_read() {
    let o = StoreOptions::default();
    if std::env::var_os("GRIDFLOW_HTTP_CONNECT_TIMEOUT").is_none() {
        assert_eq!(o.connect_timeout_secs, 10);
    }
    if std::env::var_os("GRIDFLOW_HTTP_READ_TIMEOUT").is_none() {
        assert_eq!(o.read_timeout_secs, 30);
    }
    assert_eq!(
        o.timeout_secs, 0,
        "no whole-request limit: big shards may take long"
    );
}

#[test]
fn read_time_out_comes_from_the_environment() {
    run_child(
        "read_time_out_from_env_child",
        &[("GRIDFLOW_HTTP_READ_TIMEOUT", "1")],
    );
    // a bad value is an error naming the variable, at open time
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["bad_time_out_env_child", "--exact", "--nocapture"])
        .env("GRIDFLOW_TEST_CHILD", "bad_time_out_env_child")
        .env("GRIDFLOW_HTTP_CONNECT_TIMEOUT", "soon")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

/// Runs only inside [`read_time_out_comes_from_the_environment`]'s child process.
#[test]
fn read_time_out_from_env_child() {
    if var("GRIDFLOW_TEST_CHILD").as_deref() != Some("read_time_out_from_env_child") {
        return;
    }
    assert_eq!(StoreOptions::read_only().read_timeout_secs, 1);
    let opts = StoreOptions {
        max_retries: 0,
        ..StoreOptions::read_only()
    };
    let msg = chunk_failure(Fault::Hang, opts);
    assert!(msg.contains("read time-out of 1 s"), "{msg}");
}

/// Runs only inside [`read_time_out_comes_from_the_environment`]'s child process.
#[test]
fn bad_time_out_env_child() {
    if var("GRIDFLOW_TEST_CHILD").as_deref() != Some("bad_time_out_env_child") {
        return;
    }
    let e = ZarrStore::open("http://127.0.0.1:9/x.zarr", StoreOptions::read_only()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("GRIDFLOW_HTTP_CONNECT_TIMEOUT=\"soon\""),
        "{msg}"
    );
}

#[test]
fn chunked_transfer_encoding_is_accepted() {
    // a server that never sends Content-Length: whole reads, ranged reads of shards (with the
    // server honouring or ignoring Range) and HEAD sizes all work and equal local reads
    for honor_range in [true, false] {
        let base = fault_server(Fault::Chunked { honor_range });
        let what = format!("chunked (Range honoured: {honor_range})");
        let store = ZarrStore::open(&format!("{base}/cmip6_mini.zarr"), impatient()).unwrap();
        let n = compare_group(&what, "cmip6_mini.zarr", &store);
        assert!(n > 0, "{what}");
        let v3 = ZarrStore::open(&format!("{base}/v3_plain.zarr"), impatient()).unwrap();
        let a = v3.open_array("sharded").unwrap();
        let ts = a.read_region(&[0..64, 1..2, 2..3]).unwrap();
        let want: Vec<f64> = (0..64).map(|t| f64::from(t * 12 + 4 + 2) * 0.5).collect();
        assert_eq!(ts.to_f64_vec(), want, "{what}");
        // whole-file reads (catalogs) too
        let url = format!("{base}/cmip6_mini.zarr/.zmetadata");
        let bytes = gridflow_store::fetch::read_bytes(&url, &impatient()).unwrap();
        let local = std::fs::read(fixtures().join("cmip6_mini.zarr/.zmetadata")).unwrap();
        assert_eq!(bytes, local, "{what}");
    }
}

#[test]
fn server_that_never_answers_fails_the_open_with_the_url() {
    // accepts connections and never answers, not even to metadata requests
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/store.zarr", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let store = ZarrStore::open(&url, impatient()).unwrap();
    let e = store.open_group("").map(|_| ()).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains(&url) && e.contains(".zmetadata"), "{e}");
    assert!(e.contains("read time-out of 1 s"), "{e}");
}

#[test]
fn writing_to_read_only_remote_stores_fails_and_writes_nothing() {
    let Some(r) = remote("writing_to_read_only_remote_stores_fails_and_writes_nothing") else {
        return;
    };
    // only the prefixes this test touches: other tests write to the bucket concurrently
    let target = format!("readonly-{}.zarr", std::process::id());
    let ours = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter()
            .filter(|k| k.starts_with(&format!("{target}/")) || k.starts_with("cmip6_mini.zarr/"))
            .collect()
    };
    let before = ours(r.s3_keys());
    assert!(!before.is_empty());
    let x = ChunkedArray::ones(&[4, 4], [2, 2], DType::F32).unwrap();
    for store in [
        ZarrStore::open(&r.s3_url(&target), r.s3_options(true)).unwrap(),
        ZarrStore::open(&r.s3_url("cmip6_mini.zarr"), r.s3_options(true)).unwrap(),
        r.http_store(&target),
    ] {
        assert!(store.is_read_only());
        let e = to_zarr(&x, &store, "x", &WriteOptions::default()).unwrap_err();
        assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
        assert!(e.to_string().contains("read-only"), "{e}");
    }
    assert_eq!(ours(r.s3_keys()), before, "nothing was written");
    assert!(r.http_store(&target).open_group("").is_err());
}

#[test]
fn s3_failed_fresh_write_leaves_no_store_that_opens() {
    let Some(r) = remote("s3_failed_fresh_write_leaves_no_store_that_opens") else {
        return;
    };
    // a lazy array whose second chunk is corrupt: the write fails partway
    let d = std::env::temp_dir().join(format!("gridflow-remote-failing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let src = ZarrStore::open(d.to_str().unwrap(), StoreOptions::default()).unwrap();
    let x = ChunkedArray::arange(0.0, 40.0, 1.0, 10, DType::F64).unwrap();
    to_zarr(&x, &src, "src", &WriteOptions::default()).unwrap();
    std::fs::write(d.join("src/1"), b"not a blosc frame").unwrap();
    let failing = src
        .open_group("")
        .unwrap()
        .array("src")
        .unwrap()
        .to_chunked(None)
        .unwrap();
    let target = format!("failed-{}.zarr", std::process::id());
    let store = ZarrStore::open(&r.s3_url(&target), r.s3_options(false)).unwrap();
    let o = WriteOptions {
        batch_blocks: 1,
        threads: 1,
        ..WriteOptions::default()
    };
    let e = to_zarr(&failing, &store, "tas", &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("src/1"), "{e}");
    let keys: Vec<String> = r
        .s3_keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("{target}/")))
        .collect();
    assert!(
        keys.iter().all(|k| !k.ends_with(".zgroup")
            && !k.ends_with(".zarray")
            && !k.ends_with(".zmetadata")
            && !k.ends_with("zarr.json")),
        "metadata written by a failed write: {keys:?}"
    );
    assert!(r.s3_store(&target).open_group("").is_err());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn s3_write_then_read_back() {
    let Some(r) = remote("s3_write_then_read_back") else {
        return;
    };
    let target = format!("written-{}.zarr", std::process::id());
    let v: Vec<f64> = (0..42).map(|i| f64::from(i) * 0.25).collect();
    let c = gridflow_array::Chunk::from_f64_vec(&[6, 7], v, DType::F32).unwrap();
    let x = ChunkedArray::from_chunk(c, [4, 3]).unwrap();
    let store = ZarrStore::open(&r.s3_url(&target), r.s3_options(false)).unwrap();
    to_zarr(&x, &store, "tas", &WriteOptions::default()).unwrap();
    let keys = r.s3_keys();
    assert!(keys.contains(&format!("{target}/.zmetadata")), "{keys:?}");
    let back = r
        .s3_store(&target)
        .open_group("")
        .unwrap()
        .array("tas")
        .unwrap();
    let got = read_all(&back);
    assert_values_eq("s3 write", &values(&got), &values(&x.compute().unwrap()));
    // and a second create-mode write refuses to overwrite
    let e = to_zarr(&x, &store, "tas", &WriteOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Exists { .. }), "{e}");
}
