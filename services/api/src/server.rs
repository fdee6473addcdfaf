//! The HTTP server loop: hyper's HTTP/1 connections with a header-read timeout, a cap on
//! open connections and a graceful shutdown that has a deadline.
//!
//! `axum::serve` has none of the three: a socket that sends nothing stays open forever (so
//! idle sockets can exhaust the fd limit) and one half-sent request blocks shutdown.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Limits of the connection layer (see [`crate::HttpLimits`] for the request layer).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; more are answered 503 and closed at once.
    pub max_connections: usize,
    /// Longest wait for a request's headers, on a new connection and between the
    /// requests of a kept-alive one; then the connection is closed.
    pub header_read_timeout: Duration,
    /// After shutdown is asked for, open connections get this long to finish their
    /// request; then they are closed.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// What a connection over the cap gets before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 85\r\n\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"too many open connections; retry shortly\"}}";

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections
/// finish for at most `limits.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as small as the open ones.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: at the connection cap");
            connections.spawn(refuse(stream));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open_now = limits.max_connections - open.available_permits();
    tracing::info!(
        open = open_now,
        deadline = ?limits.shutdown_timeout,
        "shutting down: no new connections; open ones may finish"
    );
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?limits.shutdown_timeout,
            "connections still open at the shutdown deadline: closing them"
        );
    }
    connections.shutdown().await;
}

/// Answers 503 without reading the request and closes.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(OVER_CAPACITY).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_has_the_right_length() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "unavailable");
    }
}
