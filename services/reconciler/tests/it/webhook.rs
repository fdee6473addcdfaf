//! Webhook sink against a loopback receiver.

use crate::common::{book, receiver, t, MutableCounts};
use sitetally_reconciler::sink::webhook::{
    verify, Secret, WebhookConfig, WebhookSink, DEFAULT_TOLERANCE, IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
};
use sitetally_reconciler::sink::{AlertSink, DeliveryLog, DeliveryOutcome, MemorySink, SinkError};
use sitetally_reconciler::{Alert, Reconciler, Settings};
use sitetally_store::history::MemoryStateStore;
use std::sync::Arc;
use std::time::Duration;

fn sink(url: &str, log: &DeliveryLog) -> WebhookSink {
    let mut cfg = WebhookConfig::new("webhook:test", url, Secret::new("s3cret"));
    cfg.initial_backoff = Duration::from_millis(10);
    cfg.max_backoff = Duration::from_millis(40);
    cfg.max_attempts = 4;
    cfg.timeout = Duration::from_secs(5);
    WebhookSink::new(cfg, log.clone()).unwrap()
}

async fn one_alert() -> Alert {
    let counts = MutableCounts::default();
    counts.set("p1", 1_500, 0.0);
    let mem = Arc::new(MemorySink::new("mem"));
    let r = Reconciler::new(
        Settings::default(),
        book(),
        Arc::new(counts),
        Arc::new(MemoryStateStore::default()),
    )
    .with_sink(mem.clone());
    r.run_once(t("2025-06-01T00:00:00Z")).await.unwrap();
    mem.alerts().remove(0)
}

#[tokio::test]
async fn posts_signed_json_and_retries_with_backoff() {
    let rx = receiver(vec![500, 503, 200]).await;
    let log = DeliveryLog::default();
    let alert = one_alert().await;
    sink(&rx.url, &log).deliver(&alert).await.unwrap();
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let last = &got[2];
    assert_eq!(
        last.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let sig = last
        .headers
        .get(&SIGNATURE_HEADER.to_ascii_lowercase())
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        verify(
            &Secret::new("s3cret"),
            &last.body,
            sig,
            now,
            DEFAULT_TOLERANCE
        ),
        Ok(())
    );
    // Each attempt is signed when it is sent, so retries carry fresh timestamps.
    let first_t = got[0].headers[&SIGNATURE_HEADER.to_ascii_lowercase()]
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert!(first_t.starts_with("t="), "{first_t}");
    assert_eq!(
        last.headers.get(&IDEMPOTENCY_HEADER.to_ascii_lowercase()),
        Some(&alert.idempotency_key)
    );
    let body: Alert = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body, alert);
    // Every retry sends the identical body.
    assert!(got.iter().all(|r| r.body == last.body));
    let outcomes: Vec<DeliveryOutcome> = log.records().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            DeliveryOutcome::Retry,
            DeliveryOutcome::Retry,
            DeliveryOutcome::Delivered
        ]
    );
    assert_eq!(log.records()[0].status_code, Some(500));
}

