//! sitetally-kafka-batch: messages taken from librdkafka many at a time.
//!
//! rust-rdkafka's `BaseConsumer::poll` returns one message per call, and each call costs
//! three clock reads, a queue lock and an event wrapper: ~14% of the consumer thread in a
//! perf profile of the `--keyed` drain benchmark (load-tests/RESULTS.md). librdkafka's
//! `rd_kafka_consume_batch_queue` hands over every queued message (up to a limit) in one
//! call. It must not be called on the consumer queue itself: rust-rdkafka asks librdkafka
//! for rebalances as events, and the batch call would answer a rebalance event with a
//! forced unassign. So every assigned partition's fetch queue is forwarded to a
//! [`MessageQueue`] of its own, which carries messages only; rebalances, errors and commit
//! results stay on the consumer queue, which `BaseConsumer::poll` keeps serving.
//!
//! Partitions are forwarded by a [`Forwarder`] from the consumer context's pre-rebalance
//! callback, *before* librdkafka assigns them, so no message of theirs lands on the
//! consumer queue and each partition's messages arrive in order through one queue.
//! librdkafka drops a partition's forwarding when it stops fetching it (revocation), so it
//! is forwarded again on every assignment. Messages queued before a revocation, pause or
//! seek carry an older version and librdkafka discards them at hand-over.
//!
//! This crate holds the workspace's only `unsafe` code. Its API is safe: a queue borrows
//! its consumer and a batch borrows its queue, so neither can outlive the client, and a
//! forwarder (which the consumer's context keeps) does nothing once its queue is gone.

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::TopicPartitionList;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::warn;

/// A librdkafka queue that receives the fetched messages of the partitions forwarded to it.
/// It borrows the consumer, so it cannot outlive the client it belongs to.
pub struct MessageQueue<'c> {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// What forwarders see: the queue while it exists, `None` from the start of `drop`.
    shared: Arc<Mutex<Option<Handles>>>,
    _consumer: PhantomData<&'c ()>,
}

/// The queue and the client it belongs to.
#[derive(Clone, Copy)]
struct Handles {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    client: NonNull<rdsys::rd_kafka_t>,
}

// SAFETY: librdkafka's queue and client handles may be used from any thread; a forwarder
// only uses them under the mutex, while the queue (and so the client) still exists.
unsafe impl Send for Handles {}

impl<'c> MessageQueue<'c> {
    pub fn new<C: ConsumerContext>(consumer: &'c BaseConsumer<C>) -> Self {
        let client =
            NonNull::new(consumer.client().native_ptr()).expect("consumer without a client");
        // SAFETY: the client is valid for 'c, which this queue cannot outlive; the queue is
        // destroyed in `drop`.
        let queue = unsafe { rdsys::rd_kafka_queue_new(client.as_ptr()) };
        let queue = NonNull::new(queue).expect("rd_kafka_queue_new returned NULL");
        Self {
            queue,
            shared: Arc::new(Mutex::new(Some(Handles { queue, client }))),
            _consumer: PhantomData,
        }
    }

    /// A handle for the consumer context's rebalance callback (see [`Forwarder`]).
    pub fn forwarder(&self) -> Forwarder {
        Forwarder {
            shared: self.shared.clone(),
        }
    }

    /// An empty batch to [`take`](Self::take) messages into.
    pub fn batch(&self) -> Messages<'_> {
        Messages {
            messages: Vec::new(),
            topics: Vec::new(),
            _queue: PhantomData,
        }
    }

    /// Replaces `batch` with up to `max` queued messages. When none is queued, waits up to
    /// `wait` for the first one. (librdkafka's batch call fills the whole array or waits for
    /// its timeout, so the waiting call asks for one message only.)
    ///
    /// The batch must come from this queue (the lifetimes say so): its messages belong to
    /// this queue's client.
    pub fn take<'q>(&'q self, batch: &mut Messages<'q>, max: usize, wait: Duration) -> usize {
        batch.clear();
        batch.messages.reserve(max);
        let mut taken = self.consume(batch, max, 0);
        if taken == 0 && !wait.is_zero() {
            let wait_ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
            taken = self.consume(batch, 1, wait_ms);
        }
        taken
    }

    fn consume(&self, batch: &mut Messages<'_>, max: usize, timeout_ms: i32) -> usize {
        let room = max.min(batch.messages.capacity());
        // SAFETY: librdkafka writes at most `room` message pointers into the spare capacity
        // and returns how many (-1 on a bad queue, treated as none).
        let taken = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                batch.messages.as_mut_ptr(),
                room,
            )
        };
        let taken = usize::try_from(taken).unwrap_or(0).min(room);
        // SAFETY: the first `taken` slots were initialized by librdkafka (batch was empty).
        unsafe { batch.messages.set_len(taken) };
        taken
    }
}

impl Drop for MessageQueue<'_> {
    fn drop(&mut self) {
        // Forwarders stop first: they hold the same lock while they use the queue.
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.take();
        // SAFETY: created by rd_kafka_queue_new, destroyed once, while the client lives.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// Forwards partitions to a [`MessageQueue`]; kept by the consumer's context and called
/// from `pre_rebalance` on every assignment, before librdkafka starts fetching them.
#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Mutex<Option<Handles>>>,
}

