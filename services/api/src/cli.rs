//! Flags of `sitetally serve`, `sitetally sites`, `sitetally counts` and `sitetally
//! forecast`, and the functions the binary calls with an opened store. The CLI answers
//! through the same [`Planner`] as the HTTP API (no HTTP involved).

use crate::auth::{AuthConfig, Authenticator};
use crate::guard::RateLimit;
use crate::http::HttpLimits;
use crate::model::{Granularity, SitesTable};
use crate::planner::{CountsRequest, ForecastRequest, Page, Planner, MAX_PAGE};
use crate::server::ConnectionLimits;
use crate::table::{to_csv, to_table, Tabular};
use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sitetally_core::readiness::ReadinessProbe;
use sitetally_licensing::licence::LicenceError;
use sitetally_licensing::{LicenceBook, Settings};
use sitetally_store::history::{JsonFileStateStore, ReconcilerMemory};
use sitetally_store::Store;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Licences, settings and clock shared by every planner command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlannerArgs {
    /// Licence file (TOML or JSON, the reconciler's format); without it every site is
    /// unlicensed. See services/reconciler/examples/licences.toml.
    #[arg(long, value_name = "FILE", env = "SITETALLY_LICENCES")]
    pub licences: Option<PathBuf>,
    /// Reconciler settings (TOML): billing windows, near-limit ratio, error band...
    #[arg(long, value_name = "FILE", env = "SITETALLY_RECONCILER_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// The reconciler's alert state file (its --alert-state): previous statuses for
    /// hysteresis and the time each status was entered.
    #[arg(long, value_name = "FILE")]
    pub alert_state: Option<PathBuf>,
    /// Answer as of this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub now: Option<DateTime<Utc>>,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected RFC 3339 (2025-06-01T00:00:00Z): {e}"))
}

impl PlannerArgs {
    /// The planner over `store`, with the reconciler's alert state, alert log and
    /// decisions from `memory` (its alert state unless `--alert-state` names a file), so
    /// the CLI answers exactly as `serve` does over the same store.
    pub fn planner_with(
        &self,
        store: Arc<dyn Store>,
        memory: ReconcilerMemory,
    ) -> anyhow::Result<Planner> {
        let mut planner = self.planner(store)?;
        if self.alert_state.is_none() {
            planner = planner.with_alert_state(memory.alert_state);
        }
        Ok(planner
            .with_alert_log(memory.alert_log)
            .with_decision_history(memory.decisions))
    }

    /// Loads settings and licences and builds the planner over `store`.
    pub fn planner(&self, store: Arc<dyn Store>) -> anyhow::Result<Planner> {
        let settings = match &self.settings {
            None => Settings::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                Settings::from_toml_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
        };
        let licences = match &self.licences {
            None => LicenceBook::default(),
            Some(p) => {
                let file = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| LicenceError::Io {
                    file: file.clone(),
                    source,
                })?;
                LicenceBook::parse(&file, &text, &settings)?
            }
        };
        let mut planner = Planner::new(store, licences, settings);
        if let Some(p) = &self.alert_state {
            planner = planner.with_alert_state(Arc::new(JsonFileStateStore::new(p)));
        }
        if let Some(now) = self.now {
            planner = planner.with_now(now);
        }
        Ok(planner)
    }
}

/// Serve the HTTP API, its OpenAPI document (/openapi.json) and the dashboard (/).
///
/// Tokens: a TOML file (--tokens) with `admin_tokens = [...]` and a `[tenant_tokens]`
/// table (tenant = [tokens]), and/or SITETALLY_API_ADMIN_TOKEN and
/// SITETALLY_API_TENANT_TOKENS="tenant=token,...". Tokens are at least 16 characters.
///
/// Example: sitetally serve --data-dir ./data --licences licences.toml --tokens tokens.toml
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "SITETALLY_API_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Token file (TOML); see above.
    #[arg(long, value_name = "FILE", env = "SITETALLY_API_TOKENS_FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve without authentication (every caller is admin). Refused unless --listen is
    /// a loopback address.
    #[arg(long)]
    pub no_auth: bool,
    /// Longest time one request may take.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Longest wait for a request's headers, on a new connection and between the
    /// requests of a kept-alive one; then the connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// On SIGTERM/Ctrl-C, how long open requests may take to finish before their
    /// connections are closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// API requests per second per token (anonymous callers share one budget); /healthz,
    /// /readyz and /metrics are not limited.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_limit: u32,
    /// Requests a token may send at once before --rate-limit applies.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_burst: u32,
    /// With --no-auth, a host name (without port) the server answers to besides
    /// localhost, 127.0.0.1 and [::1]; others get 403 (DNS-rebinding defence). Repeatable.
    #[arg(long, value_name = "HOST")]
    pub allowed_host: Vec<String>,
    /// Kafka bootstrap servers whose reachability /readyz also reports (the API itself
    /// reads only the store; set this where it runs beside ingest).
    #[arg(long, value_name = "HOST:PORT,...", env = "SITETALLY_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

