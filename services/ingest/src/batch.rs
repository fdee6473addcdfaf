//! Work waiting for one flush: sighting rows, dead letters, and the next offset to commit
//! for every partition the batch read from.

use crate::dlq::DeadLetter;
use rdkafka::{Offset, TopicPartitionList};
use sitetally_core::Sighting;
use std::collections::HashMap;
use std::time::Instant;

type Fast = ahash::RandomState;

#[derive(Debug, Default)]
pub struct Batch {
    pub rows: Vec<Sighting>,
    pub dead_letters: Vec<DeadLetter>,
    /// Every dead letter acknowledged by the broker (a retry after a storage failure
    /// skips them).
    pub dead_letters_acked: bool,
    /// topic → partition → offset of the next message to read (last offset + 1). Nested
    /// so the per-message lookup borrows the topic name instead of allocating a key; ahash,
    /// as std's SipHash of the topic name was ~2% of the consumer thread.
    pub next_offsets: HashMap<String, HashMap<i32, i64, Fast>, Fast>,
    pub messages: u64,
    pub started: Option<Instant>,
}

impl Batch {
    pub fn record_offset(&mut self, topic: &str, partition: i32, offset: i64) {
        self.started.get_or_insert_with(Instant::now);
        self.messages += 1;
        let partitions = match self.next_offsets.get_mut(topic) {
            Some(p) => p,
            None => self.next_offsets.entry(topic.to_string()).or_default(),
        };
        let next = partitions.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Whether the batch is at least `limit` old at `now`.
    pub fn age_exceeds(&self, limit: std::time::Duration, now: Instant) -> bool {
        self.started
            .is_some_and(|s| now.saturating_duration_since(s) >= limit)
    }

    /// Offsets to commit: Kafka commits the offset of the *next* message to read.
    pub fn commit_list(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in &self.next_offsets {
            for (partition, next) in partitions {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                    .expect("valid offset");
            }
        }
        tpl
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.dead_letters.clear();
        self.dead_letters_acked = false;
        self.next_offsets.clear();
        self.messages = 0;
        self.started = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_last_offset_plus_one_per_partition() {
        let mut b = Batch::default();
        b.record_offset("t", 0, 5);
        b.record_offset("t", 0, 9);
        b.record_offset("t", 1, 3);
        b.record_offset("u", 0, 7);
        let tpl = b.commit_list();
        assert_eq!(tpl.count(), 3);
        assert_eq!(
            tpl.find_partition("u", 0).unwrap().offset(),
            Offset::Offset(8)
        );
        assert_eq!(
            tpl.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(10)
        );
        assert_eq!(
            tpl.find_partition("t", 1).unwrap().offset(),
            Offset::Offset(4)
        );
        assert_eq!(b.messages, 4);
        b.clear();
        assert!(b.is_empty() && b.commit_list().count() == 0);
    }
}
