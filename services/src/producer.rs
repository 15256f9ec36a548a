//! The asynchronous architecture's front door: `POST` a location, it is
//! produced to the topic keyed by driver, and the answer is 202 only after the
//! broker acknowledged it (acks=all, idempotent producer). Broker trouble is a
//! 503 within the delivery timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, ClientContext};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::event::BodyShape;
use crate::http::{self, App, Common, Identity, Response};
use crate::metrics::{HttpMetrics, ProduceMetrics, names};

/// What the producer adds to `GET /healthz`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ProducerHealth {
    pub topic: String,
    /// Messages handed to the client and not yet acknowledged or failed.
    pub in_flight: i32,
    /// How many times the client was made anew (a broker that forgot
    /// every producer id makes the old one fatal).
    pub generation: u64,
}

/// The name the producer gives itself in `/identity`.
pub const SERVICE: &str = "faultline-producer";
/// The original proof of concept's topic.
pub const DEFAULT_TOPIC: &str = "driver-locations";

/// Where the topic is: shared by the producer and the consumer.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = crate::vars::BOOTSTRAP_SERVERS,
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// The topic of location events.
    #[arg(long, env = "FAULTLINE_TOPIC", default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// More librdkafka properties, one `key=value` per line, e.g. a managed
    /// cluster's TLS or SASL settings. The settings this service relies on
    /// (acks, idempotence, the group and its offsets) are kept.
    #[arg(
        long,
        env = crate::vars::KAFKA_PROPERTIES,
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub properties: String,
}

/// Properties a service sets itself, whatever `--properties` says, with
/// librdkafka's aliases of them (one set under either name would race the
/// other).
pub const KEPT_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    // The link proxy tells consumers from producers by it.
    "client.id",
    "linger.ms",
    "queue.buffering.max.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
];

impl KafkaArgs {
    /// The extra properties as (key, value) pairs.
    pub fn extra_properties(&self) -> Vec<(String, String)> {
        self.properties
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .filter(|(key, _)| !key.is_empty())
            .collect()
    }

    /// Adds the extra properties to `client`, but for [`KEPT_PROPERTIES`].
    pub fn apply(&self, client: &mut ClientConfig) {
        for (key, value) in self.extra_properties() {
            if KEPT_PROPERTIES.contains(&key.as_str()) {
                tracing::warn!(%key, "Ignoring a Kafka property this service sets itself.");
            } else {
                client.set(key, value);
            }
        }
    }
}

/// Configuration of the producer service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "faultline-producer",
    version,
    about = "Kafka producer: POST a location, 202 once the broker acknowledged it"
)]
pub struct ProducerConfig {
    /// Address to listen on.
    #[arg(long, env = "FAULTLINE_LISTEN", default_value = "127.0.0.1:3002")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Longest wait for the broker's acknowledgement, in milliseconds. The
    /// client scans for expired messages once a second, so a 503 comes at
    /// most about a second after this.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_DELIVERY_TIMEOUT_MS", default_value_t = crate::defaults::DELIVERY_TIMEOUT_MS)]
    pub delivery_timeout_ms: u64,
    /// How long the producer waits to fill a batch, in milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_LINGER_MS", default_value_t = 2)]
    pub linger_ms: u64,
    /// Seconds a client is told to wait (`Retry-After`) when the broker is down.
    #[arg(long, env = "FAULTLINE_RETRY_AFTER_S", default_value_t = 1)]
    pub retry_after_s: u32,
    #[command(flatten)]
    pub runtime: crate::RuntimeArgs,
}

/// The client settings for an acks=all idempotent producer.
pub fn client_config(config: &ProducerConfig) -> ClientConfig {
    let delivery = config.delivery_timeout_ms.max(1);
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("client.id", SERVICE)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", delivery.to_string())
        .set("request.timeout.ms", delivery.min(5000).to_string())
        .set("linger.ms", config.linger_ms.to_string())
        // Topics are made by whoever runs the broker: a producer asking for
        // one that is not there (a broker restarted with memory storage)
        // must not have it created with the broker's defaults first.
        .set("allow.auto.create.topics", "false")
        .set("socket.connection.setup.timeout.ms", "2000")
        .set("reconnect.backoff.max.ms", "1000");
    config.kafka.apply(&mut client);
    client
}

