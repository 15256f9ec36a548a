//! The asynchronous architecture's back end: read the topic, store batches in
//! PostgreSQL.
//!
//! **Buffered** mode (the default) loses nothing: the consumer's position is
//! stored in the same transaction as the rows it covers and the partitions are
//! assigned explicitly from that stored position, so a crash at any moment
//! resumes exactly after the last stored batch. A circuit breaker guards the
//! database: while it is open the partitions are paused (bounded memory) and
//! the unstored batch is kept for the half-open probe.
//!
//! **Drop** mode reproduces the original proof of concept's policy as a named
//! baseline: a batch that fails, or arrives while the breaker is open, is
//! counted as dropped and the position moves past it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::body::Incoming;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::defaults;
use crate::event::{BodyShape, decode};
use crate::http::{self, App, Common, Identity, Response};
use crate::metrics::{ConsumerMetrics, DbMetrics};
use crate::producer::KafkaArgs;
use crate::store::{Batch, BatchStored, DbConfig, Position, Store, StoreError};

mod renewal;

use renewal::Seen;

/// The name the consumer gives itself in `/identity`.
pub const SERVICE: &str = "faultline-consumer";

/// What the consumer does with a batch it cannot store.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keep it, pause, and retry through the circuit breaker: nothing is lost.
    #[default]
    Buffered,
    /// Count it as dropped and move on: the original proof of concept's policy.
    Drop,
}

impl Mode {
    /// The value of `stored_by` for rows written in this mode.
    pub fn stored_by(self) -> &'static str {
        match self {
            Mode::Buffered => "kafka-buffered",
            Mode::Drop => "kafka-drop",
        }
    }
}

/// Configuration of the consumer service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "faultline-consumer",
    version,
    about = "Kafka consumer: stores the topic's events in PostgreSQL behind a circuit breaker"
)]
pub struct ConsumerConfig {
    /// Address of the metrics and health endpoint.
    #[arg(long, env = "FAULTLINE_LISTEN", default_value = "127.0.0.1:3003")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Name under which the position is stored.
    #[arg(long, env = "FAULTLINE_GROUP", default_value = "location-group")]
    pub group: String,
    /// What to do with a batch that cannot be stored.
    #[arg(long, env = "FAULTLINE_MODE", value_enum, default_value_t = Mode::Buffered)]
    pub mode: Mode,
    /// The `stored_by` value of the rows this consumer writes (default:
    /// `kafka-buffered` or `kafka-drop`, after the mode).
    #[arg(long, env = "FAULTLINE_STORED_BY")]
    pub stored_by: Option<String>,
    /// Most events written in one transaction.
    #[arg(long, env = "FAULTLINE_BATCH_SIZE", default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    /// Longest wait to fill a batch once its first event arrived, in milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_BATCH_LINGER_MS", default_value_t = defaults::BATCH_LINGER_MS)]
    pub batch_linger_ms: u64,
    /// Consecutive failed writes that open the breaker.
    #[arg(long, env = "FAULTLINE_BREAKER_FAILURES", default_value_t = defaults::BREAKER_FAILURES)]
    pub breaker_failures: u32,
    /// How long the breaker stays open, in milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_BREAKER_OPEN_MS", default_value_t = defaults::BREAKER_OPEN_MS)]
    pub breaker_open_ms: u64,
    /// Consecutive successes in half-open that close the breaker.
    #[arg(long, env = "FAULTLINE_BREAKER_SUCCESSES", default_value_t = defaults::BREAKER_SUCCESSES)]
    pub breaker_successes: u32,
    /// Pause between failed writes while the breaker is still closed, in
    /// milliseconds (buffered mode).
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_RETRY_BACKOFF_MS", default_value_t = 200)]
    pub retry_backoff_ms: u64,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub runtime: crate::RuntimeArgs,
}

impl ConsumerConfig {
    fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: self.breaker_failures.max(1),
            open_for: Duration::from_millis(self.breaker_open_ms),
            success_threshold: self.breaker_successes.max(1),
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.kafka.bootstrap_servers)
            .set("group.id", &self.group)
            .set("client.id", SERVICE)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "2000")
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "16384")
            .set("socket.connection.setup.timeout.ms", "2000")
            .set("reconnect.backoff.max.ms", "1000");
        self.kafka.apply(&mut client);
        client
    }
}

