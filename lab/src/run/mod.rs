//! `faultline run`: one scenario from TOML to a run folder of raw data, its
//! summary and its report.
//!
//! The scenario is validated and lowered to a [`Plan`]; each repetition
//! ([`repetition::Repetition`]) brings up a fresh stack, drives every
//! architecture on one clock while the faults play out and the metrics are
//! scraped, drains, audits the database and tears down. Rows go to the
//! Parquet files of the run folder as each repetition ends; `manifest.json`
//! says how it went.

pub mod drain;
pub mod progress;
pub mod repetition;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::experiment::{DriverSetting, Experiment};
use crate::plan::Plan;
use crate::run_folder::{self, Manifest, Status, Versions, frames, manifest::host};
use crate::shutdown::Shutdown;
use progress::Progress;
use repetition::Repetition;

/// How a run is shown and where it goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parent of the run folder.
    pub out: PathBuf,
    /// Overrides the scenario's driver.
    pub driver: Option<DriverSetting>,
    /// No progress lines.
    pub quiet: bool,
    /// The run folder's name under `out`; by default the start time and
    /// the scenario's name.
    pub folder: Option<String>,
    /// Serve the live view here while the run goes (`--dashboard`).
    pub dashboard: Option<std::net::SocketAddr>,
    /// Write a Prometheus configuration for the dashboard's series and the
    /// run's services here (`--prometheus-config`).
    pub prometheus_config: Option<PathBuf>,
    /// A sweep's live view, already served: the run shows itself there.
    pub live: Option<std::sync::Arc<crate::live::Live>>,
}

/// How long the live view stays up once the run is over, for a last look
/// (the page keeps what it showed after).
pub(crate) const DASHBOARD_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

fn command_version(program: &Path, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The Parquet files of a run folder: each repetition's rows are written
/// as parts of their own when it ends (`run_folder::parts`), and put
/// together when the run does.
pub struct Sinks {
    dir: PathBuf,
}

impl Sinks {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join(run_folder::parts::PARTS))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The run folder.
    fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where repetition `number`'s rows of `frame` go.
    fn part(&self, frame: &frames::Frame, number: u32) -> PathBuf {
        run_folder::parts::part(&self.dir, frame, number)
    }

    fn finish(self) -> anyhow::Result<()> {
        run_folder::parts::assemble(&self.dir, &|_| true)?;
        Ok(())
    }
}