/// The topic a producer of `topic` delivers its probes to (one partition,
/// created beside the events' topic by whoever creates that).
pub fn probe_topic(topic: &str) -> String {
    format!("{topic}-probe")
}

/// The event routes: ours, and the original proof of concept's.
const ROUTES: &[(&str, BodyShape)] = &[
    ("/events", BodyShape::Event),
    ("/produce-event", BodyShape::Legacy),
];

/// A client's context: notes when the client lost every broker.
struct Watch {
    lost: Arc<AtomicBool>,
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.lost.store(true, Ordering::Relaxed);
        }
        tracing::warn!(target: "librdkafka", "librdkafka: {error}: {reason}");
    }
}

/// The producer's client.
type Client = FutureProducer<Watch>;

/// A client in use: its generation, when it was made and whether it lost
/// every broker since it last delivered.
struct InUse {
    generation: u64,
    client: Client,
    created: Instant,
    lost: Arc<AtomicBool>,
}

/// A client that lost every broker is replaced at the next send once it is
/// this old: one whose broker came back with its topics created anew (a
/// broker that kept them in memory) waits on metadata it cannot use.
const LOST_CLIENT_AGE: Duration = Duration::from_secs(1);

struct Producer {
    /// The client and its generation: a client that stopped delivering (an
    /// idempotent producer whose broker restarted and forgot it never
    /// recovers by itself) is replaced by a new one.
    producer: RwLock<InUse>,
    client: ClientConfig,
    /// Failed sends in a row of the current client, and when it started.
    failing: Mutex<(u32, Instant)>,
    /// Failures in a row, over at least this long, replace the client.
    patience: Duration,
    topic: String,
    /// Where `POST /probe` delivers: the events' topic stays the load's.
    probe_topic: String,
    metrics: ProduceMetrics,
    retry_after_s: u32,
}

/// Failed sends in a row that, over [`Producer::patience`], replace a client.
const FAILURES_BEFORE_REPLACING: u32 = 3;

impl Producer {
    /// The client in use and its generation; a client that lost every
    /// broker since it last delivered is replaced first (at most once per
    /// [`LOST_CLIENT_AGE`]).
    fn current(&self) -> (u64, Client) {
        let (generation, client, lost) = {
            let current = self.producer.read().unwrap_or_else(|e| e.into_inner());
            (
                current.generation,
                current.client.clone(),
                current.lost.load(Ordering::Relaxed)
                    && current.created.elapsed() >= LOST_CLIENT_AGE,
            )
        };
        if lost && let Some(fresh) = self.replace(generation, "it lost every broker") {
            return fresh;
        }
        (generation, client)
    }

    /// A new client in place of the one of `generation` (unless another
    /// call replaced it already): the new one and its generation.
    fn replace(&self, generation: u64, why: &str) -> Option<(u64, Client)> {
        let mut current = self.producer.write().unwrap_or_else(|e| e.into_inner());
        if current.generation != generation {
            return None;
        }
        match InUse::create(&self.client, generation + 1) {
            Ok(fresh) => {
                *current = fresh;
                *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = (0, Instant::now());
                self.metrics.restarted();
                tracing::warn!(why, "Replaced the producer's client with a new one.");
                Some((current.generation, current.client.clone()))
            }
            Err(error) => {
                tracing::warn!(%error, "Could not replace the producer's client.");
                None
            }
        }
    }

