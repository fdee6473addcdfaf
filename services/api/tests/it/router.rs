use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use sitetally_api::guard::RateLimit;
use sitetally_api::{router, AppState, AuthConfig, HttpLimits, Planner};
use sitetally_licensing::{LicenceBook, Settings};
use sitetally_store::embedded::EmbeddedStore;
use sitetally_testkit::sample::{self, ADMIN_TOKEN, CONTOSO_TOKEN, FABRIKAM_TOKEN};
use std::sync::Arc;
use tokio::sync::OnceCell;
use tower::ServiceExt;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn today() -> NaiveDate {
    now().date_naive()
}

struct World {
    _dir: tempfile::TempDir,
    app: axum::Router,
}

/// One seeded store for every test of this binary (seeding is the slow part).
async fn world() -> &'static World {
    static WORLD: OnceCell<World> = OnceCell::const_new();
    WORLD
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
            sample::seed(store.as_ref(), now()).await.unwrap();
            let settings = Settings::default();
            let book = LicenceBook::from_toml_str(sample::LICENCES_TOML, &settings).unwrap();
            let planner = Planner::new(store, book, settings).with_now(now());
            let auth: AuthConfig = toml::from_str(&sample::tokens_toml()).unwrap();
            let state = AppState {
                planner: Arc::new(planner),
                auth: Arc::new(auth.build().unwrap()),
                metrics: None,
                broker: None,
            };
            World {
                _dir: dir,
                // Tests run in parallel with one token: no rate limit here (the hardening
                // tests cover it).
                app: router(
                    state,
                    HttpLimits {
                        rate: RateLimit {
                            per_second: 1_000_000,
                            burst: 1_000_000,
                        },
                        ..HttpLimits::default()
                    },
                ),
            }
        })
        .await
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts the JSON error shape and returns its code.
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["error"]["code"].as_str().unwrap().to_string()
    }
}

