//! The database side: schema, a bounded connection pool, and the writes.
//!
//! Every write is idempotent (`ON CONFLICT (event_id) DO NOTHING`), and every
//! database call is bounded by a client-side timeout as well as the server's
//! `statement_timeout`, so a frozen server turns into an error on time rather
//! than a hung request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, QueueMode, RecyclingMethod, Runtime,
    TimeoutType,
};
use uuid::Uuid;

use crate::defaults;

mod batch;
mod ways;
use crate::event::LocationEvent;
pub use batch::Batch;
use batch::copy_rows_into;
pub use ways::{EXPLORE, Way, Ways};

/// The statement that inserts a [`Batch`] (its [`Batch::params`]), leaving
/// ids already stored alone.
macro_rules! insert_rows {
    () => {
        "INSERT INTO location_events (event_id, driver_id, lat, lng, sent_at, stored_by)
         SELECT e.*, $6 FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::timestamptz[])
             AS e(event_id, driver_id, lat, lng, sent_at)
         ON CONFLICT (event_id) DO NOTHING"
    };
}

/// The table of stored events.
pub const EVENTS_TABLE: &str = "location_events";

/// The insert of a [`Batch`]'s rows (its [`Batch::params`]) into `table`,
/// a table like the events', skipping stored ids: the statement of group
/// commit and of the consumer's fallback, for another table.
pub fn insert_rows_into(table: &str) -> String {
    insert_rows!().replacen(EVENTS_TABLE, table, 1)
}
/// The largest batch the consumer stores with its position in one
/// statement; larger ones go in by `COPY`, faster per row.
pub const ONE_STATEMENT_ROWS: usize = 64;

/// The table where the consumer keeps its position, written in the same
/// transaction as the rows it covers.
pub const OFFSETS_TABLE: &str = "consumer_offsets";

/// Migrations, applied in order under an advisory lock at start-up.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE location_events (
        event_id   uuid PRIMARY KEY,
        driver_id  text NOT NULL,
        lat        double precision NOT NULL,
        lng        double precision NOT NULL,
        sent_at    timestamptz NOT NULL,
        stored_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        stored_by  text NOT NULL
    );
    CREATE INDEX location_events_stored_by ON location_events (stored_by);
    CREATE TABLE consumer_offsets (
        consumer_group text NOT NULL,
        topic          text NOT NULL,
        partition      integer NOT NULL,
        next_offset    bigint NOT NULL,
        updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (consumer_group, topic, partition)
    );",
)];

/// An arbitrary constant that names the migration lock.
const MIGRATION_LOCK: i64 = 0x6661_756c_746c_696e;

/// Connection pool settings. The defaults are the original proof of concept's
/// (10 connections, 2 s connect timeout, 5 s idle timeout).
#[derive(Debug, Clone, clap::Args)]
pub struct DbConfig {
    /// PostgreSQL connection URL.
    #[arg(
        long = "database-url",
        env = crate::vars::DATABASE_URL,
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub url: String,
    /// Most connections the pool opens.
    #[arg(long, env = "FAULTLINE_POOL_SIZE", default_value_t = defaults::POOL_SIZE)]
    pub pool_size: usize,
    /// Longest wait for a free pooled connection, in milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_ACQUIRE_TIMEOUT_MS", default_value_t = defaults::ACQUIRE_TIMEOUT_MS)]
    pub acquire_timeout_ms: u64,
    /// Longest wait to open a new connection, in milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_CONNECT_TIMEOUT_MS", default_value_t = defaults::CONNECT_TIMEOUT_MS)]
    pub connect_timeout_ms: u64,
    /// Longest a statement may run, in milliseconds (server and client side).
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_STATEMENT_TIMEOUT_MS", default_value_t = defaults::STATEMENT_TIMEOUT_MS)]
    pub statement_timeout_ms: u64,
    /// Idle connections older than this are closed, in milliseconds.
    #[arg(long, value_parser = crate::millis, env = "FAULTLINE_IDLE_TIMEOUT_MS", default_value_t = defaults::IDLE_TIMEOUT_MS)]
    pub idle_timeout_ms: u64,
}

