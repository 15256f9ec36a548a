//! The live view of a run (`faultline run --dashboard`): what the status
//! line says each second, kept for a page in the browser and for
//! Prometheus.
//!
//! Each second the status line's ticker adds a second per architecture:
//! the requests answered ok and failed in it (as they finished) with the
//! successful ones' latency p50 and p99, the consumer's backlog and
//! breaker, the faults active. When a repetition
//! ends, its seconds are replaced by the exact ones from its rows (each
//! request counted in the second it was due, as `charts/seconds.csv` counts
//! it, with the latency percentiles of the successful ones) and its faults
//! by their records (actual start, end and verification). The server
//! ([`serve`]) answers `/` (a self-contained page that polls), `/data` (the
//! state as JSON) and `/metrics` (OpenMetrics).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

mod openmetrics;
pub use openmetrics::{Histogram, LATENCY_BUCKETS_S, openmetrics};

use crate::run_folder::rows::{FaultRecord, Row};

/// One second of one architecture.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    pub t: u32,
    pub architecture: usize,
    pub ok: u64,
    pub failed: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub backlog: Option<f64>,
    pub breaker: Option<f64>,
}

/// A fault as the live view knows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveFault {
    pub kind: String,
    pub start_s: f64,
    pub end_s: Option<f64>,
    /// Both ends seen by the fault's probe; `None` until its record.
    pub verified: Option<bool>,
}

/// One repetition as it goes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepetitionView {
    pub number: u32,
    pub label: String,
    pub control: bool,
    /// `load`, `drain`, then `done`.
    pub phase: String,
    pub elapsed_s: f64,
    /// The seconds are the rows' (the repetition is over).
    pub exact: bool,
    pub seconds: Vec<Second>,
    pub faults: Vec<LiveFault>,
    /// Requests answered ok and failed so far, per architecture.
    pub ok_total: Vec<u64>,
    pub failed_total: Vec<u64>,
    /// The latency of the requests answered ok so far, per architecture
    /// (for `/metrics`; the page draws each second's percentiles).
    #[serde(skip)]
    pub latency: Vec<Histogram>,
}

/// What the page and `/metrics` show.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct State {
    pub scenario: String,
    pub run_id: String,
    pub architectures: Vec<String>,
    /// Each architecture's colour, as in the report.
    pub colours: Vec<String>,
    pub duration_s: f64,
    /// Repetitions to run, controls included.
    pub runs: u32,
    pub repetitions: Vec<RepetitionView>,
    /// `running`, then the run's status (`complete`, `incomplete`,
    /// `failed`).
    pub status: String,
    /// The report's path once written.
    pub report: Option<String>,
    /// The services the lab scrapes in the repetition under way, for
    /// Prometheus's HTTP service discovery (`/sd`).
    pub targets: Vec<SdTarget>,
    /// With `sweep --dashboard`: every point and how it went.
    pub sweep: Option<SweepView>,
}

/// A sweep's points, for its dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SweepView {
    pub name: String,
    pub points: Vec<PointView>,
}

/// One point of a sweep.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PointView {
    /// From 1.
    pub number: usize,
    /// Its values, e.g. `faults[0].duration = 20s`.
    pub label: String,
    /// `to run`, `running`, then the run's status; `done before` for a
    /// point a resumed sweep keeps.
    pub status: String,
}

/// A target group of Prometheus's HTTP service discovery: one service.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SdTarget {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl SdTarget {
    /// One scraped service, labelled with its architecture, its service
    /// and, given them, the run and the repetition.
    pub fn of(target: &crate::collect::ScrapeTarget, run: Option<(&str, u32)>) -> Self {
        let mut labels = BTreeMap::from([
            ("__metrics_path__".to_string(), target.path.clone()),
            ("architecture".to_string(), target.architecture.clone()),
            ("service".to_string(), target.service.clone()),
        ]);
        if let Some((run, repetition)) = run {
            labels.insert("run".into(), run.to_string());
            labels.insert("repetition".into(), (repetition + 1).to_string());
        }
        Self {
            targets: vec![target.addr.to_string()],
            labels,
        }
    }
}

