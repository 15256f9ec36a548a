//! `faultline`: the lab's command line.

/// `print!` that ends the program quietly when stdout is closed early
/// (`faultline schema --markdown | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(error) = write!(std::io::stdout(), $($arg)*) {
            stdout_failed(error);
        }
    }};
}

/// `println!` that ends the program quietly when stdout is closed early.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(error);
        }
    }};
}

/// A closed pipe ends the program with success, like other command-line
/// tools; any other write error is reported.
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Exit::Success.exit();
    }
    eprintln!("faultline: cannot write to stdout: {error}");
    Exit::Error.exit();
}

mod up;

use faultline::Exit;
use faultline::experiment::DriverSetting;
use faultline::shutdown::{self, Shutdown};
use faultline::{clean, load, run_folder};

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// `faultline --version`: the version, the commit, the compiler and the
/// client libraries' capabilities.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FAULTLINE_COMMIT"),
    ")\nbuilt with ",
    env!("FAULTLINE_RUSTC"),
    "\nKafka client: librdkafka (bundled) with TLS and SASL PLAIN/SCRAM; PostgreSQL client with TLS (rustls; sslmode and sslrootcert as libpq reads them)"
);

#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    long_version = LONG_VERSION,
    about = "Measure what infrastructure failures do to users, data and revenue, architecture against architecture",
    arg_required_else_help = true,
    after_help = NEWCOMER
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const NEWCOMER: &str = "\
First time here? From the repository:
  scripts/experiment experiments/db-crash-quick.toml   a 40-second run, set up and built for you
  scripts/experiment                                   the default 5-minute scenario (the original PoC's)
  nix run .#experiment                                 the same with Nix
Then open the report.html it prints. With faultline on PATH:
  faultline run experiments/db-crash-quick.toml        run a scenario, write reports/<run>/
  faultline validate my-scenario.toml                  check a scenario, every problem with its line
  faultline sweep experiments/what-if-outage-length.toml   one scenario over a grid: curves, break-even
  faultline stack up                                   the stack alone, to poke at by hand

Exit status: 0 done (every hypothesis held); 1 an error; 2 an invalid scenario;
3 a hypothesis failed; 4 the run (or a point of a sweep) did not complete;
5 compare --fail-on-regression found a figure worse beyond the noise;
64 a wrong command line (a missing or unknown argument).";

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring up and tear down the real stack.
    Stack {
        #[command(subcommand)]
        command: StackCommand,
    },
    /// Run a scenario and write its run folder; prints the folder's path last.
    Run {
        /// The scenario.
        file: PathBuf,
        /// Where run folders go.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Override the scenario's load driver.
        #[arg(long, value_enum)]
        driver: Option<DriverSetting>,
        /// No progress lines.
        #[arg(long, short)]
        quiet: bool,
        /// Serve a live view of the run at ADDR while it goes (a page that
        /// updates each second, and the lab's series in OpenMetrics at
        /// /metrics); without ADDR, on the loopback at a free port. The URL
        /// is printed when the run starts.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
        dashboard: Option<std::net::SocketAddr>,
        /// With --dashboard: write a Prometheus configuration to FILE that
        /// scrapes the lab's series and every service of the run (found
        /// repetition by repetition); `scripts/observe FILE` starts
        /// Prometheus (and Grafana where installed) with it.
        #[arg(long, value_name = "FILE", requires = "dashboard")]
        prometheus_config: Option<PathBuf>,
    },
    /// Run every point of a scenario's [sweep], each an ordinary run folder
    /// under <sweep folder>/runs/, then the sweep's curves, break-even
    /// points and report; prints the sweep folder's path last. Exit status 3
    /// if a hypothesis failed at any point, 4 if a point did not complete.
    Sweep {
        /// The scenario, with a [sweep].
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        file: Option<PathBuf>,
        /// Where sweep folders go.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Go on with the sweep folder DIR: points that completed are kept,
        /// the others run.
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        /// Override the scenario's load driver.
        #[arg(long, value_enum)]
        driver: Option<DriverSetting>,
        /// No progress lines.
        #[arg(long, short)]
        quiet: bool,
        /// Serve a live view of the sweep at ADDR: every point and how it
        /// went, and the point that runs as `run --dashboard` shows a run.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
        dashboard: Option<std::net::SocketAddr>,
    },
    /// Print what a scenario lowers to, as JSON: the stack and every
    /// service's flags, the fault timeline, the load schedule, the driver's
    /// settings and each repetition's seed. Exit status 2 if it is invalid.
    Plan {
        /// The scenario.
        file: PathBuf,
        /// Override the scenario's load driver.
        #[arg(long, value_enum)]
        driver: Option<DriverSetting>,
    },
    /// Recompute a run folder's summary.json, report.html and report.md from
    /// its raw files alone, and the index.html of the folder it is in, if any;
    /// for a sweep folder, its points.parquet, sweep.json and report.
    Report {
        /// The run folder.
        dir: PathBuf,
    },
    /// Compare the headline figures of two runs (baseline, then candidate);
    /// prints a Markdown table of each change and whether it exceeds the noise
    /// of the repetitions.
    Compare {
        baseline: PathBuf,
        candidate: PathBuf,
        /// Print JSON instead of Markdown.
        #[arg(long)]
        json: bool,
        /// Exit with status 5 when a figure is worse in the candidate beyond
        /// the noise of the repetitions (a CI gate).
        #[arg(long)]
        fail_on_regression: bool,
    },
    /// Check scenarios; every problem is listed with its file, line and key.
    /// Exit status 2 if any scenario is invalid.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `text` (a line per problem on stderr), `json` (every file and its
        /// problems on stdout) or `github` (workflow annotations on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: ValidateFormat,
    },
    /// Print the JSON Schema of the scenario format (for editors), or with
    /// --markdown the reference of every field, or with --summary the JSON
    /// Schema of a run's summary.json.
    Schema {
        #[arg(long, conflicts_with = "summary")]
        markdown: bool,
        #[arg(long)]
        summary: bool,
    },
    /// Drive an open-model load of location events at one URL and summarise it.
    Load(LoadArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish or
    /// powershell), e.g. `faultline completions bash > /etc/bash_completion.d/faultline`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), e.g. `faultline man > faultline.1`.
    Man,
    /// Stop processes left behind by a runner that was itself killed.
    Clean {
        /// Folder to search for pid files (recursively).
        #[arg(default_value = faultline::WORK_DIR)]
        dir: PathBuf,
    },
}

