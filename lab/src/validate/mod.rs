//! Reading and checking a scenario, reporting **every** problem at once with
//! its file, line, key path and a hint.
//!
//! Three passes: the TOML syntax (with recovery, so several syntax errors
//! are reported together); the document against the JSON Schema of
//! [`Experiment`] (unknown keys with the closest known one, wrong types,
//! missing keys, values outside an enumeration, malformed durations); then,
//! on the typed scenario, the rules that span fields (a fault that ends after
//! the run, a hypothesis naming an unknown architecture, a rate of zero...).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod checks;
mod faults;
mod schema;
mod service;
mod walk;

use crate::experiment::{DriverSetting, Experiment};
use checks::{check, check_sweep};
pub use schema::{reference, schema};
use walk::Walker;

/// The largest values a scenario may give: beyond them a run cannot be
/// meant, and the runner would panic or run out of memory.
pub mod limits {
    use std::time::Duration;

    /// Any duration.
    pub const SPAN: Duration = Duration::from_secs(24 * 3600);
    /// Any number with a fraction (rates, money, limits).
    pub const NUMBER: f64 = 1e12;
    /// Requests a second offered to one architecture.
    pub const RPS: f64 = 1_000_000.0;
    /// Requests over every architecture in one repetition: each one is a
    /// row held in memory until the repetition ends.
    pub const REQUESTS: u64 = 20_000_000;
    pub const PARTITIONS: u32 = 10_000;
    /// Replicas of a topic.
    pub const REPLICAS: u32 = 16;
    pub const REPETITIONS: u32 = 1_000;
    /// Control repetitions.
    pub const CONTROLS: u32 = 100;
    pub const POOL: u32 = 10_000;
    pub const BATCH: u32 = 1_000_000;
    pub const RETRIES: u32 = 100;
    pub const DRIVERS: u32 = 10_000_000;
    /// Most connections of one architecture's driver (`workload.connections`).
    pub const CONNECTIONS: u32 = 10_000;
    /// Characters of a scenario's or an architecture's name.
    pub const NAME: usize = 64;
    /// Characters of the name of a series a `service` maps (backlog,
    /// breaker, pool).
    pub const SERIES: usize = 256;
    /// Problems listed for one file; the rest are counted.
    pub const PROBLEMS: usize = 200;
}

/// One problem in a scenario.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Key path, e.g. `faults[1].at`; empty for the document itself.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
    /// Problems after this one that are not listed (the last of a long
    /// list counts them).
    pub unlisted: usize,
}

impl Problem {
    /// The problem as a GitHub Actions annotation
    /// (`::error file=…,line=…,col=…,title=…::message`).
    pub fn github(&self) -> String {
        let data = |text: &str| {
            text.replace('%', "%25")
                .replace('\r', "%0D")
                .replace('\n', "%0A")
        };
        let property = |text: &str| data(text).replace(':', "%3A").replace(',', "%2C");
        let mut message = self.message.clone();
        if let Some(hint) = &self.hint {
            message.push_str(&format!(" (hint: {hint})"));
        }
        format!(
            "::error file={},line={},col={},title={}::{}",
            property(&self.file),
            self.line,
            self.column,
            property(if self.path.is_empty() {
                "scenario"
            } else {
                &self.path
            }),
            data(&message)
        )
    }
}

/// How many problems a list stands for, the unlisted ones included.
pub fn total(problems: &[Problem]) -> usize {
    problems
        .iter()
        .map(|p| if p.unlisted > 0 { p.unlisted } else { 1 })
        .sum()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A scenario that does not pass validation, as an error: the command
/// line exits with status 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("the scenario is invalid:\n{}", listed(.0))]
pub struct Invalid(pub Vec<Problem>);

/// Problems one per line, for an error message.
pub fn listed(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and checks the scenario at `path`.
pub fn load(path: &Path) -> Result<(Experiment, String), Vec<Problem>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: file.clone(),
            line: 1,
            column: 1,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
            hint: None,
            unlisted: 0,
        }]
    })?;
    // Absolute: a process runs in it, and finds its files from there.
    let folder = path.parent().unwrap_or(Path::new(""));
    let folder = std::fs::canonicalize(if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    })
    .unwrap_or_else(|_| folder.to_path_buf());
    parse_in(&text, &file, folder).map(|experiment| (experiment, text))
}

/// Checks scenario text read from a file in `folder`, and what it needs
/// of the machine (a `service` architecture's programs and files): what
/// a run checks before anything starts.
pub fn parse_in(text: &str, file: &str, folder: PathBuf) -> Result<Experiment, Vec<Problem>> {
    let mut report = Report::new(text, file);
    let Some(mut experiment) = parse_into(text, &mut report) else {
        return Err(report.listed());
    };
    experiment.folder = Some(folder);
    service::check_machine(&experiment, &mut report);
    if report.problems.is_empty() {
        Ok(experiment)
    } else {
        Err(report.listed())
    }
}

/// Checks scenario text; `file` names it in the problems.
pub fn parse(text: &str, file: &str) -> Result<Experiment, Vec<Problem>> {
    let mut report = Report::new(text, file);
    let result = parse_into(text, &mut report);
    result.ok_or_else(|| report.listed())
}

/// Checks a scenario read from `text` again with its driver overridden
/// (`--driver`): a setting that rules the driver out is a problem at its
/// key, e.g. client retries, which k6 is not fed.
pub fn with_driver(
    mut experiment: Experiment,
    text: &str,
    file: &str,
    driver: Option<DriverSetting>,
) -> Result<Experiment, Vec<Problem>> {
    let Some(driver) = driver else {
        return Ok(experiment);
    };
    experiment.workload.driver = driver;
    let mut report = Report::new(text, file);
    check(&experiment, &mut report);
    if report.problems.is_empty() {
        Ok(experiment)
    } else {
        Err(report.listed())
    }
}

