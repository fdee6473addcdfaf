//! The API against the real ClickHouse, on data written by ingest: the sample world's
//! sightings become discovery events (each device-day reported twice, Avro and JSON, by
//! two sensors in two MAC spellings), are produced to the real broker and ingested into a
//! database of its own; then `sitetally serve --clickhouse-url` is asked every endpoint,
//! JSON and CSV, with tenant and admin tokens.
//!
//! Needs the servers: `scripts/test.sh` starts them and sets SITETALLY_TEST_KAFKA and
//! SITETALLY_TEST_CLICKHOUSE_URL.

use crate::api_support::{assert_lists_row, Server, TempDir};
use sitetally_core::{codec, Discovery, Sighting};
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use sitetally_testkit::rig::{
    brokers, clickhouse_url, committed_total, create_topics, ingest_config, produce, unique,
};
use sitetally_testkit::sample::{self, ADMIN_TOKEN, CONTOSO_TOKEN, FABRIKAM_TOKEN};
use std::time::Duration;

/// Two reports of one sample sighting: Avro from sensor `a` with a lower-case colon MAC,
/// JSON from sensor `b` with the same MAC upper-case and dashed. The MAC is the sighting's
/// (already distinct) key, locally administered, so ingest derives one device per key.
fn reports_of(s: &Sighting, avro_schema: &apache_avro::Schema) -> [(Vec<u8>, Vec<u8>); 2] {
    let mac = |sep: &str, upper: bool| {
        let mut b = (s.device_key & 0xff_ffff_ffff).to_be_bytes();
        b[2] = 0x02; // bytes 3..8 are the key's low 40 bits; 0x02: locally administered
        let parts: Vec<String> = b[2..]
            .iter()
            .map(|x| {
                if upper {
                    format!("{x:02X}")
                } else {
                    format!("{x:02x}")
                }
            })
            .collect();
        parts.join(sep)
    };
    let event = |sensor: String, mac: String| Discovery {
        tenant: s.tenant.as_str().into(),
        site: s.site.as_str().into(),
        sensor: sensor.into(),
        observed_at: s.seen_at_ms,
        zone: None,
        device_id: None,
        macs: vec![mac.into()],
        ips: vec![],
        category: s.category,
        agent_managed: s.agent_managed,
        vendor: None,
        model: None,
        hostname: None,
    };
    let key = format!("{}/{}", s.tenant, s.site).into_bytes();
    let avro = codec::encode_avro(
        &event(format!("{}-a", s.site), mac(":", false)),
        1,
        avro_schema,
    )
    .unwrap();
    let json = serde_json::to_vec(&event(format!("{}-b", s.site), mac("-", true))).unwrap();
    [(key.clone(), avro), (key, json)]
}

/// Produces the sample world (with "today" the day of `now`) and runs ingest until it has
/// committed every message; returns the number of device-days (sightings) it stands for.
async fn ingest_sample(db: &str, now: chrono::DateTime<chrono::Utc>) -> usize {
    let topic = unique("api_sample");
    create_topics(&[&topic, &format!("{topic}.dlq")], 2).await;
    let schema = codec::bundled_avro_schema(1).expect("bundled schema 1");
    let sightings = sample::sightings(now);
    let msgs: Vec<_> = sightings
        .iter()
        .flat_map(|s| reports_of(s, &schema))
        .collect();
    let total = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || produce(&topic, msgs) as i64
    })
    .await
    .unwrap();

    let config = ingest_config(&topic, db);
    let group = config.kafka.group_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ingest = tokio::spawn(sitetally_ingest::consumer::run(config, async {
        let _ = stop_rx.await;
    }));
    let b = brokers();
    sitetally_testkit::rig::wait_until(
        "ingest to commit the sample world",
        Duration::from_secs(180),
        || committed_total(&b, &group, &topic, 2) == total,
    )
    .await;
    stop_tx.send(()).unwrap();
    let report = ingest.await.unwrap().unwrap();
    assert_eq!(report.messages, total as u64);
    assert_eq!(report.rejected, 0, "the sample world is valid: {report:?}");
    assert_eq!(report.not_a_device, 0, "{report:?}");
    // Dedup holds today and yesterday; older days are written through and collapse in
    // ClickHouse, so only the recent days' second reports are dedup hits.
    assert_eq!(
        report.new_devices + report.duplicates,
        total as u64,
        "{report:?}"
    );
    assert!(
        report.duplicates > 0,
        "the recent days' second reports are dedup hits: {report:?}"
    );
    let device_days = sitetally_testkit::rig::store(db)
        .distinct_device_days()
        .await
        .unwrap();
    assert_eq!(
        device_days,
        sightings.len() as u64,
        "one device per sample sighting, Avro and JSON spellings merged"
    );
    sightings.len()
}

