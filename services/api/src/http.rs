//! The HTTP API: routes, authentication, content negotiation (JSON or CSV), the OpenAPI
//! document and the dashboard.

use crate::auth::{Authenticator, Principal};
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::guard::RateLimit;
use crate::model::*;
use crate::planner::{CountsRequest, ForecastRequest, Page, Planner};
use crate::table::{to_csv, Tabular};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub planner: Arc<Planner>,
    pub auth: Arc<Authenticator>,
    /// Renders `/metrics`; None answers an empty exposition.
    pub metrics: Option<PrometheusHandle>,
    /// The pipeline's broker, also checked by `/readyz` when configured.
    pub broker: Option<Arc<dyn sitetally_core::readiness::ReadinessProbe>>,
}

/// Limits of the request layer (the connection layer's are in
/// [`crate::server::ConnectionLimits`]).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A request running longer is answered 503 (the store is too slow right now).
    pub request_timeout: Duration,
    /// API requests handled at once; more wait. `/healthz`, `/readyz` and `/metrics`
    /// are outside this limit (and the rate limit), so probes answer under load.
    pub concurrency: usize,
    /// Requests per token (anonymous callers share one budget).
    pub rate: RateLimit,
    /// With authentication off, the host names answered besides the loopback ones.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            concurrency: 64,
            rate: RateLimit::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// The router with every route and layer.
pub fn router(state: AppState, limits: HttpLimits) -> Router {
    use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
    let auth = Arc::clone(&state.auth);
    // Data routes spend the caller's rate budget; static ones (document, dashboard) do
    // not, but share the concurrency limit and timeout.
    let data = Router::new()
        .route("/api/v1/tenants", get(tenants))
        .route("/api/v1/tenants/{tenant}/sites", get(sites))
        .route("/api/v1/tenants/{tenant}/sites/{site}/counts", get(counts))
        .route(
            "/api/v1/tenants/{tenant}/sites/{site}/forecast",
            get(forecast),
        )
        .route(
            "/api/v1/tenants/{tenant}/enterprise-iot",
            get(enterprise_iot),
        )
        .route("/api/v1/tenants/{tenant}/decisions", get(decisions))
        .route("/api/v1/tenants/{tenant}/alerts", get(alerts))
        .route("/api/v1/tenants/{tenant}/calendar", get(calendar))
        .with_state(state.clone())
        .layer(crate::guard::rate_limit_layer(
            Arc::clone(&auth),
            limits.rate,
        ));
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/", get(crate::dashboard::index))
        .route("/assets/app.js", get(crate::dashboard::script))
        .route("/assets/app.css", get(crate::dashboard::style))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .merge(data)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.concurrency,
        ));
    // Probes answer even when the API is saturated or a token is rate limited.
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let mut app = api
        .merge(probes)
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::Internal("the request handler panicked".into()).into_response()
        }));
    if auth.is_disabled() {
        let hosts = crate::guard::AllowedHosts::loopback_and(&limits.allowed_hosts);
        app = app.layer(axum::middleware::from_fn(move |req, next| {
            crate::guard::check_host(hosts.clone(), req, next)
        }));
    }
    app.layer(tower_http::trace::TraceLayer::new_for_http())
        // Marks Authorization sensitive so no layer or log prints it.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such path (see /openapi.json)".into())
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::BadRequest("method not allowed: this API is read-only (GET)".into())
        .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::Unauthorized("Authorization header is not valid text".into())
            })?),
        };
        state.auth.authenticate(header).map(Caller)
    }
}

/// Query parameters with JSON 400 errors.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| {
                ApiError::BadRequest(format!("invalid query parameters: {}", e.body_text()))
            })
    }
}

/// Path parameters with JSON 400 errors.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))
    }
}

/// Response format, from `?format=` or else the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
}

/// The `Accept` header's choice.
pub struct Accept(pub Format);

impl<S: Send + Sync> FromRequestParts<S> for Accept {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let csv = parts
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|m| m.trim().starts_with("text/csv")));
        Ok(Accept(if csv { Format::Csv } else { Format::Json }))
    }
}

/// JSON or CSV (a download named `sitetally-<name>.csv`), never cached: answers carry
/// tenants' data and change with every run.
fn respond<T: Serialize + Tabular>(
    name: &'static str,
    format: Option<Format>,
    accept: Accept,
    body: T,
) -> Response {
    let mut resp = match format.unwrap_or(accept.0) {
        Format::Json => Json(body).into_response(),
        Format::Csv => {
            let disposition = format!("attachment; filename=\"sitetally-{name}.csv\"");
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&disposition).expect("ASCII file name"),
                    ),
                ],
                to_csv(&body),
            )
                .into_response()
        }
    };
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `?format=` alone.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatParams {
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<Format>,
}

