//! `sitetally reconcile` flags ([`ReconcileArgs`]), mounted as a subcommand by the
//! `sitetally` binary, and helpers that turn them into settings and alert sinks.

use crate::offline::{decide_offline, exit_code, render, uncertain_warnings, FailOn, OutputFormat};
use crate::reconciler::{ReconcileError, Reconciler};
use crate::sink::kafka::{AlertEncoding, KafkaSink, KafkaSinkConfig};
use crate::sink::webhook::{Secret, WebhookConfig, WebhookSink, MIN_SECRET_BYTES};
use crate::sink::{AlertSink, DeliveryLog};
use chrono::{DateTime, Utc};
use sitetally_licensing::count::CountSource;
use sitetally_licensing::licence::LicenceBook;
use sitetally_licensing::settings::Settings;
use sitetally_store::history::{AlertStateStore, JsonFileStateStore, MemoryStateStore, RunHistory};
use sitetally_store::tls::TlsOptions;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The long help of `sitetally reconcile`: what it does, the counts CSV, `--fail-on`
/// and the exit codes.
pub const LONG_ABOUT: &str = "\
Compare device counts with licensed tiers and raise alerts on overruns.

Online (default): reads counts from storage every --interval (or once with --once),
publishes status transitions to the Kafka topic tier-alerts and to webhooks.

Offline: with --licences FILE --counts FILE, reads a CSV
tenant,site,category,count[,error_bound[,exact]] (error_bound: one-sigma error of an
estimate, in devices; exact: the row's exact count, used when the estimate's band
straddles a boundary), prints a table or JSON and exits. A straddling estimate with no
exact count is recounted from storage when --data-dir or --clickhouse-url is given;
otherwise, if the band's upper end is over, the status reads POSSIBLY_OVER, and every
decision resting on such an estimate is named on stderr: it never passes silently.

--fail-on levels:
  possibly-over  over, or possibly over (the default of a bare --fail-on: a maybe
                 must not pass a check; settle it with exact counts)
  over           definitely over only: a site over its tier, Enterprise IoT short of
                 licences, a legacy plan above its commitment

Exit codes:
  0  success
  1  the --fail-on condition holds
  2  usage or input error: bad flag or value, unreadable or invalid file, a count
     or licence number out of range (the message names the file and the line or
     field)

Example: sitetally reconcile --licences licences.toml --counts counts.csv --fail-on";

