//! The newcomer's first minutes: what `faultline` says with no arguments,
//! what each common setup problem tells them to do, and that the files the
//! README and the flake rely on are current.

use std::path::Path;
use std::process::Command;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn plan_prints_what_a_scenario_lowers_to_and_refuses_an_invalid_one() {
    let output = faultline()
        .args(["plan", "experiments/db-crash.toml"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["experiment"], "db-crash");
    assert_eq!(plan["duration_s"], 300.0);
    assert_eq!(plan["load"]["requests"], 15_000);
    assert_eq!(plan["faults"][0]["kind"], "db-crash");
    assert_eq!(plan["faults"][0]["start_s"], 90.0);
    assert_eq!(plan["stack"]["architectures"].as_array().unwrap().len(), 4);
    let k6 = faultline()
        .args(["plan", "experiments/db-latency.toml", "--driver", "k6"])
        .current_dir(root())
        .output()
        .unwrap();
    let k6: serde_json::Value = serde_json::from_slice(&k6.stdout).unwrap();
    assert_eq!(k6["load"]["driver"], "k6");
    // k6 retries as the native driver does: the shipped scenarios whose
    // clients retry take it too.
    for scenario in [
        "experiments/db-crash.toml",
        "experiments/db-crash-quick.toml",
    ] {
        let planned = faultline()
            .args(["plan", scenario, "--driver", "k6"])
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(planned.status.code(), Some(0), "{scenario}: {planned:?}");
    }

    let dir = std::env::temp_dir().join(format!("faultline-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"b\"\nduration = \"soon\"\n").unwrap();
    let output = faultline().arg("plan").arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("bad.toml:2") && said.contains("duration"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_arguments_tell_a_newcomer_what_to_run_first() {
    let output = faultline().output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    for needle in [
        "First time here?",
        "scripts/experiment experiments/db-crash-quick.toml",
        "nix run .#experiment",
        "report.html",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn a_wrong_command_line_exits_64_and_nothing_offers_an_internal_command() {
    // A missing argument is not an invalid scenario (2).
    let missing = faultline().arg("run").output().unwrap();
    assert_eq!(missing.status.code(), Some(64), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("<FILE>"));
    let unknown = faultline()
        .args(["run", "--fast", "x.toml"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(64), "{unknown:?}");
    let help = faultline().arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    // The run's watchdog is no command anyone types: no completion offers
    // it, and the manual names no page that is not there.
    for shell in ["bash", "zsh", "fish"] {
        let script = faultline().args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&script.stdout);
        assert!(
            script.contains("sweep") && !script.contains("watchdog"),
            "{shell}"
        );
    }
    let man = faultline().arg("man").output().unwrap();
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(!man.contains("(1)"), "a page named:\n{man}");
    for section in [
        "FAULTLINE RUN",
        "FAULTLINE STACK UP",
        "FAULTLINE STACK DOWN",
    ] {
        assert!(man.contains(&format!(".SH \"{section}\"")), "{section}");
    }
    assert!(
        man.contains("\\-\\-resume"),
        "sweep's options are in the page"
    );
}

#[test]
fn a_missing_broker_says_how_to_get_one() {
    let empty = std::env::temp_dir().join(format!("faultline-no-broker-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let output = faultline()
        .args(["stack", "up", "--exit-after-faults", "--kafka", "buffered"])
        .env("PATH", "/usr/bin:/bin")
        .env("FAULTLINE_CACHE", &empty)
        .env_remove("FAULTLINE_BROKER_BIN")
        .current_dir(&empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Kafka-protocol broker") && stderr.contains("scripts/setup"),
        "{stderr}"
    );
    // Nothing is left running: the database it had started was stopped.
    let clean = faultline()
        .arg("clean")
        .arg(empty.join(".faultline"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&clean.stdout).trim(),
        "stopped 0 leftover process(es)"
    );
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn a_reports_folder_that_cannot_be_written_is_named_before_anything_starts() {
    // /sys refuses new folders, even to root.
    let started = std::time::Instant::now();
    let output = faultline()
        .arg("run")
        .arg(root().join("experiments/db-crash-quick.toml"))
        .args(["--out", "/sys/faultline-reports"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot write the run folder /sys/faultline-reports/")
            && stderr.contains("--out DIR"),
        "{stderr}"
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "it started the stack first"
    );
}

#[test]
fn the_flake_lock_pins_exactly_the_documented_nixpkgs() {
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("flake.lock")).unwrap())
            .expect("flake.lock is JSON");
    let want = serde_json::json!({
        "nodes": {
            "nixpkgs": {
                "locked": {
                    "lastModified": 1784280462u64,
                    "narHash": "sha256-DtoqIqM7VkR6NxAkcLpMwmi02USwWb3JdmNGLyhthc0=",
                    "owner": "NixOS",
                    "repo": "nixpkgs",
                    "rev": "293d6abedf0478e681a4dfcfcb35b30fc796a32f",
                    "type": "github"
                },
                "original": { "owner": "NixOS", "ref": "nixos-26.05", "repo": "nixpkgs", "type": "github" }
            },
            "root": { "inputs": { "nixpkgs": "nixpkgs" } }
        },
        "root": "root",
        "version": 7
    });
    assert_eq!(lock, want);
    let flake = std::fs::read_to_string(root().join("flake.nix")).unwrap();
    assert!(flake.contains(r#"inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";"#));
    // The flake's rustc floor and version are the workspace's.
    assert!(flake.contains("rustVersion = cargoToml.workspace.package.rust-version;"));
    assert!(flake.contains("version = cargoToml.workspace.package.version;"));
}

#[test]
fn the_scenario_reference_is_current() {
    let shipped = std::fs::read_to_string(root().join("docs/scenarios.md")).unwrap();
    assert!(
        shipped == faultline::validate::reference(),
        "docs/scenarios.md is stale: faultline schema --markdown > docs/scenarios.md"
    );
}

#[test]
fn every_shipped_scenario_is_valid() {
    let output = faultline()
        .arg("validate")
        .args(
            std::fs::read_dir(root().join("experiments"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml")),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn output_piped_into_a_closed_reader_ends_quietly() {
    // `faultline schema --markdown | head -1`: the reader has gone.
    let mut child = faultline()
        .args(["schema", "--markdown"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn completions_cover_every_command_and_parse_in_their_shell() {
    let output = faultline().args(["completions", "bash"]).output().unwrap();
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).unwrap();
    for word in [
        "sweep",
        "validate",
        "--resume",
        "--fail-on-regression",
        "--format",
    ] {
        assert!(script.contains(word), "{word} is not completed");
    }
    // bash parses it.
    let path = std::env::temp_dir().join(format!("faultline-completions-{}", std::process::id()));
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_file(&path);
    // An unknown shell is a usage error that names the known ones.
    let output = faultline().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bash"));
}

#[test]
fn the_version_names_its_build_and_the_manual_page_its_commands() {
    let version = faultline().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(&format!("faultline {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(version.contains("built with rustc"), "{version}");
    // Both clients reach external clusters over TLS (a test in run.rs
    // connects the services to a server that accepts nothing else).
    assert!(
        version.contains("librdkafka (bundled) with TLS"),
        "{version}"
    );
    assert!(version.contains("PostgreSQL client with TLS"), "{version}");
    let man = faultline().arg("man").output().unwrap();
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH faultline 1"), "{man}");
    for command in ["run", "sweep", "validate", "compare", "clean"] {
        assert!(man.contains(command), "{command} is not in the manual page");
    }
}

/// The README's picture of the run folder names every column each Parquet
/// file has, and no column of the audit that it lacks: the columns' one home
/// is `run_folder::frames`.
#[test]
fn the_readme_names_the_run_folders_columns_as_the_files_have_them() {
    use faultline::run_folder::{METRICS, REQUESTS, STORED};
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = |file: &str| -> String {
        let start = readme
            .find(&format!("  {file}  "))
            .unwrap_or_else(|| panic!("the README's run folder names {file}"));
        let rest = &readme[start + file.len() + 2..];
        // Up to the next file of the folder.
        let end = rest
            .find(".parquet ")
            .or_else(|| rest.find("summary.json"))
            .unwrap_or(rest.len());
        rest[..end].to_string()
    };
    for frame in [REQUESTS, STORED, METRICS] {
        let text = block(frame.file);
        for (column, _) in frame.columns {
            assert!(
                text.contains(column),
                "README.md: {} does not name its column {column}",
                frame.file
            );
        }
    }
    let stored = block(STORED.file);
    let listed = stored.split_once(':').unwrap().1;
    for name in listed.split(',').map(str::trim) {
        let name = name.split_whitespace().next().unwrap_or_default();
        assert!(
            STORED.columns.iter().any(|(column, _)| *column == name),
            "README.md: {} names {name:?}, which the file does not have",
            STORED.file
        );
    }
}
