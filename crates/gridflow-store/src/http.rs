//! Reads from plain HTTP(S) servers: GET (whole or byte ranges) and HEAD, with connect and
//! read time-outs, retries of transient failures, bodies of unknown length (chunked transfer
//! encoding) and short error messages.
//!
//! `object_store`'s HTTP client refuses responses without `Content-Length` and pastes whole
//! error pages into its messages, so reads go through this client; listings and writes
//! (WebDAV) still use `object_store`.

use crate::storage::StoreOptions;
use std::fmt;
use std::time::Duration;
use zarrs::storage::Bytes;

/// How many characters of an error response's body a message quotes.
const EXCERPT_CHARS: usize = 200;

/// A byte range to request: `start..end` (end exclusive) or `start..` to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range {
    /// `start..end`.
    Bounded(u64, u64),
    /// From `start` to the end of the object.
    From(u64),
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The server answered with an error status (other than 404).
    Status {
        method: &'static str,
        url: String,
        status: u16,
        reason: String,
        excerpt: String,
    },
    /// No connection within the connect time-out.
    ConnectTimeout {
        method: &'static str,
        url: String,
        secs: u64,
    },
    /// Connected, but the server sent nothing for the read time-out.
    ReadTimeout {
        method: &'static str,
        url: String,
        secs: u64,
    },
    /// Anything else (refused connection, reset, TLS, a malformed answer...).
    Other {
        method: &'static str,
        url: String,
        detail: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status {
                method,
                url,
                status,
                reason,
                excerpt,
            } => {
                write!(f, "{method} {url}: HTTP {status} {reason}")?;
                if !excerpt.is_empty() {
                    write!(f, ": {excerpt}")?;
                }
                Ok(())
            }
            HttpError::ConnectTimeout { method, url, secs } => write!(
                f,
                "{method} {url}: no connection within the connect time-out of {secs} s \
                 (raise it with GRIDFLOW_HTTP_CONNECT_TIMEOUT or StoreOptions::connect_timeout_secs)"
            ),
            HttpError::ReadTimeout { method, url, secs } => write!(
                f,
                "{method} {url}: the server sent nothing within the read time-out of {secs} s \
                 (raise it with GRIDFLOW_HTTP_READ_TIMEOUT or StoreOptions::read_timeout_secs)"
            ),
            HttpError::Other {
                method,
                url,
                detail,
            } => write!(f, "{method} {url}: {detail}"),
        }
    }
}

impl HttpError {
    /// Worth another try: 5xx, 429, refused or reset connections. Time-outs are not retried:
    /// a server that does not answer in the read time-out rarely answers the next time, and
    /// retrying multiplies the wait.
    fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => *status >= 500 || *status == 429,
            HttpError::Other { .. } => true,
            HttpError::ConnectTimeout { .. } | HttpError::ReadTimeout { .. } => false,
        }
    }
}

/// One line of at most [`EXCERPT_CHARS`] characters from an error page: markup dropped,
/// whitespace collapsed.
pub(crate) fn excerpt(body: &[u8]) -> String {
    excerpt_of(body, EXCERPT_CHARS)
}

/// [`excerpt`] with a given length.
pub(crate) fn excerpt_of(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                plain.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_control() => plain.push(' '),
            c => plain.push(c),
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() <= max_chars {
        line
    } else {
        let mut cut: String = line.chars().take(max_chars).collect();
        cut.push('…');
        cut
    }
}

/// Percent-encodes a store key for a URL path (keeps `/` and unreserved characters).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reading client for one base URL.
pub(crate) struct HttpClient {
    client: reqwest::Client,
    base: String,
    connect_secs: u64,
    read_secs: u64,
    max_retries: usize,
}

