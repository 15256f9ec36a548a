//! Helpers for the services' integration tests: a real PostgreSQL cluster and
//! a real broker per test (from `faultline-stack`), services started on
//! `127.0.0.1:0`, and a small HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faultline_services::event::LocationEvent;
use faultline_services::store::DbConfig;
use faultline_stack::{Broker, Postgres};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A folder for one test, removed when dropped.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join("faultline-tests").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        faultline_stack::create_dir(&path).expect("test folder");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real stack one test needs. Fields drop in order: processes first,
/// then their folder.
pub struct Stack {
    pub postgres: Postgres,
    pub broker: Option<Broker>,
    pub dir: TestDir,
}

impl Stack {
    pub async fn postgres(name: &str) -> Self {
        let dir = TestDir::new(name);
        let postgres = Postgres::start(&dir.path().join("postgres"))
            .await
            .expect("PostgreSQL starts (is it installed? see scripts/setup)");
        Self {
            postgres,
            broker: None,
            dir,
        }
    }

    pub async fn with_broker(name: &str, topic: &str, partitions: i32) -> Self {
        let mut stack = Self::postgres(name).await;
        let broker = Broker::start(
            &stack.dir.path().join("broker"),
            &faultline_stack::BrokerTarget::default(),
        )
        .await
        .expect("the broker starts (run scripts/setup to install it)");
        broker
            .create_topic(topic, partitions)
            .await
            .expect("topic created");
        stack.broker = Some(broker);
        stack
    }

    pub fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("this stack has a broker")
    }

    /// Pool settings with short timeouts, so outage tests run quickly.
    pub fn db_config(&self) -> DbConfig {
        DbConfig {
            acquire_timeout_ms: 1000,
            connect_timeout_ms: 1000,
            statement_timeout_ms: 1000,
            idle_timeout_ms: 5000,
            ..DbConfig::new(self.postgres.url())
        }
    }

    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.postgres.url(), tokio_postgres::NoTls)
                .await
                .expect("connect to the test database");
        tokio::spawn(connection);
        client
    }

    pub async fn count(&self, query: &str) -> i64 {
        self.sql()
            .await
            .query_one(query, &[])
            .await
            .expect("count query")
            .get(0)
    }

    /// Waits until `query` counts at least `at_least`, or `limit` passes.
    pub async fn wait_count(&self, query: &str, at_least: i64, limit: Duration) -> i64 {
        let started = Instant::now();
        loop {
            let n = match self.sql_try().await {
                Some(client) => match client.query_one(query, &[]).await {
                    Ok(row) => row.get(0),
                    Err(_) => 0,
                },
                None => 0,
            };
            if n >= at_least || started.elapsed() > limit {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sql_try(&self) -> Option<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.postgres.url(), tokio_postgres::NoTls)
                .await
                .ok()?;
        tokio::spawn(connection);
        Some(client)
    }
}

/// A service running in this process, stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

pub async fn start_rest(stack: &Stack) -> Running {
    start_rest_grouped(stack, 0).await
}

/// The REST service with group commit of up to `max_rows` rows (0: off).
pub async fn start_rest_grouped(stack: &Stack, max_rows: usize) -> Running {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let config = faultline_services::rest::RestConfig {
        listen: addr,
        db: stack.db_config(),
        retry_after_s: 1,
        stored_by: "rest".into(),
        group_commit_max_rows: max_rows,
        group_commit_max_wait_ms: 5,
        runtime: Default::default(),
    };
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        faultline_services::rest::run(listener, config, token)
            .await
            .expect("rest runs");
    });
    let running = Running {
        addr,
        shutdown,
        task: Some(task),
    };
    wait_schema(stack).await;
    running
}

/// Waits until the services' migrations created the events table.
pub async fn wait_schema(stack: &Stack) {
    let n = stack
        .wait_count(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'location_events'",
            1,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(n, 1, "the schema was not created");
}

pub async fn start_producer(stack: &Stack, topic: &str, delivery_timeout_ms: u64) -> Running {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let config = faultline_services::producer::ProducerConfig {
        listen: addr,
        kafka: faultline_services::producer::KafkaArgs {
            bootstrap_servers: stack.broker().bootstrap(),
            topic: topic.to_string(),
            properties: String::new(),
        },
        delivery_timeout_ms,
        linger_ms: 2,
        retry_after_s: 1,
        runtime: Default::default(),
    };
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        faultline_services::producer::run(listener, config, token)
            .await
            .expect("producer runs");
    });
    Running {
        addr,
        shutdown,
        task: Some(task),
    }
}

