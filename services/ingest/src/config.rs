//! The ingest service's one config. Layers: built-in defaults (work on localhost) → an
//! optional TOML file → `SITETALLY_INGEST__SECTION__KEY` environment variables → flags.

use serde::{Deserialize, Serialize};
use sitetally_store::clickhouse::ClickHouseConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub batch: BatchConfig,
    pub pipeline: PipelineSettings,
    /// Confluent-compatible schema registry URL; unset = the schemas bundled in the binary.
    /// A password inside it prints as `***`.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub schema_registry_url: Option<String>,
    /// For an `https://` registry: a private CA and a client certificate.
    pub schema_registry_tls: sitetally_store::tls::TlsOptions,
    /// `host:port` for the Prometheus `/metrics` endpoint; unset = no endpoint.
    pub metrics_listen: Option<String>,
}

fn serialize_redacted_url<S: serde::Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    url.as_deref()
        .map(sitetally_core::secret::redact_url)
        .serialize(s)
}

impl std::fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConfig")
            .field("kafka", &self.kafka)
            .field("clickhouse", &self.clickhouse)
            .field("batch", &self.batch)
            .field("pipeline", &self.pipeline)
            .field(
                "schema_registry_url",
                &self
                    .schema_registry_url
                    .as_deref()
                    .map(sitetally_core::secret::redact_url),
            )
            .field("schema_registry_tls", &self.schema_registry_tls)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic with discovery events.
    pub topic: String,
    /// Consumer group; every ingest instance of one deployment uses the same.
    pub group_id: String,
    /// Dead-letter topic; default `<topic>.dlq`.
    pub dlq_topic: Option<String>,
    /// Extra librdkafka properties for consumer and producer: security settings
    /// (`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`,
    /// `ssl.ca.location`, ...), fetch sizes. Values of credential keys print as `***`.
    pub properties: KafkaProperties,
    /// Static group membership (KIP-345): this replica's `group.instance.id`, so that a
    /// restarted replica takes its partitions back without a rebalance, as long as it is
    /// back within `session.timeout.ms`. Unset: dynamic membership, unless
    /// `static_membership` asks for the host name.
    pub group_instance_id: Option<String>,
    /// Use the host name (a container's name) as `group_instance_id` when none is set.
    pub static_membership: bool,
    /// Tenants whose events `topic` may carry; empty = any. Give each tenant its own
    /// topic (with a broker ACL per producer) and list it here: an event naming another
    /// tenant goes to the dead-letter topic as `tenant_not_allowed`.
    pub tenants: Vec<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "device-discoveries".into(),
            group_id: "sitetally-ingest".into(),
            dlq_topic: None,
            properties: KafkaProperties::default(),
            group_instance_id: None,
            static_membership: false,
            tenants: Vec::new(),
        }
    }
}

/// librdkafka properties; credentials (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, ...) never print, in `Debug` or `--print-config`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct KafkaProperties(pub BTreeMap<String, String>);

impl KafkaProperties {
    fn redacted(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), sitetally_core::secret::shown_value(k, v)))
            .collect()
    }
}

impl std::ops::Deref for KafkaProperties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KafkaProperties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.redacted().fmt(f)
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

impl<'a> IntoIterator for &'a KafkaProperties {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl KafkaConfig {
    /// The `group.instance.id` to use: the configured one, else the host name when
    /// `static_membership` is on.
    pub fn instance_id(&self) -> Option<String> {
        self.group_instance_id
            .clone()
            .or_else(|| self.static_membership.then(host_name).flatten())
    }

    pub fn dlq_topic(&self) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.topic))
    }
}

/// The host name (`HOSTNAME`, else /etc/hostname), as containers set it.
fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Flush when this many rows are pending.
    pub max_rows: usize,
    /// Flush at least this often (milliseconds) while anything is pending.
    pub max_interval_ms: u64,
    /// When the consumer has caught up (a poll found nothing), flush a batch that is at
    /// least this old (milliseconds) instead of waiting for `max_interval_ms`; 0 = never.
    /// Keeps latency low once caught up without turning a trickle into tiny inserts.
    pub idle_flush_ms: u64,
    /// First retry delay after a failed flush (milliseconds); doubles up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// On partition revocation, how long to try flushing before discarding the batch
    /// (its offsets stay uncommitted, so the next owner re-reads it).
    pub revoke_flush_timeout_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: 50_000,
            max_interval_ms: 1_000,
            idle_flush_ms: 200,
            initial_backoff_ms: 200,
            max_backoff_ms: 5_000,
            revoke_flush_timeout_ms: 5_000,
        }
    }
}

impl BatchConfig {
    pub fn max_interval(&self) -> Duration {
        Duration::from_millis(self.max_interval_ms)
    }

    pub fn idle_flush(&self) -> Option<Duration> {
        (self.idle_flush_ms > 0).then(|| Duration::from_millis(self.idle_flush_ms))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Reject events further in the future than this (seconds).
    pub max_future_secs: i64,
    /// Reject events older than this (days).
    pub max_age_days: i64,
    /// Most (site, day, device) triples remembered by dedup (~40 bytes each).
    pub dedup_capacity: usize,
    /// Days behind the newest day that dedup keeps.
    pub keep_days: u16,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        let d = sitetally_core::PipelineConfig::default();
        Self {
            max_future_secs: d.rules.max_future_ms / 1000,
            max_age_days: d.rules.max_age_ms / sitetally_core::MS_PER_DAY,
            dedup_capacity: d.dedup_capacity,
            keep_days: d.keep_days,
        }
    }
}

