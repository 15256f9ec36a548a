//! Metrics exported by the services on `GET /metrics`, in the OpenMetrics
//! text format that Prometheus scrapes.
//!
//! The names are declared once here and used both by the services that export
//! them and by the lab that scrapes them. Counters are exported with a
//! `_total` suffix added to the family name (`rest_http_requests` is scraped as
//! `rest_http_requests_total`), as OpenMetrics requires.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Metric family names. The original proof of concept's names are kept.
pub mod names {
    /// Counter, label `status`: HTTP answers of the REST service.
    pub const REST_HTTP_REQUESTS: &str = "rest_http_requests";
    /// Counter, label `status`: HTTP answers of the producer service.
    pub const PRODUCER_HTTP_REQUESTS: &str = "producer_http_requests";
    /// Histogram, label `status`: time from request to answer, in seconds.
    pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
    /// Counter, label `status` (`success` | `error`): produce outcomes.
    pub const KAFKA_PRODUCE: &str = "kafka_produce";
    /// Histogram: time from produce to broker acknowledgement, in seconds.
    pub const KAFKA_PRODUCE_DURATION: &str = "kafka_produce_duration_seconds";
    /// Gauge, label `partition`: the offset after the last record the
    /// broker acknowledged on the partition, the topic's end as the
    /// producer saw it (a broker's own end offset may count batches, not
    /// records: tansu's does).
    pub const KAFKA_PRODUCE_END_OFFSET: &str = "kafka_produce_end_offset";
    /// Counter: producer clients replaced after a fatal error.
    pub const KAFKA_PRODUCER_RESTARTS: &str = "kafka_producer_restarts";
    /// Counter: consumer clients replaced because they stopped reading.
    pub const KAFKA_CONSUMER_RENEWALS: &str = "kafka_consumer_renewals";
    /// Gauge: 0 closed, 1 half-open, 2 open.
    pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker_state";
    /// Gauge: age in seconds of the oldest event read but not yet stored.
    pub const KAFKA_CONSUMER_LAG_SECONDS: &str = "kafka_consumer_lag_seconds";
    /// Gauge: messages on the topic not yet stored (high watermark −
    /// position); −1 while the consumer has no partitions (unknown).
    pub const CONSUMER_BACKLOG_MESSAGES: &str = "consumer_backlog_messages";
    /// Counter: events newly stored in the database.
    pub const EVENTS_STORED: &str = "events_stored";
    /// Counter: events whose id was already stored (a redelivery or a resend).
    pub const EVENTS_DUPLICATE: &str = "events_duplicate";
    /// Counter: events whose id was already stored with another payload
    /// (another driver, position or time): refused, not redeliveries.
    pub const EVENTS_CONFLICT: &str = "events_conflict";
    /// Counter: events given up on without being stored (drop mode).
    pub const EVENTS_DROPPED: &str = "events_dropped";
    /// Counter: messages on the topic that are not valid events.
    pub const EVENTS_REJECTED: &str = "events_rejected";
    /// Histogram: events per stored batch.
    pub const CONSUMER_BATCH_SIZE: &str = "consumer_batch_size";
    /// Histogram, label `outcome`: duration of a database write, in seconds.
    pub const DB_WRITE_DURATION: &str = "db_write_duration_seconds";
    /// Counter, label `kind`: database errors by kind.
    pub const DB_ERRORS: &str = "db_errors";
    /// Histogram: how long a write waited for a pooled connection, in
    /// seconds (to the acquire timeout when it got none).
    pub const DB_POOL_WAIT: &str = "db_pool_wait_seconds";
    /// Histogram: how long a write held its connection (its round trips),
    /// in seconds.
    pub const DB_CONNECTION_HELD: &str = "db_connection_held_seconds";
    /// Gauge: the most connections the pool opens.
    pub const DB_POOL_MAX: &str = "db_pool_max_connections";
    /// Gauge, labels `service`, `version`: always 1.
    pub const BUILD_INFO: &str = "faultline_build_info";

    // The lab's own series, beside the services' so that each name has
    // one home.

