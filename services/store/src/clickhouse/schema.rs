//! The schema: migrations from `schemas/clickhouse/`, rendered for what the server supports
//! and for the layout, one server or a cluster of shards and replicas.
//!
//! On a cluster (`clickhouse.cluster`) every statement runs `ON CLUSTER`. The two big
//! tables are sharded: each node holds `<table>_local` (Replicated*MergeTree, one
//! ZooKeeper path per shard) and a `Distributed` table of the plain name over them, sharded
//! by [`SHARDING_KEY`], so every query and insert names the same tables on both layouts. The
//! materialized view runs on the local tables, where each insert lands. The small tables
//! (alert state, alert log, runs, licences, the migrations ledger) are replicated whole to
//! every node: one ZooKeeper path for the cluster, so the `replica` macro must be unique
//! across the cluster (e.g. the host name).

/// Migrations in order; `{db}` and the capability placeholders are filled in at apply time.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "sightings",
        include_str!("../../../../schemas/clickhouse/001_sightings.sql"),
    ),
    (
        2,
        "site_devices_daily",
        include_str!("../../../../schemas/clickhouse/002_site_devices_daily.sql"),
    ),
    (
        3,
        "site_devices_daily_mv",
        include_str!("../../../../schemas/clickhouse/003_site_devices_daily_mv.sql"),
    ),
    (
        4,
        "alert_state",
        include_str!("../../../../schemas/clickhouse/004_alert_state.sql"),
    ),
    (
        5,
        "alert_log",
        include_str!("../../../../schemas/clickhouse/005_alert_log.sql"),
    ),
    (
        6,
        "reconciliation_runs",
        include_str!("../../../../schemas/clickhouse/006_reconciliation_runs.sql"),
    ),
    (
        7,
        "licences",
        include_str!("../../../../schemas/clickhouse/007_licences.sql"),
    ),
    (
        8,
        "modern_storage",
        include_str!("../../../../schemas/clickhouse/008_modern_storage.sql"),
    ),
];

/// Migrations that need a server with TTL and non-replicated insert deduplication; on an
/// older server they are skipped and not recorded, so they run once it is upgraded.
pub(super) const MODERN_ONLY: &[u32] = &[8];

/// What the connected server supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub version: String,
    pub ttl: bool,
    pub non_replicated_dedup_window: bool,
}

impl Capabilities {
    /// What a server of `version` ("18.16.1", "24.8") supports, without asking it: TTL
    /// from 19.6, `non_replicated_deduplication_window` from 20.10.
    pub fn for_version(version: &str) -> Self {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        Self {
            version: version.to_string(),
            ttl: (major, minor) >= (19, 6),
            non_replicated_dedup_window: (major, minor) >= (20, 10),
        }
    }

    pub(super) fn modern(&self) -> bool {
        self.ttl && self.non_replicated_dedup_window
    }
}

/// Fills a migration's placeholders for database `db` on a server with `caps`, laid out on
/// `cluster` (None: one server). On a cluster, [`migration_statements`] also rewrites the
/// engines.
pub fn render_sql(sql: &str, db: &str, caps: &Capabilities, cluster: Option<&str>) -> String {
    let ttl = |days: u32| {
        if caps.ttl {
            format!("TTL day + INTERVAL {days} DAY")
        } else {
            String::new()
        }
    };
    // Repeated strings (tenant, site, sensor) of the two big tables, on tables created by
    // a modern server; 18.16 has the type only behind an experimental setting.
    let lc_string = if caps.modern() {
        "LowCardinality(String)"
    } else {
        "String"
    };
    let on_cluster = cluster
        .map(|c| format!(" ON CLUSTER {c}"))
        .unwrap_or_default();
    // Replicated tables deduplicate inserted blocks by default (last 100 per table).
    let non_replicated_dedup = caps.non_replicated_dedup_window && cluster.is_none();
    sql.replace("{db}", db)
        .replace("{local}", if cluster.is_some() { "_local" } else { "" })
        .replace("{on_cluster}", &on_cluster)
        .replace("{lc_string}", lc_string)
        .replace("{sightings_ttl}", &ttl(400))
        .replace("{sketch_ttl}", &ttl(800))
        .replace(
            "{dedup_settings}",
            if non_replicated_dedup {
                "SETTINGS non_replicated_deduplication_window = 1000"
            } else {
                ""
            },
        )
        .replace(
            "{dedup_window}",
            if non_replicated_dedup {
                "non_replicated_deduplication_window = 1000, "
            } else {
                ""
            },
        )
}

