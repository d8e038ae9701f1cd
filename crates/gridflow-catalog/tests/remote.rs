//! Catalogs opened over HTTP and through the S3 API (path-style, unsigned) equal the local
//! ones; relative catalog files resolve against the JSON's URL. The server is a small
//! loopback HTTP/1.1 file server in this file, serving tests/fixtures (S3 requests
//! `/<bucket>/<key>` map to `<key>`); it only answers the requests these tests make.
#![allow(clippy::unwrap_used)]

use gridflow_catalog::{AssetBase, CatalogError, EsmCatalog, PlanOptions};
use gridflow_store::StoreOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const BUCKET: &str = "catalogs";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Starts the server once per test binary; returns its base URL.
fn server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = serve(stream, &fixtures());
                });
            }
        });
        url
    })
}

fn serve(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    // keep-alive: several requests per connection, until the client closes it
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                break;
            }
        }
        let mut parts = request.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or("/").split('?').next().unwrap_or("/");
        let rel = target.trim_start_matches('/');
        let rel = rel.strip_prefix(&format!("{BUCKET}/")).unwrap_or(rel);
        let file = root.join(rel);
        let body = if rel.contains("..") {
            None
        } else {
            std::fs::read(&file).ok().filter(|_| file.is_file())
        };
        match body {
            Some(bytes) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
                     ETag: \"{}\"\r\nLast-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n\r\n",
                    bytes.len(),
                    bytes.len()
                )?;
                if method != "HEAD" {
                    out.write_all(&bytes)?;
                }
            }
            None => {
                let msg = b"not found";
                write!(
                    out,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n",
                    msg.len()
                )?;
                if method != "HEAD" {
                    out.write_all(msg)?;
                }
            }
        }
        out.flush()?;
    }
}

fn local(name: &str) -> EsmCatalog {
    EsmCatalog::open(
        fixtures().join(name).to_str().unwrap(),
        &StoreOptions::read_only(),
    )
    .unwrap()
}

fn same(a: &EsmCatalog, b: &EsmCatalog) {
    assert_eq!(a.keys().unwrap(), b.keys().unwrap());
    assert_eq!(a.unique(), b.unique());
    assert_eq!(a.len(), b.len());
}

#[test]
fn catalogs_over_http() {
    let opts = StoreOptions::read_only();
    for name in [
        "pangeo-cmip6.json",
        "pangeo-cmip6-gz.json",
        "pangeo-cmip6-inline.json",
    ] {
        let url = format!("{}/{name}", server());
        let remote = EsmCatalog::open(&url, &opts).unwrap();
        same(&remote, &local(name));
        assert_eq!(remote.name(), url);
    }
    // relative assets against the catalog's URL, on request
    let cat = EsmCatalog::open(&format!("{}/pangeo-cmip6.json", server()), &opts).unwrap();
    let plans = cat
        .dataset_plans_with(&PlanOptions {
            asset_base: AssetBase::CatalogDirectory,
            ..PlanOptions::default()
        })
        .unwrap();
    assert!(
        plans[0].assets[0]
            .path
            .starts_with(&format!("{}/stores/CMIP/", server())),
        "{}",
        plans[0].assets[0].path
    );
    // and the store layer can read a file of such a store
    let meta =
        gridflow_store::fetch::read_bytes(&format!("{}.zmetadata", plans[0].assets[0].path), &opts)
            .unwrap();
    assert!(
        std::str::from_utf8(&meta)
            .unwrap()
            .contains("zarr_consolidated_format")
    );
}

#[test]
fn catalogs_through_the_s3_api() {
    let opts = StoreOptions {
        endpoint: Some(server().to_owned()),
        region: Some("us-east-1".to_owned()),
        anonymous: true,
        allow_http: true,
        ..StoreOptions::read_only()
    };
    let remote = EsmCatalog::open(&format!("s3://{BUCKET}/pangeo-cmip6-gz.json"), &opts).unwrap();
    same(&remote, &local("pangeo-cmip6-gz.json"));
}

#[test]
fn remote_errors_name_the_url() {
    let url = format!("{}/no-such-catalog.json", server());
    let e = EsmCatalog::open(&url, &StoreOptions::read_only()).unwrap_err();
    assert!(matches!(&e, CatalogError::Fetch { .. }), "{e}");
    assert!(e.to_string().contains("no-such-catalog.json"), "{e}");
    // a catalog whose CSV is missing: the resolved CSV URL is named
    let url = format!("{}/malformed/missing-catalog-file.json", server());
    let e = EsmCatalog::open(&url, &StoreOptions::read_only())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{}/malformed/no-such.csv", server())),
        "{e}"
    );
}