/// Compare device counts with licences, decide per site, and alert on changes: online
/// against storage, or offline from a counts CSV. The command's long help, with the
/// `--fail-on` levels and exit codes, is [`LONG_ABOUT`].
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Run one reconciliation and exit (online mode). Offline mode always runs once.
    #[arg(long)]
    pub once: bool,

    /// Time between reconciliation runs in online mode, e.g. 30s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// Serve Prometheus metrics on this address in online mode (e.g. 127.0.0.1:9465):
    /// runs and their duration, decisions by status, alerts raised, sent and failed.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "SITETALLY_RECONCILER_METRICS_LISTEN"
    )]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Licence file (TOML or JSON, by extension). See services/reconciler/examples/licences.toml.
    #[arg(long, value_name = "FILE", env = "SITETALLY_LICENCES")]
    pub licences: Option<PathBuf>,

    /// Read licences from ClickHouse's `licences` table (see --import-licences) instead of
    /// --licences FILE. Loaded when the service starts.
    #[arg(long, conflicts_with = "licences")]
    pub licences_from_clickhouse: bool,

    /// Validate FILE (TOML or JSON, as --licences) and store it in ClickHouse's `licences`
    /// table (newest import of a tenant wins), then exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["licences", "licences_from_clickhouse", "counts"])]
    pub import_licences: Option<PathBuf>,

    /// Licences loaded by the caller (from the licences table); wins over --licences.
    #[arg(skip)]
    pub preloaded_licences: Option<LicenceBook>,

    /// Reconcile offline from this counts CSV instead of storage:
    /// `tenant,site,category,count[,error_bound[,exact]]` (a header line may name the
    /// columns in any order; quoted fields, CRLF, blank and # comment lines are fine),
    /// categories OT, IOT, NETWORK, COMPUTERS_MOBILE, UNKNOWN. Each tenant/site/category
    /// once. With --data-dir or --clickhouse-url, sites whose estimate straddles a
    /// boundary and have no `exact` are recounted from that storage.
    #[arg(long, value_name = "FILE", requires = "licences")]
    pub counts: Option<PathBuf>,

    /// Output format of offline runs.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Exit with status 1 when the condition holds. "over": any subject definitely over
    /// (a site over its tier, Enterprise IoT short of licences, a legacy plan above its
    /// commitment). "possibly-over": those, and any estimate straddling an over
    /// boundary with no exact count (POSSIBLY_OVER). A bare --fail-on means
    /// possibly-over, the default because a maybe must not pass a check: give exact
    /// counts (or storage to recount) to settle it, or ask for "over" to fail only on
    /// certainties. Without --fail-on the exit status is 0 whatever is decided.
    #[arg(
        long,
        value_enum,
        value_name = "LEVEL",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "possibly-over"
    )]
    pub fail_on: Option<FailOn>,

    /// Reconciler settings (TOML): billing windows, near-limit ratio, error band,
    /// hysteresis, above-XL policy, agent-managed endpoints, Enterprise IoT rounding...
    #[arg(long, value_name = "FILE", env = "SITETALLY_RECONCILER_SETTINGS")]
    pub settings: Option<PathBuf>,

    /// Decide as of this time (RFC 3339) instead of now; for reproducible offline runs.
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub now: Option<DateTime<Utc>>,

    /// Webhook receiving alerts as signed JSON POSTs, as NAME=URL (repeatable).
    #[arg(long = "webhook", value_name = "NAME=URL")]
    pub webhooks: Vec<String>,

    /// File holding the HMAC-SHA256 key that signs webhook requests (X-Sitetally-Signature:
    /// t=<unix seconds>,v1=<hex>), at least 32 bytes (e.g. `openssl rand -hex 32`); a final
    /// newline is ignored. Or set SITETALLY_WEBHOOK_SECRET. Never on the command line,
    /// where other users of the machine could read it.
    #[arg(long, value_name = "FILE", env = "SITETALLY_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// PEM CA certificates trusted for https:// webhooks besides the webpki roots.
    #[arg(long, value_name = "FILE", env = "SITETALLY_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,

    /// PEM client certificate for webhook receivers that require one (with
    /// --webhook-client-key).
    #[arg(
        long,
        value_name = "FILE",
        env = "SITETALLY_WEBHOOK_CLIENT_CERT",
        requires = "webhook_client_key"
    )]
    pub webhook_client_cert: Option<PathBuf>,

    /// PEM private key of --webhook-client-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "SITETALLY_WEBHOOK_CLIENT_KEY",
        requires = "webhook_client_cert"
    )]
    pub webhook_client_key: Option<PathBuf>,

    /// SITETALLY_WEBHOOK_SECRET, read from the environment only.
    #[arg(skip = std::env::var("SITETALLY_WEBHOOK_SECRET").ok().map(Secret::new))]
    pub webhook_secret_env: Option<Secret>,

    /// Kafka bootstrap servers for alerts; no Kafka alerts when unset.
    #[arg(long, value_name = "HOST:PORT,...", env = "SITETALLY_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// librdkafka properties for the alert producer, one `key=value` per line (`#`
    /// comments): TLS and SASL, e.g. security.protocol=SASL_SSL,
    /// sasl.mechanism=SCRAM-SHA-512, sasl.username=..., sasl.password=...,
    /// ssl.ca.location=/etc/ssl/kafka-ca.pem. A file, so the password is not in argv.
    #[arg(long, value_name = "FILE", env = "SITETALLY_KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<PathBuf>,

    /// Topic for alerts.
    #[arg(long, value_name = "TOPIC", default_value = crate::sink::kafka::TIER_ALERTS_TOPIC)]
    pub alert_topic: String,

    /// Encoding of alerts on Kafka.
    #[arg(long, value_enum, default_value_t = AlertEncoding::Avro)]
    pub alert_encoding: AlertEncoding,

    /// Schema-registry id of tier_alert.avsc; when set, Avro alerts use the wire format
    /// (magic byte + id).
    #[arg(long, value_name = "ID")]
    pub alert_schema_id: Option<u32>,

    /// JSON file keeping alert state between runs (no duplicate alerts after a
    /// restart). Against ClickHouse the state is kept in its `alert_state` table unless
    /// this is given; with the embedded store and without it, state is in memory.
    #[arg(long, value_name = "FILE")]
    pub alert_state: Option<PathBuf>,

    /// Append every alert delivery attempt to this JSON-lines file.
    #[arg(long, value_name = "FILE")]
    pub delivery_log: Option<PathBuf>,
}

/// The reconciler settings from a TOML file, or the defaults without one.
pub fn read_settings(path: Option<&std::path::Path>) -> Result<Settings, ReconcileError> {
    match path {
        None => Ok(Settings::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ReconcileError::Io {
                path: p.display().to_string(),
                source,
            })?;
            Settings::from_toml_str(&text)
                .map_err(|e| ReconcileError::Config(format!("{}: {e}", p.display())))
        }
    }
}

