//! Reconciler settings: billing windows, thresholds, and one setting for each point on
//! which the licensing documents contradict each other, each with a documented default.

use crate::count::MAX_DEVICES;
use crate::tier::AboveXlPolicy;
use serde::{Deserialize, Serialize};
use sitetally_core::DeviceCategory;

/// How the Enterprise IoT gap (devices not covered by E5 and standalone licences) is
/// rounded. One document says "round your total to a multiple of 100", its own worked
/// example then needs exactly 4 standalone licences for 1,204 devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EiotGapRounding {
    /// Default: the exact gap (1,204 devices, 240 E5 → 4 standalone licences), as in the
    /// documents' worked example.
    #[default]
    Exact,
    /// Round the IoT device total up to a multiple of 100 before comparing
    /// (1,204 → 1,300 → 100 standalone licences).
    RoundUpTo100,
}

/// How a legacy Enterprise IoT plan's device total is compared with its commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyEiotRounding {
    /// Default: network + IoT devices rounded up to a multiple of 100
    /// (473 + 1,206 = 1,679 → 1,700), as the legacy plan documents say.
    #[default]
    RoundUpTo100,
    /// The exact total.
    Exact,
}

/// Everything the decisions depend on besides licences and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// OT billing window in days (default 60: OT devices inactive for longer are not
    /// devices).
    pub ot_window_days: u32,
    /// Enterprise IoT billing window in days (default 30).
    pub eiot_window_days: u32,
    /// Utilisation (count / licensed capacity) at or above which a site is "near limit"
    /// (default 0.90).
    pub near_limit_ratio: f64,
    /// Half-width of an estimate's error band in sigmas (default 3). When the band
    /// straddles a decision boundary the exact count is fetched.
    pub error_band_sigmas: f64,
    /// Hysteresis: to return to a lower status, the count must fall below the boundary by
    /// this fraction of the licensed capacity (default 0.02 = 2%).
    pub hysteresis_ratio: f64,
    /// Sites above the XL size: stacked XL (default) or 2XL/3XL from the catalogue.
    pub above_xl: AboveXlPolicy,
    /// Count endpoints already managed by an endpoint agent as devices (default true:
    /// the documents disagree; counting them never under-licenses a site).
    pub count_agent_managed: bool,
    /// Device categories counted for OT site licences (default: all; an OT sensor bills
    /// every device it sees at the site).
    pub ot_categories: Vec<DeviceCategory>,
    /// Device categories counted as Enterprise IoT devices against E5/standalone
    /// licences (default: IOT; Computers & Mobile are never billable for IoT).
    pub eiot_categories: Vec<DeviceCategory>,
    /// Categories counted for legacy Enterprise IoT plans (default: NETWORK + IOT).
    pub legacy_eiot_categories: Vec<DeviceCategory>,
    /// Rounding of the Enterprise IoT standalone gap (default exact).
    pub eiot_gap_rounding: EiotGapRounding,
    /// Rounding of legacy Enterprise IoT totals (default up to a multiple of 100).
    pub legacy_eiot_rounding: LegacyEiotRounding,
    /// Devices an OT trial covers (default 1,000: a Large site). Not enforced: only
    /// informational until the trial ends.
    pub trial_allowance: u64,
    /// Final days of a trial in which it can be extended (default 15).
    pub trial_ending_days: u32,
    /// Days of grace after the tenant's last licence expires (default 30).
    pub grace_days: u32,
    /// Days data is retained after the service stops (default 90).
    pub retention_days: u32,
    /// Final days of retention reported as "retention ending" (default 15).
    pub retention_warning_days: u32,
    /// Minutes between a confirmation and its effect (default 60).
    pub effective_delay_minutes: u32,
    /// Devices covered by one Microsoft 365 E5 / E5 Security licence (default 5).
    pub devices_per_e5: u64,
    /// Days before each date of the licence calendar (renewal, end of a term or trial,
    /// trial extension window, service stop, retention end) that the reconciler raises
    /// one `DATE_AHEAD` alert for it (default 14; 0: none).
    pub calendar_alert_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ot_window_days: 60,
            eiot_window_days: 30,
            near_limit_ratio: 0.90,
            error_band_sigmas: 3.0,
            hysteresis_ratio: 0.02,
            above_xl: AboveXlPolicy::StackedXl,
            count_agent_managed: true,
            ot_categories: DeviceCategory::ALL.to_vec(),
            eiot_categories: vec![DeviceCategory::Iot],
            legacy_eiot_categories: vec![DeviceCategory::Network, DeviceCategory::Iot],
            eiot_gap_rounding: EiotGapRounding::Exact,
            legacy_eiot_rounding: LegacyEiotRounding::RoundUpTo100,
            trial_allowance: 1_000,
            trial_ending_days: 15,
            grace_days: 30,
            retention_days: 90,
            retention_warning_days: 15,
            effective_delay_minutes: 60,
            devices_per_e5: 5,
            calendar_alert_days: 14,
        }
    }
}

/// The largest day count a setting may hold (a century).
pub const MAX_DAYS: u32 = 36_500;

/// A setting with an impossible value; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("settings.{field}: {reason}")]
pub struct SettingsError {
    pub field: &'static str,
    pub reason: String,
}

