//! The licence book of the demo, generated from the simulated world: each OT site holds
//! the licence the simulator gave it (the tier its final count needs, stacked XL above
//! 5,000, or for a growing site the tier it will outgrow), paid and in force; each tenant
//! with Enterprise IoT fleets holds enough E5 licences for its IoT devices with headroom.
//!
//! It is produced in the reconciler's licence-file format, written to
//! `--data-dir/licences.json` and loaded through the same validation as a customer's file,
//! so `sitetally reconcile --data-dir DIR --licences DIR/licences.json --once` reproduces
//! the demo's decisions.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sitetally_core::DeviceCategory;
use sitetally_licensing::licence::LicenceError;
use sitetally_licensing::{LicenceBook, Settings};
use sitetally_sensor_sim::{SiteKind, World};

/// Licences start this many days before the run, so they are in force (a purchase takes
/// effect one hour after confirmation) and far from their one-year end.
pub const LICENCE_AGE_DAYS: i64 = 30;

/// Enterprise IoT: E5 licences cover this share more devices than the fleet has.
const EIOT_HEADROOM: f64 = 1.25;

/// The licence file (reconciler JSON format) for `world` as of `now`.
pub fn licence_file(world: &World, now: DateTime<Utc>) -> Value {
    let start = (now - Duration::days(LICENCE_AGE_DAYS))
        .format("%Y-%m-%d")
        .to_string();
    // Tenants in order of first appearance, for a stable file.
    let mut tenants: Vec<&str> = Vec::new();
    for s in &world.sites {
        if !tenants.contains(&s.tenant.as_str()) {
            tenants.push(&s.tenant);
        }
    }
    let tenants: Vec<Value> = tenants
        .into_iter()
        .map(|tenant| {
            let sites: Vec<&sitetally_sensor_sim::world::Site> =
                world.sites.iter().filter(|s| s.tenant == tenant).collect();
            let ot: Vec<Value> = sites
                .iter()
                .filter_map(|s| {
                    let l = s.licence.as_ref()?;
                    Some(json!({
                        "id": s.name,
                        "licences": [{
                            "id": format!("DEMO-{}", s.name),
                            "tier": l.tier,
                            "quantity": l.count,
                            "kind": "paid",
                            "start": start,
                        }],
                    }))
                })
                .collect();
            let mut t = json!({ "id": tenant, "sites": ot });
            if sites.iter().any(|s| s.kind == SiteKind::EnterpriseIot) {
                let iot = sites
                    .iter()
                    .flat_map(|s| &world.devices[s.devices.clone()])
                    .filter(|d| d.category == DeviceCategory::Iot)
                    .count();
                let e5 = (iot as f64 * EIOT_HEADROOM / 5.0).ceil() as u64;
                t["enterprise_iot"] = json!({ "e5_licences": e5, "standalone_licences": 0 });
            }
            t
        })
        .collect();
    json!({ "tenants": tenants })
}

/// The validated licence book of [`licence_file`].
pub fn licence_book(
    world: &World,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<LicenceBook, LicenceError> {
    LicenceBook::from_json_str(&licence_file(world, now).to_string(), settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetally_licensing::Tier;
    use sitetally_sensor_sim::{SimConfig, SizeProfile};

    fn world() -> World {
        let mut c = SimConfig::new(7, 12);
        c.sizes = SizeProfile::Realistic { min: 5, max: 6_000 };
        c.days = 3;
        c.grow_sites = 2;
        World::new(c).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_ot_site_holds_its_simulated_licence_in_force() {
        let w = world();
        let book = licence_book(&w, now(), &Settings::default()).unwrap();
        let delay = Settings::default().effective_delay();
        let mut ot_sites = 0;
        for s in &w.sites {
            let tenant = book.tenant(&s.tenant).expect("every tenant is in the book");
            match (&s.licence, tenant.site(&s.name)) {
                (Some(l), Some(site)) => {
                    ot_sites += 1;
                    assert_eq!(site.licences.len(), 1);
                    let held = &site.licences[0];
                    assert_eq!(held.tier, l.tier.parse::<Tier>().unwrap());
                    assert_eq!(held.quantity, l.count);
                    assert!(held.is_effective(now(), delay), "{held:?}");
                    assert!(!held.is_trial());
                }
                (None, None) => assert_eq!(s.kind, SiteKind::EnterpriseIot),
                other => panic!("{}: {other:?}", s.name),
            }
        }
        assert!(ot_sites > 0);
        let tenants: std::collections::BTreeSet<&str> =
            w.sites.iter().map(|s| s.tenant.as_str()).collect();
        assert_eq!(book.tenants.len(), tenants.len());
    }

    #[test]
    fn grown_sites_keep_the_tier_they_outgrow_and_stacked_xl_above_5000() {
        let w = world();
        let book = licence_book(&w, now(), &Settings::default()).unwrap();
        let grown = w.grown_sites();
        assert_eq!(grown.len(), 2);
        for g in &grown {
            let held = &book
                .tenant(&g.tenant)
                .unwrap()
                .site(&g.site)
                .unwrap()
                .licences[0];
            assert_eq!(held.tier.as_str(), g.licence.tier);
            assert!(g.final_devices > g.licence.capacity);
        }
        let big = w.sites.iter().find(|s| s.devices.len() == 6_000).unwrap();
        let held = &book
            .tenant(&big.tenant)
            .unwrap()
            .site(&big.name)
            .unwrap()
            .licences[0];
        assert_eq!((held.tier, held.quantity), (Tier::Xl, 2));
    }

    #[test]
    fn tenants_with_iot_fleets_get_e5_cover_with_headroom() {
        let w = world();
        let book = licence_book(&w, now(), &Settings::default()).unwrap();
        for t in &book.tenants {
            let fleets = w
                .sites
                .iter()
                .any(|s| s.tenant == t.id && s.kind == SiteKind::EnterpriseIot);
            assert_eq!(t.enterprise_iot.is_some(), fleets, "{}", t.id);
            if let Some(e) = &t.enterprise_iot {
                let iot = w
                    .devices
                    .iter()
                    .filter(|d| {
                        w.sites[d.site as usize].tenant == t.id && d.category == DeviceCategory::Iot
                    })
                    .count() as u64;
                assert!(
                    e.e5_licences * 5 >= iot,
                    "{}: {} E5 for {iot}",
                    t.id,
                    e.e5_licences
                );
            }
        }
    }

    #[test]
    fn the_file_is_stable_for_a_seed() {
        assert_eq!(licence_file(&world(), now()), licence_file(&world(), now()));
        let f = licence_file(&world(), now());
        assert_eq!(
            f["tenants"][0]["sites"][0]["licences"][0]["start"],
            "2026-01-30"
        );
    }
}
