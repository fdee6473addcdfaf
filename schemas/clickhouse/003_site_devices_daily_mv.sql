CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.site_devices_daily_mv{on_cluster}
TO {db}.site_devices_daily{local}
AS SELECT
    tenant,
    site,
    day,
    category,
    agent_managed,
    uniqCombinedState(device_key) AS devices
FROM {db}.sightings{local}
GROUP BY tenant, site, day, category, agent_managed
