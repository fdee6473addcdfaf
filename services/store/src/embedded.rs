//! Embedded SQLite store for `sitetally demo` (issue 4): the same [`Store`] trait as
//! ClickHouse, in one file `sitetally.sqlite` inside a data directory, so a second run of
//! the demo continues where the first stopped.
//!
//! It mirrors the ClickHouse layout:
//! - `sightings`: one row per (tenant, site, day, device_key), keeping the day's latest
//!   `seen_at`; a retried batch or a redelivery changes nothing (ClickHouse:
//!   ReplacingMergeTree + insert deduplication; the window's filter matches any row);
//! - `site_devices_daily`: one serialized [`SiteSketch`] per (tenant, site, day, category,
//!   agent_managed), updated in the same transaction with the keys that were new in
//!   `sightings` (ClickHouse: the materialized view into an AggregatingMergeTree).
//!
//! Sketch rows carry a revision number, bumped on every update. A small LRU cache holds
//! deserialized sketches by (row id, revision), so hot sketches are not re-parsed on every
//! batch, and a sketch rewritten by another connection to the same file is never served
//! stale: its revision no longer matches.
//!
//! - the reconciler's memory (alert state, alert log, latest run, licences): see
//!   [`history`].
//!
//! SQLite is synchronous: every call runs on Tokio's blocking pool, with the connection
//! behind a mutex.

mod history;

use crate::clickhouse::SKETCH_EXACT_LIMIT;
use crate::{CountFilter, DailyCount, DayRange, SiteCount, Store, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use sitetally_core::sketch::SiteSketch;
use sitetally_core::{Count, DeviceCategory, Sighting};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "sitetally.sqlite";

/// Migrations in order: (version, name, SQL). Each is applied in one transaction together
/// with its `schema_migrations` row, so a crash never leaves half a migration recorded.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "sightings",
        // WITHOUT ROWID: the primary key is the table, so exact counts over a site and a
        // day range read one contiguous key range.
        "CREATE TABLE sightings (
            tenant        TEXT    NOT NULL,
            site          TEXT    NOT NULL,
            day           INTEGER NOT NULL,
            device_key    INTEGER NOT NULL,
            device_label  TEXT    NOT NULL,
            category      INTEGER NOT NULL,
            agent_managed INTEGER NOT NULL,
            sensor        TEXT    NOT NULL,
            seen_at_ms    INTEGER NOT NULL,
            PRIMARY KEY (tenant, site, day, device_key)
        ) WITHOUT ROWID;",
    ),
    (
        2,
        "site_devices_daily",
        "CREATE TABLE site_devices_daily (
            id            INTEGER PRIMARY KEY,
            tenant        TEXT    NOT NULL,
            site          TEXT    NOT NULL,
            day           INTEGER NOT NULL,
            category      INTEGER NOT NULL,
            agent_managed INTEGER NOT NULL,
            rev           INTEGER NOT NULL,
            sketch        BLOB    NOT NULL,
            UNIQUE (tenant, site, day, category, agent_managed)
        );
        CREATE INDEX site_devices_daily_day ON site_devices_daily (day);",
    ),
    (3, "reconciler_memory", history::MIGRATION),
];

/// How long a statement waits for another connection's write lock before failing with
/// [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Deserialized sketches kept in memory. A dense sketch is ~12 KiB in memory, so this
/// bounds the cache to roughly 12 MiB.
const CACHE_CAPACITY: usize = 1024;

/// SQLite store in a data directory; see the module documentation.
pub struct EmbeddedStore {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish()
    }
}

struct Inner {
    conn: Connection,
    cache: SketchCache,
}

/// Identifies one sketch row: (tenant, site, day, category code, agent_managed).
type SketchKey = (String, String, u16, i8, bool);

