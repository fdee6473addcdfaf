//! The embedded store against the same expectations as `clickhouse_it.rs`, plus what only
//! the embedded store promises: reopening a data directory keeps the data, and sketches
//! are exact for small sites and within their error bound for large ones. Each test uses
//! its own temporary directory; no server is needed.

use sitetally_core::{DeviceCategory, Sighting};
use sitetally_store::embedded::{EmbeddedStore, DB_FILE};
use sitetally_store::{CountFilter, DayRange, Store};
use std::path::Path;

async fn store(dir: &Path) -> EmbeddedStore {
    let s = EmbeddedStore::open(dir).unwrap();
    s.migrate().await.unwrap();
    s
}

fn row(site: &str, day: u16, key: u64, category: DeviceCategory) -> Sighting {
    Sighting {
        tenant: "acme".into(),
        site: site.into(),
        day,
        device_key: key,
        device_label: format!("mac:{key}"),
        category,
        agent_managed: key.is_multiple_of(10),
        sensor: "s1".into(),
        seen_at_ms: day as i64 * 86_400_000,
    }
}

/// Device keys as ingest makes them: well-mixed 64-bit hashes (the sketches rely on it).
fn hashed(i: u64) -> u64 {
    // splitmix64's finalizer: a bijection, so distinct inputs stay distinct.
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const DAY: u16 = 20_000;

fn mixed_batch() -> Vec<Sighting> {
    (0..500u64)
        .map(|k| {
            let category = if k.is_multiple_of(3) {
                DeviceCategory::Iot
            } else {
                DeviceCategory::Ot
            };
            row("plant", DAY + (k % 2) as u16, k * 7919, category)
        })
        .collect()
}

#[tokio::test]
async fn migrations_are_idempotent_and_counts_survive_retries() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let first = s.migrate().await.unwrap();
    assert_eq!(first, vec!["001_sightings", "002_site_devices_daily"]);
    assert!(
        s.migrate().await.unwrap().is_empty(),
        "second run applies nothing"
    );
    s.ping().await.unwrap();

    let batch = mixed_batch();
    // The same batch three times: a retried insert and a redelivery.
    for _ in 0..3 {
        s.write_sightings(&batch).await.unwrap();
    }
    let days = DayRange {
        from: DAY,
        to: DAY + 1,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].count, 500);
    assert!(counts[0].exact);
    assert_eq!(counts[0].sigma, 0.0);
    assert_eq!(
        s.exact_site_count("acme", "plant", days, &CountFilter::all())
            .await
            .unwrap(),
        500
    );

    let iot = CountFilter {
        categories: vec![DeviceCategory::Iot],
        include_agent_managed: true,
    };
    assert_eq!(
        s.exact_site_count("acme", "plant", days, &iot)
            .await
            .unwrap(),
        167
    );
    let no_agents = CountFilter {
        categories: vec![],
        include_agent_managed: false,
    };
    assert_eq!(
        s.exact_site_count("acme", "plant", days, &no_agents)
            .await
            .unwrap(),
        450
    );
    // The sketch path applies the same filters.
    assert_eq!(s.site_counts(None, days, &iot).await.unwrap()[0].count, 167);
    assert_eq!(
        s.site_counts(None, days, &no_agents).await.unwrap()[0].count,
        450
    );
    let iot_no_agents = CountFilter {
        categories: vec![DeviceCategory::Iot],
        include_agent_managed: false,
    };
    let exact = s
        .exact_site_count("acme", "plant", days, &iot_no_agents)
        .await
        .unwrap();
    assert_eq!(
        s.site_counts(None, days, &iot_no_agents).await.unwrap()[0].count,
        exact
    );

    let one_day = s
        .site_counts(None, DayRange { from: DAY, to: DAY }, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(one_day[0].count, 250);
    let outside = s
        .site_counts(
            None,
            DayRange {
                from: DAY + 2,
                to: DAY + 9,
            },
            &CountFilter::all(),
        )
        .await
        .unwrap();
    assert!(outside.is_empty());

    let daily = s
        .daily_counts("acme", "plant", days, &CountFilter::all())
        .await
        .unwrap();
    let total: u64 = daily.iter().map(|d| d.count).sum();
    assert_eq!(total, 500, "{daily:?}");
    assert!(daily.iter().all(|d| d.day == DAY || d.day == DAY + 1));
    let filtered = s
        .daily_counts("acme", "plant", days, &iot_no_agents)
        .await
        .unwrap();
    assert_eq!(
        filtered.iter().map(|d| d.count).sum::<u64>(),
        exact,
        "per-day counts honour the filter: {filtered:?}"
    );
    assert!(filtered.iter().all(|d| d.category == DeviceCategory::Iot));
    assert_eq!(daily.len(), 4, "two days × two categories: {daily:?}");
    assert!(daily
        .windows(2)
        .all(|w| (w[0].day, w[0].category.code()) < (w[1].day, w[1].category.code())));
    let iot_day0 = daily
        .iter()
        .find(|d| d.day == DAY && d.category == DeviceCategory::Iot)
        .unwrap();
    // k even and k % 3 == 0: k ≡ 0 (mod 6) in 0..500.
    assert_eq!(iot_day0.count, 84);
    assert!(iot_day0.exact);
}

