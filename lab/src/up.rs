//! `faultline stack up`: the stack for a person to explore, optionally with
//! faults on its clock.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use faultline::fault;
use faultline::plan::{DatabaseTarget, FaultSpec, StackPlan};
use faultline::run_folder::rows::FaultRecord;
use faultline::shutdown::Shutdown;
use faultline::stack::LabStack;
use faultline_services::consumer::Mode;
use faultline_stack::BrokerTarget;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Folder for the cluster, the broker and the logs (default: a new folder
    /// under .faultline/).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Bring up the stack this scenario declares (its database, broker and
    /// architectures, `service` ones with their processes) instead of REST
    /// and one Kafka path per `--kafka` mode.
    #[arg(long, conflicts_with_all = ["partitions", "kafka", "broker", "database"])]
    scenario: Option<PathBuf>,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Consumer modes to run, each with its own producer, topic and consumer.
    #[arg(long = "kafka", value_enum, value_delimiter = ',', default_values = ["buffered", "drop"])]
    kafka: Vec<Mode>,
    /// Broker: auto (Apache Kafka if on PATH, else nisshi/tansu), kafka,
    /// nisshi, nisshi-sqlite (its log in SQLite), or external:HOST:PORT.
    #[arg(long, default_value = "auto")]
    broker: BrokerTarget,
    /// Database: local (an ephemeral cluster) or external:postgres://...
    #[arg(long, default_value = "local")]
    database: DatabaseTarget,
    /// A fault on the stack's clock, KIND@START+DURATION (repeatable), e.g.
    /// db-crash@30s+60s, db-latency:200ms:50ms@10s+20s or, for a process of
    /// a `--scenario`'s service, process-kill:orders-api:api@5s+3s.
    #[arg(long = "fault")]
    faults: Vec<FaultSpec>,
    /// Tear down once the last fault has ended instead of waiting for Ctrl-C.
    #[arg(long)]
    exit_after_faults: bool,
    /// Write the URLs as shell variables (FAULTLINE_REST_URL=...) to this file.
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Write a Prometheus configuration that scrapes every service of the
    /// stack to this file (`scripts/observe FILE` starts Prometheus with it).
    #[arg(long, value_name = "FILE")]
    prometheus_config: Option<PathBuf>,
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("could not write {}", path.display()))
}

