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
use std::path::Path;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::experiment::{
    ArchitectureSettings, BrokerChoice, DatabaseChoice, DriverSetting, Experiment, FaultKind,
    RateShape, Retries, Span,
};

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
    pub const POOL: u32 = 10_000;
    pub const BATCH: u32 = 1_000_000;
    pub const RETRIES: u32 = 100;
    pub const DRIVERS: u32 = 10_000_000;
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

/// The JSON Schema of the scenario format.
pub fn schema() -> Json {
    serde_json::to_value(schemars::schema_for!(Experiment)).expect("a schema is JSON")
}

/// The reference of every scenario field, as Markdown, generated from
/// [`schema`] so that it cannot drift from the format.
pub fn reference() -> String {
    let schema = schema();
    let mut out = String::from(
        "# Scenario reference\n\nGenerated from the scenario format by `faultline schema --markdown`; \
         `faultline schema` prints the same as JSON Schema for editors. Durations are a number and a \
         unit: `250ms`, `90s`, `2m`.\n\n| key | type | default | meaning |\n|---|---|---|---|\n",
    );
    fields(&schema, &schema, "", &mut out);
    out
}

/// The schema `node` points at, following a `$ref`, and the one branch of
/// an optional table (`anyOf` of it and null).
fn resolve<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
    if let Some(branches) = node["anyOf"].as_array()
        && let [branch] = branches
            .iter()
            .filter(|b| b["type"] != "null")
            .collect::<Vec<_>>()[..]
        && branch["$ref"].is_string()
    {
        return resolve(root, branch);
    }
    match node["$ref"].as_str() {
        Some(reference) => &root["$defs"][reference.trim_start_matches("#/$defs/")],
        None => node,
    }
}

