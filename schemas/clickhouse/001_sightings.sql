-- One row per tenant/site/device/day. Ingest deduplicates before writing; retried or
-- redelivered rows collapse on merge (ReplacingMergeTree), and every exact count uses
-- uniqExact(device_key), which is right before the merge too.
CREATE TABLE IF NOT EXISTS {db}.sightings{local}{on_cluster}
(
    tenant        {lc_string},
    site          {lc_string},
    day           Date,
    device_key    UInt64,
    device_label  String,
    category      Enum8('UNKNOWN' = 0, 'OT' = 1, 'IOT' = 2, 'NETWORK' = 3, 'COMPUTERS_MOBILE' = 4),
    agent_managed UInt8,
    sensor        {lc_string},
    seen_at       DateTime('UTC'),
    ingested_at   DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, site, day, device_key)
{sightings_ttl}
{dedup_settings}
