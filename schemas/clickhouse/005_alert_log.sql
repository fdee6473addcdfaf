-- Every alert the reconciler raised (one row per idempotency key; a redelivery after a
-- crash collapses on merge). The alert-history API and plain SQL read it.
CREATE TABLE IF NOT EXISTS {db}.alert_log{on_cluster}
(
    raised_at       DateTime('UTC'),
    idempotency_key String,
    tenant          String,
    site            String,
    subject         String,
    old_status      String,
    new_status      String,
    device_count    UInt64,
    count_method    String,
    error_bound     UInt64,
    licensed_tier   String,
    required_tier   String,
    message         String,
    alert           String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(raised_at)
ORDER BY (tenant, raised_at, idempotency_key)
