//! The one sitetally binary: parses flags, sets up logging and metrics, and hands over to
//! the service libraries. No logic lives here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use sitetally_core::readiness::ReadinessProbe;
use sitetally_core::secret::Secret;
use sitetally_ingest::probe::BrokerProbe;
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use sitetally_store::history::{LicenceTable, ReconcilerMemory, ReconcilerTables};
use sitetally_store::{Store, StoreCounts};
use std::path::PathBuf;
use std::sync::Arc;

/// jemalloc for the whole process, librdkafka's C allocations included (the crate's
/// unprefixed `malloc`/`free` symbols replace glibc's). librdkafka allocates every fetched
/// message on its broker thread and ingest frees it on the consumer thread; with glibc each
/// such free locks the broker thread's arena, and the two threads contended on that lock
/// (perf: `_int_free` and futex waits ~12% of the consumer thread). In the drain benchmark
/// (load-tests/RESULTS.md) jemalloc cut ingest's CPU per event by ~20% and a bare
/// consumer's by ~30%, same-run medians.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "sitetally",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("SITETALLY_GIT_REV"), ")"),
    about = "Per-site billable device counts from sensor discoveries, and licence tier alerts",
    long_about = "sitetally consumes device-discovery events from Kafka, counts distinct billable devices per site \
                        (exact for small sites, HyperLogLog sketches in ClickHouse for large ones), compares them with \
                        each customer's licensed tiers and raises alerts on overruns."
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct LogArgs {
    /// Log format: human-readable lines or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "SITETALLY_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `sitetally_ingest=debug`.
    #[arg(long, global = true, default_value = "info", env = "SITETALLY_LOG")]
    log: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Consume discovery events from Kafka and write deduplicated sightings to ClickHouse.
    Ingest(IngestArgs),
    /// Create or upgrade the ClickHouse schema (ingest also does this at start-up).
    Migrate(MigrateArgs),
    /// Compare device counts with licensed tiers and raise alerts on overruns; offline
    /// with `--licences FILE --counts FILE`, or against storage (`--once` or periodic).
    #[command(long_about = sitetally_reconciler::cli::LONG_ABOUT)]
    Reconcile(Box<ReconcileCommand>),
    /// The licence calendar: trial ends and extension windows, renewals, licence ends,
    /// service stop and retention end, each with the day to alert, from a licence file.
    Calendar(sitetally_reconciler::calendar::CalendarArgs),
    /// Produce realistic simulated sensor traffic to a Kafka topic (load, demos, tests).
    Simulate(sitetally_sensor_sim::SimulateArgs),
    /// Run the whole pipeline in one process with simulated sensors: nothing to install
    /// (in-process broker, embedded store in --data-dir, reconciler, live progress).
    #[command(long_about = sitetally_demo::LONG_ABOUT)]
    Demo(sitetally_demo::DemoArgs),
    /// Serve the HTTP API (JSON/CSV), its OpenAPI document and the dashboard for
    /// capacity planners, over ClickHouse or the embedded store of --data-dir.
    Serve(ApiCommand<sitetally_api::cli::ServeArgs>),
    /// A tenant's sites: devices over the billing window, licensed tier, utilisation, status.
    Sites(ApiCommand<sitetally_api::cli::SitesArgs>),
    /// One site's distinct devices per day, week or month, by category.
    Counts(ApiCommand<sitetally_api::cli::CountsArgs>),
    /// One site's trend and the projected date it crosses its next tier boundary.
    Forecast(ApiCommand<sitetally_api::cli::ForecastArgs>),
    /// Print a shell completion script, e.g.
    /// `sitetally completions bash > /etc/bash_completion.d/sitetally`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `sitetally man > /usr/local/share/man/man1/sitetally.1`.
    Man,
    /// Exit 0 when URL answers 2xx within --timeout, else 1 with the reason: a container
    /// healthcheck without curl in the image, e.g. `sitetally probe http://127.0.0.1:8080/readyz`.
    Probe {
        /// The http(s) URL to GET.
        url: String,
        /// Longest wait for the answer.
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

/// A planner command's own flags plus where the data lives.
#[derive(Args)]
struct ApiCommand<A: Args> {
    #[command(flatten)]
    args: A,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
struct ReconcileCommand {
    #[command(flatten)]
    reconcile: sitetally_reconciler::ReconcileArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

/// How to reach ClickHouse: one flag group and one environment scheme
/// (`SITETALLY_CLICKHOUSE_*`) for every command that talks to it. Unset flags keep the
/// command's configured value (ingest: its config file and `SITETALLY_INGEST__*`), else
/// the defaults shown.
#[derive(Args)]
struct ClickHouseArgs {
    /// ClickHouse HTTP(S) URL [default: http://127.0.0.1:8123].
    #[arg(long, value_name = "URL", env = "SITETALLY_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
    /// ClickHouse database [default: sitetally].
    #[arg(long, value_name = "NAME", env = "SITETALLY_CLICKHOUSE_DATABASE")]
    database: Option<String>,
    /// ClickHouse user [default: the server's default user].
    #[arg(long, value_name = "USER", env = "SITETALLY_CLICKHOUSE_USER")]
    clickhouse_user: Option<String>,
    /// File holding the ClickHouse password (first line). The password is never a flag
    /// (flags show in `ps`): use this or SITETALLY_CLICKHOUSE_PASSWORD.
    #[arg(long, value_name = "FILE", env = "SITETALLY_CLICKHOUSE_PASSWORD_FILE")]
    clickhouse_password_file: Option<PathBuf>,
    /// PEM CA certificates trusted for an https:// ClickHouse URL besides the webpki roots
    /// (a private CA).
    #[arg(long, value_name = "FILE", env = "SITETALLY_CLICKHOUSE_CA_FILE")]
    clickhouse_ca_file: Option<PathBuf>,
    /// PEM client certificate for ClickHouse servers that require one (with
    /// --clickhouse-client-key).
    #[arg(
        long,
        value_name = "FILE",
        env = "SITETALLY_CLICKHOUSE_CLIENT_CERT",
        requires = "clickhouse_client_key"
    )]
    clickhouse_client_cert: Option<PathBuf>,
    /// PEM private key of --clickhouse-client-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "SITETALLY_CLICKHOUSE_CLIENT_KEY",
        requires = "clickhouse_client_cert"
    )]
    clickhouse_client_key: Option<PathBuf>,
    /// Cluster the tables are spread over (its name under <remote_servers> in the servers'
    /// config): `migrate` creates them ON CLUSTER, replicated, and sightings and sketches
    /// sharded by site; ingest's inserts wait until every shard has its rows. Give the same
    /// name to every command using the database. Needs ZooKeeper or ClickHouse Keeper and
    /// `shard` and `replica` macros (the replica name unique in the cluster). [default:
    /// none: one server]
    #[arg(
        long,
        visible_alias = "cluster",
        value_name = "NAME",
        env = "SITETALLY_CLICKHOUSE_CLUSTER"
    )]
    clickhouse_cluster: Option<String>,
}