/// How `faultline validate` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ValidateFormat {
    Text,
    Json,
    Github,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// URL of the route to POST events to, e.g. http://127.0.0.1:3001/events.
    url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to send, e.g. 20s or 2m.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Longest wait for one answer, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Most requests in flight; a request due beyond it is counted as not sent.
    #[arg(long, default_value_t = 20_000)]
    max_in_flight: usize,
    /// Most connections, each carrying one request at a time; a request due
    /// while all are busy waits for one (latency still from its intended
    /// time). Unset: one per request in flight.
    #[arg(long)]
    connections: Option<usize>,
    /// Distinct drivers the events are spread over.
    #[arg(long, default_value_t = 5000)]
    drivers: u32,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write one CSV row per request to this file.
    #[arg(long)]
    rows: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum StackCommand {
    /// Start PostgreSQL, the broker and the services, print every URL, and
    /// tear everything down on Ctrl-C.
    Up(Box<up::UpArgs>),
    /// Tear down a stack that `stack up` brought up elsewhere (another
    /// terminal, the background), as its Ctrl-C would, and stop whatever it
    /// left; without --dir, every stack under .faultline/.
    Down {
        /// The stack's folder, as given to or printed by `stack up`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `stack up` and `stack down`.
fn stack(runtime: &tokio::runtime::Runtime, command: StackCommand) -> anyhow::Result<()> {
    match command {
        StackCommand::Up(args) => {
            shutdown::become_subreaper();
            let result = runtime.block_on(up::run(*args));
            shutdown::stop_orphans();
            result
        }
        StackCommand::Down { dir } => {
            let stopped = up::down(dir.as_deref())?;
            if stopped == 0 {
                outln!("no stack was up");
            }
            Ok(())
        }
    }
}

/// The manual page: the command, then a section for each command (and
/// `stack`'s), each with its synopsis, description and options, in one
/// page: no page is named that is not there.
fn manual() -> anyhow::Result<String> {
    use clap::CommandFactory;
    let root = Cli::command();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(root.clone());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut commands: Vec<(String, clap::Command)> = Vec::new();
    for sub in root.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("faultline {}", sub.get_name());
        if sub.get_name() == "help" {
            continue;
        }
        commands.push((name.clone(), sub.clone()));
        for inner in sub.get_subcommands().filter(|c| c.get_name() != "help") {
            commands.push((format!("{name} {}", inner.get_name()), inner.clone()));
        }
    }
    for (name, command) in commands {
        let mut part = Vec::new();
        let man = clap_mangen::Man::new(command.bin_name(name.clone()));
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        man.render_options_section(&mut part)?;
        let part = String::from_utf8_lossy(&part)
            .replace(".SH SYNOPSIS", ".SS Synopsis")
            .replace(".SH DESCRIPTION", ".SS Description")
            .replace(".SH OPTIONS", ".SS Options");
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        page.extend_from_slice(part.as_bytes());
    }
    man.render_version_section(&mut page)?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

/// Runs the command; an error is printed as its chain of causes (never a
/// backtrace, whatever `RUST_BACKTRACE` says) with exit status 2 for an
/// invalid scenario and 1 for anything else.
fn main() {
    if let Err(error) = run_command() {
        // Each cause once: some errors already say their source.
        let mut message = error.to_string();
        for cause in error.chain().skip(1).map(ToString::to_string) {
            if !message.contains(&cause) {
                message.push_str(": ");
                message.push_str(&cause);
            }
        }
        eprintln!("faultline: {message}");
        let invalid = error.is::<faultline::validate::Invalid>();
        if invalid { Exit::Invalid } else { Exit::Error }.exit();
    }
}

fn run_command() -> anyhow::Result<()> {
    faultline_services::init_logging_with("warn");
    // The watchdog a run starts is internal: not a command anyone types.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == clean::WATCHDOG_ARG) {
        let (Some(runner), Some(dir)) = (
            args.get(2).and_then(|a| a.to_str()?.parse().ok()),
            args.get(3),
        ) else {
            anyhow::bail!("usage: faultline {} RUNNER DIR", clean::WATCHDOG_ARG);
        };
        clean::watch(runner, std::path::Path::new(dir));
        return Ok(());
    }
    // A wrong command line exits 64, apart from an invalid scenario's 2.
    let cli = Cli::try_parse().unwrap_or_else(|error| {
        let _ = error.print();
        std::process::exit(if error.use_stderr() {
            Exit::Usage.code()
        } else {
            Exit::Success.code()
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    match cli.command {
        Command::Stack { command } => stack(&runtime, command),
        Command::Load(args) => runtime.block_on(run_load(args)),
        Command::Run {
            file,
            out,
            driver,
            quiet,
            dashboard,
            prometheus_config,
        } => run(
            &runtime,
            &file,
            faultline::run::RunOptions {
                out,
                driver,
                quiet,
                folder: None,
                dashboard,
                prometheus_config,
                live: None,
            },
        ),
        Command::Sweep {
            file,
            out,
            resume,
            driver,
            quiet,
            dashboard,
        } => sweep(
            &runtime,
            file.as_deref(),
            resume.as_deref(),
            faultline::sweep::execute::SweepOptions {
                out,
                driver,
                quiet,
                dashboard,
            },
        ),
        Command::Plan { file, driver } => plan(&file, driver),
        Command::Report { dir } => report(&dir),
        Command::Compare {
            baseline,
            candidate,
            json,
            fail_on_regression,
        } => {
            let changes = faultline::compare::compare(&baseline, &candidate)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&changes)?);
            } else {
                out!(
                    "{}",
                    faultline::compare::compare_markdown(&baseline, &candidate, &changes)
                );
            }
            let regressed: Vec<_> = changes.iter().filter(|c| c.regressed()).collect();
            if fail_on_regression && !regressed.is_empty() {
                for change in &regressed {
                    eprintln!(
                        "faultline: {} {} regressed beyond the noise: {} → {}",
                        change.architecture,
                        change.label,
                        faultline::report::num(change.baseline),
                        faultline::report::num(change.candidate)
                    );
                }
                Exit::Regressed.exit();
            }
            Ok(())
        }
        Command::Validate { files, format } => {
            validate(&files, format);
            Ok(())
        }
        Command::Schema { markdown, summary } => {
            if markdown {
                out!("{}", faultline::validate::reference());
            } else if summary {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&run_folder::summary_schema())?
                );
            } else {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&faultline::validate::schema())?
                );
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "faultline", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Man => {
            out!("{}", manual()?);
            Ok(())
        }
        Command::Clean { dir } => {
            let stopped = clean::clean(&dir);
            outln!("stopped {} leftover process(es)", stopped.len());
            Ok(())
        }
    }
}

