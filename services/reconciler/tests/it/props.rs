//! Property tests: the required tier is monotone in the count; decisions never rest on
//! an estimate whose band straddles a boundary.

use crate::common::t;
use proptest::prelude::*;
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::StaticCounts;
use sitetally_licensing::decision::{decide_site, SiteContext, Status};
use sitetally_licensing::engine::decide_all;
use sitetally_licensing::tier::{AboveXlPolicy, CatalogueOverride};
use sitetally_reconciler::{
    CategoryCount, Count, LicenceBook, Settings, Tier, TierCatalogue, TierNeed,
};
use std::collections::HashMap;

fn catalogue(x2: Option<u64>, x3: Option<u64>) -> TierCatalogue {
    let mut o = CatalogueOverride::default();
    if let Some(a) = x2 {
        o.sizes.insert("2XL".into(), 5_000 + a);
        if let Some(b) = x3 {
            o.sizes.insert("3XL".into(), 5_000 + a + b);
        }
    }
    TierCatalogue::default().with_override(&o).unwrap()
}

fn policy() -> impl Strategy<Value = AboveXlPolicy> {
    prop_oneof![
        Just(AboveXlPolicy::StackedXl),
        Just(AboveXlPolicy::LargerTiers)
    ]
}

proptest! {
    #[test]
    fn required_tier_is_monotone_and_covers(
        a in 0u64..40_000, b in 0u64..40_000,
        x2 in proptest::option::of(1u64..20_000), x3 in proptest::option::of(1u64..20_000),
        p in policy(),
    ) {
        let cat = catalogue(x2, x3);
        let (lo, hi) = (a.min(b), a.max(b));
        let (rl, rh) = (cat.required(lo, p), cat.required(hi, p));
        prop_assert!(cat.capacity(rl) <= cat.capacity(rh), "{lo}→{rl} {hi}→{rh}");
        prop_assert!(cat.capacity(rl) >= lo);
        prop_assert!(cat.capacity(rh) >= hi);
        if rl.quantity == 1 && rh.quantity == 1 {
            prop_assert!(rl.tier <= rh.tier);
        }
        // Smallest covering: no smaller single tier would do.
        if rh.quantity == 1 {
            for (tier, size) in cat.tiers() {
                if tier < rh.tier && (tier <= Tier::Xl || p == AboveXlPolicy::LargerTiers) {
                    prop_assert!(size < hi, "{tier} ({size}) would cover {hi}");
                }
            }
        }
        // Never several licences of a non-XL tier.
        prop_assert!(rh.quantity == 1 || rh.tier == Tier::Xl);
    }

    #[test]
    fn decisions_never_rest_on_a_straddling_estimate(
        tier_i in 0usize..5,
        qty in 1u32..3,
        estimate in 0u64..12_000,
        sigma in 0.0f64..200.0,
        offset in -1.0f64..1.0,
        prev_i in 0usize..4,
    ) {
        let tier = [Tier::Xs, Tier::S, Tier::M, Tier::L, Tier::Xl][tier_i];
        let qty = if tier == Tier::Xl { qty } else { 1 };
        let settings = Settings::default();
        let book = LicenceBook::from_toml_str(&format!(
            "[[tenants]]\nid = \"a\"\n[[tenants.sites]]\nid = \"s\"\n[[tenants.sites.licences]]\ntier = \"{tier}\"\nquantity = {qty}\nkind = \"paid\"\nstart = \"2025-01-01\"\n"
        ), &settings).unwrap();
        let est = Count::estimated(estimate, sigma);
        let (lo, hi) = est.band(settings.error_band_sigmas);
        // The truth is somewhere in the band.
        let truth = ((lo + hi) as f64 / 2.0 + offset * (hi - lo) as f64 / 2.0).round().clamp(lo as f64, hi as f64) as u64;
        let mut exact = HashMap::new();
        exact.insert(("a".to_string(), "s".to_string()), truth);
        let src = StaticCounts {
            counts: vec![CategoryCount { tenant: "a".into(), site: "s".into(), category: DeviceCategory::Ot, count: est }],
            exact,
        };
        let prev = [None, Some(Status::WithinTier), Some(Status::NearLimit),
            Some(Status::OverTier { tier_to_buy: TierNeed::one(Tier::Xl) })][prev_i].clone();
        let mut previous = HashMap::new();
        if let Some(p) = &prev {
            previous.insert("a\u{1f}ot\u{1f}s".to_string(), p.clone());
        }
        let now = t("2025-06-01T00:00:00Z");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ds = rt.block_on(decide_all(&book, &settings, &src, &previous, now)).unwrap();
        let d = &ds[0];
        let tenant = &book.tenants[0];
        let ctx = SiteContext { tenant: Some(tenant), site_id: "s", site: tenant.sites.first(), catalogue: &tenant.catalogue, settings: &settings, now };
        if d.count.is_exact() {
            prop_assert_eq!(d.count.value, truth);
            prop_assert!(d.exact_fetched);
            prop_assert_eq!(&d.outcome, &decide_site(&ctx, truth, prev.as_ref()));
        } else {
            // Resting on the estimate: every value in its band decides the same way.
            let at_est = decide_site(&ctx, estimate, prev.as_ref());
            for v in [lo, truth, hi, (lo + hi) / 2] {
                prop_assert!(decide_site(&ctx, v, prev.as_ref()).same_decision(&at_est), "v={v} band={lo}..{hi}");
            }
        }
    }
}