pub(crate) fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected RFC 3339 (2025-06-01T00:00:00Z): {e}"))
}

impl ReconcileArgs {
    /// Offline mode: counts come from a CSV.
    pub fn is_offline(&self) -> bool {
        self.counts.is_some()
    }

    /// The time to decide at.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    /// Settings from --settings, or the defaults.
    pub fn load_settings(&self) -> Result<Settings, ReconcileError> {
        read_settings(self.settings.as_deref())
    }

    /// Licences from --licences (an empty book when unset: every site is unlicensed).
    pub fn load_licences(&self, settings: &Settings) -> Result<LicenceBook, ReconcileError> {
        if let Some(book) = &self.preloaded_licences {
            return Ok(book.clone());
        }
        match &self.licences {
            None => Ok(LicenceBook::default()),
            Some(p) => Ok(crate::licence_table::load_file(p, settings)?),
        }
    }

    /// The delivery log (with its file when --delivery-log is set).
    pub fn delivery_log(&self) -> DeliveryLog {
        match &self.delivery_log {
            Some(p) => DeliveryLog::with_file(p),
            None => DeliveryLog::default(),
        }
    }

    /// The webhook secret from --webhook-secret-file or SITETALLY_WEBHOOK_SECRET, at least
    /// [`MIN_SECRET_BYTES`] long.
    fn webhook_secret(&self) -> Result<Secret, ReconcileError> {
        let (secret, source) = match (&self.webhook_secret_file, &self.webhook_secret_env) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ReconcileError::Config(format!(
                        "--webhook-secret-file {}: cannot read: {e}",
                        path.display()
                    ))
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                (
                    Secret::new(text),
                    format!("--webhook-secret-file {}", path.display()),
                )
            }
            (None, Some(s)) => (s.clone(), "SITETALLY_WEBHOOK_SECRET".to_string()),
            (None, None) => {
                return Err(ReconcileError::Config(
                    "--webhook needs a signing secret: --webhook-secret-file FILE or \
                     SITETALLY_WEBHOOK_SECRET (at least 32 bytes, e.g. `openssl rand -hex 32`)"
                        .into(),
                ))
            }
        };
        let len = secret.expose().len();
        if len < MIN_SECRET_BYTES {
            return Err(ReconcileError::Config(format!(
                "{source}: the webhook secret is {len} bytes; at least {MIN_SECRET_BYTES} are \
                 needed (e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(secret)
    }

    /// Alert sinks from --webhook and --kafka-brokers.
    pub fn build_sinks(
        &self,
        log: &DeliveryLog,
    ) -> Result<Vec<Arc<dyn AlertSink>>, ReconcileError> {
        let mut sinks: Vec<Arc<dyn AlertSink>> = Vec::new();
        let secret = if self.webhooks.is_empty() {
            None
        } else {
            Some(self.webhook_secret()?)
        };
        for spec in &self.webhooks {
            let (name, url) = spec.split_once('=').ok_or_else(|| {
                ReconcileError::Config(format!("--webhook {spec:?}: expected NAME=URL"))
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ReconcileError::Config(format!(
                    "--webhook {name}: URL must start with http:// or https://"
                )));
            }
            let secret = secret.clone().expect("resolved above");
            let mut config = WebhookConfig::new(format!("webhook:{name}"), url, secret);
            config.tls = TlsOptions {
                ca_file: self.webhook_ca_file.clone(),
                client_cert_file: self.webhook_client_cert.clone(),
                client_key_file: self.webhook_client_key.clone(),
            };
            let sink = WebhookSink::new(config, log.clone())
                .map_err(|e| ReconcileError::Config(e.to_string()))?;
            sinks.push(Arc::new(sink));
        }
        if let Some(brokers) = &self.kafka_brokers {
            let mut cfg = KafkaSinkConfig::new(brokers.clone());
            cfg.topic = self.alert_topic.clone();
            cfg.encoding = self.alert_encoding;
            cfg.schema_id = self.alert_schema_id;
            if let Some(path) = &self.kafka_properties_file {
                cfg.extra = read_properties(path)?;
            }
            let sink = KafkaSink::new(cfg, log.clone())
                .map_err(|e| ReconcileError::Config(e.to_string()))?;
            sinks.push(Arc::new(sink));
        }
        Ok(sinks)
    }

    /// The alert state store from --alert-state (in memory when unset).
    pub fn state_store(&self) -> Arc<dyn AlertStateStore> {
        match &self.alert_state {
            Some(p) => Arc::new(JsonFileStateStore::new(p)),
            None => Arc::new(MemoryStateStore::default()),
        }
    }

    /// Builds the online reconciler: settings, licences and sinks from the flags, counts
    /// and (optionally) alert state from the caller's storage. Without `state`, the
    /// `--alert-state` file or memory is used.
    pub fn reconciler(
        &self,
        counts: Arc<dyn CountSource>,
        state: Option<Arc<dyn AlertStateStore>>,
        history: Option<Arc<dyn RunHistory>>,
    ) -> Result<Reconciler, ReconcileError> {
        let settings = self.load_settings()?;
        let licences = self.load_licences(&settings)?;
        let sinks = self.build_sinks(&self.delivery_log())?;
        // An explicit --alert-state file wins over the caller's storage.
        let state = match (&self.alert_state, state) {
            (None, Some(state)) => state,
            _ => self.state_store(),
        };
        let r = sinks.into_iter().fold(
            Reconciler::new(settings, licences, counts, state),
            |r, s| r.with_sink(s),
        );
        Ok(match history {
            Some(h) => r.with_history(h),
            None => r,
        })
    }

    /// Online mode against storage. With `--once`: one run, returns its decisions
    /// rendered in `--format` and the `--fail-on` exit code. Otherwise runs every
    /// `--interval` until `shutdown` and returns an empty output and 0.
    pub async fn run_online<F>(
        &self,
        counts: Arc<dyn CountSource>,
        state: Option<Arc<dyn AlertStateStore>>,
        history: Option<Arc<dyn RunHistory>>,
        shutdown: F,
    ) -> Result<(String, i32), ReconcileError>
    where
        F: Future<Output = ()>,
    {
        let r = self.reconciler(counts, state, history)?;
        if self.once {
            let now = self.now();
            let report = r.run_once(now).await?;
            for w in uncertain_warnings(&report.decisions, r.settings()) {
                eprintln!("{w}");
            }
            let mut out = render(&report.decisions, r.settings(), self.format, now);
            if self.format == OutputFormat::Table {
                out.push_str(&format!(
                    "{} alerts raised, {} deliveries made, {} pending\n",
                    report.alerts.len(),
                    report.delivered,
                    report.pending
                ));
            }
            return Ok((out, exit_code(&report.decisions, self.fail_on)));
        }
        crate::metrics::describe(&r.sink_names());
        r.run(self.interval, shutdown).await?;
        Ok((String::new(), 0))
    }

    /// Runs the offline mode; returns the output and the exit code.
    pub async fn run_offline(&self) -> Result<(String, i32), ReconcileError> {
        self.run_offline_recounting(None).await
    }

    /// Runs the offline mode, recounting from `recount` (storage) the sites whose
    /// estimate straddles a boundary and which have no exact count in the CSV. Warns on
    /// stderr about every decision that still rests on a straddling estimate.
    pub async fn run_offline_recounting(
        &self,
        recount: Option<Arc<dyn CountSource>>,
    ) -> Result<(String, i32), ReconcileError> {
        let counts = self
            .counts
            .as_ref()
            .ok_or_else(|| ReconcileError::Config("offline mode needs --counts FILE".into()))?;
        let licences = self
            .licences
            .as_ref()
            .ok_or_else(|| ReconcileError::Config("offline mode needs --licences FILE".into()))?;
        let settings = self.load_settings()?;
        let now = self.now();
        let (decisions, warnings) =
            decide_offline(&settings, licences, counts, recount, now).await?;
        for w in warnings {
            eprintln!("{w}");
        }
        Ok((
            render(&decisions, &settings, self.format, now),
            exit_code(&decisions, self.fail_on),
        ))
    }
}

/// `key=value` lines of a librdkafka properties file (blank lines and `#` comments
/// skipped); errors name the file and line.
pub fn read_properties(path: &std::path::Path) -> Result<Vec<(String, String)>, ReconcileError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ReconcileError::Config(format!(
            "--kafka-properties-file {}: cannot read: {e}",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            ReconcileError::Config(format!("{}:{}: expected key=value", path.display(), i + 1))
        })?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReconcileArgs,
    }

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "x",
            "--licences",
            "l.toml",
            "--counts",
            "c.csv",
            "--format",
            "json",
            "--fail-on",
            "over",
            "--interval",
            "30s",
            "--now",
            "2025-06-01T00:00:00Z",
        ])
        .unwrap();
        assert!(c.args.is_offline());
        assert_eq!(c.args.format, OutputFormat::Json);
        assert_eq!(c.args.fail_on, Some(FailOn::Over));
        assert_eq!(c.args.interval, Duration::from_secs(30));
        assert!(
            Cli::try_parse_from(["x", "--counts", "c.csv"]).is_err(),
            "--counts requires --licences"
        );
        // A bare --fail-on is possibly-over.
        let bare = Cli::try_parse_from(["x", "--fail-on"]).unwrap();
        assert_eq!(bare.args.fail_on, Some(FailOn::PossiblyOver));
        let p = Cli::try_parse_from(["x", "--fail-on", "possibly-over"]).unwrap();
        assert_eq!(p.args.fail_on, Some(FailOn::PossiblyOver));
        let once = Cli::try_parse_from(["x", "--once"]).unwrap();
        assert!(once.args.once && !once.args.is_offline());
    }

    #[tokio::test]
    async fn once_runs_against_a_count_source() {
        use sitetally_licensing::count::{CategoryCount, Count, StaticCounts};
        let lic = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/licences.toml");
        let c = Cli::try_parse_from([
            "x",
            "--once",
            "--licences",
            lic.to_str().unwrap(),
            "--fail-on",
            "over",
            "--now",
            "2025-06-01T00:00:00Z",
        ])
        .unwrap();
        let counts = StaticCounts {
            counts: vec![CategoryCount {
                tenant: "contoso".into(),
                site: "plant-north".into(),
                category: sitetally_core::DeviceCategory::Ot,
                count: Count::exact(1_500),
            }],
            ..Default::default()
        };
        let (out, code) = c
            .args
            .run_online(Arc::new(counts), None, None, std::future::pending())
            .await
            .unwrap();
        // --fail-on holds: exit 1 (was 2, which is clap's code for usage errors).
        assert_eq!(code, 1);
        assert!(out.contains("OVER_TIER (buy XL)"), "{out}");
        assert!(out.contains("alerts raised"), "{out}");
    }

    #[test]
    fn webhook_needs_a_long_secret_from_a_file_or_the_environment() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["x", "--webhook", "ops=http://127.0.0.1:9/"];
            argv.extend_from_slice(extra);
            let mut c = Cli::try_parse_from(argv).unwrap();
            c.args.webhook_secret_env = None;
            c
        };
        let err = |c: &Cli| match c.args.build_sinks(&DeliveryLog::default()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        assert!(err(&parse(&[])).contains("--webhook-secret-file"));
        // Not on the command line.
        assert!(Cli::try_parse_from(["x", "--webhook-secret", "s"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "tooshort\n").unwrap();
        let e = err(&parse(&["--webhook-secret-file", short.to_str().unwrap()]));
        assert!(e.contains("8 bytes") && e.contains("short"), "{e}");
        let missing = dir.path().join("missing");
        let e = err(&parse(&[
            "--webhook-secret-file",
            missing.to_str().unwrap(),
        ]));
        assert!(e.contains("cannot read"), "{e}");
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{}\n", "k".repeat(32))).unwrap();
        let c = parse(&["--webhook-secret-file", good.to_str().unwrap()]);
        let sinks = c.args.build_sinks(&DeliveryLog::default()).unwrap();
        assert_eq!(sinks[0].name(), "webhook:ops");
        let mut c = parse(&[]);
        c.args.webhook_secret_env = Some(Secret::new("e".repeat(32)));
        assert_eq!(
            c.args.build_sinks(&DeliveryLog::default()).unwrap().len(),
            1
        );
        let mut c = Cli::try_parse_from(["x", "--webhook", "nourl"]).unwrap();
        c.args.webhook_secret_env = Some(Secret::new("e".repeat(32)));
        assert!(c.args.build_sinks(&DeliveryLog::default()).is_err());
    }

    #[test]
    fn kafka_properties_come_from_a_file_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kafka.properties");
        std::fs::write(
            &p,
            "# alert producer\nsecurity.protocol=SASL_SSL\n\nsasl.password = kafka-hunter2\n",
        )
        .unwrap();
        let props = read_properties(&p).unwrap();
        assert_eq!(
            props,
            vec![
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.password".to_string(), "kafka-hunter2".to_string()),
            ]
        );
        let mut cfg = KafkaSinkConfig::new("127.0.0.1:9");
        cfg.extra = props;
        let printed = format!("{cfg:?}");
        assert!(
            !printed.contains("hunter2") && printed.contains("SASL_SSL"),
            "{printed}"
        );
        std::fs::write(&p, "no equals sign\n").unwrap();
        let e = read_properties(&p).unwrap_err().to_string();
        assert!(e.contains("kafka.properties:1: expected key=value"), "{e}");
    }
}