/// `faultline plan`: what the scenario at `file` lowers to, as JSON; exit
/// status 2 and every problem for an invalid one.
fn plan(file: &std::path::Path, driver: Option<DriverSetting>) -> anyhow::Result<()> {
    let checked = faultline::validate::load(file).and_then(|(experiment, text)| {
        faultline::validate::with_driver(experiment, &text, &file.display().to_string(), driver)
    });
    match checked {
        Ok(experiment) => {
            let plan = faultline::plan::Plan::of(&experiment, driver);
            outln!("{}", serde_json::to_string_pretty(&plan)?);
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            Exit::Invalid.exit();
        }
    }
}

/// `faultline run`: the run, then its folder's path and its verdict as the
/// exit status.
fn run(
    runtime: &tokio::runtime::Runtime,
    file: &std::path::Path,
    options: faultline::run::RunOptions,
) -> anyhow::Result<()> {
    shutdown::become_subreaper();
    let dir = runtime.block_on(async {
        let shutdown = Shutdown::on_signals();
        let leftovers = faultline::clean::clean(std::path::Path::new(faultline::WORK_DIR));
        if !leftovers.is_empty() {
            eprintln!(
                "faultline: stopped {} process(es) left behind by an earlier run",
                leftovers.len()
            );
        }
        faultline::run::run(file, options, shutdown).await
    });
    shutdown::stop_orphans();
    let dir = dir?;
    outln!("{}", dir.display());
    exit_with_the_runs_verdict(&dir);
    Ok(())
}

