//! k6 as a second load driver, for those who prefer it: the same plan becomes
//! a k6 script (one arrival-rate scenario per architecture, the rate shape as
//! its stages), and k6's CSV output becomes the same rows as the native
//! driver's, event ids included.
//!
//! One difference is inherent to k6: it does not report when it meant to
//! send a request, so a row's intended time is its send time, and latency
//! does not include time spent waiting for a free virtual user. Iterations
//! k6 had to drop are counted as requests that were not sent.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::plan::Plan;
use crate::run_folder::rows::{Outcome, Row};

/// What went wrong driving the load with k6.
#[derive(Debug, thiserror::Error)]
pub enum K6Error {
    #[error("could not start k6: {0}")]
    Start(#[source] std::io::Error),
    #[error("could not wait for k6: {0}")]
    Wait(#[source] std::io::Error),
    #[error("k6 exited with {status}: {stderr}")]
    Exit {
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("k6's output {path}: {detail}")]
    Output { path: PathBuf, detail: String },
}

/// The k6 binary: on PATH, else in the set-up script's cache.
pub fn find() -> Option<PathBuf> {
    faultline_stack::which("k6").or_else(|| {
        let cached = faultline_stack::broker::cache_dir().join("bin").join("k6");
        cached.is_file().then_some(cached)
    })
}

const SCRIPT: &str = include_str!("../templates/load.js.j2");

/// One architecture's k6 scenario: a ramping arrival rate through the plan's
/// segments.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Scenario {
    executor: &'static str,
    start_rate: u32,
    time_unit: &'static str,
    #[serde(rename = "preAllocatedVUs")]
    pre_allocated_vus: u64,
    #[serde(rename = "maxVUs")]
    max_vus: u64,
    stages: Vec<Stage>,
    exec: String,
    tags: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Stage {
    target: f64,
    duration: String,
}

/// The most virtual users k6 may start for one architecture: each is a
/// JavaScript runtime of its own.
pub const MAX_VUS: u64 = 2_000;

/// A k6 script driving every `(architecture, url)` with the plan's rate
/// segments, client timeout and event stream shape. Every value is written
/// as JSON, so names and URLs cannot break the script.
pub fn script(plan: &Plan, targets: &[(String, String)]) -> String {
    let load = &plan.load;
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    let stages: Vec<(f64, String)> = load
        .segments
        .iter()
        .flat_map(|segment| {
            [
                (segment.from_rps, "0s".to_string()),
                (segment.to_rps, millis(segment.end - segment.start)),
            ]
        })
        .collect();
    // Enough virtual users for the peak when every request waits its
    // whole timeout on every attempt and every backoff between, up to
    // MAX_VUS per architecture (beyond it k6 counts iterations it could
    // not start, rows `not_sent`); `workload.connections`, when set, is
    // the number (a VU holds one connection and one request at a time, but
    // k6 drops an iteration no VU is free for where the native driver
    // queues it).
    let vus_of = |i: usize| {
        if let Some(connections) = load.settings.connections {
            return connections as u64;
        }
        let retries = load.retries.get(i).cloned().unwrap_or_default();
        let busy = load.settings.timeout.as_secs_f64() * f64::from(retries.max_retries + 1)
            + retries.total_wait().as_secs_f64();
        ((load.peak_rps.max(1.0) * busy).ceil() as u64).clamp(10, MAX_VUS)
    };
    let scenarios: BTreeMap<String, Scenario> = targets
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let vus = vus_of(i);
            let exec = format!("a{i}");
            let scenario = Scenario {
                executor: "ramping-arrival-rate",
                start_rate: 0,
                time_unit: "1s",
                pre_allocated_vus: (vus / 4).max(10).min(vus),
                max_vus: vus,
                stages: stages
                    .iter()
                    .map(|(target, duration)| Stage {
                        target: *target,
                        duration: duration.clone(),
                    })
                    .collect(),
                exec: exec.clone(),
                tags: BTreeMap::from([("architecture", name.clone())]),
            };
            (exec, scenario)
        })
        .collect();
    let options = serde_json::json!({
        "discardResponseBodies": true,
        "summaryTrendStats": ["med", "p(99)", "max"],
        "scenarios": scenarios,
    });
    let targets: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, (_, url))| {
            let retries = load.retries.get(i).cloned().unwrap_or_default();
            let retry = serde_json::json!({
                "max_retries": retries.max_retries,
                "backoff_ms": retries.backoff.0.as_millis() as u64,
                "max_backoff_ms": retries.max_backoff.0.as_millis() as u64,
            });
            context! { exec => format!("a{i}"), url => json(url), retry => json(&retry) }
        })
        .collect();
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_template("load.js", SCRIPT)
        .expect("the k6 template parses");
    env.get_template("load.js")
        .and_then(|t| {
            t.render(context! {
                experiment => json(&plan.experiment),
                options => Value::from_safe_string(
                    serde_json::to_string_pretty(&options).expect("options are JSON"),
                ),
                drivers => load.settings.drivers.max(1),
                timeout => json(&millis(load.settings.timeout)),
                targets => targets,
            })
        })
        .expect("the k6 template renders")
}

