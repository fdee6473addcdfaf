//! Alerts on status transitions, their stable idempotency keys, their encodings (JSON and
//! Avro with `schemas/tier_alert.avsc`), and the [`AlertStateStore`] that remembers each
//! subject's last status and undelivered alerts so a restart raises no duplicates.

use crate::count::CountMethod;
use crate::decision::{Decision, Status, Subject};
use crate::settings::Settings;
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The Avro schema of alerts on `tier-alerts`.
pub const TIER_ALERT_SCHEMA: &str = include_str!("../../../schemas/tier_alert.avsc");

/// A status transition of one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable key: hash of tenant, subject, new status and transition time. Receivers
    /// deduplicate on it.
    pub idempotency_key: String,
    pub tenant: String,
    /// Null for tenant-wide (Enterprise IoT, legacy plan) alerts.
    pub site: Option<String>,
    pub subject: Subject,
    /// `UNKNOWN` the first time a subject is seen.
    pub old_status: String,
    pub new_status: String,
    /// The new status with its details (tier to buy, days left...).
    pub new_status_detail: Status,
    pub device_count: u64,
    pub count_method: CountMethod,
    /// Half-width of the count's error band (0 when exact).
    pub error_bound: u64,
    pub licensed_tier: Option<String>,
    pub required_tier: Option<String>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
    pub message: String,
}

/// Stable idempotency key of a transition.
pub fn idempotency_key(
    subject: &Subject,
    new_status: &Status,
    transition_at: DateTime<Utc>,
) -> String {
    let mut h = Sha256::new();
    h.update(subject.tenant().as_bytes());
    h.update([0x1f]);
    h.update(subject.key().as_bytes());
    h.update([0x1f]);
    h.update(new_status.transition_key().as_bytes());
    h.update([0x1f]);
    h.update(transition_at.timestamp_millis().to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

impl Alert {
    /// The alert for `decision` moving a subject from `old` (None: first seen).
    pub fn from_decision(decision: &Decision, old: Option<&Status>, settings: &Settings) -> Self {
        let o = &decision.outcome;
        let licensed = o
            .licensed_tier
            .map(|t| t.to_string())
            .or_else(|| o.licensed_capacity.map(|c| format!("{c} devices")));
        let required = o.required_tier.map(|t| t.to_string());
        let old_status = old
            .map(|s| s.code().to_string())
            .unwrap_or_else(|| "UNKNOWN".into());
        let count_desc = if decision.count.is_exact() {
            format!("{} devices (exact)", decision.count.value)
        } else {
            format!(
                "{}±{} devices (estimated)",
                decision.count.value,
                decision.error_bound(settings)
            )
        };
        let mut message = format!(
            "{}: {} → {}; {count_desc} over {} days",
            decision.subject,
            old_status,
            o.status,
            decision.window.days()
        );
        if let Some(n) = o.notes.first() {
            message.push_str("; ");
            message.push_str(n);
        }
        Alert {
            idempotency_key: idempotency_key(&decision.subject, &o.status, decision.decided_at),
            tenant: decision.subject.tenant().to_string(),
            site: decision.subject.site().map(str::to_string),
            subject: decision.subject.clone(),
            old_status,
            new_status: o.status.code().to_string(),
            new_status_detail: o.status.clone(),
            device_count: decision.count.value,
            count_method: decision.count.method,
            error_bound: decision.error_bound(settings),
            licensed_tier: licensed,
            required_tier: required,
            window_start: decision.window.start,
            window_end: decision.window.end,
            decided_at: decision.decided_at,
            message,
        }
    }

    /// JSON body (webhooks, JSON on Kafka).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("alerts always serialize")
    }

    /// Avro datum per `schemas/tier_alert.avsc` (no framing).
    pub fn to_avro_datum(&self) -> Result<Vec<u8>, apache_avro::Error> {
        let schema = tier_alert_schema();
        let opt = |v: &Option<String>| match v {
            Some(s) => AvroValue::Union(1, Box::new(AvroValue::String(s.clone()))),
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
        };
        let method = match self.count_method {
            CountMethod::Exact => AvroValue::Enum(0, "EXACT".into()),
            CountMethod::Estimated => AvroValue::Enum(1, "ESTIMATED".into()),
        };
        let value = AvroValue::Record(vec![
            (
                "idempotency_key".into(),
                AvroValue::String(self.idempotency_key.clone()),
            ),
            ("tenant".into(), AvroValue::String(self.tenant.clone())),
            ("site".into(), opt(&self.site)),
            (
                "old_status".into(),
                AvroValue::String(self.old_status.clone()),
            ),
            (
                "new_status".into(),
                AvroValue::String(self.new_status.clone()),
            ),
            (
                "device_count".into(),
                AvroValue::Long(self.device_count as i64),
            ),
            ("count_method".into(), method),
            (
                "error_bound".into(),
                AvroValue::Long(self.error_bound as i64),
            ),
            ("licensed_tier".into(), opt(&self.licensed_tier)),
            ("required_tier".into(), opt(&self.required_tier)),
            (
                "window_start".into(),
                AvroValue::TimestampMillis(self.window_start.timestamp_millis()),
            ),
            (
                "window_end".into(),
                AvroValue::TimestampMillis(self.window_end.timestamp_millis()),
            ),
            (
                "decided_at".into(),
                AvroValue::TimestampMillis(self.decided_at.timestamp_millis()),
            ),
            ("message".into(), AvroValue::String(self.message.clone())),
        ]);
        apache_avro::to_avro_datum(schema, value)
    }

    /// Avro in the schema-registry wire format: magic byte 0, 4-byte big-endian schema
    /// id, datum.
    pub fn to_avro_wire(&self, schema_id: u32) -> Result<Vec<u8>, apache_avro::Error> {
        let mut out = Vec::with_capacity(128);
        out.push(0);
        out.extend_from_slice(&schema_id.to_be_bytes());
        out.extend(self.to_avro_datum()?);
        Ok(out)
    }
}

/// The parsed alert schema (parsed once).
pub fn tier_alert_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::parse_str(TIER_ALERT_SCHEMA).expect("bundled tier_alert.avsc parses")
    })
}