    /// Notes how a send of the client of `generation` went, and replaces
    /// that client if it is dead: a fatal error, or failures in a row for
    /// longer than `patience` (a broker that is still down gets a new
    /// client that connects when it is back; one that came back answers it).
    /// An error that says the broker no longer accepts this client's
    /// producer id (fenced, forgotten, out of sequence) replaces it at once.
    fn outcome(&self, generation: u64, producer: &Client, result: Result<(), &KafkaError>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let error = match result {
            Ok(()) => {
                *failing = (0, Instant::now());
                // One lock at a time: `replace` takes the client's, then this.
                drop(failing);
                let current = self.producer.read().unwrap_or_else(|e| e.into_inner());
                if current.generation == generation {
                    current.lost.store(false, Ordering::Relaxed);
                }
                return;
            }
            Err(error) => error,
        };
        let disowned = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
                    | RDKafkaErrorCode::InvalidProducerIdMapping
            )
        );
        if failing.0 == 0 {
            failing.1 = Instant::now();
        }
        failing.0 += 1;
        let fatal = producer.client().fatal_error();
        let stuck = failing.0 >= FAILURES_BEFORE_REPLACING && failing.1.elapsed() >= self.patience;
        if fatal.is_none() && !stuck && !disowned {
            return;
        }
        drop(failing);
        let why = match (&fatal, disowned) {
            (Some(_), _) => "a fatal error",
            (None, true) => "the broker no longer knows its producer id",
            (None, false) => "it stopped delivering",
        };
        tracing::warn!(?fatal, %error, "The producer's client failed.");
        self.replace(generation, why);
    }
}

impl InUse {
    /// A client from `config` that notes when it loses every broker.
    fn create(config: &ClientConfig, generation: u64) -> KafkaResult<Self> {
        let lost = Arc::new(AtomicBool::new(false));
        Ok(Self {
            generation,
            client: config.create_with_context(Watch { lost: lost.clone() })?,
            created: Instant::now(),
            lost,
        })
    }
}

impl App for Producer {
    async fn handle(&self, request: Request<Incoming>) -> Response {
        let event = match http::read_event(request, ROUTES).await {
            Ok(event) => event,
            Err(answer) => return answer,
        };
        let payload = event.to_json();
        let record = FutureRecord::to(&self.topic)
            .key(event.driver_id.as_str())
            .payload(&payload);
        let started = Instant::now();
        let (generation, producer) = self.current();
        let outcome = producer.send(record, Duration::from_millis(100)).await;
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(delivery) => {
                self.metrics.observe(true, seconds);
                self.metrics
                    .acknowledged(delivery.partition, delivery.offset);
                self.outcome(generation, &producer, Ok(()));
                http::json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({
                        "event_id": event.event_id,
                        "partition": delivery.partition,
                        "offset": delivery.offset,
                    }),
                )
            }
            Err((error, _)) => {
                self.metrics.observe(false, seconds);
                self.outcome(generation, &producer, Err(&error));
                tracing::debug!(%error, "Produce failed.");
                http::unavailable(
                    "broker_unavailable",
                    &format!("the broker did not acknowledge the event: {error}"),
                    self.retry_after_s,
                )
            }
        }
    }

    async fn probe(self: Arc<Self>) -> Response {
        // In a task of its own: a prober that stops waiting does not cancel
        // the delivery, and its outcome still tells a dead client.
        let probed = tokio::spawn(async move {
            let record = FutureRecord::<(), [u8]>::to(&self.probe_topic).payload(&[]);
            let started = Instant::now();
            let (generation, producer) = self.current();
            let outcome = producer.send(record, Duration::from_millis(100)).await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            self.outcome(
                generation,
                &producer,
                outcome.as_ref().map(drop).map_err(|(error, _)| error),
            );
            match outcome {
                Ok(_) => http::json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "topic": self.probe_topic, "ms": ms, "generation": generation,
                    }),
                ),
                Err((error, _)) => http::unavailable(
                    "broker_unavailable",
                    &format!("the broker did not acknowledge the probe: {error}"),
                    self.retry_after_s,
                ),
            }
        });
        probed.await.unwrap_or_else(|error| {
            http::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "probe_failed",
                &error.to_string(),
            )
        })
    }

    fn health(&self) -> serde_json::Value {
        let (generation, producer) = self.current();
        serde_json::to_value(ProducerHealth {
            topic: self.topic.clone(),
            in_flight: producer.in_flight_count(),
            generation,
        })
        .unwrap_or_default()
    }
}

