//! Transitions, hysteresis, restarts and the outbox.

use crate::common::{book, t, MutableCounts};
use sitetally_licensing::calendar::CalendarEvent;
use sitetally_reconciler::sink::{AlertSink, MemorySink, SinkError};
use sitetally_reconciler::{Alert, CountMethod, Reconciler, Settings, Status, Subject};
use sitetally_store::history::{AlertStateStore, JsonFileStateStore, MemoryStateStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const NOW: &str = "2025-06-01T00:00:00Z";

fn reconciler(
    counts: &MutableCounts,
    state: Arc<dyn AlertStateStore>,
    sink: Arc<dyn AlertSink>,
) -> Reconciler {
    Reconciler::new(Settings::default(), book(), Arc::new(counts.clone()), state).with_sink(sink)
}

#[tokio::test]
async fn sites_grown_past_their_tiers_alert_exactly_once_each() {
    let counts = MutableCounts::default();
    counts.set("p1", 500, 0.0);
    counts.set("p2", 2_000, 0.0);
    counts.set("p3", 100, 0.0);
    let sink = Arc::new(MemorySink::new("mem"));
    let r = reconciler(&counts, Arc::new(MemoryStateStore::default()), sink.clone());
    let first = r.run_once(t(NOW)).await.unwrap();
    assert!(
        first.alerts.is_empty(),
        "all within tier: {:?}",
        first.alerts
    );

    // Ingest grows p1 and p3 past their tiers.
    counts.set("p1", 1_200, 0.0);
    counts.set("p3", 800, 0.0);
    let second = r.run_once(t("2025-06-01T01:00:00Z")).await.unwrap();
    assert_eq!(second.alerts.len(), 2);
    for _ in 0..3 {
        let again = r.run_once(t("2025-06-01T02:00:00Z")).await.unwrap();
        assert!(again.alerts.is_empty());
    }
    let got = sink.alerts();
    assert_eq!(got.len(), 2);
    let p1 = got
        .iter()
        .find(|a| a.site.as_deref() == Some("p1"))
        .unwrap();
    assert_eq!(p1.old_status, "WITHIN_TIER");
    assert_eq!(p1.new_status, "OVER_TIER");
    assert_eq!(p1.licensed_tier.as_deref(), Some("L"));
    assert_eq!(p1.required_tier.as_deref(), Some("XL"));
    assert_eq!(p1.device_count, 1_200);
    let p3 = got
        .iter()
        .find(|a| a.site.as_deref() == Some("p3"))
        .unwrap();
    assert_eq!(p3.required_tier.as_deref(), Some("L"));
}

#[tokio::test]
async fn restart_raises_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alert-state.json");
    let counts = MutableCounts::default();
    counts.set("p1", 1_500, 0.0);
    let sink = Arc::new(MemorySink::new("mem"));
    {
        let r = reconciler(
            &counts,
            Arc::new(JsonFileStateStore::new(&path)),
            sink.clone(),
        );
        assert_eq!(r.run_once(t(NOW)).await.unwrap().alerts.len(), 1);
    }
    // A new process: same state file.
    let r = reconciler(
        &counts,
        Arc::new(JsonFileStateStore::new(&path)),
        sink.clone(),
    );
    let after = r.run_once(t("2025-06-01T00:05:00Z")).await.unwrap();
    assert!(after.alerts.is_empty());
    assert_eq!(sink.alerts().len(), 1);
}

