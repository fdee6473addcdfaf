//! Integration tests of sitetally-reconciler, in one binary (each test owns its state,
//! ports and temp files).

mod common;
mod kafka;
mod offline;
mod props;
mod reconcile;
mod webhook;
