//! The per-message hot path: decode ▶ validate ▶ identity ▶ dedup ▶ row.
//!
//! Pure and synchronous: ingest calls [`Pipeline::process`] from its consumer thread, the
//! load tests call it on pre-encoded messages in memory. No I/O, no channels, no per-event
//! allocation except for the rows of devices not yet written today.

use crate::codec::{Codec, DecodeError};
use crate::dedup::{Dedup, Seen};
use crate::event::Sighting;
use crate::identity::{self, Identified, IdentityError, NotADevice};
use crate::validate::{Invalid, ValidationRules};
use std::collections::HashSet;

/// Pipeline settings (a section of the ingest config).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub rules: ValidationRules,
    /// Most (site, day, device) triples the dedup cache remembers.
    pub dedup_capacity: usize,
    /// Days behind the newest day that dedup keeps.
    pub keep_days: u16,
    /// Tenants whose events the consumed topic may carry; `None` = any. A producer
    /// allowed on one tenant's topic then cannot add devices to another tenant.
    pub allowed_tenants: Option<HashSet<String>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            rules: ValidationRules::default(),
            dedup_capacity: 5_000_000,
            keep_days: 1,
            allowed_tenants: None,
        }
    }
}

/// Why a message was rejected: it goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl Rejection {
    /// Stable reason code (metric label, `dlq.reason` header).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Decode(e) => e.reason(),
            Rejection::Invalid(e) => e.reason(),
            Rejection::Identity(IdentityError::InvalidMac(_)) => "invalid_mac",
            Rejection::Identity(IdentityError::InvalidIp(_)) => "invalid_ip",
            Rejection::Identity(IdentityError::NoIdentifier) => "no_identifier",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Rejection::Decode(e) if e.is_retryable())
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A device not yet written for its site and day: write this row.
    New(Sighting),
    /// Already written today: nothing to do.
    Duplicate,
    /// A valid report about something that is not a device (counted, not stored).
    NotADevice(NotADevice),
    /// Bad input: dead-letter it.
    Rejected(Rejection),
}

/// Counters the caller turns into metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct PipelineStats {
    pub new: u64,
    /// Of `new`: devices the full dedup cache could not remember (written anyway; a
    /// steady rate means `dedup_capacity` is too small for the sites this replica owns).
    pub written_through: u64,
    pub duplicates: u64,
    pub not_a_device: u64,
    pub rejected: u64,
}

pub struct Pipeline {
    codec: Codec,
    rules: ValidationRules,
    allowed_tenants: Option<HashSet<String>>,
    dedup: Dedup,
    pub stats: PipelineStats,
}

impl Pipeline {
    pub fn new(config: &PipelineConfig, codec: Codec) -> Self {
        Self {
            codec,
            rules: config.rules,
            allowed_tenants: config.allowed_tenants.clone(),
            dedup: Dedup::new(config.dedup_capacity, config.keep_days),
            stats: PipelineStats::default(),
        }
    }

    /// Processes one message payload received at `now_ms`.
    pub fn process(&mut self, payload: &[u8], now_ms: i64) -> Outcome {
        let outcome = self.process_inner(payload, now_ms);
        match &outcome {
            Outcome::New(_) => self.stats.new += 1,
            Outcome::Duplicate => self.stats.duplicates += 1,
            Outcome::NotADevice(_) => self.stats.not_a_device += 1,
            Outcome::Rejected(_) => self.stats.rejected += 1,
        }
        outcome
    }

    fn process_inner(&mut self, payload: &[u8], now_ms: i64) -> Outcome {
        let event = match self.codec.decode_report(payload) {
            Ok(e) => e,
            Err(e) => return Outcome::Rejected(e.into()),
        };
        if let Err(e) = self.rules.check(&event, now_ms) {
            return Outcome::Rejected(e.into());
        }
        if let Some(allowed) = &self.allowed_tenants {
            if !allowed.contains(event.tenant.as_ref()) {
                return Outcome::Rejected(Rejection::Invalid(Invalid::TenantNotAllowed {
                    tenant: event.tenant.into_owned(),
                }));
            }
        }
        let zone = event.zone.as_deref();
        let device_id = event.device_id.as_deref();
        let identified = identity::identify(
            event.macs.iter().map(|m| &**m),
            event.ips.iter().map(|i| &**i),
            zone,
            &event.sensor,
            device_id,
        );
        let device = match identified {
            Ok(Identified::Device(d)) => d,
            Ok(Identified::NotADevice(why)) => return Outcome::NotADevice(why),
            Err(e) => return Outcome::Rejected(e.into()),
        };
        let day = crate::day_of(event.observed_at);
        let site = crate::site_hash(&event.tenant, &event.site);
        match self.dedup.offer(site, day, device.key) {
            Seen::Duplicate => return Outcome::Duplicate,
            Seen::WriteThrough => self.stats.written_through += 1,
            Seen::New => {}
        }
        Outcome::New(Sighting {
            tenant: event.tenant.into_owned(),
            site: event.site.into_owned(),
            day,
            device_key: device.key,
            device_label: identity::label(device.basis, zone, &event.sensor, device_id),
            category: event.category,
            agent_managed: event.agent_managed,
            sensor: event.sensor.into_owned(),
            seen_at_ms: event.observed_at,
        })
    }

