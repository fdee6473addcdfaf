//! `sitetally reconcile --licences FILE --counts FILE` through the command line: bad
//! input gets a one-line error naming the file and the line or field (exit 2), never a
//! wrong answer, a panic or a backtrace; `--fail-on` exits 1; straddling estimates
//! never pass silently.

use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: &str = "2025-06-01T00:00:00Z";

fn example_licences() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reconciler/examples/licences.toml")
}

/// What one run printed and returned.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sitetally(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sitetally"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("SITETALLY_CLICKHOUSE_URL")
        .env_remove("SITETALLY_RECONCILER_SETTINGS")
        .env_remove("SITETALLY_LICENCES")
        .output()
        .expect("run sitetally");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Reconciles `counts` (a CSV text) against `licences` at [`NOW`], with `extra` flags.
fn reconcile(dir: &Path, licences: &Path, counts: &str, extra: &[&str]) -> Run {
    let c = write(dir, "counts.csv", counts);
    let mut args = vec![
        "reconcile",
        "--licences",
        licences.to_str().unwrap(),
        "--counts",
        c.to_str().unwrap(),
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    sitetally(&args)
}

/// Asserts a usage or input error: exit 2, one line on stderr that contains every one
/// of `wants`, no panic and no backtrace, nothing on stdout.
fn assert_input_error(r: &Run, wants: &[&str]) {
    assert_eq!(r.code, 2, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("stack backtrace"),
        "{}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {}", r.stderr);
    for want in wants {
        assert!(lines[0].contains(want), "{want:?} not in {:?}", lines[0]);
    }
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

fn line_of<'a>(out: &'a str, site: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(site))
        .unwrap_or_else(|| panic!("{site} not in {out}"))
}

#[test]
fn duplicate_rows_are_an_error_naming_the_file_and_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let r = reconcile(
        dir.path(),
        &example_licences(),
        "tenant,site,category,count\ncontoso,plant-north,OT,600\n# comment\ncontoso,plant-north,OT,600\n",
        &[],
    );
    assert_input_error(&r, &["counts.csv:4: ", "already given on line 2"]);
}

#[test]
fn counts_that_cannot_be_represented_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let lic = example_licences();
    // Near u64::MAX, and past it.
    for count in [
        "18446744073709551615",
        "18446744073709551616",
        "18446744073709551610",
    ] {
        let r = reconcile(
            dir.path(),
            &lic,
            &format!("contoso,plant-north,OT,{count}\n"),
            &[],
        );
        assert_input_error(
            &r,
            &["counts.csv:1: count: ", "above the largest supported count"],
        );
    }
    // A gap that used to print "buy 4294967295 x XL".
    let r = reconcile(
        dir.path(),
        &lic,
        "contoso,plant-north,OT,21474836475000\n",
        &[],
    );
    assert_input_error(&r, &["counts.csv:1: count: "]);
    // Categories of one site that add up past the limit.
    let r = reconcile(
        dir.path(),
        &lic,
        "contoso,plant-north,OT,600000000\ncontoso,plant-north,IOT,600000000\n",
        &[],
    );
    assert_input_error(&r, &["counts.csv:2: count: ", "plant-north"]);
    // Legacy rounding up to 100 next to u64::MAX.
    let r = reconcile(
        dir.path(),
        &lic,
        "fabrikam,office,IOT,18446744073709551599\n",
        &[],
    );
    assert_input_error(&r, &["counts.csv:1: count: "]);
    // An exact column out of range.
    let r = reconcile(
        dir.path(),
        &lic,
        "contoso,plant-north,OT,5,1,99999999999999\n",
        &[],
    );
    assert_input_error(&r, &["counts.csv:1: exact: "]);
}