impl DbConfig {
    /// A configuration with the defaults for the given URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: defaults::POOL_SIZE,
            acquire_timeout_ms: defaults::ACQUIRE_TIMEOUT_MS,
            connect_timeout_ms: defaults::CONNECT_TIMEOUT_MS,
            statement_timeout_ms: defaults::STATEMENT_TIMEOUT_MS,
            idle_timeout_ms: defaults::IDLE_TIMEOUT_MS,
        }
    }

    fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.statement_timeout_ms)
    }

    /// The longest one database call can take from asking for a connection
    /// to its answer: what a caller is promised.
    pub fn worst_case(&self) -> Duration {
        Duration::from_millis(
            self.acquire_timeout_ms + self.connect_timeout_ms + self.statement_timeout_ms,
        )
    }
}

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database url: {0}")]
    Url(#[source] crate::tls::UrlError),
    #[error("timed out waiting for a pooled connection")]
    AcquireTimeout,
    #[error("timed out connecting to the database")]
    ConnectTimeout,
    #[error("database statement timed out after {0:?}")]
    StatementTimeout(Duration),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool error: {0}")]
    Pool(String),
}

impl StoreError {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Url(_) => "config",
            StoreError::AcquireTimeout => "acquire_timeout",
            StoreError::ConnectTimeout => "connect_timeout",
            StoreError::StatementTimeout(_) => "statement_timeout",
            StoreError::Database(_) => "database",
            StoreError::Pool(_) => "pool",
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Timeout(TimeoutType::Wait) => StoreError::AcquireTimeout,
            PoolError::Timeout(_) => StoreError::ConnectTimeout,
            PoolError::Backend(e) => StoreError::Database(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

/// What storing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new row.
    New,
    /// The same event was already stored: nothing changed.
    Again,
    /// Another event with the same id was already stored: nothing changed.
    Conflict,
}

/// A bounded pool of connections with every call time-limited.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    config: DbConfig,
    ways: Arc<std::sync::Mutex<Ways>>,
    metrics: Option<crate::metrics::PoolMetrics>,
}

impl Store {
    /// Connections the pool holds at most.
    pub fn pool_size(&self) -> usize {
        self.config.pool_size.max(1)
    }

