//! Running a sweep: a sweep folder, each point an ordinary run under
//! `runs/`, then the sweep's table and report. A finished point is never
//! run again by `--resume`; Ctrl-C stops after the point that is running
//! has torn its stack down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::table;
use crate::catalogue;
use crate::experiment::{DriverSetting, Experiment};
use crate::plan::grid::{Grid, Point};
use crate::run::progress::Progress;
use crate::run::{RunOptions, create_run_dir};
use crate::run_folder::sweep::{RUNS, SWEEP_TOML, SweepSummary};
use crate::run_folder::{self, Status};
use crate::shutdown::Shutdown;

/// Where a sweep goes and how it is shown.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Parent of the sweep folder.
    pub out: PathBuf,
    /// Overrides the scenario's driver.
    pub driver: Option<DriverSetting>,
    pub quiet: bool,
    /// Serve a live view of the sweep here (`--dashboard`).
    pub dashboard: Option<std::net::SocketAddr>,
}

/// Set-up and teardown of one repetition beyond its load and drain, as
/// measured (docs/benchmarks.md); the estimate assumes it.
pub const OVERHEAD_PER_REPETITION: Duration = Duration::from_secs(5);

/// How long a point of `scenario` should take: at least its repetitions'
/// (and its control's) load and set-up, at most that and every drain
/// timeout.
pub fn expected(scenario: &Experiment) -> (Duration, Duration) {
    let each = scenario.duration.0 + OVERHEAD_PER_REPETITION;
    let runs = scenario.repetitions + scenario.control.0;
    (each * runs, (each + scenario.drain_timeout.0) * runs)
}

fn minutes(d: Duration) -> String {
    let m = d.as_secs_f64() / 60.0;
    if m < 1.0 {
        format!("{:.0} s", d.as_secs_f64())
    } else {
        format!("{m:.0} min")
    }
}

/// A sweep folder and the points it runs.
struct Folder {
    dir: PathBuf,
    experiment: Experiment,
    grid: Grid,
    /// Each point's scenario: its text and what it reads as.
    scenarios: Vec<(String, Experiment)>,
}