#[test]
fn licence_numbers_and_dates_out_of_range_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let site = "[[tenants]]\nid = \"a\"\n[[tenants.sites]]\nid = \"s\"\n";
    let cases = [
        // Used to panic in date arithmetic.
        (
            format!("{site}[[tenants.sites.licences]]\nkind = \"trial\"\ntrial_days = 4294967295\nstart = \"2025-01-01\"\n"),
            "tenants[0].sites[0].licences[0].trial_days: ",
        ),
        // E5 x 5 overflowing.
        (
            format!("{site}[tenants.enterprise_iot]\ne5_licences = 9223372036854775807\n"),
            "tenants[0].enterprise_iot.e5_licences: ",
        ),
        // Stacked XL whose capacity overflows.
        (
            format!("{site}[[tenants.sites.licences]]\ntier = \"XL\"\nquantity = 4294967295\nkind = \"paid\"\nstart = \"2025-01-01\"\n[[tenants.sites.licences]]\ntier = \"XL\"\nquantity = 2\nkind = \"paid\"\nstart = \"2025-01-01\"\n"),
            "tenants[0].sites[0].licences[1].quantity: ",
        ),
        // A number TOML cannot hold: the position.
        (
            format!("{site}[tenants.enterprise_iot]\ne5_licences = 18446744073709551615\n"),
            "line 6",
        ),
    ];
    for (doc, want) in cases {
        let lic = write(dir.path(), "licences.toml", &doc);
        let r = reconcile(dir.path(), &lic, "a,s,OT,10\n", &[]);
        assert_input_error(&r, &["licences.toml: ", want]);
    }
    // JSON names the field path too.
    let lic = write(
        dir.path(),
        "licences.json",
        r#"{"tenants":[{"id":"a","enterprise_iot":{"e5_licences":-5}}]}"#,
    );
    let r = reconcile(dir.path(), &lic, "a,s,OT,10\n", &[]);
    assert_input_error(
        &r,
        &["licences.json: ", "tenants[0].enterprise_iot.e5_licences: "],
    );
}