/// Creates the run folder `out/<id>`, or `out/<id>-2`, `-3`, … when a run
/// of the same scenario started in the same second; returns its id and path.
pub(crate) fn create_run_dir(out: &Path, id: &str) -> anyhow::Result<(String, PathBuf)> {
    let unwritable = |dir: &Path| {
        format!(
            "cannot write the run folder {}: choose a folder you can write to with --out DIR \
             (the default is ./reports)",
            dir.display()
        )
    };
    std::fs::create_dir_all(out).with_context(|| unwritable(&out.join(id)))?;
    for n in 1.. {
        let run_id = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let dir = out.join(&run_id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((run_id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| unwritable(&dir)),
        }
    }
    unreachable!("the loop returns")
}

/// Runs the scenario at `path`; returns the run folder.
pub async fn run(path: &Path, options: RunOptions, shutdown: Shutdown) -> anyhow::Result<PathBuf> {
    let (experiment, text) = crate::validate::load(path).map_err(crate::validate::Invalid)?;
    let experiment = crate::validate::with_driver(
        experiment,
        &text,
        &path.display().to_string(),
        options.driver,
    )
    .map_err(crate::validate::Invalid)?;
    if let Some(sweep) = &experiment.sweep {
        Progress::of(&options).say(&format!(
            "the scenario has a [sweep] of {} points; this runs it as written \
             (`faultline sweep {}` runs every point)",
            crate::plan::grid::points_in(sweep),
            path.display()
        ));
    }
    run_scenario(&experiment, &text, options, shutdown).await
}

/// The live view of the run: a sweep's, already served, or with
/// `--dashboard` its own, served (and its Prometheus configuration written,
/// when asked for); `None` without either.
async fn live_view(
    options: &RunOptions,
    plan: &Plan,
    run_id: &str,
    progress: &Progress,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<std::sync::Arc<crate::live::Live>>> {
    Ok(match (&options.live, options.dashboard) {
        (Some(live), _) => {
            live.new_run(
                &plan.experiment,
                run_id,
                &plan.architectures(),
                plan.duration.as_secs_f64(),
                plan.runs(),
            );
            Some(live.clone())
        }
        (None, Some(addr)) => {
            let live = crate::live::Live::new(
                &plan.experiment,
                run_id,
                &plan.architectures(),
                plan.duration.as_secs_f64(),
                plan.runs(),
            );
            let bound = crate::live::serve(addr, live.clone(), shutdown.force.clone()).await?;
            progress.say(&format!(
                "dashboard at http://{bound}/ (the lab's series at http://{bound}/metrics)"
            ));
            if let Some(path) = &options.prometheus_config {
                std::fs::write(path, crate::live::prometheus_for_run(bound, run_id))
                    .with_context(|| format!("could not write {}", path.display()))?;
                progress.say(&format!(
                    "Prometheus configuration in {} (scripts/observe {} starts one)",
                    path.display(),
                    path.display()
                ));
            }
            Some(live)
        }
        (None, None) => None,
    })
}

/// Runs a validated scenario whose text is `text`; returns the run folder.
pub async fn run_scenario(
    experiment: &Experiment,
    text: &str,
    options: RunOptions,
    shutdown: Shutdown,
) -> anyhow::Result<PathBuf> {
    let plan = Plan::of(experiment, options.driver);
    let progress = Progress::of(&options);
    let k6 = match plan.load.driver {
        DriverSetting::K6 => Some(crate::k6::find().context(
            "the k6 driver needs k6: run scripts/setup, use the Nix dev shell, or put k6 on PATH",
        )?),
        DriverSetting::Native => None,
    };
    let started_at = chrono::Utc::now();
    let folder = options.folder.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            started_at.format("%Y%m%dT%H%M%SZ"),
            plan.experiment
        )
    });
    let (run_id, dir) = create_run_dir(&options.out, &folder)?;
    let dir = std::path::absolute(&dir)?;
    // Passwords and secrets stay out of the run folder: `${NAME}` in the
    // scenario keeps them in the environment; written inline, they are
    // redacted here.
    std::fs::write(
        dir.join(run_folder::EXPERIMENT),
        crate::secrets::redact_scenario(text, experiment),
    )?;
    let mut manifest = manifest(&plan, run_id.clone(), started_at, experiment.seed);
    let manifest_path = dir.join(run_folder::MANIFEST);
    run_folder::save(&manifest, &manifest_path)?;
    progress.say(&format!("run {run_id} → {}", dir.display()));

    // A runner killed outright leaves no stack behind: a watchdog stops it.
    crate::clean::start_watchdog(&std::path::absolute(
        PathBuf::from(crate::WORK_DIR).join("runs"),
    )?);
    let live = live_view(&options, &plan, &run_id, &progress, &shutdown).await?;
    let mut sinks = Sinks::create(&dir)?;
    let mut reasons = Vec::new();
    let mut failed = false;
    for number in plan.order() {
        if shutdown.graceful.is_cancelled() {
            reasons.push(format!("interrupted before repetition {number}"));
            break;
        }
        let repetition = Repetition {
            plan: &plan,
            number,
            k6: k6.as_deref(),
            stack_dir: stack_dir(&dir, number).and_then(|stack| link_stack(&stack, &dir))?,
            progress: &progress,
            shutdown: &shutdown,
            live: live.clone(),
            run_dir: dir.clone(),
        };
        match repetition.run(&mut sinks).await {
            Ok(summary) => {
                manifest.versions.broker.clone_from(&summary.broker);
                reasons.extend(
                    summary
                        .reasons
                        .iter()
                        .map(|r| format!("repetition {number}: {r}")),
                );
                manifest.repetitions.push(summary);
            }
            Err(error) => {
                reasons.push(format!("repetition {number} failed: {error:#}"));
                failed = true;
                break;
            }
        }
        run_folder::save(&manifest, &manifest_path)?;
    }
    sinks.finish()?;
    manifest.status = if failed {
        Status::Failed
    } else if reasons.is_empty()
        && manifest.repetitions.len() == plan.runs() as usize
        && manifest
            .repetitions
            .iter()
            .all(|r| r.status == Status::Complete)
    {
        Status::Complete
    } else {
        Status::Incomplete
    };
    manifest.reasons = reasons;
    manifest.finished_at = Some(chrono::Utc::now().to_rfc3339());
    run_folder::save(&manifest, &manifest_path)?;
    report(&dir, &options, &progress);
    // A sweep's dashboard goes on to its next point.
    if let Some(live) = live.as_ref().filter(|_| options.live.is_none()) {
        let page = dir.join(run_folder::REPORT_HTML);
        live.end(
            &manifest.status.to_string(),
            page.is_file().then(|| page.display().to_string()),
        );
        progress.say(&format!(
            "the dashboard stays up {} s more for a last look",
            DASHBOARD_LINGER.as_secs()
        ));
        tokio::time::sleep(DASHBOARD_LINGER).await;
    }
    progress.say(&format!(
        "run {}{}",
        manifest.status,
        if manifest.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", manifest.reasons.join("; "))
        }
    ));
    Ok(dir)
}

