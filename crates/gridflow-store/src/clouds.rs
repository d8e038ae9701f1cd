//! The object-store clouds: S3, Google Cloud Storage and Azure Blob Storage. Builds their
//! `object_store` backends from [`StoreOptions`] (set in code, or as `key=value` storage
//! options on the command line) and the usual environment variables and credential files.
//!
//! Credentials: a `gs://` or `az://` store is read with the credentials found in its
//! options, in the environment (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`...) or in gcloud's application
//! default credentials file; when there are none its requests go unsigned, as public buckets
//! (Pangeo's CMIP6 ones) want. `anon=true` always goes unsigned; `anon=false` never does
//! (the machine's own identity is asked for then: instance metadata, managed identity).
//! S3 keeps `object_store`'s chain (environment, then instance metadata) unless `anon=true`.

use crate::storage::{StoreOptions, StoreUrl};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ClientOptions, RetryConfig};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Backend-specific storage options by name (credentials files, account names, keys), as
/// [`StoreOptions::set`] stores them. Secret values (keys, tokens, SAS) are neither
/// serialized (read-task specs never carry them; each process takes its own from its
/// environment) nor printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct BackendOptions(BTreeMap<String, String>);

impl BackendOptions {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// True if `key` is set to a non-empty value.
    fn has(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_empty())
    }
}

impl fmt::Debug for BackendOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

impl Serialize for BackendOptions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().filter(|(k, _)| !is_secret(k)))
    }
}

/// Whether a storage option holds a secret.
fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

const SECRET_KEYS: [&str; 7] = [
    "secret_access_key",
    "session_token",
    "service_account_key",
    "bearer_token",
    "account_key",
    "sas_token",
    "client_secret",
];

/// Every storage option [`StoreOptions::set`] takes: (name, which stores, what it sets).
pub const STORAGE_OPTIONS: &[(&str, &str, &str)] = &[
    (
        "anon",
        "s3 gs az",
        "true: unsigned requests (public buckets); false: never unsigned",
    ),
    (
        "endpoint",
        "s3 gs az",
        "server URL (S3 endpoint, GCS base URL, Azure account URL); http:// allows plain HTTP",
    ),
    ("region", "s3", "the bucket's region"),
    (
        "profile",
        "s3",
        "a profile of ~/.aws/credentials and ~/.aws/config",
    ),
    ("access_key_id", "s3", "access key id"),
    ("secret_access_key", "s3", "secret access key"),
    ("session_token", "s3", "session token"),
    (
        "virtual_hosted_style",
        "s3",
        "true: bucket.host requests instead of host/bucket",
    ),
    (
        "service_account",
        "gs",
        "path of a service account JSON file",
    ),
    ("service_account_key", "gs", "a service account JSON key"),
    (
        "application_credentials",
        "gs",
        "path of an application default credentials file",
    ),
    ("bearer_token", "gs az", "an OAuth bearer token"),
    ("account_name", "az", "the storage account"),
    ("account_key", "az", "the storage account's key"),
    ("sas_token", "az", "a shared access signature"),
    ("client_id", "az", "service principal: client id"),
    ("client_secret", "az", "service principal: client secret"),
    ("tenant_id", "az", "service principal: tenant id"),
    ("use_azure_cli", "az", "true: the `az login` credentials"),
    ("allow_http", "all", "true: allow plain http:// endpoints"),
    (
        "connect_timeout",
        "all",
        "connection time-out, seconds (default 10)",
    ),
    (
        "read_timeout",
        "all",
        "longest wait for the server's next bytes, seconds (default 30)",
    ),
    (
        "timeout",
        "all",
        "whole-request time-out, seconds (default 0: none)",
    ),
    (
        "max_retries",
        "all",
        "retries of transient failures (default 3)",
    ),
];

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}={value:?}: expected true or false")),
    }
}

fn parse_count(key: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{key}={value:?}: expected a whole number"))
}

