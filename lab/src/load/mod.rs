//! The native load driver: an open model on a schedule.
//!
//! Request `i` of an architecture is due at `t0 + schedule[i]`. The driver
//! records that intended time and measures latency from it, so a stalled
//! service shows up as latency rather than as requests that were never sent
//! (no coordinated omission). Requests that could not even be started because
//! too many were in flight are counted as not sent; with a bound on
//! connections, a request waits for a free one (`connections.rs`). All
//! architectures share one clock (`t0`) and the same shape of event stream.

mod connections;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use faultline_services::event::LocationEvent;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::connections::{Connections, Job};
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

/// The pacing thread's shortest sleep: at rates above one request per
/// `PACING` it sends the requests due in each slice together, at most
/// this late, instead of waking the machine once per request.
pub const PACING: Duration = Duration::from_micros(250);

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
        runtime()
            .spawn(drive(self, t0, cancel, rows))
            .await
            .expect("the driver does not panic");
    }
}

/// The name of every thread of the driver (its runtime's and its pacing
/// threads), by which the lab samples the driver's CPU apart from its own;
/// at most 15 bytes, all that Linux keeps of a thread's name.
pub const THREAD: &str = "faultline-load";

/// The drivers' own runtime, two worker threads for every architecture's
/// connections, apart from the lab's scraping and sampling (one thread
/// took no less CPU in a run at 12,000 req/s and sent late at 3 × 2,000:
/// p99 80–362 ms against 11–13 ms). Its CPU is read by its threads' name,
/// so they live as long as the process (a thread that ended would take its
/// time out of the driver's sum).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD)
            .thread_keep_alive(Duration::from_secs(7 * 24 * 3600))
            .enable_all()
            .build()
            .expect("the driver's runtime starts")
    })
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
    let (seed, drivers) = (settings.seed, settings.drivers);
    let connections = match Connections::new(connections::Setup {
        url,
        architecture,
        own,
        settings,
        counters,
        rows,
        t0,
    }) {
        Ok(connections) => connections,
        Err(error) => {
            tracing::error!(%error, "The driver cannot send to this address.");
            return;
        }
    };
    // Pacing runs on a thread of its own: an OS sleep wakes within tens of
    // microseconds, where the async timer's resolution is a millisecond.
    // It wakes at most once per [`PACING`], sending everything due by then.
    let t0_std = t0.into_std();
    let pacing = connections.clone();
    tokio::task::spawn_blocking(move || {
        let mut seq = 0usize;
        let mut woke = std::time::Instant::now();
        while seq < schedule.len() {
            let due = (t0_std + schedule[seq]).max(woke + PACING);
            if !sleep_until(due, &cancel) {
                break;
            }
            woke = std::time::Instant::now();
            while seq < schedule.len() && t0_std + schedule[seq] <= woke {
                let intended = t0 + schedule[seq];
                pacing.submit(Job {
                    seq: seq as u64,
                    intended,
                    due: intended,
                    sent: None,
                    attempts: 0,
                    event: event_for(seed, architecture, seq as u64, drivers),
                });
                seq += 1;
            }
        }
    })
    .await
    .expect("the pacing thread does not panic");
    connections.settle().await;
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