/// The statements each migration runs on a server with `caps`, in order, exactly as
/// `migrate` sends them (one statement each; comments kept). A migration the server
/// cannot run has none. `sitetally migrate --print-sql` prints these.
pub fn migration_statements(
    db: &str,
    caps: &Capabilities,
    cluster: Option<&str>,
) -> Vec<(u32, &'static str, Vec<String>)> {
    MIGRATIONS
        .iter()
        .map(|(version, name, sql)| {
            let statements = if MODERN_ONLY.contains(version) && !caps.modern() {
                Vec::new()
            } else {
                render_sql(sql, db, caps, cluster)
                    .split(";\n")
                    .map(|s| s.trim().to_string())
                    .filter(|s| {
                        s.lines()
                            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
                    })
                    .flat_map(|s| match cluster {
                        Some(c) => for_cluster(s, db, c),
                        None => vec![s],
                    })
                    .collect()
            };
            (*version, *name, statements)
        })
        .collect()
}

/// The tables spread over the shards of a cluster; the others have a copy on every node.
pub const SHARDED_TABLES: &[&str] = &["sightings", "site_devices_daily"];

/// How a cluster places a row: all of a site's rows on one shard, so a per-site count never
/// merges across shards and an exact recount of a site reads one shard's rows. Tenant-wide
/// totals merge sketch states (uniqCombinedMerge) or exact sets (uniqExact) across shards,
/// which is right whatever the placement: resharding moves work, never changes a count.
pub const SHARDING_KEY: &str = "cityHash64(tenant, site)";

/// Where a cluster keeps a table's replication log: per shard for the sharded tables, one
/// path for the tables every node holds whole.
fn zookeeper_path(db: &str, table: &str) -> String {
    if SHARDED_TABLES.iter().any(|t| format!("{t}_local") == table) {
        format!("/clickhouse/tables/{{shard}}/{db}/{table}")
    } else {
        format!("/clickhouse/tables/all/{db}/{table}")
    }
}

/// A rendered statement as a cluster runs it: a `CREATE TABLE` gets the Replicated variant
/// of its engine, and a sharded local table is followed by its Distributed table.
fn for_cluster(statement: String, db: &str, cluster: &str) -> Vec<String> {
    let prefix = format!("CREATE TABLE IF NOT EXISTS {db}.");
    let Some(table) = statement.lines().find_map(|l| {
        l.strip_prefix(&prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    }) else {
        return vec![statement];
    };
    // `ENGINE = XMergeTree(args)` -> `ENGINE = ReplicatedXMergeTree('path', '{replica}', args)`
    let Some(engine_at) = statement.find("ENGINE = ").map(|i| i + "ENGINE = ".len()) else {
        return vec![statement];
    };
    let (head, tail) = statement.split_at(engine_at);
    let Some(open) = tail.find('(') else {
        return vec![statement];
    };
    let (engine, args) = (&tail[..open], &tail[open + 1..]);
    let separator = if args.starts_with(')') { "" } else { ", " };
    let path = zookeeper_path(db, &table);
    let mut out = vec![format!(
        "{head}Replicated{engine}('{path}', '{{replica}}'{separator}{args}"
    )];
    if let Some(base) = table.strip_suffix("_local") {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{base} ON CLUSTER {cluster} AS {db}.{table}\n\
             ENGINE = Distributed({cluster}, {db}, {table}, {SHARDING_KEY})"
        ));
    }
    out
}

/// What `migrate` runs before the migrations: the database and the ledger of applied
/// migrations (on a cluster, on every node, the ledger replicated whole).
pub fn bootstrap_statements(db: &str, cluster: Option<&str>) -> Vec<String> {
    let on_cluster = cluster
        .map(|c| format!(" ON CLUSTER {c}"))
        .unwrap_or_default();
    let ledger = format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations{on_cluster} \
         (version UInt32, name String, applied_at DateTime)\nENGINE = MergeTree() ORDER BY version"
    );
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}{on_cluster}")];
    match cluster {
        Some(c) => out.extend(for_cluster(ledger, db, c)),
        None => out.push(ledger),
    }
    out
}

