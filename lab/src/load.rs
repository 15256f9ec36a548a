//! The native load driver: an open model on a schedule.
//!
//! Request `i` of an architecture is due at `t0 + schedule[i]`. The driver
//! records that intended time and measures latency from it, so a stalled
//! service shows up as latency rather than as requests that were never sent
//! (no coordinated omission). Requests that could not even be started because
//! too many were in flight are counted as not sent. All architectures share
//! one clock (`t0`) and the same shape of event stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use faultline_services::event::LocationEvent;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::experiment::service::{RequestSettings, vars};
use crate::plan::DriverSettings;
use crate::run_folder::rows::{Outcome, Row};
use crate::template::Template;

/// Live counts of one architecture, for progress lines.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Keep each successful request's latency in `latencies` (the live
    /// view's); off, a request costs one more relaxed load.
    pub keep_latencies: std::sync::atomic::AtomicBool,
    /// Microseconds from the intended send to the answer, of the
    /// successful requests that finished since the live view last took
    /// them.
    pub latencies: std::sync::Mutex<Vec<u64>>,
}

/// How long the driver keeps an idle connection: under half the built-in
/// services' header read timeout (10 s) and under Node.js's keep-alive
/// timeout (5 s), so that no service closes one the driver is about to use.
pub const IDLE_CONNECTION: Duration = Duration::from_secs(4);

/// A `service` architecture's own request: each event filled into its
/// path and body, sent to its process; the statuses in `ok` acknowledge.
#[derive(Debug, Clone)]
pub struct OwnRequest {
    pub method: hyper::Method,
    pub path: Template,
    pub body: Template,
    pub content_type: String,
    /// 2xx statuses only (validation sees to it).
    pub ok: Vec<u16>,
}

impl OwnRequest {
    /// The request a scenario declares (checked when it was validated).
    pub fn of(settings: &RequestSettings) -> Result<Self, String> {
        let template = |text: &str| Template::parse(text).map_err(|e| e.to_string());
        Ok(Self {
            method: settings
                .method
                .parse()
                .map_err(|_| format!("{:?} is not an HTTP method", settings.method))?,
            path: template(&settings.path)?,
            body: template(&settings.body)?,
            content_type: settings.content_type.clone(),
            ok: settings.ok.clone(),
        })
    }

    /// The path and body of `event`.
    pub fn fill(&self, event: &LocationEvent) -> (String, String) {
        let sent_at = event
            .sent_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let write = |name: &str, out: &mut String| {
            use std::fmt::Write;
            let _ = match name {
                vars::EVENT_ID => write!(out, "{}", event.event_id),
                vars::EVENT_DRIVER_ID => write!(out, "{}", event.driver_id),
                vars::EVENT_LAT => write!(out, "{}", event.lat),
                vars::EVENT_LNG => write!(out, "{}", event.lng),
                vars::EVENT_SENT_AT => write!(out, "{sent_at}"),
                _ => Ok(()),
            };
        };
        let mut path = String::new();
        self.path.fill_into(&mut path, write);
        let mut body = String::new();
        self.body.fill_into(&mut body, write);
        (path, body)
    }

    /// How an answer with `status` ends the request.
    fn outcome(&self, status: u16) -> Outcome {
        let outcome = Outcome::Status(status);
        if outcome.ok() && !self.ok.contains(&status) {
            Outcome::NotAcknowledged(status)
        } else {
            outcome
        }
    }
}

/// The load of one architecture.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The architecture's number in the rows.
    pub architecture: u16,
    /// Where events are POSTed; with `own`, the process's base URL
    /// (`http://host:port`).
    pub url: String,
    /// A `service` architecture's own request, in place of the event's
    /// JSON.
    pub own: Option<Arc<OwnRequest>>,
    /// Send times from the clock's start.
    pub schedule: Arc<Vec<Duration>>,
    pub settings: DriverSettings,
    /// Live counts for progress lines.
    pub counters: Arc<Counters>,
}

