//! The API against the real ClickHouse: the sample world is written through
//! `ClickHouseStore::write_sightings` (as ingest writes it) into a database of its own,
//! then `sitetally serve --clickhouse-url` is asked every endpoint, JSON and CSV, with
//! tenant and admin tokens.
//!
//! Needs a server: `scripts/test.sh` starts one and sets SITETALLY_TEST_CLICKHOUSE_URL.

mod api_support;

use api_support::{Server, TempDir};
use sitetally_api::sample::{self, ADMIN_TOKEN, CONTOSO_TOKEN, FABRIKAM_TOKEN};
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};

fn clickhouse_url() -> String {
    std::env::var("SITETALLY_TEST_CLICKHOUSE_URL").expect(
        "SITETALLY_TEST_CLICKHOUSE_URL is not set: run scripts/test.sh, which starts ClickHouse",
    )
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
#[ignore = "needs ClickHouse: run scripts/test.sh"]
fn every_endpoint_against_clickhouse() {
    let url = clickhouse_url();
    let name = format!("it_api_{}", std::process::id());
    let db = Db {
        store: ClickHouseStore::new(&ClickHouseConfig {
            url: url.clone(),
            database: name.clone(),
            ..Default::default()
        }),
        name,
    };
    let now = chrono_now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt
        .block_on(sample::seed(&db.store, now))
        .expect("seed ClickHouse");
    assert!(rows > 10_000);
    // One reconciliation with its history in ClickHouse, as `sitetally reconcile` does:
    // the alerts it raises are what /alerts must serve.
    let raised = rt.block_on(async {
        use sitetally_reconciler::{history::ClickHouseHistory, LicenceBook, Reconciler, Settings};
        let settings = Settings::default();
        let book = LicenceBook::from_toml_str(sample::LICENCES_TOML, &settings).unwrap();
        let store: std::sync::Arc<dyn sitetally_store::Store> = std::sync::Arc::new(ClickHouseStore::new(&ClickHouseConfig {
            url: url.clone(),
            database: db.name.clone(),
            ..Default::default()
        }));
        let history = std::sync::Arc::new(ClickHouseHistory::new(&db.store));
        let counts = std::sync::Arc::new(sitetally_reconciler::store_source::StoreCounts::new(store));
        let r = Reconciler::new(settings, book, counts, history.clone()).with_history(history);
        r.run_once(now).await.unwrap().alerts
    });
    let contoso_alerts = raised.iter().filter(|a| a.tenant == "contoso").count();
    assert!(contoso_alerts > 0, "the sample has contoso sites over tier: {raised:?}");

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
    ]);
    let admin = |p: &str| {
        let r = server.get(p, Some(ADMIN_TOKEN), None);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        r.json()
    };
    assert_eq!(server.get("/readyz", None, None).status, 200);

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
    assert!(listed.iter().any(|a| a["site"] == "refinery" && a["new_status"] == "OVER_TIER"), "{v}");
    assert!(listed.iter().all(|a| a["idempotency_key"].as_str().unwrap().len() == 32));
    let v = admin("/api/v1/tenants/contoso/decisions");
    assert_eq!(v["source"], "computed_on_demand");
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
