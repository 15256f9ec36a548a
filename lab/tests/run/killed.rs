//! Processes that die: a service during the run, the runner itself killed
//! outright (its stack stopped, its rows kept, no fault left behind).

use super::*;

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
