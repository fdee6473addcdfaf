//! The HTTP API and dashboard of `sitetally-api`, served on `127.0.0.1:--port` for as
//! long as the demo runs, over the demo's embedded store and its generated licence book.
//! Authentication is disabled: the server listens on loopback only.

use crate::DemoError;
use sitetally_api::{Authenticator, ConnectionLimits, HttpLimits, Planner, ServeConfig};
use sitetally_ingest::probe::BrokerProbe;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running API server; stopped by [`ApiServer::stop`] (or aborted when dropped, e.g.
/// when the demo fails half-way).
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl ApiServer {
    /// Binds `127.0.0.1:port` (0 picks a free port) and serves `planner` in a tokio task.
    /// Returns once the port is bound, or the reason it could not be.
    /// `broker`: the in-process broker, reported by `/readyz` beside the store.
    pub async fn start(planner: Planner, port: u16, broker: &str) -> Result<Self, DemoError> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel::<SocketAddr>();
        let config = ServeConfig {
            listen,
            planner,
            auth: Authenticator::disabled(),
            limits: HttpLimits::default(),
            connections: ConnectionLimits::default(),
            metrics: None,
            broker: Some(std::sync::Arc::new(BrokerProbe::new(
                broker,
                Duration::from_secs(2),
            )?)),
        };
        let mut task = tokio::spawn(sitetally_api::run(
            config,
            async move {
                let _ = stopped.await;
            },
            move |addr| {
                let _ = bound_tx.send(addr);
            },
        ));
        let failed = |r: Result<anyhow::Result<()>, tokio::task::JoinError>| DemoError::Config {
            flag: "port",
            reason: match r {
                Ok(Err(e)) => format!("{e:#}"),
                Ok(Ok(())) => "the API server stopped before listening".into(),
                Err(e) => e.to_string(),
            },
        };
        tokio::select! {
            bound = bound_rx => match bound {
                Ok(addr) => Ok(Self { addr, stop: Some(stop), task: Some(task) }),
                // `run` returned (with its error) before binding.
                Err(_) => Err(failed((&mut task).await)),
            },
            r = &mut task => Err(failed(r)),
        }
    }

    /// The bound address (the actual port when `--port 0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes in-flight requests and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "API server failed"),
                Err(e) => tracing::warn!(error = %e, "API server task failed"),
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
