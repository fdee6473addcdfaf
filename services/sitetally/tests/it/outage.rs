//! ClickHouse stopped for 20 s mid-stream: ingest pauses, says so, resumes, loses nothing.
//! Its own test binary: it stops the shared ClickHouse, which no other test may see.

use crate::process_support::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn clickhouse_outage_pauses_and_resumes_without_loss() {
    let topic = unique("outage");
    let db = unique("outage");
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    // The second half holds devices the first half did not: it must reach ClickHouse.
    let (msgs, truth) = workload(4, 1500, 2);
    let (first_half, second_half): (Vec<_>, Vec<_>) = msgs
        .into_iter()
        .enumerate()
        .partition(|(i, _)| (i % 1500) < 750);
    let first_half: Vec<_> = first_half.into_iter().map(|(_, m)| m).collect();
    let second_half: Vec<_> = second_half.into_iter().map(|(_, m)| m).collect();
    let b = brokers();

    let mut ingest = IngestProcess::start(&topic, &db, &group);
    let produced = produce_async(topic.clone(), first_half).await as i64;
    wait_until("the first half committed", Duration::from_secs(120), || {
        committed_total(&b, &group, &topic, 2) == produced
    })
    .await;

    let rig = std::env::var("SITETALLY_TEST_RIG_DIR")
        .expect("SITETALLY_TEST_RIG_DIR: run scripts/test.sh");
    let ctl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/rig-clickhouse.sh"
    );
    let stop = Command::new(ctl)
        .arg("stop")
        .env("SITETALLY_TEST_RIG_DIR", &rig)
        .status()
        .unwrap();
    assert!(stop.success());
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
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        committed_total(&b, &group, &topic, 2),
        produced,
        "nothing may be committed while ClickHouse is down"
    );

    let start = Command::new(ctl)
        .arg("start")
        .env("SITETALLY_TEST_RIG_DIR", &rig)
        .status()
        .unwrap();
    assert!(start.success());
    wait_until(
        "ingest to resume and commit everything",
        Duration::from_secs(180),
        || committed_total(&b, &group, &topic, 2) == total,
    )
    .await;
    assert!(
        ingest.logged("consumption resumed"),
        "logs:\n{}",
        ingest.dump()
    );
    ingest.terminate();
    assert_counts(&db, &truth).await;
}