/// The live state, shared by the run and the server.
#[derive(Debug, Default)]
pub struct Live {
    state: Mutex<State>,
}

impl Live {
    /// A run of `architectures`, `duration_s` long, `runs` repetitions.
    pub fn new(
        scenario: &str,
        run_id: &str,
        architectures: &[String],
        duration_s: f64,
        runs: u32,
    ) -> Arc<Self> {
        let live = Arc::new(Self::default());
        live.new_run(scenario, run_id, architectures, duration_s, runs);
        live
    }

    /// A sweep's dashboard: its `points` (label, status), no run yet.
    pub fn for_sweep(name: &str, points: Vec<(String, String)>) -> Arc<Self> {
        let live = Arc::new(Self::default());
        live.with(|s| {
            s.scenario = name.to_string();
            s.status = "running".into();
            s.sweep = Some(SweepView {
                name: name.to_string(),
                points: points
                    .into_iter()
                    .enumerate()
                    .map(|(i, (label, status))| PointView {
                        number: i + 1,
                        label,
                        status,
                    })
                    .collect(),
            });
        });
        live
    }

    /// A run starts (a sweep's next point, or the one run): what it shows
    /// of the run before is gone, a sweep's points stay.
    pub fn new_run(
        &self,
        scenario: &str,
        run_id: &str,
        architectures: &[String],
        duration_s: f64,
        runs: u32,
    ) {
        self.with(|s| {
            *s = State {
                scenario: scenario.to_string(),
                run_id: run_id.to_string(),
                architectures: architectures.to_vec(),
                colours: (0..architectures.len()).map(crate::chart::colour).collect(),
                duration_s,
                runs,
                repetitions: Vec::new(),
                status: "running".into(),
                report: None,
                targets: Vec::new(),
                sweep: s.sweep.take(),
            };
        });
    }

