//! Metric names (one place) and the request-metrics middleware.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Requests served, by route template, method and status.
pub const REQUESTS_TOTAL: &str = "sitetally_api_requests_total";
/// Request latency in seconds, by route template and method.
pub const REQUEST_DURATION_SECONDS: &str = "sitetally_api_request_duration_seconds";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests served by the sitetally API");
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency of the sitetally API"
    );
}

/// Records one request. Labels carry the route template (`/api/v1/tenants/{tenant}/sites`),
/// never tenant or site ids, so cardinality stays bounded and no ids leak into metrics.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = crate::guard::method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    resp
}