/// `faultline sweep`: the sweep, then its folder's path and its verdict as
/// the exit status.
fn sweep(
    runtime: &tokio::runtime::Runtime,
    file: Option<&std::path::Path>,
    resume: Option<&std::path::Path>,
    options: faultline::sweep::execute::SweepOptions,
) -> anyhow::Result<()> {
    shutdown::become_subreaper();
    let dir = runtime.block_on(async {
        let shutdown = Shutdown::on_signals();
        faultline::clean::clean(std::path::Path::new(faultline::WORK_DIR));
        faultline::sweep::execute::sweep(file, resume, options, shutdown).await
    });
    shutdown::stop_orphans();
    let dir = dir?;
    outln!("{}", dir.display());
    exit_with_the_sweeps_verdict(&dir);
    Ok(())
}

/// Exit status 4 when a point of the sweep at `dir` did not complete, else
/// 3 when a hypothesis failed at any point.
fn exit_with_the_sweeps_verdict(dir: &std::path::Path) {
    let summary: run_folder::sweep::SweepSummary =
        match run_folder::load(&dir.join(run_folder::sweep::SWEEP_JSON)) {
            Ok(summary) => summary,
            Err(error) => {
                eprintln!(
                    "faultline: {error}; the sweep's hypotheses were not judged (exit status 4)"
                );
                Exit::Incomplete.exit();
            }
        };
    if summary.complete() < summary.points.len() {
        eprintln!(
            "faultline: {} of {} points completed; their hypotheses do not gate anything (exit status 4)",
            summary.complete(),
            summary.points.len()
        );
        Exit::Incomplete.exit();
    }
    let failed = summary.failed_hypotheses();
    if failed > 0 {
        eprintln!(
            "faultline: {failed} hypothes{} failed over the sweep's points (exit status 3)",
            if failed == 1 { "is" } else { "es" }
        );
        Exit::HypothesisFailed.exit();
    }
}

/// `faultline report`: re-analyses a run folder from its files and
/// refreshes the index of runs beside it, when there is one; a sweep
/// folder's table and report are rebuilt from its points.
fn report(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.join(run_folder::sweep::SWEEP_TOML).is_file() {
        let summary = faultline::sweep::execute::reanalyse(dir)
            .with_context(|| format!("could not analyze the sweep {}", dir.display()))?;
        for line in summary
            .break_even
            .iter()
            .filter(|b| b.figure == "revenue_lost")
        {
            outln!("{}", line.sentence);
        }
        outln!("{}", dir.join("report.html").display());
        return Ok(());
    }
    let summary = faultline::analyse_and_report(dir)
        .with_context(|| format!("could not analyze {}", dir.display()))?;
    out!("{}", faultline::report::headline(&summary));
    // The folder's index of runs, when it has one (`faultline run` writes it).
    if let Some(parent) = dir.canonicalize()?.parent()
        && parent.join("index.html").is_file()
    {
        faultline::report::write_index(parent)?;
    }
    outln!("{}", dir.join("report.html").display());
    Ok(())
}