struct Db {
    store: ClickHouseStore,
    name: String,
}

impl Drop for Db {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        let client = self.store.client().clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async { client.query(&sql).execute().await })
        })
        .join();
    }
}

#[test]
#[ignore = "needs the broker and ClickHouse: run scripts/test.sh"]
fn every_endpoint_against_clickhouse() {
    let url = clickhouse_url();
    let name = unique("it_api");
    let db = Db {
        store: ClickHouseStore::new(&ClickHouseConfig {
            url: url.clone(),
            database: name.clone(),
            ..Default::default()
        })
        .expect("TLS settings of a test store"),
        name,
    };
    let now = chrono_now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(ingest_sample(&db.name, now));
    assert!(rows > 10_000);
    // One reconciliation with its history in ClickHouse, as `sitetally reconcile` does,
    // shortly before the server's "now": the alerts it raises are what /alerts must
    // serve, and its decisions (told apart by their time) what /decisions must serve.
    let run_at = now - chrono::Duration::seconds(90);
    let raised = rt.block_on(async {
        use sitetally_reconciler::{LicenceBook, Reconciler, Settings};
        let settings = Settings::default();
        let book = LicenceBook::from_toml_str(sample::LICENCES_TOML, &settings).unwrap();
        let history = std::sync::Arc::new(
            ClickHouseStore::new(&ClickHouseConfig {
                url: url.clone(),
                database: db.name.clone(),
                ..Default::default()
            })
            .expect("TLS settings of a test store"),
        );
        let store: std::sync::Arc<dyn sitetally_store::Store> = history.clone();
        let counts = std::sync::Arc::new(sitetally_store::StoreCounts::new(store));
        let r = Reconciler::new(settings, book, counts, history.clone()).with_history(history);
        r.run_once(run_at).await.unwrap().alerts
    });
    let contoso_alerts = raised.iter().filter(|a| a.tenant == "contoso").count();
    assert!(
        contoso_alerts > 0,
        "the sample has contoso sites over tier: {raised:?}"
    );

    let dir = TempDir::new("api-ch");
    std::fs::write(dir.path().join("licences.toml"), sample::LICENCES_TOML).unwrap();
    std::fs::write(dir.path().join("tokens.toml"), sample::tokens_toml()).unwrap();
    let now_s = now.to_rfc3339();
    let server = Server::start(&[
        "--clickhouse-url",
        &url,
        "--database",
        &db.name,
        "--licences",
        dir.path().join("licences.toml").to_str().unwrap(),
        "--tokens",
        dir.path().join("tokens.toml").to_str().unwrap(),
        "--now",
        &now_s,
        "--kafka-brokers",
        &brokers(),
    ]);
    let admin = |p: &str| {
        let r = server.get(p, Some(ADMIN_TOKEN), None);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        r.json()
    };
    let ready = server.get("/readyz", None, None);
    assert_eq!(
        ready.status, 200,
        "ClickHouse and the broker answer: {}",
        ready.body
    );

    // Sites.
    let v = admin("/api/v1/tenants/contoso/sites");
    let site = |id: &str| {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            site("plant-north")["devices"].as_u64(),
            site("plant-north")["status"].as_str()
        ),
        (Some(450), Some("NEAR_LIMIT"))
    );
    assert_eq!(
        site("plant-north")["method"],
        "exact",
        "uniqCombined is exact below 8,192"
    );
    assert_eq!(site("refinery")["status_detail"], "OVER_TIER (buy S)");
    assert_eq!(site("lab")["status"], "UNLICENSED");

    // Counts: days by category, weeks merged.
    let today = now.date_naive();
    let v = admin(&format!(
        "/api/v1/tenants/contoso/sites/refinery/counts?from={today}&to={today}"
    ));
    let cats: Vec<(String, u64)> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["category"].as_str().unwrap().to_string(),
                r["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cats,
        [
            ("OT", 120),
            ("IOT", 30),
            ("COMPUTERS_MOBILE", 5),
            ("ALL", 155)
        ]
        .map(|(c, n)| (c.to_string(), n))
        .to_vec()
    );
    let from = today - chrono_days(13);
    let v = admin(&format!(
        "/api/v1/tenants/contoso/sites/plant-north/counts?from={from}&to={today}&granularity=week"
    ));
    let last_all = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["category"] == "ALL")
        .unwrap()
        .clone();
    assert_eq!(last_all["devices"], 450);

    // Forecast: 450 today, +5/day, licensed 500: crosses on day 11.
    let v = admin("/api/v1/tenants/contoso/sites/plant-north/forecast");
    assert_eq!(v["outlook"], "crosses");
    assert_eq!(v["crossing_date"], (today + chrono_days(11)).to_string());

    // Enterprise IoT and decisions.
    let v = admin("/api/v1/tenants/contoso/enterprise-iot");
    assert_eq!(
        (v["devices"].as_u64(), v["gap"].as_i64()),
        (Some(30), Some(19))
    );
    let v = admin("/api/v1/tenants/contoso/alerts");
    assert_eq!(v["alert_log"], true);
    let listed = v["alerts"].as_array().unwrap();
    assert_eq!(listed.len(), contoso_alerts, "{v}");
    assert_lists_row(
        &v,
        "alerts",
        &[("site", "refinery"), ("new_status", "OVER_TIER")],
    );
    assert!(listed
        .iter()
        .all(|a| a["idempotency_key"].as_str().unwrap().len() == 32));
    let v = admin("/api/v1/tenants/contoso/decisions");
    assert_eq!(v["source"], "latest_run", "{v}");
    let decided_at: chrono::DateTime<chrono::Utc> =
        v["decided_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        decided_at, run_at,
        "the recorded run's time, not the server's now"
    );
    assert_lists_row(
        &v,
        "decisions",
        &[("site", "refinery"), ("status", "OVER_TIER")],
    );
    assert!(v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["scope"] == "enterprise_iot"));

    // CSV on every tenant endpoint.
    for p in [
        "/api/v1/tenants/contoso/sites",
        "/api/v1/tenants/contoso/sites/plant-north/counts",
        "/api/v1/tenants/contoso/sites/plant-north/forecast",
        "/api/v1/tenants/contoso/enterprise-iot",
        "/api/v1/tenants/contoso/decisions",
        "/api/v1/tenants/contoso/alerts",
    ] {
        let r = server.get(p, Some(CONTOSO_TOKEN), Some("text/csv"));
        assert_eq!(r.status, 200, "{p}");
        assert!(
            r.header("content-type").unwrap().starts_with("text/csv"),
            "{p}"
        );
        assert!(r.body.lines().count() >= 2, "{p}: {}", r.body);
        // Tenant isolation: contoso's token on fabrikam's paths.
        let other = p
            .replace("contoso", "fabrikam")
            .replace("plant-north", "warehouse");
        let r = server.get(&other, Some(CONTOSO_TOKEN), None);
        assert_eq!(r.status, 403, "{other}");
        assert_eq!(r.json()["error"]["code"], "forbidden");
        assert_eq!(
            server.get(&other, Some(FABRIKAM_TOKEN), None).status,
            200,
            "{other}"
        );
        assert_eq!(server.get(p, None, None).status, 401, "{p}");
    }
    assert_eq!(
        server
            .get(
                "/api/v1/tenants/contoso/sites/ghost/counts",
                Some(ADMIN_TOKEN),
                None
            )
            .status,
        404
    );
    assert_eq!(
        server
            .get(
                "/api/v1/tenants/contoso/sites/plant-north/counts?from=2020-01-01",
                Some(ADMIN_TOKEN),
                None
            )
            .status,
        422
    );
    // A quote in a site id is a bound parameter, not SQL.
    assert_eq!(
        server
            .get(
                "/api/v1/tenants/contoso/sites/x'%20OR%20'1'='1/counts",
                Some(ADMIN_TOKEN),
                None
            )
            .status,
        404
    );
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn chrono_days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

use sitetally_api::chrono;