#[tokio::test]
async fn overlapping_redeliveries_and_other_sensors_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let keys: Vec<u64> = (0..300).map(hashed).collect();
    // Batches cut differently on redelivery, and a second sensor seeing the same devices.
    s.write_sightings(
        &keys[..200]
            .iter()
            .map(|&k| row("p", DAY, k, DeviceCategory::Ot))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    s.write_sightings(
        &keys[100..]
            .iter()
            .map(|&k| row("p", DAY, k, DeviceCategory::Ot))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let other_sensor: Vec<Sighting> = keys
        .iter()
        .map(|&k| Sighting {
            sensor: "s2".into(),
            ..row("p", DAY, k, DeviceCategory::Ot)
        })
        .collect();
    s.write_sightings(&other_sensor).await.unwrap();
    s.write_sightings(&[]).await.unwrap();
    let days = DayRange::ending(DAY, 60);
    assert_eq!(
        s.site_counts(Some("acme"), days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count,
        300
    );
    assert_eq!(
        s.exact_site_count("acme", "p", days, &CountFilter::all())
            .await
            .unwrap(),
        300
    );
}

#[tokio::test]
async fn sites_and_tenants_are_counted_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let mut rows: Vec<Sighting> = (0..40)
        .map(|k| row("a", DAY, hashed(k), DeviceCategory::Ot))
        .collect();
    rows.extend((0..25).map(|k| row("b", DAY, hashed(k), DeviceCategory::Ot)));
    rows.extend((0..7).map(|k| Sighting {
        tenant: "globex".into(),
        ..row("a", DAY, hashed(k), DeviceCategory::Ot)
    }));
    s.write_sightings(&rows).await.unwrap();
    let days = DayRange { from: DAY, to: DAY };
    let all = s
        .site_counts(None, days, &CountFilter::all())
        .await
        .unwrap();
    let got: Vec<(&str, &str, u64)> = all
        .iter()
        .map(|c| (c.tenant.as_str(), c.site.as_str(), c.count))
        .collect();
    assert_eq!(
        got,
        vec![("acme", "a", 40), ("acme", "b", 25), ("globex", "a", 7)]
    );
    let globex = s
        .site_counts(Some("globex"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0].count, 7);
    assert_eq!(
        s.exact_site_count("globex", "a", days, &CountFilter::all())
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        s.exact_site_count("globex", "b", days, &CountFilter::all())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn tenant_text_is_bound_not_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    s.write_sightings(&[row("p", DAY, 1, DeviceCategory::Ot)])
        .await
        .unwrap();
    let evil = "acme' OR 1=1 --";
    let all_days = DayRange {
        from: 0,
        to: 30_000,
    };
    let counts = s
        .site_counts(Some(evil), all_days, &CountFilter::all())
        .await
        .unwrap();
    assert!(counts.is_empty());
    assert_eq!(
        s.exact_site_count(evil, "p", all_days, &CountFilter::all())
            .await
            .unwrap(),
        0
    );
    assert!(s
        .daily_counts(evil, "p", all_days, &CountFilter::all())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn reopening_the_directory_continues_where_the_last_run_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let days = DayRange {
        from: DAY,
        to: DAY + 1,
    };
    {
        let s = store(dir.path()).await;
        s.write_sightings(&mixed_batch()).await.unwrap();
    }
    assert!(dir.path().join(DB_FILE).exists());
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert!(s.migrate().await.unwrap().is_empty(), "schema kept");
    assert_eq!(
        s.site_counts(None, days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count,
        500
    );
    // The second run redelivers what the first wrote and adds new devices.
    s.write_sightings(&mixed_batch()).await.unwrap();
    let more: Vec<Sighting> = (1000..1100u64)
        .map(|k| row("plant", DAY + 1, k * 7919, DeviceCategory::Ot))
        .collect();
    s.write_sightings(&more).await.unwrap();
    assert_eq!(
        s.site_counts(None, days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count,
        600
    );
    assert_eq!(
        s.exact_site_count("acme", "plant", days, &CountFilter::all())
            .await
            .unwrap(),
        600
    );
}

async fn write_range(s: &EmbeddedStore, range: std::ops::Range<u64>) {
    let rows: Vec<Sighting> = range
        .map(|k| row("p", DAY, hashed(k), DeviceCategory::Ot))
        .collect();
    s.write_sightings(&rows).await.unwrap();
}

#[tokio::test]
async fn two_handles_on_one_directory_never_serve_stale_sketches() {
    // The demo may open the directory more than once (ingest and API); each handle caches
    // sketches, and a write through one must be seen by the other.
    let dir = tempfile::tempdir().unwrap();
    let a = store(dir.path()).await;
    let b = EmbeddedStore::open(dir.path()).unwrap();
    let days = DayRange { from: DAY, to: DAY };
    write_range(&a, 0..100).await;
    assert_eq!(
        b.site_counts(None, days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count,
        100
    );
    write_range(&b, 100..150).await;
    // `a` holds revision 1 of this sketch in its cache; the row is now at revision 2.
    write_range(&a, 150..160).await;
    for s in [&a, &b] {
        assert_eq!(
            s.site_counts(None, days, &CountFilter::all())
                .await
                .unwrap()[0]
                .count,
            160
        );
        assert_eq!(
            s.daily_counts("acme", "p", days, &CountFilter::all())
                .await
                .unwrap()[0]
                .count,
            160
        );
    }
}

async fn write_site(s: &EmbeddedStore, site: &str, n: u64) {
    // Spread over three days and both agent flags, in batches, as ingest would.
    let rows: Vec<Sighting> = (0..n)
        .map(|i| Sighting {
            agent_managed: i.is_multiple_of(4),
            ..row(site, DAY + (i % 3) as u16, hashed(i), DeviceCategory::Ot)
        })
        .collect();
    for chunk in rows.chunks(2_500) {
        s.write_sightings(chunk).await.unwrap();
    }
}

#[tokio::test]
async fn small_sites_are_exact_and_large_sites_within_the_error_bound() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    write_site(&s, "small", 1_000).await;
    write_site(&s, "large", 20_000).await;
    let days = DayRange {
        from: DAY,
        to: DAY + 2,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    let large = counts.iter().find(|c| c.site == "large").unwrap();
    let small = counts.iter().find(|c| c.site == "small").unwrap();

    assert_eq!((small.count, small.exact, small.sigma), (1_000, true, 0.0));
    assert!(!large.exact);
    let err = (large.count as f64 - 20_000.0).abs() / 20_000.0;
    assert!(
        err < 0.03,
        "estimate {} is {:.2}% off",
        large.count,
        err * 100.0
    );
    assert!(
        large.sigma > 0.0 && large.sigma < 0.02 * 20_000.0,
        "sigma {}",
        large.sigma
    );
    assert_eq!(
        s.exact_site_count("acme", "large", days, &CountFilter::all())
            .await
            .unwrap(),
        20_000
    );

    // The near-boundary fallback: the exact count is available for every filter.
    let no_agents = CountFilter {
        categories: vec![],
        include_agent_managed: false,
    };
    assert_eq!(
        s.exact_site_count("acme", "large", days, &no_agents)
            .await
            .unwrap(),
        15_000
    );
    let est = s.site_counts(Some("acme"), days, &no_agents).await.unwrap();
    let large = est.iter().find(|c| c.site == "large").unwrap();
    assert!(
        (large.count as f64 - 15_000.0).abs() / 15_000.0 < 0.03,
        "{}",
        large.count
    );

    // Per-day sketches: ~6,667 devices a day, past the exact phase.
    let daily = s
        .daily_counts("acme", "large", days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(daily.len(), 3);
    for d in &daily {
        assert!(!d.exact);
        assert!((d.count as f64 - 6_667.0).abs() / 6_667.0 < 0.03, "{d:?}");
    }
}
