//! Integration tests of the `sitetally` binary, run as users run it: with
//! RUST_BACKTRACE=1 in the environment, asserting exit codes, stdout and a one-line
//! error on stderr. One binary; one module per command.

mod reconcile_cli;
