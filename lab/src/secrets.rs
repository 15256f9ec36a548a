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
            .filter(|(key, value)| is_credential(key) && !value.trim_start().starts_with("{{"))
            .flat_map(|(_, value)| [expanded(value), value.clone()])
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

/// `text` with every one of `secrets` replaced by `****`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret, "****")
    })
}
