//! Who may call an API: bearer tokens with roles, and the `Host`/`Origin`
//! check against DNS rebinding. Shared by the admin server (here) and every
//! REST and gRPC API (the runtime's `http` and `grpc` plumbing).
//!
//! - Tokens are configured as `{name, role, sha256}` (the hex SHA-256 of
//!   the token, never the token itself) in `[auth] tokens` or in a
//!   `token_file` (one `name role sha256` per line, `#` comments). A
//!   request presents `Authorization: Bearer TOKEN`; its SHA-256 is compared
//!   with every configured hash in constant time.
//! - Roles are ordered `read < write < admin`: reads need `read`, changes
//!   `write`, destructive operations (delete all, restore, wipe) `admin`.
//! - With no tokens configured the APIs are open (every caller counts as
//!   `admin`): that is how `tributary up` runs on a laptop. Serving such an
//!   open API on a non-loopback address is refused unless
//!   `auth.allow_anonymous = true` ([`Auth::check_bind`]).
//! - `Host` (and `Origin` when present) must name a loopback host
//!   (`localhost`, `127.0.0.1`, `::1`, `*.localhost`), the address a
//!   listener is bound to, or one of `auth.allowed_hosts`; the port is
//!   ignored. A web page on another name that resolves to 127.0.0.1 (DNS
//!   rebinding) is thus refused.
//! - `/livez` and `/readyz` stay open.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: searches, lists, gets.
    Read,
    /// Write: creates, updates, imports, deletes of single things.
    Write,
    /// Admin: destructive operations (delete all, restore, wipe).
    Admin,
}

impl Role {
    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Who holds it (logged with each request, never the token).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
}

impl fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSpec")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("sha256", &"<hash>")
            .finish()
    }
}

/// `[auth]`: see the module docs.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Accepted tokens; empty (and no `token_file`) = open APIs.
    pub tokens: Vec<TokenSpec>,
    /// A file of more tokens, one `name role sha256` per line.
    pub token_file: Option<PathBuf>,
    /// Serve open APIs (no tokens) on non-loopback addresses anyway.
    pub allow_anonymous: bool,
    /// Host names (besides loopback names and bound addresses) that
    /// `Host`/`Origin` may carry, e.g. the name of a load balancer; `*`
    /// turns the check off (behind a proxy that checks it).
    pub allowed_hosts: Vec<String>,
    /// The token this process's client commands send (`TRIBUTARY_TOKEN`
    /// wins when set). Never printed.
    pub client_token: Option<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("tokens", &self.tokens)
            .field("token_file", &self.token_file)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("allowed_hosts", &self.allowed_hosts)
            .field(
                "client_token",
                &self.client_token.as_ref().map(|_| "<secret>"),
            )
            .finish()
    }
}

impl AuthSettings {
    /// The token client commands send: `TRIBUTARY_TOKEN`, else `client_token`.
    pub fn client_token(&self) -> Option<String> {
        std::env::var("TRIBUTARY_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| self.client_token.clone())
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that matches none (401).
    Unauthenticated(&'static str),
    /// The token's role is too low (403).
    Forbidden {
        /// Who presented the token.
        name: String,
        /// Its role.
        role: Role,
        /// The role needed.
        need: Role,
    },
    /// `Host` or `Origin` names a host this server does not answer for (403).
    BadHost(String),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Unauthenticated(why) => f.write_str(why),
            Denied::Forbidden { name, role, need } => write!(
                f,
                "token {name:?} has role {role}; this operation needs {need}"
            ),
            Denied::BadHost(h) => write!(
                f,
                "host {h:?} is not served here (add it to auth.allowed_hosts)"
            ),
        }
    }
}

/// The caller of a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name; `anonymous` on open APIs.
    pub name: String,
    /// Its role (`admin` on open APIs).
    pub role: Role,
}

/// The loaded token set and host list.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<(String, Role, [u8; 32])>,
    allow_anonymous: bool,
    hosts: Vec<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("allow_anonymous", &self.allow_anonymous)
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// The SHA-256 of `token` as lowercase hex (what `[auth] tokens` stores).
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Equal in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

