//! sitetally-testkit: what the workspace's tests share, so no test helper is written twice.
//! A dev-dependency only: nothing here ships in the binary.
//!
//! Layout:
//! - [`rig`]     the servers `scripts/test.sh` starts: names, topics, producing, reading
//!   dead letters, waiting with a clear failure;
//! - [`sample`]  a small fixed world (licences, tokens, sightings) with known answers;
//! - [`webhook`] a loopback HTTP receiver that records what it is sent.

pub mod rig;
pub mod sample;
pub mod webhook;