/// A short type name: `string`, `integer`, `duration`, `"a" | "b"`, …
fn type_name(root: &Json, node: &Json) -> String {
    if let Some(reference) = node["$ref"].as_str()
        && reference.ends_with("/Duration")
    {
        return "duration".into();
    }
    let node = resolve(root, node);
    let values: Vec<String> = node["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            node["oneOf"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|v| {
                    v.get("const")
                        .into_iter()
                        .chain(v["enum"].as_array().into_iter().flatten())
                }),
        )
        .map(|v| format!("`{v}`"))
        .collect();
    if !values.is_empty() {
        return values.join(" \\| ");
    }
    match &node["type"] {
        Json::String(t) if t == "array" => format!("list of {}", type_name(root, &node["items"])),
        Json::String(t) => t.clone(),
        Json::Array(ts) => ts
            .iter()
            .filter_map(Json::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ if node["oneOf"].is_array() => "table (see below)".into(),
        _ => "any".into(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn fields(root: &Json, node: &Json, prefix: &str, out: &mut String) {
    let node = resolve(root, node);
    let required: Vec<&str> = node["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    let mut nested = Vec::new();
    for (key, property) in properties {
        let path = format!("{prefix}{key}");
        let target = resolve(root, property);
        let is_list = property["type"] == "array";
        let item = if is_list {
            resolve(root, &property["items"])
        } else {
            target
        };
        let default = match property.get("default") {
            _ if required.contains(&key.as_str()) => "required".to_string(),
            Some(Json::Object(_) | Json::Array(_)) => "see below".to_string(),
            Some(Json::String(text)) if text.is_empty() => "empty".to_string(),
            Some(value) => format!("`{value}`"),
            None => "none".to_string(),
        };
        let description = property["description"]
            .as_str()
            .or(target["description"].as_str())
            .unwrap_or_default();
        if property.get("const").is_some() {
            // The variant's tag: its heading row names it.
            continue;
        }
        out.push_str(&format!(
            "| `{path}` | {} | {default} | {} |\n",
            type_name(root, property),
            one_line(description)
        ));
        let child = if is_list {
            format!("{path}[].")
        } else {
            format!("{path}.")
        };
        if item["properties"].is_object()
            || item["oneOf"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["properties"].is_object()))
        {
            nested.push((child, item));
        }
    }
    for (child, item) in nested {
        if let Some(variants) = item["oneOf"].as_array() {
            for variant in variants.iter().filter(|v| v["properties"].is_object()) {
                let tag = variant["properties"]
                    .as_object()
                    .and_then(|p| p.iter().find_map(|(k, v)| Some((k, v.get("const")?))));
                if let Some((tag_key, tag_value)) = tag {
                    out.push_str(&format!(
                        "| **`{child}{tag_key} = {tag_value}`** | | | {} |\n",
                        one_line(variant["description"].as_str().unwrap_or_default())
                    ));
                }
                fields(root, variant, &child, out);
            }
        } else {
            fields(root, item, &child, out);
        }
    }
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
    parse(&text, &file).map(|experiment| (experiment, text))
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

fn parse_into(text: &str, report: &mut Report<'_>) -> Option<Experiment> {
    let (document, syntax) = DeTable::parse_recoverable(text);
    for error in syntax {
        let span = error.span().unwrap_or(0..0);
        report.add(
            span,
            "",
            format!("TOML syntax: {}", first_line(error.message())),
            None,
        );
    }
    if !report.problems.is_empty() {
        return None;
    }
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

/// The closest of `known` keys to `key`, if it is close enough to be a typo.
pub(crate) fn closest_key<'k>(
    key: &str,
    known: impl IntoIterator<Item = &'k String>,
) -> Option<&'k str> {
    closest(key, known.into_iter().map(String::as_str))
}

/// The closest of `known` to `word`, if it is close enough to be a typo.
fn closest<'k>(word: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn kind_of(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Walks a TOML document along the JSON Schema of the format.
struct Walker<'s, 'r, 'a> {
    root: &'s Json,
    report: &'r mut Report<'a>,
}

impl<'s> Walker<'s, '_, '_> {
    fn resolve(&self, schema: &'s Json) -> &'s Json {
        match schema.get("$ref").and_then(Json::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                let resolved = &self.root["$defs"][name];
                self.resolve(resolved)
            }
            None => schema,
        }
    }

    fn walk(&mut self, path: &str, value: &Spanned<DeValue<'_>>, schema: &'s Json) {
        let schema = self.resolve(schema);
        let span = value.span();
        self.report.spans.insert(path.to_string(), span.clone());
        let branches = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Json::as_array);
        if let Some(branches) = branches {
            self.walk_choice(path, value, branches);
            return;
        }
        if schema.get("enum").is_some() {
            self.walk_enum(path, value, schema);
            return;
        }
        if let Some(Json::String(constant)) = schema.get("const") {
            let enumeration = serde_json::json!({ "enum": [constant] });
            self.walk_enum(path, value, &enumeration);
            return;
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        };
        let Some(expected) = types.first().copied() else {
            return;
        };
        match (expected, value.get_ref()) {
            ("object", DeValue::Table(table)) => self.walk_table(path, span, table, schema),
            ("array", DeValue::Array(items)) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(&format!("{path}[{i}]"), item, item_schema);
                    }
                }
            }
            ("string", DeValue::String(text)) if schema.get("pattern").is_some() => {
                match humantime::parse_duration(text) {
                    Err(error) => self.report.add(
                        span,
                        path,
                        format!("{text:?} is not a duration: {error}"),
                        Some("write a number and a unit, e.g. \"90s\", \"2m\" or \"250ms\"".into()),
                    ),
                    Ok(duration) if duration > limits::SPAN => self.report.add(
                        span,
                        path,
                        format!(
                            "{text:?} is longer than {}, the longest duration a scenario may give",
                            humantime::format_duration(limits::SPAN)
                        ),
                        None,
                    ),
                    Ok(_) => {}
                }
            }
            ("string", DeValue::String(_)) => {}
            ("integer", DeValue::Integer(integer)) => {
                let parsed =
                    i128::from_str_radix(&integer.as_str().replace('_', ""), integer.radix());
                let minimum = schema.get("minimum").and_then(Json::as_f64);
                if let (Ok(n), Some(minimum)) = (parsed, minimum)
                    && (n as f64) < minimum
                {
                    self.report.add(
                        span,
                        path,
                        format!("{n} is below the minimum {minimum}"),
                        None,
                    );
                }
            }
            ("number", DeValue::Float(float)) => {
                let value: f64 = float.as_str().replace('_', "").parse().unwrap_or(f64::NAN);
                if !value.is_finite() || value.abs() > limits::NUMBER {
                    self.report.add(
                        span,
                        path,
                        format!("{} is not a number a scenario may give", float.as_str()),
                        Some(format!("give a finite number within ±{:e}", limits::NUMBER)),
                    );
                }
            }
            ("number", DeValue::Integer(integer)) => {
                let parsed =
                    i128::from_str_radix(&integer.as_str().replace('_', ""), integer.radix());
                if parsed.is_ok_and(|n| n.unsigned_abs() as f64 > limits::NUMBER) {
                    self.report.add(
                        span,
                        path,
                        format!("{} is beyond ±{:e}", integer.as_str(), limits::NUMBER),
                        None,
                    );
                }
            }
            ("boolean", DeValue::Boolean(_)) => {}
            (expected, found) => {
                let expected = match expected {
                    "object" => "a table",
                    "array" => "an array",
                    "string" => "a string",
                    "integer" => "an integer",
                    "number" => "a number",
                    "boolean" => "a boolean",
                    other => other,
                };
                let hint = match (expected, found) {
                    ("a string", DeValue::Integer(_) | DeValue::Float(_))
                        if schema.get("pattern").is_some() =>
                    {
                        Some("durations are strings with a unit, e.g. \"90s\"".to_string())
                    }
                    ("a number" | "an integer", DeValue::String(_)) => {
                        Some("write the number without quotes".to_string())
                    }
                    _ => None,
                };
                self.report.add(
                    span,
                    path,
                    format!("expected {expected}, found {}", kind_of(found)),
                    hint,
                );
            }
        }
    }

    /// A string that must be one of the schema's `enum` values.
    fn walk_enum(&mut self, path: &str, value: &Spanned<DeValue<'_>>, schema: &Json) {
        let span = value.span();
        let allowed: Vec<&str> = schema["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        match value.get_ref().as_str() {
            Some(text) if allowed.contains(&text) => {}
            Some(text) => {
                let hint =
                    closest(text, allowed.iter().copied()).map(|k| format!("did you mean {k:?}?"));
                self.report.add(
                    span,
                    path,
                    format!("{text:?} is not one of {}", quoted(&allowed)),
                    hint,
                );
            }
            None => self.report.add(
                span,
                path,
                format!(
                    "expected one of {}, found {}",
                    quoted(&allowed),
                    kind_of(value.get_ref())
                ),
                None,
            ),
        }
    }

    fn walk_table(
        &mut self,
        path: &str,
        span: Range<usize>,
        table: &DeTable<'_>,
        schema: &'s Json,
    ) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let key_path = join(path, name);
            match properties.and_then(|p| p.get(name)) {
                Some(property) => self.walk(&key_path, value, property),
                None if closed => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let hint = match closest(name, known.iter().copied()) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => format!("known keys here: {}", known.join(", ")),
                    };
                    self.report.add(
                        key.span(),
                        &key_path,
                        format!("unknown key `{name}`"),
                        Some(hint),
                    );
                }
                None => {
                    // A map's entries (`additionalProperties` a schema):
                    // each value checked, and found again by its key.
                    match schema.get("additionalProperties") {
                        Some(entry) if entry.is_object() => self.walk(&key_path, value, entry),
                        _ => {}
                    }
                }
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for key in required.iter().filter_map(Json::as_str) {
                if !table.iter().any(|(k, _)| k.get_ref().as_ref() == key) {
                    let doc = properties
                        .and_then(|p| p.get(key))
                        .map(|p| self.resolve(p))
                        .and_then(|p| p.get("description"))
                        .and_then(Json::as_str)
                        .map(|d| first_line(d).to_string());
                    self.report.add(
                        span.clone(),
                        &join(path, key),
                        format!("missing required key `{key}`"),
                        doc,
                    );
                }
            }
        }
    }

    /// A choice between schemas: a tagged enum picks its branch by the tag's
    /// value; anything else takes the branch that fits best.
    fn walk_choice(&mut self, path: &str, value: &Spanned<DeValue<'_>>, branches: &'s [Json]) {
        let branches: Vec<&'s Json> = branches
            .iter()
            .map(|b| self.resolve(b))
            .filter(|b| b.get("type") != Some(&Json::String("null".into())))
            .collect();
        // A choice of plain strings is an enumeration.
        let strings: Option<Vec<&str>> = branches
            .iter()
            .map(|b| match (b.get("const"), b.get("enum")) {
                (Some(Json::String(c)), _) => Some(vec![c.as_str()]),
                (_, Some(Json::Array(e))) => e.iter().map(Json::as_str).collect(),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.concat());
        if let Some(allowed) = strings {
            let enumeration = serde_json::json!({ "enum": allowed });
            self.walk_enum(path, value, &enumeration);
            return;
        }
        let tag = branches.iter().find_map(|b| {
            b.get("properties")?
                .as_object()?
                .iter()
                .find(|(_, p)| p.get("const").is_some())
                .map(|(k, _)| k.clone())
        });
        if let (Some(tag), DeValue::Table(table)) = (&tag, value.get_ref()) {
            let options: Vec<&str> = branches
                .iter()
                .filter_map(|b| b["properties"][tag.as_str()]["const"].as_str())
                .collect();
            let written = table
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == tag.as_str());
            let Some((_, written)) = written else {
                self.report.add(
                    value.span(),
                    &join(path, tag),
                    format!("missing required key `{tag}`"),
                    Some(format!("one of {}", quoted(&options))),
                );
                return;
            };
            let chosen = written.get_ref().as_str().and_then(|name| {
                branches
                    .iter()
                    .find(|b| b["properties"][tag.as_str()]["const"].as_str() == Some(name))
            });
            match chosen {
                Some(branch) => self.walk(path, value, branch),
                None => {
                    let text = written.get_ref().as_str().unwrap_or_default();
                    let hint = closest(text, options.iter().copied())
                        .map(|k| format!("did you mean {k:?}?"))
                        .unwrap_or_else(|| format!("one of {}", quoted(&options)));
                    self.report.add(
                        written.span(),
                        &join(path, tag),
                        format!("unknown {tag} {text:?}"),
                        Some(hint),
                    );
                }
            }
            return;
        }
        // Untagged: the branch with the fewest problems.
        let mut best: Option<(Vec<(usize, Problem)>, Spans)> = None;
        for branch in branches {
            let mut scratch = Report::new(self.report.text, self.report.file);
            Walker {
                root: self.root,
                report: &mut scratch,
            }
            .walk(path, value, branch);
            if best
                .as_ref()
                .is_none_or(|(p, _)| scratch.problems.len() < p.len())
            {
                best = Some((scratch.problems, scratch.spans));
            }
        }
        if let Some((problems, spans)) = best {
            self.report.problems.extend(problems);
            self.report.spans.extend(spans);
        }
    }
}