impl ServeArgs {
    /// The authenticator from --tokens, the environment, or --no-auth.
    pub fn authenticator(&self) -> anyhow::Result<Authenticator> {
        let mut cfg = match &self.tokens {
            Some(p) => AuthConfig::from_file(p)?,
            None => AuthConfig::default(),
        };
        cfg = cfg.with_env()?;
        if self.no_auth {
            anyhow::ensure!(
                self.listen.ip().is_loopback(),
                "--no-auth is only allowed on a loopback address, not {}",
                self.listen
            );
            anyhow::ensure!(
                cfg.is_empty(),
                "--no-auth together with configured tokens: drop one"
            );
            tracing::warn!("authentication disabled (--no-auth): every caller is admin");
            return Ok(Authenticator::disabled());
        }
        anyhow::ensure!(
            !cfg.is_empty(),
            "no API tokens configured: pass --tokens FILE or set SITETALLY_API_ADMIN_TOKEN / \
             SITETALLY_API_TENANT_TOKENS (or --no-auth on a loopback address)"
        );
        Ok(cfg.build()?)
    }
}

/// `sitetally serve`: serves until `shutdown`. Installs the global Prometheus recorder
/// unless one is installed already (then `/metrics` is empty).
/// `memory`: where the reconciler keeps its alert log (for `/alerts`) and its alert state
/// (used unless `--alert-state` names a file). `broker`: the pipeline's broker, checked by
/// `/readyz` (the binary builds it from `--kafka-brokers`).
pub async fn serve<F>(
    args: &ServeArgs,
    store: Arc<dyn Store>,
    memory: ReconcilerMemory,
    broker: Option<Arc<dyn ReadinessProbe>>,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let auth = args.authenticator()?;
    store.migrate().await?;
    let planner = args.planner.planner_with(store, memory)?;
    let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(sitetally_core::LATENCY_BUCKETS_SECONDS)
        .map_err(|e| anyhow::anyhow!("metrics buckets: {e}"))?;
    let metrics = match builder.install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            None
        }
    };
    crate::metrics::describe();
    let config = crate::ServeConfig {
        listen: args.listen,
        planner,
        auth,
        limits: HttpLimits {
            request_timeout: args.request_timeout,
            rate: RateLimit {
                per_second: args.rate_limit,
                burst: args.rate_burst,
            },
            allowed_hosts: args.allowed_host.clone(),
            ..Default::default()
        },
        connections: ConnectionLimits {
            max_connections: args.max_connections as usize,
            header_read_timeout: args.header_read_timeout,
            shutdown_timeout: args.shutdown_timeout,
        },
        metrics,
        broker,
    };
    crate::run(config, shutdown, |_| {}).await
}

/// Output format of the planner commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CliFormat {
    /// Aligned text table.
    #[default]
    Table,
    Json,
    Csv,
}

fn render<T: Serialize + Tabular>(format: CliFormat, body: &T, table: &dyn Tabular) -> String {
    match format {
        CliFormat::Table => to_table(table),
        CliFormat::Json => {
            let mut s = serde_json::to_string_pretty(body).expect("answers serialize");
            s.push('\n');
            s
        }
        CliFormat::Csv => to_csv(body),
    }
}

