//! Helpers of the process-level fault tests: a `sitetally ingest` child with captured
//! logs, a workload with known truth, and count checks against ClickHouse.

use sitetally_store::{CountFilter, DayRange, Store};
pub use sitetally_testkit::rig::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Kafka message: key and payload.
pub type KeyedMessage = (Vec<u8>, Vec<u8>);

/// A running `sitetally ingest` child whose log lines are collected.
pub struct IngestProcess {
    pub child: Child,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl IngestProcess {
    pub fn start(topic: &str, db: &str, group: &str) -> Self {
        Self::start_with(topic, db, group, &brokers())
    }

    /// [`IngestProcess::start`] against the broker at `bootstrap`.
    pub fn start_with(topic: &str, db: &str, group: &str, bootstrap: &str) -> Self {
        Self::spawn(topic, db, group, bootstrap, &clickhouse_url())
    }

    /// [`IngestProcess::start`] writing to the ClickHouse at `url` (e.g. a proxy).
    pub fn start_with_clickhouse(topic: &str, db: &str, group: &str, url: &str) -> Self {
        Self::spawn(topic, db, group, &brokers(), url)
    }

    fn spawn(topic: &str, db: &str, group: &str, bootstrap: &str, clickhouse: &str) -> Self {
        Self::spawn_with_env(topic, db, group, bootstrap, clickhouse, &[])
    }

    /// A child with extra environment (`SITETALLY_INGEST__...` settings).
    pub fn spawn_with_env(
        topic: &str,
        db: &str,
        group: &str,
        bootstrap: &str,
        clickhouse: &str,
        env: &[(&str, &str)],
    ) -> Self {
        // Short group timeouts: after a kill -9 the broker may hold a rebalance until the
        // dead member's session expires (or, in Tansu, up to the rebalance timeout, which
        // librdkafka sets to max.poll.interval.ms: 300 s by default).
        let session = Duration::from_secs(10);
        Self::spawn_with_session(topic, db, group, (bootstrap, clickhouse), env, session)
    }

    /// [`IngestProcess::spawn_with_env`] with the group session timeout `session`.
    pub fn spawn_with_session(
        topic: &str,
        db: &str,
        group: &str,
        (bootstrap, clickhouse): (&str, &str),
        env: &[(&str, &str)],
        session: Duration,
    ) -> Self {
        let config =
            std::env::temp_dir().join(format!("{group}-{}-ingest.toml", std::process::id()));
        std::fs::write(
            &config,
            format!(
                "[kafka.properties]\n\"session.timeout.ms\" = \"{}\"\n\"max.poll.interval.ms\" = \"60000\"\n",
                session.as_millis()
            ),
        )
        .expect("write the ingest config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sitetally"))
            .args(["ingest", "--config"])
            .arg(&config)
            .args([
                "--kafka-brokers",
                bootstrap,
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args(["--clickhouse-url", clickhouse, "--database", db])
            .env("SITETALLY_INGEST__BATCH__MAX_INTERVAL_MS", "300")
            // Small batches: ingest reads a whole Tansu fetch in milliseconds, so many small
            // synchronous flushes are what spread its commits over the stream and let a
            // kill or a rebalance land mid-stream.
            .env("SITETALLY_INGEST__BATCH__MAX_ROWS", "300")
            .env("SITETALLY_INGEST__BATCH__MAX_BACKOFF_MS", "1000")
            .env("SITETALLY_LOG", "info,librdkafka=warn,rdkafka=warn")
            .envs(env.iter().copied())
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

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Whether the group gave this member partitions (ingest logs an empty assignment as
    /// the warning "no partitions assigned" instead).
    pub fn given_partitions(&self) -> bool {
        self.logged("partitions assigned partitions=")
    }

    pub fn dump(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: no flush, no commit, no goodbye
        self.child.wait().unwrap();
    }

    pub fn terminate(&mut self) {
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
pub fn workload(sites: u32, size: u32, reports: u32) -> (Vec<KeyedMessage>, HashMap<String, u64>) {
    let now = now_ms();
    let mut msgs = Vec::new();
    let mut truth = HashMap::new();
    for r in 0..reports {
        for s in 0..sites {
            for d in 0..size {
                let site = format!("site-{s}");
                let b = [
                    0x02,
                    0x42,
                    s as u8,
                    (d >> 16) as u8,
                    (d >> 8) as u8,
                    d as u8,
                ];
                let mac = if (d + r) % 2 == 0 {
                    b.iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                } else {
                    b.iter()
                        .map(|x| format!("{x:02X}"))
                        .collect::<Vec<_>>()
                        .join("-")
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

pub async fn assert_counts(db: &str, truth: &HashMap<String, u64>) {
    assert_counts_at(&clickhouse_url(), db, truth).await
}

/// [`assert_counts`] on the ClickHouse at `url`.
pub async fn assert_counts_at(url: &str, db: &str, truth: &HashMap<String, u64>) {
    let s = store_at(url, db);
    let day = sitetally_core::day_of(now_ms());
    let days = DayRange {
        from: day - 1,
        to: day + 1,
        since_ms: None,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(counts.len(), truth.len(), "{counts:?}");
    for c in &counts {
        assert_eq!(
            Some(&c.count.value),
            truth.get(&c.site),
            "sketch count of {}",
            c.site
        );
        let exact = s
            .exact_site_count("acme", &c.site, days, &CountFilter::all())
            .await
            .unwrap();
        assert_eq!(
            Some(&exact),
            truth.get(&c.site),
            "exact count of {}",
            c.site
        );
    }
}

/// [`produce_async`] to the broker at `bootstrap`.
pub async fn produce_on_async(bootstrap: &str, topic: &str, msgs: Vec<KeyedMessage>) -> usize {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || produce_on(&bootstrap, &topic, msgs))
        .await
        .unwrap()
}

pub async fn produce_async(topic: String, msgs: Vec<(Vec<u8>, Vec<u8>)>) -> usize {
    tokio::task::spawn_blocking(move || produce(&topic, msgs))
        .await
        .unwrap()
}

/// The end of a fault scenario: per-site exact and sketch counts against the truth, in
/// Jepsen's words (lost: true devices not counted; unexpected: counted beyond the truth),
/// printed as one `FAULT-REPORT` line for load-tests/RESULTS.md. Returns (lost,
/// unexpected) summed over sites.
pub async fn fault_report(
    scenario: &str,
    db: &str,
    truth: &HashMap<String, u64>,
    sent: usize,
    recovery: Duration,
) -> (u64, u64) {
    let s = store(db);
    let day = sitetally_core::day_of(now_ms());
    let days = DayRange {
        from: day - 1,
        to: day + 1,
        since_ms: None,
    };
    let sketch: HashMap<String, u64> = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.site, c.count.value))
        .collect();
    let (mut lost, mut unexpected, mut counted) = (0u64, 0u64, 0u64);
    for (site, &want) in truth {
        let exact = s
            .exact_site_count("acme", site, days, &CountFilter::all())
            .await
            .unwrap();
        counted += exact;
        lost += want.saturating_sub(exact);
        unexpected += exact.saturating_sub(want);
        let est = sketch.get(site).copied().unwrap_or(0);
        lost += want.saturating_sub(est);
        unexpected += est.saturating_sub(want);
    }
    let rows = s.sighting_rows().await.unwrap();
    println!(
        "FAULT-REPORT | {scenario} | {sent} | {} | {counted} | {lost} | {unexpected} | {rows} | {:.1} |",
        truth.values().sum::<u64>(),
        recovery.as_secs_f64()
    );
    (lost, unexpected)
}

/// Runs `scripts/NAME ARGS` on the rig directory `dir` (a test's own servers); its stdout.
pub fn rig_script(name: &str, dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name);
    let out = Command::new(&script)
        .args(args)
        .env("SITETALLY_TEST_RIG_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `msgs` with a malformed message after every `every` of them, rotating through kinds
/// ingest must dead-letter (not JSON, no tenant, a control character in a name); returns
/// the messages and how many are malformed.
pub fn with_malformed(msgs: Vec<KeyedMessage>, every: usize) -> (Vec<KeyedMessage>, u64) {
    let now = now_ms();
    let mut out = Vec::with_capacity(msgs.len() + msgs.len() / every + 1);
    let mut malformed = 0u64;
    for (i, m) in msgs.into_iter().enumerate() {
        out.push(m);
        if (i + 1) % every == 0 {
            let payload = match malformed % 3 {
                0 => b"{not json".to_vec(),
                1 => format!(
                    r#"{{"site":"site-0","sensor":"s","observed_at":{now},"macs":["02:42:00:00:00:01"],"category":"OT"}}"#
                )
                .into_bytes(),
                _ => format!(
                    r#"{{"tenant":"ac\u0007me","site":"site-0","sensor":"s","observed_at":{now},"macs":["02:42:00:00:00:01"],"category":"OT"}}"#
                )
                .into_bytes(),
            };
            out.push((b"acme/site-0".to_vec(), payload));
            malformed += 1;
        }
    }
    (out, malformed)
}

/// The dead-letter topic of `topic` against the malformed messages sent: every one is
/// there, told apart by its source partition and offset (headers every dead letter
/// carries); copies of one source message are redeliveries, which DLQ readers drop on
/// those headers. Prints a `FAULT-DLQ` line; returns (distinct, duplicates).
pub fn dlq_census(scenario: &str, bootstrap: &str, topic: &str, malformed: u64) -> (u64, u64) {
    let letters = read_all_on(
        bootstrap,
        &format!("{topic}.dlq"),
        malformed as usize,
        Duration::from_secs(60),
    );
    let mut sources = std::collections::HashSet::new();
    for l in &letters {
        let header = |k: &str| {
            l.headers
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("a dead letter without {k}: {:?}", l.headers))
        };
        assert_eq!(header("dlq.source.topic"), topic);
        sources.insert((header("dlq.source.partition"), header("dlq.source.offset")));
    }
    let distinct = sources.len() as u64;
    let duplicates = letters.len() as u64 - distinct;
    println!("FAULT-DLQ | {scenario} | {malformed} | {distinct} | {duplicates} |");
    (distinct, duplicates)
}

/// The fault suite's long form (`SITETALLY_FAULTS_LONG=1`): bigger workloads, a longer
/// storm, ClickHouse down for 60 s. The short form runs in scripts/test.sh.
pub fn long_form() -> bool {
    std::env::var_os("SITETALLY_FAULTS_LONG").is_some()
}

/// Sites of a fault scenario: `n`, four times as many in the long form (more sites, not
/// bigger ones: every site stays under the sketches' exact limit of 8,192 devices, so the
/// sketch count must equal the truth exactly).
pub fn fault_sites(n: u32) -> u32 {
    if long_form() {
        n * 4
    } else {
        n
    }
}

/// What the proxy does with a chunk of ClickHouse's answer.
pub enum Answer {
    /// Forward it after this long.
    After(Duration),
    /// Drop it and close the connection: the client never sees the answer.
    Withhold,
    /// Forward it, then run this (the client has its answer by then).
    ForwardThen(Box<dyn FnOnce() + Send>),
}

/// A loopback TCP proxy to `upstream`. `on_answer(after_insert)` decides each chunk of the
/// answers, `after_insert` saying whether the connection sent an insert into `sightings`.
pub async fn proxy(
    upstream: String,
    on_answer: impl Fn(bool) -> Answer + Send + Sync + 'static,
) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let on_answer = std::sync::Arc::new(on_answer);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, on_answer) = (upstream.clone(), on_answer.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let insert = std::sync::Arc::new(AtomicBool::new(false));
                let saw_insert = insert.clone();
                let requests = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let chunk = String::from_utf8_lossy(&buf[..n]);
                        if chunk.contains("INSERT") && chunk.contains("sightings") {
                            saw_insert.store(true, Ordering::SeqCst);
                        }
                    }
                    let _ = sw.shutdown().await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let (delay, then) = match on_answer(insert.load(Ordering::SeqCst)) {
                        Answer::Withhold => break,
                        Answer::After(delay) => (delay, None),
                        Answer::ForwardThen(then) => (Duration::ZERO, Some(then)),
                    };
                    tokio::time::sleep(delay).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if let Some(then) = then {
                        then();
                    }
                }
                let _ = cw.shutdown().await;
                requests.abort();
            });
        }
    });
    addr
}

/// The URL of a proxy to the rig's ClickHouse that holds every answer chunk `delay`: a
/// ClickHouse answering slowly, or a bound on ingest's rate on any machine (a test that
/// must stop ingest mid-stream).
pub async fn slow_clickhouse(delay: Duration) -> String {
    let upstream = clickhouse_host_port();
    format!(
        "http://{}",
        proxy(upstream, move |_| Answer::After(delay)).await
    )
}

/// The rig's ClickHouse as `host:port`, for a [`proxy`] in front of it.
pub fn clickhouse_host_port() -> String {
    clickhouse_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}
