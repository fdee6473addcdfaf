//! Ingest's integration tests, one binary, on the rig's real broker (Tansu, sqlite
//! storage) and ClickHouse started by `scripts/test.sh` (`#[ignore]`d for plain
//! `cargo test`). Each test has its own topic, group and database.
//! - [`kafka`]: end to end, rebalances, crashes, dead letters, storage outages;
//! - [`acceptance`]: the acceptance run over a simulated world;
//! - [`tls`]: librdkafka over TLS against a private CA, SASL mechanisms built in (no rig).

mod acceptance;
mod kafka;
mod tls;