fn quoted(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules that span fields, on the typed scenario.
/// Checks what the format cannot say: every rule, every problem reported.
fn check(experiment: &Experiment, report: &mut Report<'_>) {
    check_run(experiment, report);
    check_stack(experiment, report);
    check_workload(experiment, report);
    check_architectures(experiment, report);
    check_faults(experiment, report);
    check_hypotheses(experiment, report);
    check_economics(experiment, report);
    check_capacity(experiment, report);
}

/// The sweep: every key leads somewhere, and every point is a valid
/// scenario. A problem of a point is reported at the swept value that
/// causes it (once, however many points share the value), or, when no
/// single value does, at `sweep` with the point's values.
fn check_sweep(experiment: &Experiment, report: &mut Report<'_>) {
    let grid = match crate::sweep::Grid::of(experiment) {
        Ok(grid) => grid,
        Err(problems) => {
            for problem in problems {
                report.at(&problem.path, problem.message, problem.hint);
            }
            return;
        }
    };
    let mut seen = std::collections::HashSet::new();
    for point in &grid.points {
        let Err(problems) = parse(&grid.scenario(point), "point") else {
            continue;
        };
        for problem in problems {
            let culprit = grid.keys.iter().position(|key| {
                let key = key.to_string();
                problem.path == key
                    || problem.path.starts_with(&format!("{key}."))
                    || problem.path.starts_with(&format!("{key}["))
            });
            let (path, message) = match culprit {
                Some(i) => {
                    let value = &point.values[i];
                    let j = experiment.sweep.as_ref().map_or(0, |s| {
                        s.parameters[i]
                            .values
                            .iter()
                            .position(|v| v == value)
                            .unwrap_or(0)
                    });
                    (
                        format!("sweep.parameters[{i}].values[{j}]"),
                        format!(
                            "{} = {}: {}",
                            grid.written[i],
                            crate::sweep::written(value),
                            problem.message
                        ),
                    )
                }
                None => (
                    "sweep".to_string(),
                    format!(
                        "at point {} ({}): {}{}",
                        point.index + 1,
                        point.describe(&grid),
                        if problem.path.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", problem.path)
                        },
                        problem.message
                    ),
                ),
            };
            if seen.insert((path.clone(), message.clone())) {
                report.at(&path, message, problem.hint);
            }
        }
    }
}