/// Sites of a tenant: devices over the billing window, licensed tier, utilisation, status.
///
/// Example: sitetally sites --tenant contoso --licences licences.toml --data-dir ./data
#[derive(Debug, Clone, clap::Args)]
pub struct SitesArgs {
    /// Tenant id, as in the licence file and the events.
    #[arg(long)]
    pub tenant: String,
    /// Output: an aligned table, JSON, or CSV (spreadsheet-safe cells).
    #[arg(long, value_enum, default_value_t = CliFormat::Table)]
    pub format: CliFormat,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// Distinct devices of one site per day, week or month, by category.
///
/// Example: sitetally counts --tenant contoso --site plant-north --from 2025-05-01 --granularity week
#[derive(Debug, Clone, clap::Args)]
pub struct CountsArgs {
    /// Tenant id, as in the licence file and the events.
    #[arg(long)]
    pub tenant: String,
    /// Site id within the tenant.
    #[arg(long)]
    pub site: String,
    /// First day (YYYY-MM-DD); default 29 days before --to.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD); default today (UTC). At most 366 days.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Period of each count: a day, an ISO week or a calendar month (a device seen on
    /// several days of a period counts once).
    #[arg(long, value_enum, default_value_t = Granularity::Day)]
    pub granularity: Granularity,
    /// Output: an aligned table, JSON, or CSV (spreadsheet-safe cells).
    #[arg(long, value_enum, default_value_t = CliFormat::Table)]
    pub format: CliFormat,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// A site's trend and the projected date it crosses its next boundary.
///
/// Example: sitetally forecast --tenant contoso --site plant-north --licences licences.toml
#[derive(Debug, Clone, clap::Args)]
pub struct ForecastArgs {
    /// Tenant id, as in the licence file and the events.
    #[arg(long)]
    pub tenant: String,
    /// Site id within the tenant.
    #[arg(long)]
    pub site: String,
    /// Days of history to fit (7 to 366).
    #[arg(long, default_value_t = crate::planner::DEFAULT_HISTORY_DAYS)]
    pub history_days: u32,
    /// Days ahead to look (1 to 730).
    #[arg(long, default_value_t = crate::planner::DEFAULT_HORIZON_DAYS)]
    pub horizon_days: u32,
    /// Output: an aligned table, JSON, or CSV (spreadsheet-safe cells).
    #[arg(long, value_enum, default_value_t = CliFormat::Table)]
    pub format: CliFormat,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// `sitetally sites`: the rendered output.
pub async fn sites(
    args: &SitesArgs,
    store: Arc<dyn Store>,
    memory: ReconcilerMemory,
) -> anyhow::Result<String> {
    store.migrate().await?;
    let planner = args.planner.planner_with(store, memory)?;
    let r = planner
        .sites(
            &args.tenant,
            Page {
                offset: 0,
                limit: MAX_PAGE,
            },
        )
        .await?;
    let mut out = render(args.format, &r, &SitesTable(&r));
    if args.format == CliFormat::Table && r.total > r.sites.len() {
        out.push_str(&format!("({} of {} sites shown)\n", r.sites.len(), r.total));
    }
    Ok(out)
}

/// `sitetally counts`: the rendered output.
pub async fn counts(
    args: &CountsArgs,
    store: Arc<dyn Store>,
    memory: ReconcilerMemory,
) -> anyhow::Result<String> {
    store.migrate().await?;
    let planner = args.planner.planner_with(store, memory)?;
    let req = CountsRequest {
        from: args.from,
        to: args.to,
        granularity: args.granularity,
    };
    let r = planner.counts(&args.tenant, &args.site, req).await?;
    Ok(render(args.format, &r, &r))
}

/// `sitetally forecast`: the rendered output.
pub async fn forecast(
    args: &ForecastArgs,
    store: Arc<dyn Store>,
    memory: ReconcilerMemory,
) -> anyhow::Result<String> {
    store.migrate().await?;
    let planner = args.planner.planner_with(store, memory)?;
    let req = ForecastRequest {
        history_days: Some(args.history_days),
        horizon_days: Some(args.horizon_days),
    };
    let r = planner.forecast(&args.tenant, &args.site, req).await?;
    if args.format != CliFormat::Table {
        return Ok(render(args.format, &r, &r));
    }
    let c = &r.current;
    let mut out = format!(
        "{}/{} as of {}: {} devices ({}{}), licensed {}, {}\n",
        r.tenant,
        r.site,
        r.as_of,
        c.devices,
        c.method,
        if c.error_bound > 0 {
            format!(" ±{}", c.error_bound)
        } else {
            String::new()
        },
        c.licensed_tier.as_deref().unwrap_or("-"),
        c.status
    );
    if let Some(t) = &r.trend {
        out.push_str(&format!(
            "trend: {:+.2} devices/day over {} days (r² {:.2}, residual σ {:.1})\n",
            t.slope_per_day, t.points, t.r_squared, t.residual_sigma
        ));
    }
    if let (Some(b), Some(kind)) = (&r.target, &r.target_kind) {
        out.push_str(&format!(
            "next boundary: {} devices ({}, {})\n",
            b.devices,
            b.label,
            kind.replace('_', " ")
        ));
    }
    out.push_str(&format!("outlook: {} — {}\n", r.outlook, r.summary));
    Ok(out)
}
