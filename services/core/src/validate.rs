//! Field validation of decoded events: required fields, sane lengths, sane timestamps.

use crate::event::Report;

/// Validation limits, part of the ingest config.
#[derive(Debug, Clone, Copy)]
pub struct ValidationRules {
    /// Reports further in the future than this are rejected (sensor clock skew).
    pub max_future_ms: i64,
    /// Reports older than this are rejected (replayed or mis-stamped data).
    pub max_age_ms: i64,
    /// Longest tenant/site/sensor/zone/device id accepted.
    pub max_name_len: usize,
    /// Most MACs or IPs accepted in one report.
    pub max_identifiers: usize,
}

impl Default for ValidationRules {
    fn default() -> Self {
        Self {
            max_future_ms: 5 * 60 * 1000,
            max_age_ms: 60 * crate::MS_PER_DAY,
            max_name_len: 256,
            max_identifiers: 64,
        }
    }
}

/// Why a decoded event is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("required field `{0}` is empty")]
    MissingField(&'static str),
    #[error("field `{field}` is {len} characters long (limit {limit})")]
    TooLong {
        field: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("`{field}` has {count} entries (limit {limit})")]
    TooManyIdentifiers {
        field: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("field `{field}` holds the forbidden character U+{code_point:04X} (control, bidi or invisible; see sitetally_core::text)")]
    ForbiddenCharacter {
        field: &'static str,
        code_point: u32,
    },
    #[error("tenant {tenant:?} may not publish on this topic (kafka.tenants)")]
    TenantNotAllowed { tenant: String },
    #[error("observed_at is {ahead_ms} ms in the future (limit {limit_ms} ms)")]
    InFuture { ahead_ms: i64, limit_ms: i64 },
    #[error("observed_at is {age_ms} ms old (limit {limit_ms} ms)")]
    TooOld { age_ms: i64, limit_ms: i64 },
}

impl Invalid {
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::MissingField(_) => "missing_field",
            Invalid::TooLong { .. } => "field_too_long",
            Invalid::TooManyIdentifiers { .. } => "too_many_identifiers",
            Invalid::ForbiddenCharacter { .. } => "forbidden_character",
            Invalid::TenantNotAllowed { .. } => "tenant_not_allowed",
            Invalid::InFuture { .. } => "timestamp_in_future",
            Invalid::TooOld { .. } => "timestamp_too_old",
        }
    }
}

impl ValidationRules {
    pub fn check(&self, e: &Report<'_>, now_ms: i64) -> Result<(), Invalid> {
        for (field, value) in [
            ("tenant", &e.tenant),
            ("site", &e.site),
            ("sensor", &e.sensor),
        ] {
            if value.trim().is_empty() {
                return Err(Invalid::MissingField(field));
            }
            self.check_len(field, value)?;
        }
        for (field, value) in [("zone", &e.zone), ("device_id", &e.device_id)] {
            if let Some(v) = value {
                self.check_len(field, v)?;
            }
        }
        for (field, list) in [("macs", &e.macs), ("ips", &e.ips)] {
            if list.len() > self.max_identifiers {
                return Err(Invalid::TooManyIdentifiers {
                    field,
                    count: list.len(),
                    limit: self.max_identifiers,
                });
            }
        }
        let ahead = e.observed_at.saturating_sub(now_ms);
        if ahead > self.max_future_ms {
            return Err(Invalid::InFuture {
                ahead_ms: ahead,
                limit_ms: self.max_future_ms,
            });
        }
        let age = now_ms.saturating_sub(e.observed_at);
        if age > self.max_age_ms {
            return Err(Invalid::TooOld {
                age_ms: age,
                limit_ms: self.max_age_ms,
            });
        }
        Ok(())
    }

    /// Length and character set of a name (see [`crate::text`]).
    fn check_len(&self, field: &'static str, v: &str) -> Result<(), Invalid> {
        if v.len() > self.max_name_len {
            return Err(Invalid::TooLong {
                field,
                len: v.len(),
                limit: self.max_name_len,
            });
        }
        if let Some(c) = crate::text::first_forbidden(v) {
            return Err(Invalid::ForbiddenCharacter {
                field,
                code_point: u32::from(c),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DeviceCategory;

    fn ev(tenant: &str, at: i64) -> Report<'_> {
        Report {
            tenant: tenant.into(),
            site: "s".into(),
            sensor: "x".into(),
            observed_at: at,
            zone: None,
            device_id: None,
            macs: Default::default(),
            ips: Default::default(),
            category: DeviceCategory::Unknown,
            agent_managed: false,
        }
    }

    #[test]
    fn timestamps_and_fields() {
        let r = ValidationRules::default();
        let now = 1_000_000_000_000;
        assert_eq!(r.check(&ev("t", now), now), Ok(()));
        assert_eq!(r.check(&ev("t", now + 4 * 60_000), now), Ok(()));
        assert_eq!(
            r.check(&ev("t", now + 6 * 60_000), now)
                .unwrap_err()
                .reason(),
            "timestamp_in_future"
        );
        assert_eq!(
            r.check(&ev("t", now - 61 * crate::MS_PER_DAY), now)
                .unwrap_err()
                .reason(),
            "timestamp_too_old"
        );
        assert_eq!(
            r.check(&ev(" ", now), now),
            Err(Invalid::MissingField("tenant"))
        );
        for (tenant, field) in [("acme\u{1b}[2J", "tenant"), ("a\u{202e}b", "tenant")] {
            assert_eq!(
                r.check(&ev(tenant, now), now).unwrap_err().reason(),
                "forbidden_character",
                "{field}"
            );
        }
        let mut e = ev("t", now);
        e.site = "plant\nnorth".into();
        assert_eq!(
            r.check(&e, now),
            Err(Invalid::ForbiddenCharacter {
                field: "site",
                code_point: 0x0a
            })
        );
        let mut e = ev("t", now);
        e.device_id = Some("plc\u{200b}7".into());
        assert_eq!(
            r.check(&e, now).unwrap_err().reason(),
            "forbidden_character"
        );
        let long = "x".repeat(300);
        assert_eq!(
            r.check(&ev(&long, now), now).unwrap_err().reason(),
            "field_too_long"
        );
    }
}
