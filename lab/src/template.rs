//! The templates of a `service` architecture: text with `{{ name }}`
//! holes, parsed once (so a scenario's unknown names are found before
//! anything starts) and filled per process or per request without
//! allocation beyond the result.

use std::fmt;

/// A parsed template: literal text and the names of its holes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Hole(String),
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Template {
    /// Parses `text`: every `{{` opens a hole that `}}` closes around one
    /// name of letters, digits, `_` and `.`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                TemplateError(format!(
                    "`{{{{` at byte {} is never closed by `}}}}`",
                    text.len() - rest.len() + open
                ))
            })?;
            let name = after[..close].trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(TemplateError(format!(
                    "`{{{{{}}}}}` does not name a variable",
                    &after[..close]
                )));
            }
            parts.push(Part::Hole(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The names it uses, in order, repeats included.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Hole(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Whether it names `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    /// The names it uses that are not in `known`.
    pub fn unknown<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.names().filter(|n| !known.contains(n)).collect()
    }

    /// The text with each hole filled by `value` (a hole `value` does not
    /// know stays empty: names are checked before anything runs).
    pub fn fill<'v>(&self, value: impl Fn(&str) -> Option<&'v str>) -> String {
        let mut out = String::new();
        self.fill_into(&mut out, |name, out| {
            out.push_str(value(name).unwrap_or_default())
        });
        out
    }

    /// Appends the text to `out`, each hole written by `write`.
    pub fn fill_into(&self, out: &mut String, mut write: impl FnMut(&str, &mut String)) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Hole(name) => write(name, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_found_and_filled() {
        let template = Template::parse(r#"{"id": "{{ event.id }}", "n": {{event.lat}}}"#).unwrap();
        assert_eq!(
            template.names().collect::<Vec<_>>(),
            ["event.id", "event.lat"]
        );
        assert!(template.uses("event.id"));
        assert_eq!(template.unknown(&["event.id"]), ["event.lat"]);
        let filled = template.fill(|name| match name {
            "event.id" => Some("abc"),
            "event.lat" => Some("1.5"),
            _ => None,
        });
        assert_eq!(filled, r#"{"id": "abc", "n": 1.5}"#);
        // JSON's own closing braces are text.
        assert_eq!(
            Template::parse(r#"{"a":{"b":1}}"#).unwrap().names().count(),
            0
        );
    }

    #[test]
    fn a_broken_hole_is_an_error() {
        for text in ["{{ event.id", "{{ }}", "{{ a b }}", "x {{ $x }}"] {
            assert!(Template::parse(text).is_err(), "{text}");
        }
    }
}