impl Folder {
    /// The scenario at `file` in a new sweep folder under `out`, or the
    /// sweep folder `resume` as it was started; each point checked with
    /// `driver`, when it overrides the scenario's.
    fn open(
        file: Option<&Path>,
        resume: Option<&Path>,
        out: &Path,
        driver: Option<DriverSetting>,
    ) -> anyhow::Result<Self> {
        let (text, name) = match (resume, file) {
            (Some(dir), _) => {
                let path = dir.join(SWEEP_TOML);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "{} is not a sweep folder: it has no {SWEEP_TOML}",
                        dir.display()
                    )
                })?;
                (text, path.display().to_string())
            }
            (None, Some(file)) => (
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
                file.display().to_string(),
            ),
            (None, None) => anyhow::bail!("give a scenario, or --resume with a sweep folder"),
        };
        let experiment = match (resume, file) {
            (None, Some(file)) => crate::validate::load(file).map(|(experiment, _)| experiment),
            _ => crate::validate::parse(&text, &name),
        }
        .map_err(crate::validate::Invalid)?;
        anyhow::ensure!(
            experiment.sweep.is_some(),
            "{name} has no [sweep]: add one (see docs/scenarios.md) or run it with `faultline run`"
        );
        let grid = Grid::of(&experiment)
            .map_err(|_| anyhow::anyhow!("the sweep of {name} cannot be expanded"))?;
        let scenarios = grid
            .points
            .iter()
            .map(|point| {
                let text = grid.scenario(point);
                let scenario = crate::validate::parse(&text, &point.folder(&grid))
                    .map(|mut s| {
                        s.folder = experiment.folder.clone();
                        s
                    })
                    .and_then(|s| {
                        crate::validate::with_driver(s, &text, &point.folder(&grid), driver)
                    })
                    .map_err(|problems| {
                        anyhow::anyhow!(
                            "point {} is invalid:\n{}",
                            point.index + 1,
                            crate::validate::listed(&problems)
                        )
                    })?;
                Ok((text, scenario))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dir = match resume {
            Some(dir) => dir.to_path_buf(),
            None => {
                let started = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let name = format!("{started}-sweep-{}", experiment.name);
                let (_, dir) = create_run_dir(out, &name)?;
                std::fs::write(
                    dir.join(SWEEP_TOML),
                    crate::secrets::redact_scenario(&text, &experiment),
                )?;
                dir
            }
        };
        let dir = std::path::absolute(&dir)?;
        std::fs::create_dir_all(dir.join(RUNS))?;
        Ok(Self {
            dir,
            experiment,
            grid,
            scenarios,
        })
    }

    /// Whether `point` has a complete run folder.
    fn done(&self, point: &Point) -> bool {
        run_folder::read_manifest(&self.dir.join(RUNS).join(point.folder(&self.grid)))
            .is_ok_and(|m| m.status == Status::Complete)
    }

    /// How long the points `to_run` should take, at least and at most.
    fn expected(&self, to_run: &[&Point]) -> (Duration, Duration) {
        to_run
            .iter()
            .map(|p| expected(&self.scenarios[p.index].1))
            .fold((Duration::ZERO, Duration::ZERO), |a, b| {
                (a.0 + b.0, a.1 + b.1)
            })
    }

    /// The line said before anything starts: points, repetitions, time.
    fn announce(&self, progress: &Progress, to_run: &[&Point]) {
        let (experiment, points) = (&self.experiment, self.grid.points.len());
        let (low, high) = self.expected(to_run);
        progress.say(&format!(
            "sweep {} → {}\nfaultline: {points} points × {} repetition(s) × {} architectures{}; \
             about {}–{} (each repetition: its load, up to its drain timeout, ~{} s of set-up)",
            experiment.name,
            self.dir.display(),
            experiment.repetitions,
            experiment.architectures.len(),
            if to_run.len() < points {
                format!(
                    ", {} already done, {} to run",
                    points - to_run.len(),
                    to_run.len()
                )
            } else {
                String::new()
            },
            minutes(low),
            minutes(high),
            OVERHEAD_PER_REPETITION.as_secs(),
        ));
    }

    /// Runs `point` into its run folder, an unfinished one set aside first.
    async fn run(
        &self,
        point: &Point,
        options: &SweepOptions,
        live: Option<&std::sync::Arc<crate::live::Live>>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let runs = self.dir.join(RUNS);
        let folder = point.folder(&self.grid);
        set_aside(&runs, &folder)?;
        let (text, scenario) = &self.scenarios[point.index];
        let options = RunOptions {
            out: runs,
            driver: options.driver,
            quiet: options.quiet,
            folder: Some(folder),
            dashboard: None,
            prometheus_config: None,
            live: live.cloned(),
        };
        crate::run::run_scenario(scenario, text, options, shutdown.clone()).await?;
        Ok(())
    }

    /// Serves the sweep's live view on `addr`: every point, those in
    /// `to_run` still to run, the others done before.
    async fn serve(
        &self,
        addr: std::net::SocketAddr,
        to_run: &[&Point],
        progress: &Progress,
        shutdown: &Shutdown,
    ) -> anyhow::Result<std::sync::Arc<crate::live::Live>> {
        let points = self
            .grid
            .points
            .iter()
            .map(|p| {
                let status = if to_run.iter().any(|t| t.index == p.index) {
                    "to run"
                } else {
                    "done before"
                };
                (p.describe(&self.grid), status.to_string())
            })
            .collect();
        let live = crate::live::Live::for_sweep(&self.experiment.name, points);
        let bound = crate::live::serve(addr, live.clone(), shutdown.force.clone()).await?;
        progress.say(&format!(
            "dashboard at http://{bound}/ (the lab's series at http://{bound}/metrics)"
        ));
        Ok(live)
    }

    /// `points.parquet`, `sweep.json` and the report from the points' run
    /// folders.
    fn analyse(&self) -> anyhow::Result<SweepSummary> {
        let summary = table::gather(&self.dir, &self.experiment, &self.grid)?;
        super::report::write(&self.dir, &self.experiment, &summary)?;
        Ok(summary)
    }
}

