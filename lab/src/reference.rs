//! A reference measured in the same run: the rate at which PostgreSQL
//! alone commits the rows the REST architecture writes, one per commit.
//!
//! Before a capacity scenario's load, several connections insert rows of
//! the events' columns into a scratch table like the events' (the same key
//! and index), each insert its own transaction, as fast as PostgreSQL takes
//! them: what the REST architecture asks of it per request, with no
//! service, proxy or HTTP in the way. A knee quoted as a ratio to this rate
//! carries to another machine; an absolute rate does not (machines of one
//! kind differ 2× in speed).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Connections that commit at once, as `pgbench -c 8` would.
pub const CLIENTS: u32 = 8;

/// The scratch table, dropped when the reference is measured.
const TABLE: &str = "faultline_reference";

/// What PostgreSQL committed alone.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Reference {
    /// Single-row commits a second, all connections together.
    pub commits_per_s: f64,
    /// Connections that committed at once.
    pub clients: u32,
    /// How long they committed.
    pub seconds: f64,
}

/// Measures [`Reference`] on the database at `url` for `length`, giving up
/// 30 s past it (a database that stops answering). The events' table is
/// created if it is not there yet (its migration is the services'), the
/// scratch table is made like it and dropped afterwards.
pub async fn single_row_commits(url: &str, length: Duration) -> anyhow::Result<Reference> {
    tokio::time::timeout(length + Duration::from_secs(30), measure(url, length))
        .await
        .context("PostgreSQL stopped answering")?
}

async fn measure(url: &str, length: Duration) -> anyhow::Result<Reference> {
    let store =
        faultline_services::store::Store::new(faultline_services::store::DbConfig::new(url))
            .context("the database URL")?;
    store
        .migrate()
        .await
        .context("could not create the events' table")?;
    let admin = connect(url).await?;
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (LIKE {} INCLUDING ALL)",
            faultline_services::store::EVENTS_TABLE
        ))
        .await
        .context("could not create the scratch table")?;
    let measured = commit_for(url, length).await;
    let dropped = admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .await
        .context("could not drop the scratch table");
    let measured = measured?;
    dropped?;
    Ok(measured)
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    faultline_services::tls::Target::parse(url)?
        .connect()
        .await
        .context("could not connect to PostgreSQL")
}

/// [`CLIENTS`] connections commit one row each, in a loop, for `length`.
async fn commit_for(url: &str, length: Duration) -> anyhow::Result<Reference> {
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(url).await?);
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + length;
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        tasks.spawn(async move {
            let insert = client
                .prepare(&format!(
                    "INSERT INTO {TABLE} (event_id, driver_id, lat, lng, sent_at, stored_by)
                     VALUES ($1, $2, $3, $4, $5, 'reference') ON CONFLICT (event_id) DO NOTHING"
                ))
                .await?;
            let mut n = 0u64;
            while tokio::time::Instant::now() < deadline {
                let driver = format!("driver_{}", n % 5000);
                client
                    .execute(
                        &insert,
                        &[
                            &uuid::Uuid::new_v4(),
                            &driver,
                            &37.7749f64,
                            &-122.4194f64,
                            &chrono::Utc::now(),
                        ],
                    )
                    .await?;
                n += 1;
            }
            Ok::<_, tokio_postgres::Error>(n)
        });
    }
    let mut committed = 0u64;
    while let Some(done) = tasks.join_next().await {
        committed += done
            .context("a reference connection panicked")?
            .context("a single-row commit failed")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Reference {
        commits_per_s: committed as f64 / seconds,
        clients: CLIENTS,
        seconds,
    })
}
