//! A client whose broker lost its log: a memory broker restarted with its
//! topics created anew answers the old client's fetches with an id it does
//! not know, and a new log may be shorter than the position or grow past it
//! before the client notices. The consumer tells that from the last message
//! it read (no longer where it was) and from reading nothing while the
//! broker holds messages past its position, and replaces its client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::Worker;

/// How long a consumer may read nothing while the broker holds messages past
/// its position before it takes its client for stuck and makes a new one.
/// (A broker that lost its log and had the topic created again answers the
/// old client's fetches with an id it does not know, and the client waits
/// for ever.)
pub(super) const STALL: Duration = Duration::from_secs(5);

/// How long a check of a partition's log reads before it takes the log for
/// holding nothing at the offset asked.
const READ_AT: Duration = Duration::from_secs(3);

/// What the consumer last read, to tell a stalled client.
pub(super) struct Seen {
    /// When the last message came.
    pub(super) at: Instant,
    /// When the broker was last asked whether the client is stuck.
    pub(super) checked: Instant,
    /// Per partition, the offset and broker timestamp of the last message
    /// read: a log the broker replaced has another message there.
    pub(super) last: HashMap<i32, (i64, Option<i64>)>,
    /// The client lost every broker.
    pub(super) lost: bool,
    /// The client was replaced for that and has read nothing since: a
    /// new client that finds the broker still down is not replaced again.
    pub(super) renewed_for_loss: bool,
    /// Partitions whose log is to be checked at their first message.
    pub(super) verify: std::collections::HashSet<i32>,
}

impl Worker {
    /// Whether the client read nothing for [`STALL`] while a client of
    /// its own finds a message at the position, or the last message read is
    /// no longer where it was (the broker's watermarks are not asked: a
    /// broker may count them in batches). Waits a second first, and looks
    /// at most once per [`STALL`].
    pub(super) async fn stalled(&self) -> bool {
        tokio::time::sleep(Duration::from_secs(1)).await;
        {
            let mut seen = self.seen.lock().expect("seen lock");
            if self.paused || seen.at.elapsed() < STALL || seen.checked.elapsed() < STALL {
                return false;
            }
            seen.checked = Instant::now();
        }
        let position = self.position.lock().expect("position lock").clone();
        for &p in &self.partitions {
            let next = position.get(&p).copied();
            let from = next.map_or(Offset::Beginning, Offset::Offset);
            if let Some(found) = self.read_at(p, from).await {
                tracing::debug!(
                    partition = p,
                    ?from,
                    ?found,
                    "A message waits at the position."
                );
                return true;
            }
            // A broker may answer a position past the end of a new, shorter
            // log with nothing at all rather than an error.
            if self.log_replaced(p, next).await {
                return true;
            }
        }
        false
    }

    /// Whether the broker replaced the log of `partition`: the last message
    /// read (just before the position `next`) is no longer where it was.
    /// Unknown (nothing read yet, or a position loaded from the database)
    /// counts as kept.
    pub(super) async fn log_replaced(&self, partition: i32, next: Option<i64>) -> bool {
        let last = self
            .seen
            .lock()
            .expect("seen lock")
            .last
            .get(&partition)
            .copied();
        match (next, last) {
            (Some(next), Some(read)) if read.0 == next - 1 => {
                self.read_at(partition, Offset::Offset(read.0)).await != Some(read)
            }
            _ => false,
        }
    }