impl ClickHouseArgs {
    /// Overrides `config` with what was given (flags or environment).
    fn apply(&self, config: &mut ClickHouseConfig) -> anyhow::Result<()> {
        if let Some(v) = &self.clickhouse_url {
            config.url = v.clone();
        }
        if let Some(v) = &self.database {
            config.database = v.clone();
        }
        if let Some(v) = &self.clickhouse_user {
            config.user = Some(v.clone());
        }
        if let Some(path) = &self.clickhouse_password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("--clickhouse-password-file {}: {e}", path.display())
            })?;
            let first = text.lines().next().unwrap_or_default().trim_end();
            config.password = Some(Secret::new(first));
        } else if let Ok(p) = std::env::var("SITETALLY_CLICKHOUSE_PASSWORD") {
            config.password = Some(Secret::new(p));
        }
        if let Some(v) = &self.clickhouse_ca_file {
            config.tls.ca_file = Some(v.clone());
        }
        if let Some(v) = &self.clickhouse_client_cert {
            config.tls.client_cert_file = Some(v.clone());
        }
        if let Some(v) = &self.clickhouse_client_key {
            config.tls.client_key_file = Some(v.clone());
        }
        if let Some(v) = &self.clickhouse_cluster {
            config.cluster = Some(v.clone());
        }
        Ok(())
    }

    /// The defaults with what was given applied.
    fn config(&self) -> anyhow::Result<ClickHouseConfig> {
        let mut config = ClickHouseConfig::default();
        self.apply(&mut config)?;
        Ok(config)
    }
}