#[test]
fn csv_with_quotes_bom_crlf_blank_and_comment_lines_reads_right() {
    let dir = tempfile::tempdir().unwrap();
    let lic = write(
        dir.path(),
        "licences.toml",
        "[[tenants]]\nid = \"acme\"\n[[tenants.sites]]\nid = \"Plant, North\"\n[[tenants.sites.licences]]\ntier = \"L\"\nkind = \"paid\"\nstart = \"2025-01-01\"\n",
    );
    let r = reconcile(
        dir.path(),
        &lic,
        "\u{feff}tenant,site,category,count\r\n\r\n# exported 2025-06-01\r\n\"acme\",\"Plant, North\",OT,1500\r\n\r\n",
        &["--fail-on", "over"],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        line_of(&r.stdout, "Plant, North").contains("OVER_TIER (buy XL)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("UNLICENSED"), "{}", r.stdout);
}

#[test]
fn exit_codes_separate_usage_errors_from_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let lic = example_licences();
    let c = write(dir.path(), "counts.csv", "contoso,plant-north,OT,1800\n");
    let (l, c) = (lic.to_str().unwrap(), c.to_str().unwrap());
    // An invalid --now: usage error, 2.
    let r = sitetally(&[
        "reconcile",
        "--licences",
        l,
        "--counts",
        c,
        "--now",
        "yesterday",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--now"), "{}", r.stderr);
    // --fail-on over holds: 1.
    let r = sitetally(&[
        "reconcile",
        "--licences",
        l,
        "--counts",
        c,
        "--now",
        NOW,
        "--fail-on",
        "over",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // A missing file: input error, 2, naming it.
    let r = sitetally(&[
        "reconcile",
        "--licences",
        l,
        "--counts",
        "/nonexistent/c.csv",
        "--now",
        NOW,
    ]);
    assert_input_error(&r, &["/nonexistent/c.csv"]);
    // The table is in --help.
    let r = sitetally(&["reconcile", "--help"]);
    assert_eq!(r.code, 0);
    for want in [
        "Exit codes:",
        "0  success",
        "1  the --fail-on condition holds",
        "2  usage or input error",
        "possibly-over",
    ] {
        assert!(r.stdout.contains(want), "{want:?} not in {}", r.stdout);
    }
}

#[test]
fn a_straddling_estimate_never_passes_silently() {
    let dir = tempfile::tempdir().unwrap();
    let lic = example_licences();
    // 1,010±16 (±48 at 3 sigma) on an L site: the band crosses 1,000.
    let csv = "tenant,site,category,count,error_bound\ncontoso,plant-north,OT,1010,16\n";
    let r = reconcile(dir.path(), &lic, csv, &["--fail-on"]);
    assert_eq!(
        r.code, 1,
        "a bare --fail-on fails on possibly over: {}",
        r.stderr
    );
    assert!(
        line_of(&r.stdout, "plant-north").contains("POSSIBLY_OVER (if over: OVER_TIER (buy XL))"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("warning: contoso/plant-north: POSSIBLY_OVER"),
        "{}",
        r.stderr
    );
    // --fail-on over fails only on certainties...
    let r = reconcile(dir.path(), &lic, csv, &["--fail-on", "over"]);
    assert_eq!(r.code, 0);
    // ...and without --fail-on the exit is 0 but stderr says why the decision is unsure.
    let r = reconcile(dir.path(), &lic, csv, &[]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("straddles a boundary"), "{}", r.stderr);
    // An exact column settles it: truly over, and --fail-on over exits 1.
    let csv = "tenant,site,category,count,error_bound,exact\ncontoso,plant-north,OT,1010,16,1003\n";
    let r = reconcile(dir.path(), &lic, csv, &["--fail-on", "over"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let line = line_of(&r.stdout, "plant-north");
    assert!(
        line.contains("OVER_TIER (buy XL)") && line.contains("1003") && line.contains("exact*"),
        "{line}"
    );
    // The exact count is only used for straddles: a clear estimate stands.
    let csv = "tenant,site,category,count,error_bound,exact\ncontoso,plant-north,OT,3000,16,2990\n";
    let r = reconcile(dir.path(), &lic, csv, &["--fail-on", "over"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let line = line_of(&r.stdout, "plant-north");
    assert!(
        line.contains("3000±48") && line.contains(" estimated "),
        "{line}"
    );
}

#[test]
fn legacy_only_sites_and_ending_trials_over_allowance_read_right() {
    let dir = tempfile::tempdir().unwrap();
    // "depot" is covered only by the legacy plan: not unlicensed.
    let lic = write(
        dir.path(),
        "licences.toml",
        "[[tenants]]\nid = \"acme\"\n[[tenants.legacy_ot_plans]]\nid = \"plan\"\nsites = [\"depot\"]\ncommitments = [{ devices = 3000, confirmed_at = \"2025-01-01\" }]\n",
    );
    let r = reconcile(
        dir.path(),
        &lic,
        "acme,depot,OT,2000\n",
        &["--fail-on", "over"],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    let depot = line_of(&r.stdout, " depot ");
    assert!(
        depot.contains("WITHIN_TIER") && depot.contains("legacy plan plan"),
        "{depot}"
    );
    assert!(!r.stdout.contains("UNLICENSED"), "{}", r.stdout);
    // The example's lab trial ends 2025-07-30 (60 days + 30 extension): 1,500 devices
    // ten days before shows the over-allowance beside the day counter.
    let c = write(dir.path(), "counts.csv", "contoso,lab,OT,1500\n");
    let r = sitetally(&[
        "reconcile",
        "--licences",
        example_licences().to_str().unwrap(),
        "--counts",
        c.to_str().unwrap(),
        "--now",
        "2025-07-20T00:00:00Z",
    ]);
    assert_eq!(r.code, 0);
    assert!(
        line_of(&r.stdout, " lab ").contains("TRIAL_ENDING (10d left) + OVER_ALLOWANCE"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn straddling_sites_are_recounted_from_storage_when_given() {
    use sitetally_core::{DeviceCategory, Sighting};
    use sitetally_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = sitetally_store::embedded::EmbeddedStore::open(&data).unwrap();
    store.migrate().await.unwrap();
    // 1,003 devices at plant-north on 2025-05-27 (day 20235), inside the 60-day window.
    let rows: Vec<Sighting> = (0..1_003u64)
        .map(|k| Sighting {
            tenant: "contoso".into(),
            site: "plant-north".into(),
            day: 20_235,
            device_key: k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            device_label: format!("mac:{k}"),
            category: DeviceCategory::Ot,
            agent_managed: false,
            sensor: "s1".into(),
            seen_at_ms: 1_748_304_000_000,
        })
        .collect();
    store.write_sightings(&rows).await.unwrap();
    drop(store);
    let csv = "tenant,site,category,count,error_bound\ncontoso,plant-north,OT,1010,16\n";
    let r = reconcile(
        dir.path(),
        &example_licences(),
        csv,
        &["--data-dir", data.to_str().unwrap(), "--fail-on", "over"],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let line = line_of(&r.stdout, "plant-north");
    assert!(
        line.contains("OVER_TIER (buy XL)") && line.contains("1003") && line.contains("exact*"),
        "{line}"
    );
}

/// Issue 16: a tenant with 100,000 sites in the licence file is decided in full, every
/// site once, without aborting (the sites alternate within tier and over it).
#[test]
fn a_tenant_with_a_hundred_thousand_sites_is_decided_in_full() {
    const SITES: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut licences = String::from("[[tenants]]\nid = \"big\"\n");
    let mut counts = String::from("tenant,site,category,count\n");
    for i in 0..SITES {
        licences.push_str(&format!(
            "[[tenants.sites]]\nid = \"s{i}\"\n[[tenants.sites.licences]]\ntier = \"M\"\nkind = \"paid\"\nstart = \"2025-01-01\"\n"
        ));
        // M covers 500 devices: even sites are within it, odd ones need an L.
        let devices = if i % 2 == 0 { 120 } else { 700 };
        counts.push_str(&format!("big,s{i},OT,{devices}\n"));
    }
    let l = write(dir.path(), "licences.toml", &licences);
    let r = reconcile(dir.path(), &l, &counts, &["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let decisions: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let sites: Vec<&serde_json::Value> = decisions
        .as_array()
        .or_else(|| decisions["decisions"].as_array())
        .expect("a list of decisions")
        .iter()
        .filter(|d| d.to_string().contains("\"big\""))
        .collect();
    assert_eq!(sites.len(), SITES, "every site decided once");
    let over = sites
        .iter()
        .filter(|d| d.to_string().contains("OVER_TIER"))
        .count();
    assert_eq!(over, SITES / 2);
}

/// Issue 13: the licence calendar from the command line: the example file's dates in
/// order with their alert days, one tenant's only, and an unknown tenant as a one-line
/// error (exit 2).
#[test]
fn the_calendar_lists_the_dates_ahead_with_their_alert_days() {
    let l = example_licences();
    let l = l.to_str().unwrap();
    let r = sitetally(&[
        "calendar",
        "--licences",
        l,
        "--now",
        NOW,
        "--alert-days",
        "10",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lab = line_of(&r.stdout, "TRIAL_ENDS");
    assert!(lab.contains("contoso") && lab.contains("lab"), "{lab}");
    assert!(
        lab.starts_with("2025-07-30") && lab.ends_with("2025-07-20"),
        "{lab}"
    );
    let renewal = line_of(&r.stdout, "PO-1001");
    assert!(
        renewal.starts_with("2026-01-01") && renewal.contains("RENEWAL"),
        "{renewal}"
    );
    let dates: Vec<&str> = r
        .stdout
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("20"))
        .map(|l| &l[..16])
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_unstable();
    assert_eq!(dates, sorted, "in time order");
    let one = sitetally(&[
        "calendar",
        "--licences",
        l,
        "--now",
        NOW,
        "--tenant",
        "fabrikam",
    ]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert!(!one.stdout.contains("contoso"), "{}", one.stdout);
    let json = sitetally(&[
        "calendar",
        "--licences",
        l,
        "--now",
        NOW,
        "--format",
        "json",
    ]);
    let entries: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(entries
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "RENEWAL" && e["licence"] == "PO-1001"));
    assert_input_error(
        &sitetally(&["calendar", "--licences", l, "--tenant", "nope"]),
        &["licences.toml", "no tenant \"nope\""],
    );
}

/// Issue 13: the examples/ licence and counts files show every status, each where
/// examples/README.md says.
#[test]
fn the_examples_show_every_status() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (l, c) = (root.join("licences.toml"), root.join("counts.csv"));
    let r = sitetally(&[
        "reconcile",
        "--licences",
        l.to_str().unwrap(),
        "--counts",
        c.to_str().unwrap(),
        "--now",
        "2026-06-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let status_of = |tenant: &str, site: Option<&str>, scope: &str| -> String {
        let d = v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| {
                let s = &d["subject"];
                s["tenant"] == tenant
                    && s["scope"] == scope
                    && site.is_none_or(|site| s["site"] == site)
            })
            .unwrap_or_else(|| panic!("no decision for {tenant}/{site:?} ({scope})"));
        d["status"]["status"].as_str().unwrap().to_string()
    };
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut seen = Vec::new();
    for (status, tenant, site, scope) in [
        ("WITHIN_TIER", "contoso", Some("within"), "ot_site"),
        ("NEAR_LIMIT", "contoso", Some("near"), "ot_site"),
        ("OVER_TIER", "contoso", Some("over"), "ot_site"),
        ("POSSIBLY_OVER", "contoso", Some("maybe"), "ot_site"),
        ("UNLICENSED", "contoso", Some("annex"), "ot_site"),
        ("TRIAL_OVER_ALLOWANCE", "contoso", Some("pilot"), "ot_site"),
        ("TRIAL_ENDING", "contoso", Some("lab"), "ot_site"),
        ("STANDALONE_NEEDED", "contoso", None, "enterprise_iot"),
        ("COMMITMENT_EXCEEDED", "legacyco", None, "legacy_ot_plan"),
        ("BILLED_NO_PLAN", "cancelledco", Some("works"), "ot_site"),
        ("GRACE_PERIOD", "graceco", Some("depot"), "ot_site"),
        ("SERVICE_STOPPED", "stoppedco", Some("yard"), "ot_site"),
        ("RETENTION_ENDING", "retentionco", Some("dock"), "ot_site"),
        ("RETENTION_OVER", "goneco", Some("shed"), "ot_site"),
        ("DATE_AHEAD", "contoso", Some("lab"), "date"),
    ] {
        assert_eq!(status_of(tenant, site, scope), status, "{tenant}/{site:?}");
        assert!(
            readme.contains(&format!("| {status} |")),
            "{status} in the README"
        );
        seen.push(status);
    }
    let mut all = sitetally_licensing::Status::CODES.to_vec();
    all.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, all, "the examples show every status");
}