    /// Replaces the client with a new one, assigned from the position; with
    /// `check`, a partition whose log the broker replaced is read from its
    /// beginning.
    ///
    /// A client that lost every broker is replaced at once, before the
    /// broker is back: a broker that comes back with its topics created
    /// anew (a broker that kept them in memory) gives the old client
    /// metadata that crashes librdkafka 2.12.1 (a freed entry of its
    /// metadata cache read when a fetch answer updates it: a SIGSEGV in
    /// `rd_kafka_metadata_update_op`), and a stuck one reads nothing. The
    /// client stopped fetching when it reported the loss, so a broker back
    /// before it is replaced has no fetch to answer. A consumer that cannot
    /// run at all from the broker's loss to its return (stopped, starved of
    /// CPU) can still be crashed by it.
    pub(super) async fn renew(&mut self, check: bool) {
        let partitions = self.partitions.clone();
        let position = self.position.lock().expect("position lock").clone();
        let mut offsets = TopicPartitionList::new();
        for p in &partitions {
            let next = position.get(p).copied();
            let replaced = check && self.log_replaced(*p, next).await;
            let offset = match next {
                Some(next) if !replaced => Offset::Offset(next),
                _ => Offset::Beginning,
            };
            if replaced {
                tracing::warn!(
                    partition = p,
                    position = ?next,
                    "The broker replaced the partition's log (the last message read is not \
                     where it was); reading the new log from its beginning."
                );
            }
            if let Err(error) = offsets.add_partition_offset(&self.config.kafka.topic, *p, offset) {
                tracing::error!(%error, "Could not build the assignment.");
                return;
            }
        }
        let fresh = match self.config.client_config().create::<StreamConsumer>() {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "Could not create a new consumer client.");
                return;
            }
        };
        if let Err(error) = fresh.assign(&offsets) {
            tracing::warn!(%error, "Could not assign the new consumer client.");
            return;
        }
        let stuck = [
            std::mem::replace(&mut self.consumer, Arc::new(fresh)),
            std::mem::replace(
                &mut *self.shared.lock().expect("shared lock"),
                self.consumer.clone(),
            ),
        ];
        // Closing a stuck client can wait on the broker for long: on a
        // thread of its own, so the new client reads meanwhile.
        std::thread::spawn(move || drop(stuck));
        self.paused = false;
        {
            let mut seen = self.seen.lock().expect("seen lock");
            seen.at = Instant::now();
            seen.renewed_for_loss = !check;
            seen.verify = if check {
                Default::default()
            } else {
                partitions.iter().copied().collect()
            };
        }
        self.metrics.renewals.inc();
        if check {
            tracing::warn!(
                ?partitions,
                stall = ?STALL,
                "The consumer read nothing while the broker held messages past its position; \
                 replaced its client."
            );
        } else {
            tracing::warn!(
                ?partitions,
                "The consumer lost every broker; replaced its client."
            );
        }
    }

    /// The offset and broker timestamp of the first message a client of
    /// its own reads from `from` in `partition` (from the log's start if
    /// `from` is past its end, if the broker says so); `None` if none came
    /// within [`READ_AT`].
    ///
    /// Closing that client can wait on the broker for long (one that went
    /// away meanwhile): it is closed on a thread of its own, and the answer
    /// is not waited for past [`READ_AT`] and a margin, so a check never
    /// holds the consumer up.
    pub(super) async fn read_at(&self, partition: i32, from: Offset) -> Option<(i64, Option<i64>)> {
        let client = self.config.client_config();
        let topic = self.config.kafka.topic.clone();
        let read = tokio::task::spawn_blocking(move || {
            let reader = client.create::<BaseConsumer>().ok()?;
            let mut at = TopicPartitionList::new();
            at.add_partition_offset(&topic, partition, from).ok()?;
            reader.assign(&at).ok()?;
            let started = Instant::now();
            let mut found = None;
            while found.is_none() && started.elapsed() < READ_AT {
                if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
                    found = Some((message.offset(), message.timestamp().to_millis()));
                }
            }
            std::thread::spawn(move || drop(reader));
            found
        });
        match tokio::time::timeout(READ_AT + Duration::from_secs(2), read).await {
            Ok(found) => found.ok().flatten(),
            Err(_) => {
                tracing::warn!(
                    partition,
                    "A check of the partition's log got no answer in time; taken as nothing read."
                );
                None
            }
        }
    }
}