fn describe(record: &FaultRecord, started: bool) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
    if started {
        format!(
            "fault {} on {}: injected at {:.2} s (planned {:.2} s), effect {} ({})",
            record.kind,
            record.target,
            record.actual_start_s.unwrap_or(f64::NAN),
            record.planned_start_s,
            if record.verified_start {
                "verified"
            } else {
                "NOT verified"
            },
            ms(record.effect_ms),
        )
    } else {
        format!(
            "fault {} on {}: ended at {:.2} s (planned {:.2} s), recovery {} ({})",
            record.kind,
            record.target,
            record.actual_end_s.unwrap_or(f64::NAN),
            record.planned_end_s,
            if record.verified_end {
                "verified"
            } else {
                "NOT verified"
            },
            ms(record.recovery_ms),
        )
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // The scenario first: an invalid one starts nothing.
    let plan = match &args.scenario {
        Some(file) => {
            let (experiment, _) =
                faultline::validate::load(file).map_err(faultline::validate::Invalid)?;
            StackPlan::of(&experiment)
        }
        None => {
            let mut plan = StackPlan::standard(&args.kafka, args.partitions);
            plan.broker = args.broker;
            plan.database = args.database;
            plan
        }
    };
    let shutdown = Shutdown::on_signals();
    let work = PathBuf::from(faultline::WORK_DIR);
    let leftovers = faultline::clean::clean(&work);
    if !leftovers.is_empty() {
        eprintln!(
            "faultline: stopped {} process(es) left behind by an earlier run",
            leftovers.len()
        );
    }
    let dir = args.dir.unwrap_or_else(|| {
        work.join(format!(
            "stack-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ))
    });
    let dir = std::path::absolute(&dir).context("no current directory")?;
    faultline_stack::create_dir(&dir)?;
    // Owned while it is up: another `stack up` or `run` cleaning
    // `.faultline/` leaves it alone, and `stack down` finds whom to ask.
    faultline::clean::mark_owned(&dir)?;
    let status_path = dir.join("status.json");
    write_json(&status_path, &serde_json::json!({ "status": "starting" }))?;
    eprintln!("faultline: bringing the stack up in {}", dir.display());

    let mut stack = LabStack::up(&plan, &dir, |line| eprintln!("faultline: {line}"))
        .await
        .context("could not bring the stack up")?;
    if let Err(problem) = fault::check(&args.faults, &stack) {
        anyhow::bail!("{problem}");
    }
    println!("stack ready in {:.1} s", stack.startup.as_secs_f64());
    let vars = stack.variables();
    for (name, value) in &vars {
        println!("{name}={value}");
    }
    if let Some(path) = &args.env_file {
        let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    if let Some(path) = &args.prometheus_config {
        let names: Vec<String> = stack
            .rest
            .iter()
            .map(|r| r.name.clone())
            .chain(stack.kafka.iter().map(|k| k.name.clone()))
            .chain(stack.services.iter().map(|s| s.name.clone()))
            .collect();
        let targets: Vec<faultline::live::SdTarget> = stack
            .scrape_targets(&names)
            .iter()
            .map(|t| faultline::live::SdTarget::of(t, None))
            .collect();
        std::fs::write(path, faultline::live::prometheus_for_stack(&targets))
            .with_context(|| format!("could not write {}", path.display()))?;
        println!("Prometheus configuration in {}", path.display());
    }
    write_json(&status_path, &serde_json::json!({ "status": "running" }))?;

    let t0 = Instant::now();
    let mut finished = true;
    let mut records = Vec::new();
    if !args.faults.is_empty() {
        println!("faults on the stack's clock (t=0 now):");
        for spec in &args.faults {
            println!("  {spec}");
        }
        let (done, complete) = fault::run_timeline(
            &mut stack,
            &args.faults,
            t0,
            &shutdown.graceful,
            |records, i, started| {
                println!("{}", describe(&records[i], started));
            },
        )
        .await;
        records = done;
        finished = complete;
        write_json(&dir.join("faults.json"), &records)?;
    }
    if finished && !args.exit_after_faults {
        println!("Ctrl-C to tear it down.");
        shutdown.graceful.cancelled().await;
    }
    let unverified: Vec<&str> = records
        .iter()
        .filter(|r| !r.verified)
        .map(|r| r.kind.as_str())
        .collect();
    let (status, reason) = if !finished {
        (
            "incomplete",
            "interrupted before every fault ended".to_string(),
        )
    } else if !unverified.is_empty() {
        (
            "incomplete",
            format!("faults not verified: {}", unverified.join(", ")),
        )
    } else {
        ("complete", String::new())
    };
    eprintln!("faultline: tearing the stack down");
    let teardown = Instant::now();
    let force = shutdown.force.clone();
    tokio::task::spawn_blocking(move || stack.down(&|| force.is_cancelled()))
        .await
        .context("the teardown failed")?;
    write_json(
        &status_path,
        &serde_json::json!({ "status": status, "reason": reason }),
    )?;
    eprintln!(
        "faultline: stack down in {:.1} s ({status}{}{reason})",
        teardown.elapsed().as_secs_f64(),
        if reason.is_empty() { "" } else { ": " }
    );
    let _ = std::fs::remove_file(dir.join(faultline::clean::RUNNER_PID));
    Ok(())
}

/// `stack down`: asks the `stack up` that owns `dir` (or each stack folder
/// under `.faultline/`) to tear its stack down, as its Ctrl-C would, waits
/// for it, then stops anything left there. How many stacks it found.
pub fn down(dir: Option<&std::path::Path>) -> anyhow::Result<usize> {
    /// How long a `stack up` gets to tear its stack down before it is
    /// stopped outright.
    const GRACE: std::time::Duration = std::time::Duration::from_secs(60);
    let dirs: Vec<PathBuf> = match dir {
        Some(dir) => {
            anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
            vec![dir.to_path_buf()]
        }
        None => std::fs::read_dir(faultline::WORK_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("stack-"))
            })
            .collect(),
    };
    let mut found = 0;
    for dir in dirs {
        let stopped = match faultline::clean::owner(&dir) {
            Some(pid) => {
                found += 1;
                println!(
                    "stopping the stack in {} (stack up, pid {pid})",
                    dir.display()
                );
                let alive = || faultline::clean::running(pid);
                let signal = |signal| {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
                };
                signal(nix::sys::signal::Signal::SIGINT);
                let started = Instant::now();
                while alive() && started.elapsed() < GRACE {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                if alive() {
                    eprintln!("faultline: stack up did not finish in {GRACE:?}; stopping it");
                    signal(nix::sys::signal::Signal::SIGKILL);
                }
                faultline::clean::clean(&dir)
            }
            None => {
                let stopped = faultline::clean::clean(&dir);
                if !stopped.is_empty() {
                    found += 1;
                }
                stopped
            }
        };
        if !stopped.is_empty() {
            println!(
                "stopped {} leftover process(es) in {}",
                stopped.len(),
                dir.display()
            );
        }
    }
    Ok(found)
}