impl Driver {
    /// POSTs an event at each scheduled time after `t0`, until the schedule
    /// ends or `cancel` fires; sends one row per request to `rows`.
    pub async fn run(
        self,
        t0: Instant,
        cancel: CancellationToken,
        rows: mpsc::UnboundedSender<Row>,
    ) {
        drive(self, t0, cancel, rows).await;
    }
}

async fn drive(
    driver: Driver,
    t0: Instant,
    cancel: CancellationToken,
    rows: mpsc::UnboundedSender<Row>,
) {
    let Driver {
        architecture,
        url,
        own,
        schedule,
        settings,
        counters,
    } = driver;
    // An idle connection is let go before a service would close it: a
    // request written on a connection the service is closing at that
    // moment fails with a broken connection that is the lab's doing, not
    // the architecture's.
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(IDLE_CONNECTION)
        .build_http();
    let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let url: Arc<str> = url.into();
    let since = move |t: Instant| t.saturating_duration_since(t0).as_micros() as u64;
    let settings = Arc::new(settings);
    // Pacing runs on a thread of its own: an OS sleep wakes within tens of
    // microseconds, where the async timer's resolution is a millisecond.
    let handle = tokio::runtime::Handle::current();
    let t0_std = t0.into_std();
    let mut tasks = tokio::task::spawn_blocking(move || {
        let mut tasks = tokio::task::JoinSet::new();
        let mut seq = 0usize;
        while seq < schedule.len() {
            let due = t0_std + schedule[seq];
            if !sleep_until(due, &cancel) {
                break;
            }
            // Send everything that is due by now.
            let now = std::time::Instant::now();
            while seq < schedule.len() && t0_std + schedule[seq] <= now {
                let intended = t0 + schedule[seq];
                let event = event_for(settings.seed, architecture, seq as u64, settings.drivers);
                counters.sent.fetch_add(1, Ordering::Relaxed);
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    let at = since(Instant::now());
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = rows.send(Row {
                        architecture,
                        seq: seq as u64,
                        intended_us: since(intended),
                        sent_us: at,
                        finished_us: at,
                        outcome: Outcome::NotSent,
                        attempts: 0,
                        event_id: event.event_id,
                    });
                    seq += 1;
                    continue;
                };
                let (client, url, rows, counters, settings, own) = (
                    client.clone(),
                    url.clone(),
                    rows.clone(),
                    counters.clone(),
                    settings.clone(),
                    own.clone(),
                );
                let request_seq = seq as u64;
                tasks.spawn_on(
                    async move {
                        let sent = Instant::now();
                        let mut attempts = 0;
                        // A retry resends the same event: a changed payload
                        // under the same id would be refused as a reused id.
                        let mut event = event;
                        event.sent_at = chrono::Utc::now();
                        let outcome = loop {
                            attempts += 1;
                            let outcome = match &own {
                                None => post(&client, &url, &event, settings.timeout).await,
                                Some(own) => {
                                    send(&client, &url, own, &event, settings.timeout).await
                                }
                            };
                            if !outcome.retriable() || attempts > settings.retries.max_retries {
                                break outcome;
                            }
                            tokio::time::sleep(settings.retries.wait_after(attempts)).await;
                        };
                        let counter = if outcome.ok() {
                            &counters.ok
                        } else {
                            &counters.failed
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let (intended_us, finished_us) = (since(intended), since(Instant::now()));
                        if outcome.ok() && counters.keep_latencies.load(Ordering::Relaxed) {
                            counters
                                .latencies
                                .lock()
                                .expect("latencies lock")
                                .push(finished_us.saturating_sub(intended_us));
                        }
                        let _ = rows.send(Row {
                            architecture,
                            seq: request_seq,
                            intended_us,
                            sent_us: since(sent),
                            finished_us,
                            outcome,
                            attempts,
                            event_id: event.event_id,
                        });
                        drop(permit);
                    },
                    &handle,
                );
                seq += 1;
            }
            // Reap finished tasks so the set does not grow without bound.
            while tasks.try_join_next().is_some() {}
        }
        tasks
    })
    .await
    .expect("the pacing thread does not panic");
    while tasks.join_next().await.is_some() {}
}