/// A channel for drivers' rows and the task that gathers them, in order of
/// architecture and sequence, once every sender is dropped; with a
/// `journal`, the rows that came since the last flush are written there
/// every [`crate::run_folder::parts::FLUSH`].
pub fn collector(
    journal: Option<crate::run_folder::parts::Journal>,
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
                journal.requests(flushes, rows[flushed..].to_vec());
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
    for row in rows.iter().filter(|r| r.attempts > 0) {
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

    /// Drives `requests` at `rate` a second to a server that answers each
    /// after 20 ms; the rows, and the most connections it had open at once.
    async fn against_a_slow_server(
        connections: Option<usize>,
        timeout: Duration,
        requests: usize,
    ) -> (Vec<Row>, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        // Connections open now, and the most open at once.
        let open = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let counted = open.clone();
        let server = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let now = counted.0.fetch_add(1, Ordering::SeqCst) + 1;
                counted.1.fetch_max(now, Ordering::SeqCst);
                let counted = counted.clone();
                tokio::spawn(async move {
                    let answer = hyper::service::service_fn(|_request| async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let body = http_body_util::Full::new(bytes::Bytes::new());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, answer)
                        .await;
                    counted.0.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let (tx, collector) = collector(None);
        let driver = Driver {
            architecture: 0,
            url,
            own: None,
            schedule: Arc::new(constant_schedule(
                500.0,
                Duration::from_millis(2 * requests as u64),
            )),
            settings: DriverSettings {
                timeout,
                max_in_flight: 1000,
                connections,
                drivers: 10,
                seed: 1,
                retries: Default::default(),
            },
            counters: Default::default(),
        };
        driver
            .run(Instant::now(), CancellationToken::new(), tx)
            .await;
        let rows = collector.await.unwrap();
        server.abort();
        (rows, open.1.load(Ordering::SeqCst))
    }

    /// With a bound, the driver keeps to its connections and a request
    /// waits for one, the wait counted in its latency from the intended
    /// time; one that waits out the client timeout for a connection is a
    /// timeout never written. Without, no request waits for the driver.
    #[test]
    fn a_bounded_driver_keeps_to_its_connections_and_counts_the_wait() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        // 100 requests in 0.2 s, 20 ms each on two connections: 1 s of work.
        let (rows, accepted) =
            runtime.block_on(against_a_slow_server(Some(2), Duration::from_secs(5), 100));
        assert_eq!(rows.len(), 100);
        assert!(rows.iter().all(|r| r.outcome.ok()), "{rows:?}");
        assert!(accepted <= 2, "{accepted} connections");
        let latency = super::latency(&rows, |_| true);
        assert!(latency.max() >= 500_000, "max {} µs", latency.max());
        assert!(schedule_lag(&rows).max() >= 500_000);

        // Without a bound: a connection per request in flight, none waits.
        let (rows, accepted) =
            runtime.block_on(against_a_slow_server(None, Duration::from_secs(5), 100));
        assert!(rows.iter().all(|r| r.outcome.ok()), "{rows:?}");
        assert!(accepted >= 5, "{accepted} connections");
        let latency = super::latency(&rows, |_| true);
        assert!(latency.max() < 300_000, "max {} µs", latency.max());

        // One connection and a 100 ms timeout: most wait it out, unwritten.
        let (rows, accepted) = runtime.block_on(against_a_slow_server(
            Some(1),
            Duration::from_millis(100),
            100,
        ));
        assert!(accepted <= 1, "{accepted} connections");
        let waited: Vec<&Row> = rows.iter().filter(|r| r.attempts == 0).collect();
        assert!(waited.len() >= 50, "{} waited out", waited.len());
        assert!(waited.iter().all(|r| r.outcome == Outcome::Timeout));
        // Each ended when the client gave up, however late a connection came.
        for row in &waited {
            let ended = row.finished_us - row.intended_us;
            assert!(ended.abs_diff(100_000) <= 1, "{row:?}");
        }
        assert!(rows.iter().filter(|r| r.outcome.ok()).count() >= 5);
    }

    /// The lab samples the driver's CPU by its threads' name: a name
    /// Linux cut short would leave the driver at zero.
    #[test]
    fn the_drivers_cpu_is_found_by_its_threads_name() {
        let busy = runtime().spawn(async {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(200) {
                std::hint::black_box(0);
            }
        });
        runtime().block_on(busy).unwrap();
        let cpu = faultline_stack::process::thread_cpu_seconds(std::process::id(), THREAD);
        assert!(cpu.unwrap() >= 0.1, "{cpu:?}");
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
