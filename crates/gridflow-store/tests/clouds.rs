//! `gs://` (Google Cloud Storage) and `az://` / `abfs://` (Azure Blob Storage) stores, read
//! from real local emulators, equal the same stores read from disk, a reduction streamed over
//! them included; failures (missing stores, a private container without credentials, an
//! emulator killed mid-read) give errors naming the URL, and never hang.
//!
//! `scripts/test-servers.sh start` (which `scripts/test.sh` runs) starts fake-gcs-server and
//! Azurite holding the fixture stores and writes their addresses to
//! `target/test-servers/env` (`GRIDFLOW_TEST_GCS_*`, `GRIDFLOW_TEST_AZURE_*`, and the
//! emulators' programs, which the mid-read kill tests start on their own). Without those
//! variables each test prints a notice and returns; in CI (`CI` set to anything but
//! `false`/`0`) a missing emulator fails the test instead.
//!
//! fake-gcs-server checks no credentials, so GCS's refusal of unsigned requests to a private
//! bucket comes from a loopback server answering as GCS does (403, XML error body).
#![allow(missing_docs, clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;
use gridflow_array::{ChunkedArray, DType, Scheduler};
use gridflow_store::{StoreError, StoreOptions, WriteOptions, ZarrStore, to_zarr};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Clouds {
    gcs_endpoint: String,
    bucket: String,
    az_endpoint: String,
    account: String,
    container: String,
    private_container: String,
    fake_gcs_server: String,
    azurite_blob: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The emulators' addresses, or `None` (with a notice) when they are not running.
fn clouds(test: &str) -> Option<Clouds> {
    let names = [
        "GRIDFLOW_TEST_GCS_ENDPOINT",
        "GRIDFLOW_TEST_GCS_BUCKET",
        "GRIDFLOW_TEST_AZURE_ENDPOINT",
        "GRIDFLOW_TEST_AZURE_ACCOUNT",
        "GRIDFLOW_TEST_AZURE_CONTAINER",
        "GRIDFLOW_TEST_AZURE_PRIVATE_CONTAINER",
        "GRIDFLOW_TEST_FAKE_GCS_SERVER",
        "GRIDFLOW_TEST_AZURITE_BLOB",
    ];
    let vals: Vec<Option<String>> = names.iter().map(|n| var(n)).collect();
    if let [
        Some(gcs_endpoint),
        Some(bucket),
        Some(az_endpoint),
        Some(account),
        Some(container),
        Some(private_container),
        Some(fake_gcs_server),
        Some(azurite_blob),
    ] = vals.as_slice()
    {
        return Some(Clouds {
            gcs_endpoint: gcs_endpoint.clone(),
            bucket: bucket.clone(),
            az_endpoint: az_endpoint.clone(),
            account: account.clone(),
            container: container.clone(),
            private_container: private_container.clone(),
            fake_gcs_server: fake_gcs_server.clone(),
            azurite_blob: azurite_blob.clone(),
        });
    }
    let why = format!(
        "{test}: {} are not all set. Run scripts/test.sh, or \
         `scripts/test-servers.sh start && source target/test-servers/env` first.",
        names.join(" / ")
    );
    assert!(!in_ci(), "the cloud emulators are required in CI: {why}");
    println!("NOTICE: skipped {why}");
    None
}

/// Read-only options with storage options set by name, as `--storage-option` sets them.
fn options(pairs: &[String]) -> StoreOptions {
    let mut o = StoreOptions::read_only();
    o.set_pairs(pairs).unwrap();
    o
}

impl Clouds {
    fn gcs_url(&self, store: &str) -> String {
        format!("gs://{}/{store}", self.bucket)
    }

    fn az_url(&self, store: &str) -> String {
        format!("az://{}/{store}", self.container)
    }

    /// No credentials: the emulator's address only (requests go unsigned).
    fn gcs_options(&self) -> StoreOptions {
        options(&[format!("endpoint={}", self.gcs_endpoint)])
    }

    /// No credentials: the emulator's account URL and the account name.
    fn az_options(&self) -> StoreOptions {
        options(&[
            format!("endpoint={}", self.az_endpoint),
            format!("account_name={}", self.account),
        ])
    }
}

/// Every fixture store, opened as a group through `url(name)`, equals the local one: metadata,
/// every value, and a sum over axis 0 streamed chunk by chunk from the emulator.
fn compare_all(what: &str, url: impl Fn(&str) -> String, options: &StoreOptions) {
    for name in CONSOLIDATED.iter().chain(&PLAIN) {
        let store = ZarrStore::open(&url(name), options.clone()).unwrap();
        let n = compare_group(&format!("{what} {name}"), name, &store);
        println!(
            "{what} {name}: {n} arrays, {} requests, {} bytes",
            store.requests(),
            store.bytes_read()
        );
        assert_eq!(n, expected_paths(name).len(), "{what} {name}");
        assert!(
            store.requests() > 0 && store.bytes_read() > 0,
            "{what} {name}"
        );
    }
}

#[test]
fn gcs_stores_equal_local_reads() {
    let Some(c) = clouds("gcs_stores_equal_local_reads") else {
        return;
    };
    compare_all("gcs", |n| c.gcs_url(n), &c.gcs_options());
}

#[test]
fn azure_stores_equal_local_reads() {
    let Some(c) = clouds("azure_stores_equal_local_reads") else {
        return;
    };
    compare_all("azure", |n| c.az_url(n), &c.az_options());
    // abfs:// naming the account in the URL: no account option needed
    let abfs = |n: &str| {
        format!(
            "abfs://{}@{}.dfs.core.windows.net/{n}",
            c.container, c.account
        )
    };
    let o = options(&[format!("endpoint={}", c.az_endpoint)]);
    let store = ZarrStore::open(&abfs("cmip6_mini.zarr"), o).unwrap();
    assert!(compare_group("abfs cmip6_mini.zarr", "cmip6_mini.zarr", &store) > 0);
}

#[test]
fn whole_files_read_from_gs_and_az_urls() {
    // what catalogs are read with (a catalog JSON at gs://..., az://...)
    let Some(c) = clouds("whole_files_read_from_gs_and_az_urls") else {
        return;
    };
    let local = std::fs::read(fixtures().join("cmip6_mini.zarr/.zmetadata")).unwrap();
    for (url, o) in [
        (c.gcs_url("cmip6_mini.zarr/.zmetadata"), c.gcs_options()),
        (c.az_url("cmip6_mini.zarr/.zmetadata"), c.az_options()),
    ] {
        let got = gridflow_store::fetch::read_bytes(&url, &o).unwrap();
        assert_eq!(got, local, "{url}");
        let missing = url.replace(".zmetadata", "nope.json");
        let e = gridflow_store::fetch::read_bytes(&missing, &o).unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(missing.trim_end_matches("/nope.json")) && msg.contains("nope.json"),
            "{msg}"
        );
    }
}