/// Sleeps on this thread until `due`, in slices so that `cancel` is seen
/// within 10 ms; `false` if cancelled.
pub(crate) fn sleep_until(due: std::time::Instant, cancel: &CancellationToken) -> bool {
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(10)));
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    event: &LocationEvent,
    timeout: Duration,
) -> Outcome {
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(event.to_json())))
        .expect("a valid request");
    exchange(client, request, timeout, Outcome::Status).await
}

/// A `service` architecture's own request for `event`, to `base`.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    own: &OwnRequest,
    event: &LocationEvent,
    timeout: Duration,
) -> Outcome {
    let (path, body) = own.fill(event);
    let request = hyper::Request::builder()
        .method(own.method.clone())
        .uri(format!("{base}{path}"))
        .header("content-type", own.content_type.as_str())
        .body(Full::new(Bytes::from(body)));
    // A path the event made unusable is the request's failure, not the
    // driver's.
    let Ok(request) = request else {
        return Outcome::Status(400);
    };
    exchange(client, request, timeout, |status| own.outcome(status)).await
}

async fn exchange(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    outcome: impl Fn(u16) -> Outcome,
) -> Outcome {
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        // Read the body so the connection goes back to the pool.
        let _ = response.into_body().collect().await;
        Ok::<_, hyper_util::client::legacy::Error>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) => outcome(status),
        Ok(Err(error)) if is_refused(&error) => Outcome::Refused,
        Ok(Err(_)) => Outcome::Connection,
        Err(_) => Outcome::Timeout,
    }
}

fn is_refused(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = cause.source();
    }
    false
}

/// SplitMix64: a fast, well-spread mix of one number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Event `seq` of stream `stream` (one stream per architecture), as the
/// original PoC shaped it: driver `driver_0`..`driver_{n-1}`, a point within
/// 0.1° of San Francisco. The same seed gives the same stream, ids included;
/// ids never repeat across streams. `sent_at` is set when it is sent.
pub fn event_for(seed: u64, stream: u16, seq: u64, drivers: u32) -> LocationEvent {
    let base = mix(seed ^ mix(u64::from(stream) << 48 ^ seq));
    let (a, b, c) = (mix(base), mix(base ^ 1), mix(base ^ 2));
    let unit = |bits: u64| (bits >> 11) as f64 / (1u64 << 53) as f64;
    // A version-4 layout: the lab's stream and sequence are in the hash.
    let id =
        uuid::Builder::from_random_bytes((u128::from(a) << 64 | u128::from(b ^ seq)).to_be_bytes())
            .into_uuid();
    LocationEvent {
        event_id: id,
        driver_id: format!("driver_{}", c % u64::from(drivers.max(1))),
        lat: 37.7749 + 0.1 * unit(a),
        lng: -122.4194 + 0.1 * unit(b),
        sent_at: chrono::Utc::now(),
    }
}

/// Where the collector writes the rows as they come: the run folder's
/// parts (`run_folder::parts`), every [`crate::run_folder::parts::FLUSH`].
#[derive(Clone)]
pub struct Journal {
    pub dir: std::path::PathBuf,
    pub repetition: u32,
    pub architectures: Vec<String>,
}

impl Journal {
    /// Writes `rows` as flush `n`, on a thread of its own (not the
    /// drivers'); a failure is said, not fatal: the rows are still kept
    /// for the repetition's end.
    fn flush(&self, n: u32, rows: Vec<Row>) {
        let journal = self.clone();
        tokio::task::spawn_blocking(move || {
            use crate::run_folder::{REQUESTS, frames, parts};
            let path = parts::live(&journal.dir, journal.repetition, n);
            let frame = frames::requests_frame(journal.repetition, &journal.architectures, &rows);
            if let Err(error) = parts::write(&path, &REQUESTS, [frame]) {
                tracing::warn!(%error, "Could not write the rows measured so far.");
            }
        });
    }
}

