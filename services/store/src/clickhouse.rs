//! ClickHouse storage: migrations from `schemas/clickhouse/`, batched RowBinary inserts,
//! and the count queries. Runs on Debian's ClickHouse 18.16 (the test rig) and on current
//! releases: capabilities are probed at start-up and the migrations adapt (TTL and
//! non-replicated insert deduplication only where the server has them).

mod history;
mod inspect;
pub mod queries;
mod schema;

pub use schema::{
    bootstrap_statements, migration_statements, render_sql, valid_cluster_name, Capabilities,
    MIGRATIONS, SHARDED_TABLES, SHARDING_KEY,
};

use queries::Query;

use crate::tls::TlsOptions;
use crate::{CountFilter, DailyCount, DayRange, SiteCount, Store, StoreError};
use serde::Deserialize;
use sitetally_core::secret::Secret;
use sitetally_core::{Count, DeviceCategory, Sighting};
use std::time::Duration;

/// `uniqCombined` counts exactly (up to 32-bit hash collisions) while its state is a
/// hash set, i.e. up to 8,192 distinct values; measured on 18.16 with 50 seeds per size.
pub const SKETCH_EXACT_LIMIT: u64 = 8192;
/// Relative one-sigma error of `uniqCombined` above that: measured 0.18–0.19% at 10k and
/// 20k devices (50 seeds each) on 18.16; rounded up.
pub const SKETCH_RELATIVE_SIGMA: f64 = 0.003;

/// Connection settings (a section of each service's config).
#[derive(Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP endpoint of the server. A password inside it (`https://user:pw@host`) prints
    /// as `***`.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// Database holding sitetally's tables; created by `migrate`.
    pub database: String,
    pub user: Option<String>,
    /// Never printed: `Debug` and `--print-config` show `***` or nothing.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    /// Per-request timeout ("10s", "500ms", "2m").
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// For `https://` URLs: a private CA and a client certificate ([`TlsOptions`]).
    pub tls: TlsOptions,
    /// The cluster (a name in the servers' `remote_servers`) the tables are spread over:
    /// `migrate` creates them ON CLUSTER, sharded and replicated (see [`schema`]), and
    /// inserts wait until every shard has its rows. None: one server.
    pub cluster: Option<String>,
}

fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&sitetally_core::secret::redact_url(url))
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &sitetally_core::secret::redact_url(&self.url))
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "sitetally".into(),
            user: None,
            password: None,
            timeout: Duration::from_secs(10),
            tls: TlsOptions::default(),
            cluster: None,
        }
    }
}

