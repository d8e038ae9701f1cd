//! Store URLs, store options, the shared tokio runtime and the synchronous storage adapter
//! zarrs reads and writes through (local disk via zarrs' filesystem store; HTTP via its own
//! client; S3, Google Cloud Storage and Azure via `object_store`), counting requests and
//! bytes read.

use crate::clouds::BackendOptions;
use crate::error::{Result, StoreError};
use crate::http::{HttpClient, HttpError, Range};
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{
    Bytes, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StorePrefix, WritableStorageTraits,
};

/// Where a store lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreUrl {
    /// A directory on local disk (absolute).
    Local(PathBuf),
    /// An `http://` or `https://` base URL; keys are appended to it.
    Http(String),
    /// An S3 bucket and a key prefix (possibly empty).
    S3 {
        /// The bucket name.
        bucket: String,
        /// The key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// A Google Cloud Storage bucket and a key prefix (`gs://bucket/prefix`).
    Gcs {
        /// The bucket name.
        bucket: String,
        /// The key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// An Azure Blob Storage container and a key prefix: `az://container/prefix`,
    /// `abfs[s]://container/prefix`, or `abfs[s]://container@account.dfs.core.windows.net/prefix`.
    Azure {
        /// `az`, `abfs` or `abfss`, as written (kept for messages).
        scheme: String,
        /// The container (a "file system" in abfs terms).
        container: String,
        /// The host after `@` (`account.dfs.core.windows.net`), when the URL names one.
        host: Option<String>,
        /// The key prefix inside the container, without leading or trailing `/`.
        prefix: String,
    },
}

/// Splits `bucket/prefix/...` into the bucket and the prefix without outer slashes.
fn bucket_and_prefix(rest: &str) -> (String, String) {
    let rest = rest.trim_end_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (bucket.to_owned(), prefix.trim_matches('/').to_owned())
}

impl StoreUrl {
    /// Parses a path, `file://` URL, `http(s)://` URL, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix` or
    /// `abfs[s]://container[@account.dfs.core.windows.net]/prefix`.
    /// Relative paths are made absolute (so specs can be sent to other processes).
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let bad = |detail: &str| StoreError::Url {
            url: url.to_owned(),
            detail: detail.to_owned(),
        };
        if url.is_empty() {
            return Err(bad("empty URL"));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest);
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://"));
            }
            return Ok(StoreUrl::S3 { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(rest);
            if bucket.is_empty() {
                return Err(bad("no bucket name after gs://"));
            }
            return Ok(StoreUrl::Gcs { bucket, prefix });
        }
        for scheme in ["az", "abfs", "abfss"] {
            let Some(rest) = url.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) else {
                continue;
            };
            let (first, prefix) = bucket_and_prefix(rest);
            let (container, host) = match first.split_once('@') {
                Some((c, h)) => (c.to_owned(), Some(h.to_owned())),
                None => (first, None),
            };
            if container.is_empty()
                || host
                    .as_deref()
                    .is_some_and(|h| h.split('.').next().is_none_or(str::is_empty))
            {
                return Err(bad(&format!(
                    "expected {scheme}://CONTAINER/PATH or {scheme}://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"
                )));
            }
            return Ok(StoreUrl::Azure {
                scheme: scheme.to_owned(),
                container,
                host,
                prefix,
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(StoreUrl::Http(url.trim_end_matches('/').to_owned()));
        }
        let path = if let Some(p) = url.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(bad("file:// URLs must hold an absolute path (file:///...)"));
            }
            PathBuf::from(p)
        } else if url.contains("://") {
            return Err(bad(
                "unsupported scheme (use a path, file://, http://, https://, s3://, gs://, az://, abfs:// or abfss://)",
            ));
        } else {
            PathBuf::from(url)
        };
        let abs = std::path::absolute(&path).map_err(|e| bad(&e.to_string()))?;
        Ok(StoreUrl::Local(abs))
    }

    /// True for stores reached over the network.
    pub fn is_remote(&self) -> bool {
        !matches!(self, StoreUrl::Local(_))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Local(p) => write!(f, "{}", p.display()),
            StoreUrl::Http(u) => f.write_str(u),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            StoreUrl::Gcs { bucket, prefix } if prefix.is_empty() => write!(f, "gs://{bucket}"),
            StoreUrl::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
            StoreUrl::Azure {
                scheme,
                container,
                host,
                prefix,
            } => {
                write!(f, "{scheme}://{container}")?;
                if let Some(h) = host {
                    write!(f, "@{h}")?;
                }
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                Ok(())
            }
        }
    }
}

