//! ClickHouse stopped for 20 s mid-stream (60 s in the fault suite's long form): ingest
//! pauses, says so, resumes, loses nothing.
//! The test runs a ClickHouse of its own (scripts/rig-clickhouse.sh new): stopping the
//! rig's shared server failed the tests running beside it.

use crate::process_support::*;
use std::time::Duration;

/// A ClickHouse server of one test, stopped when dropped.
struct OwnClickHouse {
    dir: tempfile::TempDir,
    url: String,
}

impl OwnClickHouse {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Self::ctl(dir.path(), "new");
        let url = String::from_utf8(out).unwrap().trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "no server URL: {url:?}"
        );
        OwnClickHouse { dir, url }
    }

    fn ctl(dir: &std::path::Path, cmd: &str) -> Vec<u8> {
        rig_script("rig-clickhouse.sh", dir, &[cmd])
    }

    fn stop(&self) {
        Self::ctl(self.dir.path(), "stop");
    }

    fn start_again(&self) {
        Self::ctl(self.dir.path(), "start");
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn clickhouse_outage_pauses_and_resumes_without_loss() {
    let topic = unique("outage");
    let db = unique("outage");
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    // The second half holds devices the first half did not: it must reach ClickHouse.
    let size = 1500;
    let (msgs, truth) = workload(fault_sites(4), size as u32, 2);
    let (first_half, second_half): (Vec<_>, Vec<_>) = msgs
        .into_iter()
        .enumerate()
        .partition(|(i, _)| (i % size) < size / 2);
    let first_half: Vec<_> = first_half.into_iter().map(|(_, m)| m).collect();
    let second_half: Vec<_> = second_half.into_iter().map(|(_, m)| m).collect();
    let b = brokers();
    let clickhouse = OwnClickHouse::start();

    let mut ingest = IngestProcess::start_with_clickhouse(&topic, &db, &group, &clickhouse.url);
    let produced = produce_async(topic.clone(), first_half).await as i64;
    wait_until("the first half committed", Duration::from_secs(120), || {
        committed_total(&b, &group, &topic, 2) == produced
    })
    .await;

    clickhouse.stop();
    let total = produced + produce_async(topic.clone(), second_half).await as i64;
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while !ingest.logged("consumption paused") {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "ingest never reported the pause; logs:\n{}",
        ingest.dump()
    );
    let down = Duration::from_secs(if long_form() { 60 } else { 20 });
    tokio::time::sleep(down).await;
    assert_eq!(
        committed_total(&b, &group, &topic, 2),
        produced,
        "nothing may be committed while ClickHouse is down"
    );

    clickhouse.start_again();
    let back = std::time::Instant::now();
    wait_committed(
        "ingest to resume and commit everything",
        &b,
        &group,
        (&topic, 2),
        total,
        Duration::from_secs(180),
        &|| ingest.dump(),
    )
    .await;
    println!(
        "FAULT-OUTAGE | ClickHouse down {} s | {total} messages | ClickHouse back to all committed {:.1} s |",
        down.as_secs(),
        back.elapsed().as_secs_f64()
    );
    assert!(
        ingest.logged("consumption resumed"),
        "logs:\n{}",
        ingest.dump()
    );
    ingest.terminate();
    assert_counts_at(&clickhouse.url, &db, &truth).await;
}
