//! References measured in the same run: how fast PostgreSQL alone stores
//! the rows the architectures write, in the three ways they write them.
//!
//! Before a scenario's load (`capacity.reference`), rows of the events'
//! columns go into a scratch table like the events' (the same key and
//! index), as fast as PostgreSQL takes them, with no service, proxy, broker
//! or HTTP in the way:
//! - one row per commit from [`CLIENTS`] connections, what REST asks per
//!   request (`pgbench -c 8` with a single-row insert);
//! - [`ROWS_PER_COMMIT`] rows per commit from as many connections, what
//!   REST with group commit asks at its fullest (`pgbench` with 50 rows);
//! - `COPY ... FROM STDIN BINARY` of [`COPY_ROWS`] rows per transaction
//!   from one connection, what the buffered consumer asks while it drains.
//!
//! A figure quoted as a ratio to these rates carries to another machine; an
//! absolute rate does not (machines of one kind differ 2× in speed).

use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_services::store::Batch;

use crate::run_folder::manifest::{CLIENTS, COPY_ROWS, ROWS_PER_COMMIT, Reference};

/// The scratch table, dropped when the reference is measured.
const TABLE: &str = "faultline_reference";

/// Measures [`Reference`] on the database at `url`, each way for `length`
/// (three times `length` in all), saying each way as it starts; gives up
/// 30 s past that (a database that stops answering). The events' table is
/// created if it is not there yet (its migration is the services'), the
/// scratch table is made like it and dropped afterwards.
pub async fn postgresql_alone(
    url: &str,
    length: Duration,
    say: impl Fn(&str),
) -> anyhow::Result<Reference> {
    tokio::time::timeout(
        3 * length + Duration::from_secs(30),
        measure(url, length, say),
    )
    .await
    .context("PostgreSQL stopped answering")?
}

async fn measure(url: &str, length: Duration, say: impl Fn(&str)) -> anyhow::Result<Reference> {
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
    let measured = async {
        say(&format!(
            "(1/3) single-row commits from {CLIENTS} connections"
        ));
        let started = Instant::now();
        let commits = commit_for(url, length).await?;
        let seconds = started.elapsed().as_secs_f64();
        let commits_per_s = commits as f64 / seconds;
        say(&format!(
            "(1/3) {commits_per_s:.0} single-row commits a second"
        ));
        say(&format!(
            "(2/3) commits of {ROWS_PER_COMMIT} rows from {CLIENTS} connections"
        ));
        let started = Instant::now();
        let multi = multi_row_for(url, length).await? as f64 / started.elapsed().as_secs_f64();
        say(&format!("(2/3) {multi:.0} rows a second"));
        say(&format!(
            "(3/3) COPY of {COPY_ROWS} rows from one connection"
        ));
        let started = Instant::now();
        let copy = copy_for(url, length).await? as f64 / started.elapsed().as_secs_f64();
        say(&format!("(3/3) {copy:.0} rows a second"));
        Ok::<_, anyhow::Error>(Reference {
            commits_per_s,
            clients: CLIENTS,
            seconds,
            multi_row_rows_per_s: Some(multi),
            copy_rows_per_s: Some(copy),
        })
    }
    .await;
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

/// [`CLIENTS`] connections commit one row each, in a loop, for `length`:
/// how many rows they committed.
async fn commit_for(url: &str, length: Duration) -> anyhow::Result<u64> {
    each_connection_for(url, length, single_rows).await
}

/// One connection's part of [`commit_for`].
async fn single_rows(
    client: tokio_postgres::Client,
    deadline: tokio::time::Instant,
    _: u64,
) -> Result<u64, tokio_postgres::Error> {
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
    Ok(n)
}

/// [`CLIENTS`] connections commit [`ROWS_PER_COMMIT`] rows each time, by
/// group commit's prepared statement, in a loop, for `length`: how many
/// rows they committed.
async fn multi_row_for(url: &str, length: Duration) -> anyhow::Result<u64> {
    each_connection_for(url, length, multi_rows).await
}

/// One connection's part of [`multi_row_for`]; `stream` keeps its ids apart
/// from the other connections'.
async fn multi_rows(
    client: tokio_postgres::Client,
    deadline: tokio::time::Instant,
    stream: u64,
) -> Result<u64, tokio_postgres::Error> {
    let insert = client
        .prepare(&faultline_services::store::insert_rows_into(TABLE))
        .await?;
    let mut n = 0u64;
    while tokio::time::Instant::now() < deadline {
        n += client
            .execute(&insert, &rows(stream, n, ROWS_PER_COMMIT).params())
            .await?;
    }
    Ok(n)
}

/// Runs `each` on [`CLIENTS`] connections at once until `length` from now,
/// each with its own number: the sum of what they counted.
async fn each_connection_for<F, Fut>(url: &str, length: Duration, each: F) -> anyhow::Result<u64>
where
    F: Fn(tokio_postgres::Client, tokio::time::Instant, u64) -> Fut,
    Fut: Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'static,
{
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(url).await?);
    }
    let deadline = tokio::time::Instant::now() + length;
    let mut tasks = tokio::task::JoinSet::new();
    for (number, client) in clients.into_iter().enumerate() {
        tasks.spawn(each(client, deadline, number as u64));
    }
    let mut total = 0u64;
    while let Some(done) = tasks.join_next().await {
        total += done
            .context("a reference connection panicked")?
            .context("a reference commit failed")?;
    }
    Ok(total)
}

/// One connection copies [`COPY_ROWS`] rows per transaction, in a loop, for
/// `length`: how many rows it copied.
async fn copy_for(url: &str, length: Duration) -> anyhow::Result<u64> {
    let mut client = connect(url).await?;
    let deadline = tokio::time::Instant::now() + length;
    // Apart from every connection of `multi_row_for`.
    let stream = u64::from(CLIENTS);
    let mut n = 0u64;
    while tokio::time::Instant::now() < deadline {
        let batch = rows(stream, n, COPY_ROWS);
        let tx = client.transaction().await?;
        n += batch.copy_into(&tx, TABLE).await.context("a COPY failed")?;
        tx.commit().await?;
    }
    Ok(n)
}

/// `count` rows from the `first`-th of stream `stream`, as the load makes
/// them: ids never repeat across streams.
fn rows(stream: u64, first: u64, count: usize) -> Batch {
    let mut batch = Batch::new("reference", count);
    for seq in first..first + count as u64 {
        batch.push(crate::load::event_for(stream, u16::MAX, seq, 5000));
    }
    batch
}
