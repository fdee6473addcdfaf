//! Wiring of `sitetally demo`: broker ▶ simulated sensors ▶ ingest ▶ embedded store ▶
//! reconciler, and the order things stop in so that the summary is complete:
//!
//! 1. the sensors produce for `--duration` (or until Ctrl-C), then flush; every message is
//!    acknowledged by the broker when `produce` returns;
//! 2. the demo waits until ingest's committed offsets reach the topic's end: ingest
//!    commits an offset only after storage acknowledged the rows before it, so at that
//!    point storage holds everything the sensors sent;
//! 3. ingest is stopped through its shutdown future (it flushes and leaves the group), the
//!    periodic reconciler is stopped, one final reconciliation runs, and the summary is
//!    taken from storage and the simulator's ground truth;
//! 4. the HTTP API and dashboard, up from before the sensors start, are stopped last.

use crate::api::ApiServer;
use crate::broker::{CommitWatch, EmbeddedBroker, TopicProgress};
use crate::licences::licence_file;
use crate::progress::{Display, Snapshot};
use crate::summary::{build_rows, tenant_rows, DemoSummary};
use crate::{DemoArgs, DemoError};
use chrono::Utc;
use sitetally_ingest::IngestConfig;
use sitetally_licensing::{Decision, LicenceBook, Settings};
use sitetally_reconciler::sink::MemorySink;
use sitetally_reconciler::Reconciler;
use sitetally_sensor_sim::{produce, EventStream, SimulateArgs, World};
use sitetally_store::embedded::EmbeddedStore;
use sitetally_store::{CountFilter, DayRange, SiteCount, Store, StoreCounts};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Topic the sensors produce to (dead letters go to `<topic>.dlq`).
pub const TOPIC: &str = "device-discoveries";
/// Partitions of the topic (messages are keyed by `tenant/site`).
pub const PARTITIONS: i32 = 4;
/// Ingest's consumer group.
pub const GROUP: &str = "sitetally-demo";
/// The generated licence book inside `--data-dir`.
pub const LICENCES_FILE: &str = "licences.json";
/// After Ctrl-C, wait at most this long for ingest to catch up.
const INTERRUPTED_DRAIN: Duration = Duration::from_secs(10);

fn check(args: &DemoArgs) -> Result<(), DemoError> {
    let bad = |flag, reason: &str| {
        Err(DemoError::Config {
            flag,
            reason: reason.into(),
        })
    };
    if args.sites == 0 {
        return bad("sites", "must be at least 1");
    }
    if args.duration.is_zero() {
        return bad("duration", "must be above zero");
    }
    if !(1..=59).contains(&args.days) {
        return bad(
            "days",
            "must be within 1..=59 (the OT billing window is 60 days)",
        );
    }
    if args.max_site_size < 5 {
        return bad("max-site-size", "must be at least 5 (the smallest site)");
    }
    if args.reconcile_every < Duration::from_millis(100) {
        return bad("reconcile-every", "must be at least 100ms");
    }
    Ok(())
}

