-- Licences as the reconciler reads them: one row per tenant holding that tenant's entry of
-- the licence file as JSON (tenant '' holds the file's global tier-catalogue override).
-- The newest import of a tenant wins (ReplacingMergeTree on updated_ms; reads use argMax).
-- Written by `sitetally reconcile --import-licences FILE` after validating the file.
CREATE TABLE IF NOT EXISTS {db}.licences{on_cluster}
(
    tenant     String,
    document   String,
    updated_ms UInt64
)
ENGINE = ReplacingMergeTree(updated_ms)
ORDER BY tenant
