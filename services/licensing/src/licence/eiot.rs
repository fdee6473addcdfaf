//! A tenant's Enterprise IoT coverage: E5 and standalone licences, a trial, and a
//! legacy committed-device plan.

use super::Commitment;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// An Enterprise IoT trial: 30 days unlimited or 90 days for 100 devices, per the
/// documents, so both are fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EiotTrial {
    pub start: DateTime<Utc>,
    pub days: u32,
    /// None = unlimited devices.
    pub device_limit: Option<u64>,
}

impl EiotTrial {
    pub fn end(&self) -> DateTime<Utc> {
        crate::time::plus_days(self.start, self.days)
    }
}

/// A tenant's Enterprise IoT coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct EnterpriseIot {
    /// Microsoft 365 E5 / E5 Security licences (5 devices each by default).
    pub e5_licences: u64,
    /// Standalone per-device licences.
    pub standalone_licences: u64,
    pub trial: Option<EiotTrial>,
    /// Legacy plan billed by committed devices (network + IoT, rounded up to 100).
    pub legacy_commitments: Vec<Commitment>,
}
