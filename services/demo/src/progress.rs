//! The live display on stderr: about once a second, events/s produced, how far ingest has
//! committed, sites and devices counted in storage, alerts raised. On a terminal it is an
//! indicatif progress bar over the demo's known duration with its ETA; otherwise (logs,
//! CI) a log line every few seconds that says how far along the run is.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// One reading of the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Messages on the topic.
    pub produced: u64,
    /// Messages ingest has committed (rows acknowledged by storage).
    pub committed: u64,
    /// Sites with devices in storage.
    pub sites: usize,
    /// Distinct devices counted over all sites.
    pub devices: u64,
    /// Alerts raised so far in this run.
    pub alerts: usize,
}

/// The status line for `now` given the previous reading `prev` taken `dt` earlier.
pub fn status_line(now: &Snapshot, prev: &Snapshot, dt: Duration, phase: &str) -> String {
    let secs = dt.as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs).round() as u64;
    format!(
        "{phase}: {} events/s produced, {} events/s ingested ({} of {} committed) | {} sites, {} devices counted | {} alerts",
        rate(now.produced, prev.produced),
        rate(now.committed, prev.committed),
        now.committed,
        now.produced,
        now.sites,
        now.devices,
        now.alerts,
    )
}

/// How far a run of known length is: `elapsed 12s of 60s, ~48s left`.
pub fn eta_text(elapsed: Duration, total: Duration) -> String {
    let elapsed = elapsed.min(total).as_secs();
    let total = total.as_secs();
    format!(
        "elapsed {elapsed}s of {total}s, ~{}s left",
        total.saturating_sub(elapsed)
    )
}

/// The display: a progress bar with ETA on a terminal, periodic log lines elsewhere.
pub struct Display {
    bar: Option<ProgressBar>,
    started: Instant,
    total: Duration,
    prev: Snapshot,
    prev_at: Instant,
    last_log: Instant,
}

/// Without a terminal, log progress this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Display {
    /// A display for a run that produces for `total` (the demo's `--duration`).
    pub fn new(total: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total.as_secs().max(1)),
                ProgressDrawTarget::stderr_with_hz(2),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] [{bar:24}] ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            started: now,
            total,
            prev: Snapshot::default(),
            prev_at: now,
            last_log: now,
        }
    }

    /// Shows a new reading.
    pub fn update(&mut self, snap: Snapshot, phase: &str) {
        let now = Instant::now();
        let line = status_line(&snap, &self.prev, now - self.prev_at, phase);
        let elapsed = now - self.started;
        match &self.bar {
            Some(bar) => {
                // Producing runs for the known duration; after it, the bar stays full
                // while ingest catches up.
                bar.set_position(elapsed.min(self.total).as_secs());
                bar.set_message(line);
            }
            None if now - self.last_log >= LOG_EVERY => {
                let eta = eta_text(elapsed, self.total);
                tracing::info!(target: "sitetally_demo::progress", "{line} | {eta}");
                self.last_log = now;
            }
            None => {}
        }
        self.prev = snap;
        self.prev_at = now;
    }

    /// Removes the status line (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_counts_down_to_zero_and_stays_there() {
        let total = Duration::from_secs(60);
        assert_eq!(
            eta_text(Duration::from_millis(12_400), total),
            "elapsed 12s of 60s, ~48s left"
        );
        assert_eq!(
            eta_text(Duration::from_secs(75), total),
            "elapsed 60s of 60s, ~0s left"
        );
    }

    #[test]
    fn rates_are_per_second_over_the_interval() {
        let prev = Snapshot {
            produced: 1_000,
            committed: 500,
            ..Default::default()
        };
        let now = Snapshot {
            produced: 21_000,
            committed: 10_500,
            sites: 20,
            devices: 12_345,
            alerts: 4,
        };
        let l = status_line(&now, &prev, Duration::from_secs(2), "producing");
        assert_eq!(
            l,
            "producing: 10000 events/s produced, 5000 events/s ingested (10500 of 21000 committed) | 20 sites, 12345 devices counted | 4 alerts"
        );
        // A counter never goes backwards in the display.
        let l = status_line(&prev, &now, Duration::from_secs(1), "draining");
        assert!(
            l.starts_with("draining: 0 events/s produced, 0 events/s ingested"),
            "{l}"
        );
    }
}
