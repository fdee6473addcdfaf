//! Clients that are not playing along: idle and half-sent connections, too many
//! connections, a saturated API, a greedy token, a rebound DNS name, made-up methods.
//! Servers listen on 127.0.0.1 only; every wait is bounded.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use sitetally_api::guard::RateLimit;
use sitetally_api::{
    router, AppState, AuthConfig, Authenticator, ConnectionLimits, HttpLimits, Planner, ServeConfig,
};
use sitetally_core::Sighting;
use sitetally_licensing::{LicenceBook, Settings};
use sitetally_store::{CountFilter, DailyCount, DayRange, SiteCount, Store, StoreError};
use sitetally_testkit::sample::{self, ADMIN_TOKEN, CONTOSO_TOKEN};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tower::ServiceExt;

/// Long enough for any honest step here; a test failing on it is a hang, not a slow run.
const BOUND: Duration = Duration::from_secs(10);

/// An empty store whose `site_counts` waits until the test opens the gate, so a request
/// can be held in flight.
struct GatedStore {
    gate: Semaphore,
}

impl GatedStore {
    fn closed() -> Arc<Self> {
        Arc::new(Self {
            gate: Semaphore::new(0),
        })
    }

    fn open(&self) {
        self.gate.add_permits(1_000);
    }
}

#[async_trait::async_trait]
impl Store for GatedStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    async fn write_sightings(&self, _rows: &[Sighting]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn site_counts(
        &self,
        _tenant: Option<&str>,
        _days: DayRange,
        _filter: &CountFilter,
    ) -> Result<Vec<SiteCount>, StoreError> {
        let _pass = self.gate.acquire().await.expect("gate never closes");
        Ok(Vec::new())
    }
    async fn exact_site_count(
        &self,
        _tenant: &str,
        _site: &str,
        _days: DayRange,
        _filter: &CountFilter,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn daily_counts(
        &self,
        _tenant: &str,
        _site: &str,
        _days: DayRange,
        _filter: &CountFilter,
    ) -> Result<Vec<DailyCount>, StoreError> {
        Ok(Vec::new())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn planner(store: Arc<dyn Store>) -> Planner {
    let settings = Settings::default();
    let book = LicenceBook::from_toml_str(sample::LICENCES_TOML, &settings).unwrap();
    Planner::new(store, book, settings)
}

fn tokens() -> Authenticator {
    let auth: AuthConfig = toml::from_str(&sample::tokens_toml()).unwrap();
    auth.build().unwrap()
}

fn state(store: Arc<dyn Store>, auth: Authenticator) -> AppState {
    AppState {
        planner: Arc::new(planner(store)),
        auth: Arc::new(auth),
        metrics: None,
        broker: None,
    }
}

fn request(uri: &str, token: Option<&str>, host: &str) -> Request<Body> {
    let mut r = Request::get(uri).header(header::HOST, host);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

/// A server on 127.0.0.1:0 with these connection limits; stop it with the sender.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(connections: ConnectionLimits) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = oneshot::channel();
    let store = GatedStore::closed();
    store.open();
    let config = ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        planner: planner(store),
        auth: tokens(),
        limits: HttpLimits::default(),
        connections,
        metrics: None,
        broker: None,
    };
    let done = tokio::spawn(sitetally_api::run(
        config,
        async move {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = bound_tx.send(addr);
        },
    ));
    let addr = tokio::time::timeout(BOUND, bound_rx)
        .await
        .unwrap()
        .unwrap();
    Running { addr, stop, done }
}

/// Reads until the peer closes; `Some(bytes read)` when it closed within [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read).await.ok().map(|()| out)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn idle_and_kept_alive_connections_are_closed_after_the_header_timeout() {
    let server = start(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    })
    .await;
    // A socket that never sends a byte.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        read_until_closed(&mut silent).await.is_some(),
        "an idle connection stayed open"
    );
    // A kept-alive connection after one answered request.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut kept)
        .await
        .expect("a kept-alive connection stayed open after its request");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let _ = server.stop.send(());
}