/// Where counts live: ClickHouse, or the embedded store of a `--data-dir`.
#[derive(Args)]
struct StorageArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Use the embedded store in this directory (as `sitetally demo` writes it) instead
    /// of ClickHouse.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl StorageArgs {
    /// The store, and the reconciler's memory (alert state, alert log, run history,
    /// licences) in the same engine: ClickHouse's tables, or the embedded store's file.
    fn open_with_memory(&self) -> anyhow::Result<OpenedStore> {
        fn opened<T: Store + ReconcilerTables + 'static>(store: Arc<T>) -> OpenedStore {
            OpenedStore {
                store: store.clone(),
                memory: ReconcilerMemory::of(store.clone()),
                licences: store,
            }
        }
        Ok(match &self.data_dir {
            // Every command here reads what demo or ingest wrote: never create a store.
            Some(dir) => opened(Arc::new(
                sitetally_store::embedded::EmbeddedStore::open_existing(dir)?,
            )),
            None => opened(Arc::new(ClickHouseStore::new(&self.clickhouse.config()?)?)),
        })
    }
}

impl StorageArgs {
    /// Offline runs: where to recount sites whose estimate straddles a boundary, when
    /// storage was named (--data-dir, or --clickhouse-url / SITETALLY_CLICKHOUSE_URL).
    fn recount_source(&self) -> anyhow::Result<Option<Arc<dyn sitetally_licensing::CountSource>>> {
        let store: Arc<dyn Store> = match (&self.data_dir, &self.clickhouse.clickhouse_url) {
            (Some(dir), _) => Arc::new(sitetally_store::embedded::EmbeddedStore::open_existing(
                dir,
            )?),
            (None, Some(_)) => Arc::new(ClickHouseStore::new(&self.clickhouse.config()?)?),
            (None, None) => return Ok(None),
        };
        Ok(Some(Arc::new(StoreCounts::new(store))))
    }
}

/// A store with the reconciler's memory in the same engine.
struct OpenedStore {
    store: Arc<dyn Store>,
    memory: ReconcilerMemory,
    licences: Arc<dyn LicenceTable>,
}

#[derive(Args)]
struct IngestArgs {
    /// TOML config file (see README "Configuration"); environment variables
    /// `SITETALLY_INGEST__SECTION__KEY` override it, and these flags override both.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (the same flag and variable on every command; `--brokers`
    /// is an alias).
    #[arg(
        long = "kafka-brokers",
        alias = "brokers",
        value_name = "HOST:PORT,...",
        env = "SITETALLY_KAFKA_BROKERS"
    )]
    brokers: Option<String>,
    /// Topic to consume.
    #[arg(long)]
    topic: Option<String>,
    /// Consumer group id.
    #[arg(long)]
    group: Option<String>,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Print the effective configuration (secrets omitted) and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Args)]