/// How to reach a store. Serializable: it travels in read-task specs (credentials never do;
/// they come from the `AWS_*`, `GOOGLE_*`, `AZURE_*` environment of each process).
///
/// Remote options can also be set by name ([`StoreOptions::set`], the `--storage-option
/// KEY=VALUE` of the command line; [`crate::clouds::STORAGE_OPTIONS`] lists them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreOptions {
    /// The object store's server: an S3 endpoint (e.g. `http://127.0.0.1:4568` for a local
    /// server; default AWS or `AWS_ENDPOINT_URL`), a GCS base URL (default
    /// `https://storage.googleapis.com` or `GOOGLE_BASE_URL`), an Azure account URL
    /// (default `https://ACCOUNT.blob.core.windows.net` or `AZURE_STORAGE_ENDPOINT`). An
    /// `http://` endpoint allows plain HTTP.
    pub endpoint: Option<String>,
    /// S3 region; default: `AWS_REGION` or `us-east-1`.
    pub region: Option<String>,
    /// Unsigned requests (public buckets), i.e. skip the signature. `gs://` and `az://`
    /// stores also go unsigned when no credentials are found, unless `require_credentials`.
    pub anonymous: bool,
    /// Never fall back to unsigned requests: `gs://` and `az://` stores without configured
    /// credentials ask the machine's identity (instance metadata, managed identity).
    pub require_credentials: bool,
    /// Backend-specific options by name (credentials files, account names, keys); see
    /// [`StoreOptions::set`]. Secrets are never serialized.
    pub backend: BackendOptions,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Virtual-hosted-style S3 requests (`bucket.host`); default path style.
    pub virtual_hosted_style: bool,
    /// Refuse every write.
    pub read_only: bool,
    /// Whole-request time-out in seconds; 0 (the default) for none: a big shard may take
    /// long to arrive, and stalled servers are caught by `read_timeout_secs`.
    pub timeout_secs: u64,
    /// Connection time-out in seconds (default 10, or `GRIDFLOW_HTTP_CONNECT_TIMEOUT`).
    pub connect_timeout_secs: u64,
    /// Read time-out in seconds: the longest wait for the server's next bytes (default 30,
    /// or `GRIDFLOW_HTTP_READ_TIMEOUT`). Time-outs are not retried.
    pub read_timeout_secs: u64,
    /// Retries of transient failures (5xx, connection resets, time-outs).
    pub max_retries: usize,
    /// Largest metadata document read (`.zmetadata`, `.zarray`, `.zattrs`, `zarr.json`...),
    /// in bytes: a bigger one is refused before it is read. Default 64 MiB.
    pub max_metadata_bytes: u64,
}

/// Default [`StoreOptions::max_metadata_bytes`]: 64 MiB (consolidated metadata of large
/// CMIP6 stores is a few MB).
pub const DEFAULT_MAX_METADATA_BYTES: u64 = 64 << 20;

/// Why a capped read refused a value.
#[derive(Debug)]
pub(crate) enum CappedError {
    /// The value is bigger than the cap.
    TooLarge { size: u64, limit: u64 },
    /// A local key that is not a regular file (FIFO, device, socket, directory).
    NotRegular { path: PathBuf },
    /// The read itself failed.
    Storage(StorageError),
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            endpoint: None,
            region: None,
            anonymous: false,
            require_credentials: false,
            backend: BackendOptions::default(),
            allow_http: false,
            virtual_hosted_style: false,
            read_only: false,
            timeout_secs: 0,
            connect_timeout_secs: env_secs(CONNECT_TIMEOUT_ENV)
                .ok()
                .flatten()
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS),
            read_timeout_secs: env_secs(READ_TIMEOUT_ENV)
                .ok()
                .flatten()
                .unwrap_or(DEFAULT_READ_TIMEOUT_SECS),
            max_retries: 3,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
        }
    }
}