impl HttpClient {
    /// A client for `base` (no trailing `/`) with the time-outs and retries of `o`.
    pub(crate) fn new(base: &str, o: &StoreOptions) -> Result<HttpClient, String> {
        let connect_secs = o.connect_timeout_secs.max(1);
        let read_secs = o.read_timeout_secs.max(1);
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(connect_secs))
            .read_timeout(Duration::from_secs(read_secs))
            .pool_max_idle_per_host(16)
            .https_only(!(o.allow_http || base.starts_with("http://")));
        if o.timeout_secs > 0 {
            b = b.timeout(Duration::from_secs(o.timeout_secs));
        }
        let client = b.build().map_err(|e| chain(&e))?;
        Ok(HttpClient {
            client,
            base: base.to_owned(),
            connect_secs,
            read_secs,
            max_retries: o.max_retries,
        })
    }

    /// The URL of `key`.
    pub(crate) fn url(&self, key: &str) -> String {
        format!("{}/{}", self.base, encode_key(key))
    }

    /// GETs `key` (or a range of it); `Ok(None)` when the server answers 404.
    pub(crate) async fn get(
        &self,
        key: &str,
        range: Option<Range>,
    ) -> Result<Option<Bytes>, HttpError> {
        let url = self.url(key);
        self.retrying(|| self.get_once(&url, range)).await
    }

    /// GETs all of `key` unless it is bigger than `limit` bytes: `Ok(Err(size))` then,
    /// decided from `Content-Length` before the body is read, or after reading at most
    /// `limit + 1` bytes of a chunked body. `Ok(Ok(None))` when the server answers 404.
    pub(crate) async fn get_capped(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Result<Option<Bytes>, u64>, HttpError> {
        let url = self.url(key);
        self.retrying(|| self.get_capped_once(&url, limit)).await
    }

    async fn get_capped_once(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<Result<Option<Bytes>, u64>, HttpError> {
        let Some(resp) = self.send("GET", url, self.client.get(url)).await? else {
            return Ok(Ok(None));
        };
        if let Some(n) = resp.content_length().filter(|&n| n > limit) {
            return Ok(Err(n));
        }
        Ok(self
            .body(url, resp, limit)
            .await?
            .map(|b| Some(Bytes::from(b))))
    }

    /// The size of `key` from a HEAD request; a GET when the answer has no
    /// `Content-Length` (chunked servers). `Ok(None)` on 404.
    pub(crate) async fn size(&self, key: &str) -> Result<Option<u64>, HttpError> {
        let url = self.url(key);
        let head = self.retrying(|| self.head_once(&url)).await?;
        match head {
            Head::Missing => Ok(None),
            Head::Size(s) => Ok(Some(s)),
            Head::Unknown => Ok(self.get(key, None).await?.map(|b| b.len() as u64)),
        }
    }

    async fn retrying<T, F, Fut>(&self, mut once: F) -> Result<T, HttpError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let mut attempt = 0usize;
        loop {
            match once().await {
                Err(e) if e.is_transient() && attempt < self.max_retries => {
                    // 100 ms, 200 ms, 400 ms... at most 2 s between tries
                    let wait = 100u64.saturating_mul(1u64 << attempt.min(5)).min(2000);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn transport(&self, method: &'static str, url: &str, e: &reqwest::Error) -> HttpError {
        let url = url.to_owned();
        if e.is_timeout() {
            if e.is_connect() {
                HttpError::ConnectTimeout {
                    method,
                    url,
                    secs: self.connect_secs,
                }
            } else {
                HttpError::ReadTimeout {
                    method,
                    url,
                    secs: self.read_secs,
                }
            }
        } else {
            HttpError::Other {
                method,
                url,
                detail: chain(e),
            }
        }
    }

    async fn status_error(method: &'static str, url: &str, resp: reqwest::Response) -> HttpError {
        let status = resp.status();
        // the start of the body is enough for the excerpt; never read a huge error page
        let mut body = Vec::new();
        let mut resp = resp;
        while body.len() < 4 * EXCERPT_CHARS {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) | Err(_) => break,
            }
        }
        HttpError::Status {
            method,
            url: url.to_owned(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_owned(),
            excerpt: excerpt(&body),
        }
    }

    /// Sends `req`; `Ok(None)` on 404, an error naming the status on any other failure.
    async fn send(
        &self,
        method: &'static str,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Option<reqwest::Response>, HttpError> {
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport(method, url, &e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Self::status_error(method, url, resp).await);
        }
        Ok(Some(resp))
    }

    /// Reads a body piece by piece (its length may be unknown: chunked encoding), stopping
    /// with `Err(bytes read)` once more than `limit` bytes have come.
    async fn body(
        &self,
        url: &str,
        mut resp: reqwest::Response,
        limit: u64,
    ) -> Result<Result<Vec<u8>, u64>, HttpError> {
        let mut body = Vec::new();
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| self.transport("GET", url, &e))?
        {
            body.extend_from_slice(&c);
            if body.len() as u64 > limit {
                return Ok(Err(body.len() as u64));
            }
        }
        Ok(Ok(body))
    }

    async fn get_once(&self, url: &str, range: Option<Range>) -> Result<Option<Bytes>, HttpError> {
        let mut req = self.client.get(url);
        let wanted = match range {
            None | Some(Range::From(0)) => None,
            Some(Range::Bounded(s, e)) if e <= s => return Ok(Some(Bytes::new())),
            Some(Range::Bounded(s, e)) => {
                req = req.header(reqwest::header::RANGE, format!("bytes={s}-{}", e - 1));
                Some((s, Some(e)))
            }
            Some(Range::From(s)) => {
                req = req.header(reqwest::header::RANGE, format!("bytes={s}-"));
                Some((s, None))
            }
        };
        let Some(resp) = self.send("GET", url, req).await? else {
            return Ok(None);
        };
        let partial = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
        let body = self
            .body(url, resp, u64::MAX)
            .await?
            .map_err(|n| HttpError::Other {
                method: "GET",
                url: url.to_owned(),
                detail: format!("a body of more than {n} bytes"),
            })?;
        match wanted {
            Some((start, end)) if !partial => {
                // the server ignored the Range header and sent the whole object
                let len = body.len() as u64;
                let end = end.unwrap_or(len);
                if start > len || end > len {
                    return Err(HttpError::Other {
                        method: "GET",
                        url: url.to_owned(),
                        detail: format!(
                            "asked for bytes {start}..{end} of an object of {len} bytes"
                        ),
                    });
                }
                let (s, e) = (
                    usize::try_from(start).unwrap_or(usize::MAX),
                    usize::try_from(end).unwrap_or(usize::MAX),
                );
                Ok(Some(Bytes::from(body).slice(s..e)))
            }
            Some((start, Some(end))) => {
                let want = end - start;
                if body.len() as u64 != want {
                    return Err(HttpError::Other {
                        method: "GET",
                        url: url.to_owned(),
                        detail: format!(
                            "asked for bytes {start}..{end} ({want} bytes), the server sent {}",
                            body.len()
                        ),
                    });
                }
                Ok(Some(Bytes::from(body)))
            }
            _ => Ok(Some(Bytes::from(body))),
        }
    }

    async fn head_once(&self, url: &str) -> Result<Head, HttpError> {
        let Some(resp) = self.send("HEAD", url, self.client.head(url)).await? else {
            return Ok(Head::Missing);
        };
        let len = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(len.map_or(Head::Unknown, Head::Size))
    }
}

enum Head {
    Missing,
    Size(u64),
    Unknown,
}

/// An error and its sources on one line (reqwest's Display omits the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line_without_markup() {
        let page = format!(
            "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>{}</body></html>",
            "x".repeat(5000)
        );
        let e = excerpt(page.as_bytes());
        assert!(e.starts_with("502 Bad Gateway x"), "{e}");
        assert!(!e.contains('\n') && !e.contains('<'), "{e}");
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b"  not\r\nfound "), "not found");
    }

    #[test]
    fn keys_are_percent_encoded_except_slashes() {
        assert_eq!(encode_key("tas/1.0.0"), "tas/1.0.0");
        assert_eq!(encode_key("a b/c?d"), "a%20b/c%3Fd");
    }
}
