//! The driver's connections: each one a task that takes the due requests
//! one after another on one kept-alive HTTP/1.1 connection, as wrk2's
//! connections and k6's virtual users do. A request due while every
//! connection is busy waits in one queue for the first that frees up, at
//! most the client timeout; its latency still counts from its intended
//! time. Connections are opened when a
//! request finds none idle (up to the scenario's `connections`, or the
//! driver's in-flight bound when it sets none) and closed after
//! [`IDLE_CONNECTION`] without a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bytes::Bytes;
use faultline_services::event::LocationEvent;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::{Counters, IDLE_CONNECTION, OwnRequest};
use crate::plan::DriverSettings;
use crate::run_folder::rows::{Outcome, Row};

/// One request the schedule made due.
pub(super) struct Job {
    pub seq: u64,
    /// When the schedule meant it to be sent.
    pub intended: Instant,
    /// When its current attempt became due (the intended time, or the end
    /// of a retry's wait): it waits for a connection at most the client
    /// timeout from here.
    pub due: Instant,
    /// When its first attempt was written.
    pub sent: Option<Instant>,
    pub attempts: u32,
    pub event: LocationEvent,
}

/// Where the requests go: parsed once, not per request.
struct Target {
    /// `host:port`, to connect to.
    address: String,
    /// The `Host` header.
    host: HeaderValue,
    /// The path of the events' POST, or a `service` architecture's base
    /// path that its own paths follow.
    path: Uri,
    base: String,
}

impl Target {
    fn of(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?}: the driver speaks http:// only"));
        }
        let authority = uri.authority().ok_or(format!("{url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let base = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            address: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
            path: uri.path_and_query().map_or_else(
                || Uri::from_static("/"),
                |p| p.as_str().parse().expect("a path"),
            ),
            base,
        })
    }
}

/// Every connection of one architecture's driver, and the queue they share.
pub(super) struct Connections {
    queue: async_channel::Receiver<Job>,
    jobs: async_channel::Sender<Job>,
    /// Connections waiting for a request.
    idle: AtomicUsize,
    /// Connections open or being opened.
    open: AtomicUsize,
    limit: usize,
    /// Requests queued or in flight (retries waiting included).
    outstanding: AtomicUsize,
    /// Told when `outstanding` falls to zero.
    settled: Notify,
    target: Target,
    architecture: u16,
    own: Option<Arc<OwnRequest>>,
    settings: DriverSettings,
    counters: Arc<Counters>,
    rows: mpsc::UnboundedSender<Row>,
    t0: Instant,
    handle: tokio::runtime::Handle,
}

/// What one driver's connections need to know.
pub(super) struct Setup {
    pub url: String,
    pub architecture: u16,
    pub own: Option<Arc<OwnRequest>>,
    pub settings: DriverSettings,
    pub counters: Arc<Counters>,
    pub rows: mpsc::UnboundedSender<Row>,
    pub t0: Instant,
}

impl Connections {
    pub fn new(setup: Setup) -> Result<Arc<Self>, String> {
        let (jobs, queue) = async_channel::unbounded();
        let limit = setup
            .settings
            .connections
            .unwrap_or(setup.settings.max_in_flight)
            .max(1);
        Ok(Arc::new(Self {
            queue,
            jobs,
            idle: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            limit,
            outstanding: AtomicUsize::new(0),
            settled: Notify::new(),
            target: Target::of(&setup.url)?,
            architecture: setup.architecture,
            own: setup.own,
            settings: setup.settings,
            counters: setup.counters,
            rows: setup.rows,
            t0: setup.t0,
            handle: tokio::runtime::Handle::current(),
        }))
    }

    fn since(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_micros() as u64
    }

    /// Hands a due request to the connections (from any thread); beyond
    /// the driver's in-flight bound it is counted as not sent.
    pub fn submit(self: &Arc<Self>, job: Job) {
        self.counters.sent.fetch_add(1, SeqCst);
        if self.outstanding.fetch_add(1, SeqCst) >= self.settings.max_in_flight {
            self.finish(job, Outcome::NotSent);
            return;
        }
        self.enqueue(job);
    }

