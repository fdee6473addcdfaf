//! Bearer tokens: one or more per tenant, and admin tokens that see every tenant.
//!
//! Tokens are configured in a TOML file (`--tokens FILE`) and/or the environment
//! (`SITETALLY_API_ADMIN_TOKEN`, `SITETALLY_API_TENANT_TOKENS="tenant=token,..."`). They
//! are held in [`Secret`], whose `Debug` prints `***`, and only their SHA-256 digests are
//! kept for checking, compared in constant time.

use crate::error::ApiError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub use sitetally_core::secret::Secret;

/// Shortest token accepted: guessing 16 random characters is not a practical attack.
pub const MIN_TOKEN_LEN: usize = 16;

/// Token configuration (`--tokens FILE`):
///
/// ```toml
/// admin_tokens = ["a-long-random-admin-token"]
/// [tenant_tokens]
/// contoso = ["a-long-random-token-for-contoso"]
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Tokens that may read every tenant.
    pub admin_tokens: Vec<Secret>,
    /// Tenant id to the tokens that may read that tenant only.
    pub tenant_tokens: BTreeMap<String, Vec<Secret>>,
}

/// Environment variable holding one admin token.
pub const ENV_ADMIN_TOKEN: &str = "SITETALLY_API_ADMIN_TOKEN";
/// Environment variable holding `tenant=token` pairs, comma-separated.
pub const ENV_TENANT_TOKENS: &str = "SITETALLY_API_TENANT_TOKENS";

/// Why a token configuration was rejected; names the field, never the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl AuthConfig {
    /// Reads a TOML token file.
    pub fn from_file(path: &Path) -> Result<Self, AuthConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Io {
            file: file.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| AuthConfigError::Syntax {
            file,
            message: e.message().to_string(),
        })
    }

    /// Adds the tokens of the environment (see [`ENV_ADMIN_TOKEN`], [`ENV_TENANT_TOKENS`]).
    pub fn with_env(self) -> Result<Self, AuthConfigError> {
        self.with_vars(
            std::env::var(ENV_ADMIN_TOKEN).ok().as_deref(),
            std::env::var(ENV_TENANT_TOKENS).ok().as_deref(),
        )
    }

    /// Adds an admin token and `tenant=token,...` pairs (the environment's format).
    pub fn with_vars(
        mut self,
        admin: Option<&str>,
        tenants: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        if let Some(a) = admin.map(str::trim).filter(|a| !a.is_empty()) {
            self.admin_tokens.push(Secret::new(a));
        }
        for pair in tenants.unwrap_or("").split(',').map(str::trim) {
            if pair.is_empty() {
                continue;
            }
            let (tenant, token) = pair
                .split_once('=')
                .ok_or_else(|| AuthConfigError::Invalid {
                    field: ENV_TENANT_TOKENS.into(),
                    message: "expected tenant=token pairs separated by commas".into(),
                })?;
            self.tenant_tokens
                .entry(tenant.trim().to_string())
                .or_default()
                .push(Secret::new(token.trim()));
        }
        Ok(self)
    }

    /// Whether no token at all is configured.
    pub fn is_empty(&self) -> bool {
        self.admin_tokens.is_empty() && self.tenant_tokens.values().all(Vec::is_empty)
    }

    /// Checks lengths and uniqueness and keeps only digests.
    pub fn build(&self) -> Result<Authenticator, AuthConfigError> {
        let mut entries: Vec<([u8; 32], Principal)> = Vec::new();
        let mut add = |field: String, token: &Secret, p: Principal| {
            if token.expose().chars().count() < MIN_TOKEN_LEN {
                return Err(AuthConfigError::Invalid {
                    field,
                    message: format!("token shorter than {MIN_TOKEN_LEN} characters"),
                });
            }
            if token
                .expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(AuthConfigError::Invalid {
                    field,
                    message: "token contains whitespace or control characters".into(),
                });
            }
            let d = digest(token.expose());
            if entries.iter().any(|(e, _)| *e == d) {
                return Err(AuthConfigError::Invalid {
                    field,
                    message: "the same token is configured twice".into(),
                });
            }
            entries.push((d, p));
            Ok(())
        };
        for (i, t) in self.admin_tokens.iter().enumerate() {
            add(format!("admin_tokens[{i}]"), t, Principal::Admin)?;
        }
        for (tenant, tokens) in &self.tenant_tokens {
            if tenant.is_empty() {
                return Err(AuthConfigError::Invalid {
                    field: "tenant_tokens".into(),
                    message: "empty tenant id".into(),
                });
            }
            for (i, t) in tokens.iter().enumerate() {
                add(
                    format!("tenant_tokens.{tenant}[{i}]"),
                    t,
                    Principal::Tenant(tenant.clone()),
                )?;
            }
        }
        Ok(Authenticator {
            entries,
            disabled: false,
        })
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Sees every tenant.
    Admin,
    /// Sees only this tenant.
    Tenant(String),
}