/// A service binary running as a child process, killed when dropped.
pub struct ChildService {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl ChildService {
    pub fn spawn(binary: &str, addr: SocketAddr, args: &[String], log_path: &Path) -> Self {
        let log = std::fs::File::create(log_path).expect("log file");
        let child = Command::new(binary)
            .args(args)
            .arg("--listen")
            .arg(addr.to_string())
            .env(
                "RUST_LOG",
                std::env::var("FAULTLINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn service binary");
        Self {
            child,
            addr,
            log: log_path.to_path_buf(),
        }
    }

    /// The last lines the service logged.
    pub fn log_tail(&self, lines: usize) -> String {
        faultline_stack::tail(&self.log, lines)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_addr() -> SocketAddr {
    let port = faultline_stack::free_port().unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An HTTP answer: status, headers and the body parsed as JSON (or a string).
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

#[derive(Clone)]
pub struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    pub fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    /// `GET`, or `None` if the connection failed or no answer came in 2 s.
    pub async fn try_get(&self, url: &str) -> Option<Answer> {
        let request = hyper::Request::get(url)
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = tokio::time::timeout(Duration::from_secs(2), self.0.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        Some(Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            text: String::from_utf8_lossy(&bytes).to_string(),
        })
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = hyper::Request::builder().method(method).uri(url);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(30), self.0.request(request))
            .await
            .expect("an answer within 30 s")
            .expect("an HTTP answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post_json(&self, url: &str, body: impl Into<Bytes>) -> Answer {
        self.send("POST", url, Some("application/json"), body).await
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send("GET", url, None, Bytes::new()).await
    }
}

pub fn event(driver: usize) -> LocationEvent {
    LocationEvent {
        event_id: uuid::Uuid::new_v4(),
        driver_id: format!("driver_{driver}"),
        lat: 37.7749 + (driver % 100) as f64 / 1000.0,
        lng: -122.4194 + (driver % 100) as f64 / 1000.0,
        sent_at: chrono::Utc::now(),
    }
}

/// A bad request, what it should be answered with, and why.
pub struct BadCase {
    pub what: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub status: u16,
}

/// At least 20 bad requests for a service whose event route is `/events`
/// and whose legacy route is `legacy`.
pub fn bad_cases(legacy: &'static str) -> Vec<BadCase> {
    let json = Some("application/json");
    let id = "\"event_id\":\"7f0c2a34-3d5e-4b43-9b1e-0a8f6c1d2e3f\"";
    let full = |fields: &str| format!("{{{fields}}}").into_bytes();
    let ok_rest =
        "\"driver_id\":\"d1\",\"lat\":1.0,\"lng\":2.0,\"sent_at\":\"2026-01-01T00:00:00Z\"";
    let case = |what, method, path, content_type, body: Vec<u8>, status| BadCase {
        what,
        method,
        path,
        content_type,
        body,
        status,
    };
    vec![
        case(
            "malformed JSON",
            "POST",
            "/events",
            json,
            b"{\"driver_id\":".to_vec(),
            400,
        ),
        case(
            "not JSON at all",
            "POST",
            "/events",
            json,
            b"hello".to_vec(),
            400,
        ),
        case("empty body", "POST", "/events", json, Vec::new(), 400),
        case(
            "trailing garbage",
            "POST",
            "/events",
            json,
            full(&format!("{id},{ok_rest}"))
                .into_iter()
                .chain(*b"xx")
                .collect(),
            400,
        ),
        case(
            "array instead of object",
            "POST",
            "/events",
            json,
            b"[1,2]".to_vec(),
            422,
        ),
        case(
            "missing event_id",
            "POST",
            "/events",
            json,
            full(ok_rest),
            422,
        ),
        case(
            "missing lat",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d\",\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "lat as string",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d\",\"lat\":\"1\",\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "driver_id as number",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":7,\"lat\":1,\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "event_id not a UUID",
            "POST",
            "/events",
            json,
            full(&format!("\"event_id\":\"abc\",{ok_rest}")),
            422,
        ),
        case(
            "sent_at not a time",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d\",\"lat\":1,\"lng\":1,\"sent_at\":\"yesterday\""
            )),
            422,
        ),
        case(
            "unknown field",
            "POST",
            "/events",
            json,
            full(&format!("{id},{ok_rest},\"speed\":3")),
            422,
        ),
        case(
            "lat above 90",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d\",\"lat\":90.5,\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "lat below -90",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d\",\"lat\":-91,\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "lng above 180",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d\",\"lat\":1,\"lng\":180.01,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "empty driver id",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"\",\"lat\":1,\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "driver id of 65 chars",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"{}\",\"lat\":1,\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\"",
                "x".repeat(65)
            )),
            422,
        ),
        case(
            "control character in driver id",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"a\\u0007b\",\"lat\":1,\"lng\":1,\"sent_at\":\"2026-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "oversized body",
            "POST",
            "/events",
            json,
            [b"{\"driver_id\":\"".as_slice(), &vec![b'x'; 8192], b"\"}"].concat(),
            413,
        ),
        case(
            "text/plain",
            "POST",
            "/events",
            Some("text/plain"),
            full(&format!("{id},{ok_rest}")),
            415,
        ),
        case(
            "no content type",
            "POST",
            "/events",
            None,
            full(&format!("{id},{ok_rest}")),
            415,
        ),
        case(
            "form content type",
            "POST",
            "/events",
            Some("application/x-www-form-urlencoded"),
            b"driver_id=d".to_vec(),
            415,
        ),
        case(
            "GET on the event route",
            "GET",
            "/events",
            None,
            Vec::new(),
            405,
        ),
        case(
            "PUT on the event route",
            "PUT",
            "/events",
            json,
            full(&format!("{id},{ok_rest}")),
            405,
        ),
        case(
            "DELETE on the legacy route",
            "DELETE",
            legacy,
            None,
            Vec::new(),
            405,
        ),
        case(
            "POST on /metrics",
            "POST",
            "/metrics",
            json,
            b"{}".to_vec(),
            405,
        ),
        case(
            "unknown path",
            "POST",
            "/nowhere",
            json,
            full(&format!("{id},{ok_rest}")),
            404,
        ),
        case(
            "legacy: snake_case field",
            "POST",
            legacy,
            json,
            b"{\"driver_id\":\"d\",\"lat\":1,\"lng\":1}".to_vec(),
            422,
        ),
        case(
            "legacy: lng missing",
            "POST",
            legacy,
            json,
            b"{\"driverId\":\"d\",\"lat\":1}".to_vec(),
            422,
        ),
        case(
            "legacy: lat null",
            "POST",
            legacy,
            json,
            b"{\"driverId\":\"d\",\"lat\":null,\"lng\":1}".to_vec(),
            422,
        ),
        case(
            "sent_at in the year 9999",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d1\",\"lat\":1.0,\"lng\":2.0,\"sent_at\":\"9999-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "sent_at in the year 0",
            "POST",
            "/events",
            json,
            full(&format!(
                "{id},\"driver_id\":\"d1\",\"lat\":1.0,\"lng\":2.0,\"sent_at\":\"0000-01-01T00:00:00Z\""
            )),
            422,
        ),
        case(
            "legacy: lng below -180",
            "POST",
            legacy,
            json,
            b"{\"driverId\":\"d\",\"lat\":1,\"lng\":-200}".to_vec(),
            422,
        ),
    ]
}

/// Sends every bad case and checks its status and its JSON error body.
pub async fn check_bad_cases(http: &Http, base: &Running, legacy: &'static str) {
    let cases = bad_cases(legacy);
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in &cases {
        let answer = http
            .send(
                case.method,
                &base.url(case.path),
                case.content_type,
                case.body.clone(),
            )
            .await;
        let named = answer.body.get("error").and_then(|v| v.as_str()).is_some()
            && answer
                .body
                .get("message")
                .and_then(|v| v.as_str())
                .is_some();
        if answer.status != case.status || !named {
            failures.push(format!(
                "{}: expected {} with a JSON error, got {} {}",
                case.what, case.status, answer.status, answer.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
