//! The `sitetally ingest` process under faults, against the real broker and ClickHouse:
//! killed without warning, two instances rebalancing, ClickHouse stopped mid-stream.

#[path = "../../ingest/tests/support/mod.rs"]
mod support;

use sitetally_store::{CountFilter, DayRange, Store};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A running `sitetally ingest` child whose log lines are collected.
struct IngestProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl IngestProcess {
    fn start(topic: &str, db: &str, group: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sitetally"))
            .args(["ingest", "--brokers", &brokers(), "--topic", topic, "--group", group])
            .args(["--clickhouse-url", &clickhouse_url(), "--database", db])
            .env("SITETALLY_INGEST__BATCH__MAX_INTERVAL_MS", "300")
            .env("SITETALLY_INGEST__BATCH__MAX_ROWS", "5000")
            .env("SITETALLY_INGEST__BATCH__MAX_BACKOFF_MS", "1000")
            .env("SITETALLY_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sitetally ingest");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, logs }
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn dump(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    fn kill_hard(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: no flush, no commit, no goodbye
        self.child.wait().unwrap();
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for IngestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sites` sites of `size` devices, each device reported `reports` times by rotating
/// sensors and spellings; returns the messages and the true count per site.
fn workload(sites: u32, size: u32, reports: u32) -> (Vec<(Vec<u8>, Vec<u8>)>, HashMap<String, u64>) {
    let now = now_ms();
    let mut msgs = Vec::new();
    let mut truth = HashMap::new();
    for r in 0..reports {
        for s in 0..sites {
            for d in 0..size {
                let site = format!("site-{s}");
                let b = [0x02, 0x42, s as u8, (d >> 16) as u8, (d >> 8) as u8, d as u8];
                let mac = if (d + r) % 2 == 0 {
                    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
                } else {
                    b.iter().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join("-")
                };
                let payload = format!(
                    r#"{{"tenant":"acme","site":"{site}","sensor":"sensor-{}","observed_at":{now},"macs":["{mac}"],"category":"OT"}}"#,
                    (d + r) % 3
                );
                msgs.push((format!("acme/{site}").into_bytes(), payload.into_bytes()));
            }
            truth.insert(format!("site-{s}"), size as u64);
        }
    }
    (msgs, truth)
}

async fn assert_counts(db: &str, truth: &HashMap<String, u64>) {
    let s = store(db);
    let day = sitetally_core::day_of(now_ms());
    let days = DayRange { from: day - 1, to: day + 1 };
    let counts = s.site_counts(Some("acme"), days, &CountFilter::all()).await.unwrap();
    assert_eq!(counts.len(), truth.len(), "{counts:?}");
    for c in &counts {
        assert_eq!(Some(&c.count), truth.get(&c.site), "sketch count of {}", c.site);
        let exact = s.exact_site_count("acme", &c.site, days, &CountFilter::all()).await.unwrap();
        assert_eq!(Some(&exact), truth.get(&c.site), "exact count of {}", c.site);
    }
}

async fn produce_async(topic: String, msgs: Vec<(Vec<u8>, Vec<u8>)>) -> usize {
    tokio::task::spawn_blocking(move || produce(&topic, msgs)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn killed_without_warning_then_restarted_counts_the_same() {
    let topic = unique("kill");
    let db = unique("kill");
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 3).await;
    let (msgs, truth) = workload(6, 2000, 3);
    let total = produce_async(topic.clone(), msgs).await as i64;

    let mut first = IngestProcess::start(&topic, &db, &group);
    let b = brokers();
    wait_until("some progress before the kill", Duration::from_secs(120), || committed_total(&b, &group, &topic, 3) > 0).await;
    first.kill_hard();
    let at_kill = committed_total(&b, &group, &topic, 3);
    assert!(at_kill < total, "killed after the end ({at_kill}/{total}): the test proved nothing; make the workload bigger");

    let mut second = IngestProcess::start(&topic, &db, &group);
    wait_until("the restarted ingest to commit everything", Duration::from_secs(300), || {
        committed_total(&b, &group, &topic, 3) == total
    })
    .await;
    second.terminate();
    assert_counts(&db, &truth).await;
    // Redelivered rows may exist before merges; counting never uses row counts.
    let rows: u64 = store(&db).client().query(&format!("SELECT count() FROM {db}.sightings")).fetch_one().await.unwrap();
    assert!(rows >= truth.values().sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn two_instances_rebalance_mid_stream() {
    let topic = unique("rebalance");
    let db = unique("rebalance");
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 4).await;
    let (msgs, truth) = workload(8, 1500, 3);
    let total = produce_async(topic.clone(), msgs).await as i64;
    let b = brokers();

    let mut one = IngestProcess::start(&topic, &db, &group);
    wait_until("instance one to be assigned partitions", Duration::from_secs(60), || one.logged("partitions assigned")).await;
    wait_until("instance one to make progress", Duration::from_secs(120), || committed_total(&b, &group, &topic, 4) > 0).await;
    let two = IngestProcess::start(&topic, &db, &group);
    // The group must rebalance: instance one gives up partitions, instance two gets some.
    wait_until("a revocation on instance one", Duration::from_secs(90), || one.logged("partitions revoked")).await;
    let two_assigned = || two.logs.lock().unwrap().iter().any(|l| l.contains("partitions assigned") && l.contains(&topic));
    wait_until("instance two to be assigned partitions", Duration::from_secs(90), two_assigned)
        .await;
    // Then instance one leaves mid-stream (graceful), forcing a second rebalance.
    let before_leave = committed_total(&b, &group, &topic, 4);
    one.terminate();
    assert!(before_leave < total || one.logged("partitions revoked"), "stream finished before the rebalance");
    wait_until("instance two to commit everything", Duration::from_secs(300), || committed_total(&b, &group, &topic, 4) == total).await;
    let mut two = two;
    two.terminate();
    assert_counts(&db, &truth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn clickhouse_outage_pauses_and_resumes_without_loss() {
    let topic = unique("outage");
    let db = unique("outage");
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    // The second half holds devices the first half did not: it must reach ClickHouse.
    let (msgs, truth) = workload(4, 1500, 2);
    let (first_half, second_half): (Vec<_>, Vec<_>) =
        msgs.into_iter().enumerate().partition(|(i, _)| (i % 1500) < 750);
    let first_half: Vec<_> = first_half.into_iter().map(|(_, m)| m).collect();
    let second_half: Vec<_> = second_half.into_iter().map(|(_, m)| m).collect();
    let b = brokers();

    let mut ingest = IngestProcess::start(&topic, &db, &group);
    let produced = produce_async(topic.clone(), first_half).await as i64;
    wait_until("the first half committed", Duration::from_secs(120), || committed_total(&b, &group, &topic, 2) == produced).await;

    let rig = std::env::var("SITETALLY_TEST_RIG_DIR").expect("SITETALLY_TEST_RIG_DIR: run scripts/test.sh");
    let ctl = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/rig-clickhouse.sh");
    let stop = Command::new(ctl).arg("stop").env("SITETALLY_TEST_RIG_DIR", &rig).status().unwrap();
    assert!(stop.success());
    let total = produced + produce_async(topic.clone(), second_half).await as i64;
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while !ingest.logged("consumption paused") {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "ingest never reported the pause; logs:\n{}", ingest.dump());
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(committed_total(&b, &group, &topic, 2), produced, "nothing may be committed while ClickHouse is down");

    let start = Command::new(ctl).arg("start").env("SITETALLY_TEST_RIG_DIR", &rig).status().unwrap();
    assert!(start.success());
    wait_until("ingest to resume and commit everything", Duration::from_secs(180), || {
        committed_total(&b, &group, &topic, 2) == total
    })
    .await;
    assert!(ingest.logged("consumption resumed"), "logs:\n{}", ingest.dump());
    ingest.terminate();
    assert_counts(&db, &truth).await;
}