/// `faultline validate`: every problem of every file; exit status 2 if any
/// is invalid.
fn validate(files: &[PathBuf], format: ValidateFormat) {
    let mut invalid = 0;
    let mut report = Vec::new();
    for file in files {
        let problems = faultline::validate::load(file).err().unwrap_or_default();
        let count = faultline::validate::total(&problems);
        invalid += usize::from(count > 0);
        match format {
            ValidateFormat::Text if count == 0 => outln!("{}: ok", file.display()),
            ValidateFormat::Text => {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                eprintln!(
                    "{}: {count} problem{}",
                    file.display(),
                    if count == 1 { "" } else { "s" }
                );
            }
            ValidateFormat::Github => {
                for problem in &problems {
                    outln!("{}", problem.github());
                }
            }
            ValidateFormat::Json => report.push(serde_json::json!({
                "file": file.display().to_string(),
                "valid": count == 0,
                "problems": count,
                "listed": problems,
            })),
        }
    }
    if format == ValidateFormat::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).expect("problems are JSON")
        );
    }
    if invalid > 0 {
        Exit::Invalid.exit();
    }
}

/// Exit status 4 when the run at `dir` is not complete (its figures cannot
/// gate anything) or its summary cannot be read, else 3 when one of its
/// hypotheses failed, so that scenarios work as CI gates.
fn exit_with_the_runs_verdict(dir: &std::path::Path) {
    let summary = match run_folder::read_summary(dir) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("faultline: {error}; the run's hypotheses were not judged (exit status 4)");
            Exit::Incomplete.exit();
        }
    };
    if summary.status != run_folder::Status::Complete {
        eprintln!(
            "faultline: the run is {}; its hypotheses were not judged (exit status 4)",
            summary.status
        );
        Exit::Incomplete.exit();
    }
    let failed = summary.failed_hypotheses();
    if failed > 0 {
        eprintln!(
            "faultline: {failed} hypothes{} failed (exit status 3)",
            if failed == 1 { "is" } else { "es" }
        );
        Exit::HypothesisFailed.exit();
    }
}

async fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be a positive number of requests per second, got {}",
        args.rate
    );
    let _: hyper::Uri = args
        .url
        .parse()
        .with_context(|| format!("{:?} is not a valid URL", args.url))?;
    eprintln!(
        "faultline: {} req/s for {} at {}",
        args.rate,
        humantime::format_duration(args.duration),
        args.url
    );
    let schedule = std::sync::Arc::new(load::constant_schedule(args.rate, args.duration));
    let (tx, collector) = load::collector(None);
    let t0 = tokio::time::Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let driver = load::Driver {
        architecture: 0,
        url: args.url,
        own: None,
        schedule,
        settings: faultline::plan::DriverSettings {
            timeout: args.timeout,
            max_in_flight: args.max_in_flight,
            connections: args.connections,
            drivers: args.drivers,
            seed,
            retries: Default::default(),
        },
        counters: Default::default(),
    };
    driver
        .run(t0, tokio_util::sync::CancellationToken::new(), tx)
        .await;
    let elapsed = t0.elapsed();
    let rows = collector.await?;
    let offered = rows.len();
    let ok = rows.iter().filter(|r| r.outcome.ok()).count();
    let not_sent = rows
        .iter()
        .filter(|r| r.outcome == run_folder::rows::Outcome::NotSent)
        .count();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for row in &rows {
        *outcomes.entry(format!("{:?}", row.outcome)).or_default() += 1;
    }
    let latency = load::latency(&rows, |r| r.outcome.ok());
    let lag = load::schedule_lag(&rows);
    let ms = |us: u64| us as f64 / 1000.0;
    let summary = serde_json::json!({
        "offered": offered,
        "ok": ok,
        "failed": offered - ok,
        "not_sent": not_sent,
        "error_rate": if offered == 0 { 0.0 } else { (offered - ok) as f64 / offered as f64 },
        "achieved_per_s": ok as f64 / elapsed.as_secs_f64(),
        "outcomes": outcomes,
        "latency_ms": {
            "p50": ms(latency.value_at_quantile(0.5)),
            "p90": ms(latency.value_at_quantile(0.9)),
            "p99": ms(latency.value_at_quantile(0.99)),
            "p999": ms(latency.value_at_quantile(0.999)),
            "max": ms(latency.max()),
        },
        "schedule_lag_ms": { "p50": ms(lag.value_at_quantile(0.5)), "p99": ms(lag.value_at_quantile(0.99)), "max": ms(lag.max()) },
    });
    if let Some(path) = &args.rows {
        write_rows(path, &rows).with_context(|| format!("could not write {}", path.display()))?;
    }
    if args.json {
        outln!("{summary}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

fn write_rows(path: &std::path::Path, rows: &[run_folder::rows::Row]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "seq,intended_us,sent_us,finished_us,outcome,status,event_id"
    )?;
    for row in rows {
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            row.seq,
            row.intended_us,
            row.sent_us,
            row.finished_us,
            row.outcome.class(),
            row.outcome.status(),
            row.event_id
        )?;
    }
    out.flush()
}