/// The manifest of a run that has just started.
fn manifest(
    plan: &Plan,
    run_id: String,
    started_at: chrono::DateTime<chrono::Utc>,
    seed: u64,
) -> Manifest {
    let postgres_bin = faultline_stack::postgres::find_binaries().ok();
    Manifest {
        schema: run_folder::summary::SCHEMA,
        experiment: plan.experiment.clone(),
        run_id,
        status: Status::Incomplete,
        // Replaced when the run ends; says so if it never does.
        reasons: vec!["the run is in progress".into()],
        started_at: started_at.to_rfc3339(),
        finished_at: None,
        seed,
        driver: plan.load.driver,
        architectures: plan.architectures(),
        versions: Versions {
            faultline: faultline_services::VERSION.to_string(),
            rustc: env!("FAULTLINE_RUSTC").to_string(),
            postgres: postgres_bin
                .map(|bin| command_version(&bin.join("postgres"), "--version"))
                .unwrap_or_default(),
            broker: String::new(),
            k6: crate::k6::find().map(|k6| command_version(&k6, "version")),
        },
        host: host(),
        repetitions: Vec::new(),
    }
}

/// Where a repetition's stack lives: under the work folder, named after the
/// run folder and the runner's pid, which keeps two runners' stacks apart.
fn stack_dir(run_dir: &Path, repetition: u32) -> anyhow::Result<PathBuf> {
    let name = run_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("run");
    Ok(std::path::absolute(
        PathBuf::from(crate::WORK_DIR)
            .join("runs")
            .join(format!("{name}-{}-{repetition}", std::process::id())),
    )?)
}

/// Makes the stack folder `stack` of a repetition of the run folder `run`,
/// owned by this runner and naming the run folder: if the runner is killed
/// outright, whoever stops the stack closes the run folder too.
fn link_stack(stack: &Path, run: &Path) -> anyhow::Result<PathBuf> {
    faultline_stack::create_dir(stack)?;
    crate::clean::mark_owned(stack)?;
    std::fs::write(
        stack.join(run_folder::RUN_FOLDER_LINK),
        run.as_os_str().as_encoded_bytes(),
    )?;
    Ok(stack.to_path_buf())
}

/// Analyses the run, renders its report and refreshes the index of runs;
/// a failure here is said, and leaves the raw data in place.
fn report(dir: &Path, options: &RunOptions, progress: &Progress) {
    match crate::analyse_and_report(dir) {
        Ok(summary) => {
            if !options.quiet {
                eprint!("{}", crate::report::headline(&summary));
            }
        }
        Err(error) => progress.say(&format!("could not analyze the run: {error:#}")),
    }
    if let Err(error) = crate::report::write_index(&options.out) {
        progress.say(&format!("could not write the index of runs: {error:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_their_own_folders() {
        let out = std::env::temp_dir().join(format!("faultline-run-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let id = "20261125T000000Z-quick";
        let first = create_run_dir(&out, id).unwrap();
        let second = create_run_dir(&out, id).unwrap();
        assert_eq!(first, (id.to_string(), out.join(id)));
        assert_eq!(second.0, format!("{id}-2"));
        assert!(second.1.is_dir());
        let _ = std::fs::remove_dir_all(&out);
    }
}