async fn call(method: Method, uri: &str, token: Option<&str>, accept: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = world()
        .await
        .app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

async fn get(uri: &str, token: Option<&str>) -> Reply {
    call(Method::GET, uri, token, None).await
}

async fn admin(uri: &str) -> Reply {
    let r = get(uri, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
    r
}

const TENANT_PATHS: [&str; 5] = [
    "/api/v1/tenants/{t}/sites",
    "/api/v1/tenants/{t}/sites/{s}/counts",
    "/api/v1/tenants/{t}/sites/{s}/forecast",
    "/api/v1/tenants/{t}/enterprise-iot",
    "/api/v1/tenants/{t}/decisions",
];

fn path(p: &str, tenant: &str, site: &str) -> String {
    p.replace("{t}", tenant).replace("{s}", site)
}

#[tokio::test]
async fn operations_endpoints_are_public() {
    let h = get("/healthz", None).await;
    assert_eq!(
        (h.status, h.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = get("/readyz", None).await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    let m = get("/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.content_type.starts_with("text/plain"));
    let d = get("/", None).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.content_type.starts_with("text/html") && d.body.contains("/assets/app.js"));
    assert!(d.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    assert_eq!(get("/assets/app.js", None).await.status, StatusCode::OK);
    assert_eq!(get("/assets/app.css", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn openapi_documents_every_endpoint() {
    let doc = get("/openapi.json", None).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant}/sites",
        "/api/v1/tenants/{tenant}/sites/{site}/counts",
        "/api/v1/tenants/{tenant}/sites/{site}/forecast",
        "/api/v1/tenants/{tenant}/enterprise-iot",
        "/api/v1/tenants/{tenant}/decisions",
        "/api/v1/tenants/{tenant}/calendar",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let sites = &paths["/api/v1/tenants/{tenant}/sites"]["get"];
    let content = sites["responses"]["200"]["content"].as_object().unwrap();
    assert!(content.contains_key("application/json") && content.contains_key("text/csv"));
    for code in ["401", "403", "404", "422"] {
        assert!(sites["responses"].get(code).is_some(), "{code}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn missing_or_unknown_tokens_get_401() {
    for p in TENANT_PATHS {
        let uri = path(p, "contoso", "plant-north");
        let r = get(&uri, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(r.error_code(), "unauthorized");
        assert!(r
            .headers
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let r = get(&uri, Some("not-a-configured-token-at-all")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            !r.body.contains("not-a-configured"),
            "the token is not echoed"
        );
    }
    assert_eq!(
        get("/api/v1/tenants", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_tenant_token_sees_only_its_tenant() {
    for p in TENANT_PATHS {
        let other = get(&path(p, "fabrikam", "warehouse"), Some(CONTOSO_TOKEN)).await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{p}: {}", other.body);
        assert_eq!(other.error_code(), "forbidden");
        assert!(
            !other.body.contains("warehouse") && !other.body.contains("50"),
            "{}",
            other.body
        );
        // Also for a tenant that does not exist: 403 before any lookup, so a tenant
        // token cannot probe which tenants exist.
        assert_eq!(
            get(&path(p, "nobody", "x"), Some(CONTOSO_TOKEN))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        let own = get(&path(p, "fabrikam", "warehouse"), Some(FABRIKAM_TOKEN)).await;
        assert_eq!(own.status, StatusCode::OK, "{p}: {}", own.body);
    }
    let t = get("/api/v1/tenants", Some(CONTOSO_TOKEN)).await.json();
    assert_eq!(t["tenants"], serde_json::json!(["contoso"]));
    let t = admin("/api/v1/tenants").await.json();
    assert_eq!(t["tenants"], serde_json::json!(["contoso", "fabrikam"]));
}

#[tokio::test]
async fn unknown_tenants_sites_and_paths_get_404() {
    let r = get("/api/v1/tenants/nobody/sites", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for p in &TENANT_PATHS[1..3] {
        let r = get(&path(p, "contoso", "no-such-site"), Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        let r = get(&path(p, "contoso", "warehouse"), Some(CONTOSO_TOKEN)).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "another tenant's site name is not a site of mine"
        );
    }
    let r = get("/api/v2/whatever", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = call(
        Method::POST,
        "/api/v1/tenants/contoso/sites",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn sites_show_count_tier_utilisation_and_status() {
    let v = admin("/api/v1/tenants/contoso/sites").await.json();
    assert_eq!(v["window_days"], 60);
    assert_eq!(v["total"], 3);
    let site = |id: &str| {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site"] == id)
            .unwrap()
            .clone()
    };
    let pn = site("plant-north");
    assert_eq!(pn["devices"], 450);
    assert_eq!(pn["method"], "exact");
    assert_eq!(pn["licensed_tier"], "M");
    assert_eq!(pn["licensed_capacity"], 500);
    assert!((pn["utilisation"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    assert_eq!(pn["status"], "NEAR_LIMIT");
    let rf = site("refinery");
    assert_eq!(
        (rf["devices"].as_u64(), rf["status"].as_str()),
        (Some(155), Some("OVER_TIER"))
    );
    assert_eq!(
        (rf["required_tier"].as_str(), rf["status_detail"].as_str()),
        (Some("S"), Some("OVER_TIER (buy S)"))
    );
    let lab = site("lab");
    assert_eq!(
        (lab["devices"].as_u64(), lab["status"].as_str()),
        (Some(10), Some("UNLICENSED"))
    );
    assert!(lab["licensed_tier"].is_null() && lab["utilisation"].is_null());
}

#[tokio::test]
async fn csv_by_accept_header_or_format_parameter() {
    let by_accept = call(
        Method::GET,
        "/api/v1/tenants/contoso/sites",
        Some(ADMIN_TOKEN),
        Some("text/csv"),
    )
    .await;
    assert_eq!(by_accept.status, StatusCode::OK);
    assert!(
        by_accept.content_type.starts_with("text/csv"),
        "{}",
        by_accept.content_type
    );
    let mut lines = by_accept.body.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("tenant,site,devices,method,error_bound,licensed_tier"));
    assert!(
        by_accept
            .body
            .contains("contoso,plant-north,450,exact,0,M,500,M,0.9000,NEAR_LIMIT"),
        "{}",
        by_accept.body
    );
    assert_eq!(
        by_accept.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"sitetally-sites.csv\""
    );
    let by_param = admin("/api/v1/tenants/contoso/sites?format=csv").await;
    assert_eq!(by_param.body, by_accept.body);
    // ?format=json wins over Accept.
    let j = call(
        Method::GET,
        "/api/v1/tenants/contoso/sites?format=json",
        Some(ADMIN_TOKEN),
        Some("text/csv"),
    )
    .await;
    assert!(j.content_type.starts_with("application/json"));
    // Tenants' data is neither cached nor sniffed, as JSON or CSV.
    for r in [&by_accept, &j] {
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    for p in TENANT_PATHS {
        let r = admin(&format!("{}?format=csv", path(p, "contoso", "plant-north"))).await;
        assert!(
            r.content_type.starts_with("text/csv") && r.body.lines().count() >= 2,
            "{p}: {}",
            r.body
        );
        let r = admin(&path(p, "contoso", "plant-north")).await;
        assert!(r.content_type.starts_with("application/json"), "{p}");
    }
    let bad = get(
        "/api/v1/tenants/contoso/sites?format=xml",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

#[tokio::test]
async fn daily_counts_by_category_with_method() {
    let from = today() - Duration::days(2);
    let v = admin(&format!(
        "/api/v1/tenants/contoso/sites/refinery/counts?from={from}&to={}",
        today()
    ))
    .await
    .json();
    assert_eq!(v["granularity"], "day");
    let rows = v["counts"].as_array().unwrap();
    // 3 days x (OT, IOT, COMPUTERS_MOBILE, ALL).
    assert_eq!(rows.len(), 12, "{v}");
    let day0: Vec<(&str, u64)> = rows
        .iter()
        .filter(|r| r["start"] == today().to_string())
        .map(|r| {
            (
                r["category"].as_str().unwrap(),
                r["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        day0,
        vec![
            ("OT", 120),
            ("IOT", 30),
            ("COMPUTERS_MOBILE", 5),
            ("ALL", 155)
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r["method"] == "exact" && r["error_bound"] == 0));
    // Default range: the 30 days ending today, an ALL row for every day.
    let v = admin("/api/v1/tenants/contoso/sites/plant-north/counts")
        .await
        .json();
    let all: Vec<u64> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["category"] == "ALL")
        .map(|r| r["devices"].as_u64().unwrap())
        .collect();
    assert_eq!(all.len(), 30);
    assert_eq!(all[29], 450);
    assert_eq!(all[0], sample::plant_north_devices(-29));
}

#[tokio::test]
async fn weekly_and_monthly_counts_merge_days() {
    // 2025-05-26 is a Monday; plant-north's devices persist, so a period's distinct
    // devices are those of its last day.
    let v = admin("/api/v1/tenants/contoso/sites/plant-north/counts?from=2025-05-26&to=2025-06-01&granularity=week")
        .await
        .json();
    let rows = v["counts"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(
        (rows[0]["category"].as_str(), rows[0]["devices"].as_u64()),
        (Some("OT"), Some(450))
    );
    assert_eq!(
        (rows[1]["category"].as_str(), rows[1]["devices"].as_u64()),
        (Some("ALL"), Some(450))
    );
    assert!(v["source"].as_str().unwrap().contains("merged"));
    let v = admin("/api/v1/tenants/contoso/sites/plant-north/counts?from=2025-04-01&to=2025-06-01&granularity=month")
        .await
        .json();
    let all: Vec<(String, u64)> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["category"] == "ALL")
        .map(|r| {
            (
                r["start"].as_str().unwrap().to_string(),
                r["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        all,
        vec![
            ("2025-04-01".to_string(), 0),
            ("2025-05-01".to_string(), sample::plant_north_devices(-1)),
            ("2025-06-01".to_string(), 450)
        ]
    );
}

#[tokio::test]
async fn bad_counts_queries_get_400_or_422() {
    let base = "/api/v1/tenants/contoso/sites/plant-north/counts";
    for (q, status, code) in [
        (
            "from=2025-06-02&to=2025-06-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "from=2024-01-01&to=2025-06-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "from=1960-01-01&to=1960-01-02",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        ("from=2025-13-01", StatusCode::BAD_REQUEST, "bad_request"),
        ("from=yesterday", StatusCode::BAD_REQUEST, "bad_request"),
        ("granularity=hour", StatusCode::BAD_REQUEST, "bad_request"),
        ("sort=site", StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let r = get(&format!("{base}?{q}"), Some(ADMIN_TOKEN)).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{q}: {}",
            r.body
        );
    }
    let r = get("/api/v1/tenants/contoso/sites?limit=0", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = get(
        "/api/v1/tenants/contoso/sites?limit=5000",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = get("/api/v1/tenants/contoso/sites?limit=-1", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let long = "x".repeat(300);
    let r = get(&format!("/api/v1/tenants/{long}/sites"), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sites_are_paged() {
    let v = admin("/api/v1/tenants/contoso/sites?limit=1&offset=1")
        .await
        .json();
    assert_eq!(
        (
            v["total"].as_u64(),
            v["limit"].as_u64(),
            v["offset"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(v["sites"].as_array().unwrap().len(), 1);
    let v = admin("/api/v1/tenants/contoso/sites?offset=10")
        .await
        .json();
    assert_eq!(v["sites"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn forecast_projects_the_known_crossing_date() {
    let v = admin("/api/v1/tenants/contoso/sites/plant-north/forecast")
        .await
        .json();
    assert_eq!(v["outlook"], "crosses", "{v}");
    assert_eq!(v["target"]["devices"], 500);
    assert_eq!(v["target_kind"], "licensed_capacity");
    // 450 today, +5/day: above 500 on day 11.
    let expected = (today() + Duration::days(11)).to_string();
    assert_eq!(v["crossing_date"], expected);
    assert_eq!(v["earliest"], expected);
    assert_eq!(v["latest"], expected);
    assert!((v["trend"]["slope_per_day"].as_f64().unwrap() - 5.0).abs() < 1e-6);
    assert_eq!(v["current"]["status"], "NEAR_LIMIT");
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), 30);
    assert_eq!(
        history.last().unwrap()["fitted"],
        false,
        "today is incomplete and left out of the fit"
    );
    assert!(v["boundaries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["devices"] == 500 && b["label"] == "M"));
    // A flat site does not cross.
    let v = admin("/api/v1/tenants/contoso/sites/refinery/forecast")
        .await
        .json();
    assert_eq!(v["target_kind"], "tier_boundary");
    assert_eq!(v["target"]["devices"], 250);
    assert_eq!(v["outlook"], "not_within_horizon", "{v}");
    assert!(v["crossing_date"].is_null());
    // Too little history.
    let v = admin("/api/v1/tenants/contoso/sites/lab/forecast")
        .await
        .json();
    assert_eq!(v["outlook"], "insufficient_data");
    assert!(v["trend"].is_null());
    let csv = admin("/api/v1/tenants/contoso/sites/plant-north/forecast?format=csv").await;
    assert!(
        csv.body
            .contains(&format!("crosses,{expected},{expected},{expected}")),
        "{}",
        csv.body
    );
    for q in [
        "history_days=3",
        "history_days=400",
        "horizon_days=0",
        "horizon_days=1000",
    ] {
        let r = get(
            &format!("/api/v1/tenants/contoso/sites/plant-north/forecast?{q}"),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
    }
}

#[tokio::test]
async fn enterprise_iot_coverage_and_gap() {
    let v = admin("/api/v1/tenants/contoso/enterprise-iot").await.json();
    assert_eq!(v["devices"], 30, "Computers & Mobile excluded: {v}");
    assert_eq!(
        (v["e5_licences"].as_u64(), v["e5_allowance"].as_u64()),
        (Some(2), Some(10))
    );
    assert_eq!(
        (v["standalone_licences"].as_u64(), v["covered"].as_u64()),
        (Some(1), Some(11))
    );
    assert_eq!(
        (v["gap"].as_i64(), v["licences_to_buy"].as_u64()),
        (Some(19), Some(19))
    );
    assert_eq!(v["status"], "STANDALONE_NEEDED");
    let v = admin("/api/v1/tenants/fabrikam/enterprise-iot")
        .await
        .json();
    assert_eq!(
        (v["devices"].as_u64(), v["gap"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(v["status"].is_null());
}

#[tokio::test]
async fn decisions_are_computed_on_demand() {
    let v = admin("/api/v1/tenants/contoso/decisions").await.json();
    assert_eq!(v["source"], "computed_on_demand");
    assert_eq!(v["alert_state"], false);
    let rows = v["decisions"].as_array().unwrap();
    let scopes: Vec<&str> = rows.iter().map(|r| r["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes.iter().filter(|s| **s == "ot_site").count(), 3);
    assert!(scopes.contains(&"enterprise_iot"));
    let eiot = rows
        .iter()
        .find(|r| r["scope"] == "enterprise_iot")
        .unwrap();
    assert_eq!(eiot["status_detail"], "STANDALONE_NEEDED (buy 19)");
    assert!(rows
        .iter()
        .all(|r| r["window_start"].is_string() && r["method"] == "exact"));
}

#[tokio::test]
async fn errors_never_echo_tokens_and_metrics_count_requests() {
    let r = get("/api/v1/tenants/fabrikam/sites", Some(CONTOSO_TOKEN)).await;
    assert!(!r.body.contains(CONTOSO_TOKEN));
    let secret = sitetally_api::Secret::new(ADMIN_TOKEN);
    assert_eq!(format!("{secret:?}"), "***");
}
