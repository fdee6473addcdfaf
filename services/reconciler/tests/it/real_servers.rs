//! The reconciler against the real servers of the test rig (scripts/test.sh): discovery
//! events go through the real broker (Tansu) into ingest, which writes ClickHouse; the
//! reconciler counts from that ClickHouse database and publishes alerts on a real Kafka
//! topic and to a webhook receiver on 127.0.0.1. Each test has its own topics, consumer
//! group, ClickHouse database and alert-state file.
//!
//! Proves: sites grown past their tiers by ingest raise exactly one alert each on the
//! topic and at the webhook (signed, with the payload fields receivers need); a restarted
//! reconciler (new instance, same state file) raises no duplicates, and delivers an alert
//! a webhook outage left owed exactly once, with its original key; a site whose count
//! crosses its tier boundary back and forth across runs (and restarts) does not flap.

use apache_avro::types::Value as Avro;
use chrono::{DateTime, Duration as Days, TimeZone, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use sitetally_licensing::alert::tier_alert_schema;
use sitetally_reconciler::sink::kafka::{AlertEncoding, KafkaSink, KafkaSinkConfig};
use sitetally_reconciler::sink::webhook::{
    verify, Secret, WebhookConfig, WebhookSink, DEFAULT_TOLERANCE, IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
};
use sitetally_reconciler::sink::DeliveryLog;
use sitetally_reconciler::{Alert, CountMethod, LicenceBook, Reconciler, RunReport, Settings};
use sitetally_store::history::AlertLog;
use sitetally_store::Store;
use sitetally_store::StoreCounts;
use sitetally_testkit::rig::*;
use sitetally_testkit::webhook::{receiver, Receiver};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANT: &str = "acme";
const SECRET: &str = "it-webhook-secret-0123456789abcdef";
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------
// Discovery events and ingest

/// One JSON discovery event for device `i` of a site (`site_no` keeps MACs apart).
fn event(site: &str, site_no: u8, i: u32, sensor: &str, at_ms: i64) -> (Vec<u8>, Vec<u8>) {
    let mac = format!(
        "00:1b:{site_no:02x}:{:02x}:{:02x}:{:02x}",
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8
    );
    let payload = format!(
        r#"{{"tenant":"{TENANT}","site":"{site}","sensor":"{sensor}","observed_at":{at_ms},"macs":["{mac}"],"category":"OT"}}"#
    );
    (
        format!("{TENANT}/{site}").into_bytes(),
        payload.into_bytes(),
    )
}

/// Devices `range` of a site seen at `at_ms`, each reported by two sensors (ingest
/// deduplicates them: a device counts once).
fn devices(
    site: &str,
    site_no: u8,
    range: std::ops::Range<u32>,
    at_ms: i64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    range
        .flat_map(|i| {
            [
                event(site, site_no, i, "sensor-1", at_ms),
                event(site, site_no, i, "sensor-2", at_ms + 1_000),
            ]
        })
        .collect()
}

/// Ingest running in the background over one topic into one fresh database; messages are
/// fed in batches and each batch is waited for until its offsets are committed (which
/// ingest does only after ClickHouse acknowledged the rows).
struct Ingest {
    topic: String,
    database: String,
    watcher: CommitWatcher,
    produced: i64,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<sitetally_ingest::IngestReport, String>>,
}

impl Ingest {
    async fn start(name: &str) -> Self {
        let topic = unique(&format!("{name}_events"));
        let database = unique(name);
        create_topics(&[&topic, &format!("{topic}.dlq")], 1).await;
        let config = ingest_config(&topic, &database);
        let watcher = CommitWatcher::new(&brokers(), &config.kafka.group_id, &topic, 1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            sitetally_ingest::consumer::run(config, async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
        });
        Self {
            topic,
            database,
            watcher,
            produced: 0,
            stop: Some(tx),
            task,
        }
    }

    async fn feed(&mut self, messages: Vec<(Vec<u8>, Vec<u8>)>) {
        let topic = self.topic.clone();
        let n = tokio::task::block_in_place(|| produce(&topic, messages)) as i64;
        self.produced += n;
        let want = self.produced;
        let watcher = &mut self.watcher;
        let task = &self.task;
        wait_until(
            &format!("ingest to commit {want} messages of {topic}"),
            Duration::from_secs(120),
            || {
                assert!(!task.is_finished(), "ingest stopped early");
                tokio::task::block_in_place(|| watcher.total()) == want
            },
        )
        .await;
    }

    async fn stop(mut self) -> sitetally_ingest::IngestReport {
        let _ = self.stop.take().expect("stopped once").send(());
        let report = self.task.await.expect("ingest task").expect("ingest run");
        assert_eq!(report.messages as i64, self.produced, "{report:?}");
        assert_eq!(report.rejected, 0, "no event is bad: {report:?}");
        report
    }
}

/// Counts from a ClickHouse database, as the reconciler service reads them.
fn counts(database: &str) -> Arc<StoreCounts> {
    let s: Arc<dyn Store> = Arc::new(store(database));
    Arc::new(StoreCounts::new(s))
}

// ---------------------------------------------------------------------------------------
// Licences, sinks, reading alerts back

/// Paid licences that started 100 days before `now` (effective for a year).
fn book(now: DateTime<Utc>, sites: &[(&str, &str)]) -> LicenceBook {
    let start = (now - Days::days(100)).format("%Y-%m-%d");
    let mut toml = format!("[[tenants]]\nid = \"{TENANT}\"\n");
    for (site, tier) in sites {
        toml.push_str(&format!(
            "[[tenants.sites]]\nid = \"{site}\"\n[[tenants.sites.licences]]\ntier = \"{tier}\"\nkind = \"paid\"\nstart = \"{start}\"\n"
        ));
    }
    LicenceBook::from_toml_str(&toml, &Settings::default()).expect("licence book")
}

/// A reconciler as a fresh process would build it: new sinks (new producer, new HTTP
/// client) and the alert state, alert log and run history in ClickHouse `database`.
fn reconciler(
    book: LicenceBook,
    counts: Arc<StoreCounts>,
    database: &str,
    alerts_topic: &str,
    encoding: AlertEncoding,
    webhook_url: &str,
) -> Reconciler {
    let mut kcfg = KafkaSinkConfig::new(brokers());
    kcfg.topic = alerts_topic.to_string();
    kcfg.encoding = encoding;
    let kafka = KafkaSink::new(kcfg, DeliveryLog::default()).expect("kafka sink");
    let mut wcfg = WebhookConfig::new("webhook:it", webhook_url, Secret::new(SECRET));
    wcfg.initial_backoff = Duration::from_millis(50);
    wcfg.max_attempts = 3;
    let webhook = WebhookSink::new(wcfg, DeliveryLog::default()).expect("webhook sink");
    Reconciler::new(Settings::default(), book, counts, Arc::new(store(database)))
        .with_sink(Arc::new(kafka))
        .with_sink(Arc::new(webhook))
        .with_history(Arc::new(store(database)))
}

/// A message read back from the alerts topic.
#[derive(Debug)]
struct TopicAlert {
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: HashMap<String, String>,
}

/// Every message on `topic` from the beginning: waits until `expected` arrived (or
/// `limit`), then lingers a few seconds to catch any extra (a duplicate would be one).
fn read_alerts(topic: &str, expected: usize, limit: Duration) -> Vec<TopicAlert> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("alert-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    let mut linger_from: Option<Instant> = None;
    loop {
        if out.len() >= expected && linger_from.is_none() {
            linger_from = Some(Instant::now());
        }
        if linger_from.is_some_and(|l| l.elapsed() > Duration::from_secs(3)) {
            break;
        }
        if start.elapsed() > limit {
            break;
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(TopicAlert {
                key: m.key().unwrap_or_default().to_vec(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: sitetally_testkit::rig::headers_of(&m),
            }),
            Some(Err(e)) => eprintln!("alert reader: {e}"),
            None => {}
        }
    }
    out
}

/// The fields of an Avro alert datum, by name.
fn avro_fields(payload: &[u8]) -> HashMap<String, Avro> {
    let v = apache_avro::from_avro_datum(tier_alert_schema(), &mut &payload[..], None)
        .expect("alert is an Avro datum of tier_alert.avsc");
    let Avro::Record(fields) = v else {
        panic!("alert datum is not a record: {v:?}")
    };
    fields.into_iter().collect()
}

fn avro_str(v: &Avro) -> String {
    match v {
        Avro::String(s) => s.clone(),
        Avro::Union(_, inner) => avro_str(inner),
        Avro::Enum(_, s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

/// Webhook bodies, each checked for a valid signature and a matching idempotency header.
fn webhook_alerts(rx: &Receiver) -> Vec<Alert> {
    rx.got
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let sig = r
                .headers
                .get(&SIGNATURE_HEADER.to_ascii_lowercase())
                .expect("signature header");
            let now = chrono::Utc::now().timestamp();
            assert_eq!(
                verify(&Secret::new(SECRET), &r.body, sig, now, DEFAULT_TOLERANCE),
                Ok(()),
                "HMAC-SHA256 signature {sig} verifies over the timestamp and exact body"
            );
            assert!(verify(&Secret::new("wrong"), &r.body, sig, now, DEFAULT_TOLERANCE).is_err());
            assert_eq!(
                r.headers.get("content-type").map(String::as_str),
                Some("application/json")
            );
            let alert: Alert = serde_json::from_slice(&r.body).expect("webhook body is an alert");
            assert_eq!(
                r.headers.get(&IDEMPOTENCY_HEADER.to_ascii_lowercase()),
                Some(&alert.idempotency_key)
            );
            alert
        })
        .collect()
}

fn summary(r: &RunReport) -> Vec<(String, String, u64)> {
    r.decisions
        .iter()
        .map(|d| {
            (
                d.subject.to_string(),
                d.status().transition_key(),
                d.count.value,
            )
        })
        .collect()
}

/// The day-aligned instant `ms` (for readable failure messages only).
fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .expect("valid instant")
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn sites_grown_past_their_tiers_alert_once_per_transition_across_restarts() {
    let started = Instant::now();
    let (_, _) = (brokers(), clickhouse_url()); // clear panic when the rig is not running
    let t0 = now_ms() - 3_600_000; // devices seen an hour ago
    let now = at(now_ms());
    let alerts_topic = unique("tier-alerts");
    create_topics(&[&alerts_topic], 1).await;
    let rx = receiver(vec![200]).await;
    let url = rx.url.clone();
    let licences = || book(now, &[("xs-site", "XS"), ("l-site", "L"), ("m-site", "M")]);

    let mut ingest = Ingest::start("recon_grow").await;
    let database = ingest.database.clone();
    // Batch 1: every site within its tier.
    let mut batch = devices("xs-site", 1, 0..60, t0);
    batch.extend(devices("l-site", 2, 0..800, t0));
    batch.extend(devices("m-site", 3, 0..300, t0));
    ingest.feed(batch).await;

    let first = reconciler(
        licences(),
        counts(&database),
        &database,
        &alerts_topic,
        AlertEncoding::Avro,
        &url,
    );
    let r1 = first.run_once(now).await.unwrap();
    assert!(
        r1.alerts.is_empty(),
        "within tier: nothing to say: {:?}",
        summary(&r1)
    );
    assert_eq!(r1.decisions.len(), 3, "{:?}", summary(&r1));

    // Batch 2: xs-site grows to 130 devices (XS covers 100), l-site to 1,100 (L covers
    // 1,000); devices of batch 1 are re-reported too (no change for them).
    let mut batch = devices("xs-site", 1, 0..130, t0 + 60_000);
    batch.extend(devices("l-site", 2, 700..1_100, t0 + 60_000));
    batch.extend(devices("m-site", 3, 0..50, t0 + 60_000));
    ingest.feed(batch).await;

    let now2 = now + Days::minutes(5);
    let r2 = first.run_once(now2).await.unwrap();
    assert_eq!(
        r2.alerts.len(),
        2,
        "one alert per grown site: {:?}",
        summary(&r2)
    );
    assert_eq!(r2.pending, 0, "both sinks took both alerts");
    assert_eq!(r2.delivered, 4);
    let by_site: HashMap<&str, &Alert> = r2
        .alerts
        .iter()
        .map(|a| (a.site.as_deref().unwrap(), a))
        .collect();
    let expect = [("xs-site", "XS", "S", 130u64), ("l-site", "L", "XL", 1_100)];
    for (site, licensed, required, count) in expect {
        let a = by_site
            .get(site)
            .unwrap_or_else(|| panic!("no alert for {site}"));
        assert_eq!(a.tenant, TENANT);
        assert_eq!(a.old_status, "WITHIN_TIER");
        assert_eq!(a.new_status, "OVER_TIER");
        assert_eq!(
            a.device_count, count,
            "{site}: the exact count from ClickHouse"
        );
        assert_eq!(a.count_method, CountMethod::Exact);
        assert_eq!(a.error_bound, 0);
        assert_eq!(a.licensed_tier.as_deref(), Some(licensed));
        assert_eq!(a.required_tier.as_deref(), Some(required));
        assert_eq!(a.decided_at, now2);
        assert_eq!(a.idempotency_key.len(), 32);
    }
    let mut raised: Vec<Alert> = r2.alerts.clone();
    drop(first);

    // Restart: a new reconciler with the same state file, new sinks, later runs.
    for minutes in [10, 70] {
        let again = reconciler(
            licences(),
            counts(&database),
            &database,
            &alerts_topic,
            AlertEncoding::Avro,
            &url,
        );
        let r = again.run_once(now + Days::minutes(minutes)).await.unwrap();
        assert!(r.alerts.is_empty(), "restart raised {:?}", r.alerts);
        assert_eq!((r.delivered, r.pending), (0, 0), "nothing redelivered");
        assert_eq!(
            summary(&r),
            summary(&r2),
            "same decisions after the restart"
        );
    }

    // Batch 3: xs-site grows past S (250) too: it now needs M, which is news. This time
    // the webhook is down: Kafka takes the alert, the webhook delivery stays owed in the
    // state file, and the restarted reconciler delivers that same alert (same key) once.
    ingest
        .feed(devices("xs-site", 1, 130..260, t0 + 120_000))
        .await;
    let report = ingest.stop().await;
    assert_eq!(
        report.new_devices,
        60 + 800 + 300 + 70 + 300 + 130,
        "{report:?}"
    );
    let dead_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hooks/tier", l.local_addr().unwrap())
    };
    let during_outage = reconciler(
        licences(),
        counts(&database),
        &database,
        &alerts_topic,
        AlertEncoding::Avro,
        &dead_url,
    );
    let now3 = now + Days::minutes(80);
    let r3 = during_outage.run_once(now3).await.unwrap();
    assert_eq!(r3.alerts.len(), 1, "{:?}", summary(&r3));
    let a3 = &r3.alerts[0];
    assert_eq!(a3.site.as_deref(), Some("xs-site"));
    assert_eq!(a3.old_status, "OVER_TIER");
    assert_eq!(a3.new_status, "OVER_TIER");
    assert_eq!(a3.required_tier.as_deref(), Some("M"));
    assert_eq!(a3.device_count, 260);
    assert_eq!(
        (r3.delivered, r3.pending),
        (1, 1),
        "Kafka took it; the webhook still owes it"
    );
    raised.push(a3.clone());
    drop(during_outage);
    for (minutes, delivered) in [(90, 1), (100, 0)] {
        let again = reconciler(
            licences(),
            counts(&database),
            &database,
            &alerts_topic,
            AlertEncoding::Avro,
            &url,
        );
        let r = again.run_once(now + Days::minutes(minutes)).await.unwrap();
        assert!(r.alerts.is_empty(), "restart raised {:?}", r.alerts);
        assert_eq!(
            (r.delivered, r.pending),
            (delivered, 0),
            "the owed webhook delivery, once"
        );
    }

    // On the topic: exactly the three alerts, Avro per tier_alert.avsc, keyed by subject,
    // the idempotency key in a header.
    let on_topic =
        tokio::task::block_in_place(|| read_alerts(&alerts_topic, 3, Duration::from_secs(60)));
    assert_eq!(
        on_topic.len(),
        3,
        "exactly one alert per transition on {alerts_topic}"
    );
    for m in &on_topic {
        let f = avro_fields(&m.payload);
        let key = avro_str(&f["idempotency_key"]);
        let a = raised
            .iter()
            .find(|a| a.idempotency_key == key)
            .unwrap_or_else(|| panic!("unexpected alert on the topic: {f:?}"));
        assert_eq!(m.key, a.subject.key().into_bytes());
        assert_eq!(m.headers.get("idempotency-key"), Some(&a.idempotency_key));
        assert_eq!(
            m.headers.get("content-type").map(String::as_str),
            Some("avro/binary")
        );
        assert_eq!(avro_str(&f["tenant"]), TENANT);
        assert_eq!(avro_str(&f["site"]), *a.site.as_ref().unwrap());
        assert_eq!(avro_str(&f["old_status"]), a.old_status);
        assert_eq!(avro_str(&f["new_status"]), "OVER_TIER");
        assert_eq!(f["device_count"], Avro::Long(a.device_count as i64));
        assert_eq!(avro_str(&f["count_method"]), "EXACT");
        assert_eq!(f["error_bound"], Avro::Long(0));
        assert_eq!(
            avro_str(&f["licensed_tier"]),
            *a.licensed_tier.as_ref().unwrap()
        );
        assert_eq!(
            avro_str(&f["required_tier"]),
            *a.required_tier.as_ref().unwrap()
        );
    }
    let mut keys: Vec<String> = on_topic
        .iter()
        .map(|m| m.headers["idempotency-key"].clone())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "three distinct transitions");

    // At the webhook: exactly the same three alerts, signed (the third one late).
    let mut hooked = webhook_alerts(&rx);
    hooked.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    raised.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    assert_eq!(hooked, raised, "exactly one webhook call per transition");

    // The alert log in ClickHouse holds exactly those alerts; every run left its decisions.
    let history = store(&database);
    let mut logged = history
        .alerts(TENANT, now - Days::days(1), now + Days::days(1), 100)
        .await
        .unwrap();
    logged.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    assert_eq!(logged, raised, "alert_log: one row per alert, none twice");
    let runs = store(&database).decisions_per_run().await.unwrap();
    assert!(
        runs.len() >= 4 && runs.iter().all(|(_, n)| *n == 3),
        "three decisions per run: {runs:?}"
    );
    eprintln!("grown sites: passed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn a_site_hovering_at_its_boundary_does_not_flap() {
    let started = Instant::now();
    let (_, _) = (brokers(), clickhouse_url()); // clear panic when the rig is not running
    let t = now_ms();
    let now = at(t);
    let alerts_topic = unique("tier-alerts");
    create_topics(&[&alerts_topic], 1).await;
    let rx = receiver(vec![200]).await;
    let url = rx.url.clone();

    // An L site (1,000 devices; over above 1,000, back only at 980 with the default 2%
    // hysteresis). Its count over the 60-day window moves as the window slides past old
    // sightings and as ingest writes new ones:
    //   975 devices seen an hour ago, 15 seen 45 days ago, 15 seen 57 days ago;
    //   later 15 more seen 50 days ago.
    let mut ingest = Ingest::start("recon_hover").await;
    let database = ingest.database.clone();
    let mut batch = devices("hover", 7, 0..975, t - 3_600_000);
    batch.extend(devices("hover", 7, 975..990, t - 45 * DAY_MS));
    batch.extend(devices("hover", 7, 990..1_005, t - 57 * DAY_MS));
    ingest.feed(batch).await;

    // Each run is a fresh reconciler (a restart) over the same state file.
    let run = |at: DateTime<Utc>| {
        let r = reconciler(
            book(now, &[("hover", "L")]),
            counts(&database),
            &database,
            &alerts_topic,
            AlertEncoding::Json,
            &url,
        );
        async move { r.run_once(at).await.unwrap() }
    };
    let mut raised: Vec<Alert> = Vec::new();
    let mut check = |r: RunReport, count: u64, status: &str, held: bool, alerts: usize| {
        let s = summary(&r);
        assert_eq!(r.decisions.len(), 1, "{s:?}");
        let d = &r.decisions[0];
        assert_eq!(d.count.value, count, "count at {}: {s:?}", r.decided_at);
        assert_eq!(d.status().transition_key(), status, "{s:?}");
        assert_eq!(d.outcome.held_by_hysteresis, held, "{s:?}");
        assert_eq!(
            r.alerts.len(),
            alerts,
            "alerts at {}: {:?}",
            r.decided_at,
            r.alerts
        );
        assert_eq!(r.pending, 0);
        raised.extend(r.alerts);
    };

    // 1,005 > 1,000: over tier, one alert.
    check(run(now).await, 1_005, "OVER_TIER:XL", false, 1);
    // Four days on, the 57-day-old devices left the window: 990 ≤ 1,000 but above 980.
    check(run(now + Days::days(4)).await, 990, "OVER_TIER:XL", true, 0);
    // Ingest writes 15 more (seen 50 days ago): back to 1,005.
    ingest
        .feed(devices("hover", 7, 1_005..1_020, t - 50 * DAY_MS))
        .await;
    ingest.stop().await;
    let n3 = now + Days::days(4) + Days::hours(1);
    check(run(n3).await, 1_005, "OVER_TIER:XL", false, 0);
    // Eleven days on, those left the window too: 990 again.
    check(
        run(now + Days::days(11)).await,
        990,
        "OVER_TIER:XL",
        true,
        0,
    );
    // Sixteen days on, the 45-day-old devices left: 975 clears the hysteresis margin,
    // the site is back under its tier (near its limit): one alert.
    let n5 = now + Days::days(16);
    check(run(n5).await, 975, "NEAR_LIMIT", false, 1);
    check(run(n5 + Days::hours(1)).await, 975, "NEAR_LIMIT", false, 0);

    assert_eq!(raised[0].old_status, "UNKNOWN");
    assert_eq!(raised[0].new_status, "OVER_TIER");
    assert_eq!(raised[0].device_count, 1_005);
    assert_eq!(raised[0].required_tier.as_deref(), Some("XL"));
    assert_eq!(raised[1].old_status, "OVER_TIER");
    assert_eq!(raised[1].new_status, "NEAR_LIMIT");
    assert_eq!(raised[1].device_count, 975);
    assert_eq!(raised[1].decided_at, n5);
    for a in &raised {
        assert_eq!(a.tenant, TENANT);
        assert_eq!(a.site.as_deref(), Some("hover"));
        assert_eq!(a.count_method, CountMethod::Exact);
        assert_eq!(a.licensed_tier.as_deref(), Some("L"));
    }
    assert_ne!(raised[0].idempotency_key, raised[1].idempotency_key);

    // The topic (JSON) and the webhook saw exactly these two alerts, in order.
    let on_topic =
        tokio::task::block_in_place(|| read_alerts(&alerts_topic, 2, Duration::from_secs(60)));
    let from_topic: Vec<Alert> = on_topic
        .iter()
        .map(|m| {
            assert_eq!(
                m.headers.get("content-type").map(String::as_str),
                Some("application/json")
            );
            let a: Alert = serde_json::from_slice(&m.payload).expect("JSON alert");
            assert_eq!(m.headers.get("idempotency-key"), Some(&a.idempotency_key));
            assert_eq!(m.key, a.subject.key().into_bytes());
            a
        })
        .collect();
    assert_eq!(from_topic, raised, "no flapping on {alerts_topic}");
    assert_eq!(webhook_alerts(&rx), raised, "no flapping at the webhook");
    eprintln!("hovering site: passed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ClickHouse: run scripts/test.sh"]
async fn licences_round_trip_through_the_clickhouse_table() {
    use sitetally_reconciler::licence_table::{import, load, LicenceTableError};
    let database = unique("recon_licences");
    let ch = store(&database);
    ch.migrate().await.unwrap();
    let settings = Settings::default();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/licences.toml");
    let from_file = sitetally_reconciler::licence_table::load_file(&example, &settings).unwrap();
    let n = import(&ch, &example, &settings).await.unwrap();
    assert_eq!(n, from_file.tenants.len());
    assert_eq!(
        load(&ch, &settings).await.unwrap(),
        from_file,
        "the table reads back as the file"
    );

    // A newer import of one tenant replaces only that tenant.
    let dir = std::env::temp_dir().join(format!("{database}-licences"));
    std::fs::create_dir_all(&dir).unwrap();
    let now = at(now_ms());
    let update = dir.join("update.toml");
    std::fs::write(
        &update,
        format!("[[tenants]]\nid = \"{TENANT}\"\n[[tenants.sites]]\nid = \"only-site\"\n"),
    )
    .unwrap();
    import(&ch, &update, &settings).await.unwrap();
    let book = load(&ch, &settings).await.unwrap();
    assert_eq!(
        book.tenants.len(),
        from_file.tenants.len() + usize::from(from_file.tenant(TENANT).is_none())
    );
    assert_eq!(book.tenant(TENANT).unwrap().sites.len(), 1);

    // A bad file is refused with the field named, and nothing is stored.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[tenants]]\nid = \"t\"\n[[tenants.sites]]\nid = \"s\"\n[[tenants.sites.licences]]\ntier = \"HUGE\"\nkind = \"paid\"\nstart = \"2026-01-01\"\n").unwrap();
    let e = import(&ch, &bad, &settings).await.unwrap_err().to_string();
    assert!(e.contains("tenants[0].sites[0]"), "{e}");
    assert!(load(&ch, &settings).await.unwrap().tenant("t").is_none());

    // A stored document that no longer validates is reported with its tenant.
    use sitetally_store::history::LicenceTable;
    let broken = r#"{"id": "broken", "colour": 1}"#.to_string();
    ch.put_licences(&[("broken".into(), broken)], 1)
        .await
        .unwrap();
    match load(&ch, &settings).await {
        Err(LicenceTableError::Stored { tenant, .. }) => assert_eq!(tenant, "broken"),
        other => panic!("expected the broken tenant to be named: {other:?}"),
    }
    let _ = (now, std::fs::remove_dir_all(&dir));
}
