//! The store contract: every test here is written once over the traits and runs against
//! each engine (see the `engines!` list at the bottom).

use crate::{day, hashed, row};
use chrono::Duration;
use sitetally_core::{DeviceCategory, Sighting};
use sitetally_licensing::decision::{Status, Subject};
use sitetally_licensing::fixtures::sample_decision;
use sitetally_licensing::{Alert, Count, Decision, Settings, SubjectState};
use sitetally_store::history::ReconcilerTables;
use sitetally_store::{CountFilter, DailyCount, DayRange, Store};

/// What every engine implements.
pub trait Engine: Store + ReconcilerTables {}
impl<T: Store + ReconcilerTables> Engine for T {}

fn iot() -> CountFilter {
    CountFilter {
        categories: vec![DeviceCategory::Iot],
        include_agent_managed: true,
    }
}

fn no_agents() -> CountFilter {
    CountFilter {
        categories: vec![],
        include_agent_managed: false,
    }
}

fn values(daily: &[DailyCount]) -> u64 {
    daily.iter().map(|d| d.count.value).sum()
}

pub async fn migrations_are_idempotent_and_counts_survive_retries(s: &impl Engine) {
    assert!(!s.migrate().await.unwrap().is_empty(), "first run applies");
    assert!(
        s.migrate().await.unwrap().is_empty(),
        "second run applies nothing"
    );
    s.ping().await.unwrap();
    let day = day();
    let batch: Vec<Sighting> = (0..500u64)
        .map(|k| {
            let category = if k.is_multiple_of(3) {
                DeviceCategory::Iot
            } else {
                DeviceCategory::Ot
            };
            row("plant", day + (k % 2) as u16, k * 7919, category)
        })
        .collect();
    // The same batch three times: a retried insert and a redelivery.
    for _ in 0..3 {
        s.write_sightings(&batch).await.unwrap();
    }
    let days = DayRange {
        from: day,
        to: day + 1,
        since_ms: None,
    };
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].count, Count::exact(500));
    let exact = |f: CountFilter| async move {
        s.exact_site_count("acme", "plant", days, &f).await.unwrap()
    };
    assert_eq!(exact(CountFilter::all()).await, 500);
    assert_eq!(exact(iot()).await, 167);
    assert_eq!(exact(no_agents()).await, 450);
    // The sketch path applies the same filters.
    let sketched =
        |f: CountFilter| async move { s.site_counts(None, days, &f).await.unwrap()[0].count.value };
    assert_eq!(sketched(iot()).await, 167);
    assert_eq!(sketched(no_agents()).await, 450);
    let iot_no_agents = CountFilter {
        categories: vec![DeviceCategory::Iot],
        include_agent_managed: false,
    };
    let both = exact(iot_no_agents.clone()).await;
    assert_eq!(sketched(iot_no_agents.clone()).await, both);

    let one_day = s
        .site_counts(
            None,
            DayRange {
                from: day,
                to: day,
                since_ms: None,
            },
            &CountFilter::all(),
        )
        .await
        .unwrap();
    assert_eq!(one_day[0].count.value, 250);
    let later = DayRange {
        from: day + 2,
        to: day + 9,
        since_ms: None,
    };
    assert!(s
        .site_counts(None, later, &CountFilter::all())
        .await
        .unwrap()
        .is_empty());

    let daily = s
        .daily_counts("acme", "plant", days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(values(&daily), 500, "{daily:?}");
    assert_eq!(daily.len(), 4, "two days × two categories: {daily:?}");
    assert!(daily
        .windows(2)
        .all(|w| (w[0].day, w[0].category.code()) < (w[1].day, w[1].category.code())));
    let iot_day0 = daily
        .iter()
        .find(|d| d.day == day && d.category == DeviceCategory::Iot)
        .unwrap();
    // k even and k % 3 == 0: k ≡ 0 (mod 6) in 0..500.
    assert_eq!(iot_day0.count, Count::exact(84));
    let daily =
        |f: CountFilter| async move { s.daily_counts("acme", "plant", days, &f).await.unwrap() };
    assert_eq!(values(&daily(no_agents()).await), 450, "per day, no agents");
    assert_eq!(values(&daily(iot()).await), 167);
    let filtered = daily(iot_no_agents).await;
    assert_eq!(values(&filtered), both, "{filtered:?}");
    assert!(filtered.iter().all(|d| d.category == DeviceCategory::Iot));
}

