//! sitetally-api: what capacity planners use: an HTTP API (JSON or CSV), its OpenAPI
//! document, a dashboard, and the `sites` / `counts` / `forecast` CLI, all over the same
//! [`sitetally_store::Store`] (ClickHouse or the embedded store) and licence file.
//!
//! Layout:
//! - [`planner`]   the questions (sites, counts, forecast, Enterprise IoT, decisions)
//!   answered over a store and the licence book; the HTTP handlers and the CLI both call it;
//! - [`model`]     response bodies, their OpenAPI schemas and their flat CSV/table rows;
//! - [`http`]      routes, bearer authentication, JSON/CSV negotiation, OpenAPI document;
//! - [`auth`]      token configuration ([`auth::Secret`] never prints) and checking;
//! - [`error`]     [`ApiError`] and its JSON form `{"error": {"code", "message"}}`;
//! - [`dashboard`] the embedded single-page dashboard;
//! - [`table`]     CSV and aligned-table rendering;
//! - [`metrics`]   metric names and the request-metrics middleware;
//! - [`guard`]     per-token rate limit, Host allow-list without auth, bounded labels;
//! - [`server`]    the connection loop: header-read timeout, connection cap, shutdown
//!   deadline;
//! - [`cli`]       flags of `sitetally serve|sites|counts|forecast` and their runners.

pub mod auth;
pub mod cli;
pub mod dashboard;
pub mod error;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod model;
pub mod planner;
pub mod server;
pub mod table;

/// The chrono of the public API (`Planner::with_now`, the answers' dates).
pub use chrono;

pub use auth::{AuthConfig, Authenticator, Principal, Secret};
pub use error::ApiError;
pub use http::{router, ApiDoc, AppState, HttpLimits};
pub use planner::Planner;
pub use server::ConnectionLimits;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything `run` needs.
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub planner: Planner,
    pub auth: Authenticator,
    pub limits: HttpLimits,
    pub connections: ConnectionLimits,
    /// Renders `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Also checked by `/readyz` when set.
    pub broker: Option<Arc<dyn sitetally_core::readiness::ReadinessProbe>>,
}

/// Serves the API until `shutdown` resolves, then lets in-flight requests finish for at
/// most `connections.shutdown_timeout`.
/// `on_bound` is told the bound address (useful with port 0).
pub async fn run<F>(
    config: ServeConfig,
    shutdown: F,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let state = AppState {
        planner: Arc::new(config.planner),
        auth: Arc::new(config.auth),
        metrics: config.metrics,
        broker: config.broker,
    };
    let app = router(state, config.limits);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "sitetally API and dashboard at http://{addr}/");
    on_bound(addr);
    server::serve(listener, app, config.connections, shutdown).await;
    Ok(())
}
