//! `sitetally migrate` against the rig's ClickHouse https port: through
//! `--clickhouse-ca-file` it works; without the CA it fails with one line naming TLS.

use std::process::Command;

fn migrate(ca_file: Option<&str>) -> std::process::Output {
    let url = std::env::var("SITETALLY_TEST_CLICKHOUSE_HTTPS_URL")
        .expect("SITETALLY_TEST_CLICKHOUSE_HTTPS_URL is not set: run scripts/test.sh");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sitetally"));
    cmd.args(["migrate", "--clickhouse-url", &url, "--database"])
        .arg(format!("it_tls_cli_{}", std::process::id()))
        .env("RUST_BACKTRACE", "1")
        .env_remove("SITETALLY_CLICKHOUSE_CA_FILE");
    if let Some(ca) = ca_file {
        cmd.args(["--clickhouse-ca-file", ca]);
    }
    cmd.output().expect("run sitetally")
}

#[test]
#[ignore = "needs the rig's ClickHouse https port (scripts/test.sh)"]
fn migrate_over_https_trusts_the_given_ca_and_names_tls_otherwise() {
    let ca = std::env::var("SITETALLY_TEST_CLICKHOUSE_CA_FILE").unwrap();
    let ok = migrate(Some(&ca));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = migrate(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("TLS:") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("panicked") && !lower.contains("backtrace"),
        "{stderr}"
    );
}
