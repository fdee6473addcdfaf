//! `sitetally reconcile --licences FILE --counts FILE`.

use crate::common::t;
use sitetally_reconciler::{run_offline, FailOn, OutputFormat};
use std::path::{Path, PathBuf};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/licences.toml")
}

fn counts(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("counts.csv");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn table_and_fail_on_over() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(
        dir.path(),
        "tenant,site,category,count,error_bound\ncontoso,plant-north,OT,1800\ncontoso,annex,OT,40\ncontoso,refinery,OT,4000,20\ncontoso,lab,OT,1500\ncontoso,hq,IOT,1204\n",
    );
    let now = t("2025-06-01T00:00:00Z");
    let (out, code) = run_offline(&example(), &c, OutputFormat::Table, None, now)
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(out.starts_with("TENANT"), "{out}");
    let line = |site: &str| out.lines().find(|l| l.contains(site)).unwrap().to_string();
    assert!(line("plant-north").contains("OVER_TIER (buy XL)"), "{out}");
    assert!(line("refinery").contains("WITHIN_TIER"), "{out}");
    assert!(line("annex").contains("UNLICENSED"), "{out}");
    assert!(line("lab").contains("TRIAL_OVER_ALLOWANCE"), "{out}");
    // hq saw only IoT devices: counted for Enterprise IoT, not an unlicensed OT site.
    assert!(!out.contains(" hq "), "{out}");
    assert!(
        line("(Enterprise IoT)").contains("STANDALONE_NEEDED (buy 4)"),
        "{out}"
    );
    let (_, code) = run_offline(&example(), &c, OutputFormat::Table, Some(FailOn::Over), now)
        .await
        .unwrap();
    // --fail-on holds: exit 1 (2 is for usage and input errors).
    assert_eq!(code, 1);
}

#[tokio::test]
async fn json_output_and_zero_exit_when_nothing_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(
        dir.path(),
        "contoso,plant-north,OT,300\ncontoso,refinery,OT,100\ncontoso,lab,OT,10\n",
    );
    let (out, code) = run_offline(
        &example(),
        &c,
        OutputFormat::Json,
        Some(FailOn::Over),
        t("2025-06-01T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["over"], 0);
    let ds = v["decisions"].as_array().unwrap();
    let north = ds
        .iter()
        .find(|d| d["subject"]["site"] == "plant-north")
        .unwrap();
    assert_eq!(north["status"]["status"], "WITHIN_TIER");
    assert_eq!(north["count"]["method"], "EXACT");
    assert_eq!(north["licensed_tier"]["tier"], "L");
}

#[tokio::test]
async fn legacy_plans_in_the_example() {
    let dir = tempfile::tempdir().unwrap();
    // warehouse's M licence was cancelled; the legacy plan covers it (1,200 committed
    // from 2025-04-01 13:00). fabrikam's legacy EIoT plan: 473 + 1,206 → 1,700.
    let c = counts(
        dir.path(),
        "fabrikam,warehouse,OT,1300\nfabrikam,office,NETWORK,473\nfabrikam,office,IOT,1206\n",
    );
    let (out, code) = run_offline(
        &example(),
        &c,
        OutputFormat::Table,
        Some(FailOn::Over),
        t("2025-06-01T00:00:00Z"),
    )
    .await
    .unwrap();
    let line = |s: &str| out.lines().find(|l| l.contains(s)).unwrap().to_string();
    assert!(
        line("legacy OT plan legacy-2022").contains("COMMITMENT_EXCEEDED (committed 1200)"),
        "{out}"
    );
    assert!(line("legacy Enterprise IoT plan").contains("1700"), "{out}");
    assert!(
        line("legacy Enterprise IoT plan").contains("NEAR_LIMIT"),
        "{out}"
    );
    // --fail-on holds: exit 1 (2 is for usage and input errors).
    assert_eq!(code, 1);
}

#[tokio::test]
async fn bad_files_give_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(dir.path(), "contoso,plant-north,OT,abc\n");
    let e = run_offline(
        &example(),
        &c,
        OutputFormat::Table,
        None,
        t("2025-06-01T00:00:00Z"),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("counts.csv:1: count: not a non-negative integer: \"abc\""),
        "{e}"
    );
    let lic = dir.path().join("l.toml");
    std::fs::write(&lic, "[[tenants]]\nid = \"a\"\n[[tenants.sites]]\nid = \"s\"\n[[tenants.sites.licences]]\ntier = \"XXL\"\nkind = \"paid\"\nstart = \"2025-01-01\"\n").unwrap();
    let c = counts(dir.path(), "a,s,OT,1\n");
    let e = run_offline(
        &lic,
        &c,
        OutputFormat::Table,
        None,
        t("2025-06-01T00:00:00Z"),
    )
    .await
    .unwrap_err();
    // The error names the file, then the field.
    assert_eq!(
        e.to_string(),
        format!(
            "{}: tenants[0].sites[0].licences[0].tier: unknown tier \"XXL\" (known: XS, S, M, L, XL)",
            lic.display()
        )
    );
}