    /// Queues `job`, opening a connection when there are more queued than
    /// idle ones to take them. Queued first and idle read after, as a
    /// connection going away lowers `idle` before it looks at the queue:
    /// one of the two sees the other, so no request is left without one.
    fn enqueue(self: &Arc<Self>, job: Job) {
        let _ = self.jobs.try_send(job);
        // Paired with the fence in `connection`: of a request queued here
        // and a connection leaving there, one sees the other.
        std::sync::atomic::fence(SeqCst);
        if self.queue.len() > self.idle.load(SeqCst) {
            let open = self.open.fetch_add(1, SeqCst);
            if open < self.limit {
                self.idle.fetch_add(1, SeqCst);
                self.handle.spawn(Self::connection(self.clone()));
            } else {
                self.open.fetch_sub(1, SeqCst);
            }
        }
    }

    /// Waits until every submitted request has its row, then lets the
    /// connections go.
    pub async fn settle(&self) {
        loop {
            let settled = self.settled.notified();
            if self.outstanding.load(SeqCst) == 0 {
                break;
            }
            settled.await;
        }
        self.jobs.close();
    }

    /// One connection: takes queued requests until it has been idle for
    /// [`IDLE_CONNECTION`] or the queue is closed.
    async fn connection(self: Arc<Self>) {
        let mut sender = None;
        loop {
            match tokio::time::timeout(IDLE_CONNECTION, self.queue.recv()).await {
                Ok(Ok(job)) => {
                    self.idle.fetch_sub(1, SeqCst);
                    self.serve(job, &mut sender).await;
                    self.idle.fetch_add(1, SeqCst);
                }
                Ok(Err(_)) => break,
                Err(_) => {
                    self.idle.fetch_sub(1, SeqCst);
                    std::sync::atomic::fence(SeqCst);
                    if self.queue.is_empty() {
                        self.open.fetch_sub(1, SeqCst);
                        return;
                    }
                    self.idle.fetch_add(1, SeqCst);
                }
            }
        }
        self.idle.fetch_sub(1, SeqCst);
        self.open.fetch_sub(1, SeqCst);
    }