impl Settings {
    /// Parses a TOML settings document (every key optional) and validates it.
    pub fn from_toml_str(s: &str) -> Result<Self, SettingsError> {
        let settings: Settings = toml::from_str(s).map_err(|e| SettingsError {
            field: "toml",
            reason: crate::licence::toml_error(&e),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let err = |field, reason: &str| {
            Err(SettingsError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.ot_window_days == 0 {
            return err("ot_window_days", "must be at least 1");
        }
        if self.eiot_window_days == 0 {
            return err("eiot_window_days", "must be at least 1");
        }
        if !(self.near_limit_ratio > 0.0 && self.near_limit_ratio <= 1.0) {
            return err("near_limit_ratio", "must be in (0, 1]");
        }
        if !(self.error_band_sigmas >= 0.0 && self.error_band_sigmas.is_finite()) {
            return err("error_band_sigmas", "must be a non-negative number");
        }
        if !(0.0..0.5).contains(&self.hysteresis_ratio) {
            return err("hysteresis_ratio", "must be in [0, 0.5)");
        }
        if self.ot_categories.is_empty() {
            return err("ot_categories", "must name at least one category");
        }
        if self
            .eiot_categories
            .contains(&DeviceCategory::ComputersMobile)
            || self
                .legacy_eiot_categories
                .contains(&DeviceCategory::ComputersMobile)
        {
            return err(
                "eiot_categories",
                "COMPUTERS_MOBILE is never billable for Enterprise IoT",
            );
        }
        if self.devices_per_e5 == 0 {
            return err("devices_per_e5", "must be at least 1");
        }
        // Day counts stay within a century, so no date computed from them can leave the
        // representable range.
        for (field, days) in [
            ("ot_window_days", self.ot_window_days),
            ("eiot_window_days", self.eiot_window_days),
            ("trial_ending_days", self.trial_ending_days),
            ("grace_days", self.grace_days),
            ("retention_days", self.retention_days),
            ("calendar_alert_days", self.calendar_alert_days),
        ] {
            if days > MAX_DAYS {
                return err(field, &format!("must be at most {MAX_DAYS} days"));
            }
        }
        if self.effective_delay_minutes > MAX_DAYS * 24 * 60 {
            return err(
                "effective_delay_minutes",
                &format!("must be at most {} minutes", MAX_DAYS * 24 * 60),
            );
        }
        if self.devices_per_e5 > MAX_DEVICES {
            return err("devices_per_e5", &format!("must be at most {MAX_DEVICES}"));
        }
        if self.retention_warning_days > self.retention_days {
            return err("retention_warning_days", "must not exceed retention_days");
        }
        Ok(())
    }

    /// The delay between a confirmation and its effect.
    pub fn effective_delay(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.effective_delay_minutes))
    }

    /// When the service stops after the tenant's last licence ended at `last_end`: at the
    /// end of the grace period (`grace_days`). Decisions and the calendar both use it.
    pub fn service_stop(
        &self,
        last_end: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        crate::time::plus_days(last_end, self.grace_days)
    }

    /// When the data of a service stopped at `stop` is deleted (`retention_days` later).
    pub fn retention_end(
        &self,
        stop: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        crate::time::plus_days(stop, self.retention_days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let s = Settings::default();
        assert_eq!(s.ot_window_days, 60);
        assert_eq!(s.eiot_window_days, 30);
        assert_eq!(s.near_limit_ratio, 0.90);
        assert_eq!(s.error_band_sigmas, 3.0);
        assert_eq!(s.above_xl, AboveXlPolicy::StackedXl);
        assert!(s.count_agent_managed);
        assert_eq!(s.eiot_gap_rounding, EiotGapRounding::Exact);
        assert_eq!(s.legacy_eiot_rounding, LegacyEiotRounding::RoundUpTo100);
        assert_eq!(s.effective_delay(), chrono::Duration::hours(1));
        s.validate().unwrap();
    }

    #[test]
    fn toml_overrides_and_names_bad_field() {
        let s = Settings::from_toml_str("above_xl = \"larger_tiers\"\nnear_limit_ratio = 0.8\n")
            .unwrap();
        assert_eq!(s.above_xl, AboveXlPolicy::LargerTiers);
        assert_eq!(s.near_limit_ratio, 0.8);
        let e = Settings::from_toml_str("near_limit_ratio = 1.5").unwrap_err();
        assert_eq!(
            e.to_string(),
            "settings.near_limit_ratio: must be in (0, 1]"
        );
        let e = Settings::from_toml_str("eiot_categories = [\"COMPUTERS_MOBILE\"]").unwrap_err();
        assert_eq!(e.field, "eiot_categories");
        assert!(Settings::from_toml_str("nope = 1").is_err());
        let r = Settings::from_toml_str(
            "eiot_gap_rounding = \"round_up_to100\"\nlegacy_eiot_rounding = \"exact\"",
        )
        .unwrap();
        assert_eq!(r.eiot_gap_rounding, EiotGapRounding::RoundUpTo100);
        assert_eq!(r.legacy_eiot_rounding, LegacyEiotRounding::Exact);
    }
}
