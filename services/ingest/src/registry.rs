//! Confluent-compatible schema registry client: `GET {url}/schemas/ids/{id}`.
//! A 404 is an unknown schema (bad data, dead-lettered); anything else that fails is the
//! registry being unavailable (retried, never dead-lettered).

use sitetally_core::codec::{SchemaError, SchemaResolver};
use sitetally_store::tls::{describe_error, TlsOptions};
use std::time::Duration;

/// Why the registry client could not be set up. Neither is retryable: the URL or the
/// TLS setup must change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Not an absolute http(s) URL. Caught at start-up: every request to it would fail,
    /// which the consume loop takes for an outage and retries forever.
    #[error("schema_registry_url: {url:?} is not an http(s) URL ({reason})")]
    InvalidUrl { url: String, reason: String },
    #[error("schema registry client: {0}")]
    Client(reqwest::Error),
    #[error("schema_registry_tls: {0}")]
    Tls(sitetally_store::tls::TlsError),
}

/// A schema fetch blocks the consumer thread, so every partition waits for it; a registry
/// slower than this counts as unavailable (the message's partition is paused and retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RegistryClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl RegistryClient {
    /// A client of the registry at `base`; `https://` uses rustls with `tls`.
    pub fn new(base: &str, tls: &TlsOptions) -> Result<Self, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidUrl {
            url: base.to_string(),
            reason,
        };
        let url = reqwest::Url::parse(base).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme {:?}", url.scheme())));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .use_preconfigured_tls(tls.client_config().map_err(RegistryError::Tls)?)
            .build()
            .map_err(RegistryError::Client)?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
}

impl SchemaResolver for RegistryClient {
    fn schema_json(&self, id: u32) -> Result<String, SchemaError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .map_err(|e| SchemaError::Unavailable(describe_error(&e)))?;
        match resp.status() {
            s if s.is_success() => resp
                .json::<SchemaResponse>()
                .map(|r| r.schema)
                .map_err(|e| SchemaError::Unavailable(format!("bad registry response: {e}"))),
            reqwest::StatusCode::NOT_FOUND => Err(SchemaError::Unknown(id)),
            s => Err(SchemaError::Unavailable(format!("registry answered {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_scheme_is_refused_at_start_up() {
        for bad in ["registry:8081", "", "ftp://registry"] {
            let err = RegistryClient::new(bad, &TlsOptions::default())
                .err()
                .expect(bad);
            assert!(matches!(err, RegistryError::InvalidUrl { .. }), "{err}");
        }
        assert!(RegistryClient::new("http://registry:8081/", &TlsOptions::default()).is_ok());
    }
}
