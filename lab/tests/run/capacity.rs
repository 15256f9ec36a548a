//! Capacity: stepped rates and their knees, a consumer's drain rate beside
//! COPY, group commit on a slow database link.

use super::*;

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
