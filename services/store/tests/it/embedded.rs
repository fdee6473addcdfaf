//! What only the embedded store promises: its migrations, reopening a data directory
//! keeps the data, several handles on one file never serve stale sketches, and sketches
//! are exact for small sites and within their error bound for large ones. Each test uses
//! its own temporary directory; no server is needed.

use crate::{day, hashed, row};
use sitetally_core::{DeviceCategory, Sighting};
use sitetally_store::embedded::{EmbeddedStore, DB_FILE};
use sitetally_store::{CountFilter, DayRange, Store};
use std::path::Path;

async fn store(dir: &Path) -> EmbeddedStore {
    let s = EmbeddedStore::open(dir).unwrap();
    s.migrate().await.unwrap();
    s
}

fn mixed_batch(day: u16) -> Vec<Sighting> {
    (0..500u64)
        .map(|k| {
            let category = if k.is_multiple_of(3) {
                DeviceCategory::Iot
            } else {
                DeviceCategory::Ot
            };
            row("plant", day + (k % 2) as u16, k * 7919, category)
        })
        .collect()
}

#[tokio::test]
async fn migrations_are_named_and_applied_once() {
    let (s, _dir) = crate::embedded_store();
    assert_eq!(
        s.migrate().await.unwrap(),
        vec![
            "001_sightings",
            "002_site_devices_daily",
            "003_reconciler_memory"
        ]
    );
    assert!(s.migrate().await.unwrap().is_empty());
}

#[tokio::test]
async fn reopening_the_directory_continues_where_the_last_run_stopped() {
    let day = day();
    let dir = tempfile::tempdir().unwrap();
    let days = DayRange {
        from: day,
        to: day + 1,
        since_ms: None,
    };
    {
        let s = store(dir.path()).await;
        s.write_sightings(&mixed_batch(day)).await.unwrap();
    }
    assert!(dir.path().join(DB_FILE).exists());
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert!(s.migrate().await.unwrap().is_empty(), "schema kept");
    assert_eq!(
        s.site_counts(None, days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count
            .value,
        500
    );
    // The second run redelivers what the first wrote and adds new devices.
    s.write_sightings(&mixed_batch(day)).await.unwrap();
    let more: Vec<Sighting> = (1000..1100u64)
        .map(|k| row("plant", day + 1, k * 7919, DeviceCategory::Ot))
        .collect();
    s.write_sightings(&more).await.unwrap();
    assert_eq!(
        s.site_counts(None, days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count
            .value,
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
    let day = day();
    let rows: Vec<Sighting> = range
        .map(|k| row("p", day, hashed(k), DeviceCategory::Ot))
        .collect();
    s.write_sightings(&rows).await.unwrap();
}

#[tokio::test]
async fn two_handles_on_one_directory_never_serve_stale_sketches() {
    let day = day();
    // The demo may open the directory more than once (ingest and API); each handle caches
    // sketches, and a write through one must be seen by the other.
    let dir = tempfile::tempdir().unwrap();
    let a = store(dir.path()).await;
    let b = EmbeddedStore::open(dir.path()).unwrap();
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    write_range(&a, 0..100).await;
    assert_eq!(
        b.site_counts(None, days, &CountFilter::all())
            .await
            .unwrap()[0]
            .count
            .value,
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
                .count
                .value,
            160
        );
        assert_eq!(
            s.daily_counts("acme", "p", days, &CountFilter::all())
                .await
                .unwrap()[0]
                .count
                .value,
            160
        );
    }
}

async fn write_site(s: &EmbeddedStore, site: &str, n: u64) {
    let day = day();
    // Spread over three days and both agent flags, in batches, as ingest would.
    let rows: Vec<Sighting> = (0..n)
        .map(|i| Sighting {
            agent_managed: i.is_multiple_of(4),
            ..row(site, day + (i % 3) as u16, hashed(i), DeviceCategory::Ot)
        })
        .collect();
    for chunk in rows.chunks(2_500) {
        s.write_sightings(chunk).await.unwrap();
    }
}

#[tokio::test]
async fn small_sites_are_exact_and_large_sites_within_the_error_bound() {
    let day = day();
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    write_site(&s, "small", 1_000).await;
    write_site(&s, "large", 20_000).await;
    let days = DayRange {
        from: day,
        to: day + 2,
        since_ms: None,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    let large = counts.iter().find(|c| c.site == "large").unwrap();
    let small = counts.iter().find(|c| c.site == "small").unwrap();

    assert_eq!(small.count, sitetally_core::Count::exact(1_000));
    assert!(!large.count.is_exact());
    let err = (large.count.value as f64 - 20_000.0).abs() / 20_000.0;
    assert!(
        err < 0.03,
        "estimate {} is {:.2}% off",
        large.count.value,
        err * 100.0
    );
    assert!(
        large.count.sigma > 0.0 && large.count.sigma < 0.02 * 20_000.0,
        "sigma {}",
        large.count.sigma
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
        (large.count.value as f64 - 15_000.0).abs() / 15_000.0 < 0.03,
        "{}",
        large.count.value
    );

    // Per-day sketches: ~6,667 devices a day, past the sketch's exact phase but under
    // the exact limit: recounted from sightings, exact as ClickHouse's would be.
    let daily = s
        .daily_counts("acme", "large", days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(daily.len(), 3);
    assert!(daily.iter().all(|d| d.count.is_exact()), "{daily:?}");
    assert_eq!(
        daily.iter().map(|d| d.count.value).sum::<u64>(),
        20_000,
        "{daily:?}"
    );
}