    /// A sample of `metrics.parquet` (service `lab`): a consumer's backlog
    /// as the lab measures it, the end offsets at the broker minus the
    /// consumer's position.
    pub const LAB_BACKLOG: &str = "lab_backlog_messages";
    /// The dashboard's `/metrics` (OpenMetrics), labels `run`,
    /// `repetition`, `architecture`, `outcome` (`ok` | `failed`): requests
    /// answered.
    pub const LAB_REQUESTS: &str = "faultline_lab_requests";
    /// The dashboard's `/metrics`, histogram, labels `run`, `repetition`,
    /// `architecture`: latency of the requests answered ok, from the time
    /// each was due, in seconds.
    pub const LAB_REQUEST_DURATION: &str = "faultline_lab_request_duration_seconds";
    /// The dashboard's `/metrics`, gauge: a consumer's backlog as the lab
    /// measures it ([`LAB_BACKLOG`]).
    pub const LAB_BACKLOG_MESSAGES: &str = "faultline_lab_backlog_messages";
    /// The dashboard's `/metrics`, gauge: a consumer's breaker, 0 closed,
    /// 1 half-open, 2 open.
    pub const LAB_BREAKER_STATE: &str = "faultline_lab_breaker_state";
    /// The dashboard's `/metrics`, gauge, labels `run`, `repetition`,
    /// `kind`: 1 while a fault of the kind is injected.
    pub const LAB_FAULT_ACTIVE: &str = "faultline_lab_fault_active";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProduceLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    service: &'static str,
    version: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A registry with the build info every service exports.
pub fn registry(service: &'static str) -> Registry {
    let mut registry = Registry::default();
    let info = Family::<BuildLabel, Gauge>::default();
    info.get_or_create(&BuildLabel {
        service,
        version: crate::VERSION,
    })
    .set(1);
    registry.register(names::BUILD_INFO, "Which faultline service this is", info);
    registry
}

/// Renders a registry as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// HTTP answers and their latency.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<StatusLabel, Counter>,
    duration: LatencyFamily<StatusLabel>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry, requests_name: &str) -> Self {
        let requests = Family::<StatusLabel, Counter>::default();
        let duration = LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(requests_name, "HTTP answers by status", requests.clone());
        registry.register(
            names::HTTP_REQUEST_DURATION,
            "Time from request to answer in seconds, by status",
            duration.clone(),
        );
        Self { requests, duration }
    }

    pub fn observe(&self, status: u16, seconds: f64) {
        let label = StatusLabel { status };
        self.requests.get_or_create(&label).inc();
        self.duration.get_or_create(&label).observe(seconds);
    }
}

/// The pool's side of each write: the wait for a connection and the time
/// it was held, which with the pool's size bound how many writes a second
/// can complete.
#[derive(Clone, Debug)]
pub struct PoolMetrics {
    pub wait: Histogram,
    pub held: Histogram,
    pub max: Gauge,
}

/// Database writes: outcomes, latency, errors, stored and duplicate events.
#[derive(Clone)]
pub struct DbMetrics {
    pub stored: Counter,
    pub duplicates: Counter,
    pub conflicts: Counter,
    pub pool: PoolMetrics,
    write_duration: LatencyFamily<OutcomeLabel>,
    errors: Family<KindLabel, Counter>,
}

impl DbMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            stored: Counter::default(),
            duplicates: Counter::default(),
            conflicts: Counter::default(),
            pool: PoolMetrics {
                wait: latency_histogram(),
                held: latency_histogram(),
                max: Gauge::default(),
            },
            write_duration: LatencyFamily::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ),
            errors: Family::default(),
        };
        registry.register(
            names::EVENTS_STORED,
            "Events newly stored in the database",
            metrics.stored.clone(),
        );
        registry.register(
            names::EVENTS_DUPLICATE,
            "Events whose id was already stored",
            metrics.duplicates.clone(),
        );
        registry.register(
            names::EVENTS_CONFLICT,
            "Events whose id was already stored with another payload",
            metrics.conflicts.clone(),
        );
        registry.register(
            names::DB_WRITE_DURATION,
            "Duration of a database write in seconds, by outcome",
            metrics.write_duration.clone(),
        );
        registry.register(
            names::DB_ERRORS,
            "Database errors by kind",
            metrics.errors.clone(),
        );
        registry.register(
            names::DB_POOL_WAIT,
            "Time a write waited for a pooled connection in seconds",
            metrics.pool.wait.clone(),
        );
        registry.register(
            names::DB_CONNECTION_HELD,
            "Time a write held its pooled connection in seconds",
            metrics.pool.held.clone(),
        );
        registry.register(
            names::DB_POOL_MAX,
            "The most connections the pool opens",
            metrics.pool.max.clone(),
        );
        metrics
    }

    pub fn write_ok(&self, seconds: f64, new: u64, total: u64) {
        self.write_duration
            .get_or_create(&OutcomeLabel { outcome: "ok" })
            .observe(seconds);
        self.stored.inc_by(new);
        self.duplicates.inc_by(total - new);
    }

    pub fn write_failed(&self, seconds: f64, kind: &'static str) {
        self.write_duration
            .get_or_create(&OutcomeLabel { outcome: "error" })
            .observe(seconds);
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }
}

