//! Defences against callers who are not playing along: a per-token rate limit, a Host
//! allow-list while authentication is off (DNS rebinding), and a bounded method label.

use crate::auth::{Authenticator, RateKey};
use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

/// Requests a token may send: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
        }
    }
}

/// Keys the rate limiter by the request's token ([`Authenticator::rate_key`]).
#[derive(Clone)]
struct TokenKey(Arc<Authenticator>);

impl KeyExtractor for TokenKey {
    type Key = RateKey;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<RateKey, GovernorError> {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(self.0.rate_key(header))
    }
}

/// The rate-limit layer (tower_governor over governor's GCRA): 429 with `Retry-After`
/// and the API's JSON error body once a token's budget is spent.
pub fn rate_limit_layer(
    auth: Arc<Authenticator>,
    limit: RateLimit,
) -> GovernorLayer<
    impl KeyExtractor<Key = RateKey>,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    axum::body::Body,
> {
    let per_second = limit.per_second.max(1);
    let config = GovernorConfigBuilder::default()
        .key_extractor(TokenKey(auth))
        .period(std::time::Duration::from_secs(1) / per_second)
        .burst_size(limit.burst.max(1))
        .finish()
        .expect("period and burst are positive");
    GovernorLayer::new(config).error_handler(|e| match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            ApiError::TooManyRequests(wait_time).into_response()
        }
        other => ApiError::Internal(format!("rate limiter: {other}")).into_response(),
    })
}

/// Host names a server without authentication answers to; with authentication off, a
/// page on another origin that rebinds its DNS name to 127.0.0.1 must not read the API.
#[derive(Debug, Clone)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    /// The loopback names plus `extra` (host names without port, any case).
    pub fn loopback_and(extra: &[String]) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        hosts.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
        Self(Arc::new(hosts))
    }

    /// Whether a `Host` header value names an allowed host (any port).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = match host.rsplit_once(':') {
            // Not "[::1]" alone: a port follows the last colon.
            Some((name, port)) if !port.contains(']') => name,
            _ => host.as_str(),
        };
        self.0.iter().any(|h| h == name)
    }
}

/// Middleware: 403 unless the `Host` header names an allowed host.
pub async fn check_host(hosts: AllowedHosts, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(h) if hosts.allows(h) => next.run(req).await,
        Some(h) => ApiError::Forbidden(format!(
            "host {h:?} is not allowed while authentication is off (use localhost or \
             127.0.0.1, or add it with --allowed-host)"
        ))
        .into_response(),
        None => ApiError::BadRequest("missing Host header".into()).into_response(),
    }
}

/// The method as a metric label: the standard methods by name, anything else "other",
/// so made-up methods cannot grow the label set.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_with_or_without_port() {
        let h = AllowedHosts::loopback_and(&["Planner.Example".into()]);
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:9",
            "[::1]",
            "[::1]:8080",
            "planner.example:443",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2",
            "localhost.evil",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let made_up = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }
}
