//! Integration tests against the real ClickHouse started by `scripts/test.sh`
//! (`SITETALLY_TEST_CLICKHOUSE_URL`). Each test uses its own database.
//! Run with `cargo test -- --ignored` after starting the rig, or through the script.

use sitetally_core::{DeviceCategory, Sighting};
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use sitetally_store::{CountFilter, DayRange, Store};

fn store(name: &str) -> ClickHouseStore {
    let url = std::env::var("SITETALLY_TEST_CLICKHOUSE_URL").expect(
        "SITETALLY_TEST_CLICKHOUSE_URL is not set: run scripts/test.sh, which starts ClickHouse",
    );
    let database = format!("it_{name}_{}", std::process::id());
    ClickHouseStore::new(&ClickHouseConfig {
        url,
        database,
        ..Default::default()
    })
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

#[tokio::test]
#[ignore = "needs ClickHouse: run scripts/test.sh"]
async fn migrations_are_idempotent_and_counts_survive_retries() {
    let s = store("migrate");
    let first = s.migrate().await.unwrap();
    assert_eq!(
        first.len(),
        sitetally_store::clickhouse::MIGRATIONS.len(),
        "{first:?}"
    );
    assert!(
        s.migrate().await.unwrap().is_empty(),
        "second run applies nothing"
    );

    let day = 20_000;
    let batch: Vec<Sighting> = (0..500u64)
        .map(|k| {
            row(
                "plant",
                day + (k % 2) as u16,
                k * 7919,
                if k % 3 == 0 {
                    DeviceCategory::Iot
                } else {
                    DeviceCategory::Ot
                },
            )
        })
        .collect();
    // The same batch three times: a retried insert and a redelivery.
    for _ in 0..3 {
        s.write_sightings(&batch).await.unwrap();
    }
    let days = DayRange {
        from: day,
        to: day + 1,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].count, 500);
    assert!(counts[0].exact);
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
    let one_day = s
        .site_counts(None, DayRange { from: day, to: day }, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(one_day[0].count, 250);

    let daily = s
        .daily_counts("acme", "plant", days, &CountFilter::all())
        .await
        .unwrap();
    let total: u64 = daily.iter().map(|d| d.count).sum();
    assert_eq!(total, 500, "{daily:?}");
    assert!(daily.iter().all(|d| d.day == day || d.day == day + 1));
    let sum = |d: Vec<sitetally_store::DailyCount>| d.iter().map(|d| d.count).sum::<u64>();
    assert_eq!(
        sum(s
            .daily_counts("acme", "plant", days, &no_agents)
            .await
            .unwrap()),
        450,
        "agent-managed devices excluded per day"
    );
    assert_eq!(
        sum(s.daily_counts("acme", "plant", days, &iot).await.unwrap()),
        167
    );
}

#[tokio::test]
#[ignore = "needs ClickHouse: run scripts/test.sh"]
async fn tenant_text_is_bound_not_spliced() {
    let s = store("bind");
    s.migrate().await.unwrap();
    s.write_sightings(&[row("p", 20_000, 1, DeviceCategory::Ot)])
        .await
        .unwrap();
    let evil = "acme' OR 1=1 --";
    let counts = s
        .site_counts(
            Some(evil),
            DayRange {
                from: 0,
                to: 30_000,
            },
            &CountFilter::all(),
        )
        .await
        .unwrap();
    assert!(counts.is_empty());
}

#[tokio::test]
#[ignore = "needs ClickHouse: run scripts/test.sh"]
async fn a_device_at_two_sites_counts_once_tenant_wide() {
    let s = store("tenantwide");
    s.migrate().await.unwrap();
    let day = 20_000;
    // Keys 40..49 are seen at both sites.
    let mut rows: Vec<Sighting> = (0..50u64)
        .map(|k| row("a", day, k, DeviceCategory::Iot))
        .collect();
    rows.extend((40..90u64).map(|k| row("b", day, k, DeviceCategory::Iot)));
    s.write_sightings(&rows).await.unwrap();
    let days = DayRange { from: day, to: day };
    let per_site: u64 = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(per_site, 100);
    let t = s
        .tenant_count("acme", days, &CountFilter::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.count, t.exact), (90, true));
    assert_eq!(
        s.exact_tenant_count("acme", days, &CountFilter::all())
            .await
            .unwrap(),
        Some(90)
    );
    // Keys that are multiples of 10 are agent-managed: 9 of 0..90.
    let no_agents = CountFilter {
        categories: vec![],
        include_agent_managed: false,
    };
    assert_eq!(
        s.exact_tenant_count("acme", days, &no_agents)
            .await
            .unwrap(),
        Some(81)
    );
    assert_eq!(
        s.tenant_count("other", days, &CountFilter::all())
            .await
            .unwrap()
            .unwrap()
            .count,
        0
    );
}
