//! Secrets a scenario holds (passwords in its addresses, credentials among
//! its Kafka client properties): found, expanded from the environment, and
//! redacted from whatever text leaves the process.

use crate::experiment::Experiment;

/// Words in a Kafka client property's name (in any case) that say its
/// value is a credential.
const CREDENTIAL_WORDS: [&str; 7] = [
    "password",
    "secret",
    "key",
    "jaas",
    "token",
    "credential",
    "oauthbearer",
];

/// Whether the Kafka client property `key` holds a credential.
pub fn is_credential(key: &str) -> bool {
    let key = key.to_lowercase();
    CREDENTIAL_WORDS.iter().any(|word| key.contains(word))
}

/// The passwords in a scenario's addresses
/// (`postgres://user:PASSWORD@host/db`, `…?password=PASSWORD`,
/// `host=… password=PASSWORD`), its credentials among its Kafka client
/// properties, and the same in every value its sweep gives them, to keep
/// out of what is shared: the reports, the run and sweep folders, messages.
pub fn secrets(experiment: &Experiment) -> Vec<String> {
    let stack = &experiment.stack;
    // As written and as expanded from the environment.
    let addresses: Vec<String> = [
        stack.database_url.as_deref(),
        stack.bootstrap_servers.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .chain(swept_strings(experiment, |key| {
        key.ends_with("database_url") || key.ends_with("bootstrap_servers")
    }))
    .flat_map(|text| [expanded(&text), text])
    .collect();
    let mut secrets: Vec<String> = addresses
        .iter()
        .flat_map(|addresses| addresses.split(','))
        .flat_map(passwords_in)
        .filter(|secret| !secret.starts_with("${"))
        .collect();
    // Kafka client properties that hold a credential.
    secrets.extend(
        stack
            .kafka
            .iter()
            .filter(|(key, value)| !value.is_empty() && is_credential(key))
            .map(|(_, value)| value.clone())
            .chain(swept_strings(experiment, |key| {
                key.contains("kafka") && is_credential(key)
            }))
            .flat_map(|value| [expanded(&value), value])
            .filter(|secret| !secret.is_empty() && !secret.starts_with("${")),
    );
    // A service's environment values that hold a credential, written
    // literally or taken from the environment (a template the lab fills,
    // `{{ db.password }}`, is not itself a secret).
    secrets.extend(
        experiment
            .architectures
            .iter()
            .filter_map(|a| match a {
                crate::experiment::ArchitectureSettings::Service { processes, .. } => {
                    Some(processes)
                }
                _ => None,
            })
            .flatten()
            .flat_map(|process| &process.env)
            .filter(|(_, value)| !value.trim_start().starts_with("{{"))
            .flat_map(|(key, value)| {
                // A credential's whole value; an address's password.
                let whole = is_credential(key).then(|| [expanded(value), value.clone()]);
                whole
                    .into_iter()
                    .flatten()
                    .chain(passwords_in(&expanded(value)))
                    .chain(passwords_in(value))
            })
            .filter(|secret| !secret.is_empty() && !secret.starts_with("${")),
    );
    secrets.sort();
    secrets.dedup();
    // Longest first, so that a secret inside another is not half-redacted.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// Every text value the scenario's sweep gives a key that `which` picks.
fn swept_strings(experiment: &Experiment, which: impl Fn(&str) -> bool) -> Vec<String> {
    experiment
        .sweep
        .iter()
        .flat_map(|sweep| &sweep.parameters)
        .filter(|parameter| which(&parameter.key))
        .flat_map(|parameter| &parameter.values)
        .filter_map(|value| value.as_str().map(str::to_string))
        .collect()
}

/// The passwords written in one address: a URL's (its user information
/// ends at the last `@` before the query, so a password may hold a `/`),
/// its query's `password=`, and a connection string's `password=`.
pub fn passwords_in(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((_, rest)) = url.split_once("://") {
        let before_query = rest.split('?').next().unwrap_or_default();
        if let Some((userinfo, _)) = before_query.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_string());
        }
    } else {
        // `host=db user=app password=...`, libpq's keyword form.
        found.extend(
            url.split_whitespace()
                .filter_map(|pair| pair.strip_prefix("password="))
                .map(|p| p.trim_matches(['\'', '"']).to_string()),
        );
    }
    if let Some((_, query)) = url.split_once('?') {
        found.extend(
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("password="))
                .map(str::to_string),
        );
    }
    found.retain(|p| !p.is_empty());
    found
}