#[tokio::test]
async fn connections_over_the_cap_get_503_until_one_closes() {
    let server = start(ConnectionLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        ..ConnectionLimits::default()
    })
    .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    // The server accepts in order, so the two idle sockets hold both places before this.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut third).await.expect("closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too many open connections"), "{text}");
    // Closing one idle socket frees its place.
    drop(first);
    let served = tokio::time::timeout(BOUND, async {
        loop {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            if read_until_closed(&mut s)
                .await
                .is_some_and(|a| a.starts_with(b"HTTP/1.1 200"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "no place was freed after a connection closed"
    );
    let _ = server.stop.send(());
}

#[tokio::test]
async fn a_half_sent_request_does_not_hold_shutdown_past_its_deadline() {
    let server = start(ConnectionLimits {
        header_read_timeout: Duration::from_secs(120),
        shutdown_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    })
    .await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // Let the server start reading it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.send(()).unwrap();
    let finished = tokio::time::timeout(BOUND, server.done).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "shutdown waited for the half-sent request: {finished:?}"
    );
    assert!(
        read_until_closed(&mut half).await.is_some(),
        "the half-sent request's connection was left open"
    );
}

#[tokio::test]
async fn probes_answer_while_the_api_is_saturated() {
    let store = GatedStore::closed();
    let app = router(
        state(store.clone(), tokens()),
        HttpLimits {
            concurrency: 1,
            ..HttpLimits::default()
        },
    );
    let held = tokio::spawn(app.clone().oneshot(request(
        "/api/v1/tenants",
        Some(ADMIN_TOKEN),
        "localhost",
    )));
    // The held request takes the one place (its store call waits at the gate).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held.is_finished());
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let r = tokio::time::timeout(
            BOUND,
            app.clone().oneshot(request(probe, None, "localhost")),
        )
        .await
        .unwrap_or_else(|_| panic!("{probe} waited behind the saturated API"))
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{probe}");
    }
    let queued = tokio::spawn(app.clone().oneshot(request(
        "/api/v1/tenants",
        Some(ADMIN_TOKEN),
        "localhost",
    )));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !queued.is_finished(),
        "the concurrency limit let a second request in"
    );
    store.open();
    for r in [held, queued] {
        let r = tokio::time::timeout(BOUND, r)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_and_other_tokens_do_not() {
    let store = GatedStore::closed();
    store.open();
    let app = router(
        state(store, tokens()),
        HttpLimits {
            rate: RateLimit {
                per_second: 1,
                burst: 2,
            },
            ..HttpLimits::default()
        },
    );
    let call =
        |uri: &str, token: Option<&str>| app.clone().oneshot(request(uri, token, "localhost"));
    for _ in 0..2 {
        let r = call("/api/v1/tenants", Some(ADMIN_TOKEN)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = call("/api/v1/tenants", Some(ADMIN_TOKEN)).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let body: serde_json::Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another token has its own budget; probes and the document have none.
    let r = call("/api/v1/tenants", Some(CONTOSO_TOKEN)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(
            call("/healthz", None).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            call("/openapi.json", None).await.unwrap().status(),
            StatusCode::OK
        );
    }
    // Made-up tokens all share the anonymous budget (and get 401 while it lasts).
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = call("/api/v1/tenants", Some(&format!("made-up-token-{i:020}"))).await;
        statuses.push(r.unwrap().status());
    }
    assert_eq!(statuses[..2], [StatusCode::UNAUTHORIZED; 2]);
    assert_eq!(statuses[2..], [StatusCode::TOO_MANY_REQUESTS; 2]);
}

#[tokio::test]
async fn without_auth_only_allowed_hosts_are_answered() {
    let store = GatedStore::closed();
    store.open();
    let limits = HttpLimits {
        allowed_hosts: vec!["planner.example".into()],
        ..HttpLimits::default()
    };
    let open = router(
        state(store.clone(), Authenticator::disabled()),
        limits.clone(),
    );
    for (host, expected) in [
        ("localhost:8080", StatusCode::OK),
        ("127.0.0.1:8080", StatusCode::OK),
        ("[::1]:8080", StatusCode::OK),
        ("planner.example", StatusCode::OK),
        ("rebound.evil.example:8080", StatusCode::FORBIDDEN),
    ] {
        let r = open
            .clone()
            .oneshot(request("/api/v1/tenants", None, host))
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{host}");
    }
    // With tokens the Host header is not what protects the data.
    let guarded = router(state(store, tokens()), limits);
    let r = guarded
        .oneshot(request("/api/v1/tenants", Some(ADMIN_TOKEN), "any.example"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let store = GatedStore::closed();
    store.open();
    let mut st = state(store, tokens());
    st.metrics = Some(handle.clone());
    let app = router(st, HttpLimits::default());
    for i in 0..200 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let r = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri("/healthz")
                    .header(header::HOST, "localhost")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = handle.render();
    assert!(!text.contains("MADEUP"), "made-up methods became labels");
    let other_lines = text
        .lines()
        .filter(|l| l.starts_with("sitetally_api_requests_total") && l.contains("method=\"other\""))
        .count();
    assert_eq!(other_lines, 1, "{text}");
}