struct MigrateArgs {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Print the SQL the migrations would send to a server of --server-version (one
    /// statement per `;`-terminated block) and exit without connecting.
    #[arg(long, requires = "server_version")]
    print_sql: bool,
    /// Server version to render for with --print-sql, e.g. 24.8 or 18.16.
    #[arg(long, requires = "print_sql")]
    server_version: Option<String>,
    /// Print every statement the store sends at runtime, as JSON `[[name, sql], …]` with
    /// `?` for bound values, and exit without connecting (the chdb test runs them).
    #[arg(long, conflicts_with = "print_sql")]
    print_queries: bool,
}

fn init_logging(args: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|e| {
        eprintln!("invalid --log filter {:?}: {e}; using info", args.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn init_metrics(listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(sitetally_core::LATENCY_BUCKETS_SECONDS)?
            .install()
            .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
        tracing::info!(%addr, "Prometheus metrics at http://{addr}/metrics");
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn ingest_config(args: &IngestArgs) -> anyhow::Result<sitetally_ingest::IngestConfig> {
    let mut c = sitetally_ingest::IngestConfig::load(args.config.as_deref())?;
    if let Some(v) = &args.brokers {
        c.kafka.brokers = v.clone();
    }
    if let Some(v) = &args.topic {
        c.kafka.topic = v.clone();
    }
    if let Some(v) = &args.group {
        c.kafka.group_id = v.clone();
    }
    args.clickhouse.apply(&mut c.clickhouse)?;
    if let Some(v) = &args.metrics_listen {
        c.metrics_listen = Some(v.clone());
    }
    c.validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(c)
}

/// `migrate --print-sql`: every migration's statements, each ended by `;` on its own
/// line, under a `-- NNN_name` header (a skipped migration says why).
fn migration_sql(
    db: &str,
    caps: &sitetally_store::clickhouse::Capabilities,
    cluster: Option<&str>,
) -> String {
    let mut out = String::new();
    for (version, name, statements) in
        sitetally_store::clickhouse::migration_statements(db, caps, cluster)
    {
        out.push_str(&format!("-- migration {version:03}_{name}\n"));
        if statements.is_empty() {
            out.push_str(&format!(
                "-- skipped on {}: needs TTL and insert deduplication\n",
                caps.version
            ));
        }
        for statement in statements {
            out.push_str(&statement);
            out.push_str("\n;\n");
        }
    }
    out
}

/// Exit codes: 0 success, 1 when `reconcile --fail-on` holds, 2 for usage and input
/// errors (clap's code for bad flags; this binary's for every error it reports). An
/// error is printed as one line on stderr, never as a backtrace, whatever
/// RUST_BACKTRACE says.
#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            sitetally_reconciler::offline::EXIT_USAGE
        }
    };
    if code != 0 {
        std::process::exit(code);
    }
}

/// An error and its causes on one line (`{:#}` joins the chain with ": "; messages
/// that span lines are joined with spaces).
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the command; returns the exit code.
async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Ingest(args) => {
            let config = ingest_config(&args)?;
            if args.print_config {
                println!("{}", serde_json::to_string_pretty(&config)?);
                return Ok(0);
            }
            let listen = config.metrics_listen.as_deref().map(|a| {
                a.parse::<std::net::SocketAddr>()
                    .map_err(|e| anyhow::anyhow!("--metrics-listen {a:?}: {e}"))
            });
            init_metrics(listen.transpose()?)?;
            sitetally_ingest::metrics::describe();
            let report = sitetally_ingest::run(config, shutdown_signal()).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Migrate(args) => {
            use sitetally_store::Store;
            if args.print_queries {
                let db = args.clickhouse.config()?.database;
                let queries = sitetally_store::clickhouse::queries::catalogue(&db);
                println!("{}", serde_json::to_string_pretty(&queries)?);
                return Ok(0);
            }
            if let Some(version) = &args.server_version {
                let config = args.clickhouse.config()?;
                let caps = sitetally_store::clickhouse::Capabilities::for_version(version);
                print!(
                    "{}",
                    migration_sql(&config.database, &caps, config.cluster.as_deref())
                );
                return Ok(0);
            }
            let store = ClickHouseStore::new(&args.clickhouse.config()?)?;
            let caps = store.capabilities().await?;
            let applied = store.migrate().await?;
            tracing::info!(server = %caps.version, ttl = caps.ttl, "migrations applied: {}", if applied.is_empty() { "none (up to date)".to_string() } else { applied.join(", ") });
        }
        Command::Reconcile(cmd) => return reconcile(*cmd).await,
        Command::Calendar(args) => {
            print!("{}", args.run()?);
        }
        Command::Simulate(args) => {
            let report = sitetally_sensor_sim::run_simulation(args, shutdown_signal()).await?;
            eprintln!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "sent": report.sent, "elapsed_ms": report.elapsed.as_millis() as u64,
                    "stopped": format!("{:?}", report.stopped),
                }))?
            );
        }
        Command::Serve(c) => {
            // Token problems first: they are the operator's to fix before anything else.
            c.args.authenticator()?;
            let OpenedStore { store, memory, .. } = c.storage.open_with_memory()?;
            let broker: Option<Arc<dyn ReadinessProbe>> = match &c.args.kafka_brokers {
                Some(brokers) => Some(Arc::new(BrokerProbe::new(
                    brokers,
                    std::time::Duration::from_secs(2),
                )?)),
                None => None,
            };
            sitetally_api::cli::serve(&c.args, store, memory, broker, shutdown_signal()).await?;
        }
        Command::Sites(c) => {
            let OpenedStore { store, memory, .. } = c.storage.open_with_memory()?;
            print!(
                "{}",
                sitetally_api::cli::sites(&c.args, store, memory).await?
            );
        }
        Command::Counts(c) => {
            let OpenedStore { store, memory, .. } = c.storage.open_with_memory()?;
            print!(
                "{}",
                sitetally_api::cli::counts(&c.args, store, memory).await?
            );
        }
        Command::Forecast(c) => {
            let OpenedStore { store, memory, .. } = c.storage.open_with_memory()?;
            print!(
                "{}",
                sitetally_api::cli::forecast(&c.args, store, memory).await?
            );
        }
        Command::Demo(args) => {
            let format = args.format;
            let summary = sitetally_demo::run(args, shutdown_signal()).await?;
            print!("{}", summary.render(format));
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "sitetally",
                &mut std::io::stdout(),
            );
        }
        Command::Probe { url, timeout } => {
            let tls = sitetally_store::tls::TlsOptions::default().client_config()?;
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .use_preconfigured_tls(tls)
                .build()?;
            let answer = client.get(&url).send().await.map_err(|e| {
                anyhow::anyhow!("{url}: {}", sitetally_store::tls::describe_error(&e))
            })?;
            let status = answer.status();
            if !status.is_success() {
                eprintln!("{url}: HTTP {status}");
                std::process::exit(1);
            }
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        }
    }
    Ok(0)
}

