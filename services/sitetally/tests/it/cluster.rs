//! The cluster layout on a real cluster (scripts/rig-cluster.sh: ZooKeeper and four
//! clickhouse-server processes, 2 shards x 2 replicas): `migrate --cluster`, ingest of a
//! simulated world through the broker with one replica of each shard stopped half-way,
//! then counts from every node and through the API against the simulator's truth, and
//! the replicas of each shard holding the same rows once the stopped ones caught up.

use crate::api_support::{Server, TempDir, BIN};
use crate::process_support::*;
use sitetally_sensor_sim::{EventStream, SimConfig, SizeProfile, World};
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore, SKETCH_EXACT_LIMIT};
use sitetally_store::{CountFilter, DayRange, Store};
use sitetally_testkit::sample::ADMIN_TOKEN;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLUSTER: &str = "sitetally";

/// One node of the rig's cluster.
struct Node {
    name: String,
    shard: u8,
    url: String,
}

/// A cluster of one test, stopped when dropped.
struct OwnCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl OwnCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Self::ctl(dir.path(), &["start"]);
        let nodes: Vec<Node> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Node {
                    name: f[0].to_string(),
                    shard: f[1].parse().unwrap(),
                    url: f[2].to_string(),
                }
            })
            .collect();
        assert_eq!(nodes.len(), 4, "2 shards x 2 replicas");
        OwnCluster { dir, nodes }
    }

    fn ctl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
        rig_script("rig-cluster.sh", dir, args)
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    fn stop_node(&self, name: &str) {
        Self::ctl(self.dir.path(), &["stop-node", name]);
    }

    fn start_node(&self, name: &str) {
        Self::ctl(self.dir.path(), &["start-node", name]);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        Self::ctl(self.dir.path(), &["stop"]);
    }
}

/// One SQL statement over HTTP; the answer's text, or the server's error.
fn sql(url: &str, query: &str) -> Result<String, String> {
    let reply = reqwest::blocking::Client::new()
        .post(url)
        .body(query.to_string())
        .send()
        .map_err(|e| e.to_string())?;
    let ok = reply.status().is_success();
    let text = reply.text().map_err(|e| e.to_string())?;
    if ok {
        Ok(text.trim().to_string())
    } else {
        Err(text)
    }
}

fn cluster_store(url: &str, db: &str) -> ClickHouseStore {
    ClickHouseStore::new(&ClickHouseConfig {
        url: url.to_string(),
        database: db.to_string(),
        cluster: Some(CLUSTER.to_string()),
        ..Default::default()
    })
    .unwrap()
}

/// A time whose simulated day (the events fall in the `recent_window_ms` before it,
/// within its UTC day) is one whole UTC day, and not in the future.
fn sim_now(window_ms: i64) -> i64 {
    let now = now_ms();
    let day_start = now - now.rem_euclid(86_400_000);
    if now - day_start > window_ms + 60_000 {
        now
    } else {
        day_start - 60_000
    }
}

