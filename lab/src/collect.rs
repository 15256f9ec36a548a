//! What a run records besides its requests: the services' metrics scraped
//! every second, the database audit after the drain, and the Parquet files of
//! the run folder.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polars::prelude::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fault::FaultRecord;
use crate::load::Row;

/// Rows per Parquet row group; also how many rows are held before a write.
const BATCH_ROWS: usize = 100_000;

/// One sample of an OpenMetrics exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: String,
    /// `key="value",...` as exposed, without braces.
    pub labels: String,
    pub value: f64,
}

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

/// One scraped value.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub t_s: f64,
    pub architecture: String,
    pub service: String,
    pub sample: Sample,
}

/// A service to scrape.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub architecture: String,
    /// `rest`, `producer` or `consumer`.
    pub service: String,
    pub addr: SocketAddr,
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
    let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return,
        }
        let t_s = t0.elapsed().as_secs_f64();
        let fetches: Vec<_> = targets
            .iter()
            .map(|target| tokio::spawn(fetch(target.addr, "/metrics")))
            .collect();
        for (target, fetch) in targets.iter().zip(fetches) {
            let text = fetch.await.unwrap_or_else(|e| Err(e.to_string()));
            let Ok(text) = text else { continue };
            let samples = parse_metrics(&text);
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

/// The text of `path` on `addr` if it answers 200 within 900 ms.
async fn fetch(addr: SocketAddr, path: &'static str) -> Result<String, String> {
    match faultline_stack::services::get(addr, path, Duration::from_millis(900)).await? {
        (200, body) => Ok(body),
        (status, _) => Err(format!("{path} answered {status}")),
    }
}

/// One stored event, from the audit.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub event_id: uuid::Uuid,
    pub stored_by: String,
    /// Microseconds since the Unix epoch.
    pub sent_at_us: i64,
    pub stored_at_us: i64,
}

/// Every stored event of the run, read straight from the database.
pub async fn audit(database_url: &str) -> Result<Vec<StoredRow>, String> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("could not connect for the audit: {e}"))?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT event_id, stored_by,
                    (extract(epoch FROM sent_at) * 1000000)::int8,
                    (extract(epoch FROM stored_at) * 1000000)::int8
             FROM location_events",
            &[],
        )
        .await
        .map_err(|e| format!("the audit query failed: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| StoredRow {
            event_id: r.get(0),
            stored_by: r.get(1),
            sent_at_us: r.get(2),
            stored_at_us: r.get(3),
        })
        .collect())
}

/// Stored events per `stored_by`, for the drain.
pub async fn stored_counts(database_url: &str) -> Result<HashMap<String, i64>, String> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT stored_by, count(*) FROM location_events GROUP BY stored_by",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A Parquet file written in row groups as rows come.
pub struct ParquetSink {
    writer: Option<polars::io::parquet::write::BatchedWriter<File>>,
    file: Option<File>,
    path: std::path::PathBuf,
}

