//! The fault suite's short form (issue 16): ingest as a process under faults a deployment
//! meets, each scenario ending with per-site exact and sketch counts compared with the
//! simulator's truth (`fault_report`: lost and unexpected devices, both must be 0).
//! Scenarios here: SIGTERM under load; the broker stopped and restarted on the same
//! storage mid-stream; ClickHouse answering slowly (a proxy delaying every answer). kill -9 and
//! a rebalance are in `process`, ClickHouse down in `outage`.

use crate::process_support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn sigterm_under_load_flushes_commits_and_exits() {
    let (topic, db) = (unique("sigterm"), unique("sigterm"));
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    let (msgs, truth) = workload(4, 3000, 2);
    let sent = produce_async(topic.clone(), msgs).await;
    let b = brokers();
    let mut first = IngestProcess::start(&topic, &db, &group);
    wait_until(
        "some commits before SIGTERM",
        Duration::from_secs(120),
        || committed_total(&b, &group, &topic, 2) > 0,
    )
    .await;
    let stopping = Instant::now();
    first.terminate();
    let stopped_in = stopping.elapsed();
    assert!(
        first.logged("shutdown requested") && first.logged("ingest stopped"),
        "a graceful stop is logged:\n{}",
        first.dump()
    );
    assert!(
        !first.logged("could not flush at shutdown"),
        "the batch in hand was flushed:\n{}",
        first.dump()
    );
    let at_stop = committed_total(&b, &group, &topic, 2);
    assert!(
        at_stop > 0 && at_stop < sent as i64,
        "stopped at {at_stop} of {sent}: not mid-stream, the test proved nothing; make the workload bigger"
    );
    // Whatever was committed is in storage; a second member finishes the rest.
    let mut second = IngestProcess::start(&topic, &db, &group);
    wait_until("the rest committed", Duration::from_secs(240), || {
        committed_total(&b, &group, &topic, 2) == sent as i64
    })
    .await;
    second.terminate();
    let (lost, unexpected) =
        fault_report("SIGTERM under load", &db, &truth, sent, stopped_in).await;
    assert_eq!((lost, unexpected), (0, 0));
}

/// A Tansu broker of this test's own (own port and sqlite storage), so stopping it
/// disturbs no other test.
struct OwnBroker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnBroker {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = OwnBroker {
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        b.launch();
        b
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts `tansu broker` on the same port and storage and waits until it listens.
    fn launch(&mut self) {
        let url = format!("tcp://{}", self.addr());
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu on PATH (scripts/rig.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the process to end.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn broker_restarted_mid_stream_loses_nothing() {
    let mut broker = OwnBroker::start();
    let kafka = broker.addr();
    let (topic, db) = (unique("brokerrestart"), unique("brokerrestart"));
    let group = format!("{topic}-g");
    create_topics_on(&kafka, &[&topic, &format!("{topic}.dlq")], 2).await;
    let (msgs, truth) = workload(4, 1500, 2);
    let half = msgs.len() / 2;
    let (first_half, second_half) = (msgs[..half].to_vec(), msgs[half..].to_vec());
    let produced = produce_on(&kafka, &topic, first_half);
    let mut ingest = IngestProcess::start_with(&topic, &db, &group, &kafka);
    wait_until("the first half committed", Duration::from_secs(120), || {
        committed_total(&kafka, &group, &topic, 2) == produced as i64
    })
    .await;

    broker.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restarted = Instant::now();
    broker.launch();
    let sent = produced + produce_on(&kafka, &topic, second_half);
    wait_until(
        "ingest to commit everything after the restart",
        Duration::from_secs(240),
        || committed_total(&kafka, &group, &topic, 2) == sent as i64,
    )
    .await;
    let recovery = restarted.elapsed();
    ingest.terminate();
    let (lost, unexpected) =
        fault_report("broker restarted mid-stream", &db, &truth, sent, recovery).await;
    assert_eq!((lost, unexpected), (0, 0), "logs:\n{}", ingest.dump());
}

/// A loopback TCP proxy to `upstream` that holds every chunk of the answer for `delay`:
/// a ClickHouse that answers slowly.
async fn delaying_proxy(upstream: String, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let requests = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    let _ = sw.shutdown().await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
                requests.abort();
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn slow_clickhouse_answers_lose_nothing() {
    let (topic, db) = (unique("slowch"), unique("slowch"));
    let group = format!("{topic}-g");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    let (msgs, truth) = workload(4, 1500, 2);
    let sent = produce_async(topic.clone(), msgs).await;
    let upstream = clickhouse_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // 400 ms per answer chunk: every insert and ping waits, well inside clickhouse.timeout.
    let proxy = delaying_proxy(upstream, Duration::from_millis(400)).await;
    let mut ingest =
        IngestProcess::start_with_clickhouse(&topic, &db, &group, &format!("http://{proxy}"));
    let started = Instant::now();
    let b = brokers();
    wait_until(
        "everything committed through the slow ClickHouse",
        Duration::from_secs(300),
        || committed_total(&b, &group, &topic, 2) == sent as i64,
    )
    .await;
    let took = started.elapsed();
    ingest.terminate();
    let (lost, unexpected) =
        fault_report("ClickHouse answering slowly", &db, &truth, sent, took).await;
    assert_eq!((lost, unexpected), (0, 0), "logs:\n{}", ingest.dump());
}