/// `value` written into the script as JSON.
fn json(value: &impl Serialize) -> Value {
    Value::from_safe_string(serde_json::to_string(value).expect("a string is JSON"))
}

/// Runs k6 on `script`, writing its CSV to `csv`; stops it on `cancel`.
pub async fn drive(
    k6: &Path,
    script: &Path,
    csv: &Path,
    pid_file: &Path,
    cancel: CancellationToken,
) -> Result<(), K6Error> {
    let mut child = tokio::process::Command::new(k6)
        .arg("run")
        .arg("--quiet")
        .arg("--no-summary")
        .arg("--no-thresholds")
        .arg("--out")
        .arg(format!("csv={}", csv.display()))
        .arg(script)
        .env("K6_CSV_TIME_FORMAT", "unix_milli")
        .env("K6_NO_USAGE_REPORT", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(K6Error::Start)?;
    // Named like the stack's processes, so that whoever cleans up after a
    // runner killed outright stops k6 with them.
    if let Some(pid) = child.id() {
        let _ = std::fs::write(pid_file, format!("{pid} k6\n"));
    }
    let stderr = child.stderr.take();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        }
        text
    });
    let status = tokio::select! {
        status = child.wait() => status.map_err(K6Error::Wait)?,
        () = cancel.cancelled() => {
            // SIGINT lets k6 flush its output.
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT);
            }
            child.wait().await.map_err(K6Error::Wait)?
        }
    };
    let errors = errors.await.unwrap_or_default();
    if !status.success() && !cancel.is_cancelled() {
        return Err(K6Error::Exit {
            status,
            stderr: errors.trim().to_string(),
        });
    }
    Ok(())
}

/// What turns a repetition's k6 CSV into rows: written beside it as it
/// starts, read by [`salvage`].
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Salvage {
    pub repetition: u32,
    pub architectures: Vec<String>,
    pub t0_unix_ms: i64,
}

/// Where repetition `number`'s k6 CSV goes while it runs: with the run
/// folder's parts, where a runner killed outright leaves it (k6 writes it
/// every second), and its [`Salvage`].
pub fn live_csv(run_dir: &Path, number: u32) -> (PathBuf, PathBuf) {
    let parts = run_dir.join(crate::run_folder::parts::PARTS);
    (
        parts.join(format!("k6-{number:05}.csv")),
        parts.join(format!("k6-{number:05}.json")),
    )
}

