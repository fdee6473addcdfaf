//! `sitetally sites|counts|forecast|serve` as a user runs them, on the embedded store
//! seeded with the API's sample world.

use crate::api_support::{assert_lists_row, Server, TempDir, BIN};
use sitetally_testkit::sample::{self, ADMIN_TOKEN, CONTOSO_TOKEN};
use std::path::Path;
use std::process::Command;

fn seeded() -> TempDir {
    let dir = TempDir::new("api-cli");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = sitetally_store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    rt.block_on(sample::seed_now(&store)).unwrap();
    std::fs::write(dir.path().join("licences.toml"), sample::LICENCES_TOML).unwrap();
    std::fs::write(dir.path().join("tokens.toml"), sample::tokens_toml()).unwrap();
    dir
}

/// `sitetally serve` over a [`seeded`] directory with its licences and tokens.
fn serve(dir: &Path, extra: &[&str]) -> Server {
    let (lic, tok) = (dir.join("licences.toml"), dir.join("tokens.toml"));
    let mut args = vec![
        "--data-dir",
        dir.to_str().unwrap(),
        "--licences",
        lic.to_str().unwrap(),
        "--tokens",
        tok.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--licences",
            dir.join("licences.toml").to_str().unwrap(),
        ])
        .args(["--log", "warn"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_answers_as_table_json_and_csv() {
    let dir = seeded();
    let d = dir.path();
    let (ok, out, err) = run(d, &["sites", "--tenant", "contoso"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("SITE"), "{out}");
    assert!(
        out.contains("refinery") && out.contains("OVER_TIER (buy S)") && out.contains("90.0%"),
        "{out}"
    );

    let (ok, out, _) = run(d, &["sites", "--tenant", "contoso", "--format", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], 3);

    let (ok, out, _) = run(
        d,
        &[
            "counts", "--tenant", "contoso", "--site", "refinery", "--format", "csv",
        ],
    );
    assert!(ok);
    assert!(
        out.starts_with("tenant,site,start,end,category,devices,method,sigma,error_bound\n"),
        "{out}"
    );
    assert!(out.contains(",ALL,155,exact,"), "{out}");

    let (ok, out, _) = run(
        d,
        &[
            "counts",
            "--tenant",
            "contoso",
            "--site",
            "plant-north",
            "--granularity",
            "month",
        ],
    );
    assert!(ok && out.contains("ALL") && out.contains("450"), "{out}");

    let (ok, out, err) = run(
        d,
        &["forecast", "--tenant", "contoso", "--site", "plant-north"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("+5.00 devices/day") && out.contains("outlook: crosses"),
        "{out}"
    );

    let (ok, _, err) = run(d, &["forecast", "--tenant", "contoso", "--site", "nowhere"]);
    assert!(!ok && err.contains("unknown site \"nowhere\""), "{err}");
    let (ok, _, err) = run(
        d,
        &[
            "counts",
            "--tenant",
            "contoso",
            "--site",
            "lab",
            "--from",
            "2020-01-01",
        ],
    );
    assert!(!ok && err.contains("at most 366 days"), "{err}");
}

#[test]
fn serve_answers_over_http_and_requires_tokens() {
    let dir = seeded();
    let d = dir.path();
    let server = serve(d, &[]);
    assert_eq!(server.get("/healthz", None, None).status, 200);
    assert_eq!(server.get("/readyz", None, None).status, 200);
    let r = server.get("/api/v1/tenants/contoso/sites", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = server.get("/api/v1/tenants/fabrikam/sites", Some(CONTOSO_TOKEN), None);
    assert_eq!(r.status, 403);
    let r = server.get(
        "/api/v1/tenants/contoso/sites",
        Some(CONTOSO_TOKEN),
        Some("text/csv"),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(r.body.contains("contoso,refinery,155,"), "{}", r.body);
    let r = server.get("/api/v1/tenants/contoso/decisions", Some(ADMIN_TOKEN), None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["source"],
        "computed_on_demand",
        "no reconciliation has run here"
    );
    let m = server.get("/metrics", None, None);
    assert!(
        m.body.contains("sitetally_api_requests_total"),
        "{}",
        m.body
    );
    assert!(
        !m.body.contains("contoso"),
        "no tenant ids in metric labels"
    );
    let doc = server.get("/openapi.json", None, None).json();
    assert!(doc["paths"]["/api/v1/tenants/{tenant}/sites/{site}/forecast"].is_object());
}

/// Every alert the reconciler logged in the embedded store of `data_dir`, per sample tenant.
fn logged_alerts(data_dir: &Path) -> Vec<sitetally_licensing::Alert> {
    use sitetally_store::history::AlertLog;
    let settings = sitetally_licensing::Settings::default();
    let book =
        sitetally_licensing::LicenceBook::from_toml_str(sample::LICENCES_TOML, &settings).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sitetally_store::embedded::EmbeddedStore::open(data_dir).unwrap();
        let mut all = Vec::new();
        for t in &book.tenants {
            let (from, to) = (
                chrono::DateTime::UNIX_EPOCH,
                chrono::Utc::now() + chrono::Days::new(365),
            );
            all.extend(store.alerts(&t.id, from, to, u64::MAX).await.unwrap());
        }
        all
    })
}

#[test]
fn alerts_and_decisions_of_a_reconcile_run_are_served_from_the_embedded_store() {
    let dir = seeded();
    let d = dir.path();
    let state = d.join("alert-state.json");
    let reconcile = || {
        run(
            d,
            &[
                "reconcile",
                "--once",
                "--alert-state",
                state.to_str().unwrap(),
            ],
        )
    };
    let (_, out, err) = reconcile();
    assert!(out.contains("alerts raised"), "{out}\n{err}");
    let logged = logged_alerts(d);
    assert!(logged.len() >= 3, "{logged:?}\n{err}");
    // A second run with the same state raises nothing new: the log does not grow.
    reconcile();
    assert_eq!(logged_alerts(d), logged, "no alert logged twice");

    let server = serve(d, &[]);
    let r = server.get("/api/v1/tenants/contoso/alerts", Some(CONTOSO_TOKEN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["alert_log"], true, "{v}");
    let alerts = v["alerts"].as_array().unwrap();
    assert_lists_row(
        &v,
        "alerts",
        &[("site", "refinery"), ("new_status", "OVER_TIER")],
    );
    assert_eq!(
        alerts.len(),
        logged.iter().filter(|a| a.tenant == "contoso").count(),
        "one entry per logged contoso alert: {v}"
    );
    // The decisions are the latest run's, read back from the data directory.
    let v = server
        .get(
            "/api/v1/tenants/contoso/decisions",
            Some(CONTOSO_TOKEN),
            None,
        )
        .json();
    assert_eq!(v["source"], "latest_run", "{v}");
    assert_lists_row(
        &v,
        "decisions",
        &[("site", "refinery"), ("status", "OVER_TIER")],
    );
}

#[test]
fn readyz_reports_an_unreachable_broker() {
    let dir = seeded();
    let d = dir.path();
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = serve(d, &["--kafka-brokers", &closed.to_string()]);
    assert_eq!(
        server.get("/healthz", None, None).status,
        200,
        "alive all the same"
    );
    let r = server.get("/readyz", None, None);
    assert_eq!(r.status, 503, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("broker unreachable") && message.contains(&closed.to_string()),
        "{message}"
    );
}

#[test]
fn serve_refuses_to_start_without_tokens() {
    let dir = TempDir::new("api-no-tokens");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .env_remove("SITETALLY_API_ADMIN_TOKEN")
        .env_remove("SITETALLY_API_TENANT_TOKENS")
        .env_remove("SITETALLY_API_TOKENS_FILE")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API tokens configured"));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--no-auth",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// A mistyped --data-dir is an error naming it, and creates nothing.
#[test]
fn a_mistyped_data_dir_is_refused_not_created() {
    let dir = TempDir::new("api-typo");
    let typo = dir.path().join("sitetally-dta");
    let out = Command::new(BIN)
        .args(["sites", "--tenant", "contoso", "--data-dir"])
        .arg(&typo)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sitetally-dta") && stderr.contains("no sitetally data"),
        "{stderr}"
    );
    assert!(!typo.exists(), "an empty store was created");
}

/// Issue 13: the licence calendar served by the API, from the licence file `serve` reads:
/// the next renewal of a renewing licence, CSV too, and a tenant token reads only its
/// own tenant's calendar.
#[test]
fn the_api_serves_the_licence_calendar() {
    let dir = seeded();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reconciler/examples/licences.toml");
    std::fs::copy(example, dir.path().join("licences.toml")).unwrap();
    let server = serve(dir.path(), &[]);
    let path = "/api/v1/tenants/contoso/calendar?days=3650&alert_days=7";
    let r = server.get(path, Some(CONTOSO_TOKEN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["alert_days"], 7);
    let entries = v["entries"].as_array().unwrap();
    let renewal = entries
        .iter()
        .find(|e| e["event"] == "RENEWAL" && e["licence"] == "PO-1001")
        .unwrap_or_else(|| panic!("no renewal of PO-1001: {v}"));
    let at = renewal["at"].as_str().unwrap();
    assert!(
        at.contains("-01-01T00:00:00"),
        "renews on its start's anniversary: {at}"
    );
    let from = v["from"].as_str().unwrap();
    assert!(at > from, "{at} is ahead of {from}");
    let csv = server.get(path, Some(CONTOSO_TOKEN), Some("text/csv"));
    assert!(
        csv.body
            .starts_with("tenant,at,event,site,licence,alert_at"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("RENEWAL"));
    let other = server.get(
        "/api/v1/tenants/fabrikam/calendar",
        Some(CONTOSO_TOKEN),
        None,
    );
    assert_eq!(other.status, 403, "{}", other.body);
    let bad = server.get(
        "/api/v1/tenants/contoso/calendar?days=0",
        Some(CONTOSO_TOKEN),
        None,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}
