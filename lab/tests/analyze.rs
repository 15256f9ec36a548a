//! Analysis and rendering on synthetic run folders whose answers are known:
//! every figure of `summary.json` is checked against what was written, the
//! summary against its published schema, and the report in a real headless
//! Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{HEADLESS, chromium};
use faultline::synthetic::Synthetic;
use serde_json::Value;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-analyze-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Analyses and renders the run at `dir`; its `summary.json` as other
/// tools read it, untyped.
fn summary_of(dir: &Path) -> Value {
    faultline::analyse_and_report(dir).unwrap();
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn close(value: &Value, want: f64, tolerance: f64) -> bool {
    value
        .as_f64()
        .is_some_and(|v| (v - want).abs() <= tolerance)
}

#[test]
fn every_figure_matches_the_rows_that_were_written() {
    let run = Synthetic {
        conflicts: 3,
        ..Synthetic::default()
    };
    let dir = folder("figures");
    run.write(&dir.join("run")).unwrap();
    let summary = summary_of(&dir.join("run"));
    let rest = &summary["architectures"]["rest"];
    let kafka = &summary["architectures"]["kafka"];
    let (n, during) = (run.requests(), run.during());

    // REST: exactly the requests due during the fault failed, with a 503.
    assert_eq!(rest["requests"], n);
    assert_eq!(rest["failed"], during);
    assert_eq!(rest["failures"]["503"], during);
    assert!(close(&rest["error_rate"], during as f64 / n as f64, 1e-12));
    assert_eq!(rest["phases"]["before"]["failed"], 0);
    assert_eq!(rest["phases"]["during"]["requests"], during);
    assert_eq!(rest["phases"]["during"]["error_rate"], 1.0);
    assert_eq!(rest["phases"]["after"]["failed"], 0);
    assert!(close(&rest["latency_ms"]["p50"], 2.0, 0.01), "{rest}");
    assert!(close(&rest["latency_ms"]["max"], 2.0, 0.01), "{rest}");
    assert_eq!(rest["acknowledged"], n - during);
    assert_eq!(rest["lost"], 0);
    assert_eq!(
        rest["stored"],
        n - during + run.rest_unacknowledged_stored as u64
    );
    assert_eq!(
        rest["stored_unacknowledged"],
        run.rest_unacknowledged_stored
    );
    // Redeliveries from the services' counters; the consumer's restarted
    // from zero half-way and still adds up.
    assert_eq!(rest["redelivered"], run.redelivered.0);
    assert_eq!(rest["duplicates"], run.redelivered.0);
    // Freshness runs from the send: the answer's 2 ms, then 5 ms to store.
    assert!(close(&rest["freshness_ms"]["max"], 7.0, 0.01), "{rest}");
    assert_eq!(rest["stale"], 0);
    assert_eq!(rest["recovery_s"], 0.0);
    assert_eq!(rest["drain_s"], Value::Null, "REST has no backlog");

    // Kafka: all answered, every lost_every-th event of the fault never stored.
    assert_eq!(kafka["failed"], 0);
    assert_eq!(kafka["acknowledged"], n);
    assert_eq!(kafka["lost"], run.lost());
    assert_eq!(kafka["stored"], n - run.lost());
    assert_eq!(kafka["redelivered"], run.redelivered.1);
    // Ids reused with another payload are counted apart, not redeliveries.
    assert_eq!(kafka["conflicts"], run.conflicts);
    assert_eq!(rest["conflicts"], 0);
    assert_eq!(kafka["stored_unacknowledged"], 0);
    assert_eq!(kafka["stale"], during - run.lost());
    // By phase: the fault's events are the lost and the late ones.
    assert_eq!(kafka["phases"]["during"]["lost_events"], run.lost());
    assert_eq!(
        kafka["phases"]["during"]["late_events"],
        during - run.lost()
    );
    assert_eq!(kafka["phases"]["before"]["lost_events"], 0);
    assert_eq!(kafka["phases"]["after"]["late_events"], 0);
    // The earliest event of the fault waited until 70 s after its end.
    let slowest_ms = ((run.fault.1 - run.fault.0) as f64 + run.late_s as f64) * 1000.0;
    assert!(
        close(
            &kafka["freshness_ms"]["max"],
            slowest_ms,
            slowest_ms * 0.001
        ),
        "{kafka}"
    );
    assert!(close(
        &kafka["freshness_ms"]["stale_share"],
        (during - run.lost()) as f64 / (n - run.lost()) as f64,
        1e-12
    ));
    // On time, of everything acknowledged: the lost events count against it,
    // so the share falls by every event of the fault, lost or late.
    assert!(close(
        &kafka["freshness_ms"]["on_time_share"],
        (n - during) as f64 / n as f64,
        1e-12
    ));
    assert!(close(&rest["freshness_ms"]["on_time_share"], 1.0, 1e-12));
    assert_eq!(
        kafka["peak_backlog"],
        f64::from(run.rps * (run.fault.1 - run.fault.0))
    );
    // Backlog reads zero at the scrape of second fault end + drain_s (t + 0.5).
    assert!(
        close(&kafka["drain_s"], f64::from(run.drain_s) + 0.5, 1e-9),
        "{kafka}"
    );
    assert_eq!(kafka["settle_s"], 0.5);
    assert_eq!(
        kafka["breaker_open_s"],
        f64::from(run.fault.1 - run.fault.0)
    );
    assert_eq!(rest["breaker_open_s"], Value::Null, "REST has no breaker");
    assert_eq!(kafka["breaker_closed_s"], 0.0, "{kafka}");
    assert_eq!(rest["breaker_closed_s"], Value::Null);

    // Money: failed + lost + late events, every input beside the result.
    let cost = &rest["cost"];
    assert_eq!(cost["failed_events"], during);
    let revenue = during as f64 * 0.05 * 25.0;
    assert!(close(&cost["revenue_lost"], revenue, 1e-9));
    assert!(
        close(&cost["per_year"], revenue * 10.0 * 4.0, 1e-6),
        "{cost}"
    );
    assert_eq!(cost["inputs"]["production_rps"], 100.0);
    assert_eq!(
        kafka["cost"]["failed_events"],
        run.lost() + during - run.lost()
    );

    // Hypotheses: both fail, with their values.
    let hypotheses = summary["hypotheses"].as_array().unwrap();
    assert_eq!(hypotheses[0]["value"], 1.0);
    assert_eq!(hypotheses[0]["passed"], false);
    assert_eq!(hypotheses[1]["value"], run.lost() as f64);
    assert_eq!(hypotheses[1]["passed"], false);

    // The fault as recorded.
    assert_eq!(summary["faults"][0]["kind"], "db-crash");
    assert_eq!(summary["faults"][0]["actual_end_s"], f64::from(run.fault.1));

    // CPU per request: the REST service's over its own requests,
    // PostgreSQL's over both architectures'; the report sets one beside
    // the other.
    let cpu = summary["cpu"].as_array().unwrap();
    assert_eq!(cpu.len(), 2, "{cpu:?}");
    assert_eq!(cpu[0]["process"], "rest");
    assert!(close(&cpu[0]["us_per_request"], 100.0, 2.0), "{}", cpu[0]);
    assert_eq!(cpu[1]["process"], "postgresql");
    assert_eq!(cpu[1]["architecture"], Value::Null);
    assert!(close(&cpu[1]["us_per_request"], 200.0, 4.0), "{}", cpu[1]);
    let markdown = std::fs::read_to_string(dir.join("run/report.md")).unwrap();
    assert!(
        markdown.contains("| REST service | rest |")
            && markdown.contains("**×0.50** for rest's service"),
        "{markdown}"
    );
    // The audit table shows the reused ids in a column of their own.
    assert!(
        markdown.contains(&format!(
            "| kafka | {n} | {n} | {} | {} | {} | 3 | 0 |",
            n - run.lost(),
            run.lost(),
            run.redelivered.1
        )),
        "{markdown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn per_second_series_and_recovery_follow_the_rows() {
    let run = Synthetic::default();
    let dir = folder("series");
    run.write(&dir).unwrap();
    let summary = faultline::analyze::analyze(&dir).unwrap();
    let rest = summary.series_of("rest", 0).unwrap();
    assert_eq!(rest.seconds.len(), run.seconds as usize);
    for second in &rest.seconds {
        let in_fault = (run.fault.0..run.fault.1).contains(&second.t);
        assert_eq!(second.offered, u64::from(run.rps), "{second:?}");
        assert_eq!(second.failed, if in_fault { u64::from(run.rps) } else { 0 });
        if in_fault {
            assert_eq!(second.failures["503"], u64::from(run.rps));
            assert_eq!(second.ok_p99_ms, None);
        } else {
            assert!(second.ok_p99_ms.is_some_and(|p| (p - 2.0).abs() < 1e-9));
        }
    }
    let kafka = summary.series_of("kafka", 0).unwrap();
    let at = |t: u32| &kafka.seconds[t as usize];
    assert_eq!(at(run.fault.0 + 2).backlog, Some(f64::from(3 * run.rps)));
    assert_eq!(at(run.fault.0 + 2).breaker, Some(2.0));
    assert_eq!(at(run.fault.1 + run.drain_s).backlog, Some(0.0));
    assert_eq!(at(5).breaker, Some(0.0));
    // The freshness distribution ends at the slowest event, at 100 %.
    let cdf = &summary.freshness_cdf["kafka"];
    assert_eq!(cdf.last().unwrap().1, 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn repetitions_give_intervals_and_compare_tells_noise_from_change() {
    let run = Synthetic {
        repetitions: 3,
        ..Synthetic::default()
    };
    let (a, b) = (folder("rep-a"), folder("rep-b"));
    run.write(&a).unwrap();
    // The candidate: a longer fault, so REST fails more.
    Synthetic {
        fault: (10, 25),
        ..run.clone()
    }
    .write(&b)
    .unwrap();
    let summary = summary_of(&a);
    let rest = &summary["architectures"]["rest"];
    assert_eq!(rest["repetitions"]["count"], 3);
    // Identical repetitions: the interval is the value itself.
    let error_rate = &rest["repetitions"]["error_rate"];
    assert_eq!(error_rate["values"].as_array().unwrap().len(), 3);
    assert_eq!(error_rate["low"], error_rate["mean"]);
    assert_eq!(error_rate["high"], error_rate["mean"]);
    assert_eq!(rest["requests"], 3 * run.requests());
    assert_eq!(rest["failed"], 3 * run.during());
    assert_eq!(summary["architectures"]["kafka"]["lost"], 3 * run.lost());
    // A hypothesis on a count, and the original's money beside the lab's,
    // are per outage: a limit means the same with any number of
    // repetitions; the tables label what adds up every repetition.
    let kafka_lost = summary["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["architecture"] == "kafka" && h["metric"] == "lost_events")
        .unwrap();
    assert_eq!(kafka_lost["value"].as_f64(), Some(run.lost() as f64));
    let cost = &rest["cost"];
    assert!(close(
        &cost["poc_per_outage"],
        cost["poc_revenue_lost"].as_f64().unwrap() / 3.0,
        1e-9
    ));
    let report = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(
        report.contains("| events lost (all 3 repetitions) |"),
        "{report}"
    );
    assert!(
        report.contains("the original's formula, per outage |"),
        "{report}"
    );
    assert!(close(
        &rest["cost"]["per_outage"],
        run.during() as f64 * 0.05 * 25.0,
        1e-9
    ));

    // Identical repetitions replay one timing: their interval has no
    // width and tells nothing of the noise, however far apart the runs.
    let replayed = faultline::compare::compare(&a, &b).unwrap();
    assert!(
        replayed.iter().all(|c| c.verdict == "unknown noise"),
        "{replayed:?}"
    );
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
    // Repetitions whose faults end a second apart: intervals with width.
    let (a, b) = (folder("vary-a"), folder("vary-b"));
    let varied = Synthetic {
        vary_fault_s: 1,
        ..run.clone()
    };
    varied.write(&a).unwrap();
    Synthetic {
        fault: (10, 25),
        ..varied.clone()
    }
    .write(&b)
    .unwrap();
    let same = faultline::compare::compare(&a, &a).unwrap();
    let rest_same = same
        .iter()
        .find(|c| c.architecture == "rest" && c.figure == "error_rate")
        .unwrap();
    assert_eq!(rest_same.verdict, "within noise", "{same:?}");
    let changes = faultline::compare::compare(&a, &b).unwrap();
    let rest_errors = changes
        .iter()
        .find(|c| c.architecture == "rest" && c.figure == "error_rate")
        .unwrap();
    assert_eq!(rest_errors.verdict, "beyond noise");
    assert!(rest_errors.candidate > rest_errors.baseline);
    let markdown = faultline::compare::compare_markdown(&a, &b, &changes);
    assert!(
        markdown.contains(
            "| rest | error rate over the whole run | 0.34 | 0.51 | +48.4 % | beyond noise |"
        ),
        "{markdown}"
    );
    assert!(rest_errors.regressed());
    // As a CI gate: worse beyond the noise exits 5; better, or the same, 0.
    let gate = |baseline: &Path, candidate: &Path| {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["compare", "--fail-on-regression"])
            .arg(baseline)
            .arg(candidate)
            .output()
            .unwrap()
    };
    let worse = gate(&a, &b);
    assert_eq!(worse.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&worse.stderr)
            .contains("rest error rate over the whole run regressed beyond the noise: 0.34 → 0.51"),
        "{}",
        String::from_utf8_lossy(&worse.stderr)
    );
    assert_eq!(gate(&b, &a).status.code(), Some(0));
    assert_eq!(gate(&a, &a).status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn the_summary_follows_its_published_schema() {
    let published: Value =
        serde_json::from_str(include_str!("../../docs/summary.schema.json")).unwrap();
    assert!(
        published == faultline::run_folder::summary_schema(),
        "docs/summary.schema.json is stale: faultline schema --summary > docs/summary.schema.json"
    );
    let validator = jsonschema::validator_for(&published).unwrap();
    let problems = |value: &Value| -> Vec<String> {
        validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect()
    };
    let dir = folder("schema");
    Synthetic::default().write(&dir).unwrap();
    let summary = summary_of(&dir);
    assert!(problems(&summary).is_empty(), "{:#?}", problems(&summary));
    // The schema catches a missing figure and a wrong type.
    let mut broken = summary.clone();
    broken["architectures"]["kafka"]
        .as_object_mut()
        .unwrap()
        .remove("lost");
    broken["architectures"]["rest"]["error_rate"] = Value::from("high");
    assert_eq!(problems(&broken).len(), 2, "{:#?}", problems(&broken));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reading a run folder back names the file and the field that is wrong:
/// a summary without its hypotheses cannot pass for one whose all held.
#[test]
fn a_broken_run_folder_file_is_named_with_its_field() {
    let dir = folder("broken");
    Synthetic::default().write(&dir).unwrap();
    faultline::analyse_and_report(&dir).unwrap();
    let path = dir.join("summary.json");
    let mut summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let hypotheses = summary
        .as_object_mut()
        .unwrap()
        .remove("hypotheses")
        .unwrap();
    summary["verdicts"] = hypotheses;
    std::fs::write(&path, summary.to_string()).unwrap();
    let error = faultline::run_folder::read_summary(&dir)
        .unwrap_err()
        .to_string();
    assert!(error.contains("summary.json"), "{error}");
    assert!(error.contains("hypotheses"), "{error}");

    summary["hypotheses"] = summary["verdicts"].take();
    summary["architectures"]["rest"]["cost"]["revenue_lost"] = Value::from("a lot");
    std::fs::write(&path, summary.to_string()).unwrap();
    let error = faultline::run_folder::read_summary(&dir)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("architectures.rest.cost.revenue_lost"),
        "{error}"
    );

    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"t0_unix_us\"", "\"t0\"")).unwrap();
    let error = faultline::analyze::analyze(&dir).map(drop).unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.contains("manifest.json") && error.contains("t0_unix_us"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Parquet file with a column of the wrong type is refused by name.
#[test]
fn a_parquet_column_of_the_wrong_type_is_named() {
    use polars::prelude::*;
    let dir = folder("column");
    Synthetic::default().write(&dir).unwrap();
    let mut frame = faultline::run_folder::STORED.read(&dir).unwrap();
    frame
        .with_column(Column::new("stored_s".into(), vec!["one"; frame.height()]))
        .unwrap();
    faultline::run_folder::STORED
        .write(&dir, &mut frame)
        .unwrap();
    let error = faultline::analyze::analyze(&dir).map(drop).unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.contains("stored.parquet") && error.contains("column stored_s"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_report_is_self_contained_and_the_index_lists_every_run() {
    let reports = folder("index");
    Synthetic::default().write(&reports.join("a")).unwrap();
    Synthetic {
        repetitions: 2,
        ..Synthetic::default()
    }
    .write(&reports.join("b"))
    .unwrap();
    for run in ["a", "b"] {
        faultline::analyse_and_report(&reports.join(run)).unwrap();
    }
    let dir = reports.join("b");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let charts = faultline::report::CHARTS;
    assert_eq!(html.matches("<svg").count(), charts.len());
    for chart in charts {
        assert!(
            markdown.contains(&format!("](charts/{chart}.svg)")),
            "{chart}"
        );
        let svg = std::fs::read_to_string(dir.join(format!("charts/{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && html.contains(&svg), "{chart}");
    }
    // The charts' data: one CSV row per architecture, repetition and second.
    let csv = std::fs::read_to_string(dir.join("charts/seconds.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("architecture,repetition,t,offered,ok,failed"));
    // Two architectures, two repetitions; Kafka's scrapes go on 5 s past the load.
    let seconds = Synthetic::default().seconds as usize;
    assert_eq!(rows.len() - 1, 2 * (seconds + seconds + 5));
    assert!(
        rows.contains(&"rest,1,10,10,0,10,1,503:10,,,2,2,,,,,0,0"),
        "{csv}"
    );
    // Each second's lost and late events add up to the run's.
    let header: Vec<&str> = rows[0].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (lost, late) = (column("lost"), column("late"));
    let kafka_total = |index: usize| -> u64 {
        rows[1..]
            .iter()
            .map(|r| r.split(',').collect::<Vec<_>>())
            .filter(|r| r[0] == "kafka" && r[1] == "0")
            .map(|r| r[index].parse::<u64>().unwrap())
            .sum()
    };
    let run = Synthetic::default();
    assert_eq!(kafka_total(lost), run.lost());
    assert_eq!(kafka_total(late), run.during() - run.lost());
    // Nothing is fetched: no external source, link, stylesheet or font.
    for needle in [
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
        "<script",
        "<link",
    ] {
        assert!(!html.contains(needle), "{needle} in report.html");
    }
    // Both renderings carry the same figures.
    for text in [
        "How sure are we?",
        "Method and reproducibility",
        "Kafka loses nothing",
        "import polars as pl",
    ] {
        assert!(html.contains(text) && markdown.contains(text), "{text}");
    }
    assert!(
        html.contains("name = &quot;synthetic&quot;"),
        "the scenario is escaped and shown"
    );

    let index = faultline::report::write_index(&reports).unwrap();
    let index = std::fs::read_to_string(index).unwrap();
    assert!(index.contains("href=\"a/report.html\"") && index.contains("href=\"b/report.html\""));
    assert_eq!(index.matches("synthetic</a>").count(), 2);
    assert_eq!(
        index.matches(">0 of 2</td>").count(),
        2,
        "both hypotheses fail in each run"
    );
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn a_real_chromium_renders_the_report() {
    let dir = folder("chromium");
    Synthetic::default().write(&dir).unwrap();
    faultline::analyse_and_report(&dir).unwrap();
    let page = format!("file://{}", dir.join("report.html").display());
    let profile = dir.join("profile");
    let flags: Vec<&str> = HEADLESS
        .into_iter()
        .chain(["--window-size=420,2400"])
        .collect();
    // The DOM Chromium parsed holds every chart.
    let dom = Command::new(chromium())
        .args(&flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<svg").count(),
        faultline::report::CHARTS.len(),
        "{dom}"
    );
    assert!(dom.contains("Was anything lost?"));
    // And a phone-sized screenshot is taken without error.
    let shot = dir.join("report.png");
    let output = Command::new(chromium())
        .args(&flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a real Chromium lays out: at 1280 px no table of the example
/// reports (a run with two repetitions, a `service` run, a sweep) is wider
/// than its box, and on a phone every chart's text is drawn at 9 px or more.
#[test]
fn the_example_reports_fit_a_laptops_window_and_charts_read_on_a_phone() {
    let dir = folder("layout");
    std::fs::create_dir_all(&dir).unwrap();
    // Written into the page by a script once it is laid out.
    let probe = r#"<script>
window.addEventListener('load', () => {
  const out = [];
  document.querySelectorAll('.scroll').forEach(e => {
    if (e.scrollWidth > e.clientWidth + 1)
      out.push('table ' + e.scrollWidth + ' > ' + e.clientWidth + ': ' + e.querySelector('tr').textContent.slice(0, 80));
  });
  let smallest = 1000;
  document.querySelectorAll('figure svg').forEach(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    svg.querySelectorAll('text').forEach(t => {
      smallest = Math.min(smallest, parseFloat(getComputedStyle(t).fontSize) * scale);
    });
  });
  out.push('smallest chart text ' + smallest.toFixed(1) + ' px');
  const p = document.createElement('pre'); p.id = 'probe'; p.textContent = out.join('\n');
  document.body.appendChild(p);
});
</script>"#;
    // The sweep's table of every point (14 figures a row) too, with its
    // cells closer below 1,366 px.
    for (example, laptop_px) in [
        ("example-run", 1280),
        ("example-orders-api", 1280),
        ("example-sweep", 1280),
        ("example-sweep", 1366),
    ] {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(example)
            .join("report.html");
        let html = std::fs::read_to_string(shipped)
            .unwrap()
            .replace("</body>", &format!("{probe}</body>"));
        let page = dir.join(format!("{example}.html"));
        std::fs::write(&page, html).unwrap();
        let laid_out = |width: u32| {
            let dom = Command::new(chromium())
                .args(HEADLESS)
                .args([
                    "--virtual-time-budget=3000",
                    &format!("--window-size={width},2000"),
                    &format!("--user-data-dir={}", dir.join("profile").display()),
                    "--dump-dom",
                ])
                .arg(format!("file://{}", page.display()))
                .output()
                .unwrap();
            let dom = String::from_utf8_lossy(&dom.stdout).to_string();
            let start = dom.find("<pre id=\"probe\">").expect("the probe ran");
            dom[start..].split("</pre>").next().unwrap().to_string()
        };
        let laptop = laid_out(laptop_px);
        assert!(
            !laptop.contains("table "),
            "{example} at {laptop_px} px: {laptop}"
        );
        let phone = laid_out(390);
        let smallest: f64 = phone
            .split("smallest chart text ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        assert!(smallest >= 9.0, "{example} on a phone: {phone}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example run in `docs/` (the README's figures) is reproduced from
/// its raw files alone by the current analysis.
#[test]
fn the_documented_example_runs_are_reproduced_from_their_raw_rows() {
    // The default scenario's, and the orders API's (a `service`).
    for example in ["example-run", "example-orders-api"] {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(example);
        let dir = folder(example);
        std::fs::create_dir_all(&dir).unwrap();
        for file in [
            "experiment.toml",
            "manifest.json",
            "requests.parquet",
            "stored.parquet",
            "metrics.parquet",
            "faults.parquet",
        ] {
            std::fs::copy(shipped.join(file), dir.join(file)).unwrap();
        }
        let again = summary_of(&dir);
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(shipped.join("summary.json")).unwrap())
                .unwrap();
        assert!(
            again == committed,
            "docs/{example}/summary.json is stale: faultline report docs/{example}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("report.md")).unwrap(),
            std::fs::read_to_string(shipped.join("report.md")).unwrap(),
            "docs/{example}/report.md is stale: faultline report docs/{example}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn an_index_the_lab_did_not_write_is_left_alone() {
    let reports = folder("foreign-index");
    Synthetic::default().write(&reports.join("run")).unwrap();
    faultline::analyse_and_report(&reports.join("run")).unwrap();
    let index = reports.join("index.html");
    std::fs::write(&index, "<h1>my team's page</h1>").unwrap();
    let error = faultline::report::write_index(&reports).unwrap_err();
    assert!(
        error.to_string().contains("was not written by faultline"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&index).unwrap(),
        "<h1>my team's page</h1>"
    );
    // An index the lab wrote is replaced.
    std::fs::remove_file(&index).unwrap();
    faultline::report::write_index(&reports).unwrap();
    let first = std::fs::read_to_string(&index).unwrap();
    Synthetic::default().write(&reports.join("run-2")).unwrap();
    faultline::analyse_and_report(&reports.join("run-2")).unwrap();
    faultline::report::write_index(&reports).unwrap();
    assert_ne!(std::fs::read_to_string(&index).unwrap(), first);
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn html_in_the_scenario_is_shown_not_rendered_in_either_report() {
    let dir = folder("html-title");
    Synthetic::default().write(&dir).unwrap();
    let scenario = dir.join("experiment.toml");
    let text = std::fs::read_to_string(&scenario).unwrap().replace(
        "title = \"Synthetic run\"",
        "title = \"<script>alert(1)</script> & co\"",
    );
    std::fs::write(&scenario, text).unwrap();
    faultline::analyse_and_report(&dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&lt;script&gt;alert(1)"));
    // In Markdown, only inside the scenario's code block (shown as code).
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let (prose, code) = markdown.split_once("```toml").unwrap();
    assert!(!prose.contains("<script>alert(1)"));
    assert!(prose.starts_with("# &lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    assert!(code.contains("<script>alert(1)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_summary_written_before_the_added_fields_is_still_read() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/example-run/summary.json");
    let mut old: Value = serde_json::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("interval_method");
    old.as_object_mut().unwrap().remove("budget_break_even");
    for architecture in old["architectures"].as_object_mut().unwrap().values_mut() {
        let a = architecture.as_object_mut().unwrap();
        let repetitions = a["repetitions"].as_object_mut().unwrap();
        for added in [
            "lost_share",
            "freshness_p99_ms",
            "stale_share",
            "on_time_share",
            "poc_revenue_lost",
        ] {
            repetitions.remove(added);
        }
        a.remove("per_repetition");
        a.remove("cost_by_staleness_budget");
        a["cost"]
            .as_object_mut()
            .unwrap()
            .remove("poc_revenue_lost");
    }
    let dir = folder("old-summary");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("summary.json");
    std::fs::write(&path, old.to_string()).unwrap();
    let summary: faultline::run_folder::Summary = faultline::run_folder::load(&path).unwrap();
    assert_eq!(summary.interval_method, "bootstrap");
    assert!(summary.architectures["rest"].per_repetition.is_empty());
    assert!(summary.budget_break_even.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The catalogue's three readings of a figure agree: one repetition's
/// value, the estimate over the repetitions, and what a hypothesis naming
/// its metric is judged on; and each moves with the rows.
#[test]
fn every_catalogue_figure_reads_the_same_from_a_repetition_its_estimate_and_its_metric() {
    use faultline::catalogue::FIGURES;
    use faultline::experiment::Metric;
    let agree = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        (a, b) => a.is_none() && b.is_none(),
    };
    let mut shares = Vec::new();
    for lost_every in [10, 4] {
        let run = Synthetic {
            lost_every,
            ..Synthetic::default()
        };
        let dir = folder(&format!("catalogue-{lost_every}"));
        run.write(&dir).unwrap();
        let summary = faultline::analyse_and_report(&dir).unwrap();
        let mut present = 0;
        for (name, a) in &summary.architectures {
            assert_eq!(a.per_repetition.len(), 1);
            for figure in &FIGURES {
                let one = (figure.of_repetition)(&a.per_repetition[0]);
                let estimate = (figure.estimate)(&a.repetitions).map(|e| e.mean);
                let judged = figure.metric.of(a, figure.phase);
                assert!(
                    agree(one, estimate),
                    "{name} {}: {one:?} {estimate:?}",
                    figure.name
                );
                assert!(
                    agree(one, judged),
                    "{name} {}: {one:?} {judged:?}",
                    figure.name
                );
                present += usize::from(one.is_some());
            }
        }
        // Every figure is some architecture's: none is left unread.
        assert!(present >= FIGURES.len(), "{present}");
        let kafka = &summary.architectures["kafka"];
        assert_eq!(kafka.lost, run.lost());
        let share = Metric::LostShare.of(kafka, None).unwrap();
        assert!(agree(
            Some(share),
            Some(run.lost() as f64 / kafka.acknowledged as f64)
        ));
        shares.push(share);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(shares[1] > shares[0], "{shares:?}");
}

#[test]
fn data_recovery_waits_for_the_database_to_keep_up_not_for_the_answers() {
    // The Kafka path answers throughout, but what is due in the 5 s after
    // the fault is stored only then: its answers are back at once, its
    // data 5 s later. REST's data is back with its answers.
    let run = Synthetic {
        stalled_s: 5,
        ..Synthetic::default()
    };
    let dir = folder("data-recovery");
    run.write(&dir).unwrap();
    // A claim on it, as a scenario gives one.
    let scenario = dir.join("experiment.toml");
    let text = std::fs::read_to_string(&scenario).unwrap()
        + "[[hypotheses]]\ntitle = \"Kafka's data is back within 2 s\"\narchitecture = \"kafka\"\n\
           metric = \"data_recovery_s\"\nmax = 2\n";
    std::fs::write(&scenario, text).unwrap();
    let summary = summary_of(&dir);
    let claim = summary["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["metric"] == "data_recovery_s")
        .unwrap();
    assert_eq!(claim["passed"], false, "{claim}");
    assert!(close(&claim["value"], 5.0, 1e-9), "{claim}");
    let kafka = &summary["architectures"]["kafka"];
    let rest = &summary["architectures"]["rest"];
    assert!(close(&kafka["data_recovery_s"], 5.0, 1e-9), "{kafka}");
    assert!(close(&kafka["recovery_s"], 0.0, 1e-9), "{kafka}");
    assert!(close(&rest["data_recovery_s"], 0.0, 1e-9), "{rest}");
    // Without the stall, the Kafka path's data is back at once too.
    let dir = folder("data-recovery-none");
    Synthetic::default().write(&dir).unwrap();
    let summary = summary_of(&dir);
    assert!(close(
        &summary["architectures"]["kafka"]["data_recovery_s"],
        0.0,
        1e-9
    ));
}

#[test]
fn the_report_opens_with_the_answer_in_words_from_the_figures() {
    let run = Synthetic::default();
    let dir = folder("answer");
    run.write(&dir).unwrap();
    faultline::analyse_and_report(&dir).unwrap();
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let answer = markdown
        .lines()
        .find(|l| l.starts_with("**rest**"))
        .expect("an answer paragraph");
    assert!(
        answer.contains(&format!(
            "**rest** failed 100.0 % of the requests sent during the fault ({})",
            run.during()
        )),
        "{answer}"
    );
    assert!(
        answer.contains(&format!(
            "**kafka** answered every request sent during the fault, **silently lost {} acknowledged events",
            run.lost()
        )),
        "{answer}"
    );
    assert!(
        answer.contains("One repetition: a second run could differ"),
        "{answer}"
    );
    // The HTML report says the same, emphasis as HTML.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<strong>rest</strong> failed 100.0 %"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn warnings_to_a_pipe_carry_no_colour_codes() {
    // A reports folder with an index, a run, and a folder that is not a
    // readable run: refreshing the index warns about it.
    let reports = folder("no-colour");
    Synthetic::default().write(&reports.join("run")).unwrap();
    faultline::analyse_and_report(&reports.join("run")).unwrap();
    faultline::report::write_index(&reports).unwrap();
    std::fs::create_dir_all(reports.join("broken")).unwrap();
    std::fs::write(reports.join("broken/summary.json"), "{").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("report")
        .arg(reports.join("run"))
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Left a run out of the index"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn the_drivers_own_delay_is_measured_and_called_out_when_it_rivals_the_latency() {
    // Every tenth kafka request sent 1.5 ms late, answered 2 ms after it
    // was due: its p99 delay is ×0.75 the answers' p99.
    let late = Synthetic {
        sent_late_us: 1_500,
        ..Synthetic::default()
    };
    let dir = folder("sent-late");
    late.write(&dir).unwrap();
    let summary = summary_of(&dir);
    let kafka = &summary["architectures"]["kafka"]["sent_late_ms"];
    assert!(close(&kafka["p50"], 0.0, 0.01), "{kafka}");
    assert!(close(&kafka["p99"], 1.5, 0.01), "{kafka}");
    assert!(close(&kafka["max"], 1.5, 0.01), "{kafka}");
    assert_eq!(kafka["sent"], late.requests());
    let rest = &summary["architectures"]["rest"]["sent_late_ms"];
    assert!(close(&rest["max"], 0.0, 0.001), "{rest}");
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("kafka p50 0.00 ms, p99 1.50 ms, max 1.50 ms"),
        "{markdown}"
    );
    assert!(
        markdown.contains("fell behind its schedule for kafka (its p99 delay 1.50 ms is ×0.75"),
        "{markdown}"
    );
    // A tenth of that is within the noise of the answers: no warning.
    let dir = folder("sent-on-time");
    Synthetic {
        sent_late_us: 150,
        ..late.clone()
    }
    .write(&dir)
    .unwrap();
    faultline::analyse_and_report(&dir).unwrap();
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("kafka p50 0.00 ms, p99 0.15 ms"),
        "{markdown}"
    );
    assert!(!markdown.contains("fell behind"), "{markdown}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_warmup_is_left_out_of_latency_but_kept_in_the_rows_and_the_series() {
    // The first 2 s answer in 800 ms (start-up); everything after in 2 ms.
    let slow = Synthetic {
        slow_start: (2, 800),
        ..Synthetic::default()
    };
    // Unset, the warm-up is 3 s here: a tenth of the 30 s run.
    let dir = folder("warmup");
    slow.write(&dir).unwrap();
    let summary = summary_of(&dir);
    assert_eq!(summary["warmup_s"], 3.0);
    for name in ["rest", "kafka"] {
        let a = &summary["architectures"][name];
        assert!(close(&a["latency_ms"]["max"], 2.0, 0.01), "{a}");
        assert!(
            close(&a["phases"]["before"]["latency_ms"]["max"], 2.0, 0.01),
            "{a}"
        );
        // Still counted as requests, and still in the per-second series.
        assert_eq!(a["requests"], slow.requests());
    }
    let analysis = faultline::analyze::analyze(&dir).unwrap();
    let first = &analysis.series_of("kafka", 0).unwrap().seconds[0];
    assert!(first.ok_p99_ms.is_some_and(|p| (p - 800.0).abs() < 1.0));
    // Set to zero, the start-up is in the figures: the figure moves.
    let dir = folder("no-warmup");
    Synthetic {
        warmup_s: Some(0),
        ..slow.clone()
    }
    .write(&dir)
    .unwrap();
    let summary = summary_of(&dir);
    assert_eq!(summary["warmup_s"], 0.0);
    let kafka = &summary["architectures"]["kafka"];
    assert!(close(&kafka["latency_ms"]["max"], 800.0, 1.0), "{kafka}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn phases_end_when_the_database_is_back_and_recovery_is_to_the_request() {
    // The database is back 300 ms after the fault's end; REST fails until
    // then, and 400 ms longer while its pool reconnects.
    let run = Synthetic {
        db_back_ms: 300,
        rest_slow_ms: 400,
        ..Synthetic::default()
    };
    let dir = folder("db-back");
    run.write(&dir).unwrap();
    let summary = summary_of(&dir);
    let rest = &summary["architectures"]["rest"];
    // At 10 req/s the requests at 20.0, 20.1 and 20.2 s came before the
    // database was back: the fault's, in the "during" phase.
    let during = run.during() + 3;
    assert_eq!(rest["phases"]["during"]["requests"], during);
    assert_eq!(rest["phases"]["during"]["error_rate"], 1.0);
    // The next four (20.3 to 20.6 s) failed after it: REST's own slowness,
    // and its recovery to the request: the first success, at 20.7 s.
    assert_eq!(rest["phases"]["after"]["failed"], 4);
    assert!(close(&rest["recovery_s"], 0.4, 1e-6), "{rest}");
    // Moving what the rows say moves the figure.
    let dir = folder("db-back-sooner");
    Synthetic {
        rest_slow_ms: 100,
        ..run.clone()
    }
    .write(&dir)
    .unwrap();
    let rest = &summary_of(&dir)["architectures"]["rest"];
    assert!(close(&rest["recovery_s"], 0.1, 1e-6), "{rest}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_breaker_closes_when_its_scrapes_say_so() {
    let run = Synthetic {
        breaker_extra_s: 7,
        ..Synthetic::default()
    };
    let dir = folder("breaker-closed");
    run.write(&dir).unwrap();
    let kafka = &summary_of(&dir)["architectures"]["kafka"];
    assert_eq!(kafka["breaker_closed_s"], 7.0, "{kafka}");
    assert_eq!(
        kafka["breaker_open_s"],
        f64::from(run.fault.1 - run.fault.0 + 7)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_control_repetition_is_shown_beside_the_run_and_pooled_into_nothing() {
    // The control answers in 3 ms where the faulted run answers in 2 ms:
    // drift the report shows beside the fault's effect.
    let run = Synthetic {
        control: Some(3),
        ..Synthetic::default()
    };
    let dir = folder("control");
    run.write(&dir).unwrap();
    let summary = summary_of(&dir);
    assert_eq!(summary["repetitions"], 1, "the control is not a repetition");
    let rest = &summary["architectures"]["rest"];
    // The run's figures are the faulted repetition's alone.
    assert_eq!(rest["requests"], run.requests());
    assert_eq!(rest["phases"]["during"]["error_rate"], 1.0);
    assert_eq!(rest["per_repetition"].as_array().unwrap().len(), 1);
    // The control: the same seconds, nothing failed, nothing lost.
    let control = &rest["control"];
    assert_eq!(control["requests"], run.requests());
    assert_eq!(control["phases"]["during"]["requests"], run.during());
    assert_eq!(control["phases"]["during"]["error_rate"], 0.0);
    assert!(close(&control["latency_ms"]["p99"], 3.0, 0.01), "{control}");
    assert_eq!(summary["architectures"]["kafka"]["control"]["lost"], 0);
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("| rest | before | 0.00 % | 0.00 % | 2.0 ms | 3.0 ms |"),
        "{markdown}"
    );
    // Without a control, neither the field nor the section.
    let dir = folder("no-control");
    Synthetic::default().write(&dir).unwrap();
    let summary = summary_of(&dir);
    assert!(summary["architectures"]["rest"]["control"].is_null());
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(!markdown.contains("Against the control"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_latency_rise_after_the_fault_is_explained_by_the_control() {
    // Answers take 2 ms, then 10 ms from 22 s on (after the fault).
    let slow = Synthetic {
        slow_after: Some((22, 10)),
        control: Some(2),
        ..Synthetic::default()
    };
    let note = |run: &Synthetic, name: &str| {
        let dir = folder(&format!("notes-{name}"));
        run.write(&dir).unwrap();
        faultline::analyse_and_report(&dir).unwrap();
        let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        markdown
            .lines()
            .find(|l| l.starts_with("**kafka**'s latency p99 after the fault"))
            .map(str::to_string)
    };
    // One faulted run and one control that did not slow: the fault's own
    // change is ×5, but with one of each there is no interval, so the note
    // does not attribute it.
    let one = note(&slow, "one").expect("a note on the rise");
    assert!(
        one.contains("(10.0 ms) is 5.0× its p99 before (2.0 ms)"),
        "{one}"
    );
    assert!(
        one.contains(
            "the control went ×1.00, so the fault's own change is ×5.00, with no interval"
        ),
        "{one}"
    );
    assert!(one.ends_with("so this run does not attribute it."), "{one}");
    // REST, with no backlog, slowed as much: no backlog is named as the
    // cause, the contradiction is said instead.
    assert!(
        one.contains(
            "; rest, with no backlog to drain, slowed too (×5.0): the rise is not a backlog's doing"
        ),
        "{one}"
    );
    assert!(!one.contains("draining a backlog"), "{one}");
    // Three faulted runs and two controls, run among them: an interval,
    // and the fault's doing when it leaves out ×1.
    let several = Synthetic {
        repetitions: 3,
        controls: 2,
        ..slow.clone()
    };
    let caused = note(&several, "caused").unwrap();
    assert!(caused.contains("the 2 controls went ×1.00"), "{caused}");
    assert!(
        caused.ends_with("beyond the controls' drift, the fault's doing."),
        "{caused}"
    );
    // The controls slowed as much: the fault's own change is ×1, not the
    // fault's.
    let drift = note(
        &Synthetic {
            control_drifts: true,
            ..several.clone()
        },
        "drift",
    )
    .unwrap();
    assert!(
        drift.contains("the fault's own change is ×1.00 [1.00–1.00]"),
        "{drift}"
    );
    assert!(
        drift.ends_with("so this run does not tell the change from drift."),
        "{drift}"
    );
    // Without a control the note says it cannot tell; without a rise, no note.
    let blind = note(
        &Synthetic {
            control: None,
            ..slow.clone()
        },
        "blind",
    )
    .unwrap();
    assert!(blind.contains("`control = true`"), "{blind}");
    assert_eq!(note(&Synthetic::default(), "none"), None);
}

#[test]
fn drift_with_no_fault_is_found_and_named_without_a_cause() {
    // 150 s; every answer takes 2 ms until 100 s, then 10 ms, in the
    // controls too; the fault is at 80–90 s.
    let run = Synthetic {
        seconds: 150,
        fault: (80, 90),
        slow_after: Some((100, 10)),
        control: Some(2),
        control_drifts: true,
        ..Synthetic::default()
    };
    let analyse = |run: &Synthetic, name: &str| {
        let dir = folder(&format!("drift-{name}"));
        run.write(&dir).unwrap();
        let summary = summary_of(&dir);
        let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (summary, markdown)
    };
    let (summary, markdown) = analyse(&run, "control");
    let kafka = summary["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["figure"] == "latency_p99_ms" && d["subject"] == "kafka")
        .expect("kafka's p99 followed")
        .clone();
    assert_eq!(kafka["source"], "control");
    assert_eq!(kafka["drifted"], true, "{kafka}");
    assert!(
        close(&kafka["first"], 2.0, 0.02) && close(&kafka["last"], 10.0, 0.02),
        "{kafka}"
    );
    assert!(
        markdown.contains("### Drift: what moves with no fault"),
        "{markdown}"
    );
    assert!(
        markdown.contains("kafka's latency p99 2.00 → 10.0"),
        "{markdown}"
    );
    let note = markdown
        .lines()
        .find(|l| l.starts_with("**kafka**'s latency p99 after the fault"))
        .unwrap();
    assert!(
        note.contains("drift, whose cause this run does not measure"),
        "{note}"
    );
    assert!(!note.contains("on the broker's side"), "{note}");
    // Without a control, the seconds before the fault are followed.
    let (summary, _) = analyse(
        &Synthetic {
            control: None,
            slow_after: Some((50, 10)),
            ..run.clone()
        },
        "before",
    );
    let before = &summary["drift"][0];
    assert_eq!(before["source"], "before", "{before}");
    assert_eq!(before["drifted"], true, "{before}");
    // A steady run: followed, nothing drifted.
    let (summary, markdown) = analyse(
        &Synthetic {
            slow_after: None,
            ..run.clone()
        },
        "steady",
    );
    let drift = summary["drift"].as_array().unwrap();
    assert!(
        !drift.is_empty() && drift.iter().all(|d| d["drifted"] == false),
        "{drift:?}"
    );
    assert!(
        markdown.contains("no figure followed moved by half or more"),
        "{markdown}"
    );
}

#[test]
fn the_readmes_table_of_the_pocs_claims_is_the_example_runs() {
    // Every figure and verdict of the README's table, and every passage of
    // figures elsewhere in it, comes from the example run's summary.
    // FAULTLINE_BLESS=1 rewrites the README's copies.
    use faultline::report::poc;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = root.join("docs/example-run");
    let files = faultline::run_folder::RunFiles::read(&run).unwrap();
    let summary = faultline::analyze::summarize(&files).unwrap().summary;
    let table = poc::claims(&files, &summary).unwrap();
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (Some(begin), Some(end)) = (readme.find(poc::BEGIN), readme.find(poc::END)) else {
        panic!("the README has no generated table between its markers");
    };
    let start = begin + poc::BEGIN.len() + 1;
    let bless = std::env::var_os("FAULTLINE_BLESS").is_some();
    let readme = if bless {
        format!("{}{table}{}", &readme[..start], &readme[end..])
    } else {
        assert_eq!(
            &readme[start..end],
            table,
            "README.md's table of the PoC's claims differs from the example run: \
             FAULTLINE_BLESS=1 cargo test --test analyze poc"
        );
        readme
    };
    // Every other passage of figures in the README, from the same run.
    let mut readme = readme;
    for (name, text) in faultline::report::readme::passages(&files, &summary).unwrap() {
        let begin = faultline::report::readme::begin(name);
        let Some(start) = readme.find(&begin).map(|b| b + begin.len()) else {
            panic!("the README has no passage {name}");
        };
        let end = start
            + readme[start..]
                .find(faultline::report::readme::END)
                .expect("a passage's end");
        if bless {
            readme.replace_range(start..end, &text);
        } else {
            assert_eq!(
                &readme[start..end],
                text,
                "README.md's passage {name} differs from the example run: \
                 FAULTLINE_BLESS=1 cargo test --test analyze poc"
            );
        }
    }
    if bless {
        std::fs::write(&readme_path, readme).unwrap();
        return;
    }
    // The figures are the run's: the drop policy's loss per repetition is
    // in the table.
    let repetitions = summary.repetitions.max(1) as u64;
    let lost =
        ((summary.architectures["kafka-drop"].lost + repetitions / 2) / repetitions).to_string();
    let grouped: Vec<String> = lost
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert!(
        table.contains(&format!("**lost {} of them", grouped.join(","))),
        "{table}"
    );
}

#[test]
fn the_backlog_is_the_labs_own_measure_not_a_blind_consumers_zero() {
    // After the fault the consumer's gauge reads 0 (a restarted consumer
    // with no partitions yet); the lab's measure from outside still sees the
    // backlog draining over 3 s.
    let run = Synthetic {
        consumer_gauge_after: Some(0.0),
        ..Synthetic::default()
    };
    let dir = folder("blind-consumer");
    run.write(&dir).unwrap();
    let kafka = &summary_of(&dir)["architectures"]["kafka"];
    assert!(
        close(&kafka["drain_s"], f64::from(run.drain_s) + 0.5, 1e-9),
        "{kafka}"
    );
    // A consumer that says it does not know (−1) is never an empty backlog.
    let analysis = faultline::analyze::analyze(&dir).unwrap();
    let seconds = &analysis.series_of("kafka", 0).unwrap().seconds;
    assert_eq!(
        seconds[run.fault.1 as usize].backlog,
        Some(f64::from(run.rps * run.drain_s))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_a_memory_broker_held_when_killed_are_said_lost_with_it() {
    // The 5 Kafka events due in the half second before a broker-kill were
    // acknowledged and never stored: the broker (memory storage) lost them.
    let run = Synthetic {
        fault_kind: "broker-kill",
        lost_before: 5,
        ..Synthetic::default()
    };
    let dir = folder("memory-broker");
    run.write(&dir).unwrap();
    let kafka = &summary_of(&dir)["architectures"]["kafka"];
    assert_eq!(kafka["lost"], run.lost() + 5, "{kafka}");
    assert_eq!(kafka["lost_with_broker"], 5, "{kafka}");
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("**kafka**: 5 of its"),
        "the loss section does not say it"
    );
    // The same losses under a database crash are the consumer's.
    let dir = folder("memory-broker-db");
    Synthetic {
        lost_before: 5,
        ..Synthetic::default()
    }
    .write(&dir)
    .unwrap();
    let kafka = &summary_of(&dir)["architectures"]["kafka"];
    assert_eq!(kafka["lost_with_broker"], 0, "{kafka}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A repetition stopped early offered load for less than the scenario's
/// duration: the run's rate, and the yearly cost scaled from it, are
/// taken over the seconds it really offered.
#[test]
fn an_interrupted_repetition_counts_the_seconds_it_offered() {
    let run = Synthetic::default();
    let dir = folder("offered");
    run.write(&dir).unwrap();
    let full = summary_of(&dir);
    let path = dir.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["repetitions"][0]["load_end_s"] = (f64::from(run.seconds) / 2.0).into();
    // Complete, its load's end is only when the last request was due.
    std::fs::write(&path, manifest.to_string()).unwrap();
    let complete = summary_of(&dir);
    assert_eq!(
        complete["architectures"]["rest"]["cost"],
        full["architectures"]["rest"]["cost"]
    );
    manifest["repetitions"][0]["status"] = "incomplete".into();
    std::fs::write(&path, manifest.to_string()).unwrap();
    let half = summary_of(&dir);
    for name in ["rest", "kafka"] {
        let rate = |s: &Value| {
            s["architectures"][name]["cost"]["inputs"]["run_rps"]
                .as_f64()
                .unwrap()
        };
        let year = |s: &Value| {
            s["architectures"][name]["cost"]["per_year"]
                .as_f64()
                .unwrap()
        };
        assert!(close(
            &full["architectures"][name]["cost"]["inputs"]["run_rps"],
            f64::from(run.rps),
            1e-9
        ));
        assert!((rate(&half) - 2.0 * rate(&full)).abs() < 1e-9, "{name}");
        assert!((year(&half) - year(&full) / 2.0).abs() < 1e-6, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `fault_jitter`, the report says how far each repetition's faults
/// moved, from the faults as they were planned, and the phases follow them.
#[test]
fn the_report_says_how_far_each_repetitions_faults_moved() {
    let run = Synthetic {
        repetitions: 3,
        jitter_s: Some(2),
        ..Synthetic::default()
    };
    let dir = folder("jitter");
    run.write(&dir).unwrap();
    let summary = summary_of(&dir);
    let starts: Vec<f64> = summary["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["planned_start_s"].as_f64().unwrap())
        .collect();
    assert_eq!(starts, [10.0, 11.0, 12.0]);
    // Every repetition's fault lasts as long: the same requests fail in each.
    let rest = &summary["architectures"]["rest"];
    assert_eq!(rest["failed"], 3 * run.during());
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("Each repetition's faults moved together by one offset within ±2s (+0.0 s, +1.0 s, +2.0 s), drawn from the seed, so that the repetitions sample the faults' timing instead of replaying one."),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // With a length jitter, how much longer each lasted too.
    let longer = Synthetic {
        length_jitter_s: Some(2),
        ..run.clone()
    };
    longer.write(&dir).unwrap();
    let summary = summary_of(&dir);
    let lengths: Vec<f64> = summary["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["planned_end_s"].as_f64().unwrap() - f["planned_start_s"].as_f64().unwrap())
        .collect();
    assert_eq!(lengths, [10.0, 11.0, 12.0]);
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("(+0.0 s, +1.0 s, +2.0 s) and lasted longer or shorter by one offset within ±2s (+0.0 s, +1.0 s, +2.0 s), drawn"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// "Data current" is when the last event stored later than the budget
/// went in: the Kafka path's late events all go in `late_s` after the
/// fault, REST's every event at once; it moves with the late events.
#[test]
fn data_current_waits_for_the_last_stale_event_not_for_the_rate() {
    for late_s in [70, 80] {
        let run = Synthetic {
            late_s,
            ..Synthetic::default()
        };
        let dir = folder(&format!("current-{late_s}"));
        run.write(&dir).unwrap();
        let summary = summary_of(&dir);
        let kafka = &summary["architectures"]["kafka"];
        assert!(
            close(&kafka["data_current_s"], late_s as f64, 1e-6),
            "{}",
            kafka["data_current_s"]
        );
        // Flowing again long before: the rate test is not the freshness.
        assert!(kafka["data_recovery_s"].as_f64().unwrap() < late_s as f64);
        assert_eq!(summary["architectures"]["rest"]["data_current_s"], 0.0);
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(report.contains("| data current |"), "{report}");
        // REST has no backlog to drain: not applicable, not missing.
        let rest_row = report.lines().find(|l| l.starts_with("| rest | ")).unwrap();
        assert!(rest_row.contains("| n/a |"), "{rest_row}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    // A backlog that never drained within the run says so.
    let run = Synthetic {
        drain_s: 1_000,
        ..Synthetic::default()
    };
    let dir = folder("never-drained");
    run.write(&dir).unwrap();
    let summary = summary_of(&dir);
    assert!(summary["architectures"]["kafka"]["drain_s"].is_null());
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let kafka_row = report
        .lines()
        .find(|l| l.starts_with("| kafka | "))
        .unwrap();
    assert!(kafka_row.contains("| never |"), "{kafka_row}");
    let _ = std::fs::remove_dir_all(&dir);
}