/// An alert still owed to some sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAlert {
    pub alert: Alert,
    /// Names of the sinks that have not acknowledged it yet.
    pub sinks: Vec<String>,
}

/// What the reconciler remembers about one subject between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectState {
    pub subject: Subject,
    /// Last decided status (the hysteresis reference).
    pub status: Status,
    /// When the subject entered this status (the transition epoch of its key).
    pub since: DateTime<Utc>,
    /// Key of the alert raised for the transition, if one was.
    pub last_alert_key: Option<String>,
    /// Alerts written before delivery (outbox) and not yet acknowledged by every sink.
    pub pending: Vec<PendingAlert>,
}

/// Errors of a state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("alert state unavailable: {0}")]
    Unavailable(String),
    #[error("alert state corrupt: {0}")]
    Corrupt(String),
}

impl StateError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Unavailable(_))
    }
}

/// Durable per-subject alert state. The reconciler saves a subject's state (with the new
/// alert pending) *before* delivering, so a crash between the two redelivers the same
/// alert with the same key instead of raising a new one.
#[async_trait::async_trait]
pub trait AlertStateStore: Send + Sync {
    /// Every subject's state, by [`Subject::key`].
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError>;
    /// Inserts or replaces one subject's state.
    async fn save(&self, state: &SubjectState) -> Result<(), StateError>;
}

/// In-memory state (tests, one-shot offline runs).
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    states: Mutex<HashMap<String, SubjectState>>,
}

#[async_trait::async_trait]
impl AlertStateStore for MemoryStateStore {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        Ok(self.states.lock().expect("state lock").clone())
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        self.states
            .lock()
            .expect("state lock")
            .insert(state.subject.key(), state.clone());
        Ok(())
    }
}

/// State in one JSON file, rewritten atomically (temp file + rename) on every save.
/// Fine for the demo and single-instance deployments.
#[derive(Debug)]
pub struct JsonFileStateStore {
    path: PathBuf,
    cache: tokio::sync::Mutex<Option<HashMap<String, SubjectState>>>,
}