impl PipelineSettings {
    pub fn to_pipeline_config(&self) -> sitetally_core::PipelineConfig {
        let mut c = sitetally_core::PipelineConfig::default();
        c.rules.max_future_ms = self.max_future_secs * 1000;
        c.rules.max_age_ms = self.max_age_days * sitetally_core::MS_PER_DAY;
        c.dedup_capacity = self.dedup_capacity;
        c.keep_days = self.keep_days;
        c
    }
}

impl IngestConfig {
    /// The pipeline's config: `pipeline` settings plus the tenants bound to the topic.
    pub fn pipeline_config(&self) -> sitetally_core::PipelineConfig {
        let mut c = self.pipeline.to_pipeline_config();
        if !self.kafka.tenants.is_empty() {
            c.allowed_tenants = Some(self.kafka.tenants.iter().cloned().collect());
        }
        c
    }

    // figment::Error is large, but this runs once at start-up: boxing buys nothing.
    #[allow(clippy::result_large_err)]
    /// Defaults, then `file` (if given), then `SITETALLY_INGEST__…` variables
    /// (e.g. `SITETALLY_INGEST__KAFKA__BROKERS=kafka:9092`).
    pub fn load(file: Option<&Path>) -> Result<Self, figment::Error> {
        use figment::providers::{Env, Format, Serialized, Toml};
        let mut f = figment::Figment::from(Serialized::defaults(IngestConfig::default()));
        if let Some(path) = file {
            f = f.merge(Toml::file_exact(path));
        }
        f.merge(Env::prefixed("SITETALLY_INGEST__").split("__"))
            .extract()
    }

    /// Checks what serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, problem| Err(ConfigError { field, problem });
        if self.kafka.brokers.trim().is_empty() {
            return invalid("kafka.brokers", "must name at least one broker");
        }
        if self.kafka.topic.trim().is_empty() {
            return invalid("kafka.topic", "must not be empty");
        }
        if self
            .kafka
            .tenants
            .iter()
            .any(|t| t.trim().is_empty() || sitetally_core::text::first_forbidden(t).is_some())
        {
            return invalid(
                "kafka.tenants",
                "names must be non-empty without control, bidi or invisible characters",
            );
        }
        if self.clickhouse.timeout.is_zero() {
            return invalid("clickhouse.timeout", "must be more than 0");
        }
        if self.batch.max_rows == 0 {
            return invalid("batch.max_rows", "must be at least 1");
        }
        if self.pipeline.dedup_capacity == 0 {
            return invalid("pipeline.dedup_capacity", "must be at least 1");
        }
        if self.batch.initial_backoff_ms == 0
            || self.batch.max_backoff_ms < self.batch.initial_backoff_ms
        {
            return invalid(
                "batch.max_backoff_ms",
                "must be ≥ batch.initial_backoff_ms > 0",
            );
        }
        Ok(())
    }
}

/// A config value serde accepted but ingest cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// The offending setting, as written in the config file (`batch.max_rows`).
    pub field: &'static str,
    pub problem: &'static str,
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let mut c = IngestConfig::default();
        c.kafka
            .properties
            .insert("sasl.password".into(), "kafka-hunter2".into());
        c.kafka
            .properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        c.clickhouse.url = "https://ingest:ch-hunter2@ch.example:8443".into();
        c.schema_registry_url = Some("https://reg:reg-hunter2@registry:8081".into());
        let printed = format!("{c:?}\n{}", serde_json::to_string(&c).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("SASL_SSL") && printed.contains("ingest:***@ch.example"));
        // The values themselves are kept for use.
        assert_eq!(c.kafka.properties["sasl.password"], "kafka-hunter2");
    }
}

#[cfg(test)]
// figment::Jail's closures must return figment::Error, which is large: its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_and_environment_layer_over_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ingest.toml",
                "[kafka]\ntopic = \"events\"\n[batch]\nmax_rows = 10\n",
            )?;
            jail.set_env("SITETALLY_INGEST__KAFKA__BROKERS", "kafka-1:9092");
            let c = IngestConfig::load(Some(Path::new("ingest.toml")))?;
            assert_eq!(c.kafka.topic, "events");
            assert_eq!(c.kafka.dlq_topic(), "events.dlq");
            assert_eq!(c.kafka.brokers, "kafka-1:9092");
            assert_eq!(c.batch.max_rows, 10);
            assert_eq!(c.clickhouse.url, "http://127.0.0.1:8123");
            Ok(())
        });
    }

    #[test]
    fn unknown_fields_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = IngestConfig::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("brokerz"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = IngestConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.batch.max_rows = 0;
        assert_eq!(c.validate().unwrap_err().field, "batch.max_rows");
        let mut c = IngestConfig::default();
        c.clickhouse.timeout = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field, "clickhouse.timeout");
    }
}
