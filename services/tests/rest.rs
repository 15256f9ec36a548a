//! The REST service against a real PostgreSQL: idempotent writes, bad input,
//! and a database that crashes or freezes under it.

mod common;

use std::time::{Duration, Instant};

use common::{Http, Stack, check_bad_cases, event, start_rest, start_rest_grouped};
use faultline_services::http::{Health, Identity, Readiness};
use faultline_services::rest::RestHealth;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_an_event_exactly_once_even_when_sent_twice() {
    let stack = Stack::postgres("rest-once").await;
    let rest = start_rest(&stack).await;
    let http = Http::new();
    let event = event(7);
    let body = serde_json::to_vec(&event).unwrap();

    let first = http.post_json(&rest.url("/events"), body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["event_id"], event.event_id.to_string());
    let second = http.post_json(&rest.url("/events"), body).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["duplicate"], true);

    let rows = stack
        .sql()
        .await
        .query(
            "SELECT driver_id, lat, lng, stored_by, stored_at >= sent_at FROM location_events WHERE event_id = $1",
            &[&event.event_id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "driver_7");
    assert_eq!(rows[0].get::<_, f64>(1), event.lat);
    assert_eq!(rows[0].get::<_, f64>(2), event.lng);
    assert_eq!(rows[0].get::<_, String>(3), "rest");
    assert!(rows[0].get::<_, bool>(4));
    assert_eq!(stack.count("SELECT count(*) FROM location_events").await, 1);

    let metrics = http.get(&rest.url("/metrics")).await.text;
    assert!(
        metrics.contains(r#"rest_http_requests_total{status="201"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rest_http_requests_total{status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("events_stored_total 1"), "{metrics}");
    assert!(metrics.contains("events_duplicate_total 1"), "{metrics}");

    // The same id with another position is refused, and the stored event
    // is left as it was.
    let mut other = event.clone();
    other.lat += 1.0;
    let reused = http
        .post_json(&rest.url("/events"), serde_json::to_vec(&other).unwrap())
        .await;
    assert_eq!(reused.status, 409, "{}", reused.text);
    assert_eq!(reused.body["error"], "event_id_reused");
    let lat: f64 = stack
        .sql()
        .await
        .query_one(
            "SELECT lat FROM location_events WHERE event_id = $1",
            &[&event.event_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lat, event.lat);
    rest.stop().await;
}

/// Sends `head` and `body` on a raw connection and reads the status line
/// of the answer, if one comes within `limit`.
async fn raw_status(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    limit: Duration,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(limit, stream.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_times_out_and_a_huge_head_is_refused() {
    let stack = Stack::postgres("rest-slow").await;
    let rest = start_rest(&stack).await;
    // A body announced as 150 bytes of which 10 come: 408 after the body
    // timeout, not a connection held for ever.
    let started = Instant::now();
    let status = raw_status(
        rest.addr,
        "POST /events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 150\r\n\r\n",
        b"{\"event_id\"",
        faultline_services::http::BODY_TIMEOUT + Duration::from_secs(5),
    )
    .await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 408 Request Timeout"));
    assert!(started.elapsed() >= faultline_services::http::BODY_TIMEOUT);
    // A 200 KB header: 431 at once.
    let head = format!(
        "POST /events HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\ncontent-length: 0\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let status = raw_status(rest.addr, &head, b"", Duration::from_secs(5)).await;
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 431 Request Header Fields Too Large")
    );
    assert_eq!(stack.count("SELECT count(*) FROM location_events").await, 0);
    rest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_route_and_body_still_work() {
    let stack = Stack::postgres("rest-legacy").await;
    let rest = start_rest(&stack).await;
    let http = Http::new();
    for _ in 0..3 {
        let answer = http
            .post_json(
                &rest.url("/update-location"),
                r#"{"driverId":"driver_42","lat":37.78,"lng":-122.41}"#,
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    // Each legacy request is a new event with an id of its own.
    assert_eq!(
        stack
            .count(
                "SELECT count(DISTINCT event_id) FROM location_events WHERE driver_id = 'driver_42'"
            )
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_problem_and_stores_nothing() {
    let stack = Stack::postgres("rest-bad").await;
    let rest = start_rest(&stack).await;
    let http = Http::new();
    check_bad_cases(&http, &rest, "/update-location").await;
    assert_eq!(stack.count("SELECT count(*) FROM location_events").await, 0);
    // Read with the types the lab reads them with.
    let health = http.get(&rest.url("/healthz")).await;
    assert_eq!(health.status, 200);
    let typed: Health<RestHealth> = serde_json::from_value(health.body.clone()).unwrap();
    assert!(typed.own.schema_ready);
    assert_eq!(typed.service, "faultline-rest");
    let ready: Health<Readiness> = serde_json::from_value(health.body).unwrap();
    assert_eq!(ready.own.schema_ready, Some(true));
    let identity = http.get(&rest.url("/identity")).await;
    let typed: Identity = serde_json::from_value(identity.body.clone()).unwrap();
    assert_eq!(typed.service, "faultline-rest");
    assert_eq!(
        identity.headers.get("x-faultline-service").unwrap(),
        "faultline-rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_database_is_a_fast_503_and_the_service_recovers_by_itself() {
    let mut stack = Stack::postgres("rest-crash").await;
    let rest = start_rest(&stack).await;
    let http = Http::new();
    let url = rest.url("/events");
    let promised = stack.db_config().worst_case();
    assert_eq!(
        http.post_json(&url, serde_json::to_vec(&event(1)).unwrap())
            .await
            .status,
        201
    );

    stack.postgres.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = http
            .post_json(&url, serde_json::to_vec(&event(2)).unwrap())
            .await;
        let took = started.elapsed();
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.body["error"], "database_unavailable");
        assert_eq!(answer.headers.get("retry-after").unwrap(), "1");
        assert!(
            took <= promised,
            "a 503 took {took:?}, more than {promised:?}"
        );
    }

    stack.postgres.restart().await.expect("restart");
    let started = Instant::now();
    let recovered = loop {
        let answer = http
            .post_json(&url, serde_json::to_vec(&event(3)).unwrap())
            .await;
        if answer.status == 201 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no recovery: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("REST recovered {recovered:?} after the database came back");
    // The event stored before the crash survived it.
    assert_eq!(stack.count("SELECT count(*) FROM location_events").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_is_a_503_within_the_timeouts_not_a_hang() {
    let mut stack = Stack::postgres("rest-freeze").await;
    let rest = start_rest(&stack).await;
    let http = std::sync::Arc::new(Http::new());
    let url = rest.url("/events");
    assert_eq!(
        http.post_json(&url, serde_json::to_vec(&event(1)).unwrap())
            .await
            .status,
        201
    );
    let promised = stack.db_config().worst_case();

    stack.postgres.freeze().expect("freeze");
    // More requests at once than the pool has connections.
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..20 {
        let http = http.clone();
        let url = url.clone();
        requests.spawn(async move {
            let started = Instant::now();
            let answer = http
                .post_json(&url, serde_json::to_vec(&event(i)).unwrap())
                .await;
            (answer.status, started.elapsed())
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(result) = requests.join_next().await {
        let (status, took) = result.unwrap();
        assert_eq!(status, 503);
        slowest = slowest.max(took);
    }
    // Waiting for a pooled connection and then for the statement can add up.
    let bound = promised + Duration::from_millis(500);
    assert!(
        slowest <= bound,
        "slowest 503 took {slowest:?}, more than {bound:?}"
    );
    eprintln!("slowest answer while frozen: {slowest:?}");

    stack.postgres.thaw().expect("thaw");
    let started = Instant::now();
    loop {
        let answer = http
            .post_json(&url, serde_json::to_vec(&event(99)).unwrap())
            .await;
        if answer.status == 201 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no recovery: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_cleanly() {
    let mut stack = Stack::postgres("rest-sigterm").await;
    let db = stack.db_config();
    let addr = common::free_addr();
    let log = stack.dir.path().join("rest.log");
    let args: Vec<String> = [
        "--database-url",
        &db.url,
        "--statement-timeout-ms",
        "1500",
        "--connect-timeout-ms",
        "1000",
        "--acquire-timeout-ms",
        "1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rest =
        common::ChildService::spawn(env!("CARGO_BIN_EXE_faultline-rest"), addr, &args, &log);
    common::wait_schema(&stack).await;
    let http = std::sync::Arc::new(Http::new());
    let url = format!("http://{addr}/events");
    assert_eq!(
        http.post_json(&url, serde_json::to_vec(&event(1)).unwrap())
            .await
            .status,
        201
    );

    // A request that will take the full statement timeout, then SIGTERM.
    stack.postgres.freeze().expect("freeze");
    let in_flight = {
        let http = http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            http.post_json(&url, serde_json::to_vec(&event(2)).unwrap())
                .await
                .status
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit = tokio::task::spawn_blocking(move || {
        let status = rest.terminate(Duration::from_secs(15));
        (status, rest)
    });
    assert_eq!(
        in_flight.await.unwrap(),
        503,
        "the request in flight got its answer"
    );
    let (status, rest) = exit.await.unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit: {status:?}\n{}",
        rest.log_tail(20)
    );
    stack.postgres.thaw().expect("thaw");
    // After the exit nothing listens any more.
    assert!(
        http.try_get(&format!("http://{addr}/healthz"))
            .await
            .is_none()
    );
}

#[test]
fn a_port_in_use_is_named_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline-rest"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port} is already in use")) && stderr.contains("--listen"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_answers_each_request_after_the_commit_that_holds_its_row() {
    let mut stack = Stack::postgres("rest-group").await;
    let rest = start_rest_grouped(&stack, 20).await;
    let http = Http::new();
    let url = rest.url("/events");
    // 40 clients, each sending events one after another, while the
    // database is killed and restarted under them.
    let sending = (0..40).map(|client| {
        let http = http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(6) {
                let event = event(client);
                let answer = http
                    .post_json(&url, serde_json::to_vec(&event).unwrap())
                    .await;
                answers.push((event, answer.status));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        })
    });
    let sending: Vec<_> = sending.collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.postgres.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.postgres.restart().await.expect("restart");
    let mut answers = Vec::new();
    for client in sending {
        answers.extend(client.await.unwrap());
    }
    let stored: std::collections::HashSet<uuid::Uuid> = stack
        .sql()
        .await
        .query("SELECT event_id FROM location_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let created: Vec<_> = answers.iter().filter(|(_, s)| *s == 201).collect();
    let refused = answers.iter().filter(|(_, s)| *s == 503).count();
    assert!(created.len() > 200, "only {} stored", created.len());
    assert!(refused > 0, "the crash refused nothing");
    assert!(
        answers.iter().all(|(_, s)| *s == 201 || *s == 503),
        "{:?}",
        answers
            .iter()
            .map(|(_, s)| s)
            .collect::<std::collections::BTreeSet<_>>()
    );
    // Stored before the answer: every 201 is a row.
    let missing = created
        .iter()
        .filter(|(e, _)| !stored.contains(&e.event_id))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged rows are missing",
        created.len()
    );
    // Groups: fewer commits than rows.
    let metrics = http.get(&rest.url("/metrics")).await.text;
    eprintln!("{} created, {refused} refused", created.len());
    assert!(metrics.contains("db_write_duration_seconds"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_tells_a_resend_from_a_reused_id_within_one_group() {
    let stack = Stack::postgres("rest-group-ids").await;
    let rest = start_rest_grouped(&stack, 50).await;
    let http = Http::new();
    let url = rest.url("/events");
    let first = event(1);
    let mut other = first.clone();
    other.lat += 1.0;
    // Sent together, so that they share a group.
    let [a, b, c] = [&first, &first, &other].map(|e| serde_json::to_vec(e).unwrap());
    let (a, b, c) = tokio::join!(
        http.post_json(&url, a),
        http.post_json(&url, b),
        http.post_json(&url, c)
    );
    let answers = [a, b, c];
    assert_eq!(stack.count("SELECT count(*) FROM location_events").await, 1);
    // Whichever came first is stored; the answers follow from it: the same
    // event again is a 200, the other payload under its id a 409.
    let stored_lat: f64 = stack
        .sql()
        .await
        .query_one("SELECT lat FROM location_events", &[])
        .await
        .unwrap()
        .get(0);
    let (first_answers, other_answer) = if stored_lat == first.lat {
        ([201, 200], 409)
    } else {
        ([409, 409], 201)
    };
    let mut got = [answers[0].status, answers[1].status];
    got.sort();
    let mut want = first_answers;
    want.sort();
    let texts: Vec<_> = answers.iter().map(|a| &a.text).collect();
    assert_eq!(got, want, "{texts:?}");
    assert_eq!(answers[2].status, other_answer, "{texts:?}");
}

/// A figure of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    let kb: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Opens `connections` connections at once, sends an event on each and reads
/// what comes back; returns how many got an answer.
async fn burst(addr: std::net::SocketAddr, connections: usize) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..connections {
        tasks.spawn(async move {
            let body = serde_json::to_vec(&event(i)).unwrap();
            let head = format!(
                "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let answered = async {
                let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                stream.write_all(head.as_bytes()).await.ok()?;
                stream.write_all(&body).await.ok()?;
                let mut buf = [0u8; 64];
                let read = stream.read(&mut buf).await.ok()?;
                buf[..read].starts_with(b"HTTP/1.1 ").then_some(())
            };
            tokio::time::timeout(Duration::from_secs(20), answered)
                .await
                .ok()
                .flatten()
                .is_some()
        });
    }
    tasks.join_all().await.into_iter().filter(|ok| *ok).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_thousands_of_connections_at_once_the_service_gives_its_memory_back() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let connections = 6_000.min(hard.saturating_sub(200) as usize / 2);
    assert!(connections >= 2_000, "too few files allowed: {hard}");

    let stack = Stack::postgres("rest-memory").await;
    let db = stack.db_config();
    let addr = common::free_addr();
    let log = stack.dir.path().join("rest.log");
    let args = vec!["--database-url".to_string(), db.url.clone()];
    let rest = common::ChildService::spawn(env!("CARGO_BIN_EXE_faultline-rest"), addr, &args, &log);
    common::wait_schema(&stack).await;
    let pid = rest.child.id();
    let http = Http::new();
    let url = format!("http://{addr}/events");
    assert_eq!(
        http.post_json(&url, serde_json::to_vec(&event(0)).unwrap())
            .await
            .status,
        201
    );
    let before = status_bytes(pid, "VmRSS");

    let mut answered = 0;
    for _ in 0..2 {
        answered += burst(addr, connections).await;
    }
    let peak = status_bytes(pid, "VmHWM");
    let grown = peak.saturating_sub(before);
    assert!(
        grown >= 32 << 20,
        "the burst did not load the service: {before} → {peak} bytes ({answered} answers)\n{}",
        rest.log_tail(10)
    );

    // Within 30 s it is back near its size before, idle all the while.
    let started = Instant::now();
    let mut now = status_bytes(pid, "VmRSS");
    while now > before + grown / 5 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = status_bytes(pid, "VmRSS");
    }
    assert!(
        now <= before + grown / 5,
        "kept {now} bytes 30 s after a burst that took it from {before} to {peak}"
    );
    // And it still serves.
    assert_eq!(
        http.post_json(&url, serde_json::to_vec(&event(1)).unwrap())
            .await
            .status,
        201
    );
}