#[test]
fn missing_stores_and_buckets_are_named() {
    let Some(c) = clouds("missing_stores_and_buckets_are_named") else {
        return;
    };
    for (url, o) in [
        (c.gcs_url("nope.zarr"), c.gcs_options()),
        (c.az_url("nope.zarr"), c.az_options()),
    ] {
        let store = ZarrStore::open(&url, o).unwrap();
        let e = store.open_group("").unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
        let msg = e.to_string();
        println!("{msg}");
        assert!(msg.contains(&url) && msg.contains("no group"), "{msg}");
        let e = store.open_array("tas").unwrap_err().to_string();
        assert!(e.contains(&url) && e.contains("no array at \"tas\""), "{e}");
    }
    // a bucket / container that does not exist
    for (url, o) in [
        (
            "gs://gridflow-no-such-bucket/cmip6_mini.zarr".to_owned(),
            c.gcs_options(),
        ),
        (
            "az://gridflow-no-such-container/cmip6_mini.zarr".to_owned(),
            c.az_options(),
        ),
    ] {
        let e = ZarrStore::open(&url, o)
            .unwrap()
            .open_group("")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        println!("{e}");
        assert!(e.contains(&url), "{e}");
    }
}

#[test]
fn azure_private_container_refuses_unsigned_reads_by_name() {
    let Some(c) = clouds("azure_private_container_refuses_unsigned_reads_by_name") else {
        return;
    };
    let url = format!("az://{}/cmip6_mini.zarr", c.private_container);
    let store = ZarrStore::open(&url, c.az_options()).unwrap();
    let e = store.open_group("").map(|_| ()).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains(&url) && e.contains(".zmetadata"), "{e}");
    assert!(e.contains("403"), "{e}");
    assert!(e.contains("the request was unsigned"), "{e}");
    // the public container holds the same store and reads anonymously (the refusal is the
    // container's, not the store's)
    assert!(
        ZarrStore::open(&c.az_url("cmip6_mini.zarr"), c.az_options())
            .unwrap()
            .open_group("")
            .is_ok()
    );
}

