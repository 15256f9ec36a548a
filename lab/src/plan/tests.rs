//! The plan's tests: what a scenario lowers to.

use super::*;
use crate::secrets::*;

fn plan(toml: &str) -> Plan {
    let experiment = crate::validate::parse(toml, "test.toml").expect("a valid scenario");
    Plan::of(&experiment, None)
}

/// The flags the plan gives each service are read by the services'
/// own command-line types into the scenario's settings, for every
/// shipped scenario: a flag renamed on one side fails here.
#[test]
fn every_shipped_scenarios_service_flags_parse_as_the_services_read_them() {
    use clap::Parser;
    use faultline_services::consumer::ConsumerConfig;
    use faultline_services::producer::ProducerConfig;
    use faultline_services::rest::RestConfig;
    use faultline_services::store::DbConfig;

    let ms = |span: Span| span.0.as_millis() as u64;
    let same_pool = |db: &DbConfig, pool: &Pool| {
        assert_eq!(db.pool_size, pool.size as usize);
        assert_eq!(db.acquire_timeout_ms, ms(pool.acquire_timeout));
        assert_eq!(db.connect_timeout_ms, ms(pool.connect_timeout));
        assert_eq!(db.statement_timeout_ms, ms(pool.statement_timeout));
        assert_eq!(db.idle_timeout_ms, ms(pool.idle_timeout));
    };
    let parse = |program: &str, args: &[String]| {
        std::iter::once(program.to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let (experiment, _) = crate::validate::load(&path).expect("a valid scenario");
        let plan = Plan::of(&experiment, None);
        for (settings, planned) in experiment
            .architectures
            .iter()
            .zip(&plan.stack.architectures)
        {
            match (settings, planned) {
                (
                    ArchitectureSettings::Rest {
                        name,
                        pool,
                        group_commit,
                        ..
                    },
                    Architecture::Rest { args, .. },
                ) => {
                    let rest = RestConfig::try_parse_from(parse("faultline-rest", args))
                        .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
                    same_pool(&rest.db, pool);
                    assert_eq!(&rest.stored_by, name);
                    let group = rest.group_commit();
                    assert_eq!(
                        group.map(|g| g.max_rows as u32),
                        group_commit.as_ref().map(|g| g.max_rows)
                    );
                    assert_eq!(
                        group.map(|g| g.max_wait),
                        group_commit.as_ref().map(|g| g.max_wait.0)
                    );
                }
                (
                    ArchitectureSettings::Kafka {
                        name,
                        consumer,
                        delivery_timeout,
                        batch_size,
                        batch_linger,
                        breaker,
                        pool,
                        ..
                    },
                    Architecture::Kafka {
                        mode,
                        producer_args,
                        consumer_args,
                        ..
                    },
                ) => {
                    let producer =
                        ProducerConfig::try_parse_from(parse("faultline-producer", producer_args))
                            .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
                    assert_eq!(producer.delivery_timeout_ms, ms(*delivery_timeout));
                    // The stack adds the topic, the mode and the group.
                    let mut args = consumer_args.clone();
                    args.extend([
                        "--mode".into(),
                        mode_name(*mode),
                        "--group".into(),
                        "g".into(),
                    ]);
                    let read = ConsumerConfig::try_parse_from(parse("faultline-consumer", &args))
                        .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
                    assert_eq!(read.mode, *consumer);
                    assert_eq!(read.stored_by.as_ref(), Some(name));
                    assert_eq!(read.batch_size, *batch_size as usize);
                    assert_eq!(read.batch_linger_ms, ms(*batch_linger));
                    assert_eq!(read.breaker_failures, breaker.failures);
                    assert_eq!(read.breaker_open_ms, ms(breaker.open_for));
                    assert_eq!(read.breaker_successes, breaker.successes);
                    same_pool(&read.db, pool);
                }
                (settings, planned) => panic!("{settings:?} planned as {planned:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} architectures");
}

#[test]
fn the_default_scenario_lowers_to_the_originals_run() {
    let plan =
        plan("name = \"d\"\n[[faults]]\nkind = \"db-crash\"\nat = \"90s\"\nduration = \"120s\"\n");
    assert_eq!(plan.duration, Duration::from_secs(300));
    assert_eq!(plan.load.requests, 15_000);
    assert_eq!(plan.load.peak_rps, 50.0);
    assert_eq!(plan.load.driver, DriverSetting::Native);
    assert_eq!(plan.load.settings.timeout, Duration::from_secs(5));
    // 50/s × 5 s outstanding at most, doubled, at least 1,000.
    assert_eq!(plan.load.settings.max_in_flight, 1000);
    assert_eq!(
        plan.architectures(),
        ["rest", "kafka-buffered", "kafka-drop"]
    );
    assert_eq!(plan.kafka_architectures(), ["kafka-buffered", "kafka-drop"]);
    assert_eq!(plan.faults.len(), 1);
    assert_eq!(plan.faults[0].to_string(), "db-crash@1m 30s+2m");
    assert_eq!(plan.faults[0].end(), Duration::from_secs(210));
    let Architecture::Kafka {
        mode,
        consumer_args,
        producer_args,
        ..
    } = &plan.stack.architectures[2]
    else {
        panic!("the third architecture is Kafka");
    };
    assert_eq!(*mode, Mode::Drop);
    for flag in [
        "--batch-size=1",
        "--breaker-failures=5",
        "--breaker-open-ms=60000",
        "--breaker-successes=3",
        "--pool-size=10",
        "--stored-by=kafka-drop",
    ] {
        assert!(consumer_args.iter().any(|a| a == flag), "{flag}");
    }
    assert_eq!(producer_args, &["--delivery-timeout-ms=5000"]);
}

#[test]
fn repetitions_get_their_own_seeds_and_the_same_schedule() {
    let plan = plan(
        "name = \"r\"\nduration = \"10s\"\nrepetitions = 3\nseed = 9\n\
         [workload]\nrate = { shape = \"ramp\", from_rps = 100, to_rps = 300 }\n\
         retries = { max_retries = 2 }\n",
    );
    assert_eq!(plan.load.seeds.len(), 3);
    assert_eq!(plan.load.seeds[0], 9);
    assert_ne!(plan.load.seeds[1], plan.load.seeds[2]);
    assert_eq!(plan.load.settings_of(2, 0).seed, plan.load.seeds[2]);
    assert_eq!(plan.load.schedule().len(), plan.load.requests);
    assert!((plan.load.requests as i64 - 2000).abs() <= 1);
    // 300/s × (5 s × 3 attempts + 0.2 s + 0.4 s of backoff), doubled.
    assert_eq!(plan.load.settings.max_in_flight, 9360);
}

#[test]
fn an_architecture_with_its_own_retries_keeps_them_the_others_get_the_workloads() {
    let plan = plan(
        "name = \"r\"\nduration = \"10s\"\n[workload]\nretries = { max_retries = 1 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest-retry\"\n\
         retries = { max_retries = 10, backoff = \"1s\", max_backoff = \"30s\" }\n",
    );
    assert_eq!(plan.load.settings_of(0, 0).retries.max_retries, 1);
    let retry = plan.load.settings_of(0, 1).retries;
    assert_eq!(retry.max_retries, 10);
    // 1, 2, 4, 8, 16, then capped at 30 s.
    assert_eq!(retry.wait_after(5), Duration::from_secs(16));
    assert_eq!(retry.wait_after(6), Duration::from_secs(30));
    assert_eq!(retry.total_wait(), Duration::from_secs(31 + 5 * 30));
    // 50/s × (5 s × 11 attempts + 181 s of backoff), doubled.
    assert_eq!(plan.load.settings.max_in_flight, 23_600);
}

#[test]
fn fault_jitter_moves_each_repetitions_faults_by_its_own_seeded_offset() {
    let scenario = |seed: u64| {
        format!(
            "name = \"j\"\nduration = \"60s\"\nrepetitions = 8\ncontrol = true\nseed = {seed}\n\
             fault_jitter = \"5s\"\n\
             [[faults]]\nkind = \"db-crash\"\nat = \"20s\"\nduration = \"10s\"\n\
             [[faults]]\nkind = \"db-latency\"\nat = \"40s\"\nduration = \"5s\"\ndelay = \"100ms\"\n"
        )
    };
    let jittered = plan(&scenario(1));
    let offsets = &jittered.fault_offsets_ms;
    assert_eq!(offsets.len(), 8);
    assert!(offsets.iter().all(|o| o.abs() <= 5_000), "{offsets:?}");
    let mut distinct = offsets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 6, "{offsets:?}");
    for (r, offset) in offsets.iter().enumerate() {
        let faults = jittered.faults_of(r as u32);
        // Both faults move together, their spacing and lengths kept.
        let first = faults[0].start.as_millis() as i64;
        assert_eq!(first, 20_000 + offset);
        assert_eq!(faults[1].start - faults[0].start, Duration::from_secs(20));
        assert_eq!(faults[0].duration, Duration::from_secs(10));
    }
    // The control has none; the same seed draws the same offsets, another
    // seed others.
    assert!(jittered.faults_of(8).is_empty());
    assert_eq!(&plan(&scenario(1)).fault_offsets_ms, offsets);
    assert_ne!(&plan(&scenario(2)).fault_offsets_ms, offsets);
    // A length jitter makes each repetition's faults longer or shorter
    // by its own draw, apart from the moves.
    let longer = plan(&scenario(1).replace(
        "fault_jitter = \"5s\"\n",
        "fault_jitter = \"5s\"\nfault_length_jitter = \"4s\"\n",
    ));
    assert_eq!(
        &longer.fault_offsets_ms, offsets,
        "the moves are the same draws"
    );
    let lengths = &longer.fault_length_offsets_ms;
    assert!(lengths.iter().all(|o| o.abs() <= 4_000), "{lengths:?}");
    assert_ne!(lengths, offsets);
    for (r, by) in lengths.iter().enumerate() {
        let faults = longer.faults_of(r as u32);
        assert_eq!(faults[0].duration.as_millis() as i64, 10_000 + by);
        assert_eq!(faults[1].duration.as_millis() as i64, 5_000 + by);
    }
    // Without a jitter, every repetition's faults are as written.
    let fixed = plan(&scenario(1).replace("fault_jitter = \"5s\"\n", ""));
    assert!(fixed.fault_offsets_ms.iter().all(|o| *o == 0));
    assert_eq!(fixed.faults_of(3)[0].start, Duration::from_secs(20));
}

#[test]
fn controls_run_among_the_faulted_repetitions_as_many_as_asked_for() {
    let order = |repetitions: u32, control: &str| {
        let plan = plan(&format!(
            "name = \"c\"\nduration = \"20s\"\nrepetitions = {repetitions}\ncontrol = {control}\n"
        ));
        let order = plan.order();
        assert_eq!(order.len() as u32, plan.runs());
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..plan.runs()).collect::<Vec<_>>());
        assert!(
            order
                .iter()
                .all(|n| plan.is_control(*n) == (*n >= repetitions))
        );
        order
    };
    assert_eq!(order(1, "false"), [0]);
    assert_eq!(order(1, "true"), [0, 1]);
    assert_eq!(order(3, "3"), [0, 3, 1, 4, 2, 5]);
    assert_eq!(order(3, "1"), [0, 1, 3, 2]);
    assert_eq!(order(4, "2"), [0, 4, 1, 2, 5, 3]);
    assert_eq!(order(1, "3"), [0, 1, 2, 3]);
    // Every control has no fault, every faulted repetition its faults.
    let plan = plan(
        "name = \"c\"\nduration = \"20s\"\nrepetitions = 2\ncontrol = 2\n\
         [[faults]]\nkind = \"db-crash\"\nat = \"5s\"\nduration = \"5s\"\n",
    );
    assert_eq!(plan.faults_of(1).len(), 1);
    assert!(plan.faults_of(2).is_empty() && plan.faults_of(3).is_empty());
}

#[test]
fn the_plan_prints_as_json_with_units_in_names() {
    let plan = plan(
        "name = \"p\"\nduration = \"20s\"\n[stack]\nbroker = \"external\"\n\
         bootstrap_servers = \"kafka:9092\"\n\
         [[faults]]\nkind = \"db-latency\"\nat = \"5s\"\nduration = \"5s\"\ndelay = \"200ms\"\n",
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["duration_s"], 20.0);
    assert_eq!(json["stack"]["broker"], "external:kafka:9092");
    assert_eq!(json["stack"]["database"], "local");
    assert_eq!(json["faults"][0]["kind"], "db-latency");
    assert_eq!(json["faults"][0]["delay"], "200ms");
    assert_eq!(json["faults"][0]["start_s"], 5.0);
    assert_eq!(json["stack"]["architectures"][1]["mode"], "buffered");
    assert_eq!(json["load"]["settings"]["timeout_ms"], 5000);
    assert_eq!(json["load"]["segments"][0]["end_s"], 20.0);
}

#[test]
fn fault_specs_parse_and_print() {
    let spec: FaultSpec = "db-crash@90s+2m".parse().unwrap();
    assert_eq!(spec.kind, FaultKind::DbCrash);
    assert_eq!(spec.start, Duration::from_secs(90));
    assert_eq!(spec.duration, Duration::from_secs(120));
    assert_eq!(spec.to_string(), "db-crash@1m 30s+2m");
    let latency: FaultSpec = "db-latency:200ms:50ms@1s+5s".parse().unwrap();
    assert_eq!(
        latency.kind,
        FaultKind::DbLatency {
            delay: Span::millis(200),
            jitter: Span::millis(50)
        }
    );
    let default: FaultSpec = "db-latency@1s+5s".parse().unwrap();
    assert_eq!(default.kind, FaultKind::ALL[3]);
    let kill: FaultSpec = "process-kill:orders-api:api@5s+3s".parse().unwrap();
    assert_eq!(
        kill.kind,
        FaultKind::ProcessKill {
            architecture: "orders-api".into(),
            process: "api".into()
        }
    );
}

#[test]
fn bad_fault_specs_say_what_is_wrong() {
    for (text, expected) in [
        ("db-crash", "expected KIND@START+DURATION"),
        ("db-crash@90s", "expected KIND@START+DURATION"),
        ("db-melt@1s+1s", "unknown fault \"db-melt\""),
        ("db-melt@1s+1s", "db-crash, db-stop"),
        ("db-crash@soon+1s", "start \"soon\""),
        ("db-crash@1s+0s", "more than zero"),
        ("db-latency:fast@1s+1s", "delay \"fast\""),
        (
            "process-kill:orders-api@1s+1s",
            "process-kill:ARCHITECTURE:PROCESS",
        ),
    ] {
        let error = text.parse::<FaultSpec>().unwrap_err();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn a_database_and_a_broker_target_parse() {
    assert_eq!("local".parse(), Ok(DatabaseTarget::default()));
    let external: DatabaseTarget = "external:postgres://u:secret@h:5432/d".parse().unwrap();
    assert_eq!(external.choice, DatabaseChoice::External);
    assert_eq!(
        external.url.as_deref(),
        Some("postgres://u:secret@h:5432/d")
    );
    assert_eq!(
        external.to_string(),
        "external",
        "a password is not printed"
    );
    assert!("mysql".parse::<DatabaseTarget>().is_err());
    let broker: BrokerTarget = "external:kafka:9092".parse().unwrap();
    assert_eq!(broker.choice, faultline_stack::BrokerChoice::External);
    assert_eq!(broker.to_string(), "external:kafka:9092");
    assert_eq!(
        "tansu".parse::<BrokerTarget>().unwrap().to_string(),
        "nisshi"
    );
    let sqlite: BrokerTarget = "nisshi-sqlite".parse().unwrap();
    assert_eq!(sqlite.choice, faultline_stack::BrokerChoice::NisshiSqlite);
    assert_eq!(sqlite.to_string(), "nisshi-sqlite");
    assert!("rabbit".parse::<BrokerTarget>().is_err());
}

#[test]
fn passwords_in_addresses_are_found_and_redacted() {
    let mut experiment = crate::validate::parse("name = \"x\"\n", "x.toml").unwrap();
    experiment.stack.database_url =
        Some("postgres://app:s3cr%40t@db.internal:5432/rides?sslmode=require".into());
    experiment.stack.bootstrap_servers = Some("a:9092,b:9092".into());
    assert_eq!(secrets(&experiment), ["s3cr%40t"]);
    experiment.stack.database_url =
        Some("postgresql://db.internal/rides?user=app&password=hunter2".into());
    let found = secrets(&experiment);
    assert_eq!(found, ["hunter2"]);
    assert_eq!(
        redact(
            "database_url = \"postgresql://db/r?user=app&password=hunter2\"",
            &found
        ),
        "database_url = \"postgresql://db/r?user=app&password=****\""
    );
    experiment.stack.database_url = Some("postgres://app@db/rides".into());
    assert!(secrets(&experiment).is_empty());
    // A password holding a `/` is found whole.
    experiment.stack.database_url = Some("postgres://app:ab/cd@db:5432/rides".into());
    assert_eq!(secrets(&experiment), ["ab/cd"]);
    // libpq's keyword form.
    experiment.stack.database_url = Some("host=db user=app password='pw 1x' dbname=r".into());
    assert_eq!(
        passwords_in("host=db user=app password=pw1x dbname=r"),
        ["pw1x"]
    );
    experiment.stack.database_url = None;
    // Kafka credentials, whatever the case of their name, OAUTHBEARER's too.
    experiment
        .stack
        .kafka
        .insert("SASL.PASSWORD".into(), "Upper-Case-Secret".into());
    experiment.stack.kafka.insert(
        "sasl.oauthbearer.config".into(),
        "principal=svc scope=all".into(),
    );
    experiment
        .stack
        .kafka
        .insert("security.protocol".into(), "SASL_SSL".into());
    let found = secrets(&experiment);
    assert!(
        found.contains(&"Upper-Case-Secret".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"principal=svc scope=all".to_string()),
        "{found:?}"
    );
    assert!(!found.contains(&"SASL_SSL".to_string()), "{found:?}");
}

/// A password in a swept address is a secret of the scenario, and the
/// sweep's folder names and descriptions of its points leave it out.
#[test]
fn a_password_in_a_swept_value_stays_out_of_the_sweeps_names() {
    let text = "name = \"s\"\nduration = \"10s\"\n\
        [stack]\ndatabase = \"external\"\ndatabase_url = \"postgres://app:base-pw@db/r\"\n\
        [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
        [sweep]\nparameters = [{ key = \"stack.database_url\", values = \
        [\"postgres://app:first-pw@db1/r\", \"postgres://app:second/pw@db2/r\"] }]\n";
    let experiment = crate::validate::parse(text, "s.toml").expect("a valid sweep");
    let found = secrets(&experiment);
    for password in ["base-pw", "first-pw", "second/pw"] {
        assert!(found.contains(&password.to_string()), "{found:?}");
    }
    assert!(!redact(text, &found).contains("pw@"));
    let grid = crate::plan::grid::Grid::of(&experiment).unwrap();
    for point in &grid.points {
        let (folder, described) = (point.folder(&grid), point.describe(&grid));
        assert!(!folder.contains("pw"), "{folder}");
        assert!(!described.contains("pw"), "{described}");
        assert!(described.contains("****@db"), "{described}");
    }
}

#[test]
fn a_sweep_of_more_points_than_a_number_holds_is_refused_at_once() {
    // 2^70 points: the product of the lists' lengths would wrap.
    let parameters: Vec<String> = (0..70)
        .map(|_| r#"{ key = "duration", values = ["1s", "2s"] }"#.to_string())
        .collect();
    let text = format!(
        "name = \"x\"\n[sweep]\nparameters = [{}]\n",
        parameters.join(", ")
    );
    let problems = crate::validate::parse(&text, "s.toml").unwrap_err();
    assert!(
        problems.iter().any(|p| p
            .message
            .contains("more than 18 quintillion points; at most 500")),
        "{problems:?}"
    );
}