#[tokio::test]
async fn client_errors_are_permanent_and_not_retried() {
    let rx = receiver(vec![400]).await;
    let log = DeliveryLog::default();
    let e = sink(&rx.url, &log)
        .deliver(&one_alert().await)
        .await
        .unwrap_err();
    assert!(matches!(e, SinkError::Permanent(_)));
    assert_eq!(rx.got.lock().unwrap().len(), 1);
    assert_eq!(log.records()[0].outcome, DeliveryOutcome::Failed);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_retryable_error() {
    let rx = receiver(vec![500]).await;
    let log = DeliveryLog::default();
    let e = sink(&rx.url, &log)
        .deliver(&one_alert().await)
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(rx.got.lock().unwrap().len(), 4);
    assert_eq!(
        log.records().last().unwrap().outcome,
        DeliveryOutcome::Failed
    );
}

#[tokio::test]
async fn failing_webhook_never_blocks_other_sinks() {
    // A port nobody listens on: bind and drop.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let rx = receiver(vec![200]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = DeliveryLog::with_file(dir.path().join("deliveries.jsonl"));
    let mut dead_cfg = WebhookConfig::new("webhook:dead", dead, Secret::new("k"));
    dead_cfg.max_attempts = 2;
    dead_cfg.initial_backoff = Duration::from_millis(5);
    let counts = MutableCounts::default();
    counts.set("p1", 1_500, 0.0);
    counts.set("p3", 900, 0.0);
    let mem = Arc::new(MemorySink::new("mem"));
    let r = Reconciler::new(
        Settings::default(),
        book(),
        Arc::new(counts),
        Arc::new(MemoryStateStore::default()),
    )
    .with_sink(Arc::new(WebhookSink::new(dead_cfg, log.clone()).unwrap()))
    .with_sink(Arc::new(sink(&rx.url, &log)))
    .with_sink(mem.clone());
    let rep = r.run_once(t("2025-06-01T00:00:00Z")).await.unwrap();
    assert_eq!(rep.alerts.len(), 2);
    assert_eq!(mem.alerts().len(), 2);
    assert_eq!(rx.got.lock().unwrap().len(), 2);
    assert_eq!(rep.pending, 2, "the dead webhook still owes both alerts");
    let lines = std::fs::read_to_string(dir.path().join("deliveries.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2 * 2 + 2);
}

/// The receiver example in README.md ("Alerts"), run with python3, accepts what the sink
/// signs and rejects a changed body and an old signature.
#[test]
fn the_readme_receiver_check_accepts_our_signatures() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let start = readme
        .find("```python\n")
        .expect("python example in README")
        + 10;
    let example = &readme[start..start + readme[start..].find("```").unwrap()];
    let secret = "s".repeat(32);
    let body = br#"{"site":"plant-north"}"#;
    let now = chrono::Utc::now().timestamp();
    let fresh = sitetally_reconciler::sink::webhook::sign(&Secret::new(secret.clone()), now, body);
    let old =
        sitetally_reconciler::sink::webhook::sign(&Secret::new(secret.clone()), now - 600, body);
    let script = format!(
        "{example}\nimport sys\nb = {body:?}.encode()\ns = {secret:?}.encode()\n\
         print(verify(s, b, {fresh:?}), verify(s, b + b' ', {fresh:?}), verify(s, b, {old:?}))\n",
        body = std::str::from_utf8(body).unwrap(),
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 (scripts/test.sh needs it too)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True False False"
    );
}

/// An https:// receiver whose certificate a private CA signed: delivered once that CA is
/// trusted (--webhook-ca-file); refused at once, saying TLS, under another CA.
#[tokio::test]
async fn https_webhooks_trust_the_configured_ca_and_name_tls_when_they_do_not() {
    use sitetally_store::tls::TlsOptions;
    use sitetally_testkit::webhook::{tls_receiver, TestCa};
    let ca = TestCa::new("webhook");
    let rx = tls_receiver(vec![200], &ca).await;
    assert!(rx.url.starts_with("https://127.0.0.1:"), "{}", rx.url);
    let dir = tempfile::tempdir().unwrap();
    let https_sink = |ca_file: Option<std::path::PathBuf>, log: &DeliveryLog| {
        let mut cfg = WebhookConfig::new("webhook:tls", rx.url.clone(), Secret::new("s3cret"));
        cfg.initial_backoff = Duration::from_millis(10);
        cfg.max_attempts = 3;
        cfg.tls = TlsOptions {
            ca_file,
            ..TlsOptions::default()
        };
        WebhookSink::new(cfg, log.clone()).unwrap()
    };
    let alert = one_alert().await;

    let log = DeliveryLog::default();
    https_sink(Some(ca.write_ca(dir.path(), "right")), &log)
        .deliver(&alert)
        .await
        .unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let sig = &got[0].headers[&SIGNATURE_HEADER.to_ascii_lowercase()];
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        verify(
            &Secret::new("s3cret"),
            &got[0].body,
            sig,
            now,
            DEFAULT_TOLERANCE
        ),
        Ok(())
    );

    // The webpki roots alone, or another CA: the handshake fails and says so, once.
    for ca_file in [
        None,
        Some(TestCa::new("other").write_ca(dir.path(), "wrong")),
    ] {
        let log = DeliveryLog::default();
        let e = https_sink(ca_file, &log).deliver(&alert).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SinkError::Permanent(_)), "{text}");
        assert!(
            text.contains("TLS:") && text.contains("UnknownIssuer"),
            "{text}"
        );
        assert_eq!(log.records().len(), 1, "a certificate error is not retried");
    }
    assert_eq!(
        rx.received().len(),
        1,
        "nothing reached the receiver untrusted"
    );
}
