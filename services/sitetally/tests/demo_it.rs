//! `sitetally demo` end to end (issue 4 acceptance): the built binary runs the whole
//! pipeline in one process (in-process broker, simulated sensors, ingest, embedded store,
//! reconciler) with nothing installed; its JSON summary is checked against the
//! simulator's ground truth, then a second run on the same data directory continues.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A data directory removed at the end of the test (kept on failure for inspection).
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("sitetally-demo-it-{}-{nanos}", std::process::id()));
        Self(p)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn demo(data_dir: &Path, duration: &str) -> (Value, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sitetally"))
        .args([
            "demo",
            "--duration",
            duration,
            "--sites",
            "20",
            "--seed",
            "7",
            "--format",
            "json",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SITETALLY_LOG", "info,librdkafka=warn,rdkafka=warn")
        .output()
        .expect("run sitetally demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stderr}",
        out.status
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (summary, started.elapsed())
}

fn sites(summary: &Value) -> &Vec<Value> {
    summary["sites"].as_array().expect("sites array")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn demo_counts_match_the_simulator_and_a_second_run_continues() {
    let dir = DataDir::new();

    let (first, took) = demo(&dir.0, "20s");
    let pretty = serde_json::to_string_pretty(&first).unwrap();
    assert_eq!(first["seed"], 7);
    assert_eq!(
        first["schedule_complete"], true,
        "20s must cover the planned schedule:\n{pretty}"
    );
    assert_eq!(
        first["caught_up"], true,
        "summary taken before ingest committed everything:\n{pretty}"
    );
    assert!(took < Duration::from_secs(20 + 90), "demo took {took:?}");
    let rows = sites(&first);
    assert_eq!(rows.len(), 20, "{pretty}");

    let mut grown = 0;
    let mut estimated = 0;
    for r in rows {
        let name = format!(
            "{}/{}",
            r["tenant"].as_str().unwrap(),
            r["site"].as_str().unwrap()
        );
        let (counted, truth) = (u(&r["counted"]), u(&r["true_devices"]));
        assert_eq!(
            truth,
            u(&r["planned_devices"]),
            "{name}: the simulator reported every device"
        );
        if r["exact"] == true {
            assert_eq!(
                counted, truth,
                "{name}: exact count differs from the ground truth"
            );
            assert!(
                counted <= 1536,
                "{name}: {counted} devices cannot be exact (threshold 1536)"
            );
        } else {
            estimated += 1;
            let sigma = r["sigma"].as_f64().unwrap();
            assert!(sigma > 0.0, "{name}: an estimate has an error");
            let bound = (3.0 * sigma).ceil() as u64;
            assert!(
                counted.abs_diff(truth) <= bound,
                "{name}: estimate {counted} is outside {truth} ± {bound} (3 sigma)"
            );
        }
        if r["grown"] == true {
            grown += 1;
            assert_eq!(
                r["status"], "OVER_TIER",
                "{name}: grown past its tier:\n{r:#}"
            );
        } else if r["kind"] == "ot" {
            assert_ne!(
                r["status"], "OVER_TIER",
                "{name}: its licence covers it:\n{r:#}"
            );
        }
    }
    assert_eq!(grown, 2, "one site in ten grows (at least one):\n{pretty}");
    assert!(
        estimated >= 1,
        "the largest site (6,000 devices) is above the exact threshold"
    );
    assert!(
        rows.iter().any(|r| r["kind"] == "enterprise_iot"),
        "Enterprise IoT fleets are simulated"
    );
    let malformed = u(&first["malformed_sent"]);
    assert!(malformed > 0, "a trickle of malformed messages");
    assert_eq!(
        u(&first["ingest"]["dead_letters_published"]),
        malformed,
        "every malformed message dead-lettered"
    );
    assert_eq!(u(&first["ingest"]["messages"]), u(&first["events_sent"]));
    assert!(
        u(&first["alerts_raised"]) >= 2,
        "over-tier sites raise alerts:\n{pretty}"
    );
    assert!(dir.0.join("alert-state.json").exists());
    assert!(dir.0.join("licences.json").exists());

    // Second run on the same data directory: counts continue (never lower), and statuses
    // already alerted on are not alerted again.
    let (second, _) = demo(&dir.0, "8s");
    let rows2 = sites(&second);
    assert_eq!(rows2.len(), 20);
    for (a, b) in rows.iter().zip(rows2) {
        assert_eq!((&a["tenant"], &a["site"]), (&b["tenant"], &b["site"]));
        assert!(
            u(&b["counted"]) >= u(&a["counted"]),
            "{}: count went down from {} to {}",
            a["site"],
            a["counted"],
            b["counted"]
        );
        assert_eq!(a["status"], b["status"], "{}", a["site"]);
    }
    assert_eq!(
        u(&second["alerts_raised"]),
        0,
        "alert state survives the restart:\n{second:#}"
    );
}
