//! Command faults: shell commands on the run's clock, their output kept
//! and bounded, an `end` that fails leaving the fault not over.

use super::*;

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
