//! `service` architectures on the real stack: the built-in REST service
//! declared by its command tells the same story as `kind = "rest"`, and a
//! Node.js API of the kind a team really has (examples/orders-api) goes
//! through a database crash, a kill of its process and a slow link, with
//! what it stored audited from its own table.

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::run_folder::frames::column;
use polars::prelude::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .canonicalize()
        .unwrap()
}

/// The requests of `architecture` intended within `[from_s, to_s)`: how
/// many, how many failed, and the median latency of those that succeeded.
struct Window {
    requests: usize,
    failed: usize,
    ok_median_ms: f64,
}

fn window(requests: &DataFrame, architecture: &str, from_s: f64, to_s: f64) -> Window {
    let frame = requests
        .clone()
        .lazy()
        .filter(
            col(column::ARCHITECTURE)
                .eq(lit(architecture))
                .and(
                    col(column::INTENDED_US)
                        .cast(DataType::Float64)
                        .gt_eq(lit(from_s * 1e6)),
                )
                .and(
                    col(column::INTENDED_US)
                        .cast(DataType::Float64)
                        .lt(lit(to_s * 1e6)),
                ),
        )
        .collect()
        .unwrap();
    let ok: Vec<bool> = frame
        .column(column::OK)
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let latency: Vec<f64> = frame
        .column(column::LATENCY_MS)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let mut ok_latency: Vec<f64> = latency
        .iter()
        .zip(&ok)
        .filter(|(_, ok)| **ok)
        .map(|(l, _)| *l)
        .collect();
    ok_latency.sort_by(f64::total_cmp);
    Window {
        requests: ok.len(),
        failed: ok.iter().filter(|o| !**o).count(),
        ok_median_ms: ok_latency
            .get(ok_latency.len() / 2)
            .copied()
            .unwrap_or(f64::NAN),
    }
}

fn share(w: &Window) -> f64 {
    w.failed as f64 / w.requests.max(1) as f64
}

