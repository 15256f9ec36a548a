//! The native load driver: an open model at a fixed arrival rate.
//!
//! Request `i` is due at `start + i / rate`. The driver records that intended
//! time and measures latency from it, so a stalled service shows up as
//! latency rather than as requests that were never sent (no coordinated
//! omission). Requests that could not even be started because too many were
//! in flight are counted as not sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faultline_services::event::LocationEvent;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// What to send, how fast, for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Full URL of the route to POST events to.
    pub url: String,
    pub rate_per_s: f64,
    pub duration: Duration,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Most requests in flight; beyond it a due request is counted as not sent.
    pub max_in_flight: usize,
    /// Number of distinct drivers the events are spread over.
    pub drivers: usize,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// No answer within the client timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// Not sent: too many requests were already in flight.
    NotSent,
}

impl Outcome {
    pub fn ok(self) -> bool {
        matches!(self, Outcome::Status(200..=299))
    }
}

/// One request, times in microseconds from the start of the run.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub seq: u64,
    pub intended_us: u64,
    pub sent_us: u64,
    pub finished_us: u64,
    pub outcome: Outcome,
    pub event_id: uuid::Uuid,
}

/// The rows of a run and their summary.
pub struct LoadReport {
    pub rows: Vec<Row>,
    pub elapsed: Duration,
}

impl LoadReport {
    /// Latency from the intended send time, in µs, of the rows `keep` selects.
    pub fn latency(&self, keep: impl Fn(&Row) -> bool) -> Histogram<u64> {
        let mut histogram = histogram();
        for row in self.rows.iter().filter(|r| keep(r)) {
            histogram.saturating_record(row.finished_us.saturating_sub(row.intended_us));
        }
        histogram
    }

    /// How late each request was sent relative to its schedule, in µs.
    pub fn schedule_lag(&self) -> Histogram<u64> {
        let mut histogram = histogram();
        for row in self.rows.iter().filter(|r| r.outcome != Outcome::NotSent) {
            histogram.saturating_record(row.sent_us.saturating_sub(row.intended_us));
        }
        histogram
    }
}

/// A histogram of microseconds from 0 to one hour at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Drives `plan` and returns one row per due request.
pub async fn drive(plan: LoadPlan) -> LoadReport {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let total = (plan.rate_per_s * plan.duration.as_secs_f64()).round() as u64;
    let interval_s = 1.0 / plan.rate_per_s;
    let permits = Arc::new(Semaphore::new(plan.max_in_flight.max(1)));
    let url: hyper::Uri = plan.url.parse().expect("a valid URL");
    let (rows_tx, mut rows_rx) = tokio::sync::mpsc::unbounded_channel::<Row>();
    let start = Instant::now();
    let since = move |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
    let collector = tokio::spawn(async move {
        let mut rows = Vec::with_capacity(total as usize);
        while let Some(row) = rows_rx.recv().await {
            rows.push(row);
        }
        rows
    });
    let mut seq = 0u64;
    while seq < total {
        let due = start + Duration::from_secs_f64(seq as f64 * interval_s);
        tokio::time::sleep_until(due).await;
        // Send everything that is due by now: at high rates several requests
        // fall within one timer tick.
        let now = Instant::now();
        while seq < total {
            let intended = start + Duration::from_secs_f64(seq as f64 * interval_s);
            if intended > now {
                break;
            }
            let event = sample_event(seq, plan.drivers);
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                let at = since(Instant::now());
                let _ = rows_tx.send(Row {
                    seq,
                    intended_us: since(intended),
                    sent_us: at,
                    finished_us: at,
                    outcome: Outcome::NotSent,
                    event_id: event.event_id,
                });
                seq += 1;
                continue;
            };
            let client = client.clone();
            let url = url.clone();
            let rows_tx = rows_tx.clone();
            let timeout = plan.timeout;
            tokio::spawn(async move {
                let body = Bytes::from(event.to_json());
                let request = hyper::Request::post(url)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .expect("a valid request");
                let sent = Instant::now();
                let outcome = match tokio::time::timeout(timeout, async {
                    let response = client.request(request).await?;
                    let status = response.status().as_u16();
                    // Read the body so the connection goes back to the pool.
                    let _ = response.into_body().collect().await;
                    Ok::<_, hyper_util::client::legacy::Error>(status)
                })
                .await
                {
                    Ok(Ok(status)) => Outcome::Status(status),
                    Ok(Err(_)) => Outcome::Connection,
                    Err(_) => Outcome::Timeout,
                };
                let _ = rows_tx.send(Row {
                    seq,
                    intended_us: since(intended),
                    sent_us: since(sent),
                    finished_us: since(Instant::now()),
                    outcome,
                    event_id: event.event_id,
                });
                drop(permit);
            });
            seq += 1;
        }
    }
    drop(rows_tx);
    let mut rows = collector.await.expect("the collector does not panic");
    rows.sort_by_key(|r| r.seq);
    LoadReport {
        rows,
        elapsed: start.elapsed(),
    }
}

/// The original PoC's payload: driver `driver_0`..`driver_{n-1}`, a point
/// near San Francisco. Deterministic in `seq` except for the event id.
pub fn sample_event(seq: u64, drivers: usize) -> LocationEvent {
    // A cheap, well-spread hash of the sequence number.
    let mix = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    let unit = |bits: u64| (bits & 0xFFFF) as f64 / 65_536.0;
    LocationEvent {
        event_id: uuid::Uuid::new_v4(),
        driver_id: format!("driver_{}", mix % drivers.max(1) as u64),
        lat: 37.7749 + 0.1 * unit(mix >> 16),
        lng: -122.4194 + 0.1 * unit(mix >> 32),
        sent_at: chrono::Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_measured_from_the_intended_time() {
        let row = |seq, intended_us, finished_us| Row {
            seq,
            intended_us,
            sent_us: intended_us,
            finished_us,
            outcome: Outcome::Status(201),
            event_id: uuid::Uuid::nil(),
        };
        let report = LoadReport {
            rows: vec![
                row(0, 0, 3_000),
                row(1, 1_000, 2_500_000),
                row(2, 2_000, 2_500),
            ],
            elapsed: Duration::from_secs(3),
        };
        let latency = report.latency(|r| r.outcome.ok());
        assert_eq!(latency.len(), 3);
        assert!(latency.equivalent(latency.max(), 2_499_000));
        assert!(latency.equivalent(latency.min(), 500));
    }

    #[test]
    fn sample_events_are_valid_and_spread_over_the_drivers() {
        let mut drivers = std::collections::HashSet::new();
        for seq in 0..10_000 {
            let event = sample_event(seq, 5000);
            event.validate().unwrap();
            assert!((37.7749..=37.8749).contains(&event.lat));
            assert!((-122.4194..=-122.3194).contains(&event.lng));
            drivers.insert(event.driver_id);
        }
        assert!(drivers.len() > 4000, "only {} drivers", drivers.len());
    }
}
