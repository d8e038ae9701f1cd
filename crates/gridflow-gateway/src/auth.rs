//! Who is calling: per-user API tokens (only their SHA-256 is kept, compared in constant
//! time) and, as a second authenticator, JupyterHub's token check.

pub use crate::config::parse_hex32;
use crate::config::{Config, JupyterHubConfig};
use crate::{GatewayError, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user's name (owner of the clusters they create).
    pub name: String,
    /// May list and stop every user's clusters.
    pub admin: bool,
}

/// SHA-256 of a token.
pub fn sha256(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality that takes the same time whatever the bytes (no early exit on a mismatch).
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a token the hub refused is refused without asking again.
const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// Checks bearer tokens.
pub struct Authenticator {
    users: Vec<(String, [u8; 32], bool)>,
    hub: Option<HubAuth>,
}

struct HubAuth {
    config: JupyterHubConfig,
    /// `…/hub/api/user`, from the configured URL.
    user_url: String,
    /// Answers by the token's hash (tokens themselves are not kept), with their time.
    cache: Mutex<HashMap<[u8; 32], (User, Instant)>>,
    /// Refusals by the token's hash, with the hub's reason and their time: a client
    /// retrying a bad token does not send the hub a request each time.
    refused: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Authenticator {
    /// The authenticator of a configuration.
    pub fn new(config: &Config) -> Result<Authenticator> {
        let mut users = Vec::with_capacity(config.users.len());
        for u in &config.users {
            let h = parse_hex32(&u.token_sha256).ok_or_else(|| {
                GatewayError::Invalid(format!(
                    "user {}: token_sha256 is not 64 hex digits",
                    u.name
                ))
            })?;
            users.push((u.name.clone(), h, u.admin));
        }
        Ok(Authenticator {
            users,
            hub: match &config.jupyterhub {
                Some(hub) => Some(HubAuth {
                    user_url: hub.user_url()?,
                    config: hub.clone(),
                    cache: Mutex::default(),
                    refused: Mutex::default(),
                }),
                None => None,
            },
        })
    }

    /// The user a token belongs to: the configured users first (every hash is compared,
    /// in constant time), then JupyterHub.
    pub async fn authenticate(&self, token: &str) -> Result<User> {
        if token.is_empty() {
            return Err(GatewayError::Unauthenticated(
                "no API token (send `Authorization: token TOKEN`)".into(),
            ));
        }
        let h = sha256(token.as_bytes());
        let mut found = None;
        for (name, hash, admin) in &self.users {
            if constant_time_eq(&h, hash) && found.is_none() {
                found = Some(User {
                    name: name.clone(),
                    admin: *admin,
                });
            }
        }
        if let Some(u) = found {
            return Ok(u);
        }
        match &self.hub {
            Some(hub) => hub.check(token, h).await,
            None => Err(GatewayError::Unauthenticated("unknown API token".into())),
        }
    }
}

impl HubAuth {
    /// The hub's answer for `token` (whose hash is `h`): reused for `cache_seconds`, else
    /// asked with a time limit. A token the hub refuses is 401; a hub that cannot be
    /// reached, does not answer in time or fails is 503 naming its URL (the token may be
    /// good).
    async fn check(&self, token: &str, h: [u8; 32]) -> Result<User> {
        let ttl = Duration::from_secs_f64(self.config.cache_seconds);
        if let Some((u, at)) = crate::lock(&self.cache).get(&h)
            && at.elapsed() < ttl
        {
            return Ok(u.clone());
        }
        // Refusals are kept shorter: at most REFUSAL_TTL, never past cache_seconds.
        let refused_ttl = ttl.min(REFUSAL_TTL);
        if let Some((why, at)) = crate::lock(&self.refused).get(&h)
            && at.elapsed() < refused_ttl
        {
            return Err(GatewayError::Unauthenticated(why.clone()));
        }
        let url = &self.user_url;
        let limit = Duration::from_secs_f64(self.config.timeout_seconds);
        let asked = tokio::time::timeout(
            limit,
            crate::http::request(
                "GET",
                url,
                &[("Authorization", &format!("token {token}"))],
                Vec::new(),
            ),
        )
        .await;
        let (status, body) = match asked {
            Ok(Ok(answer)) => answer,
            Ok(Err(GatewayError::Http { detail, .. })) => {
                return Err(GatewayError::AuthUnavailable(format!(
                    "JupyterHub at {url} is unreachable: {detail}"
                )));
            }
            Ok(Err(e)) => {
                return Err(GatewayError::AuthUnavailable(format!(
                    "JupyterHub at {url}: {e}"
                )));
            }
            Err(_) => {
                return Err(GatewayError::AuthUnavailable(format!(
                    "JupyterHub at {url} did not answer within {limit:?}"
                )));
            }
        };
        // JupyterHub answers 403 for a token it does not know, or that has expired or
        // been revoked.
        if status == 401 || status == 403 {
            let why = format!(
                "unknown API token: not a gateway user's, and JupyterHub at {url} refused it \
                 (HTTP {status}: {}; expired and revoked hub tokens are refused too)",
                hub_message(&body)
            );
            let mut refused = crate::lock(&self.refused);
            // Bounded: a flood of random tokens cannot grow it without end.
            if refused.len() >= 10_000 {
                refused.retain(|_, (_, at)| at.elapsed() < refused_ttl);
                if refused.len() >= 10_000 {
                    refused.clear();
                }
            }
            refused.insert(h, (why.clone(), Instant::now()));
            return Err(GatewayError::Unauthenticated(why));
        }
        if status != 200 {
            return Err(GatewayError::AuthUnavailable(format!(
                "JupyterHub at {url} answered HTTP {status}: {}",
                hub_message(&body)
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::AuthUnavailable(format!("JupyterHub at {url}: undecodable answer: {e}"))
        })?;
        let name = v
            .get("name")
            .and_then(serde_json::Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                GatewayError::AuthUnavailable(format!("JupyterHub at {url}: no user name"))
            })?
            .to_owned();
        // The hub also answers for its services' tokens (`"kind": "service"`); service
        // names are not user names (a service "alice" is not the user alice), so they are
        // refused. Hubs older than 1.0 send no `kind`: their tokens are users'.
        let kind = v.get("kind").and_then(serde_json::Value::as_str);
        if let Some(kind) = kind
            && kind != "user"
        {
            return Err(GatewayError::Unauthenticated(format!(
                "the token is JupyterHub {kind} {name:?}'s, not a user's: only hub users \
                 may use the gateway"
            )));
        }
        let admin = v.get("admin").and_then(serde_json::Value::as_bool) == Some(true)
            || self.config.admin_users.contains(&name);
        let user = User { name, admin };
        let mut cache = crate::lock(&self.cache);
        // Old answers go when the cache grows, so tokens of users gone do not pile up.
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        cache.insert(h, (user.clone(), Instant::now()));
        Ok(user)
    }
}

/// The `message` of JupyterHub's JSON error answer, else the start of the body.
fn hub_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// A new random token (32 bytes, hex).
pub fn generate_token() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| GatewayError::Invalid("the system's random generator failed".into()))?;
    Ok(hex(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
    use super::*;

    #[test]
    fn hex_round_trip_and_hash() {
        let h = sha256(b"abc");
        assert_eq!(parse_hex32(&hex(&h)), Some(h));
        assert!(parse_hex32("zz").is_none());
        assert!(constant_time_eq(&h, &h));
        assert!(!constant_time_eq(&h, &sha256(b"abd")));
    }

    fn hub(url: &str) -> JupyterHubConfig {
        JupyterHubConfig {
            url: url.into(),
            cache_seconds: 60.0,
            admin_users: Vec::new(),
            timeout_seconds: 10.0,
        }
    }

    #[test]
    fn hub_urls() {
        for (given, want) in [
            ("http://h:8081", "http://h:8081/hub/api/user"),
            ("http://h:8081/", "http://h:8081/hub/api/user"),
            ("http://h:8081/hub/api", "http://h:8081/hub/api/user"),
            ("http://h:8081/hub/api/", "http://h:8081/hub/api/user"),
            ("http://h:8081/jh", "http://h:8081/jh/hub/api/user"),
            (
                "https://hub.example/hub/api",
                "https://hub.example/hub/api/user",
            ),
        ] {
            assert_eq!(hub(given).user_url().unwrap(), want, "{given}");
        }
        for bad in ["ftp://h:8081", "h:8081", "http://", "https:///hub/api"] {
            let e = hub(bad).user_url().unwrap_err().to_string();
            assert!(e.contains("jupyterhub: url"), "{bad}: {e}");
        }
        let mut h = hub("http://h:8081");
        h.timeout_seconds = 0.0;
        assert!(
            h.user_url()
                .unwrap_err()
                .to_string()
                .contains("timeout_seconds")
        );
        h.timeout_seconds = 1.0;
        h.cache_seconds = f64::NAN;
        assert!(
            h.user_url()
                .unwrap_err()
                .to_string()
                .contains("cache_seconds")
        );
    }
}