async fn reconcile(mut cmd: ReconcileCommand) -> anyhow::Result<i32> {
    let args = &cmd.reconcile;
    if args.is_offline() && args.import_licences.is_none() && !args.licences_from_clickhouse {
        let recount = cmd.storage.recount_source()?;
        let (output, code) = args.run_offline_recounting(recount).await?;
        print!("{output}");
        return Ok(code);
    }
    // On ClickHouse the reconciler keeps its alert state, alert log, run history and
    // licences in the same database (a restart anywhere sends no duplicate alert); with
    // --data-dir, in the embedded store's file. An explicit --alert-state file wins.
    let OpenedStore {
        store,
        memory,
        licences,
    } = cmd.storage.open_with_memory()?;
    store.migrate().await?;
    let settings = cmd.reconcile.load_settings()?;
    if let Some(file) = &cmd.reconcile.import_licences {
        let n =
            sitetally_reconciler::licence_table::import(licences.as_ref(), file, &settings).await?;
        println!(
            "imported the licences of {n} tenants from {} into the store",
            file.display()
        );
        return Ok(0);
    }
    if cmd.reconcile.licences_from_clickhouse {
        let book = sitetally_reconciler::licence_table::load(licences.as_ref(), &settings).await?;
        tracing::info!(
            tenants = book.tenants.len(),
            "licences loaded from the store"
        );
        cmd.reconcile.preloaded_licences = Some(book);
    }
    let args = &cmd.reconcile;
    if !args.is_offline() && !args.once {
        init_metrics(args.metrics_listen)?;
    }
    let (output, code) = if args.is_offline() {
        args.run_offline().await?
    } else {
        let counts = Arc::new(StoreCounts::new(store));
        args.run_online(
            counts,
            Some(memory.alert_state),
            Some(memory.runs),
            shutdown_signal(),
        )
        .await?
    };
    print!("{output}");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_sql_renders_for_the_given_version_without_a_server() {
        let cli = Cli::try_parse_from([
            "sitetally",
            "migrate",
            "--print-sql",
            "--server-version",
            "18.16",
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate")
        };
        assert_eq!(args.server_version.as_deref(), Some("18.16"));
        assert!(Cli::try_parse_from(["sitetally", "migrate", "--print-sql"]).is_err());
        let render = |v: &str| {
            migration_sql(
                "billing",
                &sitetally_store::clickhouse::Capabilities::for_version(v),
                None,
            )
        };
        let (old, new) = (render("18.16"), render("24.8"));
        assert!(old.contains("-- migration 008_modern_storage\n-- skipped on 18.16"));
        assert!(!old.contains("TTL day"), "{old}");
        assert!(new.contains("CREATE TABLE IF NOT EXISTS billing.sightings"));
        assert!(new.contains("ALTER TABLE billing.site_devices_daily MODIFY SETTING"));
        assert_eq!(new.matches("\n;\n").count(), 7 + 4);
        // --cluster renders the cluster layout: the two big tables gain Distributed ones.
        let cli = Cli::try_parse_from([
            "sitetally",
            "migrate",
            "--cluster",
            "c1",
            "--print-sql",
            "--server-version",
            "24.8",
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate")
        };
        let config = args.clickhouse.config().unwrap();
        assert_eq!(config.cluster.as_deref(), Some("c1"));
        let clustered = migration_sql(
            "billing",
            &sitetally_store::clickhouse::Capabilities::for_version("24.8"),
            config.cluster.as_deref(),
        );
        assert_eq!(clustered.matches("\n;\n").count(), 7 + 2 + 4);
        assert!(clustered.contains("ENGINE = Distributed(c1, billing, sightings_local,"));
    }

    #[test]
    fn clickhouse_flags_are_one_group_and_the_password_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-pass\nignored second line\n").unwrap();
        let cli = Cli::try_parse_from([
            "sitetally",
            "migrate",
            "--clickhouse-url",
            "https://ch.example:8443",
            "--database",
            "billing",
            "--clickhouse-user",
            "sitetally",
            "--clickhouse-password-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate")
        };
        let config = args.clickhouse.config().unwrap();
        assert_eq!(config.url, "https://ch.example:8443");
        assert_eq!(config.database, "billing");
        assert_eq!(config.user.as_deref(), Some("sitetally"));
        assert_eq!(config.password.as_ref().unwrap().expose(), "s3cret-pass");
        let printed = format!("{config:?} {}", serde_json::to_string(&config).unwrap());
        assert!(!printed.contains("s3cret"), "{printed}");

        // The same group on a planner command; a missing password file names itself.
        let cli = Cli::try_parse_from([
            "sitetally",
            "sites",
            "--tenant",
            "t",
            "--clickhouse-password-file",
            "/nonexistent/pw",
        ])
        .unwrap();
        let Command::Sites(c) = cli.command else {
            panic!("not sites")
        };
        let e = c.storage.clickhouse.config().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/pw"), "{e}");
    }

    /// Every flag of every subcommand says what it does, and `--help` shows defaults
    /// (none is hidden), so `--help` is the reference.
    #[test]
    fn every_flag_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
                if arg.is_hide_default_value_set() && !arg.get_default_values().is_empty() {
                    missing.push(format!("{path} --{id} (default hidden)"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "sitetally", &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:#?}");
    }

    #[test]
    fn version_names_the_git_revision_and_completions_and_man_render() {
        use clap::CommandFactory;
        let version = Cli::command().render_version();
        assert!(
            version.contains(env!("CARGO_PKG_VERSION")) && version.contains("(git "),
            "{version}"
        );
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "sitetally",
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        assert!(bash.contains("reconcile") && bash.contains("--clickhouse-url"));
        let mut man = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut man)
            .unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(
            man.contains(".TH sitetally") && man.contains("ingest"),
            "{}",
            &man[..200.min(man.len())]
        );
    }
}
