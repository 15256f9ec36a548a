//! What a run records besides its requests: the services' metrics scraped
//! every second, and the database audit after the drain (its query lives
//! beside the table, in `faultline_services::store`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use faultline_services::consumer::ConsumerHealth;
use faultline_services::http::Health;
// A consumer's backlog as the lab measures it from outside: the topic's end
// offsets at the broker (read around any fault on the consumers' link) minus
// the consumer's position. Nothing is recorded while either cannot be read.
use faultline_services::metrics::names::LAB_BACKLOG;

use crate::run_folder::rows::{MetricRow, Sample, StoredRow};

/// Parses OpenMetrics / Prometheus text. Histogram buckets are left out
/// (their `_sum` and `_count` are kept).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(open) => match line[open..].find('}') {
                Some(close) => (
                    (&line[..open], &line[open + 1..open + close]),
                    &line[open + close + 1..],
                ),
                None => continue,
            },
            None => match line.split_once(' ') {
                Some((name, rest)) => ((name, ""), rest),
                None => continue,
            },
        };
        let (metric, labels) = series;
        if metric.ends_with("_bucket") || metric.ends_with("_created") {
            continue;
        }
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        samples.push(Sample {
            metric: metric.to_string(),
            labels: labels.to_string(),
            value,
        });
    }
    samples
}

/// A service to scrape.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub architecture: String,
    /// `rest`, `producer` or `consumer`; a `service` architecture's process
    /// by its name, or `consumer` when it maps a backlog or a breaker.
    pub service: String,
    pub addr: SocketAddr,
    /// Where its metrics are, e.g. `/metrics`.
    pub path: String,
    /// Series recorded under the lab's names: (its name, the lab's).
    pub rename: Vec<(String, String)>,
}

impl ScrapeTarget {
    /// A built-in service's `/metrics`, named as the lab names them.
    pub fn built_in(architecture: &str, service: &str, addr: SocketAddr) -> Self {
        Self {
            architecture: architecture.to_string(),
            service: service.to_string(),
            addr,
            path: "/metrics".into(),
            rename: Vec::new(),
        }
    }
}

/// The latest value of each (architecture, service, metric) without labels,
/// for progress lines.
pub type Latest = Arc<Mutex<HashMap<(String, String, String), f64>>>;

/// Scrapes every target's `/metrics` each second from `t0` until `cancel`.
pub async fn scrape(
    targets: Vec<ScrapeTarget>,
    t0: Instant,
    cancel: CancellationToken,
    rows: Arc<Mutex<Vec<MetricRow>>>,
    latest: Latest,
) {
    let mut clock = Seconds::from(t0);
    while let Some(t_s) = clock.next(&cancel).await {
        let fetches: Vec<_> = targets
            .iter()
            .map(|target| tokio::spawn(fetch(target.addr, target.path.clone())))
            .collect();
        for (target, fetch) in targets.iter().zip(fetches) {
            // A scrape that got no answer leaves a gap in the series.
            let Ok(Some(text)) = fetch.await else {
                continue;
            };
            let mut samples = parse_metrics(&text);
            for sample in &mut samples {
                if let Some((_, ours)) = target
                    .rename
                    .iter()
                    .find(|(theirs, _)| *theirs == sample.metric)
                {
                    sample.metric = ours.clone();
                }
            }
            {
                let mut latest = latest.lock().expect("latest lock");
                for sample in samples.iter().filter(|s| s.labels.is_empty()) {
                    latest.insert(
                        (
                            target.architecture.clone(),
                            target.service.clone(),
                            sample.metric.clone(),
                        ),
                        sample.value,
                    );
                }
            }
            let mut rows = rows.lock().expect("rows lock");
            rows.extend(samples.into_iter().map(|sample| MetricRow {
                t_s,
                architecture: target.architecture.clone(),
                service: target.service.clone(),
                sample,
            }));
        }
    }
}

