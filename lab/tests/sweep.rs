//! Sweeps: a sweep folder of synthetic points re-analysed into its table,
//! figures and report; and `faultline sweep` on the real stack, interrupted
//! and resumed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use faultline::plan::grid::Grid;
use faultline::synthetic::Synthetic;
use polars::prelude::*;
use serde_json::Value;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn points(dir: &Path) -> DataFrame {
    faultline::sweep::table::read_points(dir).unwrap()
}

/// The sentence of the first break-even point of `figure`.
fn break_even(sweep: &Value, figure: &str) -> String {
    sweep["break_even"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["figure"] == figure)
        .and_then(|b| b["sentence"].as_str())
        .unwrap_or_else(|| panic!("no break-even of {figure}"))
        .to_string()
}

/// The figure `name` of `architecture` at each point that ran (means).
fn curve(sweep: &Value, architecture: &str, name: &str) -> Vec<f64> {
    sweep["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["figures"][architecture][name]["mean"].as_f64())
        .collect()
}

/// A sweep folder at `dir` whose `sweep.toml` is `base`'s scenario swept
/// over `parameters`; its grid, the points not yet run.
fn sweep_folder(dir: &Path, base: &Synthetic, parameters: &str) -> Grid {
    let text = format!(
        "{}\n[sweep]\nparameters = [\n{parameters}\n]\n",
        base.scenario()
    );
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    std::fs::write(dir.join("sweep.toml"), &text).unwrap();
    let experiment = faultline::validate::parse(&text, "sweep.toml").unwrap();
    Grid::of(&experiment).unwrap()
}

#[test]
fn a_sweep_folder_of_synthetic_points_is_tabled_charted_and_indexed() {
    let reports = folder("synthetic");
    let dir = reports.join("20261201T000000Z-sweep-synthetic");
    let base = Synthetic {
        repetitions: 2,
        ..Synthetic::default()
    };
    let grid = sweep_folder(
        &dir,
        &base,
        "{ key = \"faults[0].duration\", values = [\"5s\", \"10s\", \"15s\"] }",
    );
    assert_eq!(grid.points.len(), 3);
    // Every point but the last has run: the fault lasts its point's value.
    for (point, seconds) in grid.points.iter().zip([5, 10]) {
        let run = dir.join("runs").join(point.folder(&grid));
        Synthetic {
            fault: (10, 10 + seconds),
            ..base.clone()
        }
        .write(&run)
        .unwrap();
        faultline::analyse_and_report(&run).unwrap();
    }
    let output = faultline().arg("report").arg(&dir).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One row per point that ran × architecture × repetition.
    let table = points(&dir);
    assert_eq!(table.height(), 2 * 2 * 2);
    for column in [
        "point",
        "faults[0].duration",
        "faults[0].duration (number)",
        "architecture",
        "repetition",
        "revenue_lost",
        "lost",
        "stale_share",
        "poc_revenue_lost",
    ] {
        assert!(table.column(column).is_ok(), "{column} is missing");
    }
    let sweep = read_json(&dir.join("sweep.json"));
    assert_eq!(
        sweep["points"][2]["status"],
        Value::Null,
        "the last point never ran"
    );
    // REST fails every request of the fault: its cost doubles with the outage.
    let rest = curve(&sweep, "rest", "revenue_lost");
    let each = f64::from(base.rps) * 1.25;
    assert_eq!(rest, vec![5.0 * each, 10.0 * each]);
    // The Kafka path loses or stores late every event of the fault: the
    // same cost; under the original's formula (failed requests only), none.
    assert_eq!(curve(&sweep, "kafka", "revenue_lost"), rest);
    assert_eq!(curve(&sweep, "kafka", "poc_revenue_lost"), vec![0.0, 0.0]);
    let cost = break_even(&sweep, "revenue_lost");
    assert!(cost.contains("rest and kafka cost the same"), "{cost}");
    let loss = break_even(&sweep, "lost");
    assert!(
        loss.starts_with("No crossing in the swept range: rest loses fewer events than kafka"),
        "{loss}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        faultline::catalogue::CHARTED,
        "one chart per charted headline figure"
    );
    assert!(html.contains("not run"), "the missing point is said");
    assert!(html.contains("href=\"runs/p01-duration-5s/report.html\""));
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(markdown.contains("](charts/revenue_lost-1.svg)"));
    assert!(dir.join("charts/revenue_lost-1.svg").is_file());
    let index = faultline::report::write_index(&reports).unwrap();
    let index = std::fs::read_to_string(index).unwrap();
    assert!(index.contains("20261201T000000Z-sweep-synthetic/report.html"));
    assert!(index.contains("2 of 3"), "{index}");
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn two_parameters_draw_one_small_chart_per_value_of_the_second() {
    let dir = folder("grid").join("sweep");
    let base = Synthetic::default();
    let grid = sweep_folder(
        &dir,
        &base,
        "{ key = \"faults[0].duration\", values = [\"5s\", \"10s\"] },\n\
         { key = \"workload.rate.rps\", values = [10, 20] }",
    );
    for point in &grid.points {
        let seconds = faultline::plan::grid::numeric(&point.values[0]).unwrap() as u32;
        let rps = faultline::plan::grid::numeric(&point.values[1]).unwrap() as u32;
        let run = dir.join("runs").join(point.folder(&grid));
        Synthetic {
            fault: (10, 10 + seconds),
            rps,
            ..base.clone()
        }
        .write(&run)
        .unwrap();
        faultline::analyse_and_report(&run).unwrap();
    }
    let summary = faultline::sweep::execute::reanalyse(&dir).unwrap();
    assert_eq!(summary.points.len(), 4);
    assert_eq!(points(&dir).height(), 4 * 2);
    // One REST cost curve per rate, each along the outage: the cost doubles
    // with the outage and with the rate.
    let sweep = read_json(&dir.join("sweep.json"));
    let rest = curve(&sweep, "rest", "revenue_lost");
    assert_eq!(rest, vec![62.5, 125.0, 125.0, 250.0]);
    let holding: Vec<&str> = summary
        .break_even
        .iter()
        .filter(|b| b.figure == "revenue_lost")
        .map(|b| b.holding.as_str())
        .collect();
    assert_eq!(
        holding,
        ["workload.rate.rps = 10", "workload.rate.rps = 20"]
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        faultline::catalogue::CHARTED * 2,
        "two small charts per figure"
    );
    assert!(html.contains("at workload.rate.rps = 20"));
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

const TWO_POINTS: &str = r#"
name = "two-points"
duration = "10s"
drain_timeout = "30s"

[workload]
rate = { shape = "constant", rps = 20 }

[[architectures]]
kind = "rest"
name = "rest"

[[architectures]]
kind = "kafka"
name = "kafka-buffered"
batch_size = 50
breaker = { failures = 5, open_for = "2s", successes = 3 }

[[faults]]
kind = "db-crash"
at = "2s"
duration = "2s"

[[hypotheses]]
title = "The buffered path loses nothing"
architecture = "kafka-buffered"
metric = "lost_events"
max = 0

[sweep]
parameters = [{ key = "faults[0].duration", values = ["2s", "5s"] }]
"#;

/// The last line of stdout: the folder `faultline` prints last.
fn printed_folder(output: &std::process::Output) -> PathBuf {
    PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("a folder printed last"),
    )
}

#[test]
fn a_sweep_interrupted_keeps_its_folder_and_resumes_to_every_point() {
    let out = folder("real");
    let scenario = out.join("two-points.toml");
    std::fs::write(&scenario, TWO_POINTS).unwrap();
    // Ctrl-C during the first point's load (once its stack is up, however
    // long that takes on a loaded machine): exit 4, the sweep folder
    // printed.
    let mut child = faultline()
        .arg("sweep")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        let started = std::time::Instant::now();
        while !said.contains("stack ready") && started.elapsed() < Duration::from_secs(120) {
            if reader.read_line(&mut said).unwrap() == 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1500));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        said + &rest
    };
    let output = child.wait_with_output().unwrap();
    let stderr = said;
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("2 points × 1 repetition(s)"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let dir = printed_folder(&output);
    assert_eq!(
        std::fs::read_to_string(dir.join("sweep.toml")).unwrap(),
        TWO_POINTS
    );
    let first = dir.join("runs/p01-duration-2s");
    assert_eq!(
        read_json(&first.join("manifest.json"))["status"],
        "incomplete"
    );
    assert!(!dir.join("runs/p02-duration-5s").exists());

    // --resume sets the unfinished point aside and runs both.
    let output = faultline()
        .arg("sweep")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(printed_folder(&output), dir);
    assert!(dir.join("runs/p01-duration-2s.unfinished").is_dir());
    for point in ["p01-duration-2s", "p02-duration-5s"] {
        let manifest = read_json(&dir.join("runs").join(point).join("manifest.json"));
        assert_eq!(manifest["status"], "complete", "{point}: {stderr}");
        assert!(dir.join("runs").join(point).join("report.html").is_file());
    }
    let table = points(&dir);
    assert_eq!(table.height(), 2 * 2, "point × architecture × repetition");
    let sweep = read_json(&dir.join("sweep.json"));
    // The longer outage fails more of REST's requests: the figure moves
    // with the swept value.
    let rest = curve(&sweep, "rest", "revenue_lost");
    assert!(rest[1] > rest[0] * 1.5, "{rest:?}");
    assert_eq!(curve(&sweep, "kafka-buffered", "lost"), vec![0.0, 0.0]);
    let overhead: Vec<f64> = sweep["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["overhead_s"].as_f64().unwrap())
        .collect();
    assert!(overhead.iter().all(|o| *o > 0.0), "{overhead:?}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= faultline::catalogue::CHARTED);

    // A finished sweep resumed runs nothing and leaves its points alone.
    let started = read_json(&dir.join("runs/p02-duration-5s/manifest.json"))["started_at"].clone();
    let output = faultline()
        .arg("sweep")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("2 already done, 0 to run"), "{stderr}");
    assert_eq!(
        read_json(&dir.join("runs/p02-duration-5s/manifest.json"))["started_at"],
        started
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_scenario_without_a_sweep_is_refused_with_a_hint() {
    let dir = folder("no-sweep");
    let scenario = dir.join("plain.toml");
    std::fs::write(&scenario, "name = \"plain\"\n").unwrap();
    let output = faultline()
        .arg("sweep")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("has no [sweep]"), "{stderr}");
    assert!(!dir.join("out").exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_committed_example_sweep_is_what_its_points_say() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/example-sweep");
    let copy = folder("example").join("example-sweep");
    copy_dir(&shipped, &copy);
    // Every point re-analysed from its raw rows gives its committed summary.
    let runs = std::fs::read_dir(copy.join("runs")).unwrap();
    let mut points = 0;
    for run in runs.map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        let summary = run.join("summary.json");
        let committed = std::fs::read_to_string(&summary).unwrap();
        faultline::analyse_and_report(&run).unwrap();
        assert_eq!(
            std::fs::read_to_string(&summary).unwrap(),
            committed,
            "{run:?} is stale: faultline report docs/example-sweep/runs/<point>"
        );
        points += 1;
    }
    assert_eq!(points, 3);
    // And the sweep re-analysed from its points gives its committed table
    // and report.
    let output = faultline().arg("report").arg(&copy).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["sweep.json", "report.md"] {
        assert_eq!(
            std::fs::read_to_string(copy.join(file)).unwrap(),
            std::fs::read_to_string(shipped.join(file)).unwrap(),
            "docs/example-sweep/{file} is stale: faultline report docs/example-sweep"
        );
    }
    let sweep = read_json(&copy.join("sweep.json"));
    // The longer the outage, the more REST fails and the drop policy loses.
    let rest = curve(&sweep, "rest", "revenue_lost");
    let lost = curve(&sweep, "kafka-drop", "lost");
    assert!(rest.windows(2).all(|w| w[0] < w[1]), "{rest:?}");
    assert!(lost.windows(2).all(|w| w[0] < w[1]), "{lost:?}");
    assert_eq!(curve(&sweep, "kafka-buffered", "lost"), vec![0.0; 3]);
    let _ = std::fs::remove_dir_all(copy.parent().unwrap());
}