/// Turns the k6 CSV a killed runner left in the run folder `run_dir` into
/// that repetition's flushed request rows, for
/// [`crate::run_folder::close_killed`] to keep. Returns the rows it found.
pub fn salvage(run_dir: &Path) -> usize {
    use crate::run_folder::{frames, parts};
    let mut found = 0;
    let entries = std::fs::read_dir(run_dir.join(parts::PARTS));
    for entry in entries.into_iter().flatten().flatten() {
        let sidecar = entry.path();
        if !sidecar
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("k6-") && n.ends_with(".json"))
        {
            continue;
        }
        let Some(salvage) = std::fs::read_to_string(&sidecar)
            .ok()
            .and_then(|text| serde_json::from_str::<Salvage>(&text).ok())
        else {
            continue;
        };
        let csv = sidecar.with_extension("csv");
        let rows = match rows(&csv, &salvage.architectures, salvage.t0_unix_ms) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "Could not read the k6 output of a killed run.");
                continue;
            }
        };
        let path = parts::live(run_dir, &frames::REQUESTS, salvage.repetition, 0);
        let frame = frames::requests_frame(salvage.repetition, &salvage.architectures, &rows);
        match parts::write(&path, &frames::REQUESTS, [frame]) {
            Ok(()) => found += rows.len(),
            Err(error) => tracing::warn!(%error, "Could not keep the k6 rows of a killed run."),
        }
    }
    found
}

