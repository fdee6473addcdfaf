-- Sketch states per tenant/site/day/category: the system of record for distinct-device
-- estimates. Query with uniqCombinedMerge(devices); states merge across days and
-- categories without double-counting a device.
CREATE TABLE IF NOT EXISTS {db}.site_devices_daily{local}{on_cluster}
(
    tenant        {lc_string},
    site          {lc_string},
    day           Date,
    category      Enum8('UNKNOWN' = 0, 'OT' = 1, 'IOT' = 2, 'NETWORK' = 3, 'COMPUTERS_MOBILE' = 4),
    agent_managed UInt8,
    devices       AggregateFunction(uniqCombined, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, site, day, category, agent_managed)
{sketch_ttl}
