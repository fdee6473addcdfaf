//! `sitetally demo` end to end (issue 4 acceptance): the built binary runs the whole
//! pipeline in one process (in-process broker, simulated sensors, ingest, embedded store,
//! reconciler) with nothing installed; its JSON summary is checked against the
//! simulator's ground truth, then a second run on the same data directory continues.
//! While each run lasts, its HTTP API (`--port`) answers health and sites requests.

use crate::process_support::free_port;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// `GET path` on 127.0.0.1:port over plain HTTP/1.1: status and body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("chunk size"))?;
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// What the demo's API answered while it ran.
#[derive(Debug)]
struct ApiSeen {
    tenant: String,
    sites: Vec<Value>,
}

/// One probe of the API: `/healthz`, the tenants, the first tenant's sites.
fn probe_api(port: u16) -> Result<ApiSeen, String> {
    let get = |path: &str| -> Result<Value, String> {
        let (status, body) = http_get(port, path).map_err(|e| format!("GET {path}: {e}"))?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: not JSON ({e}): {body}"))
    };
    get("/healthz")?;
    // Ready: the embedded store and the in-process broker both answer.
    get("/readyz")?;
    let tenants = get("/api/v1/tenants")?;
    let tenant = tenants["tenants"][0]
        .as_str()
        .ok_or_else(|| format!("no tenants: {tenants}"))?
        .to_string();
    let sites = get(&format!("/api/v1/tenants/{tenant}/sites"))?;
    assert_eq!(sites["tenant"], tenant.as_str(), "{sites:#}");
    let rows = sites["sites"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("no sites listed: {sites}"))?
        .clone();
    Ok(ApiSeen {
        tenant,
        sites: rows,
    })
}

/// Runs the demo with its API on a free port, probing the API while it runs.
fn demo(data_dir: &Path, duration: &str) -> (Value, Duration, ApiSeen) {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitetally"))
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
            "--port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SITETALLY_LOG", "info,librdkafka=warn,rdkafka=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sitetally demo");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));

    let mut seen = Err("never probed".to_string());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status;
        }
        if seen.is_err() {
            seen = probe_api(port);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "demo failed ({status}):\n{stderr}");
    let seen = seen.unwrap_or_else(|e| {
        panic!("the API on port {port} never answered while the demo ran: {e}\n{stderr}")
    });
    assert!(
        stderr.contains(&format!("dashboard at http://127.0.0.1:{port}/")),
        "the dashboard URL is logged:\n{stderr}"
    );
    // Off a terminal, progress is logged (every 5 s) with how far along the known duration
    // the run is: runs shorter than that may log none.
    assert!(
        stderr.contains(&format!(
            "of {}s, ~",
            humantime::parse_duration(duration).unwrap().as_secs()
        )),
        "progress lines say the elapsed time and what is left:\n{stderr}"
    );
    let summary: Value = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&stdout)
        )
    });
    (summary, started.elapsed(), seen)
}