/// Paging and format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items to skip (default 0, at most 1,000,000).
    #[param(maximum = 1000000)]
    pub offset: Option<usize>,
    /// Page size (default 100, 1 to 1,000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<Format>,
}

/// A counts query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountsParams {
    /// First day, YYYY-MM-DD (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, YYYY-MM-DD (default: today, UTC). At most 366 days after `from`.
    pub to: Option<NaiveDate>,
    /// `day` (default), `week` (ISO weeks) or `month`.
    pub granularity: Option<Granularity>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<Format>,
}

/// A forecast query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// Days of history the trend is fitted on (default 90, 7 to 366).
    #[param(minimum = 7, maximum = 366)]
    pub history_days: Option<u32>,
    /// Days ahead to look for a crossing (default 365, 1 to 730).
    #[param(minimum = 1, maximum = 730)]
    pub horizon_days: Option<u32>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<Format>,
}

/// Path of tenant-wide endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// Tenant id, as in the licence file and the discovery events.
    #[param(max_length = 256)]
    pub tenant: String,
}

/// Path of per-site endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SitePath {
    /// Tenant id.
    #[param(max_length = 256)]
    pub tenant: String,
    /// Site id.
    #[param(max_length = 256)]
    pub site: String,
}

/// Tenants the token may read: every known tenant for an admin token, its own for a
/// tenant token.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Tenants", content((TenantsResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn tenants(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    Params(p): Params<FormatParams>,
) -> Result<Response, ApiError> {
    let tenants = match who {
        Principal::Admin => s.planner.tenants().await?,
        Principal::Tenant(t) => vec![t],
    };
    Ok(respond(
        "tenants",
        p.format,
        accept,
        TenantsResponse { tenants },
    ))
}

/// A tenant's OT sites: distinct devices over the billing window (default 60 days),
/// licensed tier, utilisation and status, as the reconciler decides them now.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sites", tag = "sites", params(TenantPath, PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of sites", content((SitesResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant", body = ErrorBody),
        (status = 422, description = "Page out of bounds", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn sites(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<TenantPath>,
    Params(p): Params<PageParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    let page = Page::new(p.offset, p.limit)?;
    Ok(respond(
        "sites",
        p.format,
        accept,
        s.planner.sites(&path.tenant, page).await?,
    ))
}

/// Distinct devices of one site per day, ISO week or month, by category and for all
/// categories, each with its method (exact or estimated) and error bound. Days come
/// from per-day sketches; weeks and months from sketches merged over the period, so a
/// device seen on several days counts once.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sites/{site}/counts", tag = "sites",
    params(SitePath, CountsParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts per period", content((CountsResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unparseable parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant or site", body = ErrorBody),
        (status = 422, description = "from after to, or a range over 366 days", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn counts(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<SitePath>,
    Params(p): Params<CountsParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    let req = CountsRequest {
        from: p.from,
        to: p.to,
        granularity: p.granularity.unwrap_or_default(),
    };
    Ok(respond(
        "counts",
        p.format,
        accept,
        s.planner.counts(&path.tenant, &path.site, req).await?,
    ))
}

/// A site's trend (least-squares line through its daily distinct devices) and the date
/// it is projected to cross its next boundary (the licensed capacity, or the next tier
/// above its count), with a 95% range, or `not_within_horizon`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sites/{site}/forecast", tag = "sites",
    params(SitePath, ForecastParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Forecast", content((ForecastResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unparseable parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant or site", body = ErrorBody),
        (status = 422, description = "history_days or horizon_days out of bounds", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn forecast(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<SitePath>,
    Params(p): Params<ForecastParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    let req = ForecastRequest {
        history_days: p.history_days,
        horizon_days: p.horizon_days,
    };
    Ok(respond(
        "forecast",
        p.format,
        accept,
        s.planner.forecast(&path.tenant, &path.site, req).await?,
    ))
}

/// A tenant's Enterprise IoT coverage: devices (Computers & Mobile never count) over
/// the Enterprise IoT window (default 30 days), the E5 allowance (5 devices per E5
/// licence), standalone licences, and the gap.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/enterprise-iot", tag = "tenants",
    params(TenantPath, FormatParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Coverage", content((EnterpriseIotResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn enterprise_iot(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<TenantPath>,
    Params(p): Params<FormatParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    Ok(respond(
        "enterprise-iot",
        p.format,
        accept,
        s.planner.enterprise_iot(&path.tenant).await?,
    ))
}

/// The reconciler's decisions for a tenant (OT sites, Enterprise IoT, legacy plans).
/// No decision history is stored yet: they are computed on request with the
/// reconciler's own logic over the store (`source: computed_on_demand`); previous
/// statuses (hysteresis) and `status_since` come from the reconciler's alert state file
/// when the server was given one.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/decisions", tag = "tenants",
    params(TenantPath, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Decisions", content((DecisionsResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant", body = ErrorBody),
        (status = 422, description = "Page out of bounds", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn decisions(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<TenantPath>,
    Params(p): Params<PageParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    let page = Page::new(p.offset, p.limit)?;
    Ok(respond(
        "decisions",
        p.format,
        accept,
        s.planner.decisions(&path.tenant, page).await?,
    ))
}

/// An alert-history query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsParams {
    /// First day, YYYY-MM-DD (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, YYYY-MM-DD (default: today, UTC). At most 366 days after `from`.
    pub to: Option<NaiveDate>,
    /// Items to skip (default 0, at most 1,000,000).
    #[param(maximum = 1000000)]
    pub offset: Option<usize>,
    /// Page size (default 100, 1 to 1,000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<Format>,
}

/// The alerts the reconciler raised for a tenant (status transitions), newest first, from
/// its alert log (the `alert_log` table in ClickHouse or in the embedded store; a server without one says so with `alert_log: false`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alerts", tag = "tenants",
    params(TenantPath, AlertsParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Alerts", content((AlertsResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant", body = ErrorBody),
        (status = 422, description = "Range or page out of bounds", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Alert log unavailable", body = ErrorBody),
    ))]
pub async fn alerts(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<TenantPath>,
    Params(p): Params<AlertsParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    let page = Page::new(p.offset, p.limit)?;
    Ok(respond(
        "alerts",
        p.format,
        accept,
        s.planner.alerts(&path.tenant, p.from, p.to, page).await?,
    ))
}

/// A licence-calendar query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CalendarParams {
    /// How far ahead, in days (default 365, 1 to 3,650).
    #[param(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
    /// Alert this many days before each date (default 14, 0 to 365).
    #[param(maximum = 365)]
    pub alert_days: Option<u32>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<Format>,
}

