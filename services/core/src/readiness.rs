//! The readiness interface a service's `/readyz` checks beyond its store. Here, with no
//! I/O, so the API can check a Kafka broker without linking a Kafka client: the broker
//! probe lives with ingest (`sitetally_ingest::probe`).

use std::future::Future;
use std::pin::Pin;

/// A dependency `/readyz` checks.
pub trait ReadinessProbe: Send + Sync {
    /// What is checked, named in the 503 answer (`broker unreachable: ...`).
    fn what(&self) -> &str;
    /// Ok when the dependency answers in time; otherwise why not.
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}