/// The rows of `sitetally sites --format json` for `tenant` over the demo's data directory.
fn cli_sites(data_dir: &Path, tenant: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sitetally"))
        .args(["sites", "--tenant", tenant, "--format", "json"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--licences")
        .arg(data_dir.join("licences.json"))
        .output()
        .expect("run sitetally sites");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("sites JSON");
    v["sites"].as_array().cloned().unwrap_or_default()
}

/// What the reconciler left in the demo's embedded store.
struct StoredMemory {
    alerts_logged: u64,
    subjects_with_state: usize,
    tenants: usize,
    tenants_decided: usize,
}

impl StoredMemory {
    fn read(data_dir: &Path, tenants: &[String]) -> Self {
        use sitetally_store::history::{AlertLog, AlertStateStore, DecisionHistory};
        let mut tenants = tenants.to_vec();
        tenants.sort();
        tenants.dedup();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = sitetally_store::embedded::EmbeddedStore::open(data_dir).unwrap();
            let (from, to) = (
                chrono::DateTime::UNIX_EPOCH,
                chrono::Utc::now() + chrono::Days::new(365),
            );
            let mut memory = StoredMemory {
                alerts_logged: 0,
                subjects_with_state: store.load_all().await.unwrap().len(),
                tenants: tenants.len(),
                tenants_decided: 0,
            };
            for t in &tenants {
                memory.alerts_logged +=
                    store.alerts(t, from, to, u64::MAX).await.unwrap().len() as u64;
                let decided = store.latest_decisions(t).await.unwrap().is_some();
                memory.tenants_decided += usize::from(decided);
            }
            memory
        })
    }
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

    let (first, took, api) = demo(&dir.0, "20s");
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
    // The API served the demo's licence book and store: the tenant's sites are the ones
    // the summary lists for it.
    for s in &api.sites {
        let site = s["site"].as_str().unwrap_or_else(|| panic!("site id: {s}"));
        assert!(
            rows.iter()
                .any(|r| r["tenant"] == api.tenant.as_str() && r["site"] == site),
            "API lists {}/{site}, not in the summary:\n{pretty}",
            api.tenant
        );
    }

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
        } else {
            estimated += 1;
            assert!(
                counted > 8_192,
                "{name}: {counted} devices are under the exact limit (8,192)"
            );
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
    assert_eq!(
        estimated, 0,
        "every site (the largest has 6,000 devices) is under the exact limit (8,192)"
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
    assert!(dir.0.join("licences.json").exists());
    let tenants: Vec<String> = rows
        .iter()
        .map(|r| r["tenant"].as_str().unwrap().to_string())
        .collect();
    // One answer: `sitetally sites` over the same data directory shows each site's count
    // and error bound exactly as the demo's summary does.
    for tenant in tenants.iter().take(2) {
        let listed = cli_sites(&dir.0, tenant);
        for r in rows.iter().filter(|r| r["tenant"] == tenant.as_str()) {
            let Some(l) = listed.iter().find(|l| l["site"] == r["site"]) else {
                continue; // an Enterprise IoT fleet without OT devices: no OT-site row
            };
            assert_eq!(
                (u(&l["devices"]), u(&l["error_bound"])),
                (u(&r["counted"]), u(&r["error_bound"])),
                "{tenant}/{}: sites CLI {l} vs demo summary {r}",
                r["site"]
            );
        }
    }
    let memory = StoredMemory::read(&dir.0, &tenants);
    assert_eq!(
        memory.alerts_logged,
        u(&first["alerts_raised"]),
        "every alert raised is in the alert log"
    );
    assert!(memory.subjects_with_state > 0, "alert state is kept");
    assert!(
        memory.tenants_decided > 0 && memory.tenants_decided <= memory.tenants,
        "the latest run's decisions are kept"
    );

    // Second run on the same data directory: counts continue (never lower), and statuses
    // already alerted on are not alerted again.
    let (second, _, api2) = demo(&dir.0, "8s");
    assert!(!api2.sites.is_empty());
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
    let after = StoredMemory::read(&dir.0, &tenants);
    assert_eq!(
        after.alerts_logged, memory.alerts_logged,
        "the second run logs nothing"
    );
}

/// Issue 16: the embedded store's disk fills up mid-demo (a 3 MB file-size limit: SQLite
/// gets EFBIG as it would ENOSPC). The demo ends with one clear error naming the data
/// directory and exit 2, prints no summary of counts it could not store, and the store
/// is left whole: a second run with room continues and counts.
#[test]
fn a_full_disk_is_a_clear_error_and_leaves_the_store_whole() {
    let dir = DataDir::new();
    let script = "trap '' XFSZ; ulimit -f 3000; exec \"$0\" \"$@\"";
    let out = Command::new("bash")
        .args(["-c", script, env!("CARGO_BIN_EXE_sitetally")])
        .args([
            "demo",
            "--duration",
            "8s",
            "--sites",
            "50",
            "--drain-timeout",
            "15s",
        ])
        .args(["--port", &free_port().to_string(), "--data-dir"])
        .arg(&dir.0)
        .env("SITETALLY_LOG", "warn,librdkafka=off,rdkafka=off")
        .output()
        .expect("run sitetally demo under a file-size limit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("could not write to the store in"),
        "{last}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no summary: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // With room again the same store opens, takes the rest and counts.
    let (summary, _, _) = demo(&dir.0, "8s");
    let counted: u64 = sites(&summary)
        .iter()
        .map(|s| s["counted"].as_u64().unwrap_or(0))
        .sum();
    assert!(counted > 0, "{summary}");
}
