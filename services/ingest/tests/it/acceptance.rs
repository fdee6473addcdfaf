//! The ingest acceptance run (issue 2) on the real broker and ClickHouse: ~300k simulated
//! events over 100 sites of 5..20,000 devices, every device reported several times by at
//! least two sensors in varied spellings, Avro and JSON mixed, 1% malformed in varied ways.

use sitetally_sensor_sim::{EventStream, SimConfig, SizeProfile, World};
use sitetally_store::clickhouse::SKETCH_EXACT_LIMIT;
use sitetally_store::{CountFilter, DayRange, Store};
use sitetally_testkit::rig::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn three_hundred_thousand_events_over_a_hundred_sites() {
    let topic = unique("accept");
    let db = unique("accept");
    create_topics(&[&topic, &format!("{topic}.dlq")], 4).await;

    let mut config = SimConfig::new(2026, 100);
    config.sizes = SizeProfile::Realistic {
        min: 5,
        max: 20_000,
    };
    config.reports_per_device = 4;
    config.malformed_fraction = 0.01;
    let world = Arc::new(World::new(config).unwrap());
    let now = now_ms();
    let mut stream = EventStream::new(world, now);
    let messages: Vec<(Vec<u8>, Vec<u8>)> = stream.by_ref().map(|m| (m.key, m.payload)).collect();
    let truth = stream.truth();
    assert!(
        messages.len() >= 280_000,
        "workload too small: {}",
        messages.len()
    );
    let sizes: Vec<u64> = truth.sites.iter().map(|s| s.devices).collect();
    assert!(
        sizes.iter().any(|&n| n <= 10) && sizes.iter().any(|&n| n >= 19_000),
        "site sizes span 5..20,000"
    );
    let total = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || produce(&topic, messages)
    })
    .await
    .unwrap() as i64;
    eprintln!("produced {total} messages");

    let cfg = ingest_config(&topic, &db);
    let group = cfg.kafka.group_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ingest = tokio::spawn(sitetally_ingest::consumer::run(cfg, async {
        let _ = stop_rx.await;
    }));
    let mut watcher = CommitWatcher::new(&brokers(), &group, &topic, 4);
    let mut last_report = std::time::Instant::now();
    wait_until(
        "ingest to commit all ~300k messages",
        Duration::from_secs(600),
        || {
            let done = watcher.total();
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!("committed {done} of {total}");
                last_report = std::time::Instant::now();
            }
            done >= total
        },
    )
    .await;
    stop_tx.send(()).unwrap();
    let report = ingest.await.unwrap().unwrap();
    assert_eq!(report.messages as i64, total);
    assert_eq!(
        report.not_a_device, truth.not_a_device,
        "not-a-device reports are counted, not stored"
    );
    assert_eq!(report.rejected, truth.malformed_total());

    // Per-site counts from the sketch table against the simulator's exact truth.
    let store = store(&db);
    let day = sitetally_core::day_of(now);
    let days = DayRange {
        from: day - 1,
        to: day,
        since_ms: None,
    };
    let counted: HashMap<(String, String), u64> = store
        .site_counts(None, days, &CountFilter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|c| ((c.tenant, c.site), c.count.value))
        .collect();
    let mut worst = 0.0f64;
    for site in &truth.sites {
        let got = *counted
            .get(&(site.tenant.clone(), site.site.clone()))
            .unwrap_or(&0);
        if site.devices <= SKETCH_EXACT_LIMIT {
            assert_eq!(
                got, site.devices,
                "{}/{}: below the exact threshold counts must be exact",
                site.tenant, site.site
            );
        } else {
            let err = (got as f64 - site.devices as f64).abs() / site.devices as f64;
            worst = worst.max(err);
            assert!(
                err <= 0.02,
                "{}/{}: {got} vs {} ({:.2}%)",
                site.tenant,
                site.site,
                site.devices,
                err * 100.0
            );
        }
        let exact = store
            .exact_site_count(&site.tenant, &site.site, days, &CountFilter::all())
            .await
            .unwrap();
        assert_eq!(
            exact, site.devices,
            "{}/{}: exact count from sightings",
            site.tenant, site.site
        );
    }
    assert_eq!(counted.len(), truth.sites.len(), "no phantom sites");
    eprintln!(
        "largest relative error above the exact threshold: {:.3}%",
        worst * 100.0
    );

    // Every malformed message is in the DLQ with its reason; nothing else is.
    let expected = truth.malformed_total() as usize;
    let letters = read_all(&format!("{topic}.dlq"), expected, Duration::from_secs(120));
    assert_eq!(letters.len(), expected);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for l in &letters {
        *by_reason
            .entry(l.headers.get("dlq.reason").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(by_reason, truth.malformed_by_reason);
}