impl Auth {
    /// Loads `settings` (and its token file).
    ///
    /// # Errors
    /// A message naming the token (by name) or the file line that is invalid.
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let mut tokens = Vec::new();
        for t in &settings.tokens {
            let hash = parse_hash(&t.sha256).ok_or_else(|| {
                anyhow::anyhow!(
                    "auth.tokens: token {:?}: sha256 must be 64 hex digits (printf %s TOKEN | sha256sum)",
                    t.name
                )
            })?;
            tokens.push((t.name.clone(), t.role, hash));
        }
        if let Some(path) = &settings.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("auth.token_file {}: {e}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let at = || format!("auth.token_file {} line {}", path.display(), i + 1);
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [name, role, hash] = parts[..] else {
                    anyhow::bail!("{}: expected `name role sha256`", at());
                };
                let role = Role::parse(role).ok_or_else(|| {
                    anyhow::anyhow!("{}: role must be read, write or admin", at())
                })?;
                let hash = parse_hash(hash)
                    .ok_or_else(|| anyhow::anyhow!("{}: sha256 must be 64 hex digits", at()))?;
                tokens.push((name.to_owned(), role, hash));
            }
        }
        Ok(Self {
            tokens,
            allow_anonymous: settings.allow_anonymous,
            hosts: settings
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        })
    }

    /// True when no token is configured (open APIs).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Refuses to serve an open API on a non-loopback address unless
    /// `allow_anonymous` is set.
    ///
    /// # Errors
    /// A message naming the API, the address and the two ways out.
    pub fn check_bind(&self, what: &str, addr: SocketAddr) -> anyhow::Result<()> {
        if self.is_open() && !addr.ip().is_loopback() && !self.allow_anonymous {
            anyhow::bail!(
                "refusing to serve the {what} on {addr} without authentication: configure \
                 [auth] tokens (or token_file), or set auth.allow_anonymous = true"
            );
        }
        Ok(())
    }

    /// The caller presenting `authorization` (the header's value), if it
    /// may do what needs `need`.
    ///
    /// # Errors
    /// [`Denied::Unauthenticated`] or [`Denied::Forbidden`].
    pub fn authorize(&self, authorization: Option<&str>, need: Role) -> Result<Principal, Denied> {
        if self.is_open() {
            return Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let Some(value) = authorization else {
            return Err(Denied::Unauthenticated(
                "this API needs a token: send `Authorization: Bearer TOKEN` (the CLI reads TRIBUTARY_TOKEN)",
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(Denied::Unauthenticated(
                "the Authorization header must be `Bearer TOKEN`",
            ))?
            .trim();
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare with every hash, so the time does not tell which matched.
        let mut found: Option<(&str, Role)> = None;
        for (name, role, hash) in &self.tokens {
            if constant_time_eq(&presented, hash) && found.is_none() {
                found = Some((name, *role));
            }
        }
        let Some((name, role)) = found else {
            return Err(Denied::Unauthenticated(
                "the token matches no configured token",
            ));
        };
        if role < need {
            return Err(Denied::Forbidden {
                name: name.to_owned(),
                role,
                need,
            });
        }
        Ok(Principal {
            name: name.to_owned(),
            role,
        })
    }

    /// Checks a `Host` or `Origin` value against loopback names, `local`
    /// (the listener's own address) and `auth.allowed_hosts`. A missing
    /// header passes (HTTP/1.0 clients, gRPC over HTTP/2 uses `:authority`
    /// which arrives as the URI's host).
    ///
    /// # Errors
    /// [`Denied::BadHost`] naming the host.
    pub fn check_host(&self, value: Option<&str>, local: Option<SocketAddr>) -> Result<(), Denied> {
        let Some(value) = value else {
            return Ok(());
        };
        let host = host_part(value);
        if host.is_empty() || host == "null" {
            // `Origin: null` (sandboxed pages, file://) carries no host to trust.
            return if value.trim() == "null" {
                Err(Denied::BadHost("null".into()))
            } else {
                Ok(())
            };
        }
        let lower = host.to_ascii_lowercase();
        let loopback = lower == "localhost"
            || lower.ends_with(".localhost")
            || lower
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let own = local.is_some_and(|a| {
            lower
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == a.ip() && !a.ip().is_unspecified())
        });
        if loopback || own || self.hosts.iter().any(|h| h == "*" || *h == lower) {
            Ok(())
        } else {
            Err(Denied::BadHost(host.to_owned()))
        }
    }
}

/// `http://name:port/path` or `name:port` or `[::1]:port` -> `name` / `::1`.
fn host_part(value: &str) -> &str {
    let v = value.trim();
    let v = v.split_once("://").map_or(v, |(_, rest)| rest);
    let v = v.split(['/', '?', '#']).next().unwrap_or(v);
    let v = v.rsplit_once('@').map_or(v, |(_, h)| h);
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    v.split(':').next().unwrap_or(v)
}

static INSTALLED: OnceLock<Arc<Auth>> = OnceLock::new();

/// Makes `auth` the process's policy (the binary calls this once at start,
/// from `[auth]`). Later calls are ignored and return false.
pub fn install(auth: Auth) -> bool {
    if auth.is_open() {
        tracing::info!("no [auth] tokens configured: the APIs are open to anyone who can reach them (loopback only unless auth.allow_anonymous)");
    } else {
        tracing::info!(
            tokens = auth.tokens.len(),
            "API authentication on: bearer tokens required"
        );
    }
    INSTALLED.set(Arc::new(auth)).is_ok()
}

/// The process's policy: what [`install`] set, or open.
pub fn current() -> Arc<Auth> {
    INSTALLED.get_or_init(|| Arc::new(Auth::default())).clone()
}

static CLIENT_TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// Sets the token client commands send, from `settings` (the binary calls
/// this once before a client command runs).
pub fn set_client_token(settings: &AuthSettings) {
    let _ = CLIENT_TOKEN.set(settings.client_token());
}

/// The `Authorization` value client commands send: `Bearer TOKEN` from
/// `TRIBUTARY_TOKEN` or `auth.client_token`, or `None`.
pub fn client_authorization() -> Option<String> {
    CLIENT_TOKEN
        .get_or_init(|| AuthSettings::default().client_token())
        .as_ref()
        .map(|t| format!("Bearer {}", t.trim()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::from_settings(&AuthSettings {
            tokens: vec![
                TokenSpec {
                    name: "reader".into(),
                    role: Role::Read,
                    sha256: hash_token("r-secret"),
                },
                TokenSpec {
                    name: "ops".into(),
                    role: Role::Admin,
                    sha256: hash_token("a-secret"),
                },
            ],
            ..AuthSettings::default()
        })
        .unwrap()
    }

    // Proves: tokens are matched by hash, roles are ordered, and the
    // refusals say what is missing without echoing the token.
    #[test]
    fn tokens_and_roles() {
        let a = auth();
        assert_eq!(
            a.authorize(Some("Bearer r-secret"), Role::Read)
                .unwrap()
                .name,
            "reader"
        );
        let e = a
            .authorize(Some("Bearer r-secret"), Role::Write)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Denied::Forbidden {
                    need: Role::Write,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(a.authorize(Some("Bearer a-secret"), Role::Admin).is_ok());
        let e = a.authorize(Some("Bearer wrong"), Role::Read).unwrap_err();
        assert!(matches!(e, Denied::Unauthenticated(_)));
        assert!(!e.to_string().contains("wrong"));
        assert!(matches!(
            a.authorize(None, Role::Read),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            a.authorize(Some("Basic abc"), Role::Read),
            Err(Denied::Unauthenticated(_))
        ));
        // Open: anyone is admin.
        assert_eq!(
            Auth::default().authorize(None, Role::Admin).unwrap().role,
            Role::Admin
        );
    }

    // Proves: a bad hash or a bad token-file line is named by token name / line.
    #[test]
    fn invalid_configuration_is_named() {
        let e = Auth::from_settings(&AuthSettings {
            tokens: vec![TokenSpec {
                name: "x".into(),
                role: Role::Read,
                sha256: "abc".into(),
            }],
            ..AuthSettings::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("token \"x\""), "{e}");
        let dir = std::env::temp_dir().join(format!("tributary-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(
            &file,
            format!("# ops\nops admin {}\nbad line\n", hash_token("t")),
        )
        .unwrap();
        let e = Auth::from_settings(&AuthSettings {
            token_file: Some(file.clone()),
            ..AuthSettings::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        std::fs::write(&file, format!("ops admin {}\n", hash_token("t"))).unwrap();
        let a = Auth::from_settings(&AuthSettings {
            token_file: Some(file),
            ..AuthSettings::default()
        })
        .unwrap();
        assert!(a.authorize(Some("Bearer t"), Role::Admin).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    // Proves: loopback names, the bound address and configured names pass;
    // any other host (DNS rebinding) and `Origin: null` are refused.
    #[test]
    fn host_check() {
        let a = Auth::from_settings(&AuthSettings {
            allowed_hosts: vec!["api.example.com".into()],
            ..AuthSettings::default()
        })
        .unwrap();
        let local: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        for ok in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:9",
            "app.localhost",
            "http://127.0.0.1:8470",
            "10.1.2.3:8080",
            "API.example.com",
        ] {
            assert!(a.check_host(Some(ok), Some(local)).is_ok(), "{ok}");
        }
        for bad in [
            "evil.com",
            "http://rebind.attacker.net:8470",
            "null",
            "10.9.9.9",
        ] {
            assert!(a.check_host(Some(bad), Some(local)).is_err(), "{bad}");
        }
        assert!(a.check_host(None, None).is_ok());
    }

    // Proves: an open API may bind loopback only, unless allow_anonymous.
    #[test]
    fn open_api_binds_loopback_only() {
        let open = Auth::default();
        assert!(open.check_bind("x", "127.0.0.1:1".parse().unwrap()).is_ok());
        let e = open
            .check_bind("x", "0.0.0.0:1".parse().unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("allow_anonymous"), "{e}");
        let anon = Auth::from_settings(&AuthSettings {
            allow_anonymous: true,
            ..AuthSettings::default()
        })
        .unwrap();
        assert!(anon.check_bind("x", "0.0.0.0:1".parse().unwrap()).is_ok());
        assert!(auth().check_bind("x", "0.0.0.0:1".parse().unwrap()).is_ok());
    }
}