#[test]
fn azure_private_container_reads_with_a_key_option() {
    let Some(c) = clouds("azure_private_container_reads_with_a_key_option") else {
        return;
    };
    let url = format!("az://{}/cmip6_mini.zarr", c.private_container);
    let mut o = c.az_options();
    o.set("account_key", AZURITE_KEY).unwrap();
    let store = ZarrStore::open(&url, o).unwrap();
    assert!(compare_group("azure private (key option)", "cmip6_mini.zarr", &store) > 0);
    // anon=true overrides the key: unsigned again, and refused
    let mut anon = c.az_options();
    anon.set_pairs(&[format!("account_key={AZURITE_KEY}"), "anon=true".into()])
        .unwrap();
    let e = ZarrStore::open(&url, anon)
        .unwrap()
        .open_group("")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("403") && e.contains(&url), "{e}");
}

/// Azurite's documented development account key (public; not a secret).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[test]
fn azure_private_container_reads_with_environment_credentials() {
    let Some(c) = clouds("azure_private_container_reads_with_environment_credentials") else {
        return;
    };
    // the account and its key from the Azure variables, the endpoint by option
    run_child(
        "azure_env_credentials_child",
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", c.account.as_str()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
        ],
    );
    // and the Azure CLI's names for them
    run_child(
        "azure_env_credentials_child",
        &[
            ("AZURE_STORAGE_ACCOUNT", c.account.as_str()),
            ("AZURE_STORAGE_KEY", AZURITE_KEY),
        ],
    );
}

/// Runs only inside [`azure_private_container_reads_with_environment_credentials`]'s child.
#[test]
fn azure_env_credentials_child() {
    if var("GRIDFLOW_TEST_CHILD").as_deref() != Some("azure_env_credentials_child") {
        return;
    }
    let c = clouds("azure_env_credentials_child").unwrap();
    let url = format!("az://{}/cmip6_mini.zarr", c.private_container);
    let o = options(&[format!("endpoint={}", c.az_endpoint)]);
    let store = ZarrStore::open(&url, o).unwrap();
    assert!(compare_group("azure private (environment)", "cmip6_mini.zarr", &store) > 0);
}

#[test]
fn azure_write_then_read_back() {
    let Some(c) = clouds("azure_write_then_read_back") else {
        return;
    };
    let target = c.az_url(&format!("written-{}.zarr", std::process::id()));
    let v: Vec<f64> = (0..42).map(|i| f64::from(i) * 0.25).collect();
    let chunk = gridflow_array::Chunk::from_f64_vec(&[6, 7], v, DType::F32).unwrap();
    let x = ChunkedArray::from_chunk(chunk, [4, 3]).unwrap();
    let mut rw = c.az_options();
    rw.read_only = false;
    rw.set("account_key", AZURITE_KEY).unwrap();
    let store = ZarrStore::open(&target, rw).unwrap();
    to_zarr(&x, &store, "tas", &WriteOptions::default()).unwrap();
    // read back anonymously (the container is public)
    let back = ZarrStore::open(&target, c.az_options())
        .unwrap()
        .open_group("")
        .unwrap()
        .array("tas")
        .unwrap();
    assert_values_eq(
        "azure write",
        &values(&read_all(&back)),
        &values(&x.compute().unwrap()),
    );
    // without credentials the write is refused by the emulator, naming the URL
    let mut anon = c.az_options();
    anon.read_only = false;
    let other = c.az_url(&format!("refused-{}.zarr", std::process::id()));
    let e = to_zarr(
        &x,
        &ZarrStore::open(&other, anon).unwrap(),
        "tas",
        &WriteOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&other) && e.contains("unsigned"), "{e}");
}

