CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.site_devices_daily_mv
TO {db}.site_devices_daily
AS SELECT
    tenant,
    site,
    day,
    category,
    agent_managed,
    uniqCombinedState(device_key) AS devices
FROM {db}.sightings
GROUP BY tenant, site, day, category, agent_managed
