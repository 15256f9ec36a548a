//! `faultline run` end to end on the real stack: the quick db-crash scenario
//! produces a complete run folder whose rows tell the story.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

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
    // REST's writes during the crash mostly got no connection: no pool's
    // bound, and the report puts the rate on the database.
    let pool = &arch("rest")["database"]["during"];
    let (writes, refused) = (pool["writes"].as_u64(), pool["no_connection"].as_u64());
    assert!(refused > writes.map(|w| w.max(100)), "{pool}");
    assert!(pool["bound_rows_per_s"].is_null(), "{pool}");
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
fn the_k6_and_native_drivers_write_the_same_rows() {
    let (out, scenario) = scenario_in(
        "drivers",
        "tiny.toml",
        "name = \"tiny\"\nduration = \"6s\"\ndrain_timeout = \"30s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\nbatch_size = 50\n",
    );
    let native = read(
        &run_with(&scenario, "native", &out.join("native")),
        "requests.parquet",
    );
    let k6 = read(
        &run_with(&scenario, "k6", &out.join("k6")),
        "requests.parquet",
    );
    assert_eq!(
        native.schema(),
        k6.schema(),
        "the drivers' rows differ in shape"
    );
    for (driver, frame) in [("native", &native), ("k6", &k6)] {
        let architecture = strings(frame, "architecture");
        for arch in ["rest", "kafka-buffered"] {
            let n = architecture.iter().filter(|a| *a == arch).count();
            assert!(
                (115..=121).contains(&n),
                "{driver}: {n} requests for {arch}"
            );
        }
        // Both drivers record what the services answered. On a loaded
        // machine a statement can pass its timeout (a 503): such a row must
        // carry the service's answer, not a failure of the driver's own.
        let ok = bools(frame, "ok");
        let status = floats(frame, "status");
        let failed = ok.iter().filter(|ok| !**ok).count();
        assert!(
            failed * 20 <= ok.len(),
            "{driver}: {failed} of {} failed",
            ok.len()
        );
        for (i, ok) in ok.iter().enumerate() {
            assert!(
                *ok || status[i] >= 500.0,
                "{driver}: row {i} failed without an answer"
            );
        }
        let ids: HashSet<String> = strings(frame, "event_id").into_iter().collect();
        assert_eq!(ids.len(), frame.height(), "{driver}: event ids repeat");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn k6_resends_a_failed_request_with_the_same_event_as_the_native_driver_does() {
    // REST through a 2 s crash, its clients retrying 4 times from 300 ms:
    // k6's attempts of one event become one row, as the native driver's.
    let (out, scenario) = scenario_in(
        "k6-retries",
        "retries.toml",
        "name = \"retries\"\nduration = \"8s\"\ndrain_timeout = \"20s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         retries = { max_retries = 4, backoff = \"300ms\", max_backoff = \"2s\" }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[faults]]\nkind = \"db-crash\"\nat = \"3s\"\nduration = \"2s\"\n",
    );
    let dir = run_with(&scenario, "k6", &out.join("k6"));
    let frame = read(&dir, "requests.parquet");
    let ids: HashSet<String> = strings(&frame, "event_id").into_iter().collect();
    assert_eq!(
        ids.len(),
        frame.height(),
        "an event has one row, whatever its attempts"
    );
    let (attempts, ok, latency) = (
        floats(&frame, "attempts"),
        bools(&frame, "ok"),
        floats(&frame, "latency_ms"),
    );
    let retried: Vec<usize> = (0..frame.height())
        .filter(|i| attempts[*i] >= 2.0)
        .collect();
    assert!(
        !retried.is_empty(),
        "no request was retried through the crash"
    );
    assert!(
        retried.iter().any(|i| ok[*i]),
        "a retried request answered after the database came back"
    );
    for i in retried {
        // Its latency counts from the first attempt: every backoff is in it.
        assert!(latency[i] >= 300.0, "row {i}: {} ms", latency[i]);
        assert!(attempts[i] <= 5.0);
    }
    let _ = std::fs::remove_dir_all(&out);
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
    load.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the load never started");
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

#[test]
fn a_command_fault_runs_its_shell_commands_on_the_clock_and_keeps_their_output() {
    // Shell commands that freeze and thaw PostgreSQL, as any chaos tool
    // would, with a verify command that sees the processes stopped.
    let (out, scenario) = scenario_in(
        "command",
        "command.toml",
        r#"name = "command"
duration = "10s"
[workload]
rate = { shape = "constant", rps = 20 }
client_timeout = "1s"
[[architectures]]
kind = "rest"
name = "rest"
[[faults]]
kind = "command"
at = "3s"
duration = "3s"
start = 'kill -STOP $FAULTLINE_POSTGRES_PID $(pgrep -P $FAULTLINE_POSTGRES_PID); echo frozen'
end = 'kill -CONT $FAULTLINE_POSTGRES_PID $(pgrep -P $FAULTLINE_POSTGRES_PID); echo thawed'
verify = "! grep -q 'State:.*stopped' /proc/$FAULTLINE_POSTGRES_PID/status"
timeout = "5s"
"#,
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = read(&dir, "faults.parquet");
    assert_eq!(strings(&faults, "kind"), ["command"]);
    assert_eq!(bools(&faults, "verified"), [true], "{faults}");
    let detail = &strings(&faults, "detail")[0];
    assert!(
        detail.contains("start: `kill -STOP")
            && detail.contains("exit 0")
            && detail.contains("frozen"),
        "{detail}"
    );
    assert!(
        detail.contains("end: `kill -CONT") && detail.contains("thawed"),
        "{detail}"
    );
    // What the commands did, the load saw: REST failed while frozen only.
    let summary = json_in(&dir, "summary.json");
    let rest = &summary["architectures"]["rest"];
    assert!(
        rest["phases"]["during"]["error_rate"].as_f64().unwrap() > 0.5,
        "{rest}"
    );
    // Nothing failed between the warm-up and the freeze (a request in
    // flight as it came may).
    let start = floats(&faults, "actual_start_s")[0];
    let requests = read(&dir, "requests.parquet");
    let intended = floats(&requests, "intended_us");
    let ok = bools(&requests, "ok");
    assert!(
        (0..ok.len()).all(|i| ok[i] || !(1.0..start - 0.5).contains(&(intended[i] / 1e6))),
        "REST failed before the freeze"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_command_fault_whose_end_fails_is_not_over_and_its_output_and_leftovers_are_bounded() {
    // `start` writes 2 MB and leaves a process holding its output; `end`
    // fails. A unique word marks the leftover, to find it afterwards.
    let marker = format!("faultline-leftover-{}", std::process::id());
    let (out, scenario) = scenario_in(
        "command-end",
        "command.toml",
        &format!(
            r#"name = "command-end"
duration = "6s"
[workload]
rate = {{ shape = "constant", rps = 10 }}
[[architectures]]
kind = "rest"
name = "rest"
[[faults]]
kind = "command"
at = "1s"
duration = "2s"
start = 'head -c 2000000 /dev/zero | tr "\\0" x; echo; (exec -a {marker} sleep 60) &'
end = 'echo cannot; exit 3'
timeout = "5s"
"#
        ),
    );
    let dir = run_expecting(&scenario, &out, 4);
    let faults = read(&dir, "faults.parquet");
    assert_eq!(bools(&faults, "verified"), [false], "{faults}");
    assert_eq!(bools(&faults, "verified_end"), [false], "{faults}");
    let detail = &strings(&faults, "detail")[0];
    // The start ran to its end (not killed for the pipe its leftover held),
    // and its output is cut, with how much there was.
    assert!(detail.contains("exit 0"), "{detail}");
    assert!(
        detail.contains("bytes of output in all"),
        "{}",
        &detail[..300.min(detail.len())]
    );
    assert!(detail.len() < 20_000, "{} bytes of detail", detail.len());
    assert!(
        detail.contains("end: `echo cannot; exit 3` exit 3"),
        "{detail}"
    );
    let manifest = json_in(&dir, "manifest.json");
    assert_eq!(manifest["status"], "incomplete", "{manifest}");
    // Nothing the commands started outlives the run.
    let left = Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn two_runs_against_one_broker_each_read_only_their_own_events() {
    // A broker that outlives the runs, as an external cluster does: each run
    // writes to topics of its own, so the second's consumer, starting with
    // no stored position on a fresh database, does not store the first
    // run's events.
    let out = std::env::temp_dir().join(format!("faultline-topics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime
        .block_on(faultline_stack::broker::Broker::start(
            &out.join("broker"),
            &"nisshi".parse().unwrap(),
        ))
        .unwrap();
    // Two seeds: the runs' event ids differ, so an event of the first
    // stored by the second shows as stored without an acknowledgement.
    let scenario = |seed: u32| {
        let path = out.join(format!("topics-{seed}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"topics\"\nduration = \"4s\"\ndrain_timeout = \"30s\"\nseed = {seed}\n\
             [stack]\nbroker = \"external\"\nbootstrap_servers = \"{}\"\n\
             [workload]\nrate = {{ shape = \"constant\", rps = 20 }}\n\
             [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 50\n",
                broker.bootstrap()
            ),
        )
        .unwrap();
        path
    };
    for (seed, run) in [(1, "first"), (2, "second")] {
        let dir = run_with(&scenario(seed), "native", &out.join(run));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        let kafka = &summary["architectures"]["kafka"];
        assert_eq!(kafka["acknowledged"], 80, "{run}: {kafka}");
        assert_eq!(kafka["stored"], 80, "{run}: {kafka}");
        assert_eq!(kafka["stored_unacknowledged"], 0, "{run}: {kafka}");
        assert_eq!(kafka["redelivered"], 0, "{run}: {kafka}");
        // Without a fault, the pool's figures are over the whole run.
        let pool = &kafka["database_run"];
        assert_eq!(kafka["database"], serde_json::json!({}), "{run}: {kafka}");
        assert!(pool["writes"].as_u64().unwrap() > 0, "{run}: {pool}");
        let offered = pool["offered_per_s"].as_f64().unwrap();
        assert!((15.0..25.0).contains(&offered), "{run}: {pool}");
        let stored = pool["rows_per_s"].as_f64().unwrap();
        assert!(
            (0.5 * offered..1.5 * offered).contains(&stored),
            "{run}: {pool}"
        );
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(
            report.contains("### What bounded the database writes")
                && report.contains("| whole run |"),
            "{run}: {report}"
        );
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&out);
}

/// A password written inline in a service's environment.
const SERVICE_LITERAL: &str = "literal-Svc-4711";

/// A `service` architecture (the built-in REST service by its command)
/// whose environment holds secrets three ways.
const OWN: &str = r#"[[architectures]]
kind = "service"
name = "own"
[[architectures.processes]]
name = "api"
command = ["faultline-rest", "--listen", "127.0.0.1:{{ port }}", "--stored-by", "own"]
env = { FAULTLINE_DATABASE_URL = "{{ db.url }}", PGPASSWORD = "{{ db.password }}", API_TOKEN = "${FAULTLINE_TEST_SERVICE_SECRET}", SERVICE_PASSWORD = "literal-Svc-4711" }
ready = { http = "/healthz" }
[architectures.request]
path = "/events"
body = '{"event_id": "{{ event.id }}", "driver_id": "{{ event.driver_id }}", "lat": {{ event.lat }}, "lng": {{ event.lng }}, "sent_at": "{{ event.sent_at }}"}'
ok = [201]
[architectures.audit]
query = "SELECT event_id, stored_at FROM location_events WHERE stored_by = 'own'"
settle = "1s"
"#;

#[test]
fn no_password_or_secret_reaches_the_run_folder_the_report_or_the_output() {
    // An external database whose URL carries a password, written inline,
    // and a Kafka client property whose secret comes from the environment.
    let out = std::env::temp_dir().join(format!("faultline-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (postgres, broker) = runtime.block_on(async {
        let postgres = faultline_stack::Postgres::start(&out.join("postgres"))
            .await
            .unwrap();
        let broker =
            faultline_stack::broker::Broker::start(&out.join("broker"), &"nisshi".parse().unwrap())
                .await
                .unwrap();
        (postgres, broker)
    });
    // The database's own password (made for the cluster) and a Kafka one.
    let (db_secret, kafka_secret) = (postgres.password().to_string(), "kafka-Secret-0815");
    // A service of the user's own, handed the database's password by the
    // lab, a token from the environment and a password written inline.
    let service_secret = "svc-Token-2718";
    let url = postgres.url();
    assert!(url.contains(&db_secret));
    let scenario = out.join("secrets.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"secrets\"\nduration = \"3s\"\ndrain_timeout = \"30s\"\n\
             [stack]\ndatabase = \"external\"\ndatabase_url = \"{url}\"\n\
             broker = \"external\"\nbootstrap_servers = \"{}\"\n\
             [stack.kafka]\n\"sasl.password\" = \"${{FAULTLINE_TEST_KAFKA_SECRET}}\"\n\
             [workload]\nrate = {{ shape = \"constant\", rps = 10 }}\n\
             [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
             [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 10\n\
             [[faults]]\nkind = \"db-latency\"\nat = \"1s\"\nduration = \"1s\"\ndelay = \"50ms\"\n{OWN}",
            broker.bootstrap()
        ),
    )
    .unwrap();
    // What the lab shows of the plan: environment variables by name only.
    let plan = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("plan")
        .arg(&scenario)
        .env("FAULTLINE_TEST_KAFKA_SECRET", kafka_secret)
        .env("FAULTLINE_TEST_SERVICE_SECRET", service_secret)
        .output()
        .unwrap();
    let planned =
        String::from_utf8_lossy(&plan.stdout).to_string() + &String::from_utf8_lossy(&plan.stderr);
    assert!(plan.status.success(), "{planned}");
    assert!(planned.contains("API_TOKEN"), "{planned}");
    for secret in [
        db_secret.as_str(),
        kafka_secret,
        service_secret,
        SERVICE_LITERAL,
    ] {
        assert!(
            !planned.contains(secret),
            "the plan shows {secret}: {planned}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(out.join("reports"))
        .env("FAULTLINE_TEST_KAFKA_SECRET", kafka_secret)
        .env("FAULTLINE_TEST_SERVICE_SECRET", service_secret)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    for secret in [
        db_secret.as_str(),
        kafka_secret,
        service_secret,
        SERVICE_LITERAL,
    ] {
        assert!(!said.contains(secret), "the output shows {secret}: {said}");
    }
    // Every file the run wrote, the raw rows and the report included.
    let mut files = vec![out.join("reports")];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [
            db_secret.as_str(),
            kafka_secret,
            service_secret,
            SERVICE_LITERAL,
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds {secret}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} files");
    // The run really used both: events went through the broker and the
    // database.
    let run = std::fs::read_dir(out.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["architectures"]["kafka"]["stored"], 30, "{summary}");
    assert_eq!(summary["architectures"]["own"]["stored"], 30, "{summary}");
    drop((postgres, broker));
    let _ = std::fs::remove_dir_all(&out);
}

/// Makes `postgres` accept only TLS connections, with a certificate for
/// `name` signed by a CA of its own; the CA's PEM file.
fn require_tls(postgres: &faultline_stack::Postgres, dir: &Path, name: &str) -> PathBuf {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=faultline test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    // The server reads its key only if the key is its own and private.
    let data = postgres.dir().join("data");
    for file in ["server.crt", "server.key"] {
        use std::os::unix::fs::PermissionsExt;
        let to = data.join(file);
        std::fs::copy(dir.join(file), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        let owner = std::fs::metadata(&data).unwrap();
        use std::os::unix::fs::MetadataExt;
        nix::unistd::chown(
            &to,
            Some(nix::unistd::Uid::from_raw(owner.uid())),
            Some(nix::unistd::Gid::from_raw(owner.gid())),
        )
        .unwrap();
    }
    let hba = data.join("pg_hba.conf");
    let only_tls: String = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .map(|line| match line.strip_prefix("host ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&hba, only_tls).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (client, connection) = tokio_postgres::connect(&postgres.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("ALTER SYSTEM SET ssl = on")
            .await
            .unwrap();
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // From now on a plain connection is turned away.
        let plain = tokio_postgres::connect(&postgres.url(), tokio_postgres::NoTls).await;
        assert!(
            plain.is_err(),
            "the server still accepts a connection without TLS"
        );
    });
    dir.join("ca.pem")
}

#[test]
fn an_external_database_over_tls_is_reached_through_the_proxy_with_its_name_checked() {
    // The server's certificate names db.faultline.test, which no resolver
    // knows: the URL reaches it by `hostaddr`, the services through the
    // lab's proxy, and every connection checks that name.
    let out = std::env::temp_dir().join(format!("faultline-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let postgres = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(faultline_stack::Postgres::start(&out.join("postgres")))
        .unwrap();
    let ca = require_tls(&postgres, &out, "db.faultline.test");
    let url = |host: &str| {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
            postgres.password(),
            postgres.port(),
            ca.display()
        )
    };
    let scenario = |name: &str, host: &str| {
        let path = out.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\nduration = \"3s\"\ndrain_timeout = \"30s\"\n\
                 [stack]\ndatabase = \"external\"\ndatabase_url = \"{}\"\n\
                 [workload]\nrate = {{ shape = \"constant\", rps = 10 }}\n\
                 [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
                 [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 10\n\
                 [[faults]]\nkind = \"db-blackhole\"\nat = \"1s\"\nduration = \"1s\"\n",
                url(host)
            ),
        )
        .unwrap();
        path
    };
    let dir = run_with(
        &scenario("tls", "db.faultline.test"),
        "native",
        &out.join("reports"),
    );
    let summary = json_in(&dir, "summary.json");
    assert_eq!(summary["status"], "complete", "{summary:#}");
    let stored = read(&dir, "stored.parquet");
    let architectures = strings(&stored, "architecture");
    for name in ["rest", "kafka"] {
        let count = architectures.iter().filter(|a| *a == name).count();
        assert!(count >= 20, "{name}: only {count} stored");
    }
    all_verified(&dir, 1);

    // The same server under a name its certificate does not carry: refused,
    // and said.
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(scenario("wrong-name", "localhost"))
        .arg("--out")
        .arg(out.join("reports"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("certificate not valid for name"), "{said}");
    assert!(!said.contains(postgres.password()), "{said}");
    drop(postgres);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_broker_link_is_slowed_then_cut_and_the_producer_shows_it() {
    // Every Kafka client reaches the broker through the proxy it
    // advertises: 300 ms on that link from 2 s, then nothing from 6 s.
    let (out, scenario) = scenario_in(
        "broker-link",
        "broker-link.toml",
        "name = \"broker-link\"\nduration = \"12s\"\ndrain_timeout = \"30s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\nclient_timeout = \"3s\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 20\n\
         delivery_timeout = \"1s\"\n\
         [[faults]]\nkind = \"broker-latency\"\nat = \"2s\"\nduration = \"3s\"\ndelay = \"300ms\"\n\
         [[faults]]\nkind = \"broker-blackhole\"\nat = \"6s\"\nduration = \"3s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = all_verified(&dir, 2);
    assert_eq!(
        strings(&faults, "kind"),
        ["broker-latency", "broker-blackhole"]
    );
    let starts = floats(&faults, "actual_start_s");
    let ends = floats(&faults, "actual_end_s");
    // The producer's answers: slow while the link is slow, failing while it
    // is cut, fine before and after.
    let requests = read(&dir, "requests.parquet");
    let intended: Vec<f64> = floats(&requests, "intended_us")
        .iter()
        .map(|us| us / 1e6)
        .collect();
    let latency = floats(&requests, "latency_ms");
    let ok = bools(&requests, "ok");
    let intended = &intended;
    let within = |from: f64, to: f64| {
        (0..ok.len()).filter(move |&i| intended[i] >= from && intended[i] < to)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let slow = median(
        within(starts[0] + 0.5, ends[0])
            .map(|i| latency[i])
            .collect(),
    );
    let before = median(within(0.5, starts[0]).map(|i| latency[i]).collect());
    assert!(slow >= 300.0, "p50 {slow} ms while the link was slow");
    assert!(before < 100.0, "p50 {before} ms before");
    let cut: Vec<usize> = within(starts[1] + 0.2, ends[1] - 1.2).collect();
    assert!(
        cut.iter().filter(|&&i| !ok[i]).count() * 2 > cut.len(),
        "the producer answered while the link was cut"
    );
    assert!(
        within(ends[1] + 1.5, 12.0).all(|i| ok[i]),
        "the producer did not come back"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_consumer_partition_holds_events_back_while_the_producer_answers_and_loses_none() {
    // Only the consumers' connections to the broker are cut, from 2 s for
    // 4 s: the producers answer throughout, the events sent meanwhile wait
    // in the log and are stored once the link is back, and the lab sees
    // the backlog of each consumer grow, the drop consumer's too (its own
    // gauge stands still while it cannot reach the broker).
    let (out, scenario) = scenario_in(
        "consumer-partition",
        "consumer-partition.toml",
        "name = \"consumer-partition\"\nduration = \"10s\"\ndrain_timeout = \"60s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-drop\"\nconsumer = \"drop\"\n\
         [[faults]]\nkind = \"consumer-partition\"\nat = \"2s\"\nduration = \"4s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = all_verified(&dir, 1);
    assert_eq!(strings(&faults, "target"), ["consumer-link"]);
    let (start, end) = (
        floats(&faults, "actual_start_s")[0],
        floats(&faults, "actual_end_s")[0],
    );
    let requests = read(&dir, "requests.parquet");
    let ok = bools(&requests, "ok");
    // The producers' link is untouched (a loaded machine may fail a few).
    let failed = ok.iter().filter(|ok| !**ok).count();
    assert!(
        failed * 50 <= ok.len(),
        "the producers failed {failed} of {}",
        ok.len()
    );
    let stored_frame = read(&dir, "stored.parquet");
    let stored: HashMap<String, f64> = strings(&stored_frame, "event_id")
        .into_iter()
        .zip(floats(&stored_frame, "stored_s"))
        .collect();
    let ids = strings(&requests, "event_id");
    let sent: Vec<f64> = floats(&requests, "intended_us")
        .iter()
        .map(|us| us / 1e6)
        .collect();
    let missing = (0..ids.len())
        .filter(|&i| ok[i] && !stored.contains_key(&ids[i]))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events lost",
        ids.len()
    );
    // Sent while the consumers were cut off: stored only after the link came back.
    let held: Vec<f64> = (0..ids.len())
        .filter(|&i| ok[i] && sent[i] > start + 0.2 && sent[i] < end - 0.2)
        .map(|i| stored[&ids[i]])
        .collect();
    assert!(
        held.len() > 80,
        "only {} sent during the partition",
        held.len()
    );
    assert!(
        held.iter().all(|stored_s| *stored_s >= end),
        "stored during the partition: {:?}",
        held.iter().filter(|s| **s < end).collect::<Vec<_>>()
    );
    // The lab's backlog of each consumer, during the partition: at 20
    // events/s, more than 2 s of them.
    let metrics = read(&dir, "metrics.parquet");
    let (architecture, metric, t, value) = (
        strings(&metrics, "architecture"),
        strings(&metrics, "metric"),
        floats(&metrics, "t_s"),
        floats(&metrics, "value"),
    );
    for name in ["kafka", "kafka-drop"] {
        let peak = (0..metric.len())
            .filter(|&i| architecture[i] == name && metric[i] == "lab_backlog_messages")
            .filter(|&i| t[i] > start && t[i] <= end)
            .map(|i| value[i])
            .fold(0.0, f64::max);
        assert!(
            peak >= 40.0,
            "{name}: backlog during the partition at most {peak}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broker_restart_is_recovered_end_to_end_and_the_buffered_path_stores_what_follows() {
    // The lab's broker keeps its log in memory: a restart brings back empty
    // topics under new ids. The fault's recovery is verified only once each
    // producer delivers again; the consumers read the new log; every event
    // acknowledged after the restart is stored.
    let (out, scenario) = scenario_in(
        "broker-kill",
        "broker-kill.toml",
        "name = \"broker-kill\"\nduration = \"30s\"\ndrain_timeout = \"60s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-drop\"\nconsumer = \"drop\"\n\
         [[faults]]\nkind = \"broker-kill\"\nat = \"6s\"\nduration = \"2s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = all_verified(&dir, 1);
    let back = floats(&faults, "actual_end_s")[0] + floats(&faults, "recovery_ms")[0] / 1000.0;
    // Acknowledged after the producers were seen delivering again: stored.
    let requests = read(&dir, "requests.parquet");
    let stored: HashSet<String> = strings(&read(&dir, "stored.parquet"), "event_id")
        .into_iter()
        .collect();
    let architecture = strings(&requests, "architecture");
    let ids = strings(&requests, "event_id");
    let sent = floats(&requests, "intended_us");
    let ok = bools(&requests, "ok");
    let acknowledged_after = |name: &str| -> Vec<&String> {
        (0..ids.len())
            .filter(|&i| architecture[i] == name && ok[i] && sent[i] / 1e6 > back)
            .map(|i| &ids[i])
            .collect()
    };
    // The buffered path stores every one.
    let after = acknowledged_after("kafka-buffered");
    assert!(after.len() > 100, "only {} answers after", after.len());
    let missing = after.iter().filter(|id| !stored.contains(**id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged after the restart never stored",
        after.len()
    );
    // The drop path's consumer lives on and reads the new log. (Not every
    // event: the restarted broker has been seen to acknowledge records of a
    // replaced idempotent producer that never reach its log.)
    let after = acknowledged_after("kafka-drop");
    let kept = after.iter().filter(|id| stored.contains(**id)).count();
    assert!(kept > 0, "none of {} stored", after.len());
    let summary = json_in(&dir, "summary.json");
    assert_eq!(summary["status"], "complete", "{summary:#}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broker_that_keeps_its_log_in_sqlite_loses_none_of_its_backlog_when_killed() {
    // The consumer is down from 3 s to 11 s, so the broker holds a backlog
    // when it is killed at 6 s. In memory that backlog would be gone; in
    // SQLite every acknowledged event is still there to be stored.
    let (out, scenario) = scenario_in(
        "sqlite-broker",
        "sqlite-broker.toml",
        "name = \"sqlite-broker\"\nduration = \"16s\"\ndrain_timeout = \"60s\"\n\
         [stack]\nbroker = \"nisshi-sqlite\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\n\
         [[faults]]\nkind = \"consumer-kill\"\nat = \"3s\"\nduration = \"8s\"\n\
         [[faults]]\nkind = \"broker-kill\"\nat = \"6s\"\nduration = \"2s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    all_verified(&dir, 2);
    let manifest = json_in(&dir, "manifest.json");
    assert_eq!(
        manifest["repetitions"][0]["broker_durable"], true,
        "{manifest:#}"
    );
    assert!(
        manifest["versions"]["broker"]
            .as_str()
            .is_some_and(|v| v.ends_with(" with its log in SQLite")),
        "{manifest:#}"
    );
    let summary = json_in(&dir, "summary.json");
    let kafka = &summary["architectures"]["kafka-buffered"];
    // About 60 events waited on the broker when it was killed.
    let backlog = kafka["peak_backlog"].as_f64().unwrap();
    assert!(backlog >= 40.0, "{kafka:#}");
    assert_eq!(kafka["lost"], 0, "{kafka:#}");
    assert!(kafka["acknowledged"].as_u64().unwrap() >= 300, "{kafka:#}");
    assert_eq!(kafka["stored"], kafka["acknowledged"], "{kafka:#}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_service_that_dies_during_the_run_makes_it_incomplete_and_is_named() {
    // A command fault aborts the consumer (as a crash in librdkafka would
    // end it) and ends without restarting it: the lab says so.
    let (out, scenario) = scenario_in(
        "died",
        "died.toml",
        "name = \"died\"\nduration = \"8s\"\ndrain_timeout = \"5s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 10 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\n\
         [[faults]]\nkind = \"command\"\nat = \"3s\"\nduration = \"1s\"\n\
         start = \"kill -ABRT $(cut -d' ' -f1 \\\"$FAULTLINE_STACK_DIR/services/kafka/faultline-consumer.pid\\\")\"\n\
         end = \"true\"\n",
    );
    let dir = run_expecting(&scenario, &out.join("reports"), 4);
    let manifest = json_in(&dir, "manifest.json");
    assert_eq!(manifest["status"], "incomplete");
    let reasons = manifest["reasons"].to_string();
    assert!(
        reasons.contains("the consumer of kafka ended by itself during the run"),
        "{reasons}"
    );
    assert!(reasons.contains("SIGABRT"), "{reasons}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The one stack folder of a run under `out`, and the pid its `pid_file`
/// (relative to it) names.
fn run_stack_and_pid(out: &Path, pid_file: &str) -> (PathBuf, u32) {
    let stack = std::fs::read_dir(out.join(".faultline/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let pid = std::fs::read_to_string(stack.join(pid_file))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (stack, pid)
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Kills `runner` outright and waits, at most 15 s, until `pid` and the
/// `stack` folder are gone.
fn kill_runner_and_wait(runner: &mut std::process::Child, pid: u32, stack: &Path) {
    runner.kill().unwrap();
    runner.wait().unwrap();
    let started = std::time::Instant::now();
    while (alive(pid) || stack.exists()) && started.elapsed() < std::time::Duration::from_secs(15) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_runner_killed_outright_during_a_freeze_leaves_no_frozen_database_and_keeps_its_rows() {
    use std::io::BufRead;
    let (out, scenario) = scenario_in(
        "killed",
        "killed.toml",
        "name = \"killed\"\nduration = \"8s\"\nrepetitions = 2\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[faults]]\nkind = \"db-freeze\"\nat = \"2s\"\nduration = \"5s\"\n",
    );
    let mut runner = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(out.join("reports"))
        .current_dir(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed in the second repetition's freeze, a flush or two after its
    // start: the first repetition had ended.
    let stderr = std::io::BufReader::new(runner.stderr.take().unwrap());
    let mut injected = 0;
    for line in stderr.lines() {
        if line.unwrap().contains("fault db-freeze injected") {
            injected += 1;
            if injected == 2 {
                break;
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    // The frozen PostgreSQL of the run's stack.
    let (stack, postgres) = run_stack_and_pid(&out, "postgres/postgres.pid");
    assert!(alive(postgres));
    // SIGKILL: the runner cannot thaw or stop anything itself.
    kill_runner_and_wait(&mut runner, postgres, &stack);
    assert!(!alive(postgres), "PostgreSQL outlived its runner");
    assert!(!stack.exists(), "the stack folder is still there");
    // The run folder says what happened, and keeps what was measured: the
    // ended repetition in the run's files, analysed; the one under way up to
    // its last flush, apart.
    let run = std::fs::read_dir(out.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "failed", "{manifest:#}");
    assert!(manifest["finished_at"].is_string(), "{manifest:#}");
    let reasons = manifest["reasons"].to_string();
    assert!(reasons.contains("killed outright"), "{reasons}");
    assert!(
        reasons.contains("the 1 repetition(s) that had ended are kept"),
        "{reasons}"
    );
    assert!(reasons.contains("requests.partial.parquet"), "{reasons}");
    assert!(!run.join(".parts").exists(), "the parts are still there");
    let requests = read(&run, "requests.parquet");
    let repetitions = |frame: &DataFrame| {
        let mut r: Vec<i64> = frame
            .column("repetition")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        r.dedup();
        r
    };
    assert_eq!(repetitions(&requests), [0]);
    assert_eq!(requests.height(), 160, "8 s at 20 req/s");
    let partial = read(&run, "requests.partial.parquet");
    assert_eq!(repetitions(&partial), [1]);
    let last = partial
        .column("intended_us")
        .unwrap()
        .as_materialized_series()
        .max::<i64>()
        .unwrap()
        .unwrap();
    // At least the first two seconds (answered before the freeze), none
    // past the kill.
    assert!(partial.height() >= 20, "{}", partial.height());
    assert!((1_000_000..8_000_000).contains(&last), "{last}");
    assert!(
        reasons.contains(&format!("kept {} requests", partial.height())),
        "{reasons}"
    );
    // Its metric samples up to the last flush, and its fault as it stood:
    // started, never ended.
    let metrics = read(&run, "metrics.partial.parquet");
    assert_eq!(repetitions(&metrics), [1]);
    assert!(metrics.height() > 0);
    assert!(
        reasons.contains(&format!("{} metric samples", metrics.height())),
        "{reasons}"
    );
    let latest_s = metrics
        .column("t_s")
        .unwrap()
        .as_materialized_series()
        .max::<f64>()
        .unwrap()
        .unwrap();
    assert!((2.0..=8.0).contains(&latest_s), "{latest_s}");
    let faults = read(&run, "faults.partial.parquet");
    assert_eq!(faults.height(), 1, "{faults}");
    let started = faults.column("actual_start_s").unwrap().get(0).unwrap();
    let ended = faults.column("actual_end_s").unwrap().get(0).unwrap();
    assert!(!started.is_null() && ended.is_null(), "{faults}");
    let summary = report_again(&run);
    assert_eq!(summary["repetitions"], 1);
    assert_eq!(summary["architectures"]["rest"]["requests"], 160);
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(markdown.contains("requests.partial.parquet"), "{markdown}");
    // The repetition cut short, apart: what its users saw up to the kill,
    // from its own rows, before the freeze all answered.
    let incomplete = &summary["incomplete"];
    assert_eq!(incomplete["repetition"], 1, "{incomplete:#}");
    let rest = &incomplete["architectures"]["rest"];
    assert_eq!(rest["totals"]["requests"], partial.height(), "{rest:#}");
    // Answered before the freeze, failing in it (REST gives up on a
    // connection within a second).
    let [before, during] = ["before", "during"].map(|p| &rest["phases"][p]);
    assert!(before["ok"].as_u64().unwrap() >= 20, "{rest:#}");
    assert!(before["error_rate"].as_f64().unwrap() < 0.1, "{rest:#}");
    assert!(during["error_rate"].as_f64().unwrap() > 0.5, "{rest:#}");
    let sent_until = incomplete["sent_until_s"].as_f64().unwrap();
    assert!(
        (sent_until - last as f64 / 1e6).abs() < 1e-6,
        "{sent_until}"
    );
    assert!(
        incomplete["faults"][0]["actual_end_s"].is_null(),
        "{incomplete:#}"
    );
    assert!(
        markdown.contains("## Repetition 2, cut short"),
        "{markdown}"
    );
    assert!(
        markdown.contains("db-freeze (postgres) from 2.0 s, still under way"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!(
            "| rest | during | {} | {} | {} |",
            during["requests"], during["ok"], during["failed"]
        )),
        "{markdown}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_runner_killed_outright_while_k6_drives_leaves_no_k6_and_keeps_its_rows() {
    let (out, scenario) = scenario_in(
        "killed-k6",
        "killed-k6.toml",
        "name = \"killed-k6\"\nduration = \"20s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n",
    );
    let mut runner = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .args(["--driver", "k6", "--quiet", "--out"])
        .arg(out.join("reports"))
        .current_dir(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once k6 has written a few seconds of rows where the run folder
    // keeps them.
    let started = std::time::Instant::now();
    let csv = loop {
        let found = std::fs::read_dir(out.join("reports"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(".parts/k6-00000.csv"))
            .find(|csv| {
                std::fs::read_to_string(csv)
                    .is_ok_and(|text| text.matches("http_req_duration").count() >= 60)
            });
        if let Some(csv) = found {
            break csv;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "k6 wrote no rows"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let run = csv.parent().unwrap().parent().unwrap().to_path_buf();
    let (stack, k6) = run_stack_and_pid(&out, "k6.pid");
    assert!(alive(k6));
    kill_runner_and_wait(&mut runner, k6, &stack);
    assert!(!alive(k6), "k6 outlived its runner");
    let manifest = json_in(&run, "manifest.json");
    assert_eq!(manifest["status"], "failed", "{manifest:#}");
    let reasons = manifest["reasons"].to_string();
    let partial = read(&run, "requests.partial.parquet");
    assert!(partial.height() >= 60, "{}", partial.height());
    assert!(
        reasons.contains(&format!("kept {} requests", partial.height())),
        "{reasons}"
    );
    assert!(!run.join(".parts").exists());
    // No repetition had ended: the report is the one cut short, alone.
    let summary = report_again(&run);
    assert_eq!(summary["repetitions"], 0, "{summary:#}");
    assert_eq!(summary["architectures"], serde_json::json!({}));
    let rest = &summary["incomplete"]["architectures"]["rest"];
    assert_eq!(rest["totals"]["requests"], partial.height(), "{rest:#}");
    assert_eq!(rest["totals"]["ok"], partial.height(), "{rest:#}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Repetition 1, cut short"), "{html}");
    assert!(html.contains("1. Method and reproducibility"), "{html}");
    assert!(!html.contains("The scenario</h2>"), "{html}");
    assert!(run.join("charts/incomplete.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// A stepped rate with no fault: the report finds each architecture's
/// knee from the steps' own rows, with the CPU each process spent per
/// request in each step; a tighter bound in the scenario moves the knee.
#[test]
fn a_stepped_rate_finds_each_architectures_knee_and_its_cpu_per_request() {
    let (out, scenario) = scenario_in(
        "capacity",
        "capacity.toml",
        r#"
name = "capacity-steps"
duration = "12s"
drain_timeout = "30s"
capacity = { reference = "1s" }

[workload]
warmup = "0s"
rate = { shape = "steps", steps = [{ at = "0s", rps = 40 }, { at = "4s", rps = 80 }, { at = "8s", rps = 160 }] }

[[architectures]]
kind = "rest"
name = "rest"

[[architectures]]
kind = "kafka"
name = "kafka"
consumer = "buffered"
"#,
    );
    let dir = run_expecting(&scenario, &out, 0);
    let summary = json_in(&dir, "summary.json");
    // PostgreSQL alone, measured before the load by 8 connections.
    let manifest = json_in(&dir, "manifest.json");
    let measured = &manifest["repetitions"][0]["reference"];
    assert_eq!(measured["clients"], 8, "{manifest}");
    assert!(measured["seconds"].as_f64().unwrap() >= 1.0, "{manifest}");
    let alone = measured["commits_per_s"].as_f64().unwrap();
    assert!(alone > 0.0, "{manifest}");
    // Many rows per commit, and COPY, store more rows a second than one
    // row per commit.
    let multi = measured["multi_row_rows_per_s"].as_f64().unwrap();
    let copy = measured["copy_rows_per_s"].as_f64().unwrap();
    assert!(multi > alone && copy > alone, "{manifest}");
    let requests = read(&dir, "requests.parquet");
    let (arch, intended, ok) = (
        strings(&requests, "architecture"),
        floats(&requests, "intended_us"),
        bools(&requests, "ok"),
    );
    for name in ["rest", "kafka"] {
        let capacity = &summary["architectures"][name]["capacity"];
        let steps = capacity["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 3, "{capacity}");
        for (step, (rps, from, to)) in steps.iter().zip([(40, 1, 4), (80, 5, 8), (160, 9, 12)]) {
            assert_eq!(step["rps"], f64::from(rps));
            assert_eq!(step["from_s"], f64::from(from));
            assert_eq!(step["to_s"], f64::from(to));
            // The step's requests, counted from the rows.
            let inside = |i: usize| {
                arch[i] == name
                    && intended[i] >= f64::from(from) * 1e6
                    && intended[i] < f64::from(to) * 1e6
            };
            let sent = (0..arch.len()).filter(|i| inside(*i)).count() as u64;
            let answered = (0..arch.len()).filter(|i| inside(*i) && ok[*i]).count() as f64;
            assert_eq!(step["requests"], sent, "{step}");
            assert!(
                (step["ok_per_s"].as_f64().unwrap() - answered / f64::from(to - from)).abs() < 1e-9,
                "{step}"
            );
            // Held exactly when both bounds are met by the step's figures.
            let p99 = step["latency_ms"]["p99"].as_f64().unwrap();
            let errors = step["error_rate"].as_f64().unwrap();
            assert_eq!(step["held"], errors <= 0.01 && p99 <= 100.0, "{step}");
            // The services' CPU per request, and PostgreSQL's.
            let cpu = step["cpu_us_per_request"].as_object().unwrap();
            let own = if name == "rest" { "rest" } else { "producer" };
            for process in [own, "postgresql", "driver"] {
                assert!(cpu[process].as_f64().unwrap() > 0.0, "{process}: {step}");
            }
            // The rest of the lab (scraping) may spend less than a clock
            // tick in a step.
            assert!(cpu["lab"].as_f64().unwrap() >= 0.0, "{step}");
            // The cores every process kept busy, each within the machine.
            let cores = step["cpu_cores"].as_object().unwrap();
            let machine = capacity["machine_cores"].as_f64().unwrap();
            assert!(
                cores.contains_key("rest") && cores.contains_key("producer"),
                "{step}"
            );
            for (process, used) in cores {
                let used = used.as_f64().unwrap();
                assert!((0.0..=machine * 1.05).contains(&used), "{process}: {step}");
            }
            // The pool of its writer (REST's, the consumer's) in the step:
            // every write of one row for REST, the rows it stored about
            // the rate offered, a connection held for a moment each.
            let pool = &step["database"];
            assert_eq!(pool["connections"], 10, "{step}");
            assert_eq!(pool["offered_per_s"], f64::from(rps), "{step}");
            let held_ms = pool["held_ms"].as_f64().unwrap();
            assert!(held_ms > 0.0 && held_ms < 1000.0, "{step}");
            let stored = pool["rows_per_s"].as_f64().unwrap();
            assert!(
                (0.5 * f64::from(rps)..=1.5 * f64::from(rps)).contains(&stored),
                "{step}"
            );
            if name == "rest" {
                // One row a write (a scrape between a write's release of
                // its connection and its count of rows may move one across
                // the step's edge).
                let rows_per_write = pool["rows_per_write"].as_f64().unwrap();
                assert!((0.98..=1.02).contains(&rows_per_write), "{step}");
            }
        }
        let held: Vec<bool> = steps.iter().map(|s| s["held"].as_bool().unwrap()).collect();
        let knee = held
            .iter()
            .zip([40.0, 80.0, 160.0])
            .take_while(|(h, _)| **h)
            .last()
            .map(|(_, rps)| rps);
        assert_eq!(capacity["knee_rps"].as_f64(), knee, "{capacity}");
        // The knee over what PostgreSQL committed alone before the load.
        let reference = &capacity["reference"];
        assert_eq!(reference["commits_per_s"], alone, "{capacity}");
        assert_eq!(reference["multi_row_rows_per_s"], multi, "{capacity}");
        assert_eq!(reference["copy_rows_per_s"], copy, "{capacity}");
        assert_eq!(
            reference["knee_ratio"].as_f64(),
            knee.map(|knee| knee / alone),
            "{capacity}"
        );
    }
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("the highest rate each architecture holds")
            && markdown.contains(
                "single-row commits a second PostgreSQL made alone before the load (8 \
                 connections, 1 s)"
            ),
        "{markdown}"
    );
    assert!(
        markdown.contains("### Capacity: the highest rate each architecture holds")
            && markdown.contains("(charts/capacity.svg)")
            && dir.join("charts/capacity.svg").is_file(),
        "{markdown}"
    );

    // A bound no request can meet: no step is held, no knee, from the same rows.
    let experiment = std::fs::read_to_string(dir.join("experiment.toml")).unwrap();
    std::fs::write(
        dir.join("experiment.toml"),
        experiment.replacen(
            "capacity = { reference = \"1s\" }",
            "capacity = { reference = \"1s\", max_p99 = \"1us\" }",
            1,
        ),
    )
    .unwrap();
    let tight = report_again(&dir);
    for name in ["rest", "kafka"] {
        let capacity = &tight["architectures"][name]["capacity"];
        assert_eq!(capacity["knee_rps"], serde_json::Value::Null, "{capacity}");
        assert_eq!(capacity["first_missed_rps"], 40.0, "{capacity}");
    }
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("**rest** held none of the steps")
            && markdown.contains("For comparison, the "),
        "{markdown}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_consumer_back_from_a_kill_stores_its_backlog_at_a_rate_set_beside_copy() {
    // The buffered consumer is killed for 4 s at 800 req/s, and stores the
    // events that piled up in batches of 10 when it is back: a backlog of
    // thousands, stored over a good part of a second. PostgreSQL alone
    // measures its COPY rate before the load.
    let (out, scenario) = scenario_in(
        "drain-rate",
        "drain.toml",
        r#"
name = "drain-rate"
duration = "10s"
drain_timeout = "60s"
capacity = { reference = "1s" }

[workload]
warmup = "0s"
rate = { shape = "constant", rps = 800 }

[[architectures]]
kind = "kafka"
name = "kafka"
consumer = "buffered"
batch_size = 10

[[faults]]
kind = "consumer-kill"
at = "1s"
duration = "4s"
"#,
    );
    let dir = run_expecting(&scenario, &out, 0);
    let summary = json_in(&dir, "summary.json");
    let manifest = json_in(&dir, "manifest.json");
    let drain = &summary["architectures"]["kafka"]["drain_rate"];
    // The same figures again from the raw rows: acknowledged before the
    // fault was over (its end and the probe's wait), stored after.
    let fault = &summary["faults"][0];
    let end = fault["actual_end_s"].as_f64().unwrap()
        + fault["recovery_ms"].as_f64().unwrap_or(0.0).max(0.0) / 1000.0;
    let requests = read(&dir, "requests.parquet");
    let stored_frame = read(&dir, "stored.parquet");
    let stored: HashMap<String, f64> = strings(&stored_frame, "event_id")
        .into_iter()
        .zip(floats(&stored_frame, "stored_s"))
        .collect();
    let (ids, ok, finished) = (
        strings(&requests, "event_id"),
        bools(&requests, "ok"),
        floats(&requests, "finished_us"),
    );
    let stored_times: Vec<f64> = (0..ids.len())
        .filter(|&i| ok[i])
        .filter_map(|i| stored.get(&ids[i]).copied())
        .collect();
    let backlog: Vec<f64> = (0..ids.len())
        .filter(|&i| ok[i] && finished[i] / 1e6 < end)
        .filter_map(|i| stored.get(&ids[i]).copied())
        .filter(|stored_s| *stored_s > end)
        .collect();
    let (first, last) = (
        backlog.iter().copied().fold(f64::INFINITY, f64::min),
        backlog.iter().copied().fold(0.0, f64::max),
    );
    let meanwhile = stored_times
        .iter()
        .filter(|s| (first..=last).contains(*s))
        .count() as f64;
    assert!(backlog.len() >= 1000, "a backlog of {}", backlog.len());
    let backlog_events = drain["backlog_events"].as_f64().unwrap();
    assert!(
        (backlog_events - backlog.len() as f64).abs() <= 2.0,
        "{drain}: {} from the rows",
        backlog.len()
    );
    let events_per_s = drain["events_per_s"].as_f64().unwrap();
    let from_rows = meanwhile / (last - first);
    assert!(
        (events_per_s / from_rows - 1.0).abs() < 0.01,
        "{drain}: {from_rows:.0} events/s from the rows"
    );
    // Beside the COPY rate PostgreSQL reached alone in the same run.
    let copy = manifest["repetitions"][0]["reference"]["copy_rows_per_s"]
        .as_f64()
        .unwrap();
    assert_eq!(drain["copy_rows_per_s"].as_f64(), Some(copy), "{drain}");
    assert_eq!(
        drain["copy_ratio"].as_f64(),
        Some(events_per_s / copy),
        "{drain}"
    );
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("**kafka** stored the backlog of the fault (")
            && markdown.contains("rows a second PostgreSQL took alone by COPY before the load"),
        "{markdown}"
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

#[test]
fn the_dashboard_shows_the_run_as_it_goes_and_ends_with_the_run_folders_counts() {
    use std::io::BufRead;
    let (out, scenario) = scenario_in(
        "dashboard",
        "live.toml",
        "name = \"live\"\nduration = \"14s\"\ndrain_timeout = \"30s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\nbatch_size = 10\n\
         breaker = { failures = 5, open_for = \"2s\", successes = 3 }\n\
         [[faults]]\nkind = \"db-crash\"\nat = \"3s\"\nduration = \"3s\"\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .arg("--dashboard")
        .arg("--prometheus-config")
        .arg(out.join("prometheus.yml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the dashboard's address is printed");
        if let Some(rest) = line.split_once("dashboard at http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
    };
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    let (status, page) = get(&addr, "/");
    assert_eq!(status, 200);
    // Self-contained: it fetches nothing but its own data.
    assert!(page.contains("fetch(\"/data\"") && page.contains("createElementNS"));
    assert!(
        !page.contains("<script src") && !page.contains("<link"),
        "{page}"
    );
    let data = || -> serde_json::Value { serde_json::from_str(&get(&addr, "/data").1).unwrap() };
    let seconds = |state: &serde_json::Value| {
        state["repetitions"][0]["seconds"]
            .as_array()
            .map_or(0, Vec::len)
    };
    // The figures grow while the run goes, and the fault's window appears.
    let started = std::time::Instant::now();
    let mut seen_fault = false;
    let mut first = None;
    while started.elapsed() < std::time::Duration::from_secs(60) {
        let state = data();
        if state["repetitions"][0]["faults"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            seen_fault = true;
        }
        match first {
            None if seconds(&state) >= 2 => first = Some(seconds(&state)),
            Some(n) if seconds(&state) > n && seen_fault => break,
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(seen_fault, "the fault's window never appeared");
    // A real browser shows the run, and shows more of it when the page is
    // loaded again later (a reload mid-run keeps the series).
    let browser = |moment: &str| -> u64 {
        let profile = out.join(format!("profile-{moment}"));
        let dom = Command::new(common::chromium())
            .args(common::HEADLESS)
            .arg("--virtual-time-budget=2500")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&dom.stdout).to_string();
        assert!(
            dom.contains("kafka-buffered") && dom.contains("<path"),
            "{moment}: {dom}"
        );
        // `ok N · failed M` of the first panel: requests so far.
        dom.split("ok ")
            .skip(1)
            .find_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{moment}: no count in {dom}"))
    };
    let before = browser("first");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = browser("again");
    assert!(
        after > before,
        "the page loaded again showed {after}, first {before}"
    );
    // Live seconds carry the latency of the requests that finished in them.
    let state = data();
    assert_eq!(state["repetitions"][0]["exact"], false, "{state}");
    assert!(
        state["repetitions"][0]["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["ok"].as_u64().unwrap() > 0 && s["p99_ms"].as_f64().is_some()),
        "{state}"
    );
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("architecture=\"rest\",outcome=\"ok\"}")
            && metrics.contains("# TYPE faultline_lab_requests counter")
            && metrics.ends_with("# EOF\n"),
        "{metrics}"
    );
    assert_eq!(get(&addr, "/nothing").0, 404);
    // Prometheus finds the run's services at /sd, each labelled; its
    // configuration names the dashboard for both.
    let sd: serde_json::Value = serde_json::from_str(&get(&addr, "/sd").1).unwrap();
    let services: Vec<String> = sd
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!("{}/{}", g["labels"]["architecture"], g["labels"]["service"]).replace('"', "")
        })
        .collect();
    assert_eq!(
        services,
        [
            "rest/rest",
            "kafka-buffered/producer",
            "kafka-buffered/consumer"
        ],
        "{sd}"
    );
    assert!(
        sd[0]["targets"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let config = std::fs::read_to_string(out.join("prometheus.yml")).unwrap();
    assert!(
        config.contains(&format!("targets: [\"{addr}\"]"))
            && config.contains(&format!("url: http://{addr}/sd")),
        "{config}"
    );
    // At the end the seconds are the rows': each second's counts as in
    // charts/seconds.csv.
    let end = loop {
        let state = data();
        if state["status"] != "running" {
            break state;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(180));
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    let dir = PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap(),
    );
    assert_eq!(end["status"], "complete", "{end}");
    assert!(end["report"].as_str().unwrap().ends_with("report.html"));
    let repetition = &end["repetitions"][0];
    assert_eq!(repetition["exact"], true);
    let names = ["rest", "kafka-buffered"];
    let csv = std::fs::read_to_string(dir.join("charts/seconds.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (a_i, r_i, t_i, ok_i, failed_i) = (
        column("architecture"),
        column("repetition"),
        column("t"),
        column("ok"),
        column("failed"),
    );
    let mut compared = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[r_i] != "0"
            || f[ok_i].parse::<u64>().unwrap() + f[failed_i].parse::<u64>().unwrap() == 0
        {
            continue;
        }
        let arch = names.iter().position(|n| *n == f[a_i]).unwrap();
        let t: u64 = f[t_i].parse().unwrap();
        let live = repetition["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["architecture"] == arch && s["t"] == t)
            .unwrap_or_else(|| panic!("second {t} of {} missing", f[a_i]));
        assert_eq!(
            live["ok"].as_u64().unwrap(),
            f[ok_i].parse::<u64>().unwrap(),
            "{line}"
        );
        assert_eq!(
            live["failed"].as_u64().unwrap(),
            f[failed_i].parse::<u64>().unwrap(),
            "{line}"
        );
        compared += 1;
    }
    assert!(compared >= 18, "{compared} seconds compared");
    // The backlog the page showed is the one of the run folder's seconds
    // (to a second's scrape): while the database was down the lab could
    // not read the stored position, and the page showed the consumer's own
    // gauge, as the report does, not the last reading from before.
    let backlog_i = column("backlog");
    let mut during = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let Ok(folder) = f[backlog_i].parse::<f64>() else {
            continue;
        };
        if f[r_i] != "0" || f[a_i] != "kafka-buffered" || folder < 10.0 {
            continue;
        }
        let t: u64 = f[t_i].parse().unwrap();
        let live = repetition["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["architecture"] == 1 && s["t"] == t)
            .and_then(|s| s["backlog"].as_f64())
            .unwrap_or(0.0);
        assert!(
            live >= folder / 2.0,
            "second {t}: the page showed a backlog of {live}, the run folder {folder}"
        );
        during += 1;
    }
    assert!(during >= 1, "no second with a backlog: {csv}");
    // Every query of the Grafana dashboard names a series this run
    // exposed: the lab's (its /metrics) or a service's (metrics.parquet).
    let mut exposed: HashSet<String> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    exposed.extend(strings(&read(&dir, "metrics.parquet"), "metric"));
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../observe/grafana/dashboards/faultline.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // Every series is selected with braces: `name{...}`.
            for part in expr.split('{').collect::<Vec<_>>().iter().rev().skip(1) {
                let name: String = part
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                assert!(
                    exposed.contains(&name),
                    "{name} ({expr}) is not a series of the run"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 8, "{queried} series queried");
    let _ = std::fs::remove_dir_all(&out);
}

/// A database 150 ms away: one commit per request holds a connection for a
/// round trip each, and the pool's ten serve a fraction of the load; group
/// commit lets a group fill while every connection is busy and serves it
/// all.
#[test]
fn on_a_slow_database_link_group_commit_serves_what_one_commit_per_request_cannot() {
    let (out, scenario) = scenario_in(
        "slow-database",
        "slow.toml",
        "name = \"slow-database\"\nduration = \"10s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 100 }\nclient_timeout = \"5s\"\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest-grouped\"\n\
         group_commit = { max_rows = 50, max_wait = \"2ms\" }\n\
         [[faults]]\nkind = \"db-latency\"\nat = \"2s\"\nduration = \"6s\"\ndelay = \"150ms\"\n",
    );
    let run = run_expecting(&scenario, &out.join("reports"), 0);
    let summary = json_in(&run, "summary.json");
    let during = |name: &str| {
        let phase = &summary["architectures"][name]["phases"]["during"];
        let requests = phase["requests"].as_u64().unwrap();
        let failed = phase["failed"].as_u64().unwrap();
        (requests - failed, phase["error_rate"].as_f64().unwrap())
    };
    let (rest_ok, rest_errors) = during("rest");
    let (grouped_ok, grouped_errors) = during("rest-grouped");
    assert!(
        rest_errors > 0.2,
        "one commit per request kept up: {rest_errors}"
    );
    assert!(
        grouped_errors < 0.01,
        "group commit failed {grouped_errors}"
    );
    assert!(
        grouped_ok > rest_ok,
        "group commit served {grouped_ok}, one commit per request {rest_ok}"
    );
    // Why, from the pools: in the fault one commit per request held its
    // connections for the slow link's round trips, kept most of its ten
    // busy and its writes waiting, and its pool's bound fell below the rate
    // offered; before the fault the same pool was fast and idle; group
    // commit carried many rows per write.
    let database =
        |name: &str, phase: &str| summary["architectures"][name]["database"][phase].clone();
    let rest = database("rest", "during");
    let number = |v: &serde_json::Value, key: &str| {
        v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key} in {v:#}"))
    };
    assert!(number(&rest, "held_ms") >= 140.0, "{rest:#}");
    assert!(number(&rest, "busy_connections") >= 5.0, "{rest:#}");
    assert_eq!(rest["connections"], 10, "{rest:#}");
    assert!(number(&rest, "waited_ms") >= 100.0, "{rest:#}");
    let offered = number(&rest, "offered_per_s");
    assert!((90.0..=110.0).contains(&offered), "{rest:#}");
    assert!(
        number(&rest, "bound_rows_per_s") < 0.9 * offered,
        "{rest:#}"
    );
    assert!(number(&rest, "rows_per_s") < 0.9 * offered, "{rest:#}");
    let after = database("rest", "after");
    assert!(number(&after, "held_ms") < 50.0, "{after:#}");
    let grouped = database("rest-grouped", "during");
    assert!(number(&grouped, "rows_per_write") > 2.0, "{grouped:#}");
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        markdown.contains("**rest** stored")
            && markdown.contains("each write held one of its 10 connections"),
        "{markdown}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