impl EmbeddedStore {
    /// Opens the store a `sitetally demo` (or ingest) already wrote in `dir`; a mistyped
    /// directory is an error naming it, not a new empty store reporting ready.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        if !dir.join(DB_FILE).is_file() {
            return Err(StoreError::Rejected(format!(
                "--data-dir {}: no sitetally data there ({DB_FILE} not found); check the path, \
                 or create it with `sitetally demo --data-dir {}`",
                dir.display(),
                dir.display()
            )));
        }
        Self::open(dir)
    }

    /// Opens (creating if needed) `dir/sitetally.sqlite` in WAL mode. Call
    /// [`Store::migrate`] before writing. Blocks briefly on file I/O: call it at start-up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(classify)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Rejected(format!(
                "{} refused WAL mode (journal_mode = {mode})",
                path.display()
            )));
        }
        // The trait promises that a successful write is durable: fsync every commit
        // (NORMAL would only survive process crashes, not power loss).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(classify)?;
        tracing::info!(path = %path.display(), "opened embedded store");
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                conn,
                cache: SketchCache::new(CACHE_CAPACITY),
            })),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on Tokio's blocking pool.
    async fn with_inner<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no open transaction behind (rusqlite
            // rolls back on drop), so a poisoned lock is still a usable connection.
            let mut guard = inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| {
            if e.is_cancelled() {
                StoreError::Unavailable(format!("embedded store task cancelled: {e}"))
            } else {
                StoreError::Rejected(format!("embedded store task panicked: {e}"))
            }
        })?
    }
}

/// Busy, locked and I/O conditions may pass; everything else is a bug or bad data.
fn classify(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DiskFull
                    | ErrorCode::CannotOpen
                    | ErrorCode::OutOfMemory
                    | ErrorCode::FileLockingProtocolFailed
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Rejected(e.to_string()),
    }
}

/// ` AND category IN (?, …) AND agent_managed = 0` with its parameters: only the number of
/// placeholders is spliced, never a value.
fn filter_sql(filter: &CountFilter, params: &mut Vec<Value>) -> String {
    let mut sql = String::new();
    if !filter.categories.is_empty() {
        let marks = vec!["?"; filter.categories.len()].join(", ");
        sql.push_str(&format!(" AND category IN ({marks})"));
        params.extend(
            filter
                .categories
                .iter()
                .map(|c| Value::Integer(i64::from(c.code()))),
        );
    }
    if !filter.include_agent_managed {
        sql.push_str(" AND agent_managed = 0");
    }
    sql
}

/// LRU cache of deserialized sketches by row id, valid only for the revision it was read at.
struct SketchCache {
    entries: HashMap<i64, CachedSketch>,
    capacity: usize,
    clock: u64,
}

struct CachedSketch {
    rev: i64,
    sketch: SiteSketch,
    last_used: u64,
}

impl SketchCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            clock: 0,
        }
    }

    /// Removes and returns the sketch of row `id` if it is cached at revision `rev`.
    fn take(&mut self, id: i64, rev: i64) -> Option<SiteSketch> {
        match self.entries.remove(&id) {
            Some(c) if c.rev == rev => Some(c.sketch),
            _ => None,
        }
    }

    fn put(&mut self, id: i64, rev: i64, sketch: SiteSketch) {
        self.clock += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            // A linear scan on eviction only: cheap at this capacity, and no extra crate.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(&id, _)| id)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            id,
            CachedSketch {
                rev,
                sketch,
                last_used: self.clock,
            },
        );
    }
}

