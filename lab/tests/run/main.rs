//! `faultline run` end to end on the real stack, one test binary: here the
//! quick db-crash scenario produces a complete run folder whose rows tell
//! the story, Ctrl-C keeps what was measured, a retry is absorbed, controls
//! run among the faulted repetitions; the modules hold the rest by subject.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod broker;
mod capacity;
mod commands;
#[path = "../common/mod.rs"]
mod common;
mod dashboard;
mod k6;
mod killed;
mod secrets;

use polars::prelude::*;

fn read(dir: &Path, file: &str) -> DataFrame {
    let file = std::fs::File::open(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    ParquetReader::new(file).finish().unwrap()
}

/// A JSON file of a run folder.
fn json_in(dir: &Path, file: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

/// Runs `faultline report` on the run folder `dir`, which must succeed,
/// and returns the summary it wrote.
fn report_again(dir: &Path) -> serde_json::Value {
    let report = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("report")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    json_in(dir, "summary.json")
}

fn strings(frame: &DataFrame, column: &str) -> Vec<String> {
    frame
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn floats(frame: &DataFrame, column: &str) -> Vec<f64> {
    let column = frame
        .column(column)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap();
    column
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}

fn bools(frame: &DataFrame, column: &str) -> Vec<bool> {
    frame
        .column(column)
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect()
}

#[test]
fn db_crash_quick_writes_a_run_folder_that_shows_the_crash() {
    let out = std::env::temp_dir().join(format!("faultline-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/db-crash-quick.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // One of the scenario's hypotheses fails (the drop policy loses events):
    // exit status 3, the run folder's path still printed last.
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("1 hypothesis failed"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = PathBuf::from(stdout.lines().last().expect("the run folder's path"));
    assert!(dir.starts_with(&out), "{dir:?}");
    for file in [
        "experiment.toml",
        "manifest.json",
        "requests.parquet",
        "stored.parquet",
        "metrics.parquet",
        "faults.parquet",
    ] {
        assert!(dir.join(file).is_file(), "{file} is missing");
    }
    let manifest = json_in(&dir, "manifest.json");
    assert_eq!(manifest["status"], "complete", "{manifest}");
    assert_eq!(
        std::fs::read_to_string(dir.join("experiment.toml")).unwrap(),
        std::fs::read_to_string(&scenario).unwrap()
    );

    // The fault happened, on time, verified.
    let faults = read(&dir, "faults.parquet");
    assert_eq!(strings(&faults, "kind"), ["db-crash"]);
    assert_eq!(bools(&faults, "verified"), [true]);
    let (start, end) = (
        floats(&faults, "actual_start_s")[0],
        floats(&faults, "actual_end_s")[0],
    );
    assert!(
        (start - 10.0).abs() < 0.5 && (end - 25.0).abs() < 0.5,
        "{start} {end}"
    );

    // REST: no failure before the crash, failures during it.
    let requests = read(&dir, "requests.parquet");
    let architecture = strings(&requests, "architecture");
    let intended: Vec<f64> = floats(&requests, "intended_us")
        .iter()
        .map(|us| us / 1e6)
        .collect();
    let ok = bools(&requests, "ok");
    let ids = strings(&requests, "event_id");
    let count = |arch: &str, from: f64, to: f64, want_ok: bool| {
        (0..ok.len())
            .filter(|&i| {
                architecture[i] == arch
                    && intended[i] >= from
                    && intended[i] < to
                    && ok[i] == want_ok
            })
            .count()
    };
    // Before the crash: no request that was over by then failed (on a
    // loaded machine a request sent just before the crash may still be in
    // flight when it comes, and fail by it).
    let finished: Vec<f64> = floats(&requests, "finished_us")
        .iter()
        .map(|us| us / 1e6)
        .collect();
    let failed_before: Vec<usize> = (0..ok.len())
        .filter(|&i| architecture[i] == "rest" && finished[i] < start && !ok[i])
        .collect();
    // What each one got and when, for whoever reads a failure.
    let (status, error) = (floats(&requests, "status"), strings(&requests, "error"));
    let seen: Vec<String> = failed_before
        .iter()
        .map(|&i| {
            format!(
                "sent {:.3} s, over {:.3} s: status {} {}",
                intended[i], finished[i], status[i], error[i]
            )
        })
        .collect();
    assert!(
        seen.is_empty(),
        "REST failed before the crash at {start:.3} s: {seen:?}"
    );
    assert!(
        count("rest", start + 0.5, end - 0.5, false) > 500,
        "REST did not fail during the crash"
    );
    assert_eq!(
        count("kafka-buffered", 0.0, 100.0, false),
        0,
        "the producer failed"
    );
    for arch in ["rest", "kafka-buffered", "kafka-drop"] {
        assert_eq!(
            (0..ok.len()).filter(|&i| architecture[i] == arch).count(),
            2000,
            "{arch}"
        );
    }

    // The audit: buffered lost nothing, drop lost events it had acknowledged.
    let stored = read(&dir, "stored.parquet");
    let mut by_arch: HashMap<String, HashSet<String>> = HashMap::new();
    for (arch, id) in strings(&stored, "architecture")
        .into_iter()
        .zip(strings(&stored, "event_id"))
    {
        by_arch.entry(arch).or_default().insert(id);
    }
    let lost = |arch: &str| {
        (0..ok.len())
            .filter(|&i| architecture[i] == arch && ok[i] && !by_arch[arch].contains(&ids[i]))
            .count()
    };
    assert_eq!(lost("kafka-buffered"), 0, "the buffered path lost events");
    assert_eq!(
        lost("rest"),
        0,
        "REST acknowledged an event it did not store"
    );
    assert!(
        lost("kafka-drop") > 100,
        "the drop path lost only {}",
        lost("kafka-drop")
    );

    // The metrics saw the breaker open.
    let metrics = read(&dir, "metrics.parquet");
    let (names, arch, values) = (
        strings(&metrics, "metric"),
        strings(&metrics, "architecture"),
        floats(&metrics, "value"),
    );
    assert!(
        (0..names.len()).any(|i| names[i] == "circuit_breaker_state"
            && arch[i] == "kafka-buffered"
            && values[i] == 2.0),
        "the buffered consumer's breaker never showed open"
    );
    // The lab measured each consumer's backlog from outside it: the topic's
    // end minus the buffered consumer's stored position, or minus the
    // position the drop consumer reports (past what it dropped).
    let measured = |arch_name: &str| {
        (0..names.len())
            .filter(|&i| names[i] == "lab_backlog_messages" && arch[i] == arch_name)
            .map(|i| values[i])
            .collect::<Vec<f64>>()
    };
    let buffered = measured("kafka-buffered");
    assert!(buffered.len() > 20, "{} lab readings", buffered.len());
    assert!(
        buffered.iter().any(|v| *v > 50.0),
        "the measured backlog never grew: {buffered:?}"
    );
    // The drop consumer holds nothing back: what it cannot store it drops.
    let dropping = measured("kafka-drop");
    assert!(dropping.len() > 20, "{} lab readings", dropping.len());
    let peak = |readings: &[f64]| readings.iter().copied().fold(0.0, f64::max);
    assert!(
        peak(&dropping) * 4.0 < peak(&buffered),
        "drop backlog peaked at {}, buffered at {}",
        peak(&dropping),
        peak(&buffered)
    );

    // summary.json: the same story, computed from the files above.
    let summary = json_in(&dir, "summary.json");
    let arch = |name: &str| &summary["architectures"][name];
    assert_eq!(arch("kafka-buffered")["lost"], 0);
    assert_eq!(arch("kafka-drop")["lost"], lost("kafka-drop"));
    assert_eq!(arch("rest")["failed"], count("rest", 0.0, 100.0, false));
    assert!(
        arch("rest")["phases"]["during"]["error_rate"]
            .as_f64()
            .unwrap()
            > 0.9
    );
    // A request sent in the last milliseconds before the crash may fail with it.
    assert_eq!(
        arch("rest")["phases"]["before"]["failed"],
        count("rest", 0.0, start, false)
    );
    assert!(
        arch("kafka-buffered")["freshness_ms"]["max"]
            .as_f64()
            .unwrap()
            > 5_000.0,
        "buffered events were not stored late"
    );
    let verdicts: Vec<bool> = summary["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(verdicts, [true, false], "buffered loses nothing; drop does");
    // REST's writes during the crash mostly got no connection, and the
    // report puts the rate on the database. (The phase ends when the lab
    // saw the database back: the writes of the scrape that covers its
    // return are among them, up to a second's.)
    let pool = &arch("rest")["database"]["during"];
    let (writes, refused) = (pool["writes"].as_u64(), pool["no_connection"].as_u64());
    assert!(refused > writes.map(|w| w.max(100)), "{pool}");
    // Every process of the stack was sampled and spent CPU on the load:
    // each service per its own architecture's requests, the broker per the
    // Kafka paths', the other shared ones per every architecture's.
    let cpu = summary["cpu"].as_array().unwrap();
    let processes: Vec<(String, String)> = cpu
        .iter()
        .map(|c| {
            (
                c["process"].as_str().unwrap().to_string(),
                c["architecture"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("rest", "rest"),
        ("rest", "rest-retry"),
        ("producer", "kafka-buffered"),
        ("consumer", "kafka-buffered"),
        ("producer", "kafka-drop"),
        ("consumer", "kafka-drop"),
        ("postgresql", ""),
        ("broker", ""),
        ("proxy", ""),
        ("driver", ""),
        ("lab", ""),
    ];
    assert_eq!(
        processes,
        expected.map(|(p, a)| (p.to_string(), a.to_string())),
        "{cpu:?}"
    );
    let requests_of = |name: &str| arch(name)["requests"].as_u64().unwrap();
    for c in cpu {
        assert!(c["cpu_s"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["us_per_request"].as_f64().unwrap() > 0.0, "{c}");
        let sent = c["requests"].as_u64().unwrap();
        match c["architecture"].as_str() {
            // Sampled from the first second: the first second's requests
            // are not divided into it.
            Some(name) => assert!(
                sent <= requests_of(name) && sent * 10 >= requests_of(name) * 8,
                "{c}"
            ),
            // The broker serves the Kafka paths alone: their requests.
            None if c["process"] == "broker" => {
                let kafka = requests_of("kafka-buffered") + requests_of("kafka-drop");
                assert!(sent <= kafka && sent * 10 >= kafka * 8, "{c}")
            }
            // The rest of what is shared serves every architecture.
            None => assert!(sent > requests_of("rest") * 2, "{c}"),
        }
    }
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("### What each request cost the machine")
            && markdown.contains("| PostgreSQL (every backend) | every one |"),
        "no CPU table in {markdown}"
    );
    assert!(
        markdown.contains("during the fault against 50 offered: **")
            && markdown.contains("of its writes got no connection**"),
        "no refused writes in {markdown}"
    );
    let drop = arch("kafka-drop");
    let row = format!(
        "| kafka-drop | 2000 | {} | {} | {} |",
        drop["acknowledged"], drop["stored"], drop["lost"]
    );
    assert!(markdown.contains(&row), "{row} not in {markdown}");
    for chart in faultline::report::CHARTS {
        assert!(
            markdown.contains(&format!("(charts/{chart}.svg)")),
            "{chart}"
        );
        assert!(dir.join(format!("charts/{chart}.svg")).is_file(), "{chart}");
    }
    assert!(out.join("index.html").is_file(), "no index of runs");
    assert!(
        markdown.contains("**FAIL** | The original drop policy loses no acknowledged event"),
        "{markdown}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<table>"),
        "{html}"
    );
    assert_eq!(
        html.matches("<svg").count(),
        faultline::report::CHARTS.len(),
        "one inline SVG per chart"
    );
    // `faultline report` recomputes it from the raw files alone.
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    let again = report_again(&dir);
    assert_eq!(again, summary);
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs `scenario` with `driver`; returns the run folder.
/// A fresh folder `faultline-TAG-PID` in the temporary folder, holding the
/// scenario `text` as `file`: the folder and the scenario's path.
/// The run's `faults.parquet`, once every one of its `count` faults was
/// seen to take effect and to end.
fn all_verified(dir: &Path, count: usize) -> DataFrame {
    let faults = read(dir, "faults.parquet");
    assert_eq!(
        bools(&faults, "verified"),
        vec![true; count],
        "{:?}",
        strings(&faults, "detail")
    );
    faults
}

fn scenario_in(tag: &str, file: &str, text: &str) -> (PathBuf, PathBuf) {
    let out = std::env::temp_dir().join(format!("faultline-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let scenario = out.join(file);
    std::fs::write(&scenario, text).unwrap();
    (out, scenario)
}

/// Runs `scenario` quietly into `out`, expecting exit status `code`; the
/// run folder.
fn run_expecting(scenario: &Path, out: &Path, code: i32) -> PathBuf {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(scenario)
        .args(["--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap(),
    )
}

fn run_with(scenario: &Path, driver: &str, out: &Path) -> PathBuf {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(scenario)
        .args(["--driver", driver, "--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{driver}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap(),
    )
}

#[test]
fn ctrl_c_keeps_the_rows_reports_the_run_incomplete_and_exits_4() {
    let out = std::env::temp_dir().join(format!("faultline-interrupted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/db-crash-quick.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .args(["--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The progress lines, read as they come; a signal once the load runs.
    let (started, load) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut said = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("stack ready") {
                let _ = started.send(());
            }
            said.push_str(&line);
            said.push('\n');
        }
        said
    });
    if load
        .recv_timeout(std::time::Duration::from_secs(60))
        .is_err()
    {
        let _ = child.kill();
        let status = child.wait().unwrap();
        panic!(
            "the load never started ({status}):\n{}",
            reader.join().unwrap()
        );
    }
    // Well into the load, before the fault at 10 s.
    std::thread::sleep(std::time::Duration::from_secs(4));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = PathBuf::from(stdout.lines().last().expect("the run folder's path"));
    let summary = json_in(&dir, "summary.json");
    assert_eq!(summary["status"], "incomplete");
    // The rows sent before Ctrl-C are kept and analysed.
    let requests = summary["architectures"]["rest"]["requests"]
        .as_u64()
        .unwrap();
    assert!((50..2000).contains(&requests), "{requests}");
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("**This run is incomplete**: repetition 0: interrupted"),
        "{markdown}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_retry_of_a_stored_event_is_absorbed_and_counted_as_redelivered() {
    // Two REST architectures under a slow database link: each INSERT takes
    // longer than the client waits, so the first attempt times out after
    // its row committed. One architecture's clients retry (same event id);
    // the retries that land find the row stored: redelivered, not stored
    // twice. The other's clients give up: failures, some of them stored.
    let (out, scenario) = scenario_in(
        "redelivered",
        "slow-link.toml",
        "name = \"slow-link\"\nduration = \"14s\"\ndrain_timeout = \"30s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\nclient_timeout = \"500ms\"\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\npool = { size = 50 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest-retry\"\npool = { size = 50 }\n\
         retries = { max_retries = 10, backoff = \"1s\", max_backoff = \"1s\" }\n\
         [[faults]]\nkind = \"db-latency\"\nat = \"4s\"\nduration = \"4s\"\ndelay = \"400ms\"\n",
    );
    let dir = run_expecting(&scenario, &out, 0);
    let summary = json_in(&dir, "summary.json");
    let (rest, retry) = (
        &summary["architectures"]["rest"],
        &summary["architectures"]["rest-retry"],
    );
    let n = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap();
    assert!(n(rest, "failed") > 20, "{rest}");
    assert!(n(rest, "stored_unacknowledged") > 0, "{rest}");
    assert_eq!(n(rest, "redelivered"), 0, "{rest}");
    assert!(n(retry, "redelivered") > 0, "{retry}");
    assert!(n(retry, "failed") < n(rest, "failed"), "{retry}");
    assert_eq!(n(retry, "lost"), 0, "{retry}");
    // Every id once in the table, however often it was delivered.
    let stored = read(&dir, "stored.parquet");
    let ids: HashSet<String> = strings(&stored, "event_id").into_iter().collect();
    assert_eq!(ids.len(), stored.height());
    // The retried requests took several attempts, and their lateness counts.
    let requests = read(&dir, "requests.parquet");
    let attempts = floats(&requests, "attempts");
    let architecture = strings(&requests, "architecture");
    assert!(
        (0..attempts.len()).any(|i| architecture[i] == "rest-retry" && attempts[i] > 1.0),
        "no request was retried"
    );
    assert!(
        retry["freshness_ms"]["max"].as_f64().unwrap() >= 400.0,
        "{retry}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn control_repetitions_run_among_the_faulted_ones_with_the_same_load_and_no_fault() {
    let (out, scenario) = scenario_in(
        "control",
        "control.toml",
        "name = \"control\"\nduration = \"8s\"\nrepetitions = 2\ncontrol = 2\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[faults]]\nkind = \"db-crash\"\nat = \"3s\"\nduration = \"3s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let manifest = json_in(&dir, "manifest.json");
    let reps = manifest["repetitions"].as_array().unwrap();
    // In the order they ran: faulted, control, faulted, control.
    let ran: Vec<(u64, bool)> = reps
        .iter()
        .map(|r| (r["repetition"].as_u64().unwrap(), r["control"] == true))
        .collect();
    assert_eq!(
        ran,
        [(0, false), (2, true), (1, false), (3, true)],
        "{manifest}"
    );
    // The fault played out in the faulted repetitions only.
    let faults = read(&dir, "faults.parquet");
    assert_eq!(floats(&faults, "repetition"), [0.0, 1.0]);
    let summary = json_in(&dir, "summary.json");
    assert_eq!(summary["repetitions"], 2);
    let rest = &summary["architectures"]["rest"];
    assert!(
        rest["phases"]["during"]["error_rate"].as_f64().unwrap() > 0.5,
        "{rest}"
    );
    let control = &rest["control"];
    assert_eq!(control["repetitions"], 2, "{control}");
    assert_eq!(control["phases"]["during"]["error_rate"], 0.0, "{rest}");
    assert_eq!(control["failed"], 0, "{rest}");
    // Two of each: the fault's own change of the p99 has an interval.
    let change = &control["latency_p99_change"];
    assert_eq!(change["faulted"].as_array().unwrap().len(), 2, "{change}");
    assert_eq!(change["control"].as_array().unwrap().len(), 2, "{change}");
    assert!(change["low"].as_f64().unwrap() <= change["ratio"].as_f64().unwrap());
    assert!(change["high"].as_f64().unwrap() >= change["ratio"].as_f64().unwrap());
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("in the order 1, control 1, 2, control 2"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// `GET path` on `addr`: the status and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}
