//! The reconciler's memory, behind traits every engine implements:
//! - [`AlertStateStore`]: each subject's last status and undelivered alerts, so a
//!   reconciler restarted anywhere resumes its hysteresis and outbox and sends no alert
//!   twice;
//! - [`AlertLog`]: every alert raised, for the alert-history API;
//! - [`RunHistory`] / [`DecisionHistory`]: the decisions of each run, for trends and for
//!   the decisions API;
//! - [`LicenceTable`]: licence documents per tenant (`reconcile --import-licences`).
//!
//! Engines: ClickHouse (`clickhouse::history`), the embedded SQLite store
//! (`embedded::history`), and for alert state alone memory and a JSON file
//! (`--alert-state FILE`), both here. Documents are stored as JSON; the columns beside
//! them exist for plain SQL.

use chrono::{DateTime, Utc};
use sitetally_licensing::{Alert, Decision, Settings, SubjectState};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Errors of the reconciler's memory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Storage down or slow: retry later.
    #[error("reconciler state unavailable: {0}")]
    Unavailable(String),
    /// A stored document no longer reads back: a person must look.
    #[error("reconciler state corrupt: {0}")]
    Corrupt(String),
}

impl StateError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Unavailable(_))
    }
}

impl From<crate::StoreError> for StateError {
    fn from(e: crate::StoreError) -> Self {
        StateError::Unavailable(e.to_string())
    }
}

/// A document that does not parse, named by where it was stored.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Corrupt(format!("{what}: {e}"))
}

/// The decisions of a tenant's latest run with that run's time (None before any run).
pub type LatestRun = Option<(DateTime<Utc>, Vec<Decision>)>;

/// Parses stored JSON documents of `table`, naming the table in an error.
pub(crate) fn parse_all<T: serde::de::DeserializeOwned>(
    table: &str,
    docs: &[String],
) -> Result<Vec<T>, StateError> {
    docs.iter()
        .map(|d| serde_json::from_str(d).map_err(|e| corrupt(table, e)))
        .collect()
}

/// One run's stored decisions with that run's time; None when there are none.
pub(crate) fn latest_run(table: &str, docs: &[String]) -> Result<LatestRun, StateError> {
    let decisions: Vec<Decision> = parse_all(table, docs)?;
    Ok(decisions
        .first()
        .map(|d| d.decided_at)
        .map(|at| (at, decisions)))
}

/// Stored alert states by subject key.
pub(crate) fn states_by_subject(
    table: &str,
    docs: &[String],
) -> Result<HashMap<String, SubjectState>, StateError> {
    let states: Vec<SubjectState> = parse_all(table, docs)?;
    Ok(states.into_iter().map(|s| (s.subject.key(), s)).collect())
}

/// Durable per-subject alert state. The reconciler saves a subject's state (with the new
/// alert pending) *before* delivering, so a crash between the two redelivers the same
/// alert with the same key instead of raising a new one.
#[async_trait::async_trait]
pub trait AlertStateStore: Send + Sync {
    /// Every subject's state, by [`sitetally_licensing::Subject::key`].
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError>;
    /// Inserts or replaces one subject's state.
    async fn save(&self, state: &SubjectState) -> Result<(), StateError>;
}

/// Where finished runs go (decisions and the alerts they raised).
#[async_trait::async_trait]
pub trait RunHistory: Send + Sync {
    /// Records one run: its time, every decision, and the alerts it raised. `settings`
    /// name tiers and bounds in the plain-SQL columns the way alerts do.
    async fn record_run(
        &self,
        decided_at: DateTime<Utc>,
        decisions: &[Decision],
        alerts: &[Alert],
        settings: &Settings,
    ) -> Result<(), StateError>;
}

/// The alerts raised, for the alert-history API.
#[async_trait::async_trait]
pub trait AlertLog: Send + Sync {
    /// Alerts raised for `tenant` between `from` and `to` (inclusive, to the second),
    /// newest first, each idempotency key once, at most `limit`.
    async fn alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alert>, StateError>;
}

/// The decisions of past runs, for the decisions API.
#[async_trait::async_trait]
pub trait DecisionHistory: Send + Sync {
    /// The decisions about `tenant` of the latest run that decided on it, with that run's
    /// time; None before any run.
    async fn latest_decisions(&self, tenant: &str) -> Result<LatestRun, StateError>;
}