/// Produce outcomes and broker acknowledgement latency.
#[derive(Clone)]
pub struct ProduceMetrics {
    outcomes: Family<ProduceLabel, Counter>,
    duration: Histogram,
    restarts: Counter,
    end_offsets: Family<PartitionLabel, Gauge>,
}

impl ProduceMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            outcomes: Family::default(),
            duration: latency_histogram(),
            restarts: Counter::default(),
            end_offsets: Family::default(),
        };
        registry.register(
            names::KAFKA_PRODUCE_END_OFFSET,
            "The offset after the last record the broker acknowledged, per partition",
            metrics.end_offsets.clone(),
        );
        registry.register(
            names::KAFKA_PRODUCE,
            "Produce outcomes: success once the broker acknowledged, error otherwise",
            metrics.outcomes.clone(),
        );
        registry.register(
            names::KAFKA_PRODUCE_DURATION,
            "Time from produce to broker acknowledgement in seconds",
            metrics.duration.clone(),
        );
        registry.register(
            names::KAFKA_PRODUCER_RESTARTS,
            "Clients replaced after a fatal error (a broker that forgot the idempotent producer)",
            metrics.restarts.clone(),
        );
        metrics
    }

    /// The broker acknowledged a record at `offset` of `partition`: the
    /// partition's end is past it (acknowledgements of concurrent requests
    /// come in any order: the furthest counts).
    pub fn acknowledged(&self, partition: i32, offset: i64) {
        self.end_offsets
            .get_or_create(&PartitionLabel { partition })
            .inner()
            .fetch_max(offset + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A dead client was replaced (a broker that forgot the producer, its
    /// topics too if it kept them in memory): the ends start again from
    /// the next acknowledgements.
    pub fn restarted(&self) {
        self.end_offsets.clear();
        self.restarts.inc();
    }

    pub fn observe(&self, ok: bool, seconds: f64) {
        let status = if ok { "success" } else { "error" };
        self.outcomes.get_or_create(&ProduceLabel { status }).inc();
        if ok {
            self.duration.observe(seconds);
        }
    }
}

/// The consumer's state: breaker, lag, backlog, batches, dropped events.
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub breaker_state: Gauge,
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub backlog: Gauge,
    pub dropped: Counter,
    pub rejected: Counter,
    pub batch_size: Histogram,
    pub renewals: Counter,
}

impl ConsumerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            breaker_state: Gauge::default(),
            lag_seconds: Gauge::default(),
            backlog: Gauge::default(),
            dropped: Counter::default(),
            rejected: Counter::default(),
            batch_size: batch_histogram(),
            renewals: Counter::default(),
        };
        registry.register(
            names::CIRCUIT_BREAKER_STATE,
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            metrics.breaker_state.clone(),
        );
        registry.register(
            names::KAFKA_CONSUMER_LAG_SECONDS,
            "Age in seconds of the oldest event read but not yet stored",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            names::CONSUMER_BACKLOG_MESSAGES,
            "Messages on the topic not yet stored",
            metrics.backlog.clone(),
        );
        registry.register(
            names::EVENTS_DROPPED,
            "Events given up on without being stored",
            metrics.dropped.clone(),
        );
        registry.register(
            names::EVENTS_REJECTED,
            "Messages on the topic that are not valid events",
            metrics.rejected.clone(),
        );
        registry.register(
            names::CONSUMER_BATCH_SIZE,
            "Events per stored batch",
            metrics.batch_size.clone(),
        );
        registry.register(
            names::KAFKA_CONSUMER_RENEWALS,
            "Consumer clients replaced because they stopped reading a topic that had messages",
            metrics.renewals.clone(),
        );
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exported_with_the_original_names() {
        let mut registry = registry("rest");
        let http = HttpMetrics::register(&mut registry, names::REST_HTTP_REQUESTS);
        let db = DbMetrics::register(&mut registry);
        let consumer = ConsumerMetrics::register(&mut registry);
        http.observe(503, 0.002);
        db.write_ok(0.001, 3, 4);
        consumer.breaker_state.set(2);
        consumer.lag_seconds.set(1.5);
        let text = render(&registry);
        for line in [
            r#"rest_http_requests_total{status="503"} 1"#,
            "events_stored_total 3",
            "events_duplicate_total 1",
            "circuit_breaker_state 2",
            "kafka_consumer_lag_seconds 1.5",
            r#"faultline_build_info{service="rest",version=""#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