    /// One attempt of `job`; a retriable failure is queued again after
    /// its wait, anything else ends the request.
    async fn serve(self: &Arc<Self>, mut job: Job, sender: &mut Option<SendRequest<Full<Bytes>>>) {
        // A request waits for a connection at most the client timeout, then
        // has the client timeout for its answer, as a client's own pool and
        // request timeouts do: cutting the answer's time short by the wait
        // would close a connection for each request late past the knee.
        let now = Instant::now();
        let given_up = job.due + self.settings.timeout;
        if now >= given_up {
            // Ended when the client gave up, not when a connection came.
            self.finish_at(job, Outcome::Timeout, given_up);
            return;
        }
        let deadline = now + self.settings.timeout;
        if job.attempts == 0 {
            job.event.sent_at = chrono::Utc::now();
        }
        job.attempts += 1;
        job.sent.get_or_insert_with(Instant::now);
        let outcome =
            match tokio::time::timeout_at(deadline, self.attempt(&job.event, sender)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The request is still on that connection: it cannot carry
                    // another.
                    *sender = None;
                    Outcome::Timeout
                }
            };
        let retries = &self.settings.retries;
        if outcome.retriable() && job.attempts <= retries.max_retries {
            let wait = retries.wait_after(job.attempts);
            let this = self.clone();
            self.handle.spawn(async move {
                tokio::time::sleep(wait).await;
                job.due = Instant::now();
                this.enqueue(job);
            });
            return;
        }
        self.finish(job, outcome);
    }

    /// Writes `job`'s row and counts it.
    fn finish(&self, job: Job, outcome: Outcome) {
        self.finish_at(job, outcome, Instant::now());
    }

    /// Writes `job`'s row, ended at `finished`, and counts it.
    fn finish_at(&self, job: Job, outcome: Outcome, finished: Instant) {
        let counter = if outcome.ok() {
            &self.counters.ok
        } else {
            &self.counters.failed
        };
        counter.fetch_add(1, SeqCst);
        let (intended_us, finished_us) = (self.since(job.intended), self.since(finished));
        if outcome.ok() && self.counters.keep_latencies.load(SeqCst) {
            self.counters
                .latencies
                .lock()
                .expect("latencies lock")
                .push(finished_us.saturating_sub(intended_us));
        }
        let _ = self.rows.send(Row {
            architecture: self.architecture,
            seq: job.seq,
            intended_us,
            sent_us: self.since(job.sent.unwrap_or(finished)),
            finished_us,
            outcome,
            attempts: job.attempts,
            event_id: job.event.event_id,
        });
        if self.outstanding.fetch_sub(1, SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// The request for `event`, or the outcome that ends it unsent.
    fn request(&self, event: &LocationEvent) -> Result<Request<Full<Bytes>>, Outcome> {
        let builder = Request::builder().header(HOST, self.target.host.clone());
        match &self.own {
            None => Ok(builder
                .method(Method::POST)
                .uri(self.target.path.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Full::new(Bytes::from(event.to_json())))
                .expect("a valid request")),
            Some(own) => {
                let (path, body) = own.fill(event);
                // A path the event made unusable is the request's failure,
                // not the driver's.
                builder
                    .method(own.method.clone())
                    .uri(format!("{}{path}", self.target.base))
                    .header(CONTENT_TYPE, own.content_type.as_str())
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|_| Outcome::Status(400))
            }
        }
    }

    /// Sends `event` on this task's connection (opened if it has none) and
    /// reads the whole answer. A kept connection the service closed while
    /// it was idle fails before the request is written; the request then
    /// goes once more on a new one, as hyper's pooled client does.
    async fn attempt(
        &self,
        event: &LocationEvent,
        sender: &mut Option<SendRequest<Full<Bytes>>>,
    ) -> Outcome {
        let mut request = match self.request(event) {
            Ok(request) => request,
            Err(outcome) => return outcome,
        };
        loop {
            let kept = sender.as_ref().is_some_and(|s| !s.is_closed());
            if !kept {
                match connect(&self.target.address).await {
                    Ok(new) => *sender = Some(new),
                    Err(outcome) => {
                        *sender = None;
                        return outcome;
                    }
                }
            }
            let send = sender.as_mut().expect("a connection");
            if send.ready().await.is_err() {
                *sender = None;
                if kept {
                    continue;
                }
                return Outcome::Connection;
            }
            match send.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if response.into_body().collect().await.is_err() {
                        *sender = None;
                    }
                    return match &self.own {
                        None => Outcome::Status(status),
                        Some(own) => own.outcome(status),
                    };
                }
                Err(mut error) => {
                    *sender = None;
                    match error.take_message() {
                        Some(unsent) if kept => request = unsent,
                        _ => return Outcome::Connection,
                    }
                }
            }
        }
    }
}

/// A new HTTP/1.1 connection to `address`, its I/O driven by a task of
/// its own; a refusal is the service's `refused`, anything else
/// `connection`.
async fn connect(address: &str) -> Result<SendRequest<Full<Bytes>>, Outcome> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
            _ => Outcome::Connection,
        })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Outcome::Connection)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_parsed_once_with_its_host_and_path() {
        let target = Target::of("http://127.0.0.1:3001/events").unwrap();
        assert_eq!(target.address, "127.0.0.1:3001");
        assert_eq!(target.host, "127.0.0.1:3001");
        assert_eq!(target.path, "/events");
        let base = Target::of("http://localhost:8080").unwrap();
        assert_eq!(
            (base.address.as_str(), base.base.as_str()),
            ("localhost:8080", "")
        );
        assert_eq!(base.path, "/");
        let prefixed = Target::of("http://api.local/v1/").unwrap();
        assert_eq!(
            (prefixed.address.as_str(), prefixed.base.as_str()),
            ("api.local:80", "/v1")
        );
        assert!(Target::of("https://api.local/").is_err());
    }
}
