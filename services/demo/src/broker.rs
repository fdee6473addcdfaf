//! The demo's broker: librdkafka's in-process Kafka-protocol cluster, so the simulator's
//! producer and ingest's consumer run exactly as they do against a real cluster; and
//! [`CommitWatch`], which tells how much was produced and how much ingest has committed.
//!
//! The mock cluster is a raw librdkafka handle (not `Send`), so it lives on a thread of
//! its own for the whole run and is torn down when [`EmbeddedBroker`] is dropped.

use crate::DemoError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// An in-process Kafka-protocol cluster with the demo's topics.
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster and creates `topics` as (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> Result<Self, DemoError> {
        let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, DemoError>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("demo-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                for (topic, partitions) in &topics {
                    if let Err(e) = cluster.create_topic(topic, *partitions, 1) {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Keep the cluster alive until told to stop (or the owner is gone).
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| DemoError::Task(format!("cannot start the broker thread: {e}")))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| DemoError::Task("the broker thread ended before starting".into()))??;
        Ok(Self {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `bootstrap.servers` of the cluster (127.0.0.1 with an ephemeral port).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Produced and committed message totals of one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicProgress {
    /// Sum of the partitions' high watermarks: messages on the topic.
    pub produced: u64,
    /// Sum of the group's committed offsets: messages ingest has processed and whose
    /// rows storage has acknowledged (offsets are committed only after that).
    pub committed: u64,
}

impl TopicProgress {
    /// Everything on the topic has been committed by the group.
    pub fn caught_up(&self) -> bool {
        self.committed >= self.produced
    }
}

/// Reads high watermarks and a consumer group's committed offsets without joining the
/// group. Calls block (broker round trips): use it from a blocking thread.
pub struct CommitWatch {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
}

impl CommitWatch {
    pub fn new(
        bootstrap: &str,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<Self, DemoError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            partitions,
        })
    }

    pub fn progress(&self, timeout: Duration) -> Result<TopicProgress, DemoError> {
        let mut produced = 0u64;
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            let (_, high) = self.consumer.fetch_watermarks(&self.topic, p, timeout)?;
            produced += high.max(0) as u64;
            tpl.add_partition(&self.topic, p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, timeout)?
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => o as u64,
                _ => 0,
            })
            .sum();
        Ok(TopicProgress {
            produced,
            committed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_starts_with_topics_and_reports_empty_progress() {
        let broker = EmbeddedBroker::start(&[("t", 2), ("t.dlq", 1)]).unwrap();
        assert!(!broker.bootstrap_servers().is_empty());
        let watch = CommitWatch::new(broker.bootstrap_servers(), "g", "t", 2).unwrap();
        let p = watch.progress(Duration::from_secs(10)).unwrap();
        assert_eq!(p, TopicProgress::default());
        assert!(p.caught_up());
    }
}