impl StoreOptions {
    /// Sets one storage option by name (see [`STORAGE_OPTIONS`]; `endpoint_url` is taken for
    /// `endpoint`, `anonymous` for `anon`). An unknown name or a bad value is an error
    /// naming it and listing the known names.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let key = key.trim();
        match key {
            "anon" | "anonymous" => {
                let anon = parse_bool(key, value)?;
                self.anonymous = anon;
                self.require_credentials = !anon;
            }
            "endpoint" | "endpoint_url" => {
                let v = value.trim().trim_end_matches('/');
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(format!(
                        "{key}={value:?}: expected an http:// or https:// URL"
                    ));
                }
                self.endpoint = Some(v.to_owned());
            }
            "region" => self.region = Some(value.trim().to_owned()),
            "allow_http" => self.allow_http = parse_bool(key, value)?,
            "virtual_hosted_style" => self.virtual_hosted_style = parse_bool(key, value)?,
            "connect_timeout" | "read_timeout" => {
                let n = parse_count(key, value)?;
                if n == 0 {
                    return Err(format!("{key}={value:?}: expected at least 1 second"));
                }
                if key == "connect_timeout" {
                    self.connect_timeout_secs = n;
                } else {
                    self.read_timeout_secs = n;
                }
            }
            "timeout" => self.timeout_secs = parse_count(key, value)?,
            "max_retries" => {
                self.max_retries = usize::try_from(parse_count(key, value)?)
                    .map_err(|_| format!("{key}={value:?} is too large"))?;
            }
            "use_azure_cli" => {
                parse_bool(key, value)?;
                self.backend
                    .0
                    .insert(key.to_owned(), value.trim().to_owned());
            }
            _ if STORAGE_OPTIONS.iter().any(|(k, _, _)| *k == key) => {
                self.backend.0.insert(key.to_owned(), value.to_owned());
            }
            _ => {
                let known: Vec<&str> = STORAGE_OPTIONS.iter().map(|(k, _, _)| *k).collect();
                return Err(format!(
                    "unknown storage option {key:?} (known: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Sets every `key=value` of `pairs` in turn ([`StoreOptions::set`]).
    pub fn set_pairs<S: AsRef<str>>(&mut self, pairs: &[S]) -> Result<(), String> {
        for pair in pairs {
            let pair = pair.as_ref();
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("storage option {pair:?} is not KEY=VALUE"))?;
            self.set(k, v)?;
        }
        Ok(())
    }

    /// The endpoint, or `None` when unset.
    fn endpoint_for(&self, env: &[&str]) -> Option<String> {
        self.endpoint.clone().or_else(|| {
            env.iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        })
    }
}

/// A non-empty environment variable.
fn env_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// Whether Google credentials are configured: options, environment, or gcloud's
/// application default credentials file.
fn gcs_credentials(o: &StoreOptions) -> bool {
    let b = &o.backend;
    if [
        "service_account",
        "service_account_key",
        "application_credentials",
        "bearer_token",
    ]
    .iter()
    .any(|k| b.has(k))
    {
        return true;
    }
    if [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_PATH",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "SERVICE_ACCOUNT",
        "GOOGLE_BEARER_TOKEN",
    ]
    .iter()
    .any(|v| env_set(v))
    {
        return true;
    }
    let config = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gcloud")));
    config.is_some_and(|c| c.join("application_default_credentials.json").is_file())
}

/// Whether Azure credentials are configured (options or environment).
fn azure_credentials(o: &StoreOptions) -> bool {
    let b = &o.backend;
    if ["account_key", "sas_token", "bearer_token", "client_secret"]
        .iter()
        .any(|k| b.has(k))
        || b.get("use_azure_cli")
            .is_some_and(|v| parse_bool("", v) == Ok(true))
    {
        return true;
    }
    [
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_STORAGE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
    ]
    .iter()
    .any(|v| env_set(v))
        || std::env::var("AZURE_USE_AZURE_CLI").is_ok_and(|v| parse_bool("", &v) == Ok(true))
}

/// Whether requests go unsigned: asked for, or (for `gs://` and `az://`) no credentials.
fn unsigned(o: &StoreOptions, have_credentials: bool) -> bool {
    o.anonymous || (!o.require_credentials && !have_credentials)
}

/// Whether requests to `url` go unsigned with options `o` (for the hint of a refusal).
pub(crate) fn is_unsigned(url: &StoreUrl, o: &StoreOptions) -> bool {
    match url {
        StoreUrl::S3 { .. } => o.anonymous,
        StoreUrl::Gcs { .. } => unsigned(o, gcs_credentials(o)),
        StoreUrl::Azure { .. } => unsigned(o, azure_credentials(o)),
        StoreUrl::Local(_) | StoreUrl::Http(_) => false,
    }
}

/// The S3 backend: `object_store`'s environment (`AWS_*`), then a profile's keys
/// (`profile=` or `AWS_PROFILE`) and the options.
pub(crate) fn s3(
    bucket: &str,
    o: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, String> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(o.virtual_hosted_style)
        .with_retry(retry);
    // an asked-for profile wins over keys in the environment; AWS_PROFILE does not (as
    // with the AWS tools)
    let profile = match o.backend.get("profile") {
        Some(p) => Some(p.to_owned()),
        None if env_set("AWS_ACCESS_KEY_ID") => None,
        None => std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()),
    };
    let mut region = o.region.clone();
    let mut endpoint = o.endpoint.clone();
    if let Some(name) = &profile {
        let p = crate::aws_profile::load(name)?;
        if let Some(k) = p.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = p.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = p.session_token {
            b = b.with_token(t);
        }
        region = region.or(p.region);
        endpoint = endpoint.or(p.endpoint_url);
    }
    if let Some(k) = o.backend.get("access_key_id") {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = o.backend.get("secret_access_key") {
        b = b.with_secret_access_key(s);
    }
    if let Some(t) = o.backend.get("session_token") {
        b = b.with_token(t);
    }
    let mut allow_http = o.allow_http;
    if let Some(e) = endpoint {
        allow_http |= e.starts_with("http://");
        b = b.with_endpoint(e);
    }
    if let Some(r) = region {
        b = b.with_region(r);
    }
    if o.anonymous {
        b = b.with_skip_signature(true);
    }
    let b = b.with_client_options(client.with_allow_http(allow_http));
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

/// The Google Cloud Storage backend (`gs://bucket`).
pub(crate) fn gcs(
    bucket: &str,
    o: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, String> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    let mut allow_http = o.allow_http;
    if let Some(e) = o.endpoint_for(&["GOOGLE_BASE_URL"]) {
        allow_http |= e.starts_with("http://");
        b = b.with_base_url(&e);
    }
    let opt = |k: &str| o.backend.get(k).map(str::to_owned);
    if let Some(p) = opt("service_account") {
        b = b.with_service_account_path(p);
    }
    if let Some(k) = opt("service_account_key") {
        b = b.with_service_account_key(k);
    }
    if let Some(p) = opt("application_credentials") {
        b = b.with_application_credentials(p);
    }
    if let Some(t) = opt("bearer_token") {
        b = b.with_bearer_token(t);
    }
    let b = b
        .with_skip_signature(unsigned(o, gcs_credentials(o)))
        .with_client_options(client.with_allow_http(allow_http));
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

/// The Azure Blob Storage backend: `container`, in `account` when the URL names one.
pub(crate) fn azure(
    container: &str,
    account: Option<&str>,
    o: &StoreOptions,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, String> {
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry);
    // the Azure CLI's names for the account and its key
    if !env_set("AZURE_STORAGE_ACCOUNT_NAME")
        && let Ok(a) = std::env::var("AZURE_STORAGE_ACCOUNT")
    {
        b = b.with_account(a);
    }
    if !env_set("AZURE_STORAGE_ACCOUNT_KEY")
        && let Ok(k) = std::env::var("AZURE_STORAGE_KEY")
    {
        b = b.with_access_key(k);
    }
    let opt = |k: &str| o.backend.get(k).map(str::to_owned);
    if let Some(a) = account.map(str::to_owned).or_else(|| opt("account_name")) {
        b = b.with_account(a);
    }
    if let Some(k) = opt("account_key") {
        b = b.with_access_key(k);
    }
    if let Some(s) = opt("sas_token") {
        b = b.with_config(object_store::azure::AzureConfigKey::SasKey, s);
    }
    if let Some(t) = opt("bearer_token") {
        b = b.with_bearer_token_authorization(t);
    }
    if let Some(c) = opt("client_id") {
        b = b.with_client_id(c);
    }
    if let Some(c) = opt("client_secret") {
        b = b.with_client_secret(c);
    }
    if let Some(t) = opt("tenant_id") {
        b = b.with_tenant_id(t);
    }
    if let Some(v) = opt("use_azure_cli") {
        b = b.with_use_azure_cli(parse_bool("use_azure_cli", &v)?);
    }
    let mut allow_http = o.allow_http;
    if let Some(e) = o.endpoint_for(&["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"]) {
        allow_http |= e.starts_with("http://");
        b = b.with_endpoint(e);
    }
    let b = b
        .with_skip_signature(unsigned(o, azure_credentials(o)))
        .with_client_options(client.with_allow_http(allow_http));
    b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>).map_err(|e| {
        let text = e.to_string();
        if text.to_ascii_lowercase().contains("account") {
            format!(
                "{text} (name the storage account: abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/..., AZURE_STORAGE_ACCOUNT_NAME, or the storage option account_name=ACCOUNT)"
            )
        } else {
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_unknown_names() {
        let mut o = StoreOptions::read_only();
        o.set_pairs(&[
            "anon=true",
            "endpoint=http://127.0.0.1:9/",
            "region=eu-west-1",
            "account_name=acct",
            "account_key=c2VjcmV0",
            "read_timeout=5",
        ])
        .unwrap();
        assert!(o.anonymous && !o.require_credentials);
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
        assert_eq!(o.read_timeout_secs, 5);
        assert_eq!(o.backend.get("account_name"), Some("acct"));
        // secrets stay out of specs and Debug output
        let json = serde_json::to_string(&o).unwrap();
        assert!(
            json.contains("acct") && !json.contains("c2VjcmV0"),
            "{json}"
        );
        assert!(!format!("{o:?}").contains("c2VjcmV0"));
        o.set("anon", "false").unwrap();
        assert!(!o.anonymous && o.require_credentials);
        let e = o.set("anno", "true").unwrap_err();
        assert!(
            e.contains("\"anno\"") && e.contains("anon, endpoint"),
            "{e}"
        );
        let e = o.set("anon", "maybe").unwrap_err();
        assert!(e.contains("anon=\"maybe\""), "{e}");
        let e = o.set_pairs(&["region"]).unwrap_err();
        assert!(e.contains("not KEY=VALUE"), "{e}");
        let e = o.set("endpoint", "127.0.0.1:9").unwrap_err();
        assert!(e.contains("http://"), "{e}");
        let e = o.set("read_timeout", "0").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
    }
}