#[derive(clickhouse::Row, serde::Serialize)]
struct SightingRow<'a> {
    tenant: &'a str,
    site: &'a str,
    day: u16,
    device_key: u64,
    device_label: &'a str,
    category: i8,
    agent_managed: u8,
    sensor: &'a str,
    seen_at: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct CountRow {
    tenant: String,
    site: String,
    count: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct DailyRow {
    day: u16,
    category: i8,
    count: u64,
}

pub struct ClickHouseStore {
    /// No default database: migrations create it.
    client: clickhouse::Client,
    /// Default database set: inserts name bare tables (the crate quotes the whole name).
    data_client: clickhouse::Client,
    database: String,
    /// Bound of each count query, insert and ping (`clickhouse.timeout`).
    timeout: Duration,
    /// `clickhouse.cluster`: the cluster the tables are laid out on.
    cluster: Option<String>,
}

fn classify(e: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error as E;
    match e {
        // The whole chain, so a failed TLS handshake reads "TLS: ... UnknownIssuer".
        E::Network(_) => StoreError::Unavailable(crate::tls::describe_error(&e)),
        E::TimedOut => StoreError::Unavailable(e.to_string()),
        // Server-side errors come back as BadResponse: a few codes are transient.
        E::BadResponse(ref msg)
            if [
                "TOO_MANY_PARTS",
                "TIMEOUT",
                "MEMORY_LIMIT",
                "Too many parts",
                "Timeout",
                "NETWORK_ERROR",
                "Connection refused",
            ]
            .iter()
            .any(|m| msg.contains(m)) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Rejected(other.to_string()),
    }
}

/// A `uniqCombined` result as a [`Count`]: exact up to its exact threshold.
fn sketch_count(count: u64) -> Count {
    if count <= SKETCH_EXACT_LIMIT {
        Count::exact(count)
    } else {
        Count::estimated(count, count as f64 * SKETCH_RELATIVE_SIGMA)
    }
}

impl ClickHouseStore {
    /// Bounds one request by the configured timeout: a server that stops answering is
    /// unavailable (retryable) after `clickhouse.timeout`, never a hang.
    async fn bounded<T>(
        &self,
        what: &str,
        request: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "{what}: ClickHouse did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// A store over `config`'s server; `https://` URLs use rustls with `config.tls`.
    /// Fails only on an unusable TLS setting (a CA or key file that cannot be read).
    pub fn new(config: &ClickHouseConfig) -> Result<Self, StoreError> {
        let tls = config
            .tls
            .client_config()
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // Idle sockets closed before the server's keep-alive (3 s on old servers) does.
        let http_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_millis(2_500))
                .build(connector);
        let mut client = clickhouse::Client::with_http_client(http_client)
            .with_url(&config.url)
            // 18.16 lacks RowBinaryWithNamesAndTypes, which validation needs.
            .with_validation(false);
        if let Some(u) = &config.user {
            client = client.with_user(u);
        }
        if let Some(p) = &config.password {
            client = client.with_password(p.expose());
        }
        if let Some(name) = &config.cluster {
            if !valid_cluster_name(name) {
                return Err(StoreError::Rejected(format!(
                    "clickhouse.cluster {name:?} is not a cluster name: use the name under \
                     <remote_servers> in the servers' config (letters, digits, _)"
                )));
            }
        }
        let mut data_client = client.clone().with_database(&config.database);
        if config.cluster.is_some() {
            // An insert into a Distributed table returns once every shard has its rows,
            // so an acknowledged batch is stored, never only queued on the node we reached.
            data_client = data_client.with_setting("insert_distributed_sync", "1");
        }
        Ok(Self {
            client,
            data_client,
            database: config.database.clone(),
            timeout: config.timeout,
            cluster: config.cluster.clone(),
        })
    }

    fn db(&self) -> &str {
        &self.database
    }

    /// The database every table lives in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The underlying client (for the reconciler's and API's own tables).
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    pub async fn capabilities(&self) -> Result<Capabilities, StoreError> {
        let version: String = self
            .client
            .query(&Query::Version.sql("", &CountFilter::all()))
            .fetch_one()
            .await
            .map_err(classify)?;
        let dedup: u64 = self
            .client
            .query(&Query::DedupProbe.sql("", &CountFilter::all()))
            .fetch_one()
            .await
            .map_err(classify)?;
        Ok(Capabilities {
            non_replicated_dedup_window: dedup > 0,
            ..Capabilities::for_version(&version)
        })
    }

    /// Fills a migration's placeholders for this server and layout.
    pub fn render(&self, sql: &str, caps: &Capabilities) -> String {
        render_sql(sql, self.db(), caps, self.cluster.as_deref())
    }

    /// Refuses to migrate a database laid out otherwise than configured: a cluster's
    /// `sightings` is Distributed, one server's is not, and neither converts in place.
    /// Returns whether the database has its ledger of applied migrations.
    async fn check_layout(&self) -> Result<bool, StoreError> {
        let tables: Vec<(String, String)> = self
            .client
            .query(
                "SELECT name, engine FROM system.tables WHERE database = ? \
                 AND name IN ('sightings', 'schema_migrations')",
            )
            .bind(self.db())
            .fetch_all()
            .await
            .map_err(classify)?;
        let has_ledger = tables.iter().any(|(name, _)| name == "schema_migrations");
        let Some((_, engine)) = tables.iter().find(|(name, _)| name == "sightings") else {
            return Ok(has_ledger);
        };
        let db = self.db();
        match (engine == "Distributed", &self.cluster) {
            (true, None) => Err(StoreError::Rejected(format!(
                "database {db} is laid out on a cluster (its sightings table is Distributed): \
                 set clickhouse.cluster (--clickhouse-cluster) to its cluster"
            ))),
            (false, Some(cluster)) => Err(StoreError::Rejected(format!(
                "database {db} is laid out on one server, not on cluster {cluster}: migrate a \
                 new database with --clickhouse-cluster and copy the data (INSERT SELECT), \
                 or drop --clickhouse-cluster"
            ))),
            _ => Ok(has_ledger),
        }
    }

    async fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.client.query(sql).execute().await.map_err(classify)
    }
}