pub async fn overlapping_redeliveries_and_other_sensors_count_once(s: &impl Engine) {
    s.migrate().await.unwrap();
    let day = day();
    let keys: Vec<u64> = (0..300).map(hashed).collect();
    let at = |keys: &[u64]| -> Vec<Sighting> {
        keys.iter()
            .map(|&k| row("p", day, k, DeviceCategory::Ot))
            .collect()
    };
    // Batches cut differently on redelivery, and a second sensor seeing the same devices.
    s.write_sightings(&at(&keys[..200])).await.unwrap();
    s.write_sightings(&at(&keys[100..])).await.unwrap();
    let other_sensor: Vec<Sighting> = at(&keys)
        .into_iter()
        .map(|r| Sighting {
            sensor: "s2".into(),
            ..r
        })
        .collect();
    s.write_sightings(&other_sensor).await.unwrap();
    s.write_sightings(&[]).await.unwrap();
    let days = DayRange::ending(day, 60);
    let counts = s
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(counts[0].count, Count::exact(300));
    assert_eq!(
        s.exact_site_count("acme", "p", days, &CountFilter::all())
            .await
            .unwrap(),
        300
    );
}

pub async fn sites_and_tenants_are_counted_apart(s: &impl Engine) {
    s.migrate().await.unwrap();
    let day = day();
    let mut rows: Vec<Sighting> = (0..40)
        .map(|k| row("a", day, hashed(k), DeviceCategory::Ot))
        .collect();
    rows.extend((0..25).map(|k| row("b", day, hashed(k), DeviceCategory::Ot)));
    rows.extend((0..7).map(|k| Sighting {
        tenant: "globex".into(),
        ..row("a", day, hashed(k), DeviceCategory::Ot)
    }));
    s.write_sightings(&rows).await.unwrap();
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    let all = s
        .site_counts(None, days, &CountFilter::all())
        .await
        .unwrap();
    let got: Vec<(&str, &str, u64)> = all
        .iter()
        .map(|c| (c.tenant.as_str(), c.site.as_str(), c.count.value))
        .collect();
    assert_eq!(
        got,
        vec![("acme", "a", 40), ("acme", "b", 25), ("globex", "a", 7)]
    );
    let globex = s
        .site_counts(Some("globex"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0].count, Count::exact(7));
    let exact = |t: &'static str, site: &'static str| async move {
        s.exact_site_count(t, site, days, &CountFilter::all())
            .await
            .unwrap()
    };
    assert_eq!(exact("globex", "a").await, 7);
    assert_eq!(exact("globex", "b").await, 0);
}

pub async fn tenant_text_is_bound_not_spliced(s: &impl Engine) {
    s.migrate().await.unwrap();
    s.write_sightings(&[row("p", day(), 1, DeviceCategory::Ot)])
        .await
        .unwrap();
    let evil = "acme' OR 1=1 --";
    let all_days = DayRange {
        from: 0,
        to: day() + 10,
        since_ms: None,
    };
    let all = CountFilter::all();
    assert!(s
        .site_counts(Some(evil), all_days, &all)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.exact_site_count(evil, "p", all_days, &all).await.unwrap(),
        0
    );
    assert!(s
        .daily_counts(evil, "p", all_days, &all)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.exact_tenant_count(evil, all_days, &all).await.unwrap(),
        Some(0)
    );
}

pub async fn a_device_at_two_sites_counts_once_tenant_wide(s: &impl Engine) {
    s.migrate().await.unwrap();
    let day = day();
    // Keys 40..49 are seen at both sites.
    let mut rows: Vec<Sighting> = (0..50u64)
        .map(|k| row("a", day, k, DeviceCategory::Iot))
        .collect();
    rows.extend((40..90u64).map(|k| row("b", day, k, DeviceCategory::Iot)));
    s.write_sightings(&rows).await.unwrap();
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    let all = CountFilter::all();
    let per_site: u64 = s
        .site_counts(Some("acme"), days, &all)
        .await
        .unwrap()
        .iter()
        .map(|c| c.count.value)
        .sum();
    assert_eq!(per_site, 100);
    assert_eq!(
        s.tenant_count("acme", days, &all).await.unwrap(),
        Some(Count::exact(90))
    );
    assert_eq!(
        s.exact_tenant_count("acme", days, &all).await.unwrap(),
        Some(90)
    );
    // Keys that are multiples of 10 are agent-managed: 9 of 0..90.
    assert_eq!(
        s.exact_tenant_count("acme", days, &no_agents())
            .await
            .unwrap(),
        Some(81)
    );
    assert_eq!(
        s.tenant_count("other", days, &all).await.unwrap(),
        Some(Count::exact(0))
    );
}