/// `text` with every `${NAME}` replaced by the environment variable NAME,
/// so that a scenario names a secret without holding it; the first
/// variable that is not set is the error.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + end];
        let value = std::env::var(name)
            .map_err(|_| format!("the environment variable {name} is not set"))?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand_env`], or the text as written when a variable is missing (the
/// scenario's validation names it).
pub(crate) fn expanded(text: &str) -> String {
    expand_env(text).unwrap_or_else(|_| text.to_string())
}

/// Whether the field `key` of the table at `path` may hold a secret: an
/// address, a Kafka client property that is a credential, a service's
/// environment value.
fn holds_secret(path: &str, key: &str) -> bool {
    key == "database_url"
        || key == "bootstrap_servers"
        || (path.ends_with("kafka") && is_credential(key))
        || path.ends_with(".env")
}

/// Whether a swept `key` (`stack.database_url`) names a field that may
/// hold a secret.
fn swept_secret(key: &str) -> bool {
    let (path, last) = key.rsplit_once('.').unwrap_or(("", key));
    let path = path.split('[').next().unwrap_or(path);
    holds_secret(path, last) || (key.contains(".env.") && key.contains("processes"))
}

/// The spans of the string values of `value` (at `path`) that may hold a
/// secret; `secret` when the field holding `value` may.
fn secret_spans(
    spans: &mut Vec<std::ops::Range<usize>>,
    path: &str,
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    secret: bool,
) {
    use toml::de::DeValue;
    match value.get_ref() {
        DeValue::String(_) if secret => spans.push(value.span()),
        DeValue::Array(items) => {
            for item in items {
                secret_spans(spans, path, item, secret);
            }
        }
        DeValue::Table(table) => {
            // A sweep's parameter: `{ key = "stack.database_url", values = [...] }`.
            let swept = table.iter().any(|(k, v)| {
                k.get_ref() == "key"
                    && matches!(v.get_ref(), DeValue::String(key) if swept_secret(key))
            });
            for (key, item) in table.iter() {
                let key = key.get_ref().as_ref();
                let own = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                let secret = secret || holds_secret(path, key) || (swept && key == "values");
                secret_spans(spans, &own, item, secret);
            }
        }
        _ => {}
    }
}

/// `text`, the scenario `experiment` was read from, with each of its
/// secrets replaced by `****` inside the values of the fields that may hold
/// one, and nowhere else: a password that is also a word of the scenario
/// (an architecture's name) leaves that word alone elsewhere. A value
/// whose secret is written with escapes is replaced whole.
pub fn redact_scenario(text: &str, experiment: &Experiment) -> String {
    let secrets = secrets(experiment);
    if secrets.is_empty() {
        return text.to_string();
    }
    let (document, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return redact(text, &secrets);
    }
    let root = toml::Spanned::new(
        document.span(),
        toml::de::DeValue::Table(document.into_inner()),
    );
    let mut spans = Vec::new();
    secret_spans(&mut spans, "", &root, false);
    spans.sort_by_key(|span| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for span in spans {
        let Some(raw) = out.get(span.clone()) else {
            continue;
        };
        let redacted = redact(raw, &secrets);
        // The value as read, after: a secret written with escapes is still in it.
        let decoded: String = toml::from_str::<toml::Value>(&format!("v = {redacted}"))
            .ok()
            .and_then(|v| v.get("v")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let replacement = if secrets.iter().any(|s| decoded.contains(s.as_str())) {
            "\"****\"".to_string()
        } else {
            redacted
        };
        out.replace_range(span, &replacement);
    }
    out
}

/// `text` with every one of `secrets` replaced by `****`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret, "****")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_that_is_also_a_word_of_the_scenario_is_redacted_in_its_field_alone() {
        let base = include_str!("../../experiments/db-crash-quick.toml");
        // The password is `rest`, an architecture's kind and name; the
        // Kafka credential is `kafka-drop`, another's name.
        let text = format!(
            "{base}\n[stack]\ndatabase_url = \"postgres://app:rest@db.example:5432/lab\"\n\
             bootstrap_servers = \"broker.example:9092\"\n\
             [stack.kafka]\n\"sasl.password\" = \"kafka-drop\"\n\"client.rack\" = \"rest\"\n"
        );
        let experiment = crate::validate::parse(&text, "case.toml").unwrap();
        let secrets = secrets(&experiment);
        assert!(secrets.contains(&"rest".to_string()), "{secrets:?}");
        let redacted = redact_scenario(&text, &experiment);
        assert!(
            redacted.contains("database_url = \"postgres://app:****@db.example:5432/lab\""),
            "{redacted}"
        );
        assert!(
            redacted.contains("\"sasl.password\" = \"****\""),
            "{redacted}"
        );
        // Everywhere else the words stand: the copy is the scenario.
        assert!(
            redacted.contains("\"client.rack\" = \"rest\""),
            "{redacted}"
        );
        assert!(
            redacted.contains("kind = \"rest\"\nname = \"rest\""),
            "{redacted}"
        );
        assert!(redacted.contains("name = \"kafka-drop\""), "{redacted}");
        let back = crate::validate::parse(&redacted, "copy.toml").unwrap();
        assert_eq!(back.architectures.len(), experiment.architectures.len());
        // Text redaction, as before, would have broken it.
        assert!(!redact(&text, &secrets).contains("kind = \"rest\""));
    }

    #[test]
    fn a_swept_address_and_a_secret_written_with_escapes_are_redacted() {
        let base = include_str!("../../experiments/db-crash-quick.toml");
        let text = format!(
            "{base}\n[stack]\ndatabase_url = \"postgres://app:p\\u0061ss@db.example/lab\"\n\
             [sweep]\nparameters = [{{ key = \"stack.database_url\", values = \
             [\"postgres://app:rest@a.example/lab\", \"postgres://app:other@b.example/lab\"] }}]\n"
        );
        let experiment = crate::validate::parse(&text, "case.toml").unwrap();
        let redacted = redact_scenario(&text, &experiment);
        assert!(redacted.contains("database_url = \"****\""), "{redacted}");
        assert!(
            redacted.contains(
                "\"postgres://app:****@a.example/lab\", \"postgres://app:****@b.example/lab\""
            ),
            "{redacted}"
        );
        assert!(redacted.contains("kind = \"rest\""), "{redacted}");
    }
}