impl JsonFileStateStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    async fn read(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.is_empty() => Ok(HashMap::new()),
            Ok(bytes) => {
                let list: Vec<SubjectState> = serde_json::from_slice(&bytes)
                    .map_err(|e| StateError::Corrupt(format!("{}: {e}", self.path.display())))?;
                Ok(list.into_iter().map(|s| (s.subject.key(), s)).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
            Err(e) => Err(StateError::Unavailable(format!(
                "{}: {e}",
                self.path.display()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl AlertStateStore for JsonFileStateStore {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        let mut cache = self.cache.lock().await;
        let states = self.read().await?;
        *cache = Some(states.clone());
        Ok(states)
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = Some(self.read().await?);
        }
        let map = cache.as_mut().expect("loaded above");
        map.insert(state.subject.key(), state.clone());
        let mut list: Vec<&SubjectState> = map.values().collect();
        list.sort_by(|a, b| a.subject.cmp(&b.subject));
        let bytes =
            serde_json::to_vec_pretty(&list).map_err(|e| StateError::Corrupt(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        let unavailable =
            |e: std::io::Error| StateError::Unavailable(format!("{}: {e}", self.path.display()));
        std::fs::write(&tmp, &bytes).map_err(unavailable)?;
        std::fs::rename(&tmp, &self.path).map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::count::{Count, CountWindow};
    use crate::decision::{Coverage, Outcome};
    use crate::tier::{Tier, TierNeed};

    pub(crate) fn sample_decision() -> Decision {
        let now = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Decision {
            subject: Subject::OtSite {
                tenant: "acme".into(),
                site: "p1".into(),
            },
            window: CountWindow::ending(now, 60),
            count: Count::estimated(1_500, 10.0),
            estimate: None,
            exact_fetched: false,
            uncertain: false,
            utilisation: Some(1.5),
            outcome: Outcome {
                status: Status::OverTier {
                    tier_to_buy: TierNeed::one(Tier::Xl),
                },
                coverage: Coverage::Paid,
                licensed_tier: Some(TierNeed::one(Tier::L)),
                licensed_capacity: Some(1_000),
                required_tier: Some(TierNeed::one(Tier::Xl)),
                billed: 1_500,
                held_by_hysteresis: false,
                notes: vec!["needs XL".into()],
            },
            decided_at: now,
        }
    }

    #[test]
    fn key_is_stable_and_distinguishes_transitions() {
        let d = sample_decision();
        let a = Alert::from_decision(&d, Some(&Status::WithinTier), &Settings::default());
        let b = Alert::from_decision(&d, Some(&Status::NearLimit), &Settings::default());
        assert_eq!(a.idempotency_key, b.idempotency_key);
        assert_eq!(a.idempotency_key.len(), 32);
        let later = idempotency_key(
            &d.subject,
            d.status(),
            d.decided_at + chrono::Duration::seconds(1),
        );
        assert_ne!(a.idempotency_key, later);
        let other = idempotency_key(&d.subject, &Status::NearLimit, d.decided_at);
        assert_ne!(a.idempotency_key, other);
    }

    #[test]
    fn alert_fields() {
        let a = Alert::from_decision(
            &sample_decision(),
            Some(&Status::WithinTier),
            &Settings::default(),
        );
        assert_eq!(a.tenant, "acme");
        assert_eq!(a.site.as_deref(), Some("p1"));
        assert_eq!(a.old_status, "WITHIN_TIER");
        assert_eq!(a.new_status, "OVER_TIER");
        assert_eq!(a.error_bound, 30);
        assert_eq!(a.count_method, CountMethod::Estimated);
        assert_eq!(a.licensed_tier.as_deref(), Some("L"));
        assert_eq!(a.required_tier.as_deref(), Some("XL"));
        assert!(a.message.contains("1500±30"), "{}", a.message);
    }

    #[test]
    fn avro_roundtrip_with_bundled_schema() {
        let a = Alert::from_decision(&sample_decision(), None, &Settings::default());
        let bytes = a.to_avro_datum().unwrap();
        let v = apache_avro::from_avro_datum(tier_alert_schema(), &mut &bytes[..], None).unwrap();
        let AvroValue::Record(fields) = v else {
            panic!("not a record")
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("tenant"), AvroValue::String("acme".into()));
        assert_eq!(get("old_status"), AvroValue::String("UNKNOWN".into()));
        assert_eq!(get("device_count"), AvroValue::Long(1_500));
        assert_eq!(get("count_method"), AvroValue::Enum(1, "ESTIMATED".into()));
        let wire = a.to_avro_wire(7).unwrap();
        assert_eq!(&wire[..5], &[0, 0, 0, 0, 7]);
        assert_eq!(&wire[5..], &bytes[..]);
    }

    #[tokio::test]
    async fn json_file_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let d = sample_decision();
        let st = SubjectState {
            subject: d.subject.clone(),
            status: d.status().clone(),
            since: d.decided_at,
            last_alert_key: Some("k".into()),
            pending: vec![PendingAlert {
                alert: Alert::from_decision(&d, None, &Settings::default()),
                sinks: vec!["webhook:a".into()],
            }],
        };
        JsonFileStateStore::new(&path).save(&st).await.unwrap();
        let reopened = JsonFileStateStore::new(&path).load_all().await.unwrap();
        assert_eq!(reopened.get(&d.subject.key()), Some(&st));
        std::fs::write(&path, b"{not json").unwrap();
        let e = JsonFileStateStore::new(&path).load_all().await.unwrap_err();
        assert!(matches!(e, StateError::Corrupt(_)));
    }
}