/// A cluster name as the statements embed it: letters, digits and `_`, not first a digit.
pub fn valid_cluster_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_adapts_to_the_server() {
        let old = Capabilities {
            version: "18.16.1".into(),
            ttl: false,
            non_replicated_dedup_window: false,
        };
        let new = Capabilities {
            version: "24.8".into(),
            ttl: true,
            non_replicated_dedup_window: true,
        };
        let sql = MIGRATIONS[0].2;
        let a = render_sql(sql, "t1", &old, None);
        assert!(
            a.contains("CREATE TABLE IF NOT EXISTS t1.sightings")
                && !a.contains("TTL")
                && !a.contains("LowCardinality")
                && !a.contains('{')
        );
        let b = render_sql(sql, "t1", &new, None);
        assert!(
            b.contains("TTL day + INTERVAL 400 DAY")
                && b.contains("non_replicated_deduplication_window")
                && b.contains("tenant        LowCardinality(String),")
        );
    }

    #[test]
    fn the_upgrade_runs_only_where_the_server_has_ttl_and_dedup() {
        let statements = |v: &str| {
            migration_statements("t1", &Capabilities::for_version(v), None)
                .into_iter()
                .find(|(version, ..)| *version == 8)
                .unwrap()
                .2
        };
        assert!(statements("18.16.1").is_empty());
        assert!(statements("20.3").is_empty(), "TTL but no dedup window");
        let modern = statements("24.8");
        assert_eq!(modern.len(), 4, "{modern:?}");
        assert!(modern[0].ends_with("ALTER TABLE t1.sightings MODIFY TTL day + INTERVAL 400 DAY"));
        assert!(modern.iter().all(|s| s
            .lines()
            .filter(|l| !l.starts_with("--"))
            .all(|l| !l.contains(';') && !l.contains('{'))));
        // Every other migration is one statement on every server.
        for v in ["18.16.1", "24.8"] {
            for (version, _, s) in migration_statements("t1", &Capabilities::for_version(v), None) {
                assert!(version == 8 || s.len() == 1, "{version} on {v}: {s:?}");
            }
        }
    }

    fn cluster_statements(version: &str) -> Vec<String> {
        migration_statements("t1", &Capabilities::for_version(version), Some("c1"))
            .into_iter()
            .flat_map(|(.., s)| s)
            .collect()
    }

    #[test]
    fn on_a_cluster_every_table_is_replicated_and_the_big_ones_sharded() {
        for version in ["18.16.1", "24.8"] {
            let statements = cluster_statements(version);
            let creates: Vec<&String> = statements
                .iter()
                .filter(|s| s.contains("CREATE TABLE"))
                .collect();
            for s in &statements {
                assert!(s.contains(" ON CLUSTER c1"), "{version}: {s}");
                assert!(!s.contains("non_replicated"), "{version}: {s}");
            }
            for s in creates.iter().filter(|s| !s.contains("Distributed(")) {
                assert!(s.contains("ENGINE = Replicated"), "{version}: {s}");
            }
            for table in SHARDED_TABLES {
                let local = format!("t1.{table}_local ON CLUSTER c1");
                assert!(creates.iter().any(|s| s.contains(&local)
                    && s.contains(&format!(
                        "'/clickhouse/tables/{{shard}}/t1/{table}_local', '{{replica}}'"
                    ))));
                assert!(creates.iter().any(|s| s.starts_with(&format!(
                    "CREATE TABLE IF NOT EXISTS t1.{table} ON CLUSTER c1 AS t1.{table}_local"
                )) && s.ends_with(&format!(
                    "Distributed(c1, t1, {table}_local, {SHARDING_KEY})"
                ))));
            }
            // A whole copy on every node, engine arguments kept after the replication ones.
            assert!(creates.iter().any(|s| s.contains(
                "ReplicatedReplacingMergeTree('/clickhouse/tables/all/t1/alert_state', '{replica}', saved_ms)"
            )));
            assert!(creates.iter().any(|s| s.contains(
                "ReplicatedMergeTree('/clickhouse/tables/all/t1/reconciliation_runs', '{replica}')"
            )));
            let view = statements
                .iter()
                .find(|s| s.contains("MATERIALIZED VIEW"))
                .unwrap();
            assert!(
                view.contains("TO t1.site_devices_daily_local")
                    && view.contains("FROM t1.sightings_local")
            );
        }
        let modern = cluster_statements("24.8");
        assert!(modern.iter().any(|s| s.contains(
            "ALTER TABLE t1.sightings_local ON CLUSTER c1 MODIFY SETTING ttl_only_drop_parts = 1"
        )));
    }

    #[test]
    fn one_server_has_no_cluster_in_its_statements() {
        for version in ["18.16.1", "24.8"] {
            for (.., statements) in
                migration_statements("t1", &Capabilities::for_version(version), None)
            {
                for s in statements {
                    assert!(
                        !s.contains("_local")
                            && !s.contains("CLUSTER")
                            && !s.contains("Replicated"),
                        "{s}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_bootstrap_follows_the_layout() {
        assert_eq!(
            bootstrap_statements("t1", None)[0],
            "CREATE DATABASE IF NOT EXISTS t1"
        );
        let cluster = bootstrap_statements("t1", Some("c1"));
        assert_eq!(cluster[0], "CREATE DATABASE IF NOT EXISTS t1 ON CLUSTER c1");
        assert!(cluster[1].contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/t1/schema_migrations', '{replica}') ORDER BY version"
        ), "{}", cluster[1]);
        assert_eq!(cluster.len(), 2, "the ledger is not sharded");
    }

    #[test]
    fn cluster_names_are_identifiers() {
        assert!(valid_cluster_name("sitetally") && valid_cluster_name("prod_2"));
        for bad in ["", "2x2", "a b", "c;DROP", "c'"] {
            assert!(!valid_cluster_name(bad), "{bad}");
        }
    }
}
