//! A small, fixed sample world: licences, tokens and sightings relative to a chosen
//! "now". Used by the tests, by the API's `examples/seed.rs` (which the schemathesis and
//! browser scripts run) and as a worked example of the licence format.
//!
//! - contoso/plant-north: M licence (500), 450 OT devices today, +5 a day for 30 days:
//!   NEAR_LIMIT, and the trend passes 500 on day 11;
//! - contoso/refinery: XS licence (100), 120 OT + 30 IoT + 5 Computers & Mobile devices
//!   every day for 10 days: OVER_TIER (buy S);
//! - contoso/lab: no licence, 10 OT devices today: UNLICENSED;
//! - contoso Enterprise IoT: 2 E5 (10 devices) + 1 standalone against 30 IoT devices;
//! - fabrikam/warehouse: S licence (250), 50 OT devices on 5 days: WITHIN_TIER.

use chrono::{DateTime, Duration, Utc};
use sitetally_core::{DeviceCategory, Sighting};
use sitetally_store::{Store, StoreError};

/// Licence file of the sample world (reconciler format).
pub const LICENCES_TOML: &str = r#"
[[tenants]]
id = "contoso"
  [[tenants.sites]]
  id = "plant-north"
    [[tenants.sites.licences]]
    tier = "M"
    kind = "paid"
    start = "2020-01-01"
    end = "2100-01-01"
  [[tenants.sites]]
  id = "refinery"
    [[tenants.sites.licences]]
    tier = "XS"
    kind = "paid"
    start = "2020-01-01"
    end = "2100-01-01"
  [tenants.enterprise_iot]
  e5_licences = 2
  standalone_licences = 1

[[tenants]]
id = "fabrikam"
  [[tenants.sites]]
  id = "warehouse"
    [[tenants.sites.licences]]
    tier = "S"
    kind = "paid"
    start = "2020-01-01"
    end = "2100-01-01"
"#;

pub const ADMIN_TOKEN: &str = "sample-admin-token-0123456789";
pub const CONTOSO_TOKEN: &str = "sample-contoso-token-0123456789";
pub const FABRIKAM_TOKEN: &str = "sample-fabrikam-token-0123456789";

/// Token file of the sample world (`sitetally serve --tokens`).
pub fn tokens_toml() -> String {
    format!(
        "admin_tokens = [\"{ADMIN_TOKEN}\"]\n[tenant_tokens]\ncontoso = [\"{CONTOSO_TOKEN}\"]\nfabrikam = [\"{FABRIKAM_TOKEN}\"]\n"
    )
}

/// Devices plant-north sees on day `d` (0 = today, negative = past).
pub fn plant_north_devices(d: i64) -> u64 {
    (450 + 5 * d) as u64
}

fn key(site: u64, k: u64) -> u64 {
    // splitmix64: distinct, well-spread keys without another dependency.
    let mut z = (site << 32 | k).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sample world's sightings, with "today" the day of `now`.
pub fn sightings(now: DateTime<Utc>) -> Vec<Sighting> {
    let mut out = Vec::new();
    let mut push =
        |tenant: &str, site: &str, site_no: u64, d: i64, k: u64, category: DeviceCategory| {
            let t = now + Duration::days(d);
            out.push(Sighting {
                tenant: tenant.into(),
                site: site.into(),
                day: sitetally_core::day_of(t.timestamp_millis()),
                device_key: key(site_no, k),
                device_label: format!("sample:{site}/{k}"),
                category,
                agent_managed: false,
                sensor: format!("{site}-sensor"),
                seen_at_ms: t.timestamp_millis(),
            });
        };
    for d in -29..=0 {
        for k in 0..plant_north_devices(d) {
            push("contoso", "plant-north", 1, d, k, DeviceCategory::Ot);
        }
    }
    for d in -9..=0 {
        for k in 0..155 {
            let cat = match k {
                0..120 => DeviceCategory::Ot,
                120..150 => DeviceCategory::Iot,
                _ => DeviceCategory::ComputersMobile,
            };
            push("contoso", "refinery", 2, d, k, cat);
        }
    }
    for k in 0..10 {
        push("contoso", "lab", 3, 0, k, DeviceCategory::Ot);
    }
    for d in -4..=0 {
        for k in 0..50 {
            push("fabrikam", "warehouse", 4, d, k, DeviceCategory::Ot);
        }
    }
    out
}

/// Migrates `store` and writes the sample sightings; returns the number of rows.
pub async fn seed(store: &dyn Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
    store.migrate().await?;
    let rows = sightings(now);
    for chunk in rows.chunks(5_000) {
        store.write_sightings(chunk).await?;
    }
    Ok(rows.len())
}

/// [`seed`] relative to the current time.
pub async fn seed_now(store: &dyn Store) -> Result<usize, StoreError> {
    seed(store, Utc::now()).await
}
