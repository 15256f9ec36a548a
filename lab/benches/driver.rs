//! The native load driver's own capacity: against an in-process server that
//! answers every POST at once, how many requests per second it completes and
//! how late it sends them relative to their schedule.
//!
//!     cargo bench -p faultline --bench driver
//!
//! Targets (2 cores): schedule error p99 < 1 ms at 5,000 req/s, and at least
//! 20,000 req/s in total.

use std::sync::Arc;
use std::time::Duration;

use faultline::load::{self, Counters};
use faultline::plan::DriverSettings;
use faultline_services::http::{self, App, Common, Identity, Response};
use hyper::Request;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

/// Answers every request with 202 and an empty JSON object.
struct Accept;

impl App for Accept {
    async fn handle(&self, request: Request<Incoming>) -> Response {
        use http_body_util::BodyExt;
        let _ = request.into_body().collect().await;
        http::json(hyper::StatusCode::ACCEPTED, &serde_json::json!({}))
    }

    fn health(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

async fn measure(url: &str, rate: f64, seconds: u64, streams: u16) {
    let schedule = Arc::new(load::constant_schedule(
        rate / f64::from(streams),
        Duration::from_secs(seconds),
    ));
    let (tx, collector) = load::collector(None);
    let t0 = tokio::time::Instant::now();
    let mut drivers = tokio::task::JoinSet::new();
    for stream in 0..streams {
        let driver = load::Driver {
            architecture: stream,
            url: url.to_string(),
            own: None,
            schedule: schedule.clone(),
            settings: DriverSettings {
                timeout: Duration::from_secs(5),
                max_in_flight: 20_000,
                connections: None,
                drivers: 5000,
                seed: 1,
                retries: Default::default(),
            },
            counters: Arc::new(Counters::default()),
        };
        drivers.spawn(driver.run(t0, CancellationToken::new(), tx.clone()));
    }
    drop(tx);
    while drivers.join_next().await.is_some() {}
    let elapsed = t0.elapsed().as_secs_f64();
    let rows = collector.await.unwrap();
    let ok = rows.iter().filter(|r| r.outcome.ok()).count();
    let lag = load::schedule_lag(&rows);
    let latency = load::latency(&rows, |r| r.outcome.ok());
    println!(
        "offered {rate:>6.0} req/s for {seconds} s: {:>6.0} ok/s, {} not ok, schedule error p50 {:.3} ms p99 {:.3} ms max {:.1} ms, latency p50 {:.2} ms p99 {:.2} ms",
        ok as f64 / elapsed,
        rows.len() - ok,
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag.max() as f64 / 1000.0,
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (as from `cargo test`) skips.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let common = Arc::new(Common {
            identity: Identity::new("bench"),
            registry: Default::default(),
            http_metrics: None,
            started: std::time::Instant::now(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(http::serve(
            listener,
            Arc::new(Accept),
            common,
            stop.clone(),
        ));
        measure(&url, 1_000.0, 5, 1).await;
        measure(&url, 5_000.0, 10, 1).await;
        measure(&url, 10_000.0, 10, 2).await;
        measure(&url, 20_000.0, 10, 3).await;
        measure(&url, 25_000.0, 10, 3).await;
        stop.cancel();
    });
}