/// What the consumer adds to `GET /healthz`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ConsumerHealth {
    pub mode: Option<Mode>,
    /// `starting`, `migrating`, `consuming`...
    pub phase: Cow<'static, str>,
    /// The breaker's state, `closed`, `open` or `half-open`.
    pub breaker: Cow<'static, str>,
    /// Stored position: partition → next offset (for a drop consumer, past
    /// what it dropped).
    #[serde(deserialize_with = "partition_keys")]
    pub position: HashMap<i32, i64>,
    /// Events read and not yet stored.
    pub pending: usize,
}

/// A map keyed by partition, read from JSON's text keys: inside
/// [`http::Health`]'s flattened fields serde hands the keys over as text,
/// which a number key does not take by itself.
fn partition_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<HashMap<i32, i64>, D::Error> {
    use serde::Deserialize;
    HashMap::<String, i64>::deserialize(deserializer)?
        .into_iter()
        .map(|(partition, next)| {
            partition
                .parse()
                .map(|partition| (partition, next))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

struct Health(Arc<Mutex<ConsumerHealth>>);

impl App for Health {
    async fn handle(&self, request: Request<Incoming>) -> Response {
        http::not_found(request.uri().path())
    }

    fn health(&self) -> serde_json::Value {
        let status = self.0.lock().expect("status lock").clone();
        serde_json::to_value(status).unwrap_or_default()
    }
}

/// A batch read from the topic and not yet stored.
struct Pending {
    batch: Batch,
    /// The position once this batch is stored.
    next_offsets: HashMap<i32, i64>,
    /// Messages read, including any that were not valid events.
    messages: usize,
    /// Broker timestamp of the oldest message, in ms since the epoch.
    oldest_ms: Option<i64>,
}

/// A batch read while the one before it was being written: stored only
/// after that one is.
struct Ahead {
    pending: Pending,
    /// What [`Seen::last`] said before it was read, put back if the batch is
    /// let go unstored (the client is replaced and reads it again).
    last_before: HashMap<i32, (i64, Option<i64>)>,
}

/// What [`Worker::read_batch`] came back with.
enum Read {
    Batch(Box<Pending>),
    /// Nothing came for [`renewal::STALL`] while the broker holds messages past the
    /// position, or the broker replaced the log.
    Stalled,
    Shutdown,
}

struct Worker {
    config: ConsumerConfig,
    consumer: Arc<StreamConsumer>,
    /// The client in use, for the backlog's watcher.
    shared: Arc<Mutex<Arc<StreamConsumer>>>,
    seen: Mutex<Seen>,
    store: Store,
    breaker: Breaker,
    metrics: ConsumerMetrics,
    db_metrics: DbMetrics,
    status: Arc<Mutex<ConsumerHealth>>,
    /// Stored position (buffered) or in-memory position (drop).
    position: Arc<Mutex<HashMap<i32, i64>>>,
    /// The partitions assigned at the start, assigned again to a new client.
    partitions: Vec<i32>,
    paused: bool,
}

/// Runs the consumer until `shutdown` is cancelled, then stores the open
/// batch (if the database lets it) and stops.
pub async fn run(
    listener: TcpListener,
    config: ConsumerConfig,
    shutdown: CancellationToken,
) -> Result<(), KafkaError> {
    let consumer: Arc<StreamConsumer> = Arc::new(config.client_config().create()?);
    let store = Store::new(config.db.clone())
        .map_err(|e| KafkaError::ClientCreation(format!("invalid database configuration: {e}")))?;
    let mut registry = crate::metrics::registry(SERVICE);
    let metrics = ConsumerMetrics::register(&mut registry);
    let db_metrics = DbMetrics::register(&mut registry);
    let store = store.observed(db_metrics.pool.clone());
    let status = Arc::new(Mutex::new(ConsumerHealth {
        mode: Some(config.mode),
        phase: "starting".into(),
        breaker: BreakerState::Closed.as_str().into(),
        ..ConsumerHealth::default()
    }));
    let common = Arc::new(Common {
        identity: Identity::new(SERVICE),
        registry,
        http_metrics: None,
        started: Instant::now(),
    });
    let http_stop = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        Arc::new(Health(status.clone())),
        common,
        http_stop.clone(),
    ));
    let position = Arc::new(Mutex::new(HashMap::new()));
    let shared = Arc::new(Mutex::new(consumer.clone()));
    let backlog = tokio::spawn(watch_backlog(
        shared.clone(),
        config.kafka.topic.clone(),
        position.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let mut worker = Worker {
        breaker: Breaker::new(config.breaker()),
        config,
        consumer,
        shared,
        seen: Mutex::new(Seen {
            at: Instant::now(),
            checked: Instant::now(),
            last: HashMap::new(),
            lost: false,
            renewed_for_loss: false,
            verify: Default::default(),
        }),
        store,
        metrics,
        db_metrics,
        status,
        position,
        partitions: Vec::new(),
        paused: false,
    };
    tracing::info!(mode = ?worker.config.mode, topic = %worker.config.kafka.topic, "Consumer starting.");
    if worker.start(&shutdown).await {
        worker.consume(&shutdown).await;
    }
    backlog.abort();
    http_stop.cancel();
    let _ = server.await;
    tracing::info!("Consumer stopped.");
    Ok(())
}

impl Worker {
    fn set_phase(&self, phase: &'static str) {
        self.status.lock().expect("status lock").phase = phase.into();
    }

    /// Migrates, loads the stored position and assigns the partitions from
    /// it, retrying each step until it works. `false` if shut down first.
    async fn start(&mut self, shutdown: &CancellationToken) -> bool {
        let retry = Duration::from_secs(1);
        self.set_phase("migrating");
        while let Err(error) = self.store.migrate().await {
            tracing::warn!(%error, "Schema migration failed; retrying.");
            if sleep_or_cancel(retry, shutdown).await {
                return false;
            }
        }
        self.set_phase("loading position");
        let stored = loop {
            match self
                .store
                .load_position(&self.config.group, &self.config.kafka.topic)
                .await
            {
                Ok(position) => break position,
                Err(error) => tracing::warn!(%error, "Could not load the position; retrying."),
            }
            if sleep_or_cancel(retry, shutdown).await {
                return false;
            }
        };
        self.set_phase("waiting for the topic");
        let partitions = loop {
            match self.partitions().await {
                Ok(partitions) if !partitions.is_empty() => break partitions,
                Ok(_) => {
                    tracing::warn!(topic = %self.config.kafka.topic, "Topic has no partitions yet; retrying.")
                }
                Err(error) => {
                    tracing::warn!(%error, "Could not read the topic's metadata; retrying.")
                }
            }
            if sleep_or_cancel(retry, shutdown).await {
                return false;
            }
        };
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            let offset = match stored.next_offsets.get(partition) {
                Some(next) => Offset::Offset(*next),
                None => Offset::Beginning,
            };
            if let Err(error) =
                assignment.add_partition_offset(&self.config.kafka.topic, *partition, offset)
            {
                tracing::error!(%error, partition, "Could not build the assignment.");
                return false;
            }
        }
        if let Err(error) = self.consumer.assign(&assignment) {
            tracing::error!(%error, "Could not assign the partitions.");
            return false;
        }
        tracing::info!(?partitions, position = ?stored.next_offsets, "Partitions assigned from the stored position.");
        *self.position.lock().expect("position lock") = stored.next_offsets;
        self.partitions = partitions;
        self.set_phase("consuming");
        true
    }

    async fn partitions(&self) -> Result<Vec<i32>, KafkaError> {
        let consumer = self.consumer.clone();
        let topic = self.config.kafka.topic.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(3))?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect())
        })
        .await
        .expect("the metadata task does not panic")
    }

    async fn consume(&mut self, shutdown: &CancellationToken) {
        let mut ahead: Option<Ahead> = None;
        loop {
            let pending = match ahead.take() {
                // Read while the last batch was written: topped up for the
                // linger time, as a batch read now would be.
                Some(Ahead { mut pending, .. }) if pending.messages > 0 => {
                    self.fill(&mut pending).await;
                    pending
                }
                _ => match self.read_batch(shutdown).await {
                    Read::Batch(pending) => *pending,
                    Read::Stalled => {
                        self.renew(true).await;
                        continue;
                    }
                    Read::Shutdown => return,
                },
            };
            let stored = match self.config.mode {
                Mode::Buffered => {
                    let (stored, next) = self.store_buffered(pending, shutdown).await;
                    ahead = next;
                    stored
                }
                Mode::Drop => {
                    self.store_or_drop(pending).await;
                    true
                }
            };
            if !stored {
                return;
            }
            let lost = {
                let mut seen = self.seen.lock().expect("seen lock");
                std::mem::take(&mut seen.lost) && !seen.renewed_for_loss
            };
            if lost {
                // The new client reads from the stored position: what was
                // read ahead is read again.
                if let Some(Ahead { last_before, .. }) = ahead.take() {
                    self.seen.lock().expect("seen lock").last = last_before;
                }
                self.renew(false).await;
            }
        }
    }

    /// Reads up to a batch: waits for a first message, then fills the batch
    /// until it is full or the linger time is up.
    async fn read_batch(&mut self, shutdown: &CancellationToken) -> Read {
        let mut pending = self.new_pending(self.position.lock().expect("position lock").clone());
        let first = loop {
            self.publish_gauges(None);
            // The check for a stuck client runs beside the read: a message
            // that comes meanwhile is not kept waiting.
            tokio::select! {
                message = self.consumer.recv() => break message,
                () = shutdown.cancelled() => return Read::Shutdown,
                stuck = self.stalled() => if stuck {
                    return Read::Stalled;
                },
            }
        };
        // The first message after the client lost every broker: if the
        // broker came back with a new log, what was read before is gone.
        if let Ok(message) = &first {
            let partition = message.partition();
            let verify = self
                .seen
                .lock()
                .expect("seen lock")
                .verify
                .remove(&partition);
            let next = self
                .position
                .lock()
                .expect("position lock")
                .get(&partition)
                .copied();
            if verify && self.log_replaced(partition, next).await {
                return Read::Stalled;
            }
        }
        self.take(&mut pending, first);
        self.fill(&mut pending).await;
        Read::Batch(Box::new(pending))
    }

    /// An empty batch that starts at `next_offsets`.
    fn new_pending(&self, next_offsets: HashMap<i32, i64>) -> Pending {
        Pending {
            batch: Batch::new(
                self.config
                    .stored_by
                    .as_deref()
                    .unwrap_or(self.config.mode.stored_by()),
                self.config.batch_size.max(1),
            ),
            next_offsets,
            messages: 0,
            oldest_ms: None,
        }
    }

    /// Adds what comes within the linger time, until the batch is full.
    async fn fill(&self, pending: &mut Pending) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.batch_linger_ms);
        while pending.messages < self.config.batch_size.max(1) {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(message) => self.take(pending, message),
                Err(_) => break,
            }
        }
    }

    fn take(
        &self,
        pending: &mut Pending,
        message: Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>,
    ) {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                if let KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown) = error {
                    let replaced = {
                        let mut seen = self.seen.lock().expect("seen lock");
                        seen.lost = true;
                        !seen.renewed_for_loss
                    };
                    // The client is to be replaced: it stops fetching at
                    // once, so that a broker back with its topics created
                    // anew cannot answer its fetches with metadata that
                    // crashes it (see [`Worker::renew`]).
                    if replaced && let Err(error) = self.consumer.unassign() {
                        tracing::warn!(%error, "Could not unassign the client that lost every broker.");
                    }
                }
                tracing::warn!(%error, "Fetch error.");
                return;
            }
        };
        pending.messages += 1;
        pending
            .next_offsets
            .insert(message.partition(), message.offset() + 1);
        {
            let mut seen = self.seen.lock().expect("seen lock");
            seen.at = Instant::now();
            seen.renewed_for_loss = false;
            seen.last.insert(
                message.partition(),
                (message.offset(), message.timestamp().to_millis()),
            );
        }
        if let Some(ms) = message.timestamp().to_millis() {
            pending.oldest_ms = Some(pending.oldest_ms.map_or(ms, |old| old.min(ms)));
        }
        let decoded = message
            .payload()
            .ok_or_else(|| "empty message".to_string())
            .and_then(|payload| {
                decode(payload, BodyShape::Event, chrono::Utc::now).map_err(|e| e.to_string())
            });
        match decoded {
            Ok(event) => pending.batch.push(event),
            Err(problem) => {
                self.metrics.rejected.inc();
                tracing::warn!(partition = message.partition(), offset = message.offset(), %problem, "Skipping a message that is not a valid event.");
            }
        }
    }

    async fn write(&mut self, pending: &Pending) -> Result<BatchStored, StoreError> {
        let started = Instant::now();
        let result = self
            .store
            .insert_batch(&pending.batch, &self.position_of(pending))
            .await;
        self.record_write(pending, &result, started);
        result
    }

    /// Writes `pending` and meanwhile reads what follows it on the topic,
    /// up to a batch, so that the next write does not wait for the broker
    /// (the time to read a batch and the time to write one add up
    /// otherwise). Nothing read ahead is stored before `pending` is.
    async fn write_reading_ahead(
        &mut self,
        pending: &Pending,
    ) -> (Result<BatchStored, StoreError>, Ahead) {
        let mut ahead = Ahead {
            pending: self.new_pending(pending.next_offsets.clone()),
            last_before: self.seen.lock().expect("seen lock").last.clone(),
        };
        let capacity = self.config.batch_size.max(1);
        let started = Instant::now();
        let store = self.store.clone();
        let position = self.position_of(pending);
        let write = store.insert_batch(&pending.batch, &position);
        tokio::pin!(write);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut write => break result,
                message = self.consumer.recv(), if ahead.pending.messages < capacity => {
                    self.take(&mut ahead.pending, message);
                }
            }
        };
        self.record_write(pending, &result, started);
        (result, ahead)
    }

    fn position_of(&self, pending: &Pending) -> Position {
        Position {
            group: self.config.group.clone(),
            topic: self.config.kafka.topic.clone(),
            next_offsets: pending.next_offsets.clone(),
        }
    }

    /// The breaker, the metrics and the log learn how a write went.
    fn record_write(
        &mut self,
        pending: &Pending,
        result: &Result<BatchStored, StoreError>,
        started: Instant,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        let now = Instant::now();
        match result {
            Ok(stored) => {
                self.breaker.on_success(now);
                let delivered = pending.batch.len() as u64 - stored.conflicts;
                self.db_metrics.write_ok(seconds, stored.new, delivered);
                self.db_metrics.conflicts.inc_by(stored.conflicts);
                if stored.conflicts > 0 {
                    tracing::warn!(
                        events = stored.conflicts,
                        "Events reuse an id already stored with another payload; the stored ones are left alone."
                    );
                }
                self.metrics.batch_size.observe(pending.batch.len() as f64);
            }
            Err(error) => {
                self.breaker.on_failure(now);
                self.db_metrics.write_failed(seconds, error.kind());
                tracing::warn!(%error, events = pending.batch.len(), breaker = self.breaker.state(now).as_str(), "Batch write failed.");
            }
        }
    }

    fn advance(&self, pending: &Pending) {
        let mut position = self.position.lock().expect("position lock");
        position.clone_from(&pending.next_offsets);
        self.status.lock().expect("status lock").position = position.clone();
    }

    /// Buffered mode: retries the batch through the breaker until it is
    /// stored. `false` if shut down first (the batch stays on the topic).
    /// The first attempt reads the next batch meanwhile (unless shutting
    /// down, or a new client's first message is still to be checked, which
    /// a batch read now does): it comes back with the answer.
    async fn store_buffered(
        &mut self,
        pending: Pending,
        shutdown: &CancellationToken,
    ) -> (bool, Option<Ahead>) {
        let mut ahead = None;
        let mut first = true;
        loop {
            let now = Instant::now();
            if !self.breaker.allow(now) {
                self.pause(true);
                self.publish_gauges(Some(&pending));
                let wait = self.breaker.wait(now).min(Duration::from_secs(1));
                if sleep_or_cancel(wait, shutdown).await {
                    return (false, None);
                }
                continue;
            }
            self.publish_gauges(Some(&pending));
            let read_ahead = std::mem::take(&mut first)
                && !shutdown.is_cancelled()
                && self.seen.lock().expect("seen lock").verify.is_empty();
            let written = if read_ahead {
                let (written, read) = self.write_reading_ahead(&pending).await;
                ahead = Some(read);
                written
            } else {
                self.write(&pending).await
            };
            if written.is_ok() {
                self.advance(&pending);
                self.pause(false);
                self.publish_gauges(None);
                return (true, ahead);
            }
            if shutdown.is_cancelled() {
                return (false, None);
            }
            if self.breaker.state(Instant::now()) != BreakerState::Open {
                let backoff = Duration::from_millis(self.config.retry_backoff_ms);
                if sleep_or_cancel(backoff, shutdown).await {
                    return (false, None);
                }
            }
        }
    }

    /// Drop mode: one attempt if the breaker allows it; either way the
    /// position moves past the batch.
    async fn store_or_drop(&mut self, pending: Pending) {
        let stored = self.breaker.allow(Instant::now()) && self.write(&pending).await.is_ok();
        if !stored {
            self.metrics.dropped.inc_by(pending.batch.len() as u64);
        }
        self.advance(&pending);
        self.publish_gauges(None);
    }

    fn pause(&mut self, pause: bool) {
        if self.paused == pause {
            return;
        }
        let result = self.consumer.assignment().and_then(|assignment| {
            if pause {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            }
        });
        match result {
            Ok(()) => {
                self.paused = pause;
                tracing::info!(
                    paused = pause,
                    "Fetching {}.",
                    if pause { "paused" } else { "resumed" }
                );
            }
            Err(error) => {
                tracing::warn!(%error, pause, "Could not pause or resume the partitions.")
            }
        }
    }

    fn publish_gauges(&self, pending: Option<&Pending>) {
        let state = self.breaker.state(Instant::now());
        self.metrics.breaker_state.set(state.code());
        let lag = pending
            .and_then(|p| p.oldest_ms)
            .map(|ms| (chrono::Utc::now().timestamp_millis() - ms).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.metrics.lag_seconds.set(lag);
        let mut status = self.status.lock().expect("status lock");
        status.breaker = state.as_str().into();
        status.pending = pending.map_or(0, |p| p.batch.len());
    }
}

