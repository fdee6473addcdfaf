//! Webhook sink: HTTP POST of the alert as JSON, signed with HMAC-SHA256 over the exact
//! body (`X-Sitetally-Signature: sha256=<hex>`), retried with exponential backoff on
//! timeouts, connection errors, 5xx and 429; other 4xx are permanent.

use super::{AlertSink, DeliveryLog, DeliveryOutcome, DeliveryRecord, SinkError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sitetally_licensing::alert::Alert;
use std::time::Duration;

/// Header carrying the body signature.
pub const SIGNATURE_HEADER: &str = "X-Sitetally-Signature";
/// Header carrying the alert's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Sitetally-Idempotency-Key";

pub use sitetally_core::secret::Secret;

/// `sha256=<hex hmac>` of `body` under `secret`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header value (for receivers and tests), in constant time.
pub fn verify(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
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
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
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
            Err(e) if e.is_builder() => (Err(SinkError::Permanent(e.to_string())), None),
            Err(e) => (Err(SinkError::Retryable(e.to_string())), None),
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
        let signature = sign(&self.cfg.secret, &body);
        let attempts = self.cfg.max_attempts.max(1);
        let mut last = SinkError::Retryable("not attempted".into());
        for attempt in 1..=attempts {
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
    fn signature_roundtrip_and_secret_redacted() {
        let s = Secret::new("k");
        let sig = sign(&s, b"body");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert!(verify(&s, b"body", &sig));
        assert!(!verify(&s, b"body2", &sig));
        assert!(!verify(&Secret::new("other"), b"body", &sig));
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