/// A finite, non-negative number.
fn non_negative(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

/// A finite number above zero.
fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

/// The run: a name, a duration, repetitions.
fn check_run(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration;
    if experiment.name.is_empty()
        || !experiment
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        report.at(
            "name",
            format!("{:?} is not a valid name", experiment.name),
            Some("use letters, digits, `-` and `_`; it names the run folder".into()),
        );
    }
    if run.0.is_zero() {
        report.at("duration", "the run must last more than zero".into(), None);
    }
    if experiment.repetitions > limits::REPETITIONS {
        report.at(
            "repetitions",
            format!(
                "{} repetitions is more than {}",
                experiment.repetitions,
                limits::REPETITIONS
            ),
            None,
        );
    }
    if experiment.repetitions == 0 {
        report.at(
            "repetitions",
            "at least one repetition is needed".into(),
            None,
        );
    }
}

/// The stack: external parts need their addresses.
fn check_stack(experiment: &Experiment, report: &mut Report<'_>) {
    let stack = &experiment.stack;
    if stack.broker == BrokerChoice::External && stack.bootstrap_servers.is_none() {
        report.at(
            "stack.broker",
            "an external broker needs `stack.bootstrap_servers`".into(),
            None,
        );
    }
    if stack.database == DatabaseChoice::External && stack.database_url.is_none() {
        report.at(
            "stack.database",
            "an external database needs `stack.database_url`".into(),
            None,
        );
    }
    if let Some(url) = stack.database_url.as_deref()
        && !url.contains("${")
        && let Err(error) = faultline_services::tls::Target::parse(url)
    {
        report.at(
            "stack.database_url",
            crate::plan::redact(&error.to_string(), &crate::plan::passwords_in(url)),
            Some(
                "TLS: sslmode=require (or verify-full) and sslrootcert=PATH to a PEM CA \
                 file; the server's certificate and name are always checked"
                    .into(),
            ),
        );
    }
    if stack.partitions > limits::PARTITIONS {
        report.at(
            "stack.partitions",
            format!(
                "{} partitions is more than {}",
                stack.partitions,
                limits::PARTITIONS
            ),
            None,
        );
    }
    if stack.partitions == 0 {
        report.at(
            "stack.partitions",
            "a topic needs at least one partition".into(),
            None,
        );
    }
    let named = [
        (
            "stack.database_url".to_string(),
            stack.database_url.as_deref(),
        ),
        (
            "stack.bootstrap_servers".to_string(),
            stack.bootstrap_servers.as_deref(),
        ),
    ]
    .into_iter()
    .chain(
        stack
            .kafka
            .iter()
            .map(|(k, v)| (format!("stack.kafka.{k}"), Some(v.as_str()))),
    );
    for (path, text) in named {
        if let Some(Err(missing)) = text.map(crate::plan::expand_env) {
            report.at(
                &path,
                missing,
                Some("set it, or write the value here (it is redacted from the run folder)".into()),
            );
        }
    }
    let external = stack.broker == BrokerChoice::External;
    if let Some(replicas) = stack.replication_factor {
        if replicas == 0 || replicas > limits::REPLICAS {
            report.at(
                "stack.replication_factor",
                format!("{replicas} replicas: give 1 to {}", limits::REPLICAS),
                None,
            );
        } else if replicas > 1 && !external {
            report.at(
                "stack.replication_factor",
                format!(
                    "the lab's own broker is a single node: it cannot hold {replicas} replicas"
                ),
                Some("use an external cluster (`stack.broker = \"external\"`)".into()),
            );
        }
    }
    if let Some(min_insync) = stack.min_insync_replicas {
        let (replicas, _) = stack.replication();
        if min_insync == 0 || min_insync > replicas {
            report.at(
                "stack.min_insync_replicas",
                format!("{min_insync} in-sync replicas of {replicas}: give 1 to {replicas}"),
                None,
            );
        }
    }
    for (key, value) in &stack.kafka {
        let path = format!("stack.kafka.{key}");
        if faultline_services::producer::KEPT_PROPERTIES.contains(&key.as_str()) {
            report.at(
                &path,
                format!("the services set {key} themselves: what they measure depends on it"),
                None,
            );
        } else if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        {
            report.at(
                &path,
                format!("{key:?} is not a librdkafka property name"),
                None,
            );
        }
        if value.contains('\n') {
            report.at(&path, "a value is one line".into(), None);
        }
    }
}