pub async fn counts_are_exact_up_to_the_exact_limit(s: &impl Engine) {
    s.migrate().await.unwrap();
    let day = day();
    // 5,000 devices: past the embedded sketch's exact phase, under ClickHouse's
    // uniqCombined exact limit (8,192): both engines answer exactly.
    let rows: Vec<Sighting> = (0..5_000)
        .map(|k| row("big", day, hashed(k), DeviceCategory::Ot))
        .collect();
    for chunk in rows.chunks(2_500) {
        s.write_sightings(chunk).await.unwrap();
    }
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    let all = CountFilter::all();
    let site = s.site_counts(Some("acme"), days, &all).await.unwrap();
    assert_eq!(site[0].count, Count::exact(5_000));
    assert_eq!(
        s.tenant_count("acme", days, &all).await.unwrap(),
        Some(Count::exact(5_000))
    );
    let daily = s.daily_counts("acme", "big", days, &all).await.unwrap();
    assert_eq!(daily[0].count, Count::exact(5_000));
    // Agent-managed devices excluded: still exact.
    let agents = rows.iter().filter(|r| r.agent_managed).count() as u64;
    let site = s.site_counts(None, days, &no_agents()).await.unwrap();
    assert_eq!(site[0].count, Count::exact(5_000 - agents));
}

fn state_of(d: &Decision, key: &str) -> SubjectState {
    SubjectState {
        subject: d.subject.clone(),
        status: d.status().clone(),
        since: d.decided_at,
        last_alert_key: Some(key.into()),
        pending: vec![],
    }
}

pub async fn alert_state_is_replaced_and_read_back(s: &impl Engine) {
    s.migrate().await.unwrap();
    assert!(s.load_all().await.unwrap().is_empty());
    let d = sample_decision();
    let first = state_of(&d, "k1");
    s.save(&first).await.unwrap();
    let mut second = state_of(&d, "k2");
    second
        .pending
        .push(sitetally_licensing::alert::PendingAlert {
            alert: Alert::from_decision(&d, None, &Settings::default()),
            sinks: vec!["webhook:a".into()],
        });
    s.save(&second).await.unwrap();
    let mut other = state_of(&d, "k3");
    other.subject = Subject::OtSite {
        tenant: "globex".into(),
        site: "g1".into(),
    };
    s.save(&other).await.unwrap();
    let all = s.load_all().await.unwrap();
    assert_eq!(all.len(), 2, "one state per subject: {all:?}");
    assert_eq!(
        all.get(&d.subject.key()),
        Some(&second),
        "the newest save wins"
    );
    assert_eq!(all.get(&other.subject.key()), Some(&other));
}

/// An alert of `tenant` decided `minutes` after the sample decision.
fn alert(tenant: &str, minutes: i64, old: &Status) -> Alert {
    let mut d = sample_decision();
    d.decided_at += Duration::minutes(minutes);
    let mut a = Alert::from_decision(&d, Some(old), &Settings::default());
    a.tenant = tenant.into();
    a
}

pub async fn alert_log_filters_orders_limits_and_lists_each_alert_once(s: &impl Engine) {
    s.migrate().await.unwrap();
    let t0 = sample_decision().decided_at;
    let day = Duration::days(1);
    assert!(s
        .alerts("acme", t0 - day, t0 + day, 10)
        .await
        .unwrap()
        .is_empty());
    let first = alert("acme", 0, &Status::WithinTier);
    let second = alert("acme", 60, &Status::NearLimit);
    let other = alert("globex", 30, &Status::WithinTier);
    let settings = Settings::default();
    let record = |alerts: Vec<Alert>| {
        let settings = settings.clone();
        async move {
            s.record_run(alerts[0].decided_at, &[], &alerts, &settings)
                .await
                .unwrap()
        }
    };
    record(vec![first.clone(), other.clone()]).await;
    record(vec![second.clone()]).await;
    // A resend logged again is listed once.
    record(vec![second.clone()]).await;
    let listed = |tenant: &'static str, from, to, limit| async move {
        s.alerts(tenant, from, to, limit).await.unwrap()
    };
    assert_eq!(
        listed("acme", t0 - day, t0 + day, 10).await,
        vec![second.clone(), first.clone()],
        "newest first, tenant only, no repeats"
    );
    assert_eq!(
        listed("acme", t0 - day, t0 + day, 1).await,
        vec![second.clone()]
    );
    assert_eq!(
        listed("acme", t0, t0 + Duration::minutes(59), 10).await,
        vec![first]
    );
    assert_eq!(listed("globex", t0 - day, t0 + day, 10).await, vec![other]);
}