/// Every second, reads each partition's high watermark and publishes the
/// backlog: messages on the topic past the position.
async fn watch_backlog(
    shared: Arc<Mutex<Arc<StreamConsumer>>>,
    topic: String,
    position: Arc<Mutex<HashMap<i32, i64>>>,
    metrics: ConsumerMetrics,
    shutdown: CancellationToken,
) {
    // Unknown until the partitions are assigned: −1, never a false 0.
    metrics.backlog.set(-1);
    loop {
        if sleep_or_cancel(Duration::from_secs(1), &shutdown).await {
            return;
        }
        let consumer = shared.lock().expect("shared lock").clone();
        let Ok(assignment) = consumer.assignment() else {
            metrics.backlog.set(-1);
            continue;
        };
        let partitions: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        if partitions.is_empty() {
            metrics.backlog.set(-1);
            continue;
        }
        let consumer = consumer.clone();
        let topic = topic.clone();
        let highs = tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .filter_map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, Duration::from_millis(800))
                        .ok()
                        .map(|(_, high)| (p, high))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        if highs.is_empty() {
            continue;
        }
        let position = position.lock().expect("position lock").clone();
        let backlog: i64 = highs
            .iter()
            .map(|(p, high)| (high - position.get(p).copied().unwrap_or(0)).max(0))
            .sum();
        metrics.backlog.set(backlog);
    }
}

/// Sleeps for `duration`; `true` if `shutdown` was cancelled first.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab reads a consumer's position from its health answer: every
    /// field comes back, the partitions as numbers.
    #[test]
    fn a_health_answer_reads_back_with_its_position() {
        let own = ConsumerHealth {
            mode: Some(Mode::Drop),
            phase: "consuming".into(),
            breaker: "open".into(),
            position: HashMap::from([(0, 41), (3, 7)]),
            pending: 2,
        };
        let answer = http::Health {
            status: "ok".into(),
            service: SERVICE.into(),
            version: "x".into(),
            uptime_s: 1.0,
            own: serde_json::to_value(&own).unwrap(),
        };
        let text = serde_json::to_string(&answer).unwrap();
        let read: http::Health<ConsumerHealth> = serde_json::from_str(&text).unwrap();
        assert_eq!(read.own, own);
        assert_eq!(read.service, SERVICE);
    }
}
