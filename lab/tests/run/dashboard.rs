//! The live dashboard while a run goes, and its end.

use super::*;

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
    let mut said = String::new();
    let addr = loop {
        let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(60)) else {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!("the dashboard's address was not printed ({status}):\n{said}");
        };
        said.push_str(&line);
        said.push('\n');
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