#[test]
fn gcs_refusal_of_unsigned_requests_names_the_url() {
    // fake-gcs-server has no access control: this loopback server answers every request as
    // GCS answers unsigned ones to a private bucket (403, XML error body)
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || answer_forbidden(s));
        }
    });
    let url = "gs://gridflow-private/cmip6_mini.zarr";
    let store = ZarrStore::open(url, options(&[format!("endpoint={endpoint}")])).unwrap();
    let e = store.open_group("").map(|_| ()).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains(url) && e.contains(".zmetadata"), "{e}");
    assert!(e.contains("403"), "{e}");
    assert!(e.contains("the request was unsigned"), "{e}");
    assert!(e.contains("Anonymous caller"), "{e}");
}

fn answer_forbidden(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut out = stream;
    let body = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>\
                <Message>Access denied.</Message><Details>Anonymous caller does not have \
                storage.objects.get access to the Google Cloud Storage object.</Details></Error>";
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => {
                let head = format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if out.write_all(head.as_bytes()).is_err()
                    || out.write_all(body.as_bytes()).is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}

#[test]
fn gcs_bad_credentials_file_names_the_url_and_the_file() {
    // credentials that are configured but unusable are an error naming the store, not a
    // silent fallback to unsigned requests
    let Some(c) = clouds("gcs_bad_credentials_file_names_the_url_and_the_file") else {
        return;
    };
    let missing =
        std::env::temp_dir().join(format!("gridflow-no-such-{}.json", std::process::id()));
    let mut o = c.gcs_options();
    o.set("service_account", missing.to_str().unwrap()).unwrap();
    let url = c.gcs_url("cmip6_mini.zarr");
    let e = ZarrStore::open(&url, o).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    let msg = e.to_string();
    println!("{msg}");
    assert!(msg.contains(&url), "{msg}");
}

/// A local store of 1000 chunks, for the mid-read kills.
fn big_store(dir: &Path) -> (ZarrStore, f64) {
    let store = ZarrStore::open(dir.to_str().unwrap(), StoreOptions::default()).unwrap();
    let x = ChunkedArray::arange(0.0, 256_000.0, 1.0, 256, DType::F64).unwrap();
    to_zarr(&x, &store, "tas", &WriteOptions::default()).unwrap();
    let sum = x.sum(None).unwrap().compute().unwrap().to_f64_vec()[0];
    (
        ZarrStore::open(dir.to_str().unwrap(), StoreOptions::read_only()).unwrap(),
        sum,
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the emulator when the test ends, however it ends.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens `url` once the emulator answers (it takes a moment to start).
fn open_when_up(url: &str, o: &StoreOptions) -> gridflow_store::ZarrArray {
    for _ in 0..200 {
        let store = ZarrStore::open(url, o.clone()).unwrap();
        if let Ok(g) = store.open_group("") {
            return g.array("tas").unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the emulator never served {url}");
}

/// How the emulator stops in the middle of a read.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGKILL: connections reset, new ones refused.
    Kill,
    /// SIGSTOP: connections accepted by the kernel, never answered (the read time-out ends
    /// each request).
    Freeze,
}

/// Sums the remote store on 2 threads and stops the emulator once 50 chunks were read: the
/// reduction fails with the URL and a chunk key (the nextest time-out catches a hang).
fn stop_mid_read(
    url: &str,
    o: &StoreOptions,
    mut emulator: Emulator,
    local_sum: f64,
    how: Stop,
) -> String {
    let tas = open_when_up(url, o);
    // first, a whole read equals the local sum (the emulator serves every chunk)
    let whole = tas.to_chunked(None).unwrap().sum(None).unwrap();
    assert_eq!(
        whole
            .compute_with(&Scheduler::threads(2))
            .unwrap()
            .to_f64_vec()[0],
        local_sum,
        "{url}"
    );
    let store = ZarrStore::open(url, o.clone()).unwrap();
    let tas = store.open_group("").unwrap().array("tas").unwrap();
    let sum = tas.to_chunked(None).unwrap().sum(None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = sum.compute_with(&Scheduler::threads(2));
        let _ = tx.send(r.map(|c| c.to_f64_vec()).map_err(|e| e.to_string()));
    });
    while store.requests() < 50 {
        std::thread::sleep(Duration::from_millis(1));
    }
    match how {
        Stop::Kill => {
            emulator.0.kill().unwrap();
            emulator.0.wait().unwrap();
        }
        Stop::Freeze => {
            // killed (SIGKILL ends a stopped process too) when `emulator` drops
            let pid = emulator.0.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-STOP", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
        }
    }
    let read = store.requests();
    let got = rx.recv().unwrap();
    let e = got.expect_err("the read went on after the emulator stopped");
    println!("{how:?} after {read} requests: {e}");
    assert!(e.contains(url) && e.contains("tas/"), "{e}");
    e
}

/// Starts fake-gcs-server on a free port holding the 1000-chunk store at
/// `gs://kill-bucket/big.zarr`: (the emulator, its endpoint, the store's sum, the data dir).
fn gcs_with_big_store(c: &Clouds, name: &str) -> (Emulator, String, f64, PathBuf) {
    // fake-gcs-server loads <data>/<bucket>/<object path> at start
    let data = tmp_dir(name);
    let (_, local_sum) = big_store(&data.join("kill-bucket/big.zarr"));
    let port = free_port();
    let child = Command::new(&c.fake_gcs_server)
        .args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-backend",
            "memory",
        ])
        .args(["-port", &port.to_string()])
        .args(["-public-host", &format!("127.0.0.1:{port}")])
        .args(["-data", data.to_str().unwrap(), "-log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (
        Emulator(child),
        format!("http://127.0.0.1:{port}"),
        local_sum,
        data,
    )
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gridflow-clouds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn gcs_emulator_killed_mid_read_fails_naming_the_url() {
    let Some(c) = clouds("gcs_emulator_killed_mid_read_fails_naming_the_url") else {
        return;
    };
    let (emulator, endpoint, sum, data) = gcs_with_big_store(&c, "gcs-kill");
    // the default time-outs and retries
    let o = options(&[format!("endpoint={endpoint}")]);
    stop_mid_read("gs://kill-bucket/big.zarr", &o, emulator, sum, Stop::Kill);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn gcs_emulator_frozen_mid_read_times_out_naming_the_url() {
    let Some(c) = clouds("gcs_emulator_frozen_mid_read_times_out_naming_the_url") else {
        return;
    };
    let (emulator, endpoint, sum, data) = gcs_with_big_store(&c, "gcs-freeze");
    // the HTTP time-outs of gridflow-store, set by storage option: 1 s, no retries
    let o = options(&[
        format!("endpoint={endpoint}"),
        "read_timeout=1".into(),
        "connect_timeout=1".into(),
        "max_retries=0".into(),
    ]);
    let e = stop_mid_read("gs://kill-bucket/big.zarr", &o, emulator, sum, Stop::Freeze);
    assert!(
        e.contains("read time-out of 1 s") && e.contains("read_timeout="),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn azure_emulator_killed_mid_read_fails_naming_the_url() {
    let Some(c) = clouds("azure_emulator_killed_mid_read_fails_naming_the_url") else {
        return;
    };
    let data = tmp_dir("azure-kill");
    let (_, local_sum) = big_store(&data.join("big.zarr"));
    let port = free_port();
    let child = Command::new("node")
        .arg(&c.azurite_blob)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args([
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ])
        .args(["--loose", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let emulator = Emulator(child);
    let endpoint = format!("http://127.0.0.1:{port}/{}", c.account);
    // the container and its blobs, through the same uploader as scripts/test-servers.sh
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-emulators.py");
    let mut uploaded = false;
    for _ in 0..100 {
        let out = Command::new("python3")
            .arg(&script)
            .args(["azure-upload", &endpoint, "kill-container"])
            .arg(&data)
            .arg("--public")
            .output()
            .unwrap();
        if out.status.success() {
            uploaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(uploaded, "could not upload to azurite at {endpoint}");
    let o = options(&[
        format!("endpoint={endpoint}"),
        format!("account_name={}", c.account),
    ]);
    stop_mid_read(
        "az://kill-container/big.zarr",
        &o,
        emulator,
        local_sum,
        Stop::Kill,
    );
    let _ = std::fs::remove_dir_all(&data);
}