    /// Point `index` (from 0) of a sweep is now `status`.
    pub fn point(&self, index: usize, status: &str) {
        self.with(|s| {
            if let Some(point) = s.sweep.as_mut().and_then(|w| w.points.get_mut(index)) {
                point.status = status.to_string();
            }
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("live state lock"))
    }

    /// A copy of the state.
    pub fn state(&self) -> State {
        self.with(|s| s.clone())
    }

    /// Repetition `number` starts.
    pub fn start(&self, number: u32, label: &str, control: bool) {
        self.with(|s| {
            let n = s.architectures.len();
            s.repetitions.push(RepetitionView {
                number,
                label: label.to_string(),
                control,
                phase: "load".into(),
                elapsed_s: 0.0,
                exact: false,
                seconds: Vec::new(),
                faults: Vec::new(),
                ok_total: vec![0; n],
                failed_total: vec![0; n],
                latency: vec![Histogram::default(); n],
            });
        });
    }

    /// The latencies (µs) of requests of `architecture` answered ok since
    /// the last call.
    pub fn observe(&self, architecture: usize, latencies_us: &[u64]) {
        self.with(|s| {
            if let Some(h) = s
                .repetitions
                .last_mut()
                .and_then(|r| r.latency.get_mut(architecture))
            {
                for &us in latencies_us {
                    h.add(us);
                }
            }
        });
    }

    /// One tick of the status line: `seconds` (one per architecture),
    /// the faults active now, `elapsed_s` and the phase.
    pub fn tick(&self, seconds: Vec<Second>, active: &[String], elapsed_s: f64, phase: &str) {
        self.with(|s| {
            let Some(r) = s.repetitions.last_mut() else {
                return;
            };
            r.elapsed_s = elapsed_s;
            r.phase = phase.to_string();
            for second in &seconds {
                if let Some(total) = r.ok_total.get_mut(second.architecture) {
                    *total += second.ok;
                }
                if let Some(total) = r.failed_total.get_mut(second.architecture) {
                    *total += second.failed;
                }
            }
            r.seconds.extend(seconds);
            // A fault that appeared starts now; one that went ends now.
            for kind in active {
                if !r
                    .faults
                    .iter()
                    .any(|f| &f.kind == kind && f.end_s.is_none())
                {
                    r.faults.push(LiveFault {
                        kind: kind.clone(),
                        start_s: elapsed_s,
                        end_s: None,
                        verified: None,
                    });
                }
            }
            for fault in r.faults.iter_mut().filter(|f| f.end_s.is_none()) {
                if !active.contains(&fault.kind) {
                    fault.end_s = Some(elapsed_s);
                }
            }
        });
    }

    /// The repetition is over: its seconds and faults from its rows and
    /// records. The scraped backlog and breaker of each second are kept.
    pub fn finish(&self, rows: &[Row], faults: &[FaultRecord]) {
        self.with(|s| {
            let n = s.architectures.len();
            let Some(r) = s.repetitions.last_mut() else {
                return;
            };
            let scraped: Scraped = r
                .seconds
                .iter()
                .map(|x| ((x.t, x.architecture), (x.backlog, x.breaker)))
                .collect();
            r.seconds = exact_seconds(rows, n, &scraped);
            r.latency = vec![Histogram::default(); n];
            for row in rows.iter().filter(|row| row.outcome.ok()) {
                if let Some(h) = r.latency.get_mut(usize::from(row.architecture)) {
                    h.add(row.finished_us.saturating_sub(row.intended_us));
                }
            }
            r.ok_total = vec![0; n];
            r.failed_total = vec![0; n];
            for x in &r.seconds {
                r.ok_total[x.architecture] += x.ok;
                r.failed_total[x.architecture] += x.failed;
            }
            r.faults = faults
                .iter()
                .filter_map(|f| {
                    Some(LiveFault {
                        kind: f.kind.clone(),
                        start_s: f.actual_start_s?,
                        end_s: f.actual_end_s,
                        verified: Some(f.verified),
                    })
                })
                .collect();
            r.exact = true;
            r.phase = "done".into();
        });
    }

    /// The services scraped in the repetition under way.
    pub fn scraped_from(&self, targets: &[crate::collect::ScrapeTarget]) {
        self.with(|s| {
            let repetition = s.repetitions.last().map_or(0, |r| r.number);
            s.targets = targets
                .iter()
                .map(|t| SdTarget::of(t, Some((&s.run_id, repetition))))
                .collect();
        });
    }

    /// The run is over.
    pub fn end(&self, status: &str, report: Option<String>) {
        self.with(|s| {
            s.status = status.to_string();
            s.report = report;
        });
    }

    /// The state in the OpenMetrics text format.
    pub fn openmetrics(&self) -> String {
        openmetrics(&self.state())
    }
}

/// Per (second, architecture): the backlog and breaker scraped then.
type Scraped = BTreeMap<(u32, usize), (Option<f64>, Option<f64>)>;

/// Each second's counts of `rows` by the second each request was due (as
/// `charts/seconds.csv` counts them), with the successful ones' p50 and
/// p99, and the `scraped` backlog and breaker of that second.
fn exact_seconds(rows: &[Row], architectures: usize, scraped: &Scraped) -> Vec<Second> {
    let mut by: BTreeMap<(u32, usize), (u64, u64, Vec<u64>)> = BTreeMap::new();
    for row in rows {
        let a = usize::from(row.architecture);
        if a >= architectures {
            continue;
        }
        let t = (row.intended_us / 1_000_000) as u32;
        let slot = by.entry((t, a)).or_default();
        if row.outcome.ok() {
            slot.0 += 1;
            slot.2.push(row.finished_us.saturating_sub(row.intended_us));
        } else {
            slot.1 += 1;
        }
    }
    by.into_iter()
        .map(|((t, architecture), (ok, failed, latencies))| {
            let latency = crate::stats::latency(latencies.into_iter());
            let (backlog, breaker) = scraped
                .get(&(t, architecture))
                .copied()
                .unwrap_or((None, None));
            Second {
                t,
                architecture,
                ok,
                failed,
                p50_ms: latency.as_ref().map(|l| l.p50),
                p99_ms: latency.as_ref().map(|l| l.p99),
                backlog,
                breaker,
            }
        })
        .collect()
}

/// A Prometheus configuration that scrapes the lab's series on the
/// dashboard at `dashboard` and every service of the run, found through
/// the dashboard's HTTP service discovery (`/sd`): each repetition's fresh
/// stack is followed as it comes up.
pub fn prometheus_for_run(dashboard: SocketAddr, run_id: &str) -> String {
    format!(
        "# Written by faultline for run {run_id}: the lab's series (the dashboard's /metrics)\n\
         # and every service of the run (found at the dashboard's /sd, repetition by repetition).\n\
         global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: faultline-lab\n\
         \x20   static_configs:\n\
         \x20     - targets: [\"{dashboard}\"]\n\
         \x20 - job_name: faultline-services\n\
         \x20   http_sd_configs:\n\
         \x20     - url: http://{dashboard}/sd\n\
         \x20       refresh_interval: 5s\n"
    )
}

/// A Prometheus configuration that scrapes the services `targets` of a
/// stack brought up by `stack up`, at fixed addresses.
pub fn prometheus_for_stack(targets: &[SdTarget]) -> String {
    let mut out = String::from(
        "# Written by faultline stack up: every service of the stack.\n\
         global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n",
    );
    for target in targets {
        let label = |key: &str| target.labels.get(key).cloned().unwrap_or_default();
        out.push_str(&format!(
            "  - job_name: \"{}-{}\"\n    metrics_path: \"{}\"\n    static_configs:\n      - targets: [\"{}\"]\n        labels: {{ architecture: \"{}\", service: \"{}\" }}\n",
            label("architecture"),
            label("service"),
            label("__metrics_path__"),
            target.targets.join("\", \""),
            label("architecture"),
            label("service"),
        ));
    }
    out
}

/// The page: self-contained (no network but its own `/data`).
const PAGE: &str = include_str!("../../templates/live.html");

/// Serves the live view on `addr` until `stop`; returns where it listens.
pub async fn serve(
    addr: SocketAddr,
    live: Arc<Live>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("the dashboard cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                () = stop.cancelled() => break,
            };
            let live = live.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let live = live.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&request, &live)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

type Answer = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn answer<B>(request: &hyper::Request<B>, live: &Live) -> Answer {
    let reply = |status: u16, kind: &str, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", kind)
            .header("cache-control", "no-store")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("a valid answer")
    };
    if request.method() != hyper::Method::GET {
        return reply(405, "text/plain", "GET only\n".into());
    }
    match request.uri().path() {
        "/" => reply(200, "text/html; charset=utf-8", PAGE.to_string()),
        "/data" => reply(
            200,
            "application/json",
            serde_json::to_string(&live.state()).unwrap_or_default(),
        ),
        "/sd" => reply(
            200,
            "application/json",
            serde_json::to_string(&live.state().targets).unwrap_or_default(),
        ),
        "/metrics" => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            live.openmetrics(),
        ),
        _ => reply(404, "text/plain", "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_folder::rows::Outcome;

    fn row(architecture: u16, intended_ms: u64, ok: bool) -> Row {
        Row {
            architecture,
            seq: 0,
            intended_us: intended_ms * 1000,
            sent_us: intended_ms * 1000,
            finished_us: intended_ms * 1000 + 2000,
            outcome: if ok {
                Outcome::Status(201)
            } else {
                Outcome::Status(503)
            },
            attempts: 1,
            event_id: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn a_finished_repetition_counts_each_request_in_the_second_it_was_due() {
        let live = Live::new("s", "r", &["rest".into(), "kafka".into()], 10.0, 1);
        live.start(0, "[1/1]", false);
        // Live: counted as they finished, a backlog scraped.
        live.tick(
            vec![Second {
                t: 0,
                architecture: 1,
                ok: 3,
                failed: 0,
                p50_ms: None,
                p99_ms: None,
                backlog: Some(7.0),
                breaker: Some(0.0),
            }],
            &["db-crash".into()],
            1.0,
            "load",
        );
        assert_eq!(live.state().repetitions[0].faults[0].end_s, None);
        live.tick(Vec::new(), &[], 2.0, "load");
        assert_eq!(live.state().repetitions[0].faults[0].end_s, Some(2.0));
        let metrics = live.openmetrics();
        assert!(metrics.contains(
            "faultline_lab_requests_total{run=\"r\",repetition=\"1\",architecture=\"kafka\",outcome=\"ok\"} 3"
        ), "{metrics}");
        assert!(metrics.contains(
            "faultline_lab_fault_active{run=\"r\",repetition=\"1\",kind=\"db-crash\"} 0"
        ));
        assert!(metrics.ends_with("# EOF\n"));
        // Latency: counted by bucket, cumulative in the text.
        live.observe(1, &[500, 3_000, 40_000_000]);
        let metrics = live.openmetrics();
        let k = "run=\"r\",repetition=\"1\",architecture=\"kafka\"";
        for line in [
            format!("faultline_lab_request_duration_seconds_bucket{{{k},le=\"0.001\"}} 1"),
            format!("faultline_lab_request_duration_seconds_bucket{{{k},le=\"0.0025\"}} 1"),
            format!("faultline_lab_request_duration_seconds_bucket{{{k},le=\"0.005\"}} 2"),
            format!("faultline_lab_request_duration_seconds_bucket{{{k},le=\"30\"}} 2"),
            format!("faultline_lab_request_duration_seconds_bucket{{{k},le=\"+Inf\"}} 3"),
            format!("faultline_lab_request_duration_seconds_count{{{k}}} 3"),
            format!("faultline_lab_request_duration_seconds_sum{{{k}}} 40.0035"),
        ] {
            assert!(metrics.contains(&line), "{line} in {metrics}");
        }
        // Exact: by the second each was due.
        live.finish(
            &[
                row(0, 100, true),
                row(0, 900, false),
                row(1, 999, true),
                row(1, 1000, true),
            ],
            &[],
        );
        let state = live.state();
        let r = &state.repetitions[0];
        assert!(r.exact);
        let at = |t, a| {
            r.seconds
                .iter()
                .find(|s| s.t == t && s.architecture == a)
                .unwrap()
        };
        assert_eq!((at(0, 0).ok, at(0, 0).failed), (1, 1));
        assert_eq!((at(0, 1).ok, at(0, 1).backlog), (1, Some(7.0)));
        assert_eq!((at(1, 1).ok, at(1, 1).backlog), (1, None));
        assert_eq!(at(0, 0).p99_ms, Some(2.0));
        assert_eq!(r.ok_total, [1, 2]);
        // The histogram is the rows' too: the two ok requests of kafka.
        assert_eq!(r.latency[1].count, 2);
        assert_eq!(r.latency[1].counts[1], 2, "2 ms is within 2.5 ms");
        live.end("complete", Some("/x/report.html".into()));
        assert_eq!(live.state().status, "complete");
    }

    #[test]
    fn a_sweeps_points_stay_as_each_run_starts() {
        let live = Live::for_sweep(
            "what-if",
            vec![
                ("d = 5s".into(), "done before".into()),
                ("d = 20s".into(), "to run".into()),
            ],
        );
        live.point(1, "running");
        live.new_run("what-if", "p02", &["rest".into()], 35.0, 1);
        live.start(0, "[1/1]", false);
        let state = live.state();
        assert_eq!(
            (state.run_id.as_str(), state.status.as_str()),
            ("p02", "running")
        );
        let points = &state.sweep.as_ref().unwrap().points;
        assert_eq!(points[1].status, "running");
        assert_eq!(points[0].status, "done before");
        live.point(1, "complete");
        live.new_run("what-if", "p03", &["rest".into()], 35.0, 1);
        let state = live.state();
        assert!(
            state.repetitions.is_empty(),
            "the last run's seconds are gone"
        );
        assert_eq!(state.sweep.unwrap().points[1].status, "complete");
    }
}
