//! A small HTTP/1.1 client over hyper (plain `http://`): the gateway's clients and the
//! JupyterHub check use it.

use crate::{GatewayError, Result};
use http_body_util::{BodyExt, Full};

/// Splits `http://host:port/path` into (`host:port`, `/path`).
pub fn split_url(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| GatewayError::Http {
            what: url.to_owned(),
            detail: "only http:// URLs are supported".into(),
        })?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// Sends one request (a new connection each time) and returns the status, the
/// content type and the body.
pub async fn request_full(
    method: &str,
    url: &str,
    body: Vec<u8>,
) -> Result<(u16, Option<String>, Vec<u8>)> {
    let (hostport, path) = split_url(url)?;
    let mut c = Connection::new(hostport);
    c.request_typed(method, path, &[], body).await
}

/// Sends one request (a new connection each time) and returns the status and body.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>)> {
    let (hostport, path) = split_url(url)?;
    let err = |detail: String| GatewayError::Http {
        what: format!("{method} {url}"),
        detail,
    };
    let tcp = tokio::net::TcpStream::connect(hostport)
        .await
        .map_err(|e| err(format!("connecting: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
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
    sender: Option<hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>>,
}

impl Connection {
    /// A connection to `host:port`, opened on the first request.
    pub fn new(hostport: &str) -> Connection {
        Connection {
            hostport: hostport.to_owned(),
            sender: None,
        }
    }

    async fn open(&mut self) -> Result<()> {
        let err = |detail: String| GatewayError::Http {
            what: format!("connecting to http://{}", self.hostport),
            detail,
        };
        let tcp = tokio::net::TcpStream::connect(&self.hostport)
            .await
            .map_err(|e| err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
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
        let url = format!("http://{}{path}", self.hostport);
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
        let mut req = hyper::Request::builder().method(method).uri(path).header(
            "host",
            url.trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or(""),
        );
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
