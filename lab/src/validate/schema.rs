//! The scenario format's JSON Schema, and the Markdown reference of every
//! field generated from it.

use serde_json::Value as Json;

use crate::experiment::Experiment;

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
        _ if node["anyOf"].is_array() => node["anyOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|branch| type_name(root, branch))
            .collect::<Vec<_>>()
            .join(" or "),
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