#[test]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
fn sharded_replicated_cluster_counts_right_through_a_replica_outage() {
    let started = Instant::now();
    let cluster = OwnCluster::start();
    let cluster_up = started.elapsed();
    let entry = cluster.node("s1r1").url.clone();
    let db = unique("cluster");

    // migrate --cluster: every node holds the local tables and the Distributed ones.
    let migrate = |extra: &[&str]| {
        Command::new(BIN)
            .args(["migrate", "--clickhouse-url", &entry, "--database", &db])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = migrate(&["--cluster", CLUSTER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in &cluster.nodes {
        let engines = sql(
            &node.url,
            &format!("SELECT name, engine FROM system.tables WHERE database = '{db}' ORDER BY name FORMAT TSV"),
        )
        .unwrap();
        let engines: BTreeMap<&str, &str> =
            engines.lines().filter_map(|l| l.split_once('\t')).collect();
        assert_eq!(
            engines.get("sightings"),
            Some(&"Distributed"),
            "{}: {engines:?}",
            node.name
        );
        assert_eq!(
            engines.get("site_devices_daily"),
            Some(&"Distributed"),
            "{}",
            node.name
        );
        assert_eq!(
            engines.get("sightings_local"),
            Some(&"ReplicatedReplacingMergeTree"),
            "{}",
            node.name
        );
        assert_eq!(
            engines.get("site_devices_daily_local"),
            Some(&"ReplicatedAggregatingMergeTree"),
            "{}",
            node.name
        );
        for table in [
            "alert_state",
            "alert_log",
            "reconciliation_runs",
            "licences",
            "schema_migrations",
        ] {
            assert!(
                engines
                    .get(table)
                    .is_some_and(|e| e.starts_with("Replicated")),
                "{}: {table} is replicated whole: {engines:?}",
                node.name
            );
        }
    }
    // The same database without --cluster is refused, not written as one server.
    let out = migrate(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("laid out on a cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A simulated world, every device below the exact limit so sketch counts are exact.
    let mut config = SimConfig::new(15, 40);
    config.sizes = SizeProfile::Realistic { min: 5, max: 2_000 };
    config.reports_per_device = 2;
    config.malformed_fraction = 0.01;
    let now = sim_now(config.recent_window_ms);
    let world = Arc::new(World::new(config).unwrap());
    let mut stream = EventStream::new(world.clone(), now);
    let messages: Vec<KeyedMessage> = stream.by_ref().map(|m| (m.key, m.payload)).collect();
    let truth = stream.truth();
    assert!(truth.sites.iter().all(|s| s.devices < SKETCH_EXACT_LIMIT));
    let sent = messages.len();
    let half = sent / 2;
    let mut first_half = messages;
    let second_half = first_half.split_off(half);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique("cluster");
    let group = format!("{topic}-g");
    let b = brokers();
    rt.block_on(create_topics(&[&topic, &format!("{topic}.dlq")], 4));
    let ingest_started = Instant::now();
    let mut ingest = IngestProcess::spawn_with_env(
        &topic,
        &db,
        &group,
        &b,
        &entry,
        &[("SITETALLY_CLICKHOUSE_CLUSTER", CLUSTER)],
    );
    let produced = produce(&topic, first_half) as i64;
    rt.block_on(wait_until(
        "ingest to commit the first half",
        Duration::from_secs(240),
        || committed_total(&b, &group, &topic, 4) == produced,
    ));

    // One replica of each shard goes down; the second half goes to the survivors.
    let local_rows = |url: &str, table: &str| {
        sql(url, &format!("SELECT count() FROM {db}.{table}_local"))
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    };
    let before_stop: Vec<u64> = ["s1r2", "s2r1"]
        .iter()
        .map(|n| local_rows(&cluster.node(n).url, "sightings").unwrap())
        .collect();
    cluster.stop_node("s1r2");
    cluster.stop_node("s2r1");
    let total = produced + produce(&topic, second_half) as i64;
    rt.block_on(wait_until(
        "ingest to commit the second half with a replica of each shard down",
        Duration::from_secs(240),
        || committed_total(&b, &group, &topic, 4) == total,
    ));
    let ingest_time = ingest_started.elapsed();
    ingest.terminate();
    assert!(
        !ingest.logged("consumption paused"),
        "a shard with a live replica takes inserts; logs:\n{}",
        ingest.dump()
    );

    // The stopped replicas come back and catch up from their shard's other replica.
    let restarted = Instant::now();
    cluster.start_node("s1r2");
    cluster.start_node("s2r1");
    let mut rows_per_shard: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
    for shard in [1u8, 2] {
        let replicas: Vec<&Node> = cluster.nodes.iter().filter(|n| n.shard == shard).collect();
        // Blocking HTTP: polled here, not inside the async runtime.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !["sightings", "site_devices_daily"].iter().all(|table| {
            let a = local_rows(&replicas[0].url, table);
            a.is_some() && a == local_rows(&replicas[1].url, table)
        }) {
            assert!(
                Instant::now() < deadline,
                "the replicas of shard {shard} still differ after 120 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        rows_per_shard.insert(
            shard,
            (
                local_rows(&replicas[0].url, "sightings").unwrap(),
                local_rows(&replicas[0].url, "site_devices_daily").unwrap(),
            ),
        );
    }
    let caught_up = restarted.elapsed();
    // The restarted replicas hold rows inserted while they were down.
    for (name, before) in ["s1r2", "s2r1"].iter().zip(&before_stop) {
        let now_held = local_rows(&cluster.node(name).url, "sightings").unwrap();
        assert!(
            now_held > *before,
            "{name}: {before} rows before its stop, {now_held} after"
        );
    }
    // Both shards hold sites, no site on both: a site's rows live on one shard.
    let sites_of = |url: &str| -> BTreeSet<String> {
        sql(
            url,
            &format!(
                "SELECT DISTINCT concat(tenant, '/', site) FROM {db}.sightings_local FORMAT TSV"
            ),
        )
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
    };
    let (shard1, shard2) = (
        sites_of(&cluster.node("s1r2").url),
        sites_of(&cluster.node("s2r1").url),
    );
    assert!(
        !shard1.is_empty() && !shard2.is_empty(),
        "{shard1:?} {shard2:?}"
    );
    assert!(
        shard1.is_disjoint(&shard2),
        "{:?}",
        shard1.intersection(&shard2)
    );
    assert_eq!(shard1.len() + shard2.len(), truth.sites.len());

    // Counts, sketch and exact, from every node equal the truth: nothing lost while the
    // replicas were down, nothing counted twice by retried inserts.
    let day = sitetally_core::day_of(now);
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    for node in &cluster.nodes {
        let store = cluster_store(&node.url, &db);
        let counted: HashMap<(String, String), u64> = rt
            .block_on(store.site_counts(None, days, &CountFilter::all()))
            .unwrap()
            .into_iter()
            .map(|c| ((c.tenant, c.site), c.count.value))
            .collect();
        assert_eq!(
            counted.len(),
            truth.sites.len(),
            "{}: no phantom sites",
            node.name
        );
        for site in &truth.sites {
            let key = (site.tenant.clone(), site.site.clone());
            assert_eq!(
                counted.get(&key),
                Some(&site.devices),
                "{}: sketch count of {key:?}",
                node.name
            );
            let exact = rt
                .block_on(store.exact_site_count(
                    &site.tenant,
                    &site.site,
                    days,
                    &CountFilter::all(),
                ))
                .unwrap();
            assert_eq!(exact, site.devices, "{}: exact count of {key:?}", node.name);
        }
    }
    // Every malformed message dead-lettered, nothing else.
    let letters = read_all(
        &format!("{topic}.dlq"),
        truth.malformed_total() as usize,
        Duration::from_secs(60),
    );
    assert_eq!(letters.len() as u64, truth.malformed_total());

    // The API on a restarted replica serves the same counts.
    let dir = TempDir::new("cluster-api");
    let now_utc = chrono::DateTime::from_timestamp_millis(now).unwrap();
    std::fs::write(
        dir.path().join("licences.json"),
        sitetally_demo::licences::licence_file(&world, now_utc).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tokens.toml"),
        sitetally_testkit::sample::tokens_toml(),
    )
    .unwrap();
    let replica = cluster.node("s2r1").url.clone();
    let server = Server::start(&[
        "--clickhouse-url",
        &replica,
        "--database",
        &db,
        "--cluster",
        CLUSTER,
        "--licences",
        dir.path().join("licences.json").to_str().unwrap(),
        "--tokens",
        dir.path().join("tokens.toml").to_str().unwrap(),
    ]);
    let date = now_utc.format("%Y-%m-%d");
    for site in &truth.sites {
        let path = format!(
            "/api/v1/tenants/{}/sites/{}/counts?from={date}&to={date}&granularity=day",
            site.tenant, site.site
        );
        let reply = server.get(&path, Some(ADMIN_TOKEN), None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let answer = reply.json();
        let all = answer["counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["category"] == "ALL")
            .unwrap_or_else(|| panic!("{path}: no ALL row: {answer}"));
        assert_eq!(
            all["devices"].as_u64(),
            Some(site.devices),
            "{path}: {answer}"
        );
    }
    println!(
        "CLUSTER-REPORT | sent {sent} | sites {} | devices {} | dead letters {} | cluster up {:.1}s | ingest {:.1}s | catch-up {:.1}s | sightings rows per shard {:?} | sketch rows per shard {:?} |",
        truth.sites.len(),
        truth.sites.iter().map(|s| s.devices).sum::<u64>(),
        letters.len(),
        cluster_up.as_secs_f64(),
        ingest_time.as_secs_f64(),
        caught_up.as_secs_f64(),
        rows_per_shard.values().map(|r| r.0).collect::<Vec<_>>(),
        rows_per_shard.values().map(|r| r.1).collect::<Vec<_>>(),
    );
}
