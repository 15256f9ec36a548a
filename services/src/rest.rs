//! The synchronous architecture: `POST` a location, it is inserted into
//! PostgreSQL before the answer. Database trouble is a 503 with `Retry-After`
//! within the pool's timeouts, never a hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::event::BodyShape;
use crate::group::{GroupCommit, Waiting};
use crate::http::{self, App, Common, Identity, Response};
use crate::metrics::{DbMetrics, HttpMetrics, names};
use crate::store::{DbConfig, Inserted, Store, StoreError};

/// The name the REST service gives itself, in `/identity` and in `stored_by`.
pub const SERVICE: &str = "faultline-rest";
/// The value of `stored_by` for rows this service writes.
pub const STORED_BY: &str = "rest";

/// Configuration of the REST service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "faultline-rest",
    version,
    about = "REST writer: POST a location, stored before the answer"
)]
pub struct RestConfig {
    /// Address to listen on.
    #[arg(long, env = "FAULTLINE_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbConfig,
    /// Seconds a client is told to wait (`Retry-After`) when the database is down.
    #[arg(long, env = "FAULTLINE_RETRY_AFTER_S", default_value_t = 1)]
    pub retry_after_s: u32,
    /// The `stored_by` value of the rows this service writes.
    #[arg(long, env = "FAULTLINE_STORED_BY", default_value = STORED_BY)]
    pub stored_by: String,
    /// Group commit: concurrent requests share one multi-row insert and one
    /// commit, at most this many rows each (0: every request commits its
    /// own row, as the original does).
    #[arg(long, env = "FAULTLINE_GROUP_COMMIT_MAX_ROWS", default_value_t = 0)]
    pub group_commit_max_rows: usize,
    /// Group commit: the longest a request waits for its group to fill, in
    /// milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_GROUP_COMMIT_MAX_WAIT_MS", default_value_t = 2)]
    pub group_commit_max_wait_ms: u64,
    #[command(flatten)]
    pub runtime: crate::RuntimeArgs,
}

impl RestConfig {
    /// The group commit asked for, if any.
    pub fn group_commit(&self) -> Option<GroupCommit> {
        (self.group_commit_max_rows > 1).then(|| GroupCommit {
            max_rows: self.group_commit_max_rows,
            max_wait: Duration::from_millis(self.group_commit_max_wait_ms),
        })
    }
}

/// What the REST service adds to `GET /healthz`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RestHealth {
    /// The events table exists: requests can be stored.
    pub schema_ready: bool,
    pub pool: PoolHealth,
}

/// The database pool's connections.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PoolHealth {
    pub open: usize,
    pub idle: usize,
}

/// The answer to a stored event.
#[derive(serde::Serialize)]
struct Stored {
    event_id: uuid::Uuid,
    stored: bool,
    duplicate: bool,
}

/// The event routes: ours, and the original proof of concept's.
const ROUTES: &[(&str, BodyShape)] = &[
    ("/events", BodyShape::Event),
    ("/update-location", BodyShape::Legacy),
];

struct Rest {
    store: Store,
    /// Where requests go to be committed in groups, with group commit.
    groups: Option<mpsc::Sender<Waiting>>,
    stored_by: String,
    db_metrics: DbMetrics,
    schema_ready: Arc<AtomicBool>,
    retry_after_s: u32,
}

