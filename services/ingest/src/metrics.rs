//! Metric names (one place) and their descriptions. Hot-path counts are accumulated
//! locally and published as deltas once per flush/second, never per event.

pub const MESSAGES_CONSUMED: &str = "sitetally_ingest_messages_consumed_total";
pub const EVENTS_NEW: &str = "sitetally_ingest_events_new_total";
pub const DEDUP_HITS: &str = "sitetally_ingest_dedup_hits_total";
pub const NOT_A_DEVICE: &str = "sitetally_ingest_not_a_device_total";
pub const REJECTED: &str = "sitetally_ingest_rejected_total";
pub const DLQ_PUBLISHED: &str = "sitetally_ingest_dlq_published_total";
pub const ROWS_WRITTEN: &str = "sitetally_ingest_rows_written_total";
pub const FLUSH_SECONDS: &str = "sitetally_ingest_flush_seconds";
pub const FLUSH_FAILURES: &str = "sitetally_ingest_flush_failures_total";
pub const CONSUMER_LAG: &str = "sitetally_ingest_consumer_lag";
pub const PAUSED: &str = "sitetally_ingest_paused";
pub const DEDUP_ENTRIES: &str = "sitetally_ingest_dedup_entries";
pub const DEDUP_BYTES: &str = "sitetally_ingest_dedup_bytes";
pub const DEDUP_WRITE_THROUGH: &str = "sitetally_ingest_dedup_write_through_total";
pub const REGISTRY_RETRIES: &str = "sitetally_ingest_registry_retries_total";
pub const ASSIGNED_PARTITIONS: &str = "sitetally_ingest_assigned_partitions";

/// Registers help texts and starts the unlabelled series at zero, so the dashboard's
/// `rate()` and "no flush failures" read right from the first scrape (call once after
/// installing a recorder). Labelled series (reasons, partitions) appear with their
/// first event.
pub fn describe() {
    describe_all();
    for name in [
        MESSAGES_CONSUMED,
        EVENTS_NEW,
        DEDUP_HITS,
        DEDUP_WRITE_THROUGH,
        DLQ_PUBLISHED,
        ROWS_WRITTEN,
        FLUSH_FAILURES,
        REGISTRY_RETRIES,
    ] {
        ::metrics::counter!(name).absolute(0);
    }
    for name in [PAUSED, DEDUP_ENTRIES, DEDUP_BYTES, ASSIGNED_PARTITIONS] {
        ::metrics::gauge!(name).set(0.0);
    }
}

fn describe_all() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        MESSAGES_CONSUMED,
        "Kafka messages read from the discovery topic"
    );
    describe_counter!(
        EVENTS_NEW,
        "Events that were a device not yet written for its site and day"
    );
    describe_counter!(
        DEDUP_HITS,
        "Events skipped because the device was already written today"
    );
    describe_counter!(
        NOT_A_DEVICE,
        "Valid events about public/multicast/broadcast addresses, by reason"
    );
    describe_counter!(
        REJECTED,
        "Undecodable or invalid events sent to the dead-letter topic, by reason"
    );
    describe_counter!(DLQ_PUBLISHED, "Dead letters acknowledged by the broker");
    describe_counter!(ROWS_WRITTEN, "Sighting rows acknowledged by storage");
    describe_histogram!(
        FLUSH_SECONDS,
        Unit::Seconds,
        "Time to write one batch (dead letters, rows, commit)"
    );
    describe_counter!(
        FLUSH_FAILURES,
        "Failed flush attempts (storage or broker unavailable)"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages behind the partition's high watermark, by partition"
    );
    describe_gauge!(
        PAUSED,
        "1 while consumption is paused because storage is unavailable"
    );
    describe_gauge!(
        DEDUP_ENTRIES,
        "(site, day, device) triples remembered by dedup"
    );
    describe_gauge!(DEDUP_BYTES, Unit::Bytes, "Memory held by the dedup cache");
    describe_counter!(
        DEDUP_WRITE_THROUGH,
        "New devices written without being remembered because the dedup cache was full"
    );
    describe_gauge!(
        ASSIGNED_PARTITIONS,
        "Partitions this replica owns (0: idle, e.g. more replicas than partitions)"
    );
    describe_counter!(REGISTRY_RETRIES, "Messages set aside (partition paused and rewound) because the schema registry was unavailable");
}
