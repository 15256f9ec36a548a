//! `faultline stack up` as a person runs it: every fault kind injected and
//! verified on a real stack; Ctrl-C (once, and twice) in the middle of a
//! freeze; a runner killed with SIGKILL and cleaned up after.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Runner {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// What the runner wrote to stderr, each line with the seconds since
    /// it started: shown in the test's output, and in a failure's message.
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    started: Instant,
    dir: PathBuf,
}

impl Runner {
    fn start(name: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir()
            .join("faultline-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["stack", "up", "--dir"])
            .arg(&dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("faultline starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr);
        let reader = BufReader::new(child.stderr.take().unwrap());
        // A thread a test spawns writes into that test's captured output.
        let stderr_reader = std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                let line = format!("[{:6.2} s] {line}", started.elapsed().as_secs_f64());
                eprintln!("{line}");
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
            started,
            dir,
        }
    }

    /// Every line the runner wrote to stderr, once it has exited.
    fn stderr(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().unwrap();
        }
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for a stdout line containing `text`; returns every line so far.
    /// A runner that exits first, or says nothing in time, fails the test
    /// with its exit status and its stderr.
    fn wait_for(&mut self, text: &str, limit: Duration) -> String {
        let started = Instant::now();
        let mut seen = String::new();
        let mut closed = false;
        while started.elapsed() < limit && !closed {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(text) {
                        return seen;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        let status = if closed {
            format!("{:?}", self.wait_exit(Duration::from_secs(10)))
        } else {
            "still running".to_string()
        };
        panic!(
            "no line with {text:?} after {:.1} s of the runner ({status}); its stdout:\n{seen}\nits stderr:\n{}",
            self.started.elapsed().as_secs_f64(),
            if closed {
                self.stderr()
            } else {
                self.stderr.lock().unwrap().join("\n")
            }
        );
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("faultline did not exit within {limit:?}");
    }

    fn json(&self, file: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(file)).expect(file);
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        faultline::clean::clean(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every pid recorded in a pid file under `dir`, with the processes the
/// postmaster started.
fn recorded_pids(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return pids;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            pids.extend(recorded_pids(&path));
        } else if path.extension().is_some_and(|e| e == "pid")
            && path.file_name().is_some_and(|n| n != "runner.pid")
        {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                pids.push(pid);
                pids.extend(faultline_stack::process::descendants(pid));
            }
        }
    }
    pids
}

/// `NAME=value` lines printed by `stack up`.
fn variable(lines: &str, name: &str) -> String {
    lines
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in\n{lines}"))
        .to_string()
}

/// A plain HTTP/1.1 POST of a JSON body; returns the status line's code.
fn post_json(url: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let (host, path) = addr.split_once('/').map_or((addr, "/"), |(h, p)| (h, p));
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn count_rows(url: &str) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query_one("SELECT count(*) FROM location_events", &[])
            .await
            .unwrap()
            .get(0)
    })
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

fn wait_all_gone(pids: &[i32], limit: Duration) -> Vec<i32> {
    let started = Instant::now();
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || started.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_fault_kind_is_injected_verified_ended_and_verified() {
    let mut runner = Runner::start(
        "cli-faults",
        &[
            "--fault",
            "db-freeze@1s+1s",
            "--fault",
            "db-crash@3s+1s",
            "--fault",
            // A crashed database's recovery is verified when it answers
            // again: up to 2 s on a busy machine before the next may start.
            "db-stop@7s+1s",
            "--fault",
            "db-latency:150ms:10ms@9s+1s",
            "--fault",
            "db-blackhole@11s+1s",
            "--fault",
            // Its recovery is verified end to end: the producer delivers
            // again, which can take a few seconds after the broker is back.
            "broker-kill@13s+1s",
            "--fault",
            "consumer-kill@19s+1s",
            "--fault",
            "consumer-partition@21s+1s",
            "--exit-after-faults",
        ],
    );
    let ready = runner.wait_for("faults on the stack's clock", Duration::from_secs(60));
    let startup: f64 = ready
        .lines()
        .find_map(|l| {
            l.strip_prefix("stack ready in ")?
                .strip_suffix(" s")?
                .parse()
                .ok()
        })
        .unwrap();
    eprintln!("stack start-up: {startup} s");
    assert!(startup < 15.0, "start-up took {startup} s");
    let pids = recorded_pids(&runner.dir);
    assert!(pids.len() >= 6, "only {} processes recorded", pids.len());
    // The services get the database's address in their environment, not on
    // their command line, where `ps` would show a password in it.
    let services: Vec<String> = pids
        .iter()
        .map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains("faultline-"))
        .collect();
    assert!(services.len() >= 3, "{services:?}");
    for cmdline in &services {
        assert!(!cmdline.contains("postgres://"), "{cmdline}");
    }
    // Write through the REST service and read it back from the database.
    let rest = variable(&ready, "FAULTLINE_REST_URL");
    let event = r#"{"event_id":"0b0e7a55-0000-4000-8000-000000000001","driver_id":"driver_1","lat":37.78,"lng":-122.41,"sent_at":"2026-01-01T00:00:00Z"}"#;
    assert_eq!(post_json(&format!("{rest}/events"), event), 201);
    assert_eq!(count_rows(&variable(&ready, "FAULTLINE_DATABASE_URL")), 1);

    let status = runner.wait_exit(Duration::from_secs(90));
    assert!(status.success());
    let faults = runner.json("faults.json");
    let faults = faults.as_array().unwrap();
    assert_eq!(faults.len(), 8);
    for record in faults {
        assert_eq!(record["verified"], true, "{record}");
        let (planned, actual) = (
            record["planned_start_s"].as_f64().unwrap(),
            record["actual_start_s"].as_f64().unwrap(),
        );
        assert!((actual - planned).abs() < 1.0, "{record}");
        eprintln!(
            "{:<18} effect {:>6.0} ms, recovery {:>6.0} ms",
            record["kind"].as_str().unwrap(),
            record["effect_ms"].as_f64().unwrap(),
            record["recovery_ms"].as_f64().unwrap()
        );
    }
    assert_eq!(runner.json("status.json")["status"], "complete");
    let left = wait_all_gone(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn ctrl_c_during_a_freeze_thaws_stops_everything_and_marks_the_run_incomplete() {
    let mut runner = Runner::start("cli-sigint", &["--fault", "db-freeze@1s+120s"]);
    runner.wait_for("stack ready in", Duration::from_secs(60));
    let pids = recorded_pids(&runner.dir);
    runner.wait_for(
        "fault db-freeze on postgres: injected",
        Duration::from_secs(30),
    );
    kill(Pid::from_raw(runner.child.id() as i32), Signal::SIGINT).unwrap();
    let status = runner.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let left = wait_all_gone(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let run = runner.json("status.json");
    assert_eq!(run["status"], "incomplete", "{run}");
    let faults = runner.json("faults.json");
    let freeze = &faults[0];
    assert!(
        freeze["detail"].as_str().unwrap().contains("interrupted"),
        "{freeze}"
    );
    // The database was thawed before it was stopped: its end was verified.
    assert_eq!(freeze["verified_end"], true, "{freeze}");
}

#[test]
fn a_second_ctrl_c_hurries_the_teardown_and_still_leaves_nothing() {
    let mut runner = Runner::start("cli-sigint-twice", &["--fault", "db-freeze@1s+120s"]);
    runner.wait_for("stack ready in", Duration::from_secs(60));
    let pids = recorded_pids(&runner.dir);
    assert!(pids.len() >= 5, "{pids:?}");
    runner.wait_for(
        "fault db-freeze on postgres: injected",
        Duration::from_secs(30),
    );
    let runner_pid = Pid::from_raw(runner.child.id() as i32);
    kill(runner_pid, Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    kill(runner_pid, Signal::SIGINT).unwrap();
    let status = runner.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let left = wait_all_gone(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert_eq!(runner.json("status.json")["status"], "incomplete");
}

#[test]
fn a_runner_killed_with_sigkill_is_cleaned_up_by_faultline_clean() {
    let mut runner = Runner::start("cli-sigkill", &["--fault", "db-freeze@1s+120s"]);
    runner.wait_for("stack ready in", Duration::from_secs(60));
    runner.wait_for(
        "fault db-freeze on postgres: injected",
        Duration::from_secs(30),
    );
    let pids = recorded_pids(&runner.dir);
    runner.child.kill().unwrap();
    runner.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pids.iter().any(|p| alive(*p)), "nothing was left to clean");

    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("clean")
        .arg(&runner.dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("stopped"), "{said}");
    let left = wait_all_gone(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left after clean: {left:?}");
}

#[test]
fn an_external_database_refuses_process_faults_and_takes_link_faults() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir()
        .join("faultline-tests")
        .join(format!("cli-external-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let postgres = runtime
        .block_on(faultline_stack::Postgres::start(&dir.join("pg")))
        .unwrap();
    let database = format!("external:{}", postgres.url());

    let mut refused = Runner::start(
        "cli-external-refused",
        &[
            "--database",
            &database,
            "--kafka",
            "buffered",
            "--fault",
            "db-crash@1s+1s",
        ],
    );
    let status = refused.wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "a db-crash on an external database was accepted"
    );
    let stderr = refused.stderr();
    assert!(stderr.contains("the database is external"), "{stderr}");

    let mut linked = Runner::start(
        "cli-external-linked",
        &[
            "--database",
            &database,
            "--kafka",
            "buffered",
            "--fault",
            "db-blackhole@1s+1s",
            "--exit-after-faults",
        ],
    );
    assert!(linked.wait_exit(Duration::from_secs(60)).success());
    assert_eq!(linked.json("faults.json")[0]["verified"], true);
    // The external server is not the lab's: it is still running.
    assert!(
        runtime
            .block_on(postgres.probe(Duration::from_secs(2)))
            .is_ok()
    );
    drop(postgres);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stack_down_from_another_terminal_tears_a_stack_up_down() {
    let mut runner = Runner::start("cli-down", &["--kafka", "buffered"]);
    runner.wait_for("Ctrl-C to tear it down", Duration::from_secs(120));
    let pids = recorded_pids(&runner.dir);
    assert!(pids.len() >= 4, "postgres, broker and services: {pids:?}");
    let down = |dir: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["stack", "down", "--dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let said = down(&runner.dir);
    assert!(said.contains("stopping the stack in"), "{said}");
    // The `stack up` tore its stack down as on Ctrl-C, and nothing is left.
    let status = runner.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert_eq!(runner.json("status.json")["status"], "complete");
    assert!(wait_all_gone(&pids, Duration::from_secs(10)).is_empty());
    assert!(!runner.dir.join("runner.pid").exists());
    assert!(down(&runner.dir).contains("no stack was up"));
}