/// Loads the sketch of row `id` at `rev`, from the cache or the database. The caller
/// puts it back into the cache when done (see [`SketchCache::put`]).
fn load_sketch(
    conn: &Connection,
    cache: &mut SketchCache,
    id: i64,
    rev: i64,
) -> Result<SiteSketch, StoreError> {
    if let Some(s) = cache.take(id, rev) {
        return Ok(s);
    }
    let bytes: Vec<u8> = conn
        .prepare_cached("SELECT sketch FROM site_devices_daily WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)))
        .map_err(classify)?;
    SiteSketch::from_bytes(&bytes).map_err(|e| {
        StoreError::Rejected(format!(
            "corrupt sketch in site_devices_daily row {id}: {e}"
        ))
    })
}

/// One sketch row selected by a count query.
struct SketchRef<G> {
    group: G,
    id: i64,
    rev: i64,
}

/// Merges the sketches of `refs` (sorted by group) per group, in order.
fn merge_groups<G: PartialEq>(
    conn: &Connection,
    cache: &mut SketchCache,
    refs: Vec<SketchRef<G>>,
) -> Result<Vec<(G, SiteSketch)>, StoreError> {
    let mut out: Vec<(G, SiteSketch)> = Vec::new();
    for r in refs {
        let sketch = load_sketch(conn, cache, r.id, r.rev)?;
        match out.last_mut() {
            Some((g, merged)) if *g == r.group => merged.merge(&sketch),
            _ => out.push((r.group, sketch.clone())),
        }
        cache.put(r.id, r.rev, sketch);
    }
    Ok(out)
}

/// Runs a query whose last two columns are a sketch row's id and revision.
fn select_refs<G>(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    group: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<G>,
) -> Result<Vec<SketchRef<G>>, StoreError> {
    let mut st = conn.prepare_cached(sql).map_err(classify)?;
    let n = st.column_count();
    let rows = st
        .query_map(rusqlite::params_from_iter(params), |r| {
            Ok(SketchRef {
                group: group(r)?,
                id: r.get(n - 2)?,
                rev: r.get(n - 1)?,
            })
        })
        .map_err(classify)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(classify)
}

fn migrate_blocking(conn: &mut Connection) -> Result<Vec<String>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version       INTEGER PRIMARY KEY,
            name          TEXT    NOT NULL,
            applied_at_ms INTEGER NOT NULL
        );",
    )
    .map_err(classify)?;
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        // IMMEDIATE takes the write lock first, so two processes migrating the same file
        // cannot both decide a migration is missing.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )
            .map_err(classify)?;
        if applied {
            continue;
        }
        tracing::info!(version, name, "applying embedded store migration");
        tx.execute_batch(sql).map_err(classify)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            params![version, name, now_ms()],
        )
        .map_err(classify)?;
        tx.commit().map_err(classify)?;
        done.push(format!("{version:03}_{name}"));
    }
    Ok(done)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn write_blocking(inner: &mut Inner, rows: &[Sighting]) -> Result<(), StoreError> {
    let Inner { conn, cache } = inner;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;

    // Keys new in `sightings`, per sketch. Rows already present (a retry, a redelivery, a
    // second sensor) are already in their sketch.
    let mut fresh: BTreeMap<SketchKey, Vec<u64>> = BTreeMap::new();
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO sightings (tenant, site, day, device_key, device_label, \
                 category, agent_managed, sensor, seen_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(classify)?;
        // A device-day keeps its latest sighting, so the window's boundary day counts a
        // device seen after the start instant even if it was also seen before it.
        let mut later = tx
            .prepare_cached(
                "UPDATE sightings SET seen_at_ms = ?5 WHERE tenant = ?1 AND site = ?2 \
                 AND day = ?3 AND device_key = ?4 AND seen_at_ms < ?5",
            )
            .map_err(classify)?;
        for r in rows {
            let inserted = insert
                .execute(params![
                    r.tenant,
                    r.site,
                    r.day,
                    // Stored as its two's-complement bit pattern; distinctness is unchanged.
                    r.device_key as i64,
                    r.device_label,
                    r.category.code(),
                    r.agent_managed,
                    r.sensor,
                    r.seen_at_ms,
                ])
                .map_err(classify)?;
            if inserted == 1 {
                fresh
                    .entry((
                        r.tenant.clone(),
                        r.site.clone(),
                        r.day,
                        r.category.code(),
                        r.agent_managed,
                    ))
                    .or_default()
                    .push(r.device_key);
            } else {
                later
                    .execute(params![
                        r.tenant,
                        r.site,
                        r.day,
                        r.device_key as i64,
                        r.seen_at_ms
                    ])
                    .map_err(classify)?;
            }
        }
    }

    let mut updated: Vec<(i64, i64, SiteSketch)> = Vec::with_capacity(fresh.len());
    for ((tenant, site, day, category, agent), keys) in fresh {
        let existing: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT id, rev FROM site_devices_daily WHERE tenant = ?1 AND site = ?2 \
                 AND day = ?3 AND category = ?4 AND agent_managed = ?5",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant, site, day, category, agent], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(classify)?;
        let mut sketch = match existing {
            Some((id, rev)) => load_sketch(&tx, cache, id, rev)?,
            None => SiteSketch::default(),
        };
        for k in keys {
            sketch.insert(k);
        }
        let bytes = sketch.to_bytes();
        let (id, rev) = match existing {
            Some((id, rev)) => {
                tx.prepare_cached(
                    "UPDATE site_devices_daily SET sketch = ?1, rev = ?2 WHERE id = ?3",
                )
                .and_then(|mut st| st.execute(params![bytes, rev + 1, id]))
                .map_err(classify)?;
                (id, rev + 1)
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO site_devices_daily (tenant, site, day, category, \
                     agent_managed, rev, sketch) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
                )
                .and_then(|mut st| st.execute(params![tenant, site, day, category, agent, bytes]))
                .map_err(classify)?;
                (tx.last_insert_rowid(), 1)
            }
        };
        updated.push((id, rev, sketch));
    }
    tx.commit().map_err(classify)?;
    // Only committed revisions enter the cache; after a rollback the entries taken above
    // are simply missing and get reloaded.
    for (id, rev, sketch) in updated {
        cache.put(id, rev, sketch);
    }
    Ok(())
}