/// Licence documents, one per tenant (the newest import wins); tenant `""` holds the
/// catalogue override. Validation is the reconciler's: this only stores text.
#[async_trait::async_trait]
pub trait LicenceTable: Send + Sync {
    /// Stores `(tenant, document)` pairs, stamped `updated_ms`.
    async fn put_licences(
        &self,
        documents: &[(String, String)],
        updated_ms: u64,
    ) -> Result<(), StateError>;
    /// The newest document of every tenant, ordered by tenant.
    async fn licence_documents(&self) -> Result<Vec<(String, String)>, StateError>;
}

/// Every table of the reconciler's memory in one engine.
pub trait ReconcilerTables:
    AlertStateStore + AlertLog + RunHistory + DecisionHistory + LicenceTable
{
}

impl<T: AlertStateStore + AlertLog + RunHistory + DecisionHistory + LicenceTable> ReconcilerTables
    for T
{
}

/// Where a deployment keeps the reconciler's memory, as the CLI wires it.
#[derive(Clone)]
pub struct ReconcilerMemory {
    pub alert_state: Arc<dyn AlertStateStore>,
    pub alert_log: Arc<dyn AlertLog>,
    pub runs: Arc<dyn RunHistory>,
    pub decisions: Arc<dyn DecisionHistory>,
}

impl ReconcilerMemory {
    /// Every table in one engine (ClickHouse, or the embedded store).
    pub fn of<T: ReconcilerTables + 'static>(tables: Arc<T>) -> Self {
        Self {
            alert_state: tables.clone(),
            alert_log: tables.clone(),
            runs: tables.clone(),
            decisions: tables,
        }
    }

    /// The same, with the alert state elsewhere (`--alert-state FILE`).
    pub fn with_alert_state(mut self, alert_state: Arc<dyn AlertStateStore>) -> Self {
        self.alert_state = alert_state;
        self
    }
}

/// In-memory state (tests, one-shot offline runs).
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    states: Mutex<HashMap<String, SubjectState>>,
}

#[async_trait::async_trait]
impl AlertStateStore for MemoryStateStore {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        Ok(self.states.lock().expect("state lock").clone())
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        self.states
            .lock()
            .expect("state lock")
            .insert(state.subject.key(), state.clone());
        Ok(())
    }
}

/// State in one JSON file named by the user (`reconcile --alert-state FILE`), rewritten
/// atomically (temp file + rename) on every save. For single-instance deployments without
/// a store of their own; the embedded store keeps its state in its database instead.
#[derive(Debug)]
pub struct JsonFileStateStore {
    path: PathBuf,
    cache: tokio::sync::Mutex<Option<HashMap<String, SubjectState>>>,
}

impl JsonFileStateStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    fn read(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.is_empty() => Ok(HashMap::new()),
            Ok(bytes) => {
                let list: Vec<SubjectState> = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(&self.path.display().to_string(), e))?;
                Ok(list.into_iter().map(|s| (s.subject.key(), s)).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
            Err(e) => Err(StateError::Unavailable(format!(
                "{}: {e}",
                self.path.display()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl AlertStateStore for JsonFileStateStore {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        let mut cache = self.cache.lock().await;
        let states = self.read()?;
        *cache = Some(states.clone());
        Ok(states)
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = Some(self.read()?);
        }
        let map = cache.as_mut().expect("loaded above");
        map.insert(state.subject.key(), state.clone());
        let mut list: Vec<&SubjectState> = map.values().collect();
        list.sort_by(|a, b| a.subject.cmp(&b.subject));
        let bytes =
            serde_json::to_vec_pretty(&list).map_err(|e| StateError::Corrupt(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        let unavailable =
            |e: std::io::Error| StateError::Unavailable(format!("{}: {e}", self.path.display()));
        std::fs::write(&tmp, &bytes).map_err(unavailable)?;
        std::fs::rename(&tmp, &self.path).map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_file_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let d = sitetally_licensing::fixtures::sample_decision();
        let st = SubjectState {
            subject: d.subject.clone(),
            status: d.status().clone(),
            since: d.decided_at,
            last_alert_key: Some("k".into()),
            pending: vec![sitetally_licensing::alert::PendingAlert {
                alert: Alert::from_decision(&d, None, &Settings::default()),
                sinks: vec!["webhook:a".into()],
            }],
        };
        JsonFileStateStore::new(&path).save(&st).await.unwrap();
        let reopened = JsonFileStateStore::new(&path).load_all().await.unwrap();
        assert_eq!(reopened.get(&d.subject.key()), Some(&st));
        std::fs::write(&path, b"{not json").unwrap();
        let e = JsonFileStateStore::new(&path).load_all().await.unwrap_err();
        assert!(matches!(e, StateError::Corrupt(_)));
    }
}
