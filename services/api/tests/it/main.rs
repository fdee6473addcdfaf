//! The API's integration tests, one binary:
//! - [`router`]: every endpoint through `tower::ServiceExt::oneshot` over the embedded
//!   store seeded with the sample world;
//! - [`hardening`]: what keeps anonymous or greedy clients from knocking the server
//!   over (timeouts, connection cap, shutdown deadline, probes outside the limits,
//!   per-token rate limit, Host allow-list, bounded metric labels), over real loopback
//!   sockets where the connection layer is the point.

mod hardening;
mod router;