fn site_counts_blocking(
    inner: &mut Inner,
    tenant: Option<String>,
    days: DayRange,
    filter: CountFilter,
) -> Result<Vec<SiteCount>, StoreError> {
    let (from, to) = days.whole_days();
    let mut params = vec![
        Value::Integer(i64::from(from)),
        Value::Integer(i64::from(to)),
    ];
    let mut sql = String::from(
        "SELECT tenant, site, id, rev FROM site_devices_daily WHERE day >= ? AND day <= ?",
    );
    if let Some(t) = &tenant {
        sql.push_str(" AND tenant = ?");
        params.push(Value::Text(t.clone()));
    }
    sql.push_str(&filter_sql(&filter, &mut params));
    sql.push_str(" ORDER BY tenant, site");

    let Inner { conn, cache } = inner;
    // One read transaction: ids, revisions and blobs come from the same snapshot.
    let tx = conn.transaction().map_err(classify)?;
    let refs = select_refs(&tx, &sql, params, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut groups: BTreeMap<(String, String), SiteSketch> =
        merge_groups(&tx, cache, refs)?.into_iter().collect();
    for (group, edge) in boundary_sketches(&tx, tenant.as_deref(), days, &filter)? {
        groups.entry(group).or_default().merge(&edge);
    }
    groups
        .into_iter()
        .map(|((tenant, site), sketch)| {
            let count = exact_below_limit(sketch.estimate(), || {
                exact_count_blocking(
                    &tx,
                    tenant.clone(),
                    Some(site.clone()),
                    days,
                    filter.clone(),
                )
            })?;
            Ok(SiteCount {
                tenant,
                site,
                count,
            })
        })
        .collect()
}

/// The billing window's boundary day (`days.since_ms`): a sketch per (tenant, site) of
/// the devices seen on day `days.from` at or after the boundary instant, from sightings
/// (which keep `seen_at`), to merge with the whole days' sketches.
fn boundary_sketches(
    conn: &Connection,
    tenant: Option<&str>,
    days: DayRange,
    filter: &CountFilter,
) -> Result<BTreeMap<(String, String), SiteSketch>, StoreError> {
    let mut out: BTreeMap<(String, String), SiteSketch> = BTreeMap::new();
    let Some(since) = days.since_ms else {
        return Ok(out);
    };
    let mut params = vec![Value::Integer(i64::from(days.from)), Value::Integer(since)];
    let mut sql = String::from(
        "SELECT tenant, site, device_key FROM sightings WHERE day = ? AND seen_at_ms >= ?",
    );
    if let Some(t) = tenant {
        sql.push_str(" AND tenant = ?");
        params.push(Value::Text(t.to_string()));
    }
    sql.push_str(&filter_sql(filter, &mut params));
    let mut st = conn.prepare_cached(&sql).map_err(classify)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(params), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(classify)?;
    for row in rows {
        let (tenant, site, key) = row.map_err(classify)?;
        out.entry((tenant, site)).or_default().insert(key as u64);
    }
    Ok(out)
}

/// Counts are exact up to [`SKETCH_EXACT_LIMIT`] devices, as ClickHouse's `uniqCombined`
/// is, though the embedded sketch leaves its exact phase at 1,536 keys to stay within its
/// memory budget: an estimate near or below that limit is recounted from sightings (one
/// indexed range), so both engines give the same answer for the same data.
fn exact_below_limit(
    estimate: Count,
    recount: impl FnOnce() -> Result<u64, StoreError>,
) -> Result<Count, StoreError> {
    // The band's upper end: an estimate just above the limit may be a count below it.
    let reach = estimate
        .value
        .saturating_sub((4.0 * estimate.sigma).ceil() as u64);
    if estimate.is_exact() || reach > SKETCH_EXACT_LIMIT {
        return Ok(estimate);
    }
    Ok(Count::exact(recount()?))
}

/// Every sketch of `tenant` merged: its distinct devices across sites (the device key does
/// not include the site, so a device seen at several sites counts once).
fn tenant_count_blocking(
    inner: &mut Inner,
    tenant: String,
    days: DayRange,
    filter: CountFilter,
) -> Result<Count, StoreError> {
    let (from, to) = days.whole_days();
    let mut params = vec![
        Value::Text(tenant.clone()),
        Value::Integer(i64::from(from)),
        Value::Integer(i64::from(to)),
    ];
    let mut sql = String::from(
        "SELECT tenant, id, rev FROM site_devices_daily WHERE tenant = ? AND day >= ? AND day <= ?",
    );
    sql.push_str(&filter_sql(&filter, &mut params));
    let Inner { conn, cache } = inner;
    let tx = conn.transaction().map_err(classify)?;
    let refs = select_refs(&tx, &sql, params, |r| r.get::<_, String>(0))?;
    let mut merged = merge_groups(&tx, cache, refs)?
        .into_iter()
        .next()
        .map(|(_, sketch)| sketch)
        .unwrap_or_default();
    for edge in boundary_sketches(&tx, Some(&tenant), days, &filter)?.values() {
        merged.merge(edge);
    }
    let estimate = merged.estimate();
    exact_below_limit(estimate, || {
        exact_count_blocking(&tx, tenant.clone(), None, days, filter.clone())
    })
}

/// Distinct devices from sightings: of one site, or (`site` None) of the whole tenant.
fn exact_count_blocking(
    conn: &Connection,
    tenant: String,
    site: Option<String>,
    days: DayRange,
    filter: CountFilter,
) -> Result<u64, StoreError> {
    let ((from, to), (edge, _)) = (days.whole_days(), days.boundary_seconds());
    let mut params = vec![
        Value::Text(tenant),
        Value::Integer(i64::from(from)),
        Value::Integer(i64::from(to)),
        Value::Integer(i64::from(edge)),
        Value::Integer(days.since_ms.unwrap_or(0)),
    ];
    let mut sql = String::from(
        "SELECT COUNT(DISTINCT device_key) FROM sightings \
         WHERE tenant = ? AND ((day >= ? AND day <= ?) OR (day = ? AND seen_at_ms >= ?))",
    );
    if let Some(site) = site {
        sql.push_str(" AND site = ?");
        params.push(Value::Text(site));
    }
    sql.push_str(&filter_sql(&filter, &mut params));
    let count: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut st| st.query_row(rusqlite::params_from_iter(params), |r| r.get(0)))
        .map_err(classify)?;
    Ok(count as u64)
}

