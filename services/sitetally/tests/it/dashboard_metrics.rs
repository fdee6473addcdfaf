//! Every metric the Grafana dashboard (deploy/grafana/dashboards/sitetally.json) queries
//! is exported: ingest, the reconciler and the API run as processes against the rig, do
//! some work, and their /metrics are scraped and compared with the dashboard's queries.

use crate::api_support::{http_get, Server};
use crate::process_support::*;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DASHBOARD: &str = "deploy/grafana/dashboards/sitetally.json";

/// The `sitetally_*` series names in the dashboard's PromQL expressions.
fn dashboard_series() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DASHBOARD);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in doc["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            names.extend(series_names(target["expr"].as_str().unwrap()));
        }
    }
    names
}

/// The `sitetally_*` identifiers in a text (a PromQL expression or an exposition).
fn series_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("sitetally_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The series names with samples in an exposition (comment lines left out).
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(series_names)
        .collect()
}

/// The value of the first sample of `series` whose labels contain `labels`.
fn sample(exposition: &str, series: &str, labels: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with(series) && l.contains(labels))
        .find(|l| l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn scrape(addr: &str) -> String {
    http_get(addr, "/metrics", None, None).body
}

/// Scrapes `addr` until `ready` holds for the exposition; returns it.
async fn scrape_until(what: &str, addr: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let body = std::panic::catch_unwind(|| scrape(addr)).unwrap_or_default();
        if ready(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after 120 s waiting for {what}; last scrape:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sitetally"));
    cmd.args(args)
        .env("SITETALLY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running(cmd.spawn().expect("start sitetally"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
async fn every_metric_the_dashboard_queries_is_exported() {
    let wanted = dashboard_series();
    assert!(wanted.len() >= 15, "the dashboard queries {wanted:?}");
    let (topic, db) = (unique("metrics"), unique("metrics"));
    create_topics(&[&topic, &format!("{topic}.dlq")], 1).await;
    let (mut msgs, _) = workload(2, 50, 1);
    msgs.push((b"acme/bad".to_vec(), b"not json".to_vec()));
    produce_async(topic.clone(), msgs).await;
    let (url, group) = (clickhouse_url(), format!("{topic}-g"));
    let clickhouse = ["--clickhouse-url", url.as_str(), "--database", db.as_str()];

    let ingest_addr = format!("127.0.0.1:{}", free_port());
    let brokers = brokers();
    let ingest_args = [
        &[
            "ingest",
            "--kafka-brokers",
            &brokers,
            "--topic",
            &topic,
            "--group",
            &group,
        ][..],
        &clickhouse,
        &["--metrics-listen", &ingest_addr],
    ]
    .concat();
    let _ingest = start(
        &ingest_args,
        &[("SITETALLY_INGEST__BATCH__MAX_INTERVAL_MS", "200")],
    );
    // Lag comes from librdkafka's statistics, every 5 s.
    let what = "ingest to write 100 rows and 1 dead letter, and report its lag";
    let ingest = scrape_until(what, &ingest_addr, |m| {
        sample(m, "sitetally_ingest_rows_written_total", "").unwrap_or(0.0) >= 100.0
            && sample(m, "sitetally_ingest_dlq_published_total", "").unwrap_or(0.0) >= 1.0
            && sample(m, "sitetally_ingest_consumer_lag", "").is_some()
    })
    .await;

    let hook = sitetally_testkit::webhook::receiver(vec![]).await;
    let reconciler_addr = format!("127.0.0.1:{}", free_port());
    let licences = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reconciler/examples/licences.toml");
    let webhook = format!("ops={}", hook.url);
    let reconcile_args = [
        &[
            "reconcile",
            "--licences",
            licences.to_str().unwrap(),
            "--interval",
            "1s",
        ][..],
        &clickhouse,
        &["--metrics-listen", &reconciler_addr, "--webhook", &webhook],
    ]
    .concat();
    let secret = "a-webhook-secret-of-at-least-32-bytes";
    let _reconciler = start(&reconcile_args, &[("SITETALLY_WEBHOOK_SECRET", secret)]);
    let reconciler = scrape_until("a finished reconciliation run", &reconciler_addr, |m| {
        sample(m, "sitetally_reconciler_runs_total", "outcome=\"ok\"").unwrap_or(0.0) >= 1.0
    })
    .await;

    let api = Server::start(&[&clickhouse[..], &["--no-auth"]].concat());
    assert_eq!(http_get(&api.addr, "/healthz", None, None).status, 200);
    let api_metrics = scrape(&api.addr);

    let mut have = exported(&ingest);
    have.extend(exported(&reconciler));
    have.extend(exported(&api_metrics));
    let missing: Vec<&String> = wanted.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series no service exports: {missing:?}\nexported: {have:?}"
    );
}

#[test]
fn series_names_are_read_from_queries_and_expositions() {
    assert_eq!(
        series_names(
            "histogram_quantile(0.9, sum by (le) (rate(sitetally_x_bucket[5m]))) / sitetally_y"
        ),
        ["sitetally_x_bucket", "sitetally_y"]
    );
    let exposition = "# HELP sitetally_a help\nsitetally_a{k=\"v\"} 3\nsitetally_b 1.5\n";
    assert_eq!(
        exported(exposition),
        BTreeSet::from(["sitetally_a".to_string(), "sitetally_b".to_string()])
    );
    assert_eq!(sample(exposition, "sitetally_a", "k=\"v\""), Some(3.0));
    assert_eq!(sample(exposition, "sitetally_b", ""), Some(1.5));
    assert_eq!(sample(exposition, "sitetally_c", ""), None);
}
