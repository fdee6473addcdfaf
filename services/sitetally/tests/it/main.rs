//! The binary's integration tests, one test binary. Each test runs `sitetally` as a
//! process (or in-process) with its own data directory, topic and database:
//! - [`api_cli`]: `serve`, `sites`, `counts`, `forecast`, `reconcile` on the embedded store;
//! - [`api_clickhouse`]: the API over data written by ingest into the rig's ClickHouse;
//! - [`demo`]: `sitetally demo`, its summary against the simulator's truth and the API;
//! - [`process`], [`outage`]: ingest as a process: kill -9, rebalance, ClickHouse down;
//! - [`faults`]: the fault suite's short form: SIGTERM under load, broker restarted;
//! - [`reconcile_cli`]: `reconcile` offline as users run it (RUST_BACKTRACE=1): exit
//!   codes, one-line errors naming file and line or field;
//! - [`compose_config`]: docker-compose.yml as written;
//! - [`dashboard_metrics`]: every series the Grafana dashboard queries is exported;
//! - [`tls`]: `migrate` over https with and without the CA;
//! - [`cluster`]: migrate, ingest and the API on 2 shards x 2 replicas, a replica of
//!   each shard stopped mid-ingest.
//!
//! Tests that need the rig of `scripts/test.sh` (broker, ClickHouse) are `#[ignore]`d for
//! plain `cargo test`.

#![allow(dead_code)] // helper modules serve some tests only

mod api_cli;
mod api_clickhouse;
mod api_support;
mod cluster;
mod compose_config;
mod dashboard_metrics;
mod demo;
mod faults;
mod outage;
mod process;
mod process_support;
mod reconcile_cli;
mod tls;