/// A consumer whose backlog the lab measures.
#[derive(Debug, Clone)]
pub struct BacklogTarget {
    pub architecture: String,
    pub topic: String,
    pub partitions: i32,
    pub position: PositionFrom,
    /// The producer of the topic, whose acknowledgements say where the
    /// topic ends when the broker's own end offsets count batches.
    pub producer: Option<SocketAddr>,
}

/// Where a consumer's position is read.
#[derive(Debug, Clone)]
pub enum PositionFrom {
    /// A buffered consumer's: the position it stored in PostgreSQL with the
    /// rows (its group), what is truly not yet stored.
    Stored { group: String },
    /// A drop consumer's: the position it reports (`/healthz`), past what
    /// it dropped, since dropping is not storing.
    Reported(SocketAddr),
}

/// Where the backlog is read: the broker (past any fault on its link) and
/// the database (directly).
#[derive(Debug, Clone)]
pub struct BacklogSource {
    pub bootstrap: String,
    pub properties: Vec<(String, String)>,
    pub database_url: String,
}

/// Measures each target's backlog every second from `t0` until `cancel`,
/// as `lab_backlog_messages` rows of service `lab`.
pub async fn measure_backlog(
    targets: Vec<BacklogTarget>,
    source: BacklogSource,
    t0: Instant,
    cancel: CancellationToken,
    rows: Arc<Mutex<Vec<MetricRow>>>,
    latest: Latest,
) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    if targets.is_empty() {
        return;
    }
    let consumer: Option<Arc<BaseConsumer>> =
        faultline_stack::broker::client_for(&source.bootstrap, &source.properties)
            .set("log_level", "0")
            .create()
            .ok()
            .map(Arc::new);
    let Some(consumer) = consumer else {
        return;
    };
    let any_stored = targets
        .iter()
        .any(|t| matches!(t.position, PositionFrom::Stored { .. }));
    let mut clock = Seconds::from(t0);
    while let Some(t_s) = clock.next(&cancel).await {
        let stored = match any_stored {
            true => stored_positions(&source.database_url).await,
            false => None,
        };
        for target in &targets {
            let key = (
                target.architecture.clone(),
                "lab".to_string(),
                LAB_BACKLOG.to_string(),
            );
            // A second without a reading leaves none: the status line and
            // the live view fall back to the consumer's own gauge rather
            // than show an old reading (the database down, the broker away).
            let forget = || {
                latest.lock().expect("latest lock").remove(&key);
            };
            let position: Option<HashMap<i32, i64>> = match &target.position {
                PositionFrom::Stored { group } => stored.as_ref().map(|all| {
                    all.iter()
                        .filter(|((g, t, _), _)| *g == *group && *t == target.topic)
                        .map(|((_, _, p), next)| (*p, *next))
                        .collect()
                }),
                PositionFrom::Reported(addr) => reported_position(*addr).await,
            };
            let Some(position) = position else {
                forget();
                continue;
            };
            let (consumer, topic, partitions) =
                (consumer.clone(), target.topic.clone(), target.partitions);
            let highs = tokio::task::spawn_blocking(move || {
                (0..partitions)
                    .map(|p| {
                        consumer
                            .fetch_watermarks(&topic, p, Duration::from_millis(800))
                            .ok()
                            .map(|(_, high)| (p, high))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .await
            .ok()
            .flatten();
            let Some(highs) = highs else {
                forget();
                continue;
            };
            let acknowledged = match target.producer {
                Some(addr) => fetch(addr, "/metrics")
                    .await
                    .map(|text| acknowledged_ends(&text))
                    .unwrap_or_default(),
                None => HashMap::new(),
            };
            let value = backlog_of(&highs, &acknowledged, &position) as f64;
            latest.lock().expect("latest lock").insert(key, value);
            rows.lock().expect("rows lock").push(MetricRow {
                t_s,
                architecture: target.architecture.clone(),
                service: "lab".into(),
                sample: Sample {
                    metric: LAB_BACKLOG.into(),
                    labels: String::new(),
                    value,
                },
            });
        }
    }
}

/// Each partition's end as the producer saw it acknowledged
/// (`kafka_produce_end_offset{partition="p"}` in its metrics text).
fn acknowledged_ends(metrics: &str) -> HashMap<i32, i64> {
    let prefix = format!(
        "{}{{partition=\"",
        faultline_services::metrics::names::KAFKA_PRODUCE_END_OFFSET
    );
    metrics
        .lines()
        .filter_map(|line| {
            let (partition, value) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((
                partition.parse().ok()?,
                value.trim().parse::<f64>().ok()? as i64,
            ))
        })
        .collect()
}

/// The events on the topic not yet past the consumer's `position`, summed
/// over its partitions: each partition ends at the broker's end offset
/// (`highs`) or, where the producer saw more acknowledged, there (a broker
/// whose end offsets count batches, not records, as tansu's do).
fn backlog_of(
    highs: &[(i32, i64)],
    acknowledged: &HashMap<i32, i64>,
    position: &HashMap<i32, i64>,
) -> i64 {
    highs
        .iter()
        .map(|(p, high)| {
            let end = (*high).max(acknowledged.get(p).copied().unwrap_or(0));
            (end - position.get(p).copied().unwrap_or(0)).max(0)
        })
        .sum()
}

/// The CPU time a process of the stack has used, in seconds (user and
/// system, from `/proc`), read every second: the row's service names the
/// process (`rest`, `producer`, `consumer`, `postgresql`, `broker`, `proxy`
/// for the runner's fault proxies, which run on a thread of their own, or
/// `lab` for the rest of the runner: load driver, scraping), its
/// architecture the one it serves alone (empty when shared). A restarted
/// process starts again from zero.
pub const LAB_CPU: &str = "lab_process_cpu_seconds";

/// A process whose CPU time the lab samples.
#[derive(Debug, Clone)]
pub struct CpuTarget {
    /// The architecture it serves alone; empty when every one shares it.
    pub architecture: String,
    /// `rest`, `producer`, `consumer`, `postgresql`, `broker`, `proxy` or
    /// `lab`.
    pub process: String,
    pub pid: PidOf,
    /// Its descendants' time too (PostgreSQL's backends).
    pub children: bool,
}

/// Where a sampled process's pid comes from.
#[derive(Debug, Clone)]
pub enum PidOf {
    /// A pid file, read at every sample: a restarted process writes its new
    /// pid there.
    File(std::path::PathBuf),
    /// The runner itself, less its fault proxies' and driver's threads.
    Runner,
    /// The runner's fault proxies' thread.
    Proxies,
    /// The runner's load driver's threads.
    Driver,
}

/// Samples each target's CPU time every second from `t0` until `cancel`,
/// as [`LAB_CPU`] rows. A process that cannot be read (stopped, between a
/// kill and its restart) leaves a gap. The samples are taken on a thread
/// of the blocking pool, not by a task: when the machine is full, the
/// runtime's tasks wait their turn behind the load driver's, and samples
/// due each second came 5 to 10 s apart, just where the figures matter.
pub async fn sample_cpu(
    targets: Vec<CpuTarget>,
    t0: Instant,
    cancel: CancellationToken,
    rows: Arc<Mutex<Vec<MetricRow>>>,
) {
    if targets.is_empty() {
        return;
    }
    let t0 = t0.into_std();
    let _ = tokio::task::spawn_blocking(move || {
        let mut due = t0;
        loop {
            // The next whole second from `t0`, skipping those missed.
            let now = std::time::Instant::now();
            while due <= now {
                due += Duration::from_secs(1);
            }
            if !crate::load::sleep_until(due, &cancel) {
                return;
            }
            let t_s = t0.elapsed().as_secs_f64();
            let read: Vec<MetricRow> = targets
                .iter()
                .filter_map(|target| {
                    Some(MetricRow {
                        t_s,
                        architecture: target.architecture.clone(),
                        service: target.process.clone(),
                        sample: Sample {
                            metric: LAB_CPU.into(),
                            labels: String::new(),
                            value: cpu_seconds(target)?,
                        },
                    })
                })
                .collect();
            rows.lock().expect("rows lock").extend(read);
        }
    })
    .await;
}

/// The CPU time `target` has used, in seconds.
fn cpu_seconds(target: &CpuTarget) -> Option<f64> {
    use faultline_stack::{process, proxy};
    let me = std::process::id();
    match &target.pid {
        PidOf::Runner => {
            let proxies = process::thread_cpu_seconds(me, proxy::THREAD)?;
            let driver = process::thread_cpu_seconds(me, crate::load::THREAD)?;
            Some(process::cpu_seconds(me, target.children)? - proxies - driver)
        }
        PidOf::Proxies => process::thread_cpu_seconds(me, proxy::THREAD),
        PidOf::Driver => process::thread_cpu_seconds(me, crate::load::THREAD),
        // "PID PROGRAM", as the stack writes it.
        PidOf::File(path) => {
            let pid = std::fs::read_to_string(path)
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            process::cpu_seconds(pid, target.children)
        }
    }
}

/// The position a consumer reports on `/healthz`: partition → next offset.
async fn reported_position(addr: SocketAddr) -> Option<HashMap<i32, i64>> {
    let body = fetch(addr, "/healthz").await?;
    let health: Health<ConsumerHealth> = serde_json::from_str(&body).ok()?;
    Some(health.own.position)
}

/// Every stored consumer position: (group, topic, partition) → next offset;
/// `None` if the database cannot be read within a second.
async fn stored_positions(url: &str) -> Option<HashMap<(String, String, i32), i64>> {
    let read = async {
        let target = faultline_services::tls::Target::parse(url).ok()?;
        let (client, connection) = target.config.connect(target.tls).await.ok()?;
        let connection = tokio::spawn(connection);
        let query = format!(
            "SELECT consumer_group, topic, partition, next_offset FROM {}",
            faultline_services::store::OFFSETS_TABLE
        );
        let rows = client.query(query.as_str(), &[]).await;
        drop(client);
        connection.abort();
        let rows = match rows {
            Ok(rows) => rows,
            // No table yet: nothing stored yet.
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
            {
                Vec::new()
            }
            Err(_) => return None,
        };
        Some(
            rows.iter()
                .map(|row| {
                    (
                        (
                            row.get::<_, String>(0),
                            row.get::<_, String>(1),
                            row.get::<_, i32>(2),
                        ),
                        row.get::<_, i64>(3),
                    )
                })
                .collect(),
        )
    };
    tokio::time::timeout(Duration::from_secs(1), read)
        .await
        .ok()
        .flatten()
}

/// The text of `path` on `addr` if it answers 200 within 900 ms.
async fn fetch(addr: SocketAddr, path: impl AsRef<str>) -> Option<String> {
    match faultline_stack::services::get(addr, path.as_ref(), Duration::from_millis(900)).await {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// What went wrong reading the database after a run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the database URL: {0}")]
    Url(#[from] faultline_services::tls::UrlError),
    #[error("could not connect for the audit: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("the audit query failed: {0}")]
    Query(#[source] tokio_postgres::Error),
}

async fn connect(database_url: &str) -> Result<tokio_postgres::Client, AuditError> {
    faultline_services::tls::Target::parse(database_url)?
        .connect()
        .await
        .map_err(AuditError::Connect)
}

/// Every stored event of the run, read straight from the database.
pub async fn audit(database_url: &str) -> Result<Vec<StoredRow>, AuditError> {
    let client = connect(database_url).await?;
    faultline_services::store::audit(&client)
        .await
        .map_err(AuditError::Query)
}

/// What a `service` architecture's audit query finds: each row's
/// `event_id` as text and `stored_at` in Unix microseconds (a `timestamp`
/// read as UTC, the lab's database's zone).
pub async fn audit_query(
    database_url: &str,
    query: &str,
) -> Result<Vec<(String, i64)>, AuditError> {
    let client = connect(database_url).await?;
    let query = query.trim().trim_end_matches(';');
    let rows = client
        .query(
            &format!(
                "SELECT event_id::text,
                        (extract(epoch FROM stored_at::timestamptz) * 1000000)::int8
                 FROM ({query}) AS faultline_audit
                 WHERE event_id IS NOT NULL AND stored_at IS NOT NULL"
            ),
            &[],
        )
        .await
        .map_err(AuditError::Query)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// How many rows a `service` architecture's audit query finds, for the
/// drain.
pub async fn audit_count(database_url: &str, query: &str) -> Result<u64, AuditError> {
    let client = connect(database_url).await?;
    let query = query.trim().trim_end_matches(';');
    let row = client
        .query_one(
            &format!("SELECT count(*) FROM ({query}) AS faultline_audit"),
            &[],
        )
        .await
        .map_err(AuditError::Query)?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Stored events per `stored_by`, for the drain.
pub async fn stored_counts(database_url: &str) -> Result<HashMap<String, i64>, AuditError> {
    let client = connect(database_url).await?;
    faultline_services::store::stored_counts(&client)
        .await
        .map_err(AuditError::Query)
}

/// A clock that ticks once a second from `t0`, skipping ticks it missed.
struct Seconds {
    t0: Instant,
    tick: tokio::time::Interval,
}

impl Seconds {
    fn from(t0: Instant) -> Self {
        let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Self { t0, tick }
    }

    /// Waits for the next tick: the seconds since `t0`, or `None` once
    /// `cancel` is cancelled.
    async fn next(&mut self, cancel: &CancellationToken) -> Option<f64> {
        tokio::select! {
            _ = self.tick.tick() => Some(self.t0.elapsed().as_secs_f64()),
            () = cancel.cancelled() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_backlog_ends_where_the_producer_saw_records_acknowledged() {
        use std::collections::HashMap;
        // As tansu answers after 1,000 records in one batch: an end offset
        // of 1, the producer's acknowledgements up to offset 999.
        let text = "# TYPE kafka_produce_end_offset gauge\n\
                    kafka_produce_end_offset{partition=\"0\"} 1000\n\
                    kafka_produce_end_offset{partition=\"1\"} 7\n\
                    kafka_produce_total{status=\"success\"} 1007\n";
        let acknowledged = super::acknowledged_ends(text);
        assert_eq!(acknowledged, HashMap::from([(0, 1000), (1, 7)]));
        let position = HashMap::from([(0, 400), (1, 7)]);
        assert_eq!(
            super::backlog_of(&[(0, 1), (1, 7)], &acknowledged, &position),
            600
        );
        // A broker that counts records, or no producer: its own end.
        assert_eq!(
            super::backlog_of(&[(0, 1000), (1, 9)], &HashMap::new(), &position),
            602
        );
        // A topic created again (a memory broker restarted): the producer's
        // end starts again with it, and the backlog is never negative.
        let again = HashMap::from([(0, 3)]);
        assert_eq!(
            super::backlog_of(&[(0, 0)], &again, &HashMap::from([(0, 5)])),
            0
        );
    }

    use super::*;

    #[test]
    fn metrics_text_is_parsed_without_buckets() {
        let text = "# TYPE rest_http_requests counter\n\
            rest_http_requests_total{status=\"201\"} 12\n\
            circuit_breaker_state 2\n\
            http_request_duration_seconds_bucket{le=\"0.1\",status=\"201\"} 3\n\
            http_request_duration_seconds_sum{status=\"201\"} 0.5\n\
            kafka_consumer_lag_seconds 1.25\n\
            # EOF\n";
        let samples = parse_metrics(text);
        assert_eq!(
            samples,
            vec![
                Sample {
                    metric: "rest_http_requests_total".into(),
                    labels: "status=\"201\"".into(),
                    value: 12.0
                },
                Sample {
                    metric: "circuit_breaker_state".into(),
                    labels: String::new(),
                    value: 2.0
                },
                Sample {
                    metric: "http_request_duration_seconds_sum".into(),
                    labels: "status=\"201\"".into(),
                    value: 0.5
                },
                Sample {
                    metric: "kafka_consumer_lag_seconds".into(),
                    labels: String::new(),
                    value: 1.25
                },
            ]
        );
    }
}