/// The environment variable that sets the default connect time-out (whole seconds).
pub const CONNECT_TIMEOUT_ENV: &str = "GRIDFLOW_HTTP_CONNECT_TIMEOUT";
/// The environment variable that sets the default read time-out (whole seconds).
pub const READ_TIMEOUT_ENV: &str = "GRIDFLOW_HTTP_READ_TIMEOUT";
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
const DEFAULT_READ_TIMEOUT_SECS: u64 = 30;

/// A time-out from the environment: `Ok(None)` when unset or empty, an error naming the
/// variable when it is not a positive whole number of seconds.
fn env_secs(var: &str) -> std::result::Result<Option<u64>, String> {
    let Ok(text) = std::env::var(var) else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "{var}={text:?} is not a time-out (a positive whole number of seconds)"
        )),
    }
}

impl StoreOptions {
    /// Read-only options (what opening a store for reading uses by default).
    pub fn read_only() -> StoreOptions {
        StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        }
    }
}

/// The process-wide tokio runtime for remote I/O: created on first use, 2 worker threads.
fn runtime() -> std::result::Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gridflow-store-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Runs `fut` to completion from synchronous code. Never calls `block_on` on a tokio thread:
/// from inside a runtime, the future is driven from a short-lived plain thread instead.
fn block_on<F>(fut: F) -> std::result::Result<F::Output, StorageError>
where
    F: Future + Send,
    F::Output: Send,
{
    let handle = runtime().map_err(StorageError::Other)?.handle().clone();
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(move || handle.block_on(fut))
                .join()
                .map_err(|_| StorageError::Other("the I/O thread panicked".into()))
        })
    } else {
        Ok(handle.block_on(fut))
    }
}

enum Backend {
    Fs {
        root: PathBuf,
        store: FilesystemStore,
    },
    Object(Arc<dyn ObjectStore>),
    /// A kerchunk reference set: keys are inline values or byte ranges of other files.
    Refs(Arc<crate::kerchunk::References>),
}

/// The synchronous storage zarrs uses: a local directory or an object store, with request
/// and byte counters, refusing writes when read-only.
pub struct Storage {
    url: String,
    read_only: bool,
    max_metadata_bytes: u64,
    backend: Backend,
    /// Reads from HTTP(S) stores go through this client (chunked bodies, short errors).
    http: Option<HttpClient>,
    /// Requests to this object store go unsigned (said when the server refuses them).
    unsigned: bool,
    /// The time-outs, for messages.
    connect_timeout_secs: u64,
    read_timeout_secs: u64,
    bytes_read: AtomicU64,
    requests: AtomicU64,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("url", &self.url)
            .field("read_only", &self.read_only)
            .finish()
    }
}

fn client_options(o: &StoreOptions) -> ClientOptions {
    let c = ClientOptions::new()
        .with_allow_http(o.allow_http)
        .with_connect_timeout(Duration::from_secs(o.connect_timeout_secs.max(1)))
        .with_read_timeout(Duration::from_secs(o.read_timeout_secs.max(1)))
        .with_pool_max_idle_per_host(16);
    if o.timeout_secs > 0 {
        c.with_timeout(Duration::from_secs(o.timeout_secs))
    } else {
        c.with_timeout_disabled()
    }
}

fn retry_config(o: &StoreOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: o.max_retries,
        retry_timeout: Duration::from_secs(
            (o.connect_timeout_secs.max(1))
                .saturating_add(o.read_timeout_secs.max(1))
                .saturating_mul(2),
        ),
    }
}

/// Which time-out ended an object-store request.
enum TimedOut {
    Connect,
    Read,
}

