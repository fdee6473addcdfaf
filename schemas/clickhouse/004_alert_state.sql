-- The reconciler's per-subject alert state (hysteresis reference and outbox of alerts not
-- yet delivered to every sink), as the JSON the reconciler reads back. The newest save of a
-- subject wins (argMax on saved_ms when reading; merges keep only it), so a reconciler
-- restarted anywhere continues without sending an alert twice.
CREATE TABLE IF NOT EXISTS {db}.alert_state{on_cluster}
(
    subject  String,
    tenant   String,
    state    String,
    saved_ms UInt64
)
ENGINE = ReplacingMergeTree(saved_ms)
ORDER BY (tenant, subject)