/// The load: a rate that sends something, before the run ends.
fn check_workload(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration;
    let workload = &experiment.workload;
    match &workload.rate {
        RateShape::Constant { rps } if !positive(*rps) => report.at(
            "workload.rate.rps",
            format!("a rate of {rps} req/s sends nothing"),
            Some("give a rate above zero".into()),
        ),
        RateShape::Ramp { from_rps, to_rps }
            if !non_negative(*from_rps) || !non_negative(*to_rps) || from_rps + to_rps <= 0.0 =>
        {
            report.at(
                "workload.rate",
                format!("a ramp from {from_rps} to {to_rps} req/s sends nothing or is negative"),
                None,
            )
        }
        RateShape::Steps { steps } => {
            if steps.is_empty() {
                report.at(
                    "workload.rate.steps",
                    "at least one step is needed".into(),
                    None,
                );
            }
            for (i, step) in steps.iter().enumerate() {
                if !non_negative(step.rps) {
                    report.at(
                        &format!("workload.rate.steps[{i}].rps"),
                        format!("{} req/s is negative", step.rps),
                        None,
                    );
                }
                if step.at >= run {
                    report.at(
                        &format!("workload.rate.steps[{i}].at"),
                        format!("{} is not before the run ends ({run})", step.at),
                        None,
                    );
                }
            }
            if steps.iter().all(|s| s.rps <= 0.0) && !steps.is_empty() {
                report.at(
                    "workload.rate.steps",
                    "every step has a rate of zero: nothing is sent".into(),
                    None,
                );
            }
        }
        RateShape::Spike {
            base_rps,
            peak_rps,
            at,
            ..
        } => {
            if !non_negative(*base_rps) || !positive(*peak_rps) {
                report.at(
                    "workload.rate",
                    format!("a spike from {base_rps} to {peak_rps} req/s needs a positive peak"),
                    None,
                );
            }
            if *at >= run {
                report.at(
                    "workload.rate.at",
                    format!("{at} is not before the run ends ({run})"),
                    None,
                );
            }
        }
        _ => {}
    }
    let peak = workload.rate.peak_rps();
    if peak > limits::RPS {
        report.at(
            "workload.rate",
            format!("a rate of {peak} req/s is beyond one machine's load generator"),
            Some(format!("at most {} req/s per architecture", limits::RPS)),
        );
    } else {
        let requests = workload.rate.requests(run.0) * experiment.architectures.len().max(1) as f64;
        if requests > limits::REQUESTS as f64 {
            report.at(
                "workload.rate",
                format!(
                    "{requests:.0} requests a repetition over every architecture; at most {} \
                     are held in memory",
                    limits::REQUESTS
                ),
                Some("shorten the run or lower the rate".into()),
            );
        }
    }
    if workload.drivers > limits::DRIVERS {
        report.at(
            "workload.drivers",
            format!("{} is more than {}", workload.drivers, limits::DRIVERS),
            None,
        );
    }
    check_retries(&workload.retries, "workload.retries", experiment, report);
    if workload.client_timeout.0.is_zero() {
        report.at(
            "workload.client_timeout",
            "a client timeout of zero fails every request".into(),
            None,
        );
    }
    if workload.drivers == 0 {
        report.at(
            "workload.drivers",
            "at least one driver is needed".into(),
            None,
        );
    }
    if let Some(warmup) = workload.warmup {
        let first_fault = experiment.faults.iter().map(|f| f.at).min();
        if warmup >= experiment.duration {
            report.at(
                "workload.warmup",
                format!(
                    "a warm-up of {warmup} leaves nothing of the run (duration {})",
                    experiment.duration
                ),
                None,
            );
        } else if let Some(at) = first_fault.filter(|at| warmup > *at) {
            report.at(
                "workload.warmup",
                format!("the warm-up ({warmup}) ends after the first fault starts, at {at}"),
                Some(format!("set it to {at} or less")),
            );
        }
    }
}

