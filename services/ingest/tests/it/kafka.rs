//! Ingest end to end against the real broker (Tansu, sqlite storage) and the real
//! ClickHouse started by scripts/test.sh.

use sitetally_store::{CountFilter, DayRange, Store};
use sitetally_testkit::rig::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn event(site: &str, sensor: &str, mac: &str, at: i64) -> Vec<u8> {
    format!(r#"{{"tenant":"acme","site":"{site}","sensor":"{sensor}","observed_at":{at},"macs":["{mac}"],"category":"OT"}}"#).into_bytes()
}

fn spell(i: u32, variant: u32) -> String {
    let b = [0x00, 0x1b, 0x00, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    match variant % 3 {
        0 => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        1 => b
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join("-"),
        _ => format!(
            "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn counts_dedup_and_dead_letters_end_to_end() {
    let topic = unique("e2e");
    let db = unique("e2e");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    let now = now_ms();
    let mut msgs = Vec::new();
    // site-a: 120 devices, each reported 3 times by 2 sensors in 3 spellings.
    for round in 0..3u32 {
        for i in 0..120u32 {
            let sensor = if (i + round) % 2 == 0 { "s1" } else { "s2" };
            msgs.push((
                b"acme/site-a".to_vec(),
                event("site-a", sensor, &spell(i, round + i), now),
            ));
        }
    }
    // site-b: 30 devices.
    for i in 0..30u32 {
        msgs.push((
            b"acme/site-b".to_vec(),
            event("site-b", "s9", &spell(1000 + i, i), now),
        ));
    }
    // Bad input of several kinds, and one public address (not a device, not bad).
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("json_decode", b"{not json".to_vec()),
        ("unknown_format", b"\x07garbage".to_vec()),
        ("truncated_header", vec![0, 0, 1]),
        ("unknown_schema", vec![0, 0, 0, 0, 42, 1, 2]),
        ("invalid_mac", event("site-a", "s1", "zz:zz", now)),
        (
            "timestamp_in_future",
            event("site-a", "s1", &spell(1, 0), now + 3_600_000),
        ),
        // Untrusted names: an ESC sequence (JSON-escaped) and a bidi override.
        (
            "forbidden_character",
            event("site-a\\u001b[2J", "s1", &spell(2, 0), now),
        ),
        (
            "forbidden_character",
            event("site-a", "s1\u{202e}", &spell(3, 0), now),
        ),
        // Another tenant on acme's topic (kafka.tenants = ["acme"]).
        (
            "tenant_not_allowed",
            format!(r#"{{"tenant":"intruder","site":"site-a","sensor":"s1","observed_at":{now},"macs":["{}"]}}"#, spell(4, 0)).into_bytes(),
        ),
    ];
    for (_, payload) in &bad {
        msgs.push((b"acme/site-a".to_vec(), payload.clone()));
    }
    msgs.push((
        b"acme/site-a".to_vec(),
        br#"{"tenant":"acme","site":"site-a","sensor":"s1","observed_at":0,"ips":["8.8.8.8"]}"#
            .to_vec(),
    ));
    // observed_at 0 is too old: make the public-IP event current.
    let last = msgs.len() - 1;
    msgs[last].1 = format!(
        r#"{{"tenant":"acme","site":"site-a","sensor":"s1","observed_at":{now},"ips":["8.8.8.8"]}}"#
    )
    .into_bytes();
    let mut total = produce(&topic, msgs) as u64;
    // A bad message with a header of its own: its dead letter must keep it.
    let traced = b"{traced, not json".to_vec();
    let p = producer();
    p.send(
        rdkafka::producer::BaseRecord::to(&topic)
            .key(b"acme/site-a")
            .payload(&traced)
            .headers(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "trace-id",
                    value: Some("abc-123"),
                }),
            ),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).unwrap();
    total += 1;

    let mut config = ingest_config(&topic, &db);
    config.kafka.tenants = vec!["acme".into()];
    let group = config.kafka.group_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ingest = tokio::spawn(sitetally_ingest::consumer::run(config, async {
        let _ = stop_rx.await;
    }));
    let b = brokers();
    wait_until(
        "ingest to commit every message",
        Duration::from_secs(120),
        || committed_total(&b, &group, &topic, 2) as u64 == total,
    )
    .await;
    stop_tx.send(()).unwrap();
    let report = ingest.await.unwrap().unwrap();
    assert_eq!(report.messages, total);
    assert_eq!(
        report.taken_in_batches, total,
        "every message came through the batch queue (partitions forwarded before assignment): {report:?}"
    );
    assert_eq!(report.rejected, bad.len() as u64 + 1);
    assert_eq!(report.not_a_device, 1);
    assert_eq!(
        report.new_devices, 150,
        "dedup writes each device once per day: {report:?}"
    );

    let s = store(&db);
    let day = sitetally_core::day_of(now);
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    let by_site: std::collections::HashMap<_, _> = counts
        .iter()
        .map(|c| (c.site.as_str(), c.count.value))
        .collect();
    assert_eq!(by_site.get("site-a"), Some(&120));
    assert_eq!(by_site.get("site-b"), Some(&30));
    assert_eq!(
        s.exact_site_count("acme", "site-a", days, &CountFilter::all())
            .await
            .unwrap(),
        120
    );

    let letters = read_all(
        &format!("{topic}.dlq"),
        bad.len() + 1,
        Duration::from_secs(30),
    );
    assert_eq!(
        letters.len(),
        bad.len() + 1,
        "exactly the bad messages are dead-lettered"
    );
    let traced_letter = letters
        .iter()
        .find(|l| l.payload == traced)
        .expect("the traced message in the DLQ");
    assert_eq!(
        traced_letter.headers.get("trace-id").map(String::as_str),
        Some("abc-123"),
        "the source message's own header is kept"
    );
    assert_eq!(
        traced_letter.headers.get("dlq.reason").map(String::as_str),
        Some("json_decode")
    );
    for (reason, payload) in &bad {
        let l = letters
            .iter()
            .find(|l| &l.payload == payload)
            .unwrap_or_else(|| panic!("{reason} missing from DLQ"));
        assert_eq!(
            l.headers.get("dlq.reason").map(String::as_str),
            Some(*reason)
        );
        assert_eq!(l.headers.get("dlq.source.topic"), Some(&topic));
        // Readers deduplicate a re-published letter on topic, partition and offset.
        for h in ["dlq.source.partition", "dlq.source.offset", "dlq.error"] {
            assert!(l.headers.contains_key(h), "{reason}: no {h}");
        }
    }
}

/// A Confluent-style registry on loopback that answers 503 until `up` is set.
fn flaky_registry(up: Arc<AtomicBool>, requests: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body =
        serde_json::json!({ "schema": sitetally_core::codec::BUNDLED_SCHEMAS[0].1 }).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            requests.fetch_add(1, Ordering::SeqCst);
            let reply = if up.load(Ordering::SeqCst) {
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn registry_outage_pauses_and_retries_without_dead_lettering() {
    let topic = unique("registry");
    let db = unique("registry");
    create_topics(&[&topic, &format!("{topic}.dlq")], 1).await;
    let now = now_ms();
    let schema = sitetally_core::codec::bundled_avro_schema(1).unwrap();
    let json_first = event("site-a", "s1", &spell(1, 0), now);
    let second = event("site-a", "s2", &spell(2, 0), now);
    let avro: sitetally_core::Discovery = serde_json::from_slice(&second).unwrap();
    let avro = sitetally_core::codec::encode_avro(&avro, 1, &schema).unwrap();
    produce(
        &topic,
        vec![(b"k".to_vec(), json_first), (b"k".to_vec(), avro)],
    );

    let up = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut config = ingest_config(&topic, &db);
    config.schema_registry_url = Some(flaky_registry(up.clone(), requests.clone()));
    config.batch.initial_backoff_ms = 200;
    config.batch.max_backoff_ms = 1_000;
    let group = config.kafka.group_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ingest = tokio::spawn(sitetally_ingest::consumer::run(config, async {
        let _ = stop_rx.await;
    }));
    let b = brokers();
    let mut watch = CommitWatcher::new(&b, &group, &topic, 1);
    // The JSON message before it is written and committed; the Avro one waits for the registry.
    wait_until(
        "the message before the outage to be committed",
        Duration::from_secs(90),
        || watch.total() == 1,
    )
    .await;
    wait_until(
        "ingest to ask the registry again (retry)",
        Duration::from_secs(30),
        || requests.load(Ordering::SeqCst) >= 3,
    )
    .await;
    assert_eq!(
        watch.total(),
        1,
        "nothing past the message that needs the registry is committed"
    );
    assert!(
        !ingest.is_finished(),
        "ingest keeps running through a registry outage"
    );

    up.store(true, Ordering::SeqCst);
    wait_until(
        "the retried message to be committed",
        Duration::from_secs(60),
        || watch.total() == 2,
    )
    .await;
    let s = store(&db);
    let day = sitetally_core::day_of(now);
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    assert_eq!(
        s.exact_site_count("acme", "site-a", days, &CountFilter::all())
            .await
            .unwrap(),
        2,
        "the retried Avro device is counted"
    );
    stop_tx.send(()).unwrap();
    let report = ingest.await.unwrap().unwrap();
    assert!(report.registry_retries >= 2, "{report:?}");
    assert_eq!(report.dead_letters_published, 0);
    let letters = read_all(&format!("{topic}.dlq"), 1, Duration::from_secs(5));
    assert!(
        letters.is_empty(),
        "a registry outage must not dead-letter good data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn caught_up_ingest_flushes_without_waiting_for_the_interval() {
    let topic = unique("idle");
    let db = unique("idle");
    create_topics(&[&topic, &format!("{topic}.dlq")], 1).await;
    let now = now_ms();
    let total = produce(
        &topic,
        (0..25u32).map(|i| (b"k".to_vec(), event("site-idle", "s1", &spell(i, i), now))),
    ) as u64;

    let mut config = ingest_config(&topic, &db);
    // Neither size nor interval would flush within the test's patience: only the idle
    // flush (batch.idle_flush_ms, default 200 ms) can write and commit these.
    config.batch.max_rows = 1_000_000;
    config.batch.max_interval_ms = 600_000;
    assert_eq!(config.batch.idle_flush_ms, 200);
    let group = config.kafka.group_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ingest = tokio::spawn(sitetally_ingest::consumer::run(config, async {
        let _ = stop_rx.await;
    }));
    let b = brokers();
    let mut watch = CommitWatcher::new(&b, &group, &topic, 1);
    wait_until(
        "the idle flush to commit every message",
        Duration::from_secs(90),
        || watch.total() as u64 == total,
    )
    .await;
    let s = store(&db);
    let day = sitetally_core::day_of(now);
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    assert_eq!(
        s.exact_site_count("acme", "site-idle", days, &CountFilter::all())
            .await
            .unwrap(),
        25
    );
    stop_tx.send(()).unwrap();
    let report = ingest.await.unwrap().unwrap();
    assert_eq!(report.rows_written, 25);
    assert!(
        report.first_message_after_ms.is_some(),
        "the report says when the first message came"
    );
}