#[tokio::test]
async fn hovering_at_a_boundary_does_not_flap() {
    let counts = MutableCounts::default();
    let sink = Arc::new(MemorySink::new("mem"));
    let r = reconciler(&counts, Arc::new(MemoryStateStore::default()), sink.clone());
    counts.set("p1", 850, 0.0);
    r.run_once(t(NOW)).await.unwrap();
    for (i, v) in [1_001u64, 998, 1_003, 995, 1_000, 1_002, 991, 1_001]
        .iter()
        .enumerate()
    {
        counts.set("p1", *v, 0.0);
        r.run_once(t(NOW) + chrono::Duration::hours(i as i64 + 1))
            .await
            .unwrap();
    }
    let statuses: Vec<String> = sink.alerts().iter().map(|a| a.new_status.clone()).collect();
    assert_eq!(statuses, vec!["OVER_TIER"], "{statuses:?}");
    // Clearly back below the boundary: one transition down.
    counts.set("p1", 950, 0.0);
    r.run_once(t("2025-06-02T00:00:00Z")).await.unwrap();
    counts.set("p1", 960, 0.0);
    r.run_once(t("2025-06-02T01:00:00Z")).await.unwrap();
    let statuses: Vec<String> = sink.alerts().iter().map(|a| a.new_status.clone()).collect();
    assert_eq!(statuses, vec!["OVER_TIER", "NEAR_LIMIT"]);
}

#[tokio::test]
async fn straddling_estimates_are_decided_on_exact_counts_and_recorded() {
    let counts = MutableCounts::default();
    let sink = Arc::new(MemorySink::new("mem"));
    let r = reconciler(&counts, Arc::new(MemoryStateStore::default()), sink.clone());
    // Estimate 1,010 ± 16 (one sigma) straddles L's 1,000; the truth is 1,004.
    counts.set_estimate("p1", 1_010, 16.0, 1_004);
    let rep = r.run_once(t(NOW)).await.unwrap();
    let d = rep
        .decisions
        .iter()
        .find(|d| d.subject.site() == Some("p1"))
        .unwrap();
    assert!(d.exact_fetched);
    assert_eq!(d.estimate.unwrap().value, 1_010);
    let a = &sink.alerts()[0];
    assert_eq!(a.count_method, CountMethod::Exact);
    assert_eq!(a.device_count, 1_004);
    assert_eq!(a.error_bound, 0);
    // A clear estimate is used as is.
    counts.set_estimate("p1", 3_000, 16.0, 2_990);
    let calls_before = *counts.exact_calls.lock().unwrap();
    let rep = r.run_once(t("2025-06-01T01:00:00Z")).await.unwrap();
    let d = rep
        .decisions
        .iter()
        .find(|d| d.subject.site() == Some("p1"))
        .unwrap();
    assert_eq!(d.count.method, CountMethod::Estimated);
    assert_eq!(*counts.exact_calls.lock().unwrap(), calls_before);
}

/// Fails the first `fail` deliveries with a retryable error.
struct Flaky {
    fail: usize,
    calls: AtomicUsize,
    got: MemorySink,
}

#[async_trait::async_trait]
impl AlertSink for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn deliver(&self, alert: &Alert) -> Result<(), SinkError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(SinkError::Retryable("down".into()));
        }
        self.got.deliver(alert).await
    }
}

#[tokio::test]
async fn undelivered_alerts_are_retried_with_the_same_key_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let counts = MutableCounts::default();
    counts.set("p1", 1_500, 0.0);
    let flaky = Arc::new(Flaky {
        fail: 1,
        calls: AtomicUsize::new(0),
        got: MemorySink::new("x"),
    });
    let healthy = Arc::new(MemorySink::new("mem"));
    let first_key;
    {
        let r = Reconciler::new(
            Settings::default(),
            book(),
            Arc::new(counts.clone()),
            Arc::new(JsonFileStateStore::new(&path)),
        )
        .with_sink(flaky.clone())
        .with_sink(healthy.clone());
        let rep = r.run_once(t(NOW)).await.unwrap();
        first_key = rep.alerts[0].idempotency_key.clone();
        // The failing sink did not stop the healthy one.
        assert_eq!(healthy.alerts().len(), 1);
        assert_eq!(rep.pending, 1);
    }
    let r = Reconciler::new(
        Settings::default(),
        book(),
        Arc::new(counts.clone()),
        Arc::new(JsonFileStateStore::new(&path)),
    )
    .with_sink(flaky.clone())
    .with_sink(healthy.clone());
    let rep = r.run_once(t("2025-06-01T00:10:00Z")).await.unwrap();
    assert!(rep.alerts.is_empty());
    assert_eq!(rep.delivered, 1);
    assert_eq!(rep.pending, 0);
    assert_eq!(flaky.got.alerts()[0].idempotency_key, first_key);
    assert_eq!(
        healthy.alerts().len(),
        1,
        "no duplicate to the healthy sink"
    );
    let st = JsonFileStateStore::new(&path).load_all().await.unwrap();
    assert!(st.values().all(|s| s.pending.is_empty()));
}

