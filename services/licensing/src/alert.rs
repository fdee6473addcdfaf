//! Alerts on status transitions, their stable idempotency keys, their encodings (JSON and
//! Avro with `schemas/tier_alert.avsc`), and [`SubjectState`], what is remembered about
//! each subject between runs so a restart raises no duplicates.

use crate::count::CountMethod;
use crate::decision::{Decision, Status, Subject};
use crate::settings::Settings;
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

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
        let mut message = if matches!(decision.subject, Subject::Date { .. }) {
            // A date ahead rests on no count.
            format!("{}: {}", decision.subject, o.status)
        } else {
            format!(
                "{}: {} → {}; {count_desc} over {} days",
                decision.subject,
                old_status,
                o.status,
                decision.window.days()
            )
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample_decision;

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
}