impl Principal {
    /// 403 unless the principal may read `tenant`.
    pub fn check_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Tenant(t) if t == tenant => Ok(()),
            Principal::Tenant(_) => Err(ApiError::Forbidden(
                "this token may not read that tenant".into(),
            )),
        }
    }
}

/// Checks bearer tokens against the configured digests.
#[derive(Debug, Clone)]
pub struct Authenticator {
    entries: Vec<([u8; 32], Principal)>,
    disabled: bool,
}

impl Authenticator {
    /// No authentication: every request is admin. Only for a server on a loopback
    /// address (`sitetally serve --no-auth`, the demo).
    pub fn disabled() -> Self {
        Self {
            entries: Vec::new(),
            disabled: true,
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The principal of an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        if self.disabled {
            return Ok(Principal::Admin);
        }
        self.entry(header).map(|i| self.entries[i].1.clone())
    }

    /// Whose rate budget a request spends: its token's when the token is known, else the
    /// one budget shared by every anonymous or unknown caller (so made-up tokens cannot
    /// grow the limiter's table).
    pub fn rate_key(&self, header: Option<&str>) -> RateKey {
        match self.entry(header) {
            Ok(i) if !self.disabled => RateKey::Token(i),
            _ => RateKey::Anonymous,
        }
    }

    /// The index of the entry whose token the header carries.
    fn entry(&self, header: Option<&str>) -> Result<usize, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::Unauthorized("missing bearer token (Authorization: Bearer TOKEN)".into())
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer TOKEN".into()))?;
        let d = digest(token);
        // Compare against every entry without stopping early, so timing does not tell
        // which (or whether a) token matched.
        let mut found: Option<usize> = None;
        for (i, (e, _)) in self.entries.iter().enumerate() {
            let diff = e
                .iter()
                .zip(d.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(i);
            }
        }
        found.ok_or_else(|| ApiError::Unauthorized("unknown bearer token".into()))
    }
}

/// The rate-limit bucket of a request (see [`Authenticator::rate_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// The configured token at this index.
    Token(usize),
    /// No token, or one that is not configured.
    Anonymous,
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "admin-token-0123456789";
    const C: &str = "contoso-token-0123456789";

    #[test]
    fn secrets_never_print() {
        let cfg = AuthConfig::default()
            .with_vars(Some(A), Some(&format!("contoso={C}")))
            .unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(A) && !dbg.contains(C), "{dbg}");
        assert!(dbg.contains("***"));
        let auth = cfg.build().unwrap();
        let dbg = format!("{auth:?}");
        assert!(!dbg.contains(A) && !dbg.contains(C));
    }

    #[test]
    fn tokens_map_to_principals() {
        let auth = AuthConfig::default()
            .with_vars(Some(A), Some(&format!("contoso={C}")))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {A}"))),
            Ok(Principal::Admin)
        );
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {C}"))),
            Ok(Principal::Tenant("contoso".into()))
        );
        assert!(matches!(
            auth.authenticate(None),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer nope-nope-nope-nope")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            auth.authenticate(Some(A)),
            Err(ApiError::Unauthorized(_))
        ));
        let p = Principal::Tenant("contoso".into());
        assert!(p.check_tenant("contoso").is_ok());
        assert!(matches!(
            p.check_tenant("fabrikam"),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn weak_or_duplicate_tokens_are_rejected_by_field() {
        let e = AuthConfig::default()
            .with_vars(Some("short"), None)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(e.to_string().starts_with("admin_tokens[0]:"), "{e}");
        let e = AuthConfig::default()
            .with_vars(Some(A), Some(&format!("contoso={A}")))
            .unwrap()
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("twice") && !e.to_string().contains(A),
            "{e}"
        );
        let cfg: AuthConfig = toml::from_str(&format!(
            "admin_tokens = [\"{A}\"]\n[tenant_tokens]\ncontoso = [\"{C}\"]\n"
        ))
        .unwrap();
        assert_eq!(cfg.build().unwrap().entries.len(), 2);
        assert!(toml::from_str::<AuthConfig>("admin = 1").is_err());
    }
}