fn daily_counts_blocking(
    inner: &mut Inner,
    tenant: String,
    site: String,
    days: DayRange,
    filter: CountFilter,
) -> Result<Vec<DailyCount>, StoreError> {
    let mut params = vec![
        Value::Text(tenant.clone()),
        Value::Text(site.clone()),
        Value::Integer(i64::from(days.from)),
        Value::Integer(i64::from(days.to)),
    ];
    let filter_clause = filter_sql(&filter, &mut params);
    let sql = &format!(
        "SELECT day, category, id, rev FROM site_devices_daily \
         WHERE tenant = ? AND site = ? AND day >= ? AND day <= ?{filter_clause} \
         ORDER BY day, category"
    );
    let Inner { conn, cache } = inner;
    let tx = conn.transaction().map_err(classify)?;
    let refs = select_refs(&tx, sql, params, |r| {
        Ok((r.get::<_, u16>(0)?, r.get::<_, i8>(1)?))
    })?;
    let groups = merge_groups(&tx, cache, refs)?;
    groups
        .into_iter()
        .map(|((day, code), sketch)| {
            let category = DeviceCategory::from_code(code).unwrap_or_default();
            let count = exact_below_limit(sketch.estimate(), || {
                let one = CountFilter {
                    categories: vec![category],
                    include_agent_managed: filter.include_agent_managed,
                };
                let day_only = DayRange {
                    from: day,
                    to: day,
                    since_ms: None,
                };
                exact_count_blocking(&tx, tenant.clone(), Some(site.clone()), day_only, one)
            })?;
            Ok(DailyCount {
                day,
                category,
                count,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.with_inner(|inner| migrate_blocking(&mut inner.conn))
            .await
    }

    async fn write_sightings(&self, rows: &[Sighting]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // The blocking task needs owned rows; a copy per batch is small next to the fsync.
        let rows = rows.to_vec();
        self.with_inner(move |inner| write_blocking(inner, &rows))
            .await
    }

    async fn site_counts(
        &self,
        tenant: Option<&str>,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Vec<SiteCount>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        let filter = filter.clone();
        self.with_inner(move |inner| site_counts_blocking(inner, tenant, days, filter))
            .await
    }

    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<u64, StoreError> {
        let (tenant, site, filter) = (tenant.to_owned(), site.to_owned(), filter.clone());
        self.with_inner(move |inner| {
            exact_count_blocking(&inner.conn, tenant, Some(site), days, filter)
        })
        .await
    }

    async fn tenant_count(
        &self,
        tenant: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Option<Count>, StoreError> {
        let (tenant, filter) = (tenant.to_owned(), filter.clone());
        self.with_inner(move |inner| tenant_count_blocking(inner, tenant, days, filter))
            .await
            .map(Some)
    }

    async fn exact_tenant_count(
        &self,
        tenant: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Option<u64>, StoreError> {
        let (tenant, filter) = (tenant.to_owned(), filter.clone());
        self.with_inner(move |inner| exact_count_blocking(&inner.conn, tenant, None, days, filter))
            .await
            .map(Some)
    }

    async fn daily_counts(
        &self,
        tenant: &str,
        site: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Vec<DailyCount>, StoreError> {
        let (tenant, site, filter) = (tenant.to_owned(), site.to_owned(), filter.clone());
        self.with_inner(move |inner| daily_counts_blocking(inner, tenant, site, days, filter))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_inner(|inner| {
            inner
                .conn
                .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(drop)
                .map_err(classify)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_an_existing_store_refuses_a_mistyped_directory() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("sitetally-dta");
        let e = EmbeddedStore::open_existing(&typo)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("sitetally-dta") && e.contains("no sitetally data"),
            "{e}"
        );
        assert!(!typo.exists(), "nothing was created");
        EmbeddedStore::open(dir.path()).unwrap();
        EmbeddedStore::open_existing(dir.path()).unwrap();
    }

    #[test]
    fn busy_and_io_are_retryable_the_rest_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(classify(busy).is_retryable());
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            None,
        );
        assert!(classify(io).is_retryable());
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(!classify(constraint).is_retryable());
        assert!(!classify(rusqlite::Error::QueryReturnedNoRows).is_retryable());
    }

    #[test]
    fn filters_bind_values_and_splice_only_placeholders() {
        let mut params = Vec::new();
        let f = CountFilter {
            categories: vec![DeviceCategory::Ot, DeviceCategory::Iot],
            include_agent_managed: false,
        };
        let sql = filter_sql(&f, &mut params);
        assert_eq!(sql, " AND category IN (?, ?) AND agent_managed = 0");
        assert_eq!(params, vec![Value::Integer(1), Value::Integer(2)]);
        assert_eq!(filter_sql(&CountFilter::all(), &mut params), "");
    }

    #[test]
    fn cache_serves_only_the_cached_revision_and_evicts_the_least_recent() {
        let mut c = SketchCache::new(2);
        let one = |k| {
            let mut s = SiteSketch::default();
            s.insert(k);
            s
        };
        c.put(1, 1, one(10));
        c.put(2, 1, one(20));
        assert!(c.take(1, 2).is_none(), "stale revision is not served");
        assert!(c.take(1, 1).is_none(), "and was dropped");
        c.put(1, 2, one(11));
        c.put(3, 1, one(30)); // evicts row 2, the least recently used
        assert!(c.take(2, 1).is_none());
        assert_eq!(c.take(1, 2).map(|s| s.estimate().value), Some(1));
        assert!(c.take(3, 1).is_some());
    }
}
