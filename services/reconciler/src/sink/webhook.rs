//! Webhook sink: HTTP POST of the alert as JSON, signed with HMAC-SHA256 over a timestamp
//! and the exact body (`X-Sitetally-Signature: t=<unix seconds>,v1=<hex>`, as Stripe
//! signs), retried with exponential backoff on timeouts, connection errors, 5xx and 429;
//! other 4xx are permanent. Each attempt is signed afresh, so a receiver can reject a
//! signature older than a few minutes (a replay) without rejecting a late retry.

use super::{AlertSink, DeliveryLog, DeliveryOutcome, DeliveryRecord, SinkError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sitetally_licensing::alert::Alert;
use sitetally_store::tls::{describe_error, is_tls_failure, TlsOptions};
use std::time::Duration;

/// Header carrying the timestamped body signature.
pub const SIGNATURE_HEADER: &str = "X-Sitetally-Signature";
/// Header carrying the alert's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Sitetally-Idempotency-Key";
/// Shortest webhook secret accepted: 32 bytes, the HMAC-SHA256 output size.
pub const MIN_SECRET_BYTES: usize = 32;
/// How old a signature [`verify`] accepts by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

pub use sitetally_core::secret::Secret;

fn mac(secret: &Secret, unix_secs: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `t=<unix_secs>,v1=<hex HMAC-SHA256 of "<unix_secs>.<body>">`.
pub fn sign(secret: &Secret, unix_secs: i64, body: &[u8]) -> String {
    let sig = mac(secret, unix_secs, body).finalize().into_bytes();
    format!("t={unix_secs},v1={}", hex::encode(sig))
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("signature is {age_secs} s old (tolerance {tolerance_secs} s): a replay?")]
    TooOld { age_secs: i64, tolerance_secs: u64 },
    #[error("signature does not match the body under this secret")]
    Mismatch,
}

/// Checks a signature header value at `now_unix_secs` (for receivers and tests): the
/// timestamp within `tolerance` of now, the HMAC in constant time.
pub fn verify(
    secret: &Secret,
    body: &[u8],
    header: &str,
    now_unix_secs: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(VerifyError::Malformed);
    };
    let age = now_unix_secs.saturating_sub(t).saturating_abs();
    let tolerance_secs = tolerance.as_secs();
    if u64::try_from(age).unwrap_or(u64::MAX) > tolerance_secs {
        return Err(VerifyError::TooOld {
            age_secs: age,
            tolerance_secs,
        });
    }
    mac(secret, t, body)
        .verify_slice(&v1)
        .map_err(|_| VerifyError::Mismatch)
}

/// One webhook endpoint.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Sink name (unique; kept in pending-delivery state).
    pub name: String,
    pub url: String,
    pub secret: Secret,
    /// Attempts per delivery within one run (default 5).
    pub max_attempts: u32,
    /// First backoff; doubles each attempt (default 500 ms).
    pub initial_backoff: Duration,
    /// Backoff cap (default 30 s).
    pub max_backoff: Duration,
    /// Per-request timeout (default 10 s).
    pub timeout: Duration,
    /// For `https://` URLs: a private CA and a client certificate.
    pub tls: TlsOptions,
}

impl WebhookConfig {
    pub fn new(name: impl Into<String>, url: impl Into<String>, secret: Secret) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            secret,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            tls: TlsOptions::default(),
        }
    }
}

/// Delivers alerts to one webhook.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    cfg: WebhookConfig,
    client: reqwest::Client,
    log: DeliveryLog,
}

