-- One row per decision per reconciliation run: history and trends of counts, utilisation
-- and status per site (or tenant-wide subject), e.g.
--   SELECT run_at, device_count, utilisation FROM reconciliation_runs
--   WHERE tenant = 'acme' AND site = 'plant-1' ORDER BY run_at
CREATE TABLE IF NOT EXISTS {db}.reconciliation_runs{on_cluster}
(
    run_at        DateTime('UTC'),
    run_id        String,
    tenant        String,
    site          String,
    subject       String,
    status        String,
    device_count  UInt64,
    count_method  String,
    error_bound   UInt64,
    exact_fetched UInt8,
    uncertain     UInt8,
    licensed_tier String,
    required_tier String,
    utilisation   Float64,
    decision      String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(run_at)
ORDER BY (tenant, site, run_at)