/// Client retries at `path`: a bounded count, a backoff the native driver
/// can keep (k6 is fed no retries).
fn check_retries(retries: &Retries, path: &str, experiment: &Experiment, report: &mut Report<'_>) {
    if retries.max_retries > limits::RETRIES {
        report.at(
            &format!("{path}.max_retries"),
            format!("{} is more than {}", retries.max_retries, limits::RETRIES),
            None,
        );
    }
    if retries.max_retries > 0 && experiment.workload.driver == DriverSetting::K6 {
        report.at(
            &format!("{path}.max_retries"),
            "the k6 driver does not retry".into(),
            Some("use workload.driver = \"native\"".into()),
        );
    }
    if retries.max_backoff < retries.backoff {
        report.at(
            &format!("{path}.max_backoff"),
            format!(
                "{} is shorter than the first wait, {}",
                retries.max_backoff, retries.backoff
            ),
            None,
        );
    }
}

/// The architectures: valid, distinct names and settings that can work.
fn check_architectures(experiment: &Experiment, report: &mut Report<'_>) {
    if experiment.architectures.is_empty() {
        report.at(
            "architectures",
            "at least one architecture is needed".into(),
            None,
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, architecture) in experiment.architectures.iter().enumerate() {
        let path = format!("architectures[{i}]");
        let name = architecture.name();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            report.at(
                &format!("{path}.name"),
                format!("{name:?} is not a valid name"),
                Some("use letters, digits, `-` and `_`".into()),
            );
        }
        if let Some(first) = seen.insert(name, i) {
            report.at(
                &format!("{path}.name"),
                format!("{name:?} is already the name of architectures[{first}]"),
                None,
            );
        }
        let pool = match architecture {
            ArchitectureSettings::Rest {
                pool, group_commit, ..
            } => {
                if let Some(group) = group_commit {
                    if group.max_rows < 2 || group.max_rows > limits::BATCH {
                        report.at(
                            &format!("{path}.group_commit.max_rows"),
                            format!(
                                "{} rows: a group holds 2 to {} (leave group_commit out to commit each row alone)",
                                group.max_rows,
                                limits::BATCH
                            ),
                            None,
                        );
                    }
                    if group.max_wait.0 > pool.statement_timeout.0 {
                        report.at(
                            &format!("{path}.group_commit.max_wait"),
                            format!(
                                "{} is longer than the pool's statement timeout ({}): requests would wait longer to be grouped than to be stored",
                                group.max_wait, pool.statement_timeout
                            ),
                            None,
                        );
                    }
                }
                pool
            }
            ArchitectureSettings::Kafka {
                pool,
                batch_size,
                breaker,
                delivery_timeout,
                ..
            } => {
                if *batch_size > limits::BATCH {
                    report.at(
                        &format!("{path}.batch_size"),
                        format!("{batch_size} is more than {}", limits::BATCH),
                        None,
                    );
                }
                if *batch_size == 0 {
                    report.at(
                        &format!("{path}.batch_size"),
                        "a batch holds at least one event".into(),
                        None,
                    );
                }
                if breaker.failures == 0 || breaker.successes == 0 {
                    report.at(
                        &format!("{path}.breaker"),
                        "failures and successes must be at least 1".into(),
                        None,
                    );
                }
                if delivery_timeout.0.is_zero() {
                    report.at(
                        &format!("{path}.delivery_timeout"),
                        "a delivery timeout of zero fails every produce".into(),
                        None,
                    );
                }
                pool
            }
        };
        if let ArchitectureSettings::Rest {
            retries: Some(retries),
            ..
        }
        | ArchitectureSettings::Kafka {
            retries: Some(retries),
            ..
        } = architecture
        {
            check_retries(retries, &format!("{path}.retries"), experiment, report);
        }
        if pool.size > limits::POOL {
            report.at(
                &format!("{path}.pool.size"),
                format!("{} connections is more than {}", pool.size, limits::POOL),
                None,
            );
        }
        if pool.size == 0 {
            report.at(
                &format!("{path}.pool.size"),
                "a pool needs at least one connection".into(),
                None,
            );
        }
    }
}