impl WebhookSink {
    pub fn new(cfg: WebhookConfig, log: DeliveryLog) -> Result<Self, SinkError> {
        let tls = cfg
            .tls
            .client_config()
            .map_err(|e| SinkError::Permanent(format!("webhook {}: {e}", cfg.name)))?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| SinkError::Permanent(format!("webhook {}: {e}", cfg.name)))?;
        Ok(Self { cfg, client, log })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.cfg
            .initial_backoff
            .saturating_mul(factor)
            .min(self.cfg.max_backoff)
    }

    async fn attempt(
        &self,
        alert: &Alert,
        body: &[u8],
        signature: &str,
    ) -> (Result<(), SinkError>, Option<u16>) {
        let res = self
            .client
            .post(&self.cfg.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, &alert.idempotency_key)
            .body(body.to_vec())
            .send()
            .await;
        match res {
            Ok(resp) => {
                let code = resp.status();
                let out = if code.is_success() {
                    Ok(())
                } else if code.is_server_error() || code.as_u16() == 429 || code.as_u16() == 408 {
                    Err(SinkError::Retryable(format!("HTTP {code}")))
                } else {
                    Err(SinkError::Permanent(format!("HTTP {code}")))
                };
                (out, Some(code.as_u16()))
            }
            Err(e) if e.is_builder() => (Err(SinkError::Permanent(describe_error(&e))), None),
            Err(e) => {
                // A certificate the client does not trust will not become trusted by
                // retrying: fail the delivery now, saying TLS.
                let why = describe_error(&e);
                if is_tls_failure(&why) {
                    (Err(SinkError::Permanent(why)), None)
                } else {
                    (Err(SinkError::Retryable(why)), None)
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl AlertSink for WebhookSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn deliver(&self, alert: &Alert) -> Result<(), SinkError> {
        let body = alert.to_json();
        let attempts = self.cfg.max_attempts.max(1);
        let mut last = SinkError::Retryable("not attempted".into());
        for attempt in 1..=attempts {
            let signature = sign(&self.cfg.secret, chrono::Utc::now().timestamp(), &body);
            let (res, status_code) = self.attempt(alert, &body, &signature).await;
            let outcome = match &res {
                Ok(()) => DeliveryOutcome::Delivered,
                Err(SinkError::Retryable(_)) if attempt < attempts => DeliveryOutcome::Retry,
                Err(_) => DeliveryOutcome::Failed,
            };
            self.log.record(DeliveryRecord {
                at: chrono::Utc::now(),
                sink: self.cfg.name.clone(),
                idempotency_key: alert.idempotency_key.clone(),
                attempt,
                outcome,
                status_code,
                error: res.as_ref().err().map(|e| e.to_string()),
            });
            match res {
                Ok(()) => return Ok(()),
                Err(e @ SinkError::Permanent(_)) => return Err(e),
                Err(e) => last = e,
            }
            if attempt < attempts {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_roundtrip_replay_and_secret_redacted() {
        let s = Secret::new("k");
        let t = 1_764_000_000;
        let sig = sign(&s, t, b"body");
        assert!(sig.starts_with(&format!("t={t},v1=")), "{sig}");
        assert_eq!(sig.len(), format!("t={t},v1=").len() + 64);
        let ok =
            |body: &[u8], secret: &Secret, now| verify(secret, body, &sig, now, DEFAULT_TOLERANCE);
        assert_eq!(ok(b"body", &s, t + 10), Ok(()));
        assert_eq!(ok(b"body2", &s, t), Err(VerifyError::Mismatch));
        assert_eq!(
            ok(b"body", &Secret::new("other"), t),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            ok(b"body", &s, t + 301),
            Err(VerifyError::TooOld { .. })
        ));
        // The timestamp is signed: moving it forward breaks the signature.
        let moved = sig.replace(&format!("t={t}"), &format!("t={}", t + 300));
        assert_eq!(
            verify(&s, b"body", &moved, t + 300, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&s, b"body", "sha256=00", t, DEFAULT_TOLERANCE),
            Err(VerifyError::Malformed)
        );
        assert_eq!(format!("{s:?}"), "***");
        let cfg = WebhookConfig::new("w", "http://127.0.0.1:1/", s);
        assert!(!format!("{cfg:?}").contains("\"k\""));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut cfg = WebhookConfig::new("w", "http://127.0.0.1:1/", Secret::new("k"));
        cfg.initial_backoff = Duration::from_millis(100);
        cfg.max_backoff = Duration::from_millis(350);
        let sink = WebhookSink::new(cfg, DeliveryLog::default()).unwrap();
        assert_eq!(sink.backoff(1), Duration::from_millis(100));
        assert_eq!(sink.backoff(2), Duration::from_millis(200));
        assert_eq!(sink.backoff(3), Duration::from_millis(350));
    }
}