impl App for Rest {
    async fn handle(&self, request: Request<Incoming>) -> Response {
        let event = match http::read_event(request, ROUTES).await {
            Ok(event) => event,
            Err(answer) => return answer,
        };
        let started = Instant::now();
        let outcome = match &self.groups {
            None => self
                .store
                .insert(&event, &self.stored_by)
                .await
                .map_err(Arc::new),
            Some(groups) => {
                let (answer, fate) = oneshot::channel();
                match groups.send((event.clone(), answer)).await {
                    Ok(()) => fate.await.unwrap_or_else(|_| {
                        Err(Arc::new(StoreError::Pool(
                            "the group commit stopped".into(),
                        )))
                    }),
                    Err(_) => Err(Arc::new(StoreError::Pool(
                        "the group commit stopped".into(),
                    ))),
                }
            }
        };
        match outcome {
            Ok(inserted) => {
                let new = inserted == Inserted::New;
                // A reused id with another payload is refused, not a
                // redelivery.
                let delivered = u64::from(inserted != Inserted::Conflict);
                self.db_metrics.write_ok(
                    started.elapsed().as_secs_f64(),
                    u64::from(new),
                    delivered,
                );
                self.db_metrics.conflicts.inc_by(1 - delivered);
                match inserted {
                    Inserted::Conflict => http::error(
                        StatusCode::CONFLICT,
                        "event_id_reused",
                        &format!(
                            "event {} is already stored with another driver, position or time",
                            event.event_id
                        ),
                    ),
                    _ => http::json(
                        if new {
                            StatusCode::CREATED
                        } else {
                            StatusCode::OK
                        },
                        &Stored {
                            event_id: event.event_id,
                            stored: true,
                            duplicate: !new,
                        },
                    ),
                }
            }
            Err(error) => {
                self.db_metrics
                    .write_failed(started.elapsed().as_secs_f64(), error.kind());
                tracing::debug!(%error, "Insert failed.");
                http::unavailable(
                    "database_unavailable",
                    &format!("the event was not stored: {error}"),
                    self.retry_after_s,
                )
            }
        }
    }

    fn health(&self) -> serde_json::Value {
        let (open, idle) = self.store.pool_status();
        serde_json::to_value(RestHealth {
            schema_ready: self.schema_ready.load(Ordering::Relaxed),
            pool: PoolHealth { open, idle },
        })
        .unwrap_or_default()
    }
}

/// Runs the REST service on `listener` until `shutdown` is cancelled.
pub async fn run(
    listener: TcpListener,
    config: RestConfig,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let store = Store::new(config.db.clone())?;
    let mut registry = crate::metrics::registry(SERVICE);
    let http_metrics = HttpMetrics::register(&mut registry, names::REST_HTTP_REQUESTS);
    let db_metrics = DbMetrics::register(&mut registry);
    let store = store.observed(db_metrics.pool.clone());
    let schema_ready = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(maintain(
        store.clone(),
        schema_ready.clone(),
        shutdown.clone(),
    ));
    let (groups, committer) = match config.group_commit() {
        Some(group) => {
            let (sender, receiver) = mpsc::channel(group.max_rows * 4);
            let task = tokio::spawn(crate::group::commit_groups(
                receiver,
                store.clone(),
                config.stored_by.clone(),
                group,
                store.pool_size(),
            ));
            tracing::info!(max_rows = group.max_rows, max_wait = ?group.max_wait, "Group commit.");
            (Some(sender), Some(task))
        }
        None => (None, None),
    };
    let app = Arc::new(Rest {
        store,
        groups,
        stored_by: config.stored_by.clone(),
        db_metrics,
        schema_ready,
        retry_after_s: config.retry_after_s,
    });
    let common = Arc::new(Common {
        identity: Identity::new(SERVICE),
        registry,
        http_metrics: Some(http_metrics),
        started: Instant::now(),
    });
    tracing::info!(addr = %listener.local_addr().map_err(|e| StoreError::Pool(e.to_string()))?, "Serving REST.");
    http::serve(listener, app, common, shutdown).await;
    // The last groups are committed and answered before the service ends.
    if let Some(committer) = committer {
        let _ = tokio::time::timeout(Duration::from_secs(5), committer).await;
    }
    background.abort();
    Ok(())
}

/// Applies the schema (retrying until the database answers) and closes idle
/// connections, until shutdown.
pub(crate) async fn maintain(
    store: Store,
    schema_ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if !schema_ready.load(Ordering::Relaxed) {
            match store.migrate().await {
                Ok(()) => {
                    schema_ready.store(true, Ordering::Relaxed);
                    tracing::info!("Schema is up to date.");
                }
                Err(error) => tracing::warn!(%error, "Schema migration failed; retrying."),
            }
        }
        store.close_idle();
    }
}