/// The faults: inside the run, possible on this stack, no two at once on
/// one component.
fn check_faults(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration;
    let stack = &experiment.stack;
    let has_kafka = experiment
        .architectures
        .iter()
        .any(|a| matches!(a, ArchitectureSettings::Kafka { .. }));
    for (i, fault) in experiment.faults.iter().enumerate() {
        let path = format!("faults[{i}]");
        let end = Span(fault.at.0 + fault.duration.0);
        if fault.duration.0.is_zero() {
            report.at(
                &format!("{path}.duration"),
                "a fault must last more than zero".into(),
                None,
            );
        }
        if fault.at >= run {
            report.at(
                &format!("{path}.at"),
                format!(
                    "{:?} starts when the run is over (duration {run})",
                    fault.at.to_string()
                ),
                None,
            );
        } else if end > run {
            report.at(
                &format!("{path}.duration"),
                format!("the fault ends at {end}, after the run ends (duration {run})"),
                Some(format!(
                    "shorten it to at most {}",
                    Span(run.0 - fault.at.0)
                )),
            );
        }
        if fault.kind.needs_local_database() && stack.database == DatabaseChoice::External {
            report.at(
                &format!("{path}.kind"),
                "the database is external: the lab cannot crash, stop or freeze it".into(),
                Some("db-latency and db-blackhole act on the link and still work".into()),
            );
        }
        if let FaultKind::Command(command) = &fault.kind {
            for (key, text) in [("start", &command.start), ("end", &command.end)] {
                if text.trim().is_empty() {
                    report.at(
                        &format!("{path}.{key}"),
                        "the command is empty".into(),
                        Some("give a shell command, e.g. \"kubectl apply -f fault.yaml\"".into()),
                    );
                }
            }
            if command.timeout.0.is_zero() {
                report.at(
                    &format!("{path}.timeout"),
                    "a timeout of zero kills every command".into(),
                    None,
                );
            }
        }
        match fault.kind {
            FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
            | FaultKind::ConsumerPartition
                if has_kafka && stack.broker == BrokerChoice::External =>
            {
                report.at(
                    &format!("{path}.kind"),
                    "the broker is external: its clients reach it at the addresses it \
                     advertises, not through the lab's proxy"
                        .into(),
                    Some("a `command` fault can act on its network".into()),
                )
            }
            FaultKind::BrokerKill
            | FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
            | FaultKind::ConsumerPartition
            | FaultKind::ConsumerKill
                if !has_kafka =>
            {
                report.at(
                    &format!("{path}.kind"),
                    "no architecture uses a broker or a consumer".into(),
                    None,
                )
            }
            FaultKind::BrokerKill if stack.broker == BrokerChoice::External => report.at(
                &format!("{path}.kind"),
                "the broker is external: the lab cannot kill it".into(),
                None,
            ),
            _ => {}
        }
    }
    for (i, a) in experiment.faults.iter().enumerate() {
        for (j, b) in experiment.faults.iter().enumerate().skip(i + 1) {
            let overlap = a.at.0 < b.at.0 + b.duration.0 && b.at.0 < a.at.0 + a.duration.0;
            if !overlap {
                continue;
            }
            // Commands act on what they say; the lab cannot tell.
            if matches!(a.kind, FaultKind::Command(_)) || matches!(b.kind, FaultKind::Command(_)) {
                continue;
            }
            if std::mem::discriminant(&a.kind) == std::mem::discriminant(&b.kind) {
                report.at(
                    &format!("faults[{j}].at"),
                    format!("overlaps faults[{i}], a fault of the same kind"),
                    None,
                );
            } else if a.kind.target() == b.kind.target() {
                report.at(
                    &format!("faults[{j}].at"),
                    format!(
                        "overlaps faults[{i}] ({}), which also acts on {}: one would end the other early",
                        a.kind.name(),
                        a.kind.target()
                    ),
                    Some(format!(
                        "start it at {} or later",
                        Span(a.at.0 + a.duration.0)
                    )),
                );
            }
        }
    }
}

