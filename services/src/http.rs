//! The HTTP side every service shares: the accept loop with graceful
//! shutdown, the routes common to all services (`/healthz`, `/metrics`,
//! `/identity`), JSON answers and the body reader.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::event::{
    BodyShape, InputError, LocationEvent, MAX_BODY_BYTES, check_content_type, decode,
};
use crate::metrics::HttpMetrics;

pub type Response = hyper::Response<Full<Bytes>>;

/// The header every answer carries, naming the service that gave it.
pub const SERVICE_HEADER: &str = "x-faultline-service";

/// Longest time in-flight requests get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a request's body once its headers are in: a body
/// trickled slower than this gets a 408 and the connection is closed.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) read; a larger one gets
/// a 431. Far above what a client of these services sends.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Who answers on a port: the lab's preflight reads this from `GET /identity`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// `faultline-rest`, `faultline-producer` or `faultline-consumer`.
    pub service: String,
    /// The faultline version.
    pub version: String,
    /// Unique per process start.
    pub instance: uuid::Uuid,
    pub pid: u32,
}

impl Identity {
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_string(),
            version: crate::VERSION.to_string(),
            instance: uuid::Uuid::new_v4(),
            pid: std::process::id(),
        }
    }
}

/// What every service answers on `GET /healthz`: the fields they share,
/// and the service's own (`T`: [`crate::rest::RestHealth`],
/// [`crate::producer::ProducerHealth`], [`crate::consumer::ConsumerHealth`])
/// in the same object.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Health<T> {
    /// `ok`.
    pub status: String,
    /// As in [`Identity`].
    pub service: String,
    pub version: String,
    pub uptime_s: f64,
    #[serde(flatten)]
    pub own: T,
}

/// Of any service's health answer, what says it takes requests: a service
/// that applies the database schema is not ready until it has.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq, Eq)]
pub struct Readiness {
    #[serde(default)]
    pub schema_ready: Option<bool>,
}

/// What a service adds to the shared routes.
pub trait App: Send + Sync + 'static {
    /// Answers a request that is not one of the shared routes.
    fn handle(&self, request: Request<Incoming>) -> impl Future<Output = Response> + Send;
    /// Extra fields for `GET /healthz`.
    fn health(&self) -> serde_json::Value;
    /// `POST /probe`: the service does its work end to end once, outside the
    /// application's metrics (a producer delivers a probe record), so a
    /// prober can tell a service that answers from one that works. It gets
    /// the service itself so that it can finish the work in a task of its
    /// own when the prober stops waiting.
    fn probe(self: Arc<Self>) -> impl Future<Output = Response> + Send {
        std::future::ready(not_found("/probe"))
    }
}

/// The shared parts of a service's HTTP side.
pub struct Common {
    pub identity: Identity,
    pub registry: Registry,
    /// Records the application routes' answers; `None` when a service has none.
    pub http_metrics: Option<HttpMetrics>,
    pub started: Instant,
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops
/// accepting and lets in-flight requests finish (bounded).
pub async fn serve<A: App>(
    listener: TcpListener,
    app: Arc<A>,
    common: Arc<Common>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    // Every answer names the service: the header is made once.
    let service = HeaderValue::from_str(&common.identity.service).ok();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let common = common.clone();
        let service = service.clone();
        let answer = service_fn(move |request| {
            let app = app.clone();
            let common = common.clone();
            let service = service.clone();
            async move {
                let mut response = route(&app, &common, request).await;
                if let Some(service) = service {
                    response.headers_mut().insert(SERVICE_HEADER, service);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), answer));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("All connections closed."),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "Connections still open after the drain timeout.");
        }
    }
}

async fn route<A: App>(app: &Arc<A>, common: &Common, request: Request<Incoming>) -> Response {
    let shared = match request.uri().path() {
        "/healthz" => Some(health(&**app, common)),
        "/metrics" => Some(
            hyper::Response::builder()
                .header(
                    CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(crate::metrics::render(
                    &common.registry,
                ))))
                .expect("a valid response"),
        ),
        "/identity" | "/" => Some(json(StatusCode::OK, &common.identity)),
        "/probe" if request.method() == Method::POST => return app.clone().probe().await,
        "/probe" => return method_not_allowed("POST"),
        _ => None,
    };
    match shared {
        Some(_) if request.method() != Method::GET && request.method() != Method::HEAD => {
            method_not_allowed("GET")
        }
        Some(response) => response,
        None => {
            let started = Instant::now();
            let response = app.handle(request).await;
            if let Some(metrics) = &common.http_metrics {
                metrics.observe(response.status().as_u16(), started.elapsed().as_secs_f64());
            }
            response
        }
    }
}

fn health<A: App>(app: &A, common: &Common) -> Response {
    let own = match app.health() {
        serde_json::Value::Object(own) => own,
        _ => serde_json::Map::new(),
    };
    let body = Health {
        status: "ok".to_string(),
        service: common.identity.service.clone(),
        version: common.identity.version.clone(),
        uptime_s: common.started.elapsed().as_secs_f64(),
        own,
    };
    json(StatusCode::OK, &body)
}

/// A JSON answer.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("serialisable body");
    hyper::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("a valid response")
}

/// A JSON error: `{"error": code, "message": message}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({ "error": code, "message": message }),
    )
}

/// The answer to an invalid request.
pub fn input_error(problem: &InputError) -> Response {
    let status = StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, problem.code(), &problem.to_string())
}

/// 503 with `Retry-After`: a dependency is down, try again later.
pub fn unavailable(code: &str, message: &str, retry_after_s: u32) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

pub fn not_found(path: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {path}"),
    )
}

pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this route only takes {allow}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// Checks the content type and reads the body, at most [`MAX_BODY_BYTES`].
pub async fn read_json_body(request: Request<Incoming>) -> Result<Bytes, InputError> {
    let headers = request.headers();
    check_content_type(headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()))?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(InputError::TooLarge);
    }
    let read = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(request.into_body(), MAX_BODY_BYTES).collect(),
    );
    match read
        .await
        .map_err(|_| InputError::SlowBody(BODY_TIMEOUT.as_secs()))?
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(InputError::TooLarge),
        Err(error) => Err(InputError::Malformed(format!(
            "could not read body: {error}"
        ))),
    }
}

/// Routes a `POST` of an event: `routes` maps each path to the body shape it
/// takes. The answer to give instead is returned when the path is unknown,
/// the method is not `POST`, or the body is not a valid event.
pub async fn read_event(
    request: Request<Incoming>,
    routes: &[(&str, BodyShape)],
) -> Result<LocationEvent, Response> {
    let path = request.uri().path();
    let Some((_, shape)) = routes.iter().find(|(route, _)| *route == path) else {
        return Err(not_found(path));
    };
    let shape = *shape;
    if request.method() != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    let body = read_json_body(request)
        .await
        .map_err(|problem| input_error(&problem))?;
    decode(&body, shape, chrono::Utc::now).map_err(|problem| input_error(&problem))
}
