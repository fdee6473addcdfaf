//! The live display on stderr: about once a second, events/s produced, how far ingest has
//! committed, sites and devices counted in storage, alerts raised. On a terminal it is an
//! indicatif status line; otherwise (logs, CI) a log line every few seconds.

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

/// The display: a spinner line on a terminal, periodic log lines elsewhere.
pub struct Display {
    bar: Option<ProgressBar>,
    prev: Snapshot,
    prev_at: Instant,
    last_log: Instant,
}

/// Without a terminal, log progress this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Display {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(2));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            prev: Snapshot::default(),
            prev_at: now,
            last_log: now,
        }
    }

    /// Shows a new reading.
    pub fn update(&mut self, snap: Snapshot, phase: &str) {
        let now = Instant::now();
        let line = status_line(&snap, &self.prev, now - self.prev_at, phase);
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None if now - self.last_log >= LOG_EVERY => {
                tracing::info!(target: "sitetally_demo::progress", "{line}");
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

impl Default for Display {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
