//! Confluent-compatible schema registry client: `GET {url}/schemas/ids/{id}`.
//! A 404 is an unknown schema (bad data, dead-lettered); anything else that fails is the
//! registry being unavailable (retried, never dead-lettered).

use sitetally_core::codec::{SchemaError, SchemaResolver};
use std::time::Duration;

pub struct RegistryClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl RegistryClient {
    pub fn new(base: &str) -> Result<Self, String> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("schema registry client: {e}"))?;
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
            .map_err(|e| SchemaError::Unavailable(e.to_string()))?;
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