/// The time-out in `e`'s causes, if one ended the request.
fn timed_out(e: &object_store::Error) -> Option<TimedOut> {
    let mut timeout = false;
    let mut connect = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
            timeout |= h.kind() == object_store::client::HttpErrorKind::Timeout;
        }
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            timeout |= r.is_timeout();
            connect |= r.is_connect();
        }
        cur = err.source();
    }
    match (timeout, connect) {
        (false, _) => None,
        (true, true) => Some(TimedOut::Connect),
        (true, false) => Some(TimedOut::Read),
    }
}

/// The object store under `prefix` (the whole bucket when empty).
fn prefixed(store: Arc<dyn ObjectStore>, prefix: &str) -> Backend {
    if prefix.is_empty() {
        Backend::Object(store)
    } else {
        Backend::Object(Arc::new(PrefixStore::new(store, prefix)))
    }
}

impl Storage {
    /// Creates the storage for `url`.
    pub fn new(url: &StoreUrl, options: &StoreOptions) -> Result<Storage> {
        let name = url.to_string();
        let open_err = |detail: String| StoreError::Open {
            url: name.clone(),
            detail,
        };
        if url.is_remote() {
            for var in [CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV] {
                env_secs(var).map_err(open_err)?;
            }
        }
        let mut http = None;
        let backend = match url {
            StoreUrl::Local(root) => Backend::Fs {
                root: root.clone(),
                store: FilesystemStore::new(root).map_err(|e| open_err(e.to_string()))?,
            },
            StoreUrl::Http(base) => {
                // an explicit http:// URL is consent to plain HTTP
                let mut o = options.clone();
                o.allow_http |= base.starts_with("http://");
                http = Some(HttpClient::new(base, &o).map_err(open_err)?);
                let http = HttpBuilder::new()
                    .with_url(base.clone())
                    .with_client_options(client_options(&o))
                    .with_retry(retry_config(options))
                    .build()
                    .map_err(|e| open_err(e.to_string()))?;
                Backend::Object(Arc::new(http))
            }
            StoreUrl::S3 { bucket, prefix } => {
                let s3 = crate::clouds::s3(
                    bucket,
                    options,
                    client_options(options),
                    retry_config(options),
                )
                .map_err(open_err)?;
                prefixed(s3, prefix)
            }
            StoreUrl::Gcs { bucket, prefix } => {
                let gcs = crate::clouds::gcs(
                    bucket,
                    options,
                    client_options(options),
                    retry_config(options),
                )
                .map_err(open_err)?;
                prefixed(gcs, prefix)
            }
            StoreUrl::Azure {
                container,
                host,
                prefix,
                ..
            } => {
                let account = host.as_deref().and_then(|h| h.split('.').next());
                let az = crate::clouds::azure(
                    container,
                    account,
                    options,
                    client_options(options),
                    retry_config(options),
                )
                .map_err(open_err)?;
                prefixed(az, prefix)
            }
        };
        Ok(Storage {
            url: name,
            read_only: options.read_only,
            max_metadata_bytes: options.max_metadata_bytes,
            backend,
            http,
            unsigned: crate::clouds::is_unsigned(url, options),
            connect_timeout_secs: options.connect_timeout_secs.max(1),
            read_timeout_secs: options.read_timeout_secs.max(1),
            bytes_read: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// A read-only storage over a kerchunk reference set (`url`: the reference file's).
    pub(crate) fn references(
        url: &StoreUrl,
        options: &StoreOptions,
        refs: crate::kerchunk::References,
    ) -> Storage {
        Storage {
            url: url.to_string(),
            read_only: true,
            max_metadata_bytes: options.max_metadata_bytes,
            backend: Backend::Refs(Arc::new(refs)),
            http: None,
            unsigned: false,
            connect_timeout_secs: options.connect_timeout_secs.max(1),
            read_timeout_secs: options.read_timeout_secs.max(1),
            bytes_read: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// The store URL (for messages).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True if writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Bytes returned by reads so far (values and byte ranges; listings not counted).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Read requests so far (GET, ranged GET, HEAD; for local stores: file reads).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Resets both counters to zero.
    pub fn reset_counters(&self) {
        self.bytes_read.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
    }

    fn count(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn os_err(&self, op: &str, key: &str, e: &object_store::Error) -> StorageError {
        // object_store says only "error sending request" for a time-out: say which one, as
        // the HTTP client does
        match timed_out(e) {
            Some(TimedOut::Connect) => {
                return StorageError::Other(format!(
                    "{op} {}/{key}: no connection within the connect time-out of {} s \
                     (raise it with GRIDFLOW_HTTP_CONNECT_TIMEOUT or the storage option connect_timeout=SECONDS)",
                    self.url, self.connect_timeout_secs
                ));
            }
            Some(TimedOut::Read) => {
                return StorageError::Other(format!(
                    "{op} {}/{key}: the server sent nothing within the read time-out of {} s \
                     (raise it with GRIDFLOW_HTTP_READ_TIMEOUT or the storage option read_timeout=SECONDS)",
                    self.url, self.read_timeout_secs
                ));
            }
            None => {}
        }
        // object_store quotes whole response bodies (HTML error pages): keep one line, long
        // enough for its own text and the status, short of the page
        let text = e.to_string();
        let detail = crate::http::excerpt_of(text.as_bytes(), 500);
        let hint = match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
                if self.unsigned =>
            {
                " (the request was unsigned: no credentials were found for this store, or anon=true; \
                 a private bucket needs them, see `gridflow eval --help` on storage options)"
            }
            _ => "",
        };
        StorageError::Other(format!("{op} {}/{key}: {detail}{hint}", self.url))
    }

    fn http_err(&self, e: &HttpError) -> StorageError {
        StorageError::Other(e.to_string())
    }

    async fn http_get(
        &self,
        h: &HttpClient,
        key: &str,
        range: Option<Range>,
    ) -> std::result::Result<MaybeBytes, StorageError> {
        let got = h.get(key, range).await.map_err(|e| self.http_err(&e))?;
        self.count(got.as_ref().map_or(0, Bytes::len));
        Ok(got)
    }

    async fn http_size(
        &self,
        h: &HttpClient,
        key: &str,
    ) -> std::result::Result<Option<u64>, StorageError> {
        self.count(0);
        h.size(key).await.map_err(|e| self.http_err(&e))
    }

    fn check_writable(&self) -> std::result::Result<(), StorageError> {
        if self.read_only {
            Err(StorageError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The metadata size cap ([`StoreOptions::max_metadata_bytes`]).
    pub(crate) fn max_metadata_bytes(&self) -> u64 {
        self.max_metadata_bytes
    }

    /// Reads a whole value of at most `limit` bytes; a bigger one is refused before it is
    /// read (local: its size on disk; remote: the response's size), and a local key that
    /// is not a regular file is refused without being opened (a FIFO would block).
    pub(crate) fn get_capped(
        &self,
        key: &StoreKey,
        limit: u64,
    ) -> std::result::Result<MaybeBytes, CappedError> {
        match &self.backend {
            Backend::Fs { root, .. } => {
                let path = root.join(key.as_str());
                let meta = match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.count(0);
                        return Ok(None);
                    }
                    Err(e) => return Err(CappedError::Storage(StorageError::IOError(Arc::new(e)))),
                };
                if !meta.is_file() {
                    return Err(CappedError::NotRegular { path });
                }
                if meta.len() > limit {
                    return Err(CappedError::TooLarge {
                        size: meta.len(),
                        limit,
                    });
                }
                let io =
                    |e: std::io::Error| CappedError::Storage(StorageError::IOError(Arc::new(e)));
                let file = std::fs::File::open(&path).map_err(io)?;
                // The file may grow after the check: read at most one byte past the cap.
                let mut buf = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(file, limit.saturating_add(1)),
                    &mut buf,
                )
                .map_err(io)?;
                if buf.len() as u64 > limit {
                    return Err(CappedError::TooLarge {
                        size: buf.len() as u64,
                        limit,
                    });
                }
                self.count(buf.len());
                Ok(Some(Bytes::from(buf)))
            }
            Backend::Refs(refs) => {
                let size = refs.size(key.as_str()).map_err(CappedError::Storage)?;
                match size {
                    None => {
                        self.count(0);
                        Ok(None)
                    }
                    Some(size) if size > limit => Err(CappedError::TooLarge { size, limit }),
                    Some(_) => {
                        let got = refs.get(key.as_str()).map_err(CappedError::Storage)?;
                        self.count(got.as_ref().map_or(0, Bytes::len));
                        Ok(got)
                    }
                }
            }
            Backend::Object(_) if self.http.is_some() => {
                let Some(h) = &self.http else {
                    return Ok(None);
                };
                match block_on(h.get_capped(key.as_str(), limit))
                    .map_err(CappedError::Storage)?
                    .map_err(|e| CappedError::Storage(self.http_err(&e)))?
                {
                    Ok(got) => {
                        self.count(got.as_ref().map_or(0, Bytes::len));
                        Ok(got)
                    }
                    Err(size) => Err(CappedError::TooLarge { size, limit }),
                }
            }
            Backend::Object(store) => block_on(async {
                let path = ObjectPath::from(key.as_str());
                match store.get_opts(&path, GetOptions::default()).await {
                    Ok(r) => {
                        if r.meta.size > limit {
                            return Err(CappedError::TooLarge {
                                size: r.meta.size,
                                limit,
                            });
                        }
                        let b = r.bytes().await.map_err(|e| {
                            CappedError::Storage(self.os_err("GET", key.as_str(), &e))
                        })?;
                        self.count(b.len());
                        Ok(Some(b))
                    }
                    Err(object_store::Error::NotFound { .. }) => {
                        self.count(0);
                        Ok(None)
                    }
                    Err(e) => Err(CappedError::Storage(self.os_err("GET", key.as_str(), &e))),
                }
            })
            .map_err(CappedError::Storage)?,
        }
    }

    /// Refuses a local key that exists but is not a regular file, before it is opened.
    fn check_regular(&self, key: &StoreKey) -> std::result::Result<(), StorageError> {
        if let Backend::Fs { root, .. } = &self.backend {
            let path = root.join(key.as_str());
            if let Ok(m) = std::fs::metadata(&path)
                && !m.is_file()
            {
                return Err(StorageError::Other(format!(
                    "{} is not a regular file (a FIFO, device, socket or directory); only regular files are read",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Lists one level under `prefix` (`""` or `"a/b/"`): (keys, child prefixes ending in `/`).
    pub fn list_dir(
        &self,
        prefix: &str,
    ) -> std::result::Result<(Vec<String>, Vec<String>), StorageError> {
        match &self.backend {
            Backend::Fs { root, .. } => {
                let dir = root.join(prefix);
                let mut keys = Vec::new();
                let mut dirs = Vec::new();
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok((keys, dirs));
                    }
                    Err(e) => return Err(StorageError::IOError(Arc::new(e))),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| StorageError::IOError(Arc::new(e)))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let ft = entry
                        .file_type()
                        .map_err(|e| StorageError::IOError(Arc::new(e)))?;
                    if ft.is_dir() {
                        dirs.push(format!("{prefix}{name}/"));
                    } else {
                        keys.push(format!("{prefix}{name}"));
                    }
                }
                keys.sort();
                dirs.sort();
                Ok((keys, dirs))
            }
            Backend::Object(store) => {
                let p = prefix.trim_end_matches('/');
                let path = (!p.is_empty()).then(|| ObjectPath::from(p));
                let res = block_on(store.list_with_delimiter(path.as_ref()))?
                    .map_err(|e| self.os_err("LIST", prefix, &e))?;
                let mut keys: Vec<String> = res
                    .objects
                    .iter()
                    .map(|o| o.location.as_ref().to_owned())
                    .collect();
                let mut dirs: Vec<String> = res
                    .common_prefixes
                    .iter()
                    .map(|p| format!("{}/", p.as_ref()))
                    .collect();
                keys.sort();
                dirs.sort();
                Ok((keys, dirs))
            }
            Backend::Refs(refs) => Ok(refs.list_dir(prefix)),
        }
    }

    /// Every key under `prefix`, recursively.
    pub fn list_recursive(&self, prefix: &str) -> std::result::Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        let mut stack = vec![prefix.to_owned()];
        while let Some(p) = stack.pop() {
            let (keys, dirs) = self.list_dir(&p)?;
            out.extend(keys);
            stack.extend(dirs);
        }
        out.sort();
        Ok(out)
    }

    async fn os_get(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &str,
        range: Option<GetRange>,
    ) -> std::result::Result<MaybeBytes, StorageError> {
        let path = ObjectPath::from(key);
        let opts = GetOptions {
            range,
            ..Default::default()
        };
        match store.get_opts(&path, opts).await {
            Ok(r) => {
                let b = r.bytes().await.map_err(|e| self.os_err("GET", key, &e))?;
                self.count(b.len());
                Ok(Some(b))
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.count(0);
                Ok(None)
            }
            Err(e) => Err(self.os_err("GET", key, &e)),
        }
    }

    async fn os_head(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &str,
    ) -> std::result::Result<Option<u64>, StorageError> {
        self.count(0);
        match store.head(&ObjectPath::from(key)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.os_err("HEAD", key, &e)),
        }
    }
}

impl ReadableStorageTraits for Storage {
    fn get(&self, key: &StoreKey) -> std::result::Result<MaybeBytes, StorageError> {
        match &self.backend {
            Backend::Fs { store, .. } => {
                self.check_regular(key)?;
                let v = store.get(key)?;
                self.count(v.as_ref().map_or(0, Bytes::len));
                Ok(v)
            }
            Backend::Object(store) => match &self.http {
                Some(h) => block_on(self.http_get(h, key.as_str(), None))?,
                None => block_on(self.os_get(store, key.as_str(), None))?,
            },
            Backend::Refs(refs) => {
                let v = refs.get(key.as_str())?;
                self.count(v.as_ref().map_or(0, Bytes::len));
                Ok(v)
            }
        }
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
        let ranges: Vec<ByteRange> = byte_ranges.collect();
        let out: Option<Vec<Bytes>> = match &self.backend {
            Backend::Refs(refs) => {
                let v = refs.get_ranges(key.as_str(), &ranges)?;
                for b in v.iter().flatten() {
                    self.count(b.len());
                }
                v
            }
            Backend::Fs { store, .. } => {
                self.check_regular(key)?;
                match store.get_partial_many(key, Box::new(ranges.into_iter()))? {
                    None => None,
                    Some(it) => {
                        let v = it.collect::<std::result::Result<Vec<Bytes>, _>>()?;
                        for b in &v {
                            self.count(b.len());
                        }
                        Some(v)
                    }
                }
            }
            Backend::Object(store) => block_on(async {
                let k = key.as_str();
                let mut size = None;
                let mut out = Vec::with_capacity(ranges.len());
                for r in ranges {
                    let range = match r {
                        ByteRange::FromStart(0, None) => None,
                        ByteRange::FromStart(o, None) => Some(Range::From(o)),
                        ByteRange::FromStart(o, Some(l)) => {
                            Some(Range::Bounded(o, o.saturating_add(l)))
                        }
                        ByteRange::Suffix(l) => {
                            // HEAD + bounded: some servers mishandle `bytes=-N`.
                            let s = match size {
                                Some(s) => s,
                                None => {
                                    let head = match &self.http {
                                        Some(h) => self.http_size(h, k).await?,
                                        None => self.os_head(store, k).await?,
                                    };
                                    match head {
                                        Some(s) => {
                                            size = Some(s);
                                            s
                                        }
                                        None => return Ok(None),
                                    }
                                }
                            };
                            Some(Range::Bounded(s.saturating_sub(l), s))
                        }
                    };
                    let got = match &self.http {
                        Some(h) => self.http_get(h, k, range).await?,
                        None => {
                            let range = range.map(|r| match r {
                                Range::Bounded(a, b) => GetRange::Bounded(a..b),
                                Range::From(a) => GetRange::Offset(a),
                            });
                            self.os_get(store, k, range).await?
                        }
                    };
                    match got {
                        Some(b) => out.push(b),
                        None => return Ok(None),
                    }
                }
                Ok::<Option<Vec<Bytes>>, StorageError>(Some(out))
            })??,
        };
        Ok(out.map(|v| {
            Box::new(v.into_iter().map(Ok))
                as Box<dyn Iterator<Item = std::result::Result<Bytes, StorageError>>>
        }))
    }

    fn size_key(&self, key: &StoreKey) -> std::result::Result<Option<u64>, StorageError> {
        match &self.backend {
            Backend::Fs { store, .. } => store.size_key(key),
            Backend::Refs(refs) => refs.size(key.as_str()),
            Backend::Object(store) => match &self.http {
                Some(h) => block_on(self.http_size(h, key.as_str()))?,
                None => block_on(self.os_head(store, key.as_str()))?,
            },
        }
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for Storage {
    fn set(&self, key: &StoreKey, value: Bytes) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        match &self.backend {
            Backend::Fs { store, .. } => store.set(key, value),
            Backend::Refs(_) => Err(StorageError::ReadOnly),
            Backend::Object(store) => block_on(async {
                store
                    .put(&ObjectPath::from(key.as_str()), PutPayload::from(value))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.os_err("PUT", key.as_str(), &e))
            })?,
        }
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        match &self.backend {
            Backend::Fs { store, .. } => store.set_partial_many(key, offset_values),
            Backend::Object(_) => Err(StorageError::Unsupported(
                "partial writes to object stores".into(),
            )),
            Backend::Refs(_) => Err(StorageError::ReadOnly),
        }
    }

    fn erase(&self, key: &StoreKey) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        match &self.backend {
            Backend::Fs { store, .. } => store.erase(key),
            Backend::Refs(_) => Err(StorageError::ReadOnly),
            Backend::Object(store) => block_on(async {
                match store.delete(&ObjectPath::from(key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.os_err("DELETE", key.as_str(), &e)),
                }
            })?,
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        match &self.backend {
            Backend::Fs { store, .. } => store.erase_prefix(prefix),
            Backend::Refs(_) => Err(StorageError::ReadOnly),
            Backend::Object(_) => {
                for k in self.list_recursive(prefix.as_str())? {
                    self.erase(&StoreKey::new(k)?)?;
                }
                Ok(())
            }
        }
    }

    fn supports_set_partial(&self) -> bool {
        matches!(self.backend, Backend::Fs { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_urls_parse_and_print_as_written() {
        for (url, shown) in [
            ("gs://cmip6/CMIP6/CMIP/tas/", "gs://cmip6/CMIP6/CMIP/tas"),
            ("gs://cmip6", "gs://cmip6"),
            ("az://data/a/b.zarr", "az://data/a/b.zarr"),
            ("abfss://data/b.zarr/", "abfss://data/b.zarr"),
            (
                "abfs://data@acct.dfs.core.windows.net/b.zarr",
                "abfs://data@acct.dfs.core.windows.net/b.zarr",
            ),
        ] {
            let u = StoreUrl::parse(url).unwrap();
            assert!(u.is_remote(), "{url}");
            assert_eq!(u.to_string(), shown, "{url}");
            assert_eq!(StoreUrl::parse(&u.to_string()).unwrap(), u, "{url}");
        }
        assert_eq!(
            StoreUrl::parse("gs://b/x/y.zarr").unwrap(),
            StoreUrl::Gcs {
                bucket: "b".into(),
                prefix: "x/y.zarr".into()
            }
        );
        let StoreUrl::Azure {
            container, host, ..
        } = StoreUrl::parse("abfs://fs@acct.dfs.core.windows.net/p").unwrap()
        else {
            panic!("not an Azure URL");
        };
        assert_eq!(
            (container.as_str(), host.as_deref()),
            ("fs", Some("acct.dfs.core.windows.net"))
        );
        for bad in [
            "gs://",
            "gs:///x",
            "az://",
            "abfs://@acct.dfs.core.windows.net/x",
            "abfs://c@/x",
        ] {
            let e = StoreUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        let e = StoreUrl::parse("adl://c/x").unwrap_err().to_string();
        assert!(e.contains("gs://, az://"), "{e}");
    }
}