/// The simulator settings of a demo run, producing to `brokers`.
pub fn simulate_args(args: &DemoArgs, brokers: &str) -> SimulateArgs {
    SimulateArgs {
        brokers: brokers.to_string(),
        topic: TOPIC.to_string(),
        seed: args.seed,
        sites: args.sites,
        min_site_size: 5,
        max_site_size: args.max_site_size,
        days: args.days,
        rate: args.rate,
        duration: Some(args.duration),
        ..SimulateArgs::default()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn task_err(e: tokio::task::JoinError) -> DemoError {
    DemoError::Task(e.to_string())
}

/// The OT billing window ending now, in store days.
fn window(settings: &Settings) -> DayRange {
    let now = Utc::now();
    let start = now - chrono::Duration::days(i64::from(settings.ot_window_days));
    DayRange::window(start.timestamp_millis(), now.timestamp_millis())
}

async fn counts(store: &Arc<dyn Store>, settings: &Settings) -> Result<Vec<SiteCount>, DemoError> {
    Ok(store
        .site_counts(None, window(settings), &CountFilter::all())
        .await?)
}

async fn topic_progress(watch: &Arc<CommitWatch>) -> Result<TopicProgress, DemoError> {
    let watch = watch.clone();
    tokio::task::spawn_blocking(move || watch.progress(Duration::from_secs(5)))
        .await
        .map_err(task_err)?
}

/// Runs the demo until `--duration` is over or `shutdown` resolves, then drains ingest,
/// reconciles once more and returns the summary.
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<DemoSummary, DemoError> {
    check(&args)?;
    let started = Instant::now();
    let settings = Settings::default();

    // One SQLite file holds sightings, sketches and the reconciler's memory.
    let embedded = Arc::new(EmbeddedStore::open(&args.data_dir)?);
    let store: Arc<dyn Store> = embedded.clone();
    store.migrate().await?;

    let dlq = format!("{TOPIC}.dlq");
    let broker = EmbeddedBroker::start(&[(TOPIC, PARTITIONS), (&dlq, 1)])?;
    let bootstrap = broker.bootstrap_servers().to_string();

    let sim = simulate_args(&args, &bootstrap);
    let world = Arc::new(World::new(sim.sim_config())?);
    let now = Utc::now();
    info!(
        sites = world.sites.len(),
        devices = world.devices.len(),
        planned_messages = world.planned_messages(),
        grown_sites = world.grown_sites().len(),
        rate = args.rate,
        brokers = %bootstrap,
        data_dir = %args.data_dir.display(),
        "demo: simulated world built; in-process broker up"
    );
    // Licences from the world, saved so `sitetally reconcile` can replay the decisions.
    let file = licence_file(&world, now);
    let licences_path = args.data_dir.join(LICENCES_FILE);
    let text = serde_json::to_string_pretty(&file).expect("licence file serializes");
    std::fs::write(&licences_path, &text).map_err(io_err(&licences_path))?;
    let book = LicenceBook::from_json_str(&text, &settings)?;
    // Alert state, alert log and the latest run's decisions live in the embedded store,
    // shared by the reconciler and the API, and read later by `sitetally serve --data-dir`.
    // The HTTP API and dashboard over the same store, licences, alert state and log.
    let planner = sitetally_api::Planner::new(store.clone(), book.clone(), settings.clone())
        .with_alert_state(embedded.clone())
        .with_alert_log(embedded.clone())
        .with_decision_history(embedded.clone());
    let api = ApiServer::start(planner, args.port, &bootstrap).await?;
    info!(addr = %api.addr(), "dashboard at http://{}/", api.addr());

    let alerts = Arc::new(MemorySink::new("demo-memory"));
    let reconciler = Arc::new(
        Reconciler::new(
            settings.clone(),
            book,
            Arc::new(StoreCounts::new(store.clone())),
            embedded.clone(),
        )
        .with_history(embedded)
        .with_sink(alerts.clone()),
    );

    // Ingest, unchanged: the real consumer loop on the embedded store.
    let mut ingest_config = IngestConfig::load(None).map_err(|e| DemoError::Config {
        flag: "SITETALLY_INGEST__*",
        reason: e.to_string(),
    })?;
    ingest_config.kafka.brokers = bootstrap.clone();
    ingest_config.kafka.topic = TOPIC.to_string();
    ingest_config.kafka.group_id = GROUP.to_string();
    ingest_config.kafka.dlq_topic = Some(dlq.clone());
    ingest_config.batch.max_interval_ms = ingest_config.batch.max_interval_ms.min(500);
    let (stop_ingest, ingest_stopped) = tokio::sync::oneshot::channel::<()>();
    let ingest = tokio::spawn(sitetally_ingest::consumer::run_with_store(
        ingest_config,
        store.clone(),
        async move {
            let _ = ingest_stopped.await;
        },
    ));

    // Periodic reconciliation.
    let (stop_reconcile, mut reconcile_stopped) = tokio::sync::watch::channel(false);
    let last_decisions: Arc<Mutex<Vec<Decision>>> = Arc::default();
    let reconcile_loop = tokio::spawn({
        let reconciler = reconciler.clone();
        let last = last_decisions.clone();
        let every = args.reconcile_every;
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = reconcile_stopped.changed() => return,
                    _ = tick.tick() => match reconciler.run_once(Utc::now()).await {
                        Ok(r) => *last.lock().unwrap_or_else(|p| p.into_inner()) = r.decisions,
                        Err(e) => warn!(error = %e, "reconciliation failed; retrying next tick"),
                    },
                }
            }
        }
    });

    // Sensors.
    let stop_sensors = Arc::new(AtomicBool::new(false));
    let producer = tokio::task::spawn_blocking({
        let stop = stop_sensors.clone();
        let settings = sim.produce_settings();
        let mut stream = EventStream::new(world.clone(), now.timestamp_millis());
        move || {
            let report = produce(&mut stream, &settings, &stop);
            (report, stream.schedule_complete())
        }
    });

    let watch = Arc::new(CommitWatch::new(&bootstrap, GROUP, TOPIC, PARTITIONS)?);
    let mut display = Display::new(args.duration);
    let mut snap = Snapshot::default();
    let refresh =
        |snap: &mut Snapshot, progress: Option<TopicProgress>, counts: Option<Vec<SiteCount>>| {
            if let Some(p) = progress {
                snap.produced = p.produced;
                snap.committed = p.committed;
            }
            if let Some(c) = counts {
                snap.sites = c.len();
                snap.devices = c.iter().map(|c| c.count.value).sum();
            }
            snap.alerts = alerts.alerts.lock().map(|a| a.len()).unwrap_or(0);
        };

    // 1. Produce until the duration is over or Ctrl-C.
    tokio::pin!(shutdown);
    tokio::pin!(producer);
    let mut interrupted = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (sim_report, schedule_complete) = loop {
        tokio::select! {
            r = &mut producer => break r.map_err(task_err)?,
            _ = &mut shutdown, if !interrupted => {
                info!("interrupted: stopping the sensors, then letting ingest catch up");
                interrupted = true;
                stop_sensors.store(true, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let p = topic_progress(&watch).await.ok();
                let c = counts(&store, &settings).await.ok();
                refresh(&mut snap, p, c);
                display.update(snap, "producing");
            }
        }
    };
    let sim_report = sim_report?;
    info!(
        sent = sim_report.sent,
        schedule_complete,
        stopped = ?sim_report.stopped,
        "sensors stopped; waiting for ingest to commit everything produced"
    );

    // 2. Wait until ingest has committed up to the end of the topic.
    let patience = if interrupted {
        args.drain_timeout.min(INTERRUPTED_DRAIN)
    } else {
        args.drain_timeout
    };
    let mut deadline = Instant::now() + patience;
    let mut last_update = Instant::now();
    let caught_up = loop {
        let p = topic_progress(&watch).await.ok();
        if let Some(p) = p {
            if p.caught_up() && p.produced >= sim_report.sent {
                refresh(&mut snap, Some(p), None);
                break true;
            }
        }
        if last_update.elapsed() >= Duration::from_secs(1) {
            let c = counts(&store, &settings).await.ok();
            refresh(&mut snap, p, c);
            display.update(snap, "ingesting");
            last_update = Instant::now();
        }
        if Instant::now() >= deadline {
            warn!(timeout = ?patience, progress = ?p, "ingest has not caught up; summarising what is stored");
            break false;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut shutdown, if !interrupted => {
                info!("interrupted while ingest catches up: summarising shortly");
                interrupted = true;
                deadline = deadline.min(Instant::now() + Duration::from_secs(2));
            }
        }
    };

    // 3. Stop ingest (it flushes and commits), stop the periodic reconciler, decide once
    //    more on the complete counts.
    let _ = stop_ingest.send(());
    let ingest_report = ingest
        .await
        .map_err(task_err)?
        .map_err(|e| DemoError::Ingest(format!("{e:#}")))?;
    if let (false, Some(error)) = (caught_up, &ingest_report.last_flush_error) {
        // A summary of what is stored would claim counts the store never took.
        return Err(DemoError::Ingest(format!(
            "could not write to the store in {}: {error}; nothing unwritten was committed: free space (or fix the store) and run the demo again with the same --data-dir to continue",
            args.data_dir.display()
        )));
    }
    let _ = stop_reconcile.send(true);
    reconcile_loop.await.map_err(task_err)?;
    let decisions = match reconciler.run_once(Utc::now()).await {
        Ok(r) => r.decisions,
        Err(e) => {
            warn!(error = %e, "final reconciliation failed; showing the last periodic decisions");
            std::mem::take(&mut *last_decisions.lock().unwrap_or_else(|p| p.into_inner()))
        }
    };
    let counts = counts(&store, &settings).await?;
    refresh(&mut snap, None, Some(counts.clone()));
    display.update(snap, "done");
    display.finish();
    // Clients before the broker, or librdkafka logs the broker's disappearance as errors.
    drop(watch);
    drop(broker);

    let truth = &sim_report.truth;
    let summary = DemoSummary {
        seed: args.seed,
        elapsed_ms: started.elapsed().as_millis() as u64,
        events_sent: sim_report.sent,
        malformed_sent: truth.malformed_total(),
        schedule_complete,
        caught_up,
        ingest: ingest_report,
        alerts_raised: alerts.alerts().len(),
        sites_counted: counts.len(),
        sites: build_rows(truth, &counts, &decisions, settings.error_band_sigmas),
        tenants: tenant_rows(&decisions),
    };
    info!(
        sites = summary.sites.len(),
        over_tier = summary.sites.iter().filter(|r| r.over_tier()).count(),
        alerts = summary.alerts_raised,
        "demo finished"
    );
    api.stop().await;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_and_mapped_to_the_simulator() {
        let args = DemoArgs::default();
        assert_eq!(args.duration, Duration::from_secs(60));
        assert_eq!((args.sites, args.rate, args.port), (20, 20_000, 8080));
        assert_eq!(args.data_dir, Path::new("./sitetally-data"));
        check(&args).unwrap();
        let sim = simulate_args(&args, "127.0.0.1:1");
        let c = sim.sim_config();
        assert!(c.endless, "sensors keep reporting for the whole duration");
        assert_eq!((c.sites, c.days, c.grow_sites), (20, 3, 2));
        assert_eq!(sim.produce_settings().duration, Some(args.duration));
        for bad in [
            DemoArgs {
                sites: 0,
                ..DemoArgs::default()
            },
            DemoArgs {
                days: 0,
                ..DemoArgs::default()
            },
            DemoArgs {
                duration: Duration::ZERO,
                ..DemoArgs::default()
            },
        ] {
            assert!(matches!(check(&bad), Err(DemoError::Config { .. })));
        }
    }

    #[test]
    fn the_default_world_fits_twenty_seconds_at_the_default_rate() {
        // The acceptance run (`--duration 20s --sites 20 --seed 7`) must finish the
        // planned schedule with room to spare on a slow machine.
        let args = DemoArgs {
            seed: 7,
            ..DemoArgs::default()
        };
        let world = World::new(simulate_args(&args, "x").sim_config()).unwrap();
        let secs = world.planned_messages() as f64 / args.rate as f64;
        assert!(
            secs < 10.0,
            "{} planned messages take {secs:.1}s",
            world.planned_messages()
        );
    }
}