/// The hypotheses: a known architecture and one limit.
fn check_hypotheses(experiment: &Experiment, report: &mut Report<'_>) {
    let names: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    for (i, hypothesis) in experiment.hypotheses.iter().enumerate() {
        let path = format!("hypotheses[{i}]");
        if !names.contains(&hypothesis.architecture.as_str()) {
            let hint = closest(&hypothesis.architecture, names.iter().copied())
                .map(|n| format!("did you mean {n:?}?"))
                .unwrap_or_else(|| format!("architectures: {}", quoted(&names)));
            report.at(
                &format!("{path}.architecture"),
                format!("no architecture is named {:?}", hypothesis.architecture),
                Some(hint),
            );
        }
        match (hypothesis.max, hypothesis.min) {
            (None, None) => report.at(&path, "give a limit: `max` or `min`".into(), None),
            (Some(_), Some(_)) => report.at(
                &path,
                "give one limit, `max` or `min`, not both".into(),
                None,
            ),
            _ => {}
        }
        if hypothesis.phase.is_some() && experiment.faults.is_empty() {
            report.at(
                &format!("{path}.phase"),
                "phases are relative to faults, and there are none".into(),
                None,
            );
        }
    }
}

/// The economics: no negative money.
fn check_economics(experiment: &Experiment, report: &mut Report<'_>) {
    let economics = &experiment.economics;
    for (key, value) in [
        ("order_value", economics.order_value),
        (
            "orders_lost_per_failed_event",
            economics.orders_lost_per_failed_event,
        ),
        ("production_rps", economics.production_rps),
        ("outages_per_year", economics.outages_per_year),
    ] {
        if !non_negative(value) {
            report.at(
                &format!("economics.{key}"),
                format!("{value} must be zero or more"),
                None,
            );
        }
    }
}

/// The capacity bounds: a share of failures below one, a latency above zero.
fn check_capacity(experiment: &Experiment, report: &mut Report<'_>) {
    let bounds = &experiment.capacity;
    if !(0.0..1.0).contains(&bounds.max_error_rate) {
        report.at(
            "capacity.max_error_rate",
            format!(
                "{} must be at least 0 and below 1 (a share of the requests)",
                bounds.max_error_rate
            ),
            None,
        );
    }
    if bounds.max_p99.0.is_zero() {
        report.at(
            "capacity.max_p99",
            "must be more than zero, e.g. \"100ms\"".to_string(),
            None,
        );
    }
    if let Some(reference) = &bounds.reference
        && !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(60))
            .contains(&reference.0)
    {
        report.at(
            "capacity.reference",
            format!(
                "{} must be from 1s to 60s (how long PostgreSQL alone stores rows each way before the load)",
                humantime::format_duration(reference.0)
            ),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