/// The tenant's licence calendar: a trial's extension window and end, renewals, licence
/// ends, service stop and retention end, each with the day to alert, from the licence
/// book and the same rules the decisions use.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/calendar", tag = "tenants",
    params(TenantPath, CalendarParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Calendar", content((CalendarResponse = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token of another tenant", body = ErrorBody),
        (status = 404, description = "Unknown tenant", body = ErrorBody),
        (status = 429, description = "Rate limit of the token exceeded (Retry-After says when to retry)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn calendar(
    State(s): State<AppState>,
    Caller(who): Caller,
    accept: Accept,
    PathParams(path): PathParams<TenantPath>,
    Params(p): Params<CalendarParams>,
) -> Result<Response, ApiError> {
    who.check_tenant(&path.tenant)?;
    let days = p.days.unwrap_or(365);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::BadRequest("days must be 1 to 3650".into()));
    }
    let alert_days = p.alert_days.unwrap_or(14);
    if alert_days > 365 {
        return Err(ApiError::BadRequest("alert_days must be 0 to 365".into()));
    }
    Ok(respond(
        "calendar",
        p.format,
        accept,
        s.planner.calendar(&path.tenant, days, alert_days).await?,
    ))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

/// Readiness: the store (ClickHouse or the embedded store) answers a ping, and the Kafka
/// broker answers a metadata request when one is configured (`serve --kafka-brokers`).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthResponse),
        (status = 503, description = "Store or broker unreachable", body = ErrorBody),
    ))]
pub async fn readyz(State(s): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    s.planner
        .store()
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store unreachable: {e}")))?;
    if let Some(probe) = &s.broker {
        probe
            .check()
            .await
            .map_err(|e| ApiError::Unavailable(format!("{} unreachable: {e}", probe.what())))?;
    }
    Ok(Json(HealthResponse {
        status: "ready".into(),
    }))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let body = s
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant token (reads its own tenant only; other tenants' paths answer 403) or an \
                         admin token (every tenant).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sitetally API",
        description = "Per-site billable device counts, licence tiers, forecasts and reconciliation decisions \
                       for capacity planners. JSON by default; CSV with `Accept: text/csv` or `?format=csv`. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(tenants, sites, counts, forecast, enterprise_iot, decisions, alerts, calendar, healthz, readyz, metrics, openapi),
    components(schemas(
        ErrorBody, ErrorDetail, TenantsResponse, SitesResponse, SiteRow, CountsResponse, PeriodCount,
        Granularity, ForecastResponse, Boundary, DayPoint, TrendView, CurrentView, EnterpriseIotResponse,
        DecisionsResponse, DecisionRow, AlertsResponse, AlertRow, CalendarResponse, CalendarRow,
        HealthResponse, Format
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "tenants", description = "Tenant-wide views"),
        (name = "sites", description = "Per-site counts and forecasts"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;