/// Converts k6's CSV output to rows. `names` are the architectures in order;
/// `t0_unix_ms` is the run's start.
pub fn rows(csv: &Path, names: &[String], t0_unix_ms: i64) -> Result<Vec<Row>, K6Error> {
    let output = |detail: String| K6Error::Output {
        path: csv.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(csv).map_err(|e| output(e.to_string()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| output("k6 wrote no output".into()))?
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| output(format!("k6's CSV has no {name} column")))
    };
    let (metric_i, time_i, value_i, code_i, status_i, tags_i) = (
        column("metric_name")?,
        column("timestamp")?,
        column("metric_value")?,
        column("error_code")?,
        column("status")?,
        column("extra_tags")?,
    );
    let scenario_i = column("scenario")?;
    // Per (event id, attempt): the blocked (queue + connect) row; the
    // duration rows, one per attempt.
    let mut blocked: HashMap<(String, u32), f64> = HashMap::new();
    let mut requests = Vec::new();
    let mut dropped = Vec::new();
    let tags_of = |fields: &[&str]| -> HashMap<String, String> {
        fields[tags_i]
            .split('&')
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let attempt_of = |tags: &HashMap<String, String>| {
        tags.get("attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(1u32)
    };
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < header.len() {
            continue;
        }
        match fields[metric_i] {
            "http_req_blocked" => {
                let tags = tags_of(&fields);
                if let (Some(id), Ok(ms)) = (tags.get("event_id"), fields[value_i].parse::<f64>()) {
                    blocked.insert((id.clone(), attempt_of(&tags)), ms);
                }
            }
            "http_req_duration" => requests.push(fields.clone()),
            "dropped_iterations" => dropped.push(fields.clone()),
            _ => {}
        }
    }
    let architecture_of = |scenario: &str| {
        scenario
            .strip_prefix('a')
            .and_then(|i| i.parse::<u16>().ok())
            .filter(|i| usize::from(*i) < names.len())
    };
    let mut events: HashMap<(u16, uuid::Uuid), Vec<Attempt>> = HashMap::new();
    for fields in &requests {
        let Some(architecture) = architecture_of(fields[scenario_i]) else {
            continue;
        };
        let tags = tags_of(fields);
        let Some(id) = tags
            .get("event_id")
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
        else {
            continue;
        };
        let attempt = attempt_of(&tags);
        let finished_ms = fields[time_i].parse::<f64>().unwrap_or(0.0);
        let duration_ms = fields[value_i].parse::<f64>().unwrap_or(0.0);
        let waited_ms = blocked
            .get(&(id.to_string(), attempt))
            .copied()
            .unwrap_or(0.0);
        let status = fields[status_i].parse::<u16>().unwrap_or(0);
        let outcome = match (status, fields[code_i]) {
            (0, "1050") => Outcome::Timeout,
            (0, "1212") => Outcome::Refused,
            (0, _) => Outcome::Connection,
            (status, _) => Outcome::Status(status),
        };
        events.entry((architecture, id)).or_default().push((
            attempt,
            finished_ms - duration_ms - waited_ms,
            finished_ms,
            outcome,
        ));
    }
    let mut seqs = vec![0u64; names.len()];
    let mut rows = event_rows(events, t0_unix_ms, &mut seqs);
    for fields in &dropped {
        let Some(architecture) = architecture_of(fields[scenario_i]) else {
            continue;
        };
        let count = fields[value_i].parse::<f64>().unwrap_or(0.0) as u64;
        let at = ((fields[time_i].parse::<f64>().unwrap_or(0.0) - t0_unix_ms as f64).max(0.0)
            * 1000.0) as u64;
        for _ in 0..count {
            let seq = &mut seqs[usize::from(architecture)];
            rows.push(Row {
                architecture,
                seq: *seq,
                intended_us: at,
                sent_us: at,
                finished_us: at,
                outcome: Outcome::NotSent,
                attempts: 0,
                event_id: uuid::Uuid::nil(),
            });
            *seq += 1;
        }
    }
    rows.sort_by_key(|r| (r.architecture, r.intended_us));
    Ok(rows)
}

/// Every attempt of an event: (attempt, sent, finished, outcome), times in
/// Unix milliseconds.
type Attempt = (u32, f64, f64, Outcome);

/// One row per event from its attempts, in the order they were first
/// sent, numbered on from `seqs`.
fn event_rows(
    events: HashMap<(u16, uuid::Uuid), Vec<Attempt>>,
    t0_unix_ms: i64,
    seqs: &mut [u64],
) -> Vec<Row> {
    let relative = |ms: f64| ((ms - t0_unix_ms as f64).max(0.0) * 1000.0) as u64;
    let mut rows = Vec::new();
    let mut ordered: Vec<_> = events.into_iter().collect();
    ordered.sort_by(|a, b| {
        let first = |v: &[Attempt]| v.iter().map(|a| a.1).fold(f64::INFINITY, f64::min);
        first(&a.1).total_cmp(&first(&b.1))
    });
    for ((architecture, id), mut attempts) in ordered {
        attempts.sort_by_key(|a| a.0);
        let (Some(first), Some(last)) = (attempts.first(), attempts.last()) else {
            continue;
        };
        // Sent when the first attempt went, finished with the last: the
        // event is as late as every wait (latency from the first send,
        // as the native driver counts it).
        let seq = &mut seqs[usize::from(architecture)];
        rows.push(Row {
            architecture,
            seq: *seq,
            intended_us: relative(first.1),
            sent_us: relative(first.1),
            finished_us: relative(last.2),
            outcome: last.3,
            attempts: attempts.len() as u32,
            event_id: id,
        });
        *seq += 1;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_has_one_scenario_per_architecture_and_the_rate_as_stages() {
        let experiment = crate::validate::parse(
            "name = \"k\"\nduration = \"10s\"\n[workload]\nrate = { shape = \"spike\", base_rps = 5, peak_rps = 20, at = \"4s\", lasts = \"2s\" }\n",
            "k.toml",
        )
        .unwrap();
        let plan = Plan::of(&experiment, None);
        let script = script(
            &plan,
            &[
                ("rest".into(), "http://127.0.0.1:1/events".into()),
                // A name and a URL that would break a script written by hand.
                (
                    "kafka'\"}".into(),
                    "http://127.0.0.1:2/events?a='b'&c=\"d\"".into(),
                ),
            ],
        );
        let options = script
            .split_once("export const options = ")
            .and_then(|(_, rest)| rest.split_once(";\n"))
            .map(|(options, _)| options)
            .unwrap();
        let options: serde_json::Value = serde_json::from_str(options).unwrap();
        for exec in ["a0", "a1"] {
            let scenario = &options["scenarios"][exec];
            assert_eq!(scenario["executor"], "ramping-arrival-rate");
            assert_eq!(scenario["exec"], exec);
        }
        assert_eq!(
            options["scenarios"]["a1"]["tags"]["architecture"],
            "kafka'\"}"
        );
        let stages = options["scenarios"]["a0"]["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 6, "three segments, two stages each");
        assert_eq!(stages[2]["target"], 20.0);
        assert_eq!(stages[2]["duration"], "0s");
        assert_eq!(stages[3]["duration"], "2000ms");
        // Each architecture's retries beside its URL: none for these two.
        assert!(
            script.contains(
                "export function a1() { send(\"http://127.0.0.1:2/events?a='b'&c=\\\"d\\\"\", \
             {\"backoff_ms\":200,\"max_backoff_ms\":30000,\"max_retries\":0}); }"
            ),
            "{script}"
        );
        assert!(script.contains("timeout: \"5000ms\""));
        assert!(script.contains("const drivers = 5000;"));
    }

    #[test]
    fn k6_csv_becomes_rows() {
        let dir = std::env::temp_dir().join(format!("faultline-k6-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("out.csv");
        let id = "7ff86691-2322-41ec-ba0a-0ffbc74c12bc";
        let again = "3b0d1c2e-98a4-4f55-8c1e-2a41f1f0a6d7";
        std::fs::write(
            &csv,
            format!(
                "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata\n\
                 http_req_blocked,1000500,2.000000,,,,true,,POST,u,HTTP/1.1,a0,,201,,,u,event_id={id}&architecture=rest,\n\
                 http_req_duration,1000500,8.000000,,,,true,,POST,u,HTTP/1.1,a0,,201,,,u,event_id={id}&architecture=rest,\n\
                 http_req_duration,1000600,0.000000,,dial: connection refused,1212,false,,POST,u,,a0,,0,,,u,event_id=0cff060c-2058-4486-9027-cc3adc9fd8e7&architecture=rest,\n\
                 dropped_iterations,1000700,2.000000,,,,,,,,,a0,,,,,,architecture=rest,\n\
                 http_req_duration,1002000,3.000000,,,,false,,POST,u,HTTP/1.1,a0,,503,,,u,event_id={again}&attempt=1&architecture=rest,\n\
                 http_req_blocked,1002700,1.000000,,,,true,,POST,u,HTTP/1.1,a0,,201,,,u,event_id={again}&attempt=2&architecture=rest,\n\
                 http_req_duration,1002700,4.000000,,,,true,,POST,u,HTTP/1.1,a0,,201,,,u,event_id={again}&attempt=2&architecture=rest,\n"
            ),
        )
        .unwrap();
        let rows = rows(&csv, &["rest".into()], 1_000_000).unwrap();
        assert_eq!(rows.len(), 5);
        // Two attempts of one event: one row, sent with the first (1,997 ms
        // after t0), finished with the second, its outcome the second's.
        let retried = rows
            .iter()
            .find(|r| r.event_id.to_string() == again)
            .unwrap();
        assert_eq!(retried.attempts, 2);
        assert_eq!(retried.outcome, Outcome::Status(201));
        assert_eq!(
            (retried.sent_us, retried.finished_us),
            (1_997_000, 2_700_000)
        );
        assert_eq!(rows[0].event_id.to_string(), id);
        assert_eq!(rows[0].outcome, Outcome::Status(201));
        assert_eq!((rows[0].sent_us, rows[0].finished_us), (490_000, 500_000));
        assert_eq!(rows[1].outcome, Outcome::Refused);
        assert_eq!(
            rows.iter()
                .filter(|r| r.outcome == Outcome::NotSent)
                .count(),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