/// A channel for drivers' rows and the task that gathers them, in order of
/// architecture and sequence, once every sender is dropped; with a
/// `journal`, the rows that came since the last flush are written there
/// every [`crate::run_folder::parts::FLUSH`].
pub fn collector(
    journal: Option<Journal>,
) -> (
    mpsc::UnboundedSender<Row>,
    tokio::task::JoinHandle<Vec<Row>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Row>();
    let task = tokio::spawn(async move {
        let mut rows = Vec::new();
        // Gathered every 50 ms rather than as each arrives: a receiver
        // waiting in `recv` is woken by every send, a thread woken per
        // request; one that is not waiting costs the sender a push.
        let tick = Duration::from_millis(50);
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let per_flush = (crate::run_folder::parts::FLUSH.as_millis() / tick.as_millis()) as u64;
        let (mut ticks, mut flushed, mut flushes) = (0u64, 0usize, 0u32);
        loop {
            every.tick().await;
            loop {
                match rx.try_recv() {
                    Ok(row) => rows.push(row),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        rows.sort_by_key(|r| (r.architecture, r.seq));
                        return rows;
                    }
                }
            }
            ticks += 1;
            if let Some(journal) = &journal
                && ticks.is_multiple_of(per_flush)
                && rows.len() > flushed
            {
                journal.flush(flushes, rows[flushed..].to_vec());
                flushed = rows.len();
                flushes += 1;
            }
        }
    });
    (tx, task)
}

/// Latency from the intended send time, in µs, of the rows `keep` selects.
pub fn latency(rows: &[Row], keep: impl Fn(&Row) -> bool) -> Histogram<u64> {
    let mut histogram = crate::stats::histogram();
    for row in rows.iter().filter(|r| keep(r)) {
        histogram.saturating_record(row.finished_us.saturating_sub(row.intended_us));
    }
    histogram
}

/// How late each request was sent relative to its schedule, in µs.
pub fn schedule_lag(rows: &[Row]) -> Histogram<u64> {
    let mut histogram = crate::stats::histogram();
    for row in rows.iter().filter(|r| r.outcome != Outcome::NotSent) {
        histogram.saturating_record(row.sent_us.saturating_sub(row.intended_us));
    }
    histogram
}

/// A constant-rate schedule: `rate` per second for `duration`.
pub fn constant_schedule(rate_per_s: f64, duration: Duration) -> Vec<Duration> {
    let total = (rate_per_s * duration.as_secs_f64()).round() as u64;
    (0..total)
        .map(|i| Duration::from_secs_f64(i as f64 / rate_per_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64, intended_us: u64, finished_us: u64) -> Row {
        Row {
            architecture: 0,
            seq,
            intended_us,
            sent_us: intended_us,
            finished_us,
            outcome: Outcome::Status(201),
            attempts: 1,
            event_id: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn latency_is_measured_from_the_intended_time() {
        let rows = vec![
            row(0, 0, 3_000),
            row(1, 1_000, 2_500_000),
            row(2, 2_000, 2_500),
        ];
        let latency = latency(&rows, |r| r.outcome.ok());
        assert_eq!(latency.len(), 3);
        assert!(latency.equivalent(latency.max(), 2_499_000));
        assert!(latency.equivalent(latency.min(), 500));
    }

    #[test]
    fn event_streams_are_valid_reproducible_and_distinct() {
        let mut drivers = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for seq in 0..10_000 {
            let event = event_for(7, 0, seq, 5000);
            event.validate().unwrap();
            assert!((37.7749..=37.8749).contains(&event.lat));
            assert!((-122.4194..=-122.3194).contains(&event.lng));
            assert_eq!(event.event_id, event_for(7, 0, seq, 5000).event_id);
            assert_eq!(event.event_id.get_version_num(), 4);
            drivers.insert(event.driver_id);
            ids.insert(event.event_id);
            ids.insert(event_for(7, 1, seq, 5000).event_id);
        }
        assert!(drivers.len() > 4000, "only {} drivers", drivers.len());
        assert_eq!(ids.len(), 20_000, "ids repeat across streams");
        assert_ne!(
            event_for(1, 0, 0, 10).event_id,
            event_for(2, 0, 0, 10).event_id
        );
    }

    #[test]
    fn a_constant_schedule_has_its_rate() {
        let schedule = constant_schedule(50.0, Duration::from_secs(300));
        assert_eq!(schedule.len(), 15_000);
        assert_eq!(schedule[50], Duration::from_secs(1));
    }
}