impl Forwarder {
    /// Sends the messages of `partitions` to the queue instead of the consumer queue.
    /// Returns how many partitions were forwarded: none once the queue is gone, or when
    /// `consumer` is not the client the queue belongs to.
    pub fn forward<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) -> usize {
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let Some(handles) = *shared else {
            return 0;
        };
        if handles.client.as_ptr() != consumer.client().native_ptr() {
            warn!("forwarder called with another consumer: partitions left on its consumer queue");
            return 0;
        }
        let mut forwarded = 0;
        for element in partitions.elements() {
            let Ok(topic) = CString::new(element.topic()) else {
                continue;
            };
            // SAFETY: the queue exists while `shared` holds it (the lock is held) and the
            // client is `consumer`'s; the partition queue handle is released right after use
            // (the forwarding keeps its own reference). librdkafka creates the partition if
            // it does not know it yet.
            unsafe {
                let partition_queue = rdsys::rd_kafka_queue_get_partition(
                    handles.client.as_ptr(),
                    topic.as_ptr(),
                    element.partition(),
                );
                if partition_queue.is_null() {
                    warn!(
                        topic = element.topic(),
                        partition = element.partition(),
                        "no fetch queue for a partition: its messages stay on the consumer queue"
                    );
                    continue;
                }
                rdsys::rd_kafka_queue_forward(partition_queue, handles.queue.as_ptr());
                rdsys::rd_kafka_queue_destroy(partition_queue);
            }
            forwarded += 1;
        }
        forwarded
    }
}

/// Messages taken by [`MessageQueue::take`], owned until the next take (or drop). Borrows
/// its queue, so it cannot outlive the client either.
pub struct Messages<'q> {
    messages: Vec<*mut rdsys::rd_kafka_message_t>,
    /// Topic names of the current messages, looked up once per topic handle per take.
    topics: Vec<(*mut rdsys::rd_kafka_topic_t, String)>,
    _queue: PhantomData<&'q ()>,
}

impl Messages<'_> {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The `index`th message.
    pub fn get(&mut self, index: usize) -> RawMessage<'_> {
        // SAFETY: every stored pointer is a live message owned by this batch.
        let message = unsafe { &*self.messages[index] };
        let topic_index = match self.topics.iter().position(|(t, _)| *t == message.rkt) {
            Some(i) => i,
            None => {
                let name = if message.rkt.is_null() {
                    String::new()
                } else {
                    // SAFETY: a message's topic handle and its name live as long as it does.
                    unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(message.rkt)) }
                        .to_string_lossy()
                        .into_owned()
                };
                self.topics.push((message.rkt, name));
                self.topics.len() - 1
            }
        };
        RawMessage {
            message,
            topic: &self.topics[topic_index].1,
        }
    }

    /// Gives every message back to librdkafka.
    pub fn clear(&mut self) {
        for message in self.messages.drain(..) {
            // SAFETY: each pointer came from rd_kafka_consume_batch_queue and is destroyed once.
            unsafe { rdsys::rd_kafka_message_destroy(message) }
        }
        self.topics.clear();
    }
}

impl Drop for Messages<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One message of a [`Messages`] batch.
pub struct RawMessage<'a> {
    message: &'a rdsys::rd_kafka_message_t,
    topic: &'a str,
}

impl RawMessage<'_> {
    /// librdkafka's error for this slot (a consumer error instead of a message), if any.
    pub fn error(&self) -> Option<String> {
        if self.message.err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        // SAFETY: the error string lives as long as the message.
        let text = unsafe { CStr::from_ptr(rdsys::rd_kafka_message_errstr(self.message)) };
        Some(text.to_string_lossy().into_owned())
    }
}

/// # Safety
/// `data` must be NULL or point to `len` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(data: *const std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: guaranteed by the caller.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// What a consumer needs of a message, whichever way it arrived: in a batch
/// ([`RawMessage`]) or one at a time from `BaseConsumer::poll` (rdkafka's `BorrowedMessage`).
pub trait ConsumedMessage {
    /// The payload (empty if none).
    fn payload(&self) -> &[u8];
    fn key(&self) -> Option<&[u8]>;
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    /// The headers, copied (name, value; a null value as empty).
    fn header_list(&self) -> Vec<(String, Vec<u8>)>;
}

impl ConsumedMessage for RawMessage<'_> {
    fn payload(&self) -> &[u8] {
        // SAFETY: payload/len describe the message's own buffer.
        unsafe { bytes(self.message.payload, self.message.len) }.unwrap_or(&[])
    }

    fn key(&self) -> Option<&[u8]> {
        // SAFETY: key/key_len describe the message's own buffer.
        unsafe { bytes(self.message.key, self.message.key_len) }
    }

    fn topic(&self) -> &str {
        self.topic
    }

    fn partition(&self) -> i32 {
        self.message.partition
    }

    fn offset(&self) -> i64 {
        self.message.offset
    }

    fn header_list(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = std::ptr::null_mut();
        // SAFETY: librdkafka parses the headers into storage owned by the message.
        let found = unsafe { rdsys::rd_kafka_message_headers(self.message, &mut headers) };
        if found != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return Vec::new();
        }
        let mut list = Vec::new();
        for index in 0.. {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
            // SAFETY: index-based lookup; librdkafka answers an error past the last header.
            let got = unsafe {
                rdsys::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
            };
            if got != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                break;
            }
            // SAFETY: name is a NUL-terminated string owned by the message.
            let name = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: value holds `size` bytes (or is NULL), owned by the message.
            let value = unsafe { bytes(value, size) }.unwrap_or(&[]).to_vec();
            list.push((name, value));
        }
        list
    }
}

impl ConsumedMessage for rdkafka::message::BorrowedMessage<'_> {
    fn payload(&self) -> &[u8] {
        Message::payload(self).unwrap_or(&[])
    }

    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }

    fn topic(&self) -> &str {
        Message::topic(self)
    }

    fn partition(&self) -> i32 {
        Message::partition(self)
    }

    fn offset(&self) -> i64 {
        Message::offset(self)
    }

    fn header_list(&self) -> Vec<(String, Vec<u8>)> {
        Message::headers(self)
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    }
}