    /// Forgets which devices were written. Call after discarding rows unwritten.
    pub fn forget_written(&mut self) {
        self.dedup.clear();
    }

    /// (dedup entries, dedup bytes) for the memory gauges.
    pub fn memory(&self) -> (usize, usize) {
        (self.dedup.len(), self.dedup.memory_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DeviceCategory, Discovery};

    const NOW: i64 = 1_795_424_400_000;

    fn json(site: &str, mac: &str, sensor: &str) -> Vec<u8> {
        format!(r#"{{"tenant":"t","site":"{site}","sensor":"{sensor}","observed_at":{NOW},"macs":["{mac}"],"category":"OT"}}"#).into_bytes()
    }

    #[test]
    fn same_device_from_two_sensors_is_written_once() {
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        let first = p.process(&json("a", "00:11:22:33:44:55", "s1"), NOW);
        let Outcome::New(row) = first else {
            panic!("{first:?}")
        };
        assert_eq!(row.device_label, "mac:00:11:22:33:44:55");
        assert_eq!(row.category, DeviceCategory::Ot);
        assert_eq!(
            p.process(&json("a", "00-11-22-33-44-55", "s2"), NOW),
            Outcome::Duplicate
        );
        assert!(matches!(
            p.process(&json("b", "00-11-22-33-44-55", "s2"), NOW),
            Outcome::New(_)
        ));
    }

    #[test]
    fn rejections_carry_reasons() {
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        let r = |o: Outcome| match o {
            Outcome::Rejected(r) => r.reason(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            r(p.process(&json("a", "nonsense", "s1"), NOW)),
            "invalid_mac"
        );
        assert_eq!(r(p.process(b"{}", NOW)), "json_decode");
        assert_eq!(
            r(p.process(
                &json("a", "00:11:22:33:44:55", "s1"),
                NOW + 90 * crate::MS_PER_DAY
            )),
            "timestamp_too_old"
        );
        let no_id = br#"{"tenant":"t","site":"a","sensor":"s","observed_at":1795424400000}"#;
        assert_eq!(r(p.process(no_id, NOW)), "no_identifier");
        assert_eq!(p.stats.rejected, 4);
    }

    #[test]
    fn untrusted_names_and_foreign_tenants_are_rejected() {
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        let Outcome::Rejected(r) =
            p.process(&json("plant\\u001b[2J", "00:11:22:33:44:55", "s"), NOW)
        else {
            panic!("an ESC in a site name was accepted")
        };
        assert_eq!(r.reason(), "forbidden_character");
        assert!(r.to_string().contains("U+001B"), "{r}");
        let config = PipelineConfig {
            allowed_tenants: Some(["t".to_string()].into_iter().collect()),
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::new(&config, Codec::bundled());
        assert!(matches!(
            p.process(&json("a", "00:11:22:33:44:55", "s"), NOW),
            Outcome::New(_)
        ));
        let other = br#"{"tenant":"intruder","site":"a","sensor":"s","observed_at":1795424400000,"macs":["00:11:22:33:44:66"]}"#;
        let Outcome::Rejected(r) = p.process(other, NOW) else {
            panic!("another tenant's event was accepted")
        };
        assert_eq!(r.reason(), "tenant_not_allowed");
    }

    #[test]
    fn public_ip_only_is_not_a_device() {
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        let base = json("a", "00:11:22:33:44:55", "s");
        let e: Discovery = serde_json::from_slice(&base).unwrap();
        let e = Discovery {
            ips: vec!["8.8.4.4".into()],
            macs: vec![],
            ..e
        };
        let bytes = serde_json::to_vec(&e).unwrap();
        assert_eq!(
            p.process(&bytes, NOW),
            Outcome::NotADevice(NotADevice::PublicIp)
        );
    }

    #[test]
    fn forgetting_rewrites() {
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        assert!(matches!(
            p.process(&json("a", "00:11:22:33:44:55", "s1"), NOW),
            Outcome::New(_)
        ));
        p.forget_written();
        assert!(matches!(
            p.process(&json("a", "00:11:22:33:44:55", "s1"), NOW),
            Outcome::New(_)
        ));
    }
}
