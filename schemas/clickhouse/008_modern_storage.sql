-- Brings a database up to the modern storage settings on a server that has them: a
-- database created on an old server (no TTL, no non-replicated insert deduplication) and
-- later served by a current one gets the sightings and sketch TTLs, insert deduplication
-- on both tables (a retried batch then adds no sketch rows twice), and whole-part TTL
-- drops (parts are monthly: an expired month goes as one part, no rewrite). Applied only
-- on a server with TTL and insert deduplication; skipped, unrecorded, on an older one, so
-- it runs once the server is upgraded.
ALTER TABLE {db}.sightings{local}{on_cluster} MODIFY TTL day + INTERVAL 400 DAY;
ALTER TABLE {db}.site_devices_daily{local}{on_cluster} MODIFY TTL day + INTERVAL 800 DAY;
ALTER TABLE {db}.sightings{local}{on_cluster} MODIFY SETTING {dedup_window}ttl_only_drop_parts = 1;
ALTER TABLE {db}.site_devices_daily{local}{on_cluster} MODIFY SETTING {dedup_window}ttl_only_drop_parts = 1