#[test]
fn own_services_go_through_a_crash_a_kill_and_a_slow_link_audited_from_their_own_tables() {
    let orders = examples().join("orders-api");
    assert!(
        orders.join("node_modules/express").is_dir() && orders.join("node_modules/pg").is_dir(),
        "examples/orders-api has no node_modules: run scripts/setup"
    );
    let out = std::env::temp_dir().join(format!("faultline-services-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    // The API's own table, with one row the lab never sent: the audit
    // counts it and joins it to nothing.
    let setup = out.join("setup.sql");
    std::fs::write(
        &setup,
        std::fs::read_to_string(orders.join("schema.sql")).unwrap()
            + "INSERT INTO orders (order_ref, customer, lat, lng) VALUES ('placed-by-hand', 'x', 0, 0);\n",
    )
    .unwrap();
    // The orders API's files by absolute path: the scenario lives elsewhere.
    let scenario = format!(
        r#"name = "own-services"
duration = "32s"
seed = 3
drain_timeout = "20s"

[workload]
rate = {{ shape = "constant", rps = 40 }}
client_timeout = "3s"

[[architectures]]
kind = "rest"
name = "rest"

[[architectures]]
kind = "service"
name = "rest-declared"
[[architectures.processes]]
name = "api"
command = ["faultline-rest", "--listen", "127.0.0.1:{{{{ port }}}}", "--stored-by", "rest-declared"]
env = {{ FAULTLINE_DATABASE_URL = "{{{{ db.url }}}}" }}
ready = {{ http = "/healthz" }}
metrics = {{ pool_wait = "db_pool_wait_seconds", connection_held = "db_connection_held_seconds", pool_max = "db_pool_max_connections", rows = "events_stored_total" }}
[architectures.request]
path = "/events"
body = '{{"event_id": "{{{{ event.id }}}}", "driver_id": "{{{{ event.driver_id }}}}", "lat": {{{{ event.lat }}}}, "lng": {{{{ event.lng }}}}, "sent_at": "{{{{ event.sent_at }}}}"}}'
ok = [201]
[architectures.audit]
query = "SELECT event_id, stored_at FROM location_events WHERE stored_by = 'rest-declared'"
settle = "2s"

[[architectures]]
kind = "service"
name = "orders-api"
setup_sql = "{schema}"
[[architectures.processes]]
name = "api"
command = ["node", "{server}"]
env = {{ PGHOST = "{{{{ db.host }}}}", PGPORT = "{{{{ db.port }}}}", PGUSER = "{{{{ db.user }}}}", PGPASSWORD = "{{{{ db.password }}}}", PGDATABASE = "{{{{ db.name }}}}", HTTP_PORT = "{{{{ port }}}}" }}
ready = {{ http = "/health" }}
[architectures.request]
path = "/orders"
body = '{{"orderRef": "{{{{ event.id }}}}", "customer": "{{{{ event.driver_id }}}}", "lat": {{{{ event.lat }}}}, "lng": {{{{ event.lng }}}}}}'
ok = [201]
[architectures.audit]
query = "SELECT order_ref AS event_id, created_at AS stored_at FROM orders"
settle = "2s"

[[architectures]]
kind = "service"
name = "kafka-declared"
topics = [{{ name = "orders-{{{{ run.id }}}}" }}]
[[architectures.processes]]
name = "producer"
command = ["faultline-producer", "--listen", "127.0.0.1:{{{{ port }}}}", "--bootstrap-servers", "{{{{ broker.bootstrap }}}}", "--topic", "orders-{{{{ run.id }}}}"]
ready = {{ http = "/healthz" }}
[[architectures.processes]]
name = "worker"
command = ["faultline-consumer", "--listen", "127.0.0.1:{{{{ port }}}}", "--bootstrap-servers", "{{{{ broker.bootstrap }}}}", "--topic", "orders-{{{{ run.id }}}}", "--group", "orders-{{{{ run.id }}}}", "--stored-by", "kafka-declared", "--batch-size", "50", "--breaker-open-ms", "2000"]
env = {{ FAULTLINE_DATABASE_URL = "{{{{ db.url }}}}" }}
ready = {{ http = "/healthz" }}
metrics = {{ backlog = "consumer_backlog_messages", breaker = "circuit_breaker_state" }}
[architectures.request]
process = "producer"
path = "/events"
body = '{{"event_id": "{{{{ event.id }}}}", "driver_id": "{{{{ event.driver_id }}}}", "lat": {{{{ event.lat }}}}, "lng": {{{{ event.lng }}}}, "sent_at": "{{{{ event.sent_at }}}}"}}'
ok = [202]
[architectures.audit]
query = "SELECT event_id::text AS event_id, stored_at::timestamp AS stored_at FROM location_events WHERE stored_by = 'kafka-declared'"
settle = "5s"

[[faults]]
kind = "db-crash"
at = "4s"
duration = "8s"

[[faults]]
kind = "process-kill"
architecture = "orders-api"
process = "api"
at = "15s"
duration = "4s"

[[faults]]
kind = "db-latency"
delay = "300ms"
at = "23s"
duration = "6s"
"#,
        schema = setup.display(),
        server = orders.join("server.js").display(),
    );
    let file = out.join("own-services.toml");
    std::fs::write(&file, scenario).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = PathBuf::from(stdout.lines().last().expect("the run folder's path"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "complete", "{summary:#}\n{stderr}");
    // A declared service's pool, from the series its `metrics` maps: one
    // row a write (a little less: a write the crash cut off held a
    // connection and stored nothing), its ten connections; a service that
    // maps none has no pool figures.
    let pool = &summary["architectures"]["rest-declared"]["database"]["during"];
    assert_eq!(pool["connections"], 10, "{pool:#}");
    let rows_per_write = pool["rows_per_write"].as_f64().unwrap();
    assert!((0.9..=1.0).contains(&rows_per_write), "{pool:#}");
    assert!(pool["held_ms"].as_f64().unwrap() > 0.0, "{pool:#}");
    assert!(
        summary["architectures"]["orders-api"]["database"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    let requests = ParquetReader::new(std::fs::File::open(dir.join("requests.parquet")).unwrap())
        .finish()
        .unwrap();

    // The crash: the built-in service and its declaration fail alike, and
    // the Node API fails too, through the proxy it was handed.
    let crash = |name| window(&requests, name, 5.0, 11.0);
    let (rest, declared, orders) = (crash("rest"), crash("rest-declared"), crash("orders-api"));
    assert!(
        share(&rest) > 0.5,
        "rest failed {}/{}",
        rest.failed,
        rest.requests
    );
    assert!(
        (share(&rest) - share(&declared)).abs() < 0.15,
        "rest failed {:.2}, its declaration {:.2}",
        share(&rest),
        share(&declared)
    );
    assert!(
        share(&orders) > 0.5,
        "orders-api failed {}/{}",
        orders.failed,
        orders.requests
    );

    // The kill: only the killed API's requests fail.
    let killed = |name| window(&requests, name, 15.5, 18.5);
    assert!(share(&killed("orders-api")) > 0.8);
    assert!(share(&killed("rest-declared")) < 0.05);
    // Before and after it, it serves.
    assert!(share(&window(&requests, "orders-api", 0.0, 3.5)) < 0.05);
    assert!(share(&window(&requests, "orders-api", 20.5, 22.5)) < 0.05);

    // The slow link: 300 ms each way reaches the Node API's queries.
    let before = window(&requests, "orders-api", 20.5, 22.5);
    let slow = window(&requests, "orders-api", 24.0, 28.5);
    assert!(
        slow.ok_median_ms > 500.0 && before.ok_median_ms < 200.0,
        "median {:.0} ms before, {:.0} ms on the slow link",
        before.ok_median_ms,
        slow.ok_median_ms
    );

    // The Kafka path declared by its commands answers throughout, and its
    // backlog, read from its consumer's own metrics, grew and drained.
    let kafka = crash("kafka-declared");
    assert!(
        share(&kafka) < 0.05,
        "kafka-declared failed {}/{}",
        kafka.failed,
        kafka.requests
    );
    let arch = |name: &str| &summary["architectures"][name];
    let peak = arch("kafka-declared")["peak_backlog"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(peak > 100.0, "{}", arch("kafka-declared"));
    let open = arch("kafka-declared")["breaker_open_s"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(open > 0.0, "{}", arch("kafka-declared"));
    // Stored late by the outage, not by hours: its audit reads a text id
    // and a `timestamp` without a zone.
    let late = arch("kafka-declared")["freshness_ms"]["max"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        late > 4000.0 && late < 60_000.0,
        "{}",
        arch("kafka-declared")
    );

    // The audit found each service's rows in its own table.
    for name in ["rest", "rest-declared", "orders-api", "kafka-declared"] {
        let a = arch(name);
        assert_eq!(a["lost"], 0, "{name}: {a}");
        let stored = a["stored"].as_u64().unwrap();
        let acknowledged = a["acknowledged"].as_u64().unwrap();
        assert!(stored >= acknowledged && acknowledged > 500, "{name}: {a}");
    }
    assert_eq!(
        arch("orders-api")["foreign_rows"],
        1,
        "{}",
        arch("orders-api")
    );
    assert_eq!(arch("rest-declared")["foreign_rows"], 0);
    assert!(arch("rest")["foreign_rows"].is_null());
    // The declaration and the built-in service stored within the noise.
    let stored = |name: &str| arch(name)["stored"].as_f64().unwrap();
    assert!(
        (stored("rest") - stored("rest-declared")).abs() / stored("rest") < 0.05,
        "rest stored {}, its declaration {}",
        stored("rest"),
        stored("rest-declared")
    );
    let faults = summary["faults"].as_array().unwrap();
    assert!(faults.iter().all(|f| f["verified"] == true), "{faults:#?}");
    let _ = std::fs::remove_dir_all(&out);
}