#[tokio::test]
async fn time_driven_transitions_alert_once_per_status() {
    let counts = MutableCounts::default();
    counts.set("p1", 100, 0.0);
    let sink = Arc::new(MemorySink::new("mem"));
    let book = sitetally_reconciler::LicenceBook::from_toml_str(
        "[[tenants]]\nid = \"acme\"\n[[tenants.sites]]\nid = \"p1\"\n[[tenants.sites.licences]]\ntier = \"L\"\nkind = \"paid\"\nstart = \"2025-01-01\"\nrecurring_billing = false\n",
        &Settings::default(),
    )
    .unwrap();
    let r = Reconciler::new(
        Settings::default(),
        book,
        Arc::new(counts.clone()),
        Arc::new(MemoryStateStore::default()),
    )
    .with_sink(sink.clone());
    for day in [
        "2025-12-31",
        "2026-01-01",
        "2026-01-02",
        "2026-01-15",
        "2026-02-01",
        "2026-02-02",
        "2026-04-20",
        "2026-05-01",
        "2026-06-01",
    ] {
        r.run_once(t(&format!("{day}T12:00:00Z"))).await.unwrap();
    }
    // In run order (alerts of one run reach the sink in no set order).
    let mut alerts = sink.alerts();
    alerts.sort_by(|a, b| (a.decided_at, &a.new_status).cmp(&(b.decided_at, &b.new_status)));
    let statuses: Vec<String> = alerts.iter().map(|a| a.new_status.clone()).collect();
    // The licence calendar's dates within 14 days (settings.calendar_alert_days) are
    // alerted once each, before they come: the licence's end on the first run, the data
    // deletion on 2026-04-20 (the service stop, 2026-01-31, was 15.5 days off on
    // 2026-01-15 and past by the next run).
    assert_eq!(
        statuses,
        vec![
            "DATE_AHEAD",
            "GRACE_PERIOD",
            "SERVICE_STOPPED",
            "DATE_AHEAD",
            "RETENTION_ENDING",
            "RETENTION_OVER"
        ]
    );
    let date = |a: &Alert| match &a.subject {
        Subject::Date { event, at, .. } => (*event, *at),
        other => panic!("not a date: {other:?}"),
    };
    assert_eq!(
        date(&alerts[0]),
        (CalendarEvent::LicenceEnds, t("2026-01-01T00:00:00Z"))
    );
    assert!(matches!(
        alerts[0].new_status_detail,
        Status::DateAhead { days_left: 1 }
    ));
    assert!(
        alerts[0].message.contains("the licence ends on 2026-01-01"),
        "{}",
        alerts[0].message
    );
    assert_eq!(date(&alerts[3]).0, CalendarEvent::RetentionEnds);
    assert!(matches!(
        alerts[1].new_status_detail,
        Status::GracePeriod { days_left: 30 }
    ));
}

#[tokio::test]
async fn run_loop_stops_on_shutdown() {
    let counts = MutableCounts::default();
    counts.set("p1", 1_500, 0.0);
    let sink = Arc::new(MemorySink::new("mem"));
    let r = reconciler(&counts, Arc::new(MemoryStateStore::default()), sink.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = async {
        r.run(std::time::Duration::from_millis(20), async {
            let _ = rx.await;
        })
        .await
    };
    let stopper = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        tx.send(()).unwrap();
    };
    let (res, ()) = tokio::join!(handle, stopper);
    res.unwrap();
    // The loop uses the wall clock: whatever the statuses are today, several runs raise
    // at most one alert per site.
    let alerts = sink.alerts();
    assert!(!alerts.is_empty());
    let mut sites: Vec<_> = alerts.iter().map(|a| a.site.clone()).collect();
    sites.sort();
    sites.dedup();
    assert_eq!(sites.len(), alerts.len(), "{alerts:?}");
}
