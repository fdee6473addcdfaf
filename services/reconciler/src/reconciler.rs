//! The reconciler service: one run decides every subject, raises alerts on status
//! transitions (outbox first, then delivery), and retries undelivered alerts; `run`
//! repeats that on an interval until shutdown.

use crate::metrics::RunOutcome;
use crate::sink::{fan_out, AlertSink};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sitetally_licensing::alert::{Alert, PendingAlert, SubjectState};
use sitetally_licensing::calendar::date_decisions;
use sitetally_licensing::count::{CountError, CountSource};
use sitetally_licensing::decision::{Decision, Status};
use sitetally_licensing::engine::{decide_all, PreviousStatuses};
use sitetally_licensing::licence::{LicenceBook, LicenceError};
use sitetally_licensing::settings::Settings;
use sitetally_store::history::{AlertStateStore, RunHistory, StateError};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    #[error(transparent)]
    Counts(#[from] CountError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Licences(#[from] LicenceError),
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<sitetally_licensing::counts_csv::CountsCsvError> for ReconcileError {
    fn from(e: sitetally_licensing::counts_csv::CountsCsvError) -> Self {
        ReconcileError::Config(e.0)
    }
}

impl ReconcileError {
    /// Storage hiccups are worth another run; bad files and configuration are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Counts(e) => e.is_retryable(),
            ReconcileError::State(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// What one run decided and raised, for output and for the reconciliation history.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub decided_at: DateTime<Utc>,
    pub decisions: Vec<Decision>,
    /// Alerts raised by this run's transitions.
    pub alerts: Vec<Alert>,
    /// Deliveries acknowledged in this run (including retries of older alerts).
    pub delivered: usize,
    /// (alert, sink) deliveries still owed after this run.
    pub pending: usize,
}

impl RunReport {
    /// Decisions whose status calls for buying something.
    pub fn over(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.status().is_over())
    }
}

/// Decides, alerts and delivers.
pub struct Reconciler {
    settings: Settings,
    licences: LicenceBook,
    counts: Arc<dyn CountSource>,
    state: Arc<dyn AlertStateStore>,
    sinks: Vec<Arc<dyn AlertSink>>,
    history: Option<Arc<dyn RunHistory>>,
}

impl Reconciler {
    pub fn new(
        settings: Settings,
        licences: LicenceBook,
        counts: Arc<dyn CountSource>,
        state: Arc<dyn AlertStateStore>,
    ) -> Self {
        Self {
            settings,
            licences,
            counts,
            state,
            sinks: Vec::new(),
            history: None,
        }
    }

    /// Records every run's decisions and raised alerts (history and trends).
    pub fn with_history(mut self, history: Arc<dyn RunHistory>) -> Self {
        self.history = Some(history);
        self
    }

    /// Adds an alert sink. Names must be unique.
    pub fn with_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Replaces the licences (e.g. after the licence file or table changed).
    pub fn set_licences(&mut self, licences: LicenceBook) {
        self.licences = licences;
    }

    /// The names of the alert sinks, in the order they were added.
    pub fn sink_names(&self) -> Vec<&str> {
        self.sinks.iter().map(|s| s.name()).collect()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One reconciliation at `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<RunReport, ReconcileError> {
        let mut states = self.state.load_all().await?;
        let previous: PreviousStatuses = states
            .iter()
            .map(|(k, s)| (k.clone(), s.status.clone()))
            .collect();
        let mut decisions = decide_all(
            &self.licences,
            &self.settings,
            self.counts.as_ref(),
            &previous,
            now,
        )
        .await?;
        // Licence-calendar dates coming up: each alerted once, like a first-seen status.
        decisions.extend(date_decisions(&self.licences, &self.settings, now));
        let sink_names: Vec<String> = self.sinks.iter().map(|s| s.name().to_string()).collect();
        let mut alerts = Vec::new();
        for d in &decisions {
            if d.uncertain {
                // Never move a subject on an estimate that could go either way.
                continue;
            }
            let key = d.subject.key();
            let old = states.get(&key);
            let transition = match old {
                None => *d.status() != Status::WithinTier,
                Some(st) => st.status.transition_key() != d.status().transition_key(),
            };
            if !transition {
                if old.is_none() {
                    let st = SubjectState {
                        subject: d.subject.clone(),
                        status: d.status().clone(),
                        since: now,
                        last_alert_key: None,
                        pending: Vec::new(),
                    };
                    self.state.save(&st).await?;
                    states.insert(key, st);
                }
                continue;
            }
            let alert = Alert::from_decision(d, old.map(|s| &s.status), &self.settings);
            tracing::info!(subject = %d.subject, from = %alert.old_status, to = %alert.new_status, key = %alert.idempotency_key, "status transition");
            let mut pending = old.map(|s| s.pending.clone()).unwrap_or_default();
            if !sink_names.is_empty() {
                pending.push(PendingAlert {
                    alert: alert.clone(),
                    sinks: sink_names.clone(),
                });
            }
            let st = SubjectState {
                subject: d.subject.clone(),
                status: d.status().clone(),
                since: now,
                last_alert_key: Some(alert.idempotency_key.clone()),
                pending,
            };
            // Outbox: persist before delivering, so a crash redelivers this alert (same
            // key) rather than raising a new one.
            self.state.save(&st).await?;
            states.insert(key, st);
            alerts.push(alert);
        }
        let (delivered, pending) = self.deliver_pending(&mut states).await?;
        crate::metrics::record_run(&decisions, alerts.len(), pending);
        let report = RunReport {
            decided_at: now,
            decisions,
            alerts,
            delivered,
            pending,
        };
        if let Some(history) = &self.history {
            // History serves planners; a failure to record it must not stop alerting.
            if let Err(e) = history
                .record_run(
                    report.decided_at,
                    &report.decisions,
                    &report.alerts,
                    &self.settings,
                )
                .await
            {
                tracing::warn!(error = %e, "could not record the run in the history tables");
            }
        }
        Ok(report)
    }

    /// Delivers every pending (alert, sink) pair; returns (delivered, still pending).
    async fn deliver_pending(
        &self,
        states: &mut HashMap<String, SubjectState>,
    ) -> Result<(usize, usize), ReconcileError> {
        let mut work: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
        for st in states.values() {
            for p in &st.pending {
                for sink in &p.sinks {
                    work.entry(sink.clone()).or_default().push(p.alert.clone());
                }
            }
        }
        if work.is_empty() {
            return Ok((0, 0));
        }
        let acked = fan_out(&self.sinks, work.into_iter().collect()).await;
        let known: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        let mut delivered = 0;
        let mut remaining = 0;
        for st in states.values_mut() {
            if st.pending.is_empty() {
                continue;
            }
            let before = st.pending.clone();
            for p in &mut st.pending {
                p.sinks.retain(|sink| {
                    let done = acked.iter().any(|(name, keys)| {
                        name == sink && keys.contains(&p.alert.idempotency_key)
                    });
                    if done {
                        delivered += 1;
                    }
                    // A sink no longer configured will never take it.
                    !done && known.contains(&sink.as_str())
                });
                remaining += p.sinks.len();
            }
            st.pending.retain(|p| !p.sinks.is_empty());
            if st.pending != before {
                self.state.save(st).await?;
            }
        }
        Ok((delivered, remaining))
    }

    /// Runs every `interval` until `shutdown` resolves. Retryable failures are logged
    /// and retried at the next tick; others end the loop.
    pub async fn run<F>(&self, interval: Duration, shutdown: F) -> Result<(), ReconcileError>
    where
        F: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("reconciler shutting down");
                    return Ok(());
                }
                _ = tick.tick() => {
                    let started = std::time::Instant::now();
                    let result = self.run_once(Utc::now()).await;
                    let outcome = match &result {
                        Ok(_) => RunOutcome::Ok,
                        Err(e) if e.is_retryable() => RunOutcome::Retrying,
                        Err(_) => RunOutcome::Failed,
                    };
                    crate::metrics::record_outcome(outcome, started.elapsed());
                    match result {
                        Ok(r) => tracing::info!(decisions = r.decisions.len(), alerts = r.alerts.len(), delivered = r.delivered, pending = r.pending, "reconciliation run"),
                        Err(e) if e.is_retryable() => tracing::warn!(error = %e, "reconciliation run failed; retrying next tick"),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}