impl ParquetSink {
    pub fn create(path: &Path) -> PolarsResult<Self> {
        Ok(Self {
            writer: None,
            file: Some(File::create(path)?),
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, mut frame: DataFrame) -> PolarsResult<()> {
        if self.writer.is_none() {
            let file = self
                .file
                .take()
                .expect("the file is open until the first write");
            self.writer = Some(ParquetWriter::new(file).batched(frame.schema())?);
        }
        frame.rechunk_mut();
        self.writer.as_mut().expect("a writer").write_batch(&frame)
    }

    /// Closes the file; a sink that got no rows writes `empty` so the file
    /// still has its columns.
    pub fn finish(mut self, empty: DataFrame) -> PolarsResult<()> {
        if self.writer.is_none() {
            self.write(empty)?;
        }
        self.writer.take().expect("a writer").finish()?;
        tracing::debug!(path = %self.path.display(), "Wrote Parquet file.");
        Ok(())
    }
}

/// A named column of `values`.
fn column<T, P: ?Sized>(name: &str, values: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Series::new(name.into(), values).into()
}

/// The columns of `requests.parquet`.
pub fn requests_frame(
    repetition: u32,
    architectures: &[String],
    rows: &[Row],
) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column(
                "architecture",
                rows.iter()
                    .map(|r| architectures[usize::from(r.architecture)].as_str())
                    .collect::<Vec<_>>(),
            ),
            column("seq", rows.iter().map(|r| r.seq).collect::<Vec<_>>()),
            column(
                "event_id",
                rows.iter()
                    .map(|r| r.event_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            column(
                "intended_us",
                rows.iter()
                    .map(|r| r.intended_us as i64)
                    .collect::<Vec<_>>(),
            ),
            column(
                "sent_us",
                rows.iter().map(|r| r.sent_us as i64).collect::<Vec<_>>(),
            ),
            column(
                "finished_us",
                rows.iter()
                    .map(|r| r.finished_us as i64)
                    .collect::<Vec<_>>(),
            ),
            column(
                "latency_ms",
                rows.iter()
                    .map(|r| r.finished_us.saturating_sub(r.intended_us) as f64 / 1000.0)
                    .collect::<Vec<_>>(),
            ),
            column(
                "ok",
                rows.iter().map(|r| r.outcome.ok()).collect::<Vec<_>>(),
            ),
            column(
                "status",
                rows.iter()
                    .map(|r| i32::from(r.outcome.status()))
                    .collect::<Vec<_>>(),
            ),
            column(
                "error",
                rows.iter().map(|r| r.outcome.class()).collect::<Vec<_>>(),
            ),
            column(
                "attempts",
                rows.iter().map(|r| r.attempts).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// The columns of `stored.parquet`. `t0_unix_us` is the run's start.
pub fn stored_frame(
    repetition: u32,
    t0_unix_us: i64,
    rows: &[StoredRow],
) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column(
                "event_id",
                rows.iter()
                    .map(|r| r.event_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            column(
                "architecture",
                rows.iter()
                    .map(|r| r.stored_by.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "sent_at_us",
                rows.iter().map(|r| r.sent_at_us).collect::<Vec<_>>(),
            ),
            column(
                "stored_at_us",
                rows.iter().map(|r| r.stored_at_us).collect::<Vec<_>>(),
            ),
            column(
                "stored_s",
                rows.iter()
                    .map(|r| (r.stored_at_us - t0_unix_us) as f64 / 1e6)
                    .collect::<Vec<_>>(),
            ),
            // One row per id: the table's key makes every write idempotent.
            column("copies", vec![1i32; n]),
        ],
    )
}

/// The columns of `metrics.parquet`.
pub fn metrics_frame(repetition: u32, rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column("t_s", rows.iter().map(|r| r.t_s).collect::<Vec<_>>()),
            column(
                "architecture",
                rows.iter()
                    .map(|r| r.architecture.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "service",
                rows.iter().map(|r| r.service.as_str()).collect::<Vec<_>>(),
            ),
            column(
                "metric",
                rows.iter()
                    .map(|r| r.sample.metric.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "labels",
                rows.iter()
                    .map(|r| r.sample.labels.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "value",
                rows.iter().map(|r| r.sample.value).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// The columns of `faults.parquet`.
pub fn faults_frame(repetition: u32, rows: &[FaultRecord]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column(
                "kind",
                rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ),
            column(
                "target",
                rows.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(),
            ),
            column(
                "planned_start_s",
                rows.iter().map(|r| r.planned_start_s).collect::<Vec<_>>(),
            ),
            column(
                "planned_end_s",
                rows.iter().map(|r| r.planned_end_s).collect::<Vec<_>>(),
            ),
            column(
                "actual_start_s",
                rows.iter().map(|r| r.actual_start_s).collect::<Vec<_>>(),
            ),
            column(
                "actual_end_s",
                rows.iter().map(|r| r.actual_end_s).collect::<Vec<_>>(),
            ),
            column(
                "verified_start",
                rows.iter().map(|r| r.verified_start).collect::<Vec<_>>(),
            ),
            column(
                "verified_end",
                rows.iter().map(|r| r.verified_end).collect::<Vec<_>>(),
            ),
            column(
                "verified",
                rows.iter().map(|r| r.verified).collect::<Vec<_>>(),
            ),
            column(
                "effect_ms",
                rows.iter().map(|r| r.effect_ms).collect::<Vec<_>>(),
            ),
            column(
                "recovery_ms",
                rows.iter().map(|r| r.recovery_ms).collect::<Vec<_>>(),
            ),
            column(
                "detail",
                rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Writes rows in batches of [`BATCH_ROWS`] through `frame`.
pub fn write_batched<T>(
    sink: &mut ParquetSink,
    rows: &[T],
    frame: impl Fn(&[T]) -> PolarsResult<DataFrame>,
) -> PolarsResult<()> {
    for chunk in rows.chunks(BATCH_ROWS) {
        sink.write(frame(chunk)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