/// Runs the sweep of the scenario at `file` into a new sweep folder under
/// `options.out`, or, with `resume`, the points of the sweep folder
/// `resume` that have not finished. Returns the sweep folder.
pub async fn sweep(
    file: Option<&Path>,
    resume: Option<&Path>,
    options: SweepOptions,
    shutdown: Shutdown,
) -> anyhow::Result<PathBuf> {
    let progress = Progress::new(options.quiet);
    let folder = Folder::open(file, resume, &options.out, options.driver)?;
    let points = &folder.grid.points;
    let to_run: Vec<&Point> = points.iter().filter(|p| !folder.done(p)).collect();
    folder.announce(&progress, &to_run);
    let live = match options.dashboard {
        Some(addr) => Some(folder.serve(addr, &to_run, &progress, &shutdown).await?),
        None => None,
    };
    let started = Instant::now();
    for (ran, point) in to_run.iter().enumerate() {
        if shutdown.graceful.is_cancelled() {
            break;
        }
        // What is left, scaled by how the finished points compared with
        // their own estimate.
        let (done, _) = folder.expected(&to_run[..ran]);
        let (left, _) = folder.expected(&to_run[ran..]);
        let left = match done.as_secs_f64() {
            0.0 => String::new(),
            done => format!(
                ", about {} left",
                minutes(left.mul_f64(started.elapsed().as_secs_f64() / done))
            ),
        };
        progress.say(&format!(
            "point {}/{}: {}{left}",
            point.index + 1,
            points.len(),
            point.describe(&folder.grid)
        ));
        if let Some(live) = &live {
            live.point(point.index, "running");
        }
        let ran = folder.run(point, &options, live.as_ref(), &shutdown).await;
        if let Some(live) = &live {
            let manifest =
                run_folder::read_manifest(&folder.dir.join(RUNS).join(point.folder(&folder.grid)));
            live.point(
                point.index,
                &manifest.map_or("failed".into(), |m| m.status.to_string()),
            );
        }
        ran?;
    }
    if shutdown.graceful.is_cancelled() {
        progress.say(&format!(
            "sweep interrupted; finished points are kept: `faultline sweep --resume {}` runs the rest",
            folder.dir.display()
        ));
    }
    let summary = folder.analyse()?;
    if let Some(parent) = folder.dir.parent()
        && let Err(error) = crate::report::write_index(parent)
    {
        progress.say(&format!("could not write the index of runs: {error:#}"));
    }
    if let Some(live) = &live {
        let page = folder.dir.join(run_folder::REPORT_HTML);
        let all = summary.complete() == summary.points.len();
        live.end(
            if all { "complete" } else { "incomplete" },
            page.is_file().then(|| page.display().to_string()),
        );
    }
    progress.say(&format!(
        "sweep: {} of {} points complete{}",
        summary.complete(),
        summary.points.len(),
        summary
            .break_even
            .iter()
            .filter(|b| b.figure == catalogue::REVENUE_LOST)
            .map(|b| format!("\nfaultline: {}", b.sentence))
            .collect::<String>()
    ));
    if live.is_some() {
        progress.say(&format!(
            "the dashboard stays up {} s more for a last look",
            crate::run::DASHBOARD_LINGER.as_secs()
        ));
        tokio::time::sleep(crate::run::DASHBOARD_LINGER).await;
    }
    Ok(folder.dir)
}

/// Moves the unfinished run folder of a point, if any, out of the way
/// (`p03-….unfinished`, `….unfinished-2`, …) so that the point runs again
/// into its own name and nothing collected is deleted.
fn set_aside(runs: &Path, folder: &str) -> anyhow::Result<()> {
    let dir = runs.join(folder);
    if !dir.exists() {
        return Ok(());
    }
    for n in 1.. {
        let aside = runs.join(if n == 1 {
            format!("{folder}.unfinished")
        } else {
            format!("{folder}.unfinished-{n}")
        });
        if !aside.exists() {
            std::fs::rename(&dir, &aside)
                .with_context(|| format!("cannot move {} aside", dir.display()))?;
            return Ok(());
        }
    }
    unreachable!("the loop returns")
}

/// Re-reads a sweep folder's points and rewrites its table and report.
pub fn reanalyse(dir: &Path) -> anyhow::Result<SweepSummary> {
    Folder::open(None, Some(dir), dir, None)?.analyse()
}