/// Runs the producer service on `listener` until `shutdown` is cancelled,
/// then flushes what is still queued.
pub async fn run(
    listener: TcpListener,
    config: ProducerConfig,
    shutdown: CancellationToken,
) -> Result<(), KafkaError> {
    let client = client_config(&config);
    let producer = InUse::create(&client, 0)?;
    let mut registry = crate::metrics::registry(SERVICE);
    let http_metrics = HttpMetrics::register(&mut registry, names::PRODUCER_HTTP_REQUESTS);
    let metrics = ProduceMetrics::register(&mut registry);
    let app = Arc::new(Producer {
        producer: RwLock::new(producer),
        client,
        failing: Mutex::new((0, Instant::now())),
        // Two delivery timeouts, so a slow broker is not taken for a dead
        // client, and at least 2 s, so a short timeout does not churn.
        patience: Duration::from_millis(config.delivery_timeout_ms.max(1) * 2)
            .max(Duration::from_secs(2)),
        topic: config.kafka.topic.clone(),
        probe_topic: probe_topic(&config.kafka.topic),
        metrics,
        retry_after_s: config.retry_after_s,
    });
    let common = Arc::new(Common {
        identity: Identity::new(SERVICE),
        registry,
        http_metrics: Some(http_metrics),
        started: Instant::now(),
    });
    tracing::info!(topic = %config.kafka.topic, brokers = %config.kafka.bootstrap_servers, "Serving the producer.");
    http::serve(listener, app.clone(), common, shutdown).await;
    let (_, producer) = app.current();
    let flush = Duration::from_millis(config.delivery_timeout_ms);
    tokio::task::spawn_blocking(move || producer.flush(flush))
        .await
        .expect("the flush task does not panic")?;
    tracing::info!("Producer flushed.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rdkafka::producer::FutureProducer;

    #[test]
    fn extra_properties_reach_the_client_but_not_the_ones_it_relies_on() {
        let config = ProducerConfig::parse_from([
            "faultline-producer",
            "--properties",
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=lab\n\
             sasl.password=secret\nacks=0\n",
        ]);
        let client = client_config(&config);
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.password"), Some("secret"));
        assert_eq!(client.get("acks"), Some("all"), "acks is the service's");
        // librdkafka is built with TLS and SASL/PLAIN: the client is made.
        let producer: Result<FutureProducer, _> = client.create();
        assert!(producer.is_ok(), "{:?}", producer.err());
    }

    #[test]
    fn durations_are_taken_as_milliseconds_or_as_the_lab_writes_them() {
        let parse = |value: &str| {
            ProducerConfig::try_parse_from(["faultline-producer", "--delivery-timeout-ms", value])
                .map(|c| c.delivery_timeout_ms)
        };
        assert_eq!(parse("1500").unwrap(), 1500);
        assert_eq!(parse("5s").unwrap(), 5000);
        assert_eq!(parse("1m 30s").unwrap(), 90_000);
        assert_eq!(parse("250ms").unwrap(), 250);
        let error = parse("soon").unwrap_err().to_string();
        assert!(error.contains("\"soon\" is not a duration"), "{error}");
    }

    #[test]
    fn one_worker_thread_is_a_runtime_of_one_thread_and_more_a_pool() {
        use tokio::runtime::RuntimeFlavor;
        let flavor = |args: &[&str]| {
            let config = ProducerConfig::try_parse_from(
                std::iter::once("faultline-producer").chain(args.iter().copied()),
            )?;
            let runtime = config.runtime.build().expect("a runtime");
            Ok::<_, clap::Error>(runtime.handle().runtime_flavor())
        };
        assert_eq!(flavor(&[]).unwrap(), RuntimeFlavor::CurrentThread);
        assert_eq!(
            flavor(&["--worker-threads", "2"]).unwrap(),
            RuntimeFlavor::MultiThread
        );
        let error = flavor(&["--worker-threads", "0"]).unwrap_err().to_string();
        assert!(error.contains("--worker-threads"), "{error}");
    }
}
