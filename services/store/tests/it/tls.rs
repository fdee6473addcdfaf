//! ClickHouse over https (the rig's server has an https port with a certificate signed by
//! a CA the rig made): the store works when it trusts that CA, and says TLS when not.

use super::{hashed, row};
use sitetally_core::DeviceCategory;
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use sitetally_store::tls::TlsOptions;
use sitetally_store::{CountFilter, DayRange, Store};
use std::path::PathBuf;

fn https_store(name: &str, ca_file: Option<PathBuf>) -> ClickHouseStore {
    let url = std::env::var("SITETALLY_TEST_CLICKHOUSE_HTTPS_URL")
        .expect("SITETALLY_TEST_CLICKHOUSE_HTTPS_URL is not set: run scripts/test.sh");
    ClickHouseStore::new(&ClickHouseConfig {
        url,
        database: format!("it_tls_{name}_{}", std::process::id()),
        tls: TlsOptions {
            ca_file,
            ..TlsOptions::default()
        },
        ..Default::default()
    })
    .expect("the CA file loads")
}

#[tokio::test]
#[ignore = "needs the rig's ClickHouse https port (scripts/test.sh)"]
async fn migrates_writes_and_counts_over_https_trusting_the_rig_ca() {
    let ca = std::env::var("SITETALLY_TEST_CLICKHOUSE_CA_FILE").unwrap();
    let store = https_store("trusted", Some(ca.into()));
    store.ping().await.unwrap();
    store.migrate().await.unwrap();
    let day = super::day();
    let rows: Vec<_> = (0..50)
        .map(|i| row("over-tls", day, hashed(i), DeviceCategory::Ot))
        .collect();
    store.write_sightings(&rows).await.unwrap();
    let days = DayRange {
        from: day,
        to: day,
        since_ms: None,
    };
    let counts = store
        .site_counts(Some("acme"), days, &CountFilter::all())
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].count.value, 50);
}

#[tokio::test]
#[ignore = "needs the rig's ClickHouse https port (scripts/test.sh)"]
async fn an_untrusted_server_certificate_is_named_as_tls() {
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other-ca".into()]).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    for (what, ca) in [("webpki roots only", None), ("another CA", Some(other_ca))] {
        let e = https_store("untrusted", ca).ping().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("TLS:") && text.contains("UnknownIssuer"),
            "{what}: {text}"
        );
    }
}