    /// Builds the pool. No connection is opened until one is needed.
    pub fn new(config: DbConfig) -> Result<Self, StoreError> {
        let crate::tls::Target {
            config: mut pg,
            tls,
        } = crate::tls::Target::parse(&config.url).map_err(StoreError::Url)?;
        pg.connect_timeout(Duration::from_millis(config.connect_timeout_ms));
        pg.options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            config.statement_timeout_ms, config.statement_timeout_ms
        ));
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(5));
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // The connection used last goes out first (the original's pool
        // does the same): a lone writer keeps the one whose statements are
        // prepared, instead of preparing them on each connection in turn,
        // a round trip each on a slow link; the others stay idle and close.
        let pool = Pool::builder(manager)
            .queue_mode(QueueMode::Lifo)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(Duration::from_millis(config.acquire_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .recycle_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            config,
            ways: Arc::default(),
            metrics: None,
        })
    }

    /// Counts each write's wait for a connection and the time it held it
    /// into `metrics`, and sets its pool size there.
    pub fn observed(mut self, metrics: crate::metrics::PoolMetrics) -> Self {
        metrics.max.set(self.pool_size() as i64);
        self.metrics = Some(metrics);
        self
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// Closes connections idle for longer than the idle timeout. Call it
    /// periodically.
    pub fn close_idle(&self) {
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        self.pool.retain(|_, metrics| metrics.last_used() < idle);
    }

    /// Connections open now, and how many of them are idle.
    pub fn pool_status(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size, status.available)
    }

    /// Runs `work` on a pooled connection within the statement timeout. A
    /// connection whose call timed out or failed at the transport level is
    /// discarded, not returned to the pool.
    async fn with_client<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    {
        self.on_client(None, work).await
    }

    /// [`Self::with_client`] for a write: its wait for a connection and the
    /// time it held it are counted (see [`Self::observed`]).
    async fn with_writer<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    {
        self.on_client(self.metrics.as_ref(), work).await
    }

    async fn on_client<T, F>(
        &self,
        metrics: Option<&crate::metrics::PoolMetrics>,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    {
        let asked = std::time::Instant::now();
        let client = self.pool.get().await;
        if let Some(metrics) = metrics {
            metrics.wait.observe(asked.elapsed().as_secs_f64());
        }
        let mut client = client?;
        let limit = self.config.statement_timeout();
        let held = std::time::Instant::now();
        let outcome = tokio::time::timeout(limit, work(&mut client)).await;
        if let Some(metrics) = metrics {
            metrics.held.observe(held.elapsed().as_secs_f64());
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if error.is_closed() || error.code().is_none() {
                    let _ = Object::take(client);
                }
                Err(StoreError::Database(error))
            }
            Err(_) => {
                let _ = Object::take(client);
                Err(StoreError::StatementTimeout(limit))
            }
        }
    }

    /// A trivial round trip: the database answers queries.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_client(async |c| c.simple_query("SELECT 1").await.map(drop))
            .await
    }

    /// Applies the migrations that are not yet applied. Safe to run from
    /// several services at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            )
            .await?;
            let applied: Vec<i32> = tx
                .query("SELECT version FROM schema_migrations", &[])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            for (version, sql) in MIGRATIONS {
                if !applied.contains(version) {
                    tx.batch_execute(sql).await?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        &[version],
                    )
                    .await?;
                }
            }
            tx.commit().await
        })
        .await
    }

    /// Stores one event, unless its id is already stored: then says
    /// whether the stored event is the same one (a resend) or another
    /// (an id reused for a different payload).
    pub async fn insert(
        &self,
        event: &LocationEvent,
        stored_by: &str,
    ) -> Result<Inserted, StoreError> {
        self.with_writer(async |c| {
            let statement = c
                .prepare_cached(
                    "INSERT INTO location_events (event_id, driver_id, lat, lng, sent_at, stored_by)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
                )
                .await?;
            let n = c
                .execute(
                    &statement,
                    &[
                        &event.event_id,
                        &event.driver_id,
                        &event.lat,
                        &event.lng,
                        &event.sent_at,
                        &stored_by,
                    ],
                )
                .await?;
            if n == 1 {
                return Ok(Inserted::New);
            }
            let same = c
                .prepare_cached(
                    "SELECT (driver_id, lat, lng, sent_at) = ($2, $3, $4, $5)
                     FROM location_events WHERE event_id = $1",
                )
                .await?;
            let row = c
                .query_opt(
                    &same,
                    &[
                        &event.event_id,
                        &event.driver_id,
                        &event.lat,
                        &event.lng,
                        &event.sent_at,
                    ],
                )
                .await?;
            Ok(match row.map(|r| r.get::<_, bool>(0)) {
                Some(false) => Inserted::Conflict,
                _ => Inserted::Again,
            })
        })
        .await
    }

    /// Stores `events` in one statement, one commit, and says what became
    /// of each, in order: new, already stored (the same event), or an id
    /// already stored with another payload. An id twice in `events` is new
    /// the first time.
    pub async fn insert_many(
        &self,
        events: &[LocationEvent],
        stored_by: &str,
    ) -> Result<Vec<Inserted>, StoreError> {
        let mut batch = Batch::new(stored_by, events.len());
        for event in events {
            batch.push(event.clone());
        }
        self.with_writer(async |c| {
            // Prepared once per connection: one round trip per group.
            let statement = c
                .prepare_cached(concat!(insert_rows!(), " RETURNING event_id"))
                .await?;
            let new: std::collections::HashSet<uuid::Uuid> = c
                .query(&statement, &batch.params())
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let mut claimed = std::collections::HashSet::new();
            let mut fates: Vec<Option<Inserted>> = events
                .iter()
                .map(|e| {
                    (new.contains(&e.event_id) && claimed.insert(e.event_id))
                        .then_some(Inserted::New)
                })
                .collect();
            // The others: the same event again, or another one under its
            // id, compared by the database as `insert` does.
            let others: Vec<i32> = (0..events.len())
                .filter(|&i| fates[i].is_none())
                .map(|i| i as i32)
                .collect();
            if !others.is_empty() {
                let [ids, drivers, lats, lngs, sent, _] = batch.params();
                let same = c
                    .query(
                        "SELECT ix.i, (l.driver_id, l.lat, l.lng, l.sent_at) = (e.driver_id, e.lat, e.lng, e.sent_at)
                         FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::timestamptz[])
                             WITH ORDINALITY AS e(event_id, driver_id, lat, lng, sent_at, n)
                         CROSS JOIN LATERAL (SELECT (e.n - 1)::int4 AS i) AS ix
                         JOIN location_events l USING (event_id)
                         WHERE ix.i = ANY($6)",
                        &[ids, drivers, lats, lngs, sent, &others],
                    )
                    .await?;
                for row in same {
                    let (i, same): (i32, bool) = (row.get(0), row.get(1));
                    fates[i as usize] = Some(if same { Inserted::Again } else { Inserted::Conflict });
                }
            }
            Ok(fates.into_iter().map(|f| f.unwrap_or(Inserted::Again)).collect())
        })
        .await
    }

    /// Stores a batch and the consumer's new position in one transaction.
    /// Says how many events were new, and how many carried an id already
    /// stored with another payload (left alone, as REST's 409 leaves it).
    ///
    /// The rows go in by `COPY ... FROM STDIN BINARY`, the fastest way into
    /// PostgreSQL (docs/benchmarks.md, "Consumer drain rate"). COPY cannot
    /// leave stored ids alone: when an event of the batch is already stored
    /// (a redelivery, or an id twice on the topic) the key refuses it, the
    /// transaction rolls back, and the batch is stored again by the insert
    /// that skips stored ids.
    ///
    /// A batch of up to [`ONE_STATEMENT_ROWS`] rows goes in by one prepared
    /// statement that inserts the rows (skipping stored ids) and the
    /// position together: one round trip to the database, where the
    /// transaction of a `COPY` takes two.
    ///
    /// A larger batch goes whichever way has been faster for a batch of its
    /// size on this link ([`Ways`]): `COPY` on a fast one, one statement
    /// where round trips are long.
    pub async fn insert_batch(
        &self,
        batch: &Batch,
        position: &Position,
    ) -> Result<BatchStored, StoreError> {
        if batch.len() <= ONE_STATEMENT_ROWS {
            return self.insert_batch_at_once(batch, position).await;
        }
        let way = self.ways.lock().expect("ways lock").choose(batch.len());
        let started = std::time::Instant::now();
        let stored = self.insert_batch_by(way, batch, position).await;
        self.ways.lock().expect("ways lock").took(
            way,
            batch.len(),
            started.elapsed().as_secs_f64(),
        );
        stored
    }

    /// The rows of `batch` and the `position`, by `way` whatever the batch's
    /// size (what [`Self::insert_batch`] chooses between).
    pub async fn insert_batch_by(
        &self,
        way: Way,
        batch: &Batch,
        position: &Position,
    ) -> Result<BatchStored, StoreError> {
        match way {
            Way::Copy => self.copy_batch(batch, position).await,
            Way::OneStatement => self.insert_batch_at_once(batch, position).await,
        }
    }

    /// The rows of `batch` by `COPY` with the `position`, in one
    /// transaction of two round trips: `BEGIN` and the `COPY`'s start go
    /// together, then the rows, the position and `COMMIT` (each request
    /// sent behind the one before, without waiting for its answer; the
    /// statements prepared once per connection). Around a stored id, by the
    /// one statement.
    async fn copy_batch(
        &self,
        batch: &Batch,
        position: &Position,
    ) -> Result<BatchStored, StoreError> {
        let (partitions, offsets): (Vec<i32>, Vec<i64>) =
            position.next_offsets.iter().map(|(p, o)| (*p, *o)).unzip();
        let copied = self
            .with_writer(async |c| {
                let copy = copy_rows_into(EVENTS_TABLE);
                let (copy, moved) =
                    tokio::try_join!(c.prepare_cached(&copy), c.prepare_cached(POSITION))?;
                let started = async {
                    let (begun, sink) = tokio::join!(c.batch_execute("BEGIN"), c.copy_in(&copy));
                    begun?;
                    batch.write_rows(sink?).await
                }
                .await;
                let sink = match started {
                    Ok(sink) => sink,
                    Err(error) => {
                        if !c.is_closed() {
                            // Whatever of the transaction is open ends here.
                            c.batch_execute("ROLLBACK").await?;
                        }
                        return Err(error);
                    }
                };
                // A failed COPY fails the position's statement too, and the
                // COMMIT then rolls the transaction back: it is over either
                // way, and the first error is the one to answer with.
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&position.group, &position.topic, &partitions, &offsets];
                let (copied, moved, committed) = tokio::join!(
                    sink.finish(),
                    c.execute(&moved, &params),
                    c.batch_execute("COMMIT"),
                );
                let copied = copied?;
                moved?;
                committed?;
                Ok(copied)
            })
            .await;
        match copied {
            Err(StoreError::Database(error))
                if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                tracing::debug!("An event of the batch is already stored; inserting around it.");
                self.insert_batch_at_once(batch, position).await
            }
            other => other.map(|new| BatchStored { new, conflicts: 0 }),
        }
    }

    /// The rows of `batch` and the `position` in one statement (one round
    /// trip, one implicit transaction): how many rows were new, and how
    /// many ids were stored before with another payload (read from the
    /// statement's snapshot: rows stored before it).
    async fn insert_batch_at_once(
        &self,
        batch: &Batch,
        position: &Position,
    ) -> Result<BatchStored, StoreError> {
        let (partitions, offsets): (Vec<i32>, Vec<i64>) =
            position.next_offsets.iter().map(|(p, o)| (*p, *o)).unzip();
        self.with_writer(async |c| {
            let statement = c
                .prepare_cached(concat!(
                    "WITH stored AS (",
                    insert_rows!(),
                    " RETURNING 1),
                     moved AS (
                         INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
                         SELECT $7, $8, p, o FROM UNNEST($9::int4[], $10::int8[]) AS t(p, o)
                         ON CONFLICT (consumer_group, topic, partition)
                         DO UPDATE SET next_offset = EXCLUDED.next_offset,
                                       updated_at = clock_timestamp()
                         RETURNING 1),
                     reused AS (
                         SELECT count(*) AS n
                         FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::timestamptz[])
                             AS e(event_id, driver_id, lat, lng, sent_at)
                         JOIN location_events s USING (event_id)
                         WHERE (s.driver_id, s.lat, s.lng, s.sent_at)
                             IS DISTINCT FROM (e.driver_id, e.lat, e.lng, e.sent_at))
                     SELECT (SELECT count(*) FROM stored), (SELECT count(*) FROM moved),
                            (SELECT n FROM reused)"
                ))
                .await?;
            let [ids, drivers, lats, lngs, sent, by] = batch.params();
            let row = c
                .query_one(
                    &statement,
                    &[
                        ids,
                        drivers,
                        lats,
                        lngs,
                        sent,
                        by,
                        &position.group,
                        &position.topic,
                        &partitions,
                        &offsets,
                    ],
                )
                .await?;
            Ok(BatchStored {
                new: row.get::<_, i64>(0) as u64,
                conflicts: row.get::<_, i64>(2) as u64,
            })
        })
        .await
    }

    /// The stored position of a consumer group: partition → next offset.
    pub async fn load_position(&self, group: &str, topic: &str) -> Result<Position, StoreError> {
        let rows = self
            .with_client(async |c| {
                c.query(
                    "SELECT partition, next_offset FROM consumer_offsets
                     WHERE consumer_group = $1 AND topic = $2",
                    &[&group, &topic],
                )
                .await
            })
            .await?;
        Ok(Position {
            group: group.to_string(),
            topic: topic.to_string(),
            next_offsets: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }
}

/// The statement that writes a consumer's position (group, topic,
/// partitions, next offsets) within the transaction of the rows it covers.
const POSITION: &str =
    "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
     SELECT $1, $2, p, o FROM UNNEST($3::int4[], $4::int8[]) AS t(p, o)
     ON CONFLICT (consumer_group, topic, partition)
     DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = clock_timestamp()";

/// What became of a stored batch's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStored {
    /// Stored now.
    pub new: u64,
    /// Their id was already stored with another driver, position or time:
    /// left alone, not a redelivery.
    pub conflicts: u64,
}

/// A consumer's position: for each partition, the offset of the next message
/// to store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub group: String,
    pub topic: String,
    pub next_offsets: HashMap<i32, i64>,
}

/// One stored event as the audit reads it; times are Unix microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub event_id: Uuid,
    pub stored_by: String,
    pub sent_at_us: i64,
    pub stored_at_us: i64,
}

/// Every stored event, read with `client`: what the lab's audit compares
/// with what was acknowledged.
pub async fn audit(
    client: &tokio_postgres::Client,
) -> Result<Vec<AuditRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT event_id, stored_by,
                    (extract(epoch FROM sent_at) * 1000000)::int8,
                    (extract(epoch FROM stored_at) * 1000000)::int8
             FROM location_events",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditRow {
            event_id: r.get(0),
            stored_by: r.get(1),
            sent_at_us: r.get(2),
            stored_at_us: r.get(3),
        })
        .collect())
}

/// Stored events per `stored_by`, read with `client`.
pub async fn stored_counts(
    client: &tokio_postgres::Client,
) -> Result<HashMap<String, i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT stored_by, count(*) FROM location_events GROUP BY stored_by",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
