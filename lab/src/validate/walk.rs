//! The second pass: the TOML document walked along the JSON Schema of the
//! format, every unknown key, wrong type, missing key and value outside an
//! enumeration reported at its span.

use std::ops::Range;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Problem, Report, Spans, first_line, limits};
use crate::spelling::closest;

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
pub(super) struct Walker<'s, 'r, 'a> {
    pub(super) root: &'s Json,
    pub(super) report: &'r mut Report<'a>,
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

    /// An integer: at least its schema's minimum, at most what its type
    /// holds.
    fn walk_integer(
        &mut self,
        path: &str,
        span: Range<usize>,
        integer: &toml::de::DeInteger<'_>,
        schema: &'s Json,
    ) {
        let parsed = i128::from_str_radix(&integer.as_str().replace('_', ""), integer.radix());
        let minimum = schema.get("minimum").and_then(Json::as_f64);
        // The largest the field's type holds: past it the value
        // would not even be read, and the reader's message names
        // the table, not the key.
        let maximum: Option<i128> = match schema.get("format").and_then(Json::as_str) {
            Some("uint8") => Some(u8::MAX.into()),
            Some("uint16") => Some(u16::MAX.into()),
            Some("uint32") => Some(u32::MAX.into()),
            Some("uint64") => Some(u64::MAX.into()),
            Some("int32") => Some(i32::MAX.into()),
            Some("int64") => Some(i64::MAX.into()),
            _ => None,
        };
        match (parsed, minimum, maximum) {
            (Ok(n), Some(minimum), _) if (n as f64) < minimum => self.report.add(
                span,
                path,
                format!("{n} is below the minimum {minimum}"),
                None,
            ),
            (Ok(n), _, Some(maximum)) if n > maximum => self.report.add(
                span,
                path,
                format!("{n} is more than {maximum}, the most this key holds"),
                None,
            ),
            (Err(_), _, _) => self.report.add(
                span,
                path,
                format!("{} is not a number this key holds", integer.as_str()),
                None,
            ),
            _ => {}
        }
    }

    pub(super) fn walk(&mut self, path: &str, value: &Spanned<DeValue<'_>>, schema: &'s Json) {
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
                            "{text:?} is longer than \"{}h\", the longest duration a scenario may give",
                            limits::SPAN.as_secs() / 3600
                        ),
                        None,
                    ),
                    Ok(_) => {}
                }
            }
            ("string", DeValue::String(_)) => {}
            ("integer", DeValue::Integer(integer)) => {
                self.walk_integer(path, span, integer, schema);
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

pub(super) fn quoted(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
