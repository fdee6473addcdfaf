//! Metric names (one place), their descriptions, and the recording helpers the service
//! calls. Every series the Grafana dashboard (deploy/grafana) reads starts at zero when
//! the service starts, so `rate()` and "no alerts failed" read right from the first scrape.

use crate::sink::SinkError;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use sitetally_licensing::{Decision, Status};
use std::time::Duration;

/// Reconciliation runs, by outcome (`ok`, `retrying`, `failed`).
pub const RUNS: &str = "sitetally_reconciler_runs_total";
/// Wall time of one run: counts, decisions, alert state, delivery.
pub const RUN_DURATION_SECONDS: &str = "sitetally_reconciler_run_duration_seconds";
/// Unix time of the last run that finished.
pub const LAST_SUCCESS: &str = "sitetally_reconciler_last_success_timestamp_seconds";
/// Subjects per status code in the last run.
pub const DECISIONS: &str = "sitetally_reconciler_decisions";
/// Decisions of the last run resting on an estimate that straddles a boundary.
pub const UNCERTAIN: &str = "sitetally_reconciler_uncertain_decisions";
/// Status transitions that raised an alert.
pub const ALERTS_RAISED: &str = "sitetally_reconciler_alerts_raised_total";
/// Alerts a sink acknowledged, by sink.
pub const ALERTS_SENT: &str = "sitetally_reconciler_alerts_sent_total";
/// Failed deliveries, by sink and kind (`retryable`: kept and retried; `permanent`: dropped).
pub const ALERTS_FAILED: &str = "sitetally_reconciler_alerts_failed_total";
/// (alert, sink) pairs still waiting for delivery after the last run.
pub const ALERTS_PENDING: &str = "sitetally_reconciler_alerts_pending";

const RUN_OUTCOMES: [&str; 3] = ["ok", "retrying", "failed"];
const FAILURE_KINDS: [&str; 2] = ["retryable", "permanent"];

/// Registers help texts and starts every series at zero (call once after installing a
/// recorder; without one it does nothing).
pub fn describe(sinks: &[&str]) {
    describe_counter!(RUNS, "Reconciliation runs, by outcome");
    describe_histogram!(
        RUN_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Wall time of one reconciliation run"
    );
    describe_gauge!(
        LAST_SUCCESS,
        "Unix time of the last finished reconciliation run"
    );
    describe_gauge!(DECISIONS, "Subjects per decision status in the last run");
    describe_gauge!(
        UNCERTAIN,
        "Decisions of the last run resting on a straddling estimate"
    );
    describe_counter!(ALERTS_RAISED, "Status transitions that raised an alert");
    describe_counter!(ALERTS_SENT, "Alerts acknowledged by a sink, by sink");
    describe_counter!(ALERTS_FAILED, "Failed alert deliveries, by sink and kind");
    describe_gauge!(ALERTS_PENDING, "Alert deliveries waiting for a retry");
    for outcome in RUN_OUTCOMES {
        counter!(RUNS, "outcome" => outcome).absolute(0);
    }
    for code in Status::CODES {
        gauge!(DECISIONS, "status" => code).set(0.0);
    }
    gauge!(UNCERTAIN).set(0.0);
    gauge!(ALERTS_PENDING).set(0.0);
    counter!(ALERTS_RAISED).absolute(0);
    for sink in sinks {
        counter!(ALERTS_SENT, "sink" => sink.to_string()).absolute(0);
        for kind in FAILURE_KINDS {
            counter!(ALERTS_FAILED, "sink" => sink.to_string(), "kind" => kind).absolute(0);
        }
    }
}

/// Records a finished run: its decisions by status, alerts raised and still pending.
pub fn record_run(decisions: &[Decision], raised: usize, pending: usize) {
    for code in Status::CODES {
        let n = decisions
            .iter()
            .filter(|d| d.status().code() == code)
            .count();
        gauge!(DECISIONS, "status" => code).set(n as f64);
    }
    let uncertain = decisions.iter().filter(|d| d.uncertain).count();
    gauge!(UNCERTAIN).set(uncertain as f64);
    counter!(ALERTS_RAISED).increment(raised as u64);
    gauge!(ALERTS_PENDING).set(pending as f64);
}

/// Records how a scheduled run ended and how long it took.
pub fn record_outcome(outcome: RunOutcome, took: Duration) {
    let label = match outcome {
        RunOutcome::Ok => "ok",
        RunOutcome::Retrying => "retrying",
        RunOutcome::Failed => "failed",
    };
    counter!(RUNS, "outcome" => label).increment(1);
    histogram!(RUN_DURATION_SECONDS).record(took.as_secs_f64());
    if outcome == RunOutcome::Ok {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        gauge!(LAST_SUCCESS).set(now.as_secs_f64());
    }
}

/// How a scheduled run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ok,
    /// Failed with a retryable error; the next tick tries again.
    Retrying,
    /// Failed for good; the service stops.
    Failed,
}

/// Records one delivery's result for `sink`.
pub fn record_delivery(sink: &str, result: &Result<(), SinkError>) {
    match result {
        Ok(()) => counter!(ALERTS_SENT, "sink" => sink.to_string()).increment(1),
        Err(e) => {
            let kind = if e.is_retryable() {
                "retryable"
            } else {
                "permanent"
            };
            counter!(ALERTS_FAILED, "sink" => sink.to_string(), "kind" => kind).increment(1)
        }
    }
}