pub async fn latest_decisions_are_per_tenant_and_replaced_by_a_later_run(s: &impl Engine) {
    s.migrate().await.unwrap();
    let settings = Settings::default();
    assert_eq!(
        s.latest_decisions("acme").await.unwrap(),
        None,
        "before any run"
    );
    let first = sample_decision();
    let mut other = sample_decision();
    other.subject = Subject::OtSite {
        tenant: "globex".into(),
        site: "g1".into(),
    };
    s.record_run(
        first.decided_at,
        &[first.clone(), other.clone()],
        &[],
        &settings,
    )
    .await
    .unwrap();
    assert_eq!(
        s.latest_decisions("acme").await.unwrap(),
        Some((first.decided_at, vec![first.clone()]))
    );
    // A later run replaces acme's decisions; globex keeps those of the run that last
    // decided on it.
    let mut second = first.clone();
    second.decided_at += Duration::hours(1);
    second.count = Count::exact(1_200);
    s.record_run(second.decided_at, &[second.clone()], &[], &settings)
        .await
        .unwrap();
    assert_eq!(
        s.latest_decisions("acme").await.unwrap(),
        Some((second.decided_at, vec![second]))
    );
    assert_eq!(
        s.latest_decisions("globex").await.unwrap(),
        Some((first.decided_at, vec![other]))
    );
}

