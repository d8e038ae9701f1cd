//! A small HTTP/1.1 client over hyper (`http://`, and `https://` with rustls): the
//! gateway's clients and the JupyterHub check use it.

use crate::{GatewayError, Result};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;

/// Splits `http://host:port/path` or `https://...` into (TLS?, `host:port`, `/path`).
pub fn split_url(url: &str) -> Result<(bool, &str, &str)> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        (None, None) => {
            return Err(GatewayError::Http {
                what: url.to_owned(),
                detail: "only http:// and https:// URLs are supported".into(),
            });
        }
    };
    Ok(match rest.find('/') {
        Some(i) => (tls, &rest[..i], &rest[i..]),
        None => (tls, rest, "/"),
    })
}

/// A byte stream to an HTTP server: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// Opens `host:port`, with TLS (its certificate checked for the host) when `tls` is
/// given.
async fn open_stream(
    hostport: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::result::Result<Box<dyn Io>, String> {
    let tcp = tokio::net::TcpStream::connect(hostport)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("bad host name {host:?}: {e}"))?;
    let s = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(Box::new(s))
}

/// The TLS configuration for `https://` URLs: the CA file in `GRIDFLOW_GATEWAY_CA`, or
/// the system's roots.
pub fn default_tls() -> Result<Arc<rustls::ClientConfig>> {
    let ca = std::env::var_os(gridflow_distributed::auth::GATEWAY_CA_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    Ok(gridflow_distributed::auth::gateway_client_config(
        ca.as_deref(),
    )?)
}

/// Sends one request (a new connection each time) and returns the status, the
/// content type and the body.
pub async fn request_full(
    method: &str,
    url: &str,
    body: Vec<u8>,
) -> Result<(u16, Option<String>, Vec<u8>)> {
    let (tls, hostport, path) = split_url(url)?;
    let mut c = Connection::new(hostport);
    if tls {
        c = c.with_tls(default_tls()?);
    }
    c.request_typed(method, path, &[], body).await
}

/// Sends one request (a new connection each time) and returns the status and body.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>)> {
    let (tls, hostport, path) = split_url(url)?;
    let err = |detail: String| GatewayError::Http {
        what: format!("{method} {url}"),
        detail,
    };
    let config = if tls { Some(default_tls()?) } else { None };
    let stream = open_stream(hostport, config.as_ref())
        .await
        .map_err(|e| err(format!("connecting: {e}")))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| err(e.to_string()))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", hostport);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| err(e.to_string()))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| err(e.to_string()))?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}

/// A kept-alive HTTP/1.1 connection to one server, opened again when the server closed it.
pub struct Connection {
    hostport: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>>,
}

impl Connection {
    /// A connection to `host:port`, opened on the first request.
    pub fn new(hostport: &str) -> Connection {
        Connection {
            hostport: hostport.to_owned(),
            tls: None,
            sender: None,
        }
    }

    /// The same over TLS with this configuration (`https://`).
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Connection {
        self.tls = Some(config);
        self
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    async fn open(&mut self) -> Result<()> {
        let err = |detail: String| GatewayError::Http {
            what: format!("connecting to {}://{}", self.scheme(), self.hostport),
            detail,
        };
        let stream = open_stream(&self.hostport, self.tls.as_ref())
            .await
            .map_err(err)?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| err(e.to_string()))?;
        tokio::spawn(conn);
        self.sender = Some(send);
        Ok(())
    }

    /// Sends one request on the kept connection (reopened first if the server closed it;
    /// a request is never sent twice) and returns the status and body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>)> {
        let (status, _, body) = self.request_typed(method, path, headers, body).await?;
        Ok((status, body))
    }

    /// [`Connection::request`], also returning the answer's content type.
    pub async fn request_typed(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Option<String>, Vec<u8>)> {
        let url = format!("{}://{}{path}", self.scheme(), self.hostport);
        let err = |detail: String| GatewayError::Http {
            what: format!("{method} {url}"),
            detail,
        };
        let usable = match &mut self.sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.open().await?;
        }
        let Some(sender) = &mut self.sender else {
            return Err(err("no connection".into()));
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.hostport.as_str());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| err(e.to_string()))?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(err(e.to_string()));
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| err(e.to_string()))?
            .to_bytes()
            .to_vec();
        Ok((status, content_type, body))
    }
}
