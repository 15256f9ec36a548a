//! Malformed scenarios: each is rejected with the right key path and line,
//! several problems are reported at once, and no input makes the parser
//! panic.

use faultline::validate::{Problem, parse};
use proptest::prelude::*;

/// A valid scenario to break in many ways; line numbers below refer to it
/// after the edit of each case.
const BASE: &str = r#"name = "demo"
duration = "60s"

[workload]
rate = { shape = "constant", rps = 50 }
client_timeout = "5s"

[[architectures]]
kind = "rest"
name = "rest"

[[architectures]]
kind = "kafka"
name = "kafka-buffered"
consumer = "buffered"

[[faults]]
kind = "db-crash"
at = "20s"
duration = "20s"

[[hypotheses]]
title = "nothing is lost"
architecture = "kafka-buffered"
metric = "lost_events"
max = 0
"#;

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "case.toml") {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

#[test]
fn the_base_scenario_is_valid() {
    assert!(problems(BASE).is_empty(), "{:?}", problems(BASE));
}

#[test]
fn every_malformed_scenario_names_its_key_and_line() {
    // (what, replace this, with this, expected path, expected line, a word of the message)
    let cases: &[(&str, &str, &str, &str, usize, &str)] = &[
        (
            "unknown top-level key",
            "duration = \"60s\"",
            "duration = \"60s\"\ndurtion = 3",
            "durtion",
            3,
            "did you mean `duration`",
        ),
        (
            "unknown key in a table",
            "client_timeout = \"5s\"",
            "client_timeout = \"5s\"\nclients = 3",
            "workload.clients",
            7,
            "unknown key",
        ),
        (
            "unknown key in an architecture",
            "consumer = \"buffered\"",
            "consumer = \"buffered\"\nbatch = 3",
            "architectures[1].batch",
            16,
            "did you mean `batch_size`",
        ),
        (
            "unknown key in a fault",
            "at = \"20s\"",
            "at = \"20s\"\nstart = \"1s\"",
            "faults[0].start",
            20,
            "unknown key",
        ),
        (
            "missing name",
            "name = \"demo\"\n",
            "",
            "name",
            1,
            "missing required key",
        ),
        (
            "missing architecture name",
            "kind = \"rest\"\nname = \"rest\"",
            "kind = \"rest\"",
            "architectures[0].name",
            8,
            "missing required key `name`",
        ),
        (
            "missing fault time",
            "at = \"20s\"\n",
            "",
            "faults[0].at",
            17,
            "missing required key `at`",
        ),
        (
            "missing hypothesis metric",
            "metric = \"lost_events\"\n",
            "",
            "hypotheses[0].metric",
            22,
            "missing required key `metric`",
        ),
        (
            "duration as a number",
            "duration = \"60s\"",
            "duration = 60",
            "duration",
            2,
            "durations are strings",
        ),
        (
            "duration without unit",
            "duration = \"60s\"",
            "duration = \"60\"",
            "duration",
            2,
            "not a duration",
        ),
        (
            "duration as gibberish",
            "client_timeout = \"5s\"",
            "client_timeout = \"soon\"",
            "workload.client_timeout",
            6,
            "not a duration",
        ),
        (
            "rate as a string",
            "rps = 50",
            "rps = \"50\"",
            "workload.rate.rps",
            5,
            "expected a number",
        ),
        (
            "rate of zero",
            "rps = 50",
            "rps = 0",
            "workload.rate.rps",
            5,
            "sends nothing",
        ),
        (
            "negative rate",
            "rps = 50",
            "rps = -5",
            "workload.rate.rps",
            5,
            "sends nothing",
        ),
        (
            "unknown rate shape",
            "shape = \"constant\"",
            "shape = \"constnt\"",
            "workload.rate.shape",
            5,
            "did you mean \"constant\"",
        ),
        (
            "rate shape missing",
            "shape = \"constant\", ",
            "",
            "workload.rate.shape",
            5,
            "missing required key `shape`",
        ),
        (
            "ramp missing its end",
            "shape = \"constant\", rps = 50",
            "shape = \"ramp\", from_rps = 1",
            "workload.rate.to_rps",
            5,
            "missing required key `to_rps`",
        ),
        (
            "unknown architecture kind",
            "kind = \"kafka\"",
            "kind = \"kafak\"",
            "architectures[1].kind",
            13,
            "did you mean \"kafka\"",
        ),
        (
            "unknown consumer mode",
            "consumer = \"buffered\"",
            "consumer = \"bufferd\"",
            "architectures[1].consumer",
            15,
            "did you mean \"buffered\"",
        ),
        (
            "rest with kafka settings",
            "kind = \"rest\"\nname = \"rest\"",
            "kind = \"rest\"\nname = \"rest\"\nbatch_size = 5",
            "architectures[0].batch_size",
            11,
            "unknown key",
        ),
        (
            "duplicate architecture name",
            "name = \"kafka-buffered\"",
            "name = \"rest\"",
            "architectures[1].name",
            14,
            "already the name",
        ),
        (
            "invalid architecture name",
            "name = \"kafka-buffered\"\n",
            "name = \"kafka buffered\"\n",
            "architectures[1].name",
            14,
            "not a valid name",
        ),
        (
            "unknown fault kind",
            "kind = \"db-crash\"",
            "kind = \"db-crush\"",
            "faults[0].kind",
            18,
            "did you mean \"db-crash\"",
        ),
        (
            "fault after the run",
            "at = \"20s\"",
            "at = \"90s\"",
            "faults[0].at",
            19,
            "when the run is over",
        ),
        (
            "fault ending after the run",
            "duration = \"20s\"\n\n[[hyp",
            "duration = \"50s\"\n\n[[hyp",
            "faults[0].duration",
            20,
            "after the run ends",
        ),
        (
            "latency without delay",
            "kind = \"db-crash\"",
            "kind = \"db-latency\"",
            "faults[0].delay",
            17,
            "missing required key `delay`",
        ),
        (
            "hypothesis on an unknown architecture",
            "architecture = \"kafka-buffered\"",
            "architecture = \"kafka-bufered\"",
            "hypotheses[0].architecture",
            24,
            "did you mean \"kafka-buffered\"",
        ),
        (
            "unknown metric",
            "metric = \"lost_events\"",
            "metric = \"lost\"",
            "hypotheses[0].metric",
            25,
            "not one of",
        ),
        (
            "hypothesis without a limit",
            "max = 0\n",
            "",
            "hypotheses[0]",
            22,
            "give a limit",
        ),
        (
            "hypothesis with two limits",
            "max = 0",
            "max = 0\nmin = 1",
            "hypotheses[0]",
            22,
            "not both",
        ),
        (
            "unknown phase",
            "max = 0",
            "max = 0\nphase = \"while\"",
            "hypotheses[0].phase",
            27,
            "not one of",
        ),
        (
            "repetitions of zero",
            "duration = \"60s\"",
            "duration = \"60s\"\nrepetitions = 0",
            "repetitions",
            3,
            "at least one",
        ),
        (
            "negative seed",
            "duration = \"60s\"",
            "duration = \"60s\"\nseed = -1",
            "seed",
            3,
            "below the minimum",
        ),
        (
            "bad run name",
            "name = \"demo\"",
            "name = \"my demo\"",
            "name",
            1,
            "not a valid name",
        ),
        (
            "external broker without servers",
            "duration = \"60s\"",
            "duration = \"60s\"\nstack = { broker = \"external\" }",
            "stack.broker",
            3,
            "bootstrap_servers",
        ),
        (
            "crash of an external database",
            "duration = \"60s\"",
            "duration = \"60s\"\nstack = { database = \"external\", database_url = \"postgres://x@h/db\" }",
            "faults[0].kind",
            19,
            "database is external",
        ),
        (
            "zero batch size",
            "consumer = \"buffered\"",
            "consumer = \"buffered\"\nbatch_size = 0",
            "architectures[1].batch_size",
            16,
            "at least one event",
        ),
        (
            "breaker as a number",
            "consumer = \"buffered\"",
            "consumer = \"buffered\"\nbreaker = 5",
            "architectures[1].breaker",
            16,
            "expected a table",
        ),
        (
            "negative order value",
            "duration = \"60s\"",
            "duration = \"60s\"\neconomics = { order_value = -1.0 }",
            "economics.order_value",
            3,
            "zero or more",
        ),
        (
            "two faults at once on the database's processes",
            "duration = \"20s\"\n",
            "duration = \"20s\"\n\n[[faults]]\nkind = \"db-freeze\"\nat = \"25s\"\nduration = \"5s\"\n",
            "faults[1].at",
            24,
            "also acts on postgres",
        ),
        (
            "a run longer than a day",
            "duration = \"60s\"",
            "duration = \"100000000h\"",
            "duration",
            2,
            "longer than \"24h\", the longest",
        ),
        (
            "a fault time near 2^64 seconds",
            "at = \"20s\"",
            "at = \"18446744073709551615s\"",
            "faults[0].at",
            19,
            "longest duration",
        ),
        (
            "a rate of 1e308",
            "rps = 50",
            "rps = 1e308",
            "workload.rate.rps",
            5,
            "not a number a scenario may give",
        ),
        (
            "a rate beyond the load generator",
            "rps = 50",
            "rps = 2000000",
            "workload.rate",
            5,
            "beyond one machine",
        ),
        (
            "more requests than memory holds",
            "rps = 50",
            "rps = 200000",
            "workload.rate",
            5,
            "held in memory",
        ),
        (
            "no connection for the driver",
            "client_timeout = \"5s\"",
            "client_timeout = \"5s\"\nconnections = 0",
            "workload.connections",
            7,
            "at least one connection",
        ),
        (
            "more connections than the driver keeps",
            "client_timeout = \"5s\"",
            "client_timeout = \"5s\"\nconnections = 4294967295",
            "workload.connections",
            7,
            "more than 10000",
        ),
        (
            "partitions that wrap around",
            "duration = \"60s\"",
            "duration = \"60s\"\nstack = { partitions = 4294967295 }",
            "stack.partitions",
            3,
            "more than 10000",
        ),
        (
            "a limit that is not a number",
            "max = 0",
            "max = nan",
            "hypotheses[0].max",
            26,
            "finite number",
        ),
        (
            "money of 1e308",
            "duration = \"60s\"",
            "duration = \"60s\"\neconomics = { order_value = 1e308 }",
            "economics.order_value",
            3,
            "not a number a scenario may give",
        ),
        (
            "a capacity error bound above every request",
            "duration = \"60s\"",
            "duration = \"60s\"\ncapacity = { max_error_rate = 1.5 }",
            "capacity.max_error_rate",
            3,
            "below 1",
        ),
        (
            "a capacity latency bound of zero",
            "duration = \"60s\"",
            "duration = \"60s\"\ncapacity = { max_p99 = \"0s\" }",
            "capacity.max_p99",
            3,
            "more than zero",
        ),
        (
            "a capacity reference of two minutes",
            "duration = \"60s\"",
            "duration = \"60s\"\ncapacity = { reference = \"2m\" }",
            "capacity.reference",
            3,
            "from 1s to 60s",
        ),
        (
            "infinite money",
            "duration = \"60s\"",
            "duration = \"60s\"\neconomics = { outages_per_year = inf }",
            "economics.outages_per_year",
            3,
            "finite number",
        ),
        (
            "TOML syntax error",
            "client_timeout = \"5s\"",
            "client_timeout = \"5s",
            "",
            6,
            "TOML syntax",
        ),
        (
            "fault jitter that could move the fault before the start",
            "duration = \"60s\"",
            "duration = \"60s\"\nfault_jitter = \"25s\"",
            "fault_jitter",
            3,
            "before the run starts",
        ),
        (
            "fault jitter that could move the fault past the end",
            "duration = \"60s\"",
            "duration = \"45s\"\nfault_jitter = \"10s\"",
            "fault_jitter",
            3,
            "give at most 5s",
        ),
        (
            "a fault length jitter as long as the fault",
            "duration = \"60s\"",
            "duration = \"60s\"\nfault_length_jitter = \"20s\"",
            "fault_length_jitter",
            3,
            "no time at all",
        ),
        (
            "a fault length jitter that could end the fault past the run",
            "duration = \"60s\"",
            "duration = \"45s\"\nfault_length_jitter = \"10s\"",
            "fault_length_jitter",
            3,
            "give at most 5s",
        ),
        (
            "more controls than the bound",
            "duration = \"60s\"",
            "duration = \"60s\"\ncontrol = 101",
            "control",
            3,
            "more than 100",
        ),
        (
            "a control that is neither a flag nor a count",
            "duration = \"60s\"",
            "duration = \"60s\"\ncontrol = \"yes\"",
            "control",
            3,
            "",
        ),
        (
            "fault jitter that is not a duration",
            "duration = \"60s\"",
            "duration = \"60s\"\nfault_jitter = 5",
            "fault_jitter",
            3,
            "",
        ),
    ];
    let mut cases = cases.to_vec();
    cases.extend([
        (
            "a share's limit that cannot fail",
            "metric = \"lost_events\"\nmax = 0",
            "metric = \"error_rate\"\nmax = 1.5",
            "hypotheses[0].max",
            26,
            "can never fail",
        ),
        (
            "a count's limit that cannot hold",
            "max = 0\n",
            "max = -1\n",
            "hypotheses[0].max",
            26,
            "can never hold",
        ),
        (
            "a minimum that cannot fail",
            "max = 0\n",
            "min = 0\n",
            "hypotheses[0].min",
            26,
            "can never fail",
        ),
    ]);
    assert!(cases.len() >= 30);
    expect_each(cases.iter().map(|(what, from, to, path, line, words)| {
        assert!(BASE.contains(from), "{what}: the base has no {from:?}");
        (*what, BASE.replacen(from, to, 1), *path, *line, *words)
    }));
}

/// Each case's text has a problem at `path` on `line` whose message says
/// `words`; every case that does not is listed.
fn expect_each<'a>(cases: impl Iterator<Item = (&'a str, String, &'a str, usize, &'a str)>) {
    let mut failures = Vec::new();
    for (what, text, path, line, words) in cases {
        let found = problems(&text);
        match found.iter().find(|p| p.path == path) {
            Some(p) if p.line == line && p.to_string().contains(words) => {}
            _ => failures.push(format!(
                "{what}: expected {path} on line {line} saying {words:?}, got:\n  {}",
                found
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fault_jitter_needs_a_fault_to_move() {
    let without: String = BASE
        .replacen(
            "[[faults]]\nkind = \"db-crash\"\nat = \"20s\"\nduration = \"20s\"\n",
            "",
            1,
        )
        .replacen(
            "duration = \"60s\"",
            "duration = \"60s\"\nfault_jitter = \"5s\"",
            1,
        );
    expect_each(std::iter::once((
        "fault jitter without faults",
        without,
        "fault_jitter",
        3,
        "no fault to move",
    )));
    // Within the run either way: valid.
    let fits = BASE.replacen(
        "duration = \"60s\"",
        "duration = \"60s\"\nfault_jitter = \"5s\"",
        1,
    );
    assert!(problems(&fits).is_empty(), "{:?}", problems(&fits));
}

#[test]
fn several_problems_are_reported_at_once() {
    let text = BASE
        .replacen("duration = \"60s\"", "duration = 60\ndurration = 1", 1)
        .replacen("kind = \"kafka\"", "kind = \"kafak\"", 1)
        .replacen("metric = \"lost_events\"", "metric = \"lost\"", 1);
    let found = problems(&text);
    let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "duration",
            "durration",
            "architectures[1].kind",
            "hypotheses[0].metric"
        ],
        "{found:?}"
    );
    let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted by line");
}

/// The base scenario with a `[sweep]` of `parameters`, one per line: with
/// no `mode`, the first on line 30.
fn with_sweep(parameters: &[&str], mode: &str) -> String {
    format!(
        "{BASE}\n[sweep]\n{mode}parameters = [\n{}\n]\n",
        parameters.join(",\n")
    )
}

#[test]
fn a_sweep_checks_every_key_and_every_value_where_it_is_written() {
    let valid = with_sweep(
        &[
            r#"  { key = "faults[0].duration", values = ["10s", "30s"] }"#,
            r#"  { key = "architectures.kafka-buffered.breaker.open_for", values = ["5s", "60s"] }"#,
            r#"  { key = "workload.retries.max_retries", values = [0, 2] }"#,
        ],
        "",
    );
    assert!(problems(&valid).is_empty(), "{:?}", problems(&valid));
    // (what, parameters, mode, expected path, expected line, a word of the message)
    type Case<'a> = (&'a str, &'a [&'a str], &'a str, &'a str, usize, &'a str);
    let cases: &[Case] = &[
        (
            "a key the scenario does not have",
            &[r#"  { key = "workload.rat.rps", values = [10] }"#],
            "",
            "sweep.parameters[0].key",
            30,
            "did you mean `rate`",
        ),
        (
            "an architecture that does not exist",
            &[r#"  { key = "architectures.kafka-drop.batch_size", values = [1] }"#],
            "",
            "sweep.parameters[0].key",
            30,
            "kafka-buffered",
        ),
        (
            "a fault index out of range",
            &[r#"  { key = "faults[3].duration", values = ["1s"] }"#],
            "",
            "sweep.parameters[0].key",
            30,
            "has 1 entry",
        ),
        (
            "a value of the wrong type",
            &[r#"  { key = "faults[0].duration", values = ["10s",
    30] }"#],
            "",
            "sweep.parameters[0].values[1]",
            31,
            "durations are strings",
        ),
        (
            "a value the format does not allow",
            &[
                r#"  { key = "architectures.kafka-buffered.consumer", values = ["drop", "bufferd"] }"#,
            ],
            "",
            "sweep.parameters[0].values[1]",
            30,
            "did you mean \"buffered\"",
        ),
        (
            "a key the format does not have",
            &[r#"  { key = "workload.timeout", values = ["1s"] }"#],
            "",
            "sweep.parameters[0].values[0]",
            30,
            "unknown key `timeout`",
        ),
        (
            "a value that breaks a rule across fields",
            &[r#"  { key = "faults[0].duration", values = ["10s", "50s"] }"#],
            "",
            "sweep.parameters[0].values[1]",
            30,
            "after the run",
        ),
        (
            "zip with lists of different lengths",
            &[
                r#"  { key = "faults[0].duration", values = ["10s", "20s"] }"#,
                r#"  { key = "faults[0].at", values = ["5s"] }"#,
            ],
            "mode = \"zip\"\n",
            "sweep.mode",
            29,
            "2, 1",
        ),
        (
            "the same key twice",
            &[
                r#"  { key = "faults[0].at", values = ["5s"] }"#,
                r#"  { key = "faults[0].at", values = ["6s"] }"#,
            ],
            "",
            "sweep.parameters[1].key",
            31,
            "already swept",
        ),
        (
            "a parameter without values",
            &[r#"  { key = "faults[0].at", values = [] }"#],
            "",
            "sweep.parameters[0].values",
            30,
            "at least one value",
        ),
    ];
    expect_each(
        cases
            .iter()
            .map(|(what, parameters, mode, path, line, words)| {
                (*what, with_sweep(parameters, mode), *path, *line, *words)
            }),
    );
}

#[test]
fn thousands_of_problems_are_capped_and_counted() {
    let unknown: String = (0..5000).map(|i| format!("unknown_{i} = 1\n")).collect();
    let found = problems(&format!("{BASE}{unknown}"));
    assert_eq!(found.len(), 201, "200 listed and one that counts the rest");
    assert_eq!(faultline::validate::total(&found), 5000);
    assert!(
        found[..200]
            .iter()
            .all(|p| p.message.starts_with("unknown key"))
    );
    assert!(
        found[200].message.contains("4800 more problems"),
        "{}",
        found[200]
    );
    // The first 200 in the file's order, each on its own line.
    let first = BASE.lines().count() + 1;
    let lines: Vec<usize> = found[..200].iter().map(|p| p.line).collect();
    assert_eq!(lines, (first..first + 200).collect::<Vec<_>>());
}

#[test]
fn the_cli_lists_every_problem_and_exits_with_2() {
    let dir = std::env::temp_dir().join(format!("faultline-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let good = dir.join("good.toml");
    std::fs::write(
        &bad,
        BASE.replacen("rps = 50", "rps = 0", 1)
            .replacen("at = \"20s\"", "at = \"99s\"", 1),
    )
    .unwrap();
    std::fs::write(&good, BASE).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("validate")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:5:"), "{stderr}");
    assert!(stderr.contains("workload.rate.rps"), "{stderr}");
    assert!(stderr.contains("bad.toml:19:"), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("good.toml: ok"));
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text, "fuzz.toml");
    }

    /// A valid scenario with a slice cut out or a byte changed never panics
    /// it, and any problem it reports points inside the text.
    #[test]
    fn mangled_scenarios_never_panic(cut in 0usize..BASE.len(), len in 0usize..40, byte in any::<u8>()) {
        let mut bytes = BASE.as_bytes().to_vec();
        let end = (cut + len).min(bytes.len());
        bytes.drain(cut..end);
        if cut < bytes.len() {
            bytes[cut] = byte;
        }
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Err(problems) = parse(&text, "fuzz.toml") {
            prop_assert!(!problems.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for problem in problems {
                prop_assert!(problem.line >= 1 && problem.line <= lines, "{problem}");
            }
        }
    }
}

#[test]
fn the_shipped_scenarios_are_valid_and_the_shipped_schema_is_current() {
    let experiments = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut scenarios = 0;
    for entry in std::fs::read_dir(&experiments).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("#:schema ./schema.json"),
                "{path:?} has no #:schema line"
            );
            if let Err(problems) = faultline::validate::load(&path) {
                panic!("{path:?}: {problems:?}");
            }
            scenarios += 1;
        }
    }
    assert!(scenarios >= 7, "only {scenarios} scenarios");
    // The examples' scenarios, with their programs and files found.
    let examples = experiments.join("../examples");
    for example in ["rest-as-service", "orders-api"] {
        let path = examples.join(example).join("scenario.toml");
        if let Err(problems) = faultline::validate::load(&path) {
            panic!("{path:?}: {problems:?}");
        }
    }
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(experiments.join("schema.json")).unwrap())
            .unwrap();
    assert_eq!(
        shipped,
        faultline::validate::schema(),
        "experiments/schema.json is stale: regenerate it with `faultline schema > experiments/schema.json`"
    );
}

#[test]
fn the_default_scenario_reproduces_the_original_poc() {
    use faultline::experiment::*;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/db-crash.toml");
    let (experiment, _) = faultline::validate::load(&path).unwrap();
    assert_eq!(experiment.duration, Span::secs(300));
    assert_eq!(
        experiment
            .workload
            .rate
            .schedule(experiment.duration.0)
            .len(),
        15_000
    );
    assert_eq!(experiment.workload.client_timeout, Span::secs(5));
    assert_eq!(experiment.faults.len(), 1);
    assert_eq!(experiment.faults[0].kind, FaultKind::DbCrash);
    assert_eq!(
        (experiment.faults[0].at, experiment.faults[0].duration),
        (Span::secs(90), Span::secs(120))
    );
    let names: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    assert_eq!(
        names,
        ["rest", "rest-retry", "kafka-buffered", "kafka-drop"]
    );
    // Only the added REST architecture's clients retry, long enough to
    // outlast the two-minute outage.
    assert_eq!(
        experiment.architectures[0]
            .retries(&experiment.workload)
            .max_retries,
        0
    );
    let retry = experiment.architectures[1].retries(&experiment.workload);
    assert!(retry.total_wait() > std::time::Duration::from_secs(120));
    assert_eq!(
        experiment.economics.order_value * experiment.economics.orders_lost_per_failed_event,
        1.25
    );
}

#[test]
fn run_and_sweep_refuse_an_invalid_scenario_with_2_and_no_backtrace() {
    let dir = std::env::temp_dir().join(format!("faultline-invalid-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("bad.toml");
    std::fs::write(&scenario, "name = \"bad\"\nduration = 5\n").unwrap();
    for command in ["run", "sweep"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg(command)
            .arg(&scenario)
            .arg("--out")
            .arg(dir.join("out"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("bad.toml:2:12: duration: expected a string"),
            "{stderr}"
        );
        assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
        assert!(
            !dir.join("out").exists(),
            "{command} created its output folder"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_speaks_json_and_github_annotations_for_ci() {
    let dir =
        std::env::temp_dir().join(format!("faultline-validate-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\nduration = 5\ndurtion = \"1s\"\n").unwrap();
    let good =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/db-crash-quick.toml");
    let run = |format: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["validate", "--format", format])
            .arg(&bad)
            .arg(&good)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{format}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json[0]["valid"], false);
    assert_eq!(json[0]["problems"], 2);
    assert_eq!(json[0]["listed"][0]["path"], "duration");
    assert_eq!(json[0]["listed"][0]["line"], 2);
    assert_eq!(json[1]["valid"], true);
    let github = run("github");
    let lines: Vec<&str> = github.lines().collect();
    assert_eq!(lines.len(), 2, "{github}");
    assert!(
        lines[0].starts_with(&format!(
            "::error file={},line=2,col=12,title=duration::expected a string",
            bad.display()
        )),
        "{github}"
    );
    assert!(lines[1].contains("title=durtion::unknown key"), "{github}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retries_and_warmup_are_checked_where_they_are_written() {
    let problems = faultline::validate::parse(
        "name = \"r\"\nduration = \"20s\"\n\
         [workload]\ndriver = \"k6\"\nwarmup = \"12s\"\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         retries = { max_retries = 3, backoff = \"2s\", max_backoff = \"1s\" }\n\
         [[faults]]\nkind = \"db-crash\"\nat = \"10s\"\nduration = \"5s\"\n",
        "r.toml",
    )
    .unwrap_err();
    let text = faultline::validate::listed(&problems);
    // k6 retries as the native driver does: a retry count is no problem.
    assert!(
        !problems.iter().any(|p| p.path.ends_with("max_retries")),
        "{text}"
    );
    for (key, line, words) in [
        (
            "architectures[0].retries.max_backoff",
            9,
            "1s is shorter than the first wait, 2s",
        ),
        (
            "workload.warmup",
            5,
            "ends after the first fault starts, at 10s",
        ),
    ] {
        let problem = problems
            .iter()
            .find(|p| p.path == key)
            .unwrap_or_else(|| panic!("{key} not in {text}"));
        assert_eq!(problem.line, line, "{text}");
        assert!(problem.message.contains(words), "{text}");
    }
}

#[test]
fn a_command_fault_needs_its_commands() {
    let listed = |text: &str| {
        faultline::validate::listed(&faultline::validate::parse(text, "c.toml").unwrap_err())
    };
    // A missing end command is named at its table.
    let text = listed(
        "name = \"c\"\nduration = \"20s\"\n\
         [[faults]]\nkind = \"command\"\nat = \"6s\"\nduration = \"5s\"\nstart = \"true\"\n",
    );
    assert!(
        text.contains("faults[0].end: missing required key `end`"),
        "{text}"
    );
    // An empty command and a zero timeout, at their lines; two command
    // faults may overlap (they act on what they say).
    let text = listed(
        "name = \"c\"\nduration = \"20s\"\n\
         [[faults]]\nkind = \"command\"\nat = \"5s\"\nduration = \"5s\"\nstart = \" \"\nend = \"true\"\ntimeout = \"0s\"\n\
         [[faults]]\nkind = \"command\"\nat = \"6s\"\nduration = \"5s\"\nstart = \"true\"\nend = \"true\"\n",
    );
    assert!(text.contains("c.toml:7:"), "{text}");
    assert!(
        text.contains("faults[0].start: the command is empty"),
        "{text}"
    );
    assert!(
        text.contains("faults[0].timeout: a timeout of zero kills every command"),
        "{text}"
    );
    assert!(!text.contains("overlaps"), "{text}");
}

#[test]
fn kafka_client_settings_are_checked_at_their_keys() {
    let text = faultline::validate::listed(
        &faultline::validate::parse(
            "name = \"k\"\n\
             [stack]\nreplication_factor = 3\nmin_insync_replicas = 4\n\
             [stack.kafka]\n\"acks\" = \"1\"\n\"sasl.password\" = \"${FAULTLINE_SURELY_UNSET_VAR}\"\n\
             \"request.required.acks\" = \"1\"\n\"fetch.wait.max.mss\" = \"10\"\n\
             \"SASL.PASSWORD\" = \"hunter2-Secret\"\n\"socket.timeout.ms\" = \"soon\"\n",
            "k.toml",
        )
        .unwrap_err(),
    );
    // What librdkafka itself refuses, asked before anything starts; an
    // alias of a setting the services keep; a credential never quoted.
    assert!(!text.contains("hunter2-Secret"), "{text}");
    for (line, words) in [
        (
            3,
            "stack.replication_factor: the lab's own broker is a single node",
        ),
        (4, "stack.min_insync_replicas: 4 in-sync replicas of 3"),
        (6, "stack.kafka.acks: the services set acks themselves"),
        (
            7,
            "stack.kafka.sasl.password: the environment variable FAULTLINE_SURELY_UNSET_VAR is not set",
        ),
        (
            8,
            "stack.kafka.request.required.acks: the services set request.required.acks themselves",
        ),
        (9, "stack.kafka.fetch.wait.max.mss: librdkafka refuses it"),
        (
            10,
            "librdkafka refuses SASL.PASSWORD (its value is not shown",
        ),
        (11, "stack.kafka.socket.timeout.ms: librdkafka refuses it"),
    ] {
        assert!(text.contains(&format!("k.toml:{line}:")), "{line}: {text}");
        assert!(text.contains(words), "{words}: {text}");
    }
    // On an external cluster the defaults are 3 replicas, 2 in sync.
    let experiment = faultline::validate::parse(
        "name = \"k\"\n[stack]\nbroker = \"external\"\nbootstrap_servers = \"kafka:9092\"\n",
        "k.toml",
    )
    .unwrap();
    assert_eq!(experiment.stack.replication(), (3, 2));
    assert_eq!(
        faultline::validate::parse("name = \"k\"\n", "k.toml")
            .unwrap()
            .stack
            .replication(),
        (1, 1)
    );
}

#[test]
fn a_group_commit_is_checked_where_it_is_written_and_reaches_the_service() {
    let text = |group: &str| {
        format!(
            "name = \"g\"\nduration = \"20s\"\n\
             [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
             group_commit = {group}\n"
        )
    };
    let problems = faultline::validate::parse(&text("{ max_rows = 1 }"), "g.toml").unwrap_err();
    let listed = faultline::validate::listed(&problems);
    let problem = problems
        .iter()
        .find(|p| p.path == "architectures[0].group_commit.max_rows")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(problem.line, 6, "{listed}");
    assert!(problem.message.contains("a group holds 2 to"), "{listed}");
    let problems =
        faultline::validate::parse(&text("{ max_rows = 10, max_wait = \"1m\" }"), "g.toml")
            .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "architectures[0].group_commit.max_wait"
                && p.message.contains("statement timeout")),
        "{}",
        faultline::validate::listed(&problems)
    );
    // A valid one becomes the service's flags.
    let experiment =
        faultline::validate::parse(&text("{ max_rows = 50, max_wait = \"3ms\" }"), "g.toml")
            .unwrap();
    let plan = faultline::plan::Plan::of(&experiment, None);
    let printed = format!("{plan:?}");
    assert!(printed.contains("--group-commit-max-rows=50"), "{printed}");
    assert!(
        printed.contains("--group-commit-max-wait-ms=3"),
        "{printed}"
    );
}

/// A valid scenario with a `service` architecture, to break.
const SERVICE: &str = r#"name = "own"
duration = "60s"

[[architectures]]
kind = "service"
name = "orders"
topics = [{ name = "orders-{{ run.id }}", partitions = 3 }]

[[architectures.processes]]
name = "api"
command = ["sh", "-c", "exec my-api --port {{ port }}"]
env = { PGPASSWORD = "{{ db.password }}", PGHOST = "{{ db.host }}" }
ready = { http = "/health" }

[architectures.request]
path = "/orders"
body = '{"ref": "{{ event.id }}", "lat": {{ event.lat }}}'
ok = [201]

[architectures.audit]
query = "SELECT ref AS event_id, created_at AS stored_at FROM orders"

[[faults]]
kind = "process-kill"
architecture = "orders"
process = "api"
at = "20s"
duration = "5s"
"#;

#[test]
fn a_service_declaration_is_checked_where_it_is_written() {
    assert!(problems(SERVICE).is_empty(), "{:?}", problems(SERVICE));
    let long_series = format!(
        "metrics = {{ rows = \"{}\" }}\nready = {{ http = \"/health\" }}",
        "r".repeat(300)
    );
    // (what, replace this, with this, expected path, a word of the message);
    // the line is where the replacement starts.
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "no command",
            r#"command = ["sh", "-c", "exec my-api --port {{ port }}"]"#,
            "command = []",
            "architectures[0].processes[0].command",
            "needs a command",
        ),
        (
            "an unknown variable in an argument",
            "--port {{ port }}",
            "--port {{ prot }}",
            "architectures[0].processes[0].command[2]",
            "did you mean `port`",
        ),
        (
            "a password on the command line",
            "--port {{ port }}",
            "--password {{ db.password }}",
            "architectures[0].processes[0].command[2]",
            "`ps`",
        ),
        (
            "an unknown variable in the environment",
            r#"PGHOST = "{{ db.host }}""#,
            r#"PGHOST = "{{ database.host }}""#,
            "architectures[0].processes[0].env.PGHOST",
            "not a variable",
        ),
        (
            "a bad environment name",
            r#"PGHOST = "{{ db.host }}""#,
            r#""1PG-HOST" = "{{ db.host }}""#,
            "architectures[0].processes[0].env.1PG-HOST",
            "not an environment variable",
        ),
        (
            "a pool's series with a space in its name",
            r#"ready = { http = "/health" }"#,
            "metrics = { connection_held = \"hikari usage\" }\nready = { http = \"/health\" }",
            "architectures[0].processes[0].metrics.connection_held",
            "not a Prometheus series",
        ),
        (
            "a pool's series of 300 characters",
            r#"ready = { http = "/health" }"#,
            &long_series,
            "architectures[0].processes[0].metrics.rows",
            "at most 256 characters",
        ),
        (
            "two ways to be ready",
            r#"ready = { http = "/health" }"#,
            r#"ready = { http = "/health", tcp = true }"#,
            "architectures[0].processes[0].ready",
            "one way",
        ),
        (
            "a request without the event's id",
            r#"body = '{"ref": "{{ event.id }}", "lat": {{ event.lat }}}'"#,
            r#"body = '{"lat": {{ event.lat }}}'"#,
            "architectures[0].request.body",
            "event.id",
        ),
        (
            "a process variable in the body",
            r#"body = '{"ref": "{{ event.id }}", "lat": {{ event.lat }}}'"#,
            r#"body = '{"ref": "{{ event.id }}", "pw": "{{ db.password }}"}'"#,
            "architectures[0].request.body",
            "not a variable",
        ),
        (
            "an unclosed hole",
            r#"path = "/orders""#,
            r#"path = "/orders/{{ event.id""#,
            "architectures[0].request.path",
            "never closed",
        ),
        (
            "a path without its slash",
            r#"path = "/orders""#,
            r#"path = "orders""#,
            "architectures[0].request.path",
            "`/`",
        ),
        (
            "a GET",
            r#"path = "/orders""#,
            "method = \"GET\"\npath = \"/orders\"",
            "architectures[0].request.method",
            "POST, PUT or PATCH",
        ),
        (
            "a status that is not a success",
            "ok = [201]",
            "ok = [201, 500]",
            "architectures[0].request.ok[1]",
            "2xx",
        ),
        (
            "a request to no process",
            r#"path = "/orders""#,
            "process = \"worker\"\npath = \"/orders\"",
            "architectures[0].request.process",
            "no process is named",
        ),
        (
            "an audit that writes",
            r#"query = "SELECT ref AS event_id, created_at AS stored_at FROM orders""#,
            r#"query = "DELETE FROM orders""#,
            "architectures[0].audit.query",
            "not a SELECT",
        ),
        (
            "an audit of two statements",
            r#"query = "SELECT ref AS event_id, created_at AS stored_at FROM orders""#,
            r#"query = "SELECT ref AS event_id, created_at AS stored_at FROM orders; DROP TABLE orders""#,
            "architectures[0].audit.query",
            "more than one statement",
        ),
        (
            "an audit without its columns",
            r#"query = "SELECT ref AS event_id, created_at AS stored_at FROM orders""#,
            r#"query = "SELECT ref, created_at FROM orders""#,
            "architectures[0].audit.query",
            "event_id",
        ),
        (
            "a topic name with a space",
            r#"topics = [{ name = "orders-{{ run.id }}", partitions = 3 }]"#,
            r#"topics = [{ name = "my orders", partitions = 3 }]"#,
            "architectures[0].topics[0].name",
            "not a topic name",
        ),
        (
            "a process-kill of no process",
            "process = \"api\"\nat",
            "process = \"worker\"\nat",
            "faults[0].process",
            "no process named",
        ),
        (
            "two processes of one name",
            "[architectures.request]",
            "[[architectures.processes]]\nname = \"api\"\ncommand = [\"true\"]\n\n[architectures.request]",
            "architectures[0].processes[1].name",
            "already the name",
        ),
    ];
    // The replacement starts where `from` did.
    let line_of = |from: &str| SERVICE[..SERVICE.find(from).unwrap()].matches('\n').count() + 1;
    let texts: Vec<(String, usize)> = cases
        .iter()
        .map(|(what, from, to, _, _)| {
            assert!(SERVICE.contains(from), "{what}: the base has no {from:?}");
            (SERVICE.replacen(from, to, 1), line_of(from))
        })
        .collect();
    expect_each(
        cases
            .iter()
            .zip(&texts)
            .map(|((what, _, to, path, words), (text, line))| {
                // A new table's name is on the line below its header.
                let line = if to.starts_with("[[") {
                    line + 1
                } else {
                    *line
                };
                (*what, text.clone(), *path, line, *words)
            }),
    );
}

#[test]
fn a_services_programs_and_files_are_looked_for_from_the_scenarios_folder() {
    let dir = std::env::temp_dir().join(format!("faultline-own-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = SERVICE
        .replace(
            r#"command = ["sh", "-c", "exec my-api --port {{ port }}"]"#,
            r#"command = ["./no-such-api", "--port", "{{ port }}"]"#,
        )
        .replace("topics = [", "setup_sql = \"schema.sql\"\ntopics = [");
    let file = dir.join("own.toml");
    std::fs::write(&file, &scenario).unwrap();
    let found = faultline::validate::load(&file).unwrap_err();
    let said = |path: &str| found.iter().find(|p| p.path == path).map(|p| p.to_string());
    assert!(
        said("architectures[0].processes[0].command[0]").is_some_and(|p| p.contains("no-such-api")),
        "{found:?}"
    );
    assert!(
        said("architectures[0].setup_sql").is_some_and(|p| p.contains("schema.sql")),
        "{found:?}"
    );
    // Both there, beside the scenario: valid, wherever faultline runs.
    std::fs::write(dir.join("schema.sql"), "SELECT 1;").unwrap();
    std::fs::write(dir.join("no-such-api"), "#!/bin/sh\n").unwrap();
    let (experiment, _) = faultline::validate::load(&file).unwrap();
    assert_eq!(
        experiment.folder.as_deref(),
        Some(dir.canonicalize().unwrap().as_path())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_name_of_100000_characters_is_refused_at_its_line_in_a_short_message() {
    let long = "n".repeat(100_000);
    let text = BASE.replacen("name = \"demo\"", &format!("name = \"{long}\""), 1);
    let found = problems(&text);
    let problem = found
        .iter()
        .find(|p| p.path == "name")
        .expect("a problem at name");
    assert_eq!(problem.line, 1);
    let said = problem.to_string();
    assert!(
        said.contains("100000 characters") && said.len() < 400,
        "{said}"
    );
    let text = BASE.replacen("name = \"rest\"", &format!("name = \"{long}\""), 1);
    let found = problems(&text);
    let problem = found
        .iter()
        .find(|p| p.path == "architectures[0].name")
        .expect("a problem at the architecture's name");
    assert!(problem.to_string().len() < 400, "{problem}");
}

#[test]
fn an_integer_too_large_for_its_key_is_reported_at_the_key() {
    for (line, text) in [
        ("repetitions = 99999999999", "repetitions"),
        ("seed = 99999999999999999999999", "seed"),
    ] {
        let scenario = BASE.replacen(
            "duration = \"60s\"",
            &format!("duration = \"60s\"\n{line}"),
            1,
        );
        let found = problems(&scenario);
        let problem = found
            .iter()
            .find(|p| p.path == text)
            .unwrap_or_else(|| panic!("{line}: {found:?}"));
        assert_eq!(problem.line, 3, "{problem}");
        assert!(
            problem.message.contains("the most this key holds"),
            "{problem}"
        );
    }
}

#[test]
fn every_syntax_error_is_listed_even_after_a_header_that_cannot_be_read() {
    // The parser skips to the next header after one it cannot read: the
    // errors below an unclosed header are found all the same, each at its
    // line, and nothing is made up (the keys of the unreadable table do not
    // collide with the document's).
    let cases = [
        (
            "name = \"a\"\nname = \"b\"\n[workload\nname = \"c\"\nseed = 1 2\n",
            vec![2, 3, 5],
        ),
        (
            "[[architectures]\nkind = \"rest\"\nname = \"r\"\nname = \"s\"\nseed = 1x\n",
            vec![1, 4, 5],
        ),
        ("[a\ny = 1 1\n[b]\nz = 1\n[c\nx = 1 1\n", vec![1, 2, 5, 6]),
        ("[a\n[b\n[c\nx = 1 1\n", vec![1, 2, 3, 4]),
    ];
    for (text, lines) in cases {
        let found = problems(text);
        assert!(
            found.iter().all(|p| p.message.starts_with("TOML syntax")),
            "{text}: {found:?}"
        );
        assert_eq!(
            found.iter().map(|p| p.line).collect::<Vec<_>>(),
            lines,
            "{text}: {found:?}"
        );
    }
}