pub async fn licence_documents_keep_the_newest_import_per_tenant(s: &impl Engine) {
    s.migrate().await.unwrap();
    assert!(s.licence_documents().await.unwrap().is_empty());
    let doc = |v: &str| format!(r#"{{"id": "{v}"}}"#);
    s.put_licences(
        &[
            (String::new(), doc("catalogue")),
            ("acme".into(), doc("acme-1")),
            ("globex".into(), doc("globex-1")),
        ],
        1_000,
    )
    .await
    .unwrap();
    s.put_licences(&[("acme".into(), doc("acme-2"))], 2_000)
        .await
        .unwrap();
    assert_eq!(
        s.licence_documents().await.unwrap(),
        vec![
            (String::new(), doc("catalogue")),
            ("acme".into(), doc("acme-2")),
            ("globex".into(), doc("globex-1")),
        ],
        "ordered by tenant, the newest import of each"
    );
}

const HOUR: i64 = 3_600_000;

/// Noon today, so that 60 d 1 h and 59 d 23 h before it fall on the same day.
fn noon_today() -> i64 {
    let today = sitetally_core::day_of(chrono::Utc::now().timestamp_millis());
    i64::from(today) * sitetally_core::MS_PER_DAY + 12 * HOUR
}

/// An OT sighting at site "edge" of device `key`, `ago_ms` before `now`.
fn seen_ago(now: i64, key: u64, ago_ms: i64) -> Sighting {
    let at = now - ago_ms;
    Sighting {
        seen_at_ms: at,
        ..row(
            "edge",
            sitetally_core::day_of(at),
            hashed(key),
            DeviceCategory::Ot,
        )
    }
}

/// Issue 13: the billing window is exact at its start instant. A device last seen
/// 59 d 23 h before now counts, one seen 60 d 1 h before does not, though both were seen
/// on the window's first day; the sketch, exact, site and tenant paths all agree.
pub async fn the_billing_window_is_exact_at_its_start(s: &impl Engine) {
    s.migrate().await.unwrap();
    let day_ms = sitetally_core::MS_PER_DAY;
    let now = noon_today();
    let seen = |key: u64, ago_ms: i64| seen_ago(now, key, ago_ms);
    let rows = vec![
        seen(1, 59 * day_ms + 23 * HOUR), // in the window
        seen(2, 60 * day_ms + HOUR),      // 1 h too old, on the same day
        seen(3, 30 * day_ms),             // a whole day inside
        seen(4, 61 * day_ms),             // a day before the window
        seen(5, 0),                       // now
    ];
    assert_eq!(
        rows[0].day, rows[1].day,
        "the test's boundary cases share a day"
    );
    s.write_sightings(&rows).await.unwrap();
    let window = DayRange::window(now - 60 * day_ms, now);
    let all = CountFilter::all();
    let sketch = s.site_counts(Some("acme"), window, &all).await.unwrap();
    assert_eq!(sketch.len(), 1);
    assert_eq!(sketch[0].count.value, 3, "sketch path: {sketch:?}");
    assert_eq!(
        s.exact_site_count("acme", "edge", window, &all)
            .await
            .unwrap(),
        3
    );
    let tenant = s.tenant_count("acme", window, &all).await.unwrap();
    assert_eq!(tenant.map(|c| c.value), Some(3));
    let exact_tenant = s.exact_tenant_count("acme", window, &all).await.unwrap();
    assert_eq!(exact_tenant, Some(3));
    // Whole days, as the window was counted before: the device seen 60 d 1 h ago counts.
    let whole_days = DayRange {
        since_ms: None,
        ..window
    };
    assert_eq!(
        s.exact_site_count("acme", "edge", whole_days, &all)
            .await
            .unwrap(),
        4
    );
}

/// Issue 13: on the window's boundary day a device counts by its latest sighting of the
/// day: one seen 60 d 1 h ago and again 59 d 23 h ago is in the window, on every path.
pub async fn the_boundary_day_counts_a_device_by_its_latest_sighting(s: &impl Engine) {
    s.migrate().await.unwrap();
    let day_ms = sitetally_core::MS_PER_DAY;
    let now = noon_today();
    let seen = |ago_ms: i64| seen_ago(now, 7, ago_ms);
    // Before the instant first, then after it: the order ingest writes a day in.
    s.write_sightings(&[seen(60 * day_ms + HOUR)])
        .await
        .unwrap();
    s.write_sightings(&[seen(59 * day_ms + 23 * HOUR)])
        .await
        .unwrap();
    let window = DayRange::window(now - 60 * day_ms, now);
    let all = CountFilter::all();
    let sketch = s.site_counts(Some("acme"), window, &all).await.unwrap();
    assert_eq!(sketch.iter().map(|c| c.count.value).sum::<u64>(), 1);
    let exact = s.exact_site_count("acme", "edge", window, &all).await;
    assert_eq!(exact.unwrap(), 1);
    let tenant = s.tenant_count("acme", window, &all).await.unwrap();
    assert_eq!(tenant.map(|c| c.value), Some(1));
    let exact_tenant = s.exact_tenant_count("acme", window, &all).await.unwrap();
    assert_eq!(exact_tenant, Some(1));
}

/// One test per contract function and engine: the embedded store always, ClickHouse on
/// the rig.
macro_rules! engines {
    ($($name:ident),* $(,)?) => {
        mod embedded_engine {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = crate::embedded_store();
                    super::$name(&store).await;
                }
            )*
        }
        mod clickhouse_engine {
            $(
                #[tokio::test]
                #[ignore = "needs ClickHouse: run scripts/test.sh"]
                async fn $name() {
                    let store = crate::clickhouse_store(stringify!($name));
                    super::$name(&store).await;
                }
            )*
        }
    };
}

engines!(
    migrations_are_idempotent_and_counts_survive_retries,
    overlapping_redeliveries_and_other_sensors_count_once,
    sites_and_tenants_are_counted_apart,
    tenant_text_is_bound_not_spliced,
    a_device_at_two_sites_counts_once_tenant_wide,
    counts_are_exact_up_to_the_exact_limit,
    alert_state_is_replaced_and_read_back,
    alert_log_filters_orders_limits_and_lists_each_alert_once,
    latest_decisions_are_per_tenant_and_replaced_by_a_later_run,
    licence_documents_keep_the_newest_import_per_tenant,
    the_billing_window_is_exact_at_its_start,
    the_boundary_day_counts_a_device_by_its_latest_sighting,
);
