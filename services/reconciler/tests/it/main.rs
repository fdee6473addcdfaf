//! Integration tests of sitetally-reconciler, in one binary (each test owns its state,
//! ports and temp files). [`real_servers`] needs the rig of `scripts/test.sh` (the broker
//! and ClickHouse) and is `#[ignore]`d for plain `cargo test`.

mod common;
mod kafka;
mod offline;
mod props;
mod real_servers;
mod reconcile;
mod webhook;