#[async_trait::async_trait]
impl Store for ClickHouseStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let caps = self.capabilities().await?;
        let db = self.db();
        let cluster = self.cluster.as_deref();
        let has_ledger = self.check_layout().await?;
        let applied: Vec<u32> = if has_ledger {
            self.client
                .query(&format!("SELECT version FROM {db}.schema_migrations"))
                .fetch_all()
                .await
                .map_err(classify)?
        } else {
            Vec::new()
        };
        let pending = migration_statements(db, &caps, cluster)
            .into_iter()
            .any(|(v, _, statements)| !applied.contains(&v) && !statements.is_empty());
        if has_ledger && !pending {
            // No DDL at all when up to date: ON CLUSTER DDL waits for every node, so an
            // ingest restarted while a replica is down would otherwise wait for it.
            return Ok(Vec::new());
        }
        for statement in bootstrap_statements(db, cluster) {
            self.exec(&statement).await?;
        }
        let mut done = Vec::new();
        for (version, name, statements) in migration_statements(db, &caps, cluster) {
            if applied.contains(&version) {
                continue;
            }
            if statements.is_empty() {
                tracing::info!(
                    version,
                    name,
                    server = %caps.version,
                    "migration skipped: the server lacks TTL or non-replicated insert \
                     deduplication; it runs once the server is upgraded"
                );
                continue;
            }
            tracing::info!(version, name, server = %caps.version, cluster, "applying ClickHouse migration");
            for statement in &statements {
                self.exec(statement).await?;
            }
            self.client
                .query(&format!("INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES (?, ?, now())"))
                .bind(version)
                .bind(name)
                .execute()
                .await
                .map_err(classify)?;
            done.push(format!("{version:03}_{name}"));
        }
        Ok(done)
    }

    async fn write_sightings(&self, rows: &[Sighting]) -> Result<(), StoreError> {
        self.bounded("insert of sightings", async move {
            if rows.is_empty() {
                return Ok(());
            }
            let mut insert = self
                .data_client
                .insert::<SightingRow>("sightings")
                .await
                .map_err(classify)?;
            for r in rows {
                let row = SightingRow {
                    tenant: &r.tenant,
                    site: &r.site,
                    day: r.day,
                    device_key: r.device_key,
                    device_label: &r.device_label,
                    category: r.category.code(),
                    agent_managed: r.agent_managed as u8,
                    sensor: &r.sensor,
                    seen_at: (r.seen_at_ms / 1000).clamp(0, u32::MAX as i64) as u32,
                };
                insert.write(&row).await.map_err(classify)?;
            }
            insert.end().await.map_err(classify)
        })
        .await
    }

    async fn site_counts(
        &self,
        tenant: Option<&str>,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Vec<SiteCount>, StoreError> {
        self.bounded("site counts", async move {
            let sql = Query::SiteCounts {
                by_tenant: tenant.is_some(),
            }
            .sql(self.db(), filter);
            let ((from, to), (edge, since)) = (days.whole_days(), days.boundary_seconds());
            let mut q = self.client.query(&sql).bind(from).bind(to);
            if let Some(t) = tenant {
                q = q.bind(t);
            }
            q = q.bind(edge).bind(since);
            if let Some(t) = tenant {
                q = q.bind(t);
            }
            let rows: Vec<CountRow> = q.fetch_all().await.map_err(classify)?;
            Ok(rows
                .into_iter()
                .map(|r| SiteCount {
                    tenant: r.tenant,
                    site: r.site,
                    count: sketch_count(r.count),
                })
                .collect())
        })
        .await
    }

    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<u64, StoreError> {
        self.bounded("exact site count", async move {
            let sql = Query::ExactSiteCount.sql(self.db(), filter);
            let ((from, to), (edge, since)) = (days.whole_days(), days.boundary_seconds());
            self.client
                .query(&sql)
                .bind(tenant)
                .bind(site)
                .bind(from)
                .bind(to)
                .bind(edge)
                .bind(since)
                .fetch_one()
                .await
                .map_err(classify)
        })
        .await
    }

    async fn tenant_count(
        &self,
        tenant: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Option<Count>, StoreError> {
        self.bounded("tenant count", async move {
            let sql = Query::TenantCount.sql(self.db(), filter);
            let ((from, to), (edge, since)) = (days.whole_days(), days.boundary_seconds());
            let count: u64 = self
                .client
                .query(&sql)
                .bind(tenant)
                .bind(from)
                .bind(to)
                .bind(tenant)
                .bind(edge)
                .bind(since)
                .fetch_one()
                .await
                .map_err(classify)?;
            Ok(Some(sketch_count(count)))
        })
        .await
    }

    async fn exact_tenant_count(
        &self,
        tenant: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Option<u64>, StoreError> {
        self.bounded("exact tenant count", async move {
            let sql = Query::ExactTenantCount.sql(self.db(), filter);
            let ((from, to), (edge, since)) = (days.whole_days(), days.boundary_seconds());
            let count = self
                .client
                .query(&sql)
                .bind(tenant)
                .bind(from)
                .bind(to)
                .bind(edge)
                .bind(since)
                .fetch_one()
                .await
                .map_err(classify)?;
            Ok(Some(count))
        })
        .await
    }

    async fn daily_counts(
        &self,
        tenant: &str,
        site: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Vec<DailyCount>, StoreError> {
        self.bounded("daily counts", async move {
            let sql = Query::DailyCounts.sql(self.db(), filter);
            let rows: Vec<DailyRow> = self
                .client
                .query(&sql)
                .bind(tenant)
                .bind(site)
                .bind(days.from)
                .bind(days.to)
                .fetch_all()
                .await
                .map_err(classify)?;
            Ok(rows
                .into_iter()
                .map(|r| DailyCount {
                    day: r.day,
                    category: DeviceCategory::from_code(r.category).unwrap_or_default(),
                    count: sketch_count(r.count),
                })
                .collect())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded("ping", async move {
            self.exec(&Query::Ping.sql("", &CountFilter::all())).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_server_that_never_answers_times_out_as_unavailable() {
        // Accepts connections and never answers: without the bound, every query hangs.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let store = ClickHouseStore::new(&ClickHouseConfig {
            url: format!("http://{}", silent.local_addr().unwrap()),
            timeout: Duration::from_millis(200),
            ..Default::default()
        })
        .expect("TLS settings of a test store");
        let e = store.ping().await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("did not answer within 200ms"), "{e}");
        let e = store
            .site_counts(
                None,
                DayRange {
                    from: 0,
                    to: 1,
                    since_ms: None,
                },
                &CountFilter::all(),
            )
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e}");
        drop(silent);
    }

    use super::*;

    #[test]
    fn durations_parse() {
        let timeout = |s: &str| {
            serde_json::from_str::<ClickHouseConfig>(&format!(r#"{{"timeout":"{s}"}}"#))
                .map(|c| c.timeout)
        };
        assert_eq!(timeout("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(timeout("2m").unwrap(), Duration::from_secs(120));
        assert!(timeout("ten").is_err());
        // What serializes (e.g. `sitetally ingest --print-config`) loads back.
        let c = ClickHouseConfig::default();
        let back: ClickHouseConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back.timeout, c.timeout);
    }
}
