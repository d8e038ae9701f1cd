//! Who is calling: per-user API tokens (only their SHA-256 is kept, compared in constant
//! time) and, as a second authenticator, JupyterHub's token check.

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

/// 64 hex digits as 32 bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let txt = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}

/// Equality that takes the same time whatever the bytes (no early exit on a mismatch).
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks bearer tokens.
pub struct Authenticator {
    users: Vec<(String, [u8; 32], bool)>,
    hub: Option<HubAuth>,
}

struct HubAuth {
    config: JupyterHubConfig,
    /// Answers by the token's hash (tokens themselves are not kept), with their time.
    cache: Mutex<HashMap<[u8; 32], (User, Instant)>>,
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
            hub: config.jupyterhub.clone().map(|config| HubAuth {
                config,
                cache: Mutex::default(),
            }),
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
    async fn check(&self, token: &str, h: [u8; 32]) -> Result<User> {
        let ttl = Duration::from_secs_f64(self.config.cache_seconds.max(0.0));
        if let Some((u, at)) = crate::lock(&self.cache).get(&h)
            && at.elapsed() < ttl
        {
            return Ok(u.clone());
        }
        let url = format!("{}/hub/api/user", self.config.url.trim_end_matches('/'));
        let (status, body) = crate::http::request(
            "GET",
            &url,
            &[("Authorization", &format!("token {token}"))],
            Vec::new(),
        )
        .await
        .map_err(|e| GatewayError::Unauthenticated(format!("JupyterHub at {url}: {e}")))?;
        if status == 401 || status == 403 {
            return Err(GatewayError::Unauthenticated(
                "unknown API token (neither a gateway user's nor accepted by JupyterHub)".into(),
            ));
        }
        if status != 200 {
            return Err(GatewayError::Unauthenticated(format!(
                "JupyterHub at {url} answered HTTP {status}"
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::Unauthenticated(format!("JupyterHub at {url}: undecodable answer: {e}"))
        })?;
        let name = v
            .get("name")
            .and_then(serde_json::Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                GatewayError::Unauthenticated(format!("JupyterHub at {url}: no user name"))
            })?
            .to_owned();
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
}