/// Every syntax error of `text`. The parser recovers from an error in a
/// key or a value, but after a table header it cannot read it skips to the
/// next header: each such header is replaced by an empty table of its own
/// (as long, so that positions hold) and the text parsed again, up to
/// [`limits::PROBLEMS`] times, keeping the errors not seen before.
fn syntax_errors(text: &str) -> Vec<(Range<usize>, String)> {
    let mut errors: Vec<(Range<usize>, String)> = Vec::new();
    let mut text = text.to_string();
    for round in 0..limits::PROBLEMS {
        let (_, found) = DeTable::parse_recoverable(&text);
        let mut headers = Vec::new();
        for error in found {
            let span = error.span().unwrap_or(0..0);
            let start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            if text[start..end].trim_start().starts_with('[') {
                headers.push(start..end);
            }
            let message = first_line(error.message()).to_string();
            if !errors.iter().any(|(s, m)| *s == span && *m == message) {
                errors.push((span, message));
            }
        }
        if headers.is_empty() {
            break;
        }
        for (i, line) in headers.into_iter().enumerate() {
            let own = format!("[_{round}_{i}]");
            let replacement = if own.len() <= line.len() {
                format!("{own:<width$}", width = line.len())
            } else {
                " ".repeat(line.len())
            };
            text.replace_range(line, &replacement);
        }
    }
    errors
}

fn parse_into(text: &str, report: &mut Report<'_>) -> Option<Experiment> {
    for (span, message) in syntax_errors(text) {
        report.add(span, "", format!("TOML syntax: {message}"), None);
    }
    if !report.problems.is_empty() {
        return None;
    }
    let (document, _) = DeTable::parse_recoverable(text);
    let schema = schema();
    let root = Spanned::new(document.span(), DeValue::Table(document.into_inner()));
    Walker {
        root: &schema,
        report,
    }
    .walk("", &root, &schema);
    if !report.problems.is_empty() {
        return None;
    }
    let experiment: Experiment = match toml::from_str(text) {
        Ok(experiment) => experiment,
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            report.add(span, "", first_line(error.message()).to_string(), None);
            return None;
        }
    };
    check(&experiment, report);
    if report.problems.is_empty() {
        check_sweep(&experiment, report);
    }
    report.problems.is_empty().then_some(experiment)
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

/// Where each key path stands in the text.
type Spans = HashMap<String, Range<usize>>;

struct Report<'a> {
    text: &'a str,
    file: &'a str,
    /// Each problem at the byte offset where it is; lines and columns are
    /// found for the listed ones only, once, at the end.
    problems: Vec<(usize, Problem)>,
    spans: Spans,
}

impl<'a> Report<'a> {
    fn new(text: &'a str, file: &'a str) -> Self {
        Self {
            text,
            file,
            problems: Vec::new(),
            spans: HashMap::new(),
        }
    }

    fn add(&mut self, span: Range<usize>, path: &str, message: String, hint: Option<String>) {
        let problem = Problem {
            file: self.file.to_string(),
            line: 0,
            column: 0,
            path: path.to_string(),
            message,
            hint,
            unlisted: 0,
        };
        self.problems
            .push((span.start.min(self.text.len()), problem));
    }

    /// The first [`limits::PROBLEMS`] problems in the order of the text,
    /// each with its line and column, and one that counts the rest.
    fn listed(mut self) -> Vec<Problem> {
        self.problems.sort_by_key(|(offset, _)| *offset);
        let unlisted = self.problems.len().saturating_sub(limits::PROBLEMS);
        self.problems.truncate(limits::PROBLEMS);
        let text = self.text;
        let lines: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut listed: Vec<Problem> = self
            .problems
            .into_iter()
            .map(|(offset, mut problem)| {
                problem.line = lines.partition_point(|start| *start <= offset);
                let start = lines[problem.line - 1];
                problem.column = text
                    .get(start..offset)
                    .map_or(offset - start, |l| l.chars().count())
                    + 1;
                problem
            })
            .collect();
        if unlisted > 0 {
            listed.push(Problem {
                file: self.file.to_string(),
                line: listed.last().map_or(1, |p| p.line),
                column: 1,
                path: String::new(),
                message: format!(
                    "… and {unlisted} more problems, not listed (the first {} are)",
                    limits::PROBLEMS
                ),
                hint: None,
                unlisted,
            });
        }
        listed
    }

    /// The span of `path`, or of its closest written ancestor.
    fn span_of(&self, path: &str) -> Range<usize> {
        let mut path = path.to_string();
        loop {
            if let Some(span) = self.spans.get(&path) {
                return span.clone();
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path.truncate(cut),
                None => return self.spans.get("").cloned().unwrap_or(0..0),
            }
        }
    }

    fn at(&mut self, path: &str, message: String, hint: Option<String>) {
        let span = self.span_of(path);
        self.add(span, path, message, hint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Span;

    #[test]
    fn an_empty_scenario_needs_only_a_name_and_gets_the_originals_defaults() {
        let experiment = parse("name = \"x\"\n", "x.toml").unwrap();
        assert_eq!(experiment.duration, Span::secs(300));
        assert_eq!(experiment.architectures.len(), 3);
        let problems = parse("", "x.toml").unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "x.toml:1:1: name: missing required key `name` (hint: Short name, used in the run folder's name: letters, digits, `-`, `_`.)"
        );
    }
}
