//! The consumer binary against a real broker and a real PostgreSQL: the
//! buffered mode stores every event exactly once through a database crash and
//! through its own SIGKILL; the drop mode loses events under the same outage,
//! and the test asserts that it does.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{ChildService, Http, Stack, event, free_addr, wait_schema};
use faultline_services::consumer::ConsumerHealth;
use faultline_services::http::Health;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const EVENTS: usize = 4000;
const RATE_PER_S: f64 = 1000.0;

fn spawn_consumer(stack: &Stack, topic: &str, mode: &str, extra: &[&str]) -> ChildService {
    let db = stack.db_config();
    let mut args: Vec<String> = vec![
        "--bootstrap-servers".into(),
        stack.broker().bootstrap(),
        "--topic".into(),
        topic.into(),
        "--group".into(),
        format!("{topic}-group"),
        "--mode".into(),
        mode.into(),
        "--database-url".into(),
        db.url,
        "--connect-timeout-ms".into(),
        "1000".into(),
        "--statement-timeout-ms".into(),
        "1000".into(),
        "--acquire-timeout-ms".into(),
        "1000".into(),
        "--breaker-open-ms".into(),
        "1000".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let log = stack
        .dir
        .path()
        .join(format!("consumer-{}.log", Uuid::new_v4().simple()));
    ChildService::spawn(
        env!("CARGO_BIN_EXE_faultline-consumer"),
        free_addr(),
        &args,
        &log,
    )
}

/// Waits until the consumer reports that it is consuming.
async fn wait_consuming(http: &Http, consumer: &ChildService) {
    let url = format!("http://{}/healthz", consumer.addr);
    let started = Instant::now();
    loop {
        // Read with the type the lab reads it with.
        if let Some(answer) = http.try_get(&url).await
            && serde_json::from_value::<Health<ConsumerHealth>>(answer.body)
                .expect("the consumer's health answer")
                .own
                .phase
                == "consuming"
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "consumer never started consuming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the consumer has stored some events, so that what follows
/// happens mid-stream.
async fn wait_some_stored(stack: &Stack) -> i64 {
    let n = stack
        .wait_count(
            "SELECT count(*) FROM location_events",
            200,
            Duration::from_secs(20),
        )
        .await;
    assert!(n >= 200, "the consumer stored only {n} events");
    n
}

/// Reads one sample of a metric from the consumer's `/metrics`.
async fn metric(http: &Http, consumer: &ChildService, name: &str) -> f64 {
    let text = http
        .get(&format!("http://{}/metrics", consumer.addr))
        .await
        .text;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The sum of `name`'s series whose labels hold `label` in the consumer's
/// `/metrics` (0 without one).
async fn labelled(http: &Http, consumer: &ChildService, name: &str, label: &str) -> f64 {
    let text = http
        .get(&format!("http://{}/metrics", consumer.addr))
        .await
        .text;
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter(|rest| {
            rest.split('}')
                .next()
                .is_some_and(|labels| labels.contains(label))
        })
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Produces `EVENTS` events at `RATE_PER_S`, keyed by driver, and returns
/// their ids once the broker acknowledged all of them.
async fn produce(bootstrap: String, topic: String) -> HashSet<Uuid> {
    produce_n(bootstrap, topic, EVENTS).await
}

/// Produces `n` events at [`RATE_PER_S`]; their ids once all are acknowledged.
async fn produce_n(bootstrap: String, topic: String, n: usize) -> HashSet<Uuid> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut deliveries = Vec::with_capacity(n);
    let mut ids = HashSet::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / RATE_PER_S)).await;
        let event = event(i % 500);
        let payload = event.to_json();
        let record = FutureRecord::to(&topic)
            .key(event.driver_id.as_str())
            .payload(&payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        ids.insert(event.event_id);
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    ids
}

async fn stored_ids(stack: &Stack, stored_by: &str) -> Vec<Uuid> {
    stack
        .sql()
        .await
        .query(
            "SELECT event_id FROM location_events WHERE stored_by = $1",
            &[&stored_by],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_mode_stores_every_event_exactly_once_through_a_database_crash() {
    let topic = "buffered-crash";
    let mut stack = Stack::with_broker("consumer-buffered", topic, 3).await;
    let http = Http::new();
    let mut consumer = spawn_consumer(
        &stack,
        topic,
        "buffered",
        &[
            "--batch-size",
            "100",
            "--breaker-failures",
            "3",
            "--breaker-successes",
            "1",
        ],
    );
    wait_schema(&stack).await;
    wait_consuming(&http, &consumer).await;

    let producing = tokio::spawn(produce(stack.broker().bootstrap(), topic.into()));
    wait_some_stored(&stack).await;
    stack.postgres.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // While the database is down the breaker opens and events wait on the topic.
    assert_eq!(metric(&http, &consumer, "circuit_breaker_state").await, 2.0);
    assert!(metric(&http, &consumer, "kafka_consumer_lag_seconds").await > 0.5);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.postgres.restart().await.expect("restart");
    let produced = producing.await.unwrap();

    let n = stack
        .wait_count(
            "SELECT count(*) FROM location_events",
            EVENTS as i64,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(n, EVENTS as i64, "not every acknowledged event was stored");
    let stored = stored_ids(&stack, "kafka-buffered").await;
    assert_eq!(stored.len(), EVENTS);
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), produced);
    assert_eq!(metric(&http, &consumer, "events_dropped_total").await, 0.0);
    assert_eq!(metric(&http, &consumer, "circuit_breaker_state").await, 0.0);

    // SIGTERM: a clean exit.
    let status = consumer.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit on SIGTERM: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_mode_loses_nothing_when_the_consumer_is_killed_mid_stream() {
    let topic = "buffered-kill";
    let stack = Stack::with_broker("consumer-kill", topic, 3).await;
    let http = Http::new();
    let args = ["--batch-size", "50"];
    let mut consumer = spawn_consumer(&stack, topic, "buffered", &args);
    wait_schema(&stack).await;
    wait_consuming(&http, &consumer).await;

    let producing = tokio::spawn(produce(stack.broker().bootstrap(), topic.into()));
    wait_some_stored(&stack).await;
    consumer.kill();
    let at_kill = stack.count("SELECT count(*) FROM location_events").await;
    assert!(
        at_kill > 0 && at_kill < EVENTS as i64,
        "the kill was not mid-stream: {at_kill}"
    );
    // The killed consumer's last transaction may still be going at the
    // server (its COMMIT sent before the kill): a consumer that loaded the
    // position before that ended would read the batch again. Wait until no
    // transaction but ours is open.
    let started = std::time::Instant::now();
    while stack
        .count(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
        )
        .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the killed consumer's transaction never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let consumer = spawn_consumer(&stack, topic, "buffered", &args);
    wait_consuming(&http, &consumer).await;
    let produced = producing.await.unwrap();

    let n = stack
        .wait_count(
            "SELECT count(*) FROM location_events",
            EVENTS as i64,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(n, EVENTS as i64);
    let stored = stored_ids(&stack, "kafka-buffered").await;
    assert_eq!(stored.len(), EVENTS);
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), produced);
    // Restarted from the stored position: nothing was read twice. A write
    // whose statement timed out may have committed (a machine short of CPU
    // answers late) and is stored again, its events then duplicates: at
    // most a batch for each.
    let duplicates = metric(&http, &consumer, "events_duplicate_total").await;
    let timed_out = labelled(
        &http,
        &consumer,
        "db_errors_total",
        "kind=\"statement_timeout\"",
    )
    .await;
    assert!(
        duplicates <= timed_out * 50.0,
        "{duplicates} duplicates after {timed_out} writes timed out:\n{}",
        consumer.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_mode_loses_events_under_the_same_outage() {
    let topic = "drop-crash";
    let mut stack = Stack::with_broker("consumer-drop", topic, 1).await;
    let http = Http::new();
    // The original: one event at a time, breaker 5 failures / 3 successes.
    let consumer = spawn_consumer(&stack, topic, "drop", &["--batch-size", "1"]);
    wait_schema(&stack).await;
    wait_consuming(&http, &consumer).await;

    let producing = tokio::spawn(produce(stack.broker().bootstrap(), topic.into()));
    let before = wait_some_stored(&stack).await;
    stack.postgres.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.postgres.restart().await.expect("restart");
    let mut produced = producing.await.unwrap();
    // After the outage the consumer stores again: events keep coming, a
    // hundred at a time, until one of them is stored (while the breaker is
    // still open they are dropped, as in the original).
    let stored_then = metric(&http, &consumer, "events_stored_total").await;
    let started = Instant::now();
    let mut total = EVENTS;
    while metric(&http, &consumer, "events_stored_total").await <= stored_then {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "drop mode stored nothing within 30 s of the outage"
        );
        produced.extend(produce_n(stack.broker().bootstrap(), topic.into(), 100).await);
        total += 100;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let total = total as f64;

    // Wait until the consumer has gone through the whole topic.
    let started = Instant::now();
    let (stored, dropped) = loop {
        let stored = metric(&http, &consumer, "events_stored_total").await;
        let dropped = metric(&http, &consumer, "events_dropped_total").await;
        if stored + dropped >= total || started.elapsed() > Duration::from_secs(60) {
            break (stored, dropped);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        stored + dropped,
        total,
        "every event is either stored or dropped"
    );
    assert!(dropped > 0.0, "drop mode lost nothing under a 2 s outage");
    assert!(
        stored > before as f64,
        "drop mode stored nothing after the outage"
    );
    let in_db = stored_ids(&stack, "kafka-drop").await;
    // A commit the crash cut off may have reached the disk without its
    // answer reaching the consumer, which then counts the event as dropped:
    // with one event per batch and one crash, at most one such event.
    let ambiguous = in_db.len() as f64 - stored;
    assert!(
        ambiguous == 0.0 || ambiguous == 1.0,
        "{} rows in the database, {stored} counted as stored",
        in_db.len()
    );
    let in_db: HashSet<Uuid> = in_db.into_iter().collect();
    assert!(in_db.is_subset(&produced));
    let lost = produced.difference(&in_db).count();
    assert_eq!(
        lost as f64 + ambiguous,
        dropped,
        "the database is missing exactly the dropped events"
    );
    eprintln!("drop mode lost {lost} of {total} acknowledged events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reads_a_topic_its_broker_lost_and_created_again() {
    // Two topics on a broker that keeps its logs in memory: after its
    // restart one log is shorter than the consumer's position, the other
    // grows past it before the consumer notices. Both are new logs, and
    // every event on them is stored.
    let (short, long) = ("lost-short", "lost-long");
    let mut stack = Stack::with_broker("consumer-lost-log", short, 1).await;
    stack.broker().create_topic(long, 1).await.unwrap();
    let http = Http::new();
    let args = ["--batch-size", "50"];
    let consumers = [short, long].map(|topic| spawn_consumer(&stack, topic, "buffered", &args));
    wait_schema(&stack).await;
    for consumer in &consumers {
        wait_consuming(&http, consumer).await;
    }
    let bootstrap = stack.broker().bootstrap();
    produce_n(bootstrap.clone(), short.into(), 300).await;
    produce_n(bootstrap.clone(), long.into(), 100).await;
    stack
        .wait_count(
            "SELECT count(*) FROM location_events",
            400,
            Duration::from_secs(30),
        )
        .await;

    let broker = stack.broker.as_mut().unwrap();
    broker.kill().unwrap();
    broker.restart().await.unwrap();
    // A memory broker forgot them (a durable one kept them and their logs:
    // then nothing was replaced, and the same holds).
    broker.create_topic(short, 1).await.unwrap();
    broker.create_topic(long, 1).await.unwrap();
    let bootstrap = broker.bootstrap();
    let mut after = produce_n(bootstrap.clone(), short.into(), 100).await;
    after.extend(produce_n(bootstrap, long.into(), 300).await);

    let n = stack
        .wait_count(
            "SELECT count(*) FROM location_events",
            800,
            Duration::from_secs(60),
        )
        .await;
    let stored: HashSet<Uuid> = stored_ids(&stack, "kafka-buffered")
        .await
        .into_iter()
        .collect();
    let missing = after.difference(&stored).count();
    let mut consumers = consumers;
    let exits = consumers
        .iter_mut()
        .map(|c| c.child.try_wait().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(
        missing,
        0,
        "{missing} of 400 events after the restart were never stored ({n} rows); the \
         consumers' exits {exits:?}; logs:\n{}\n{}",
        consumers[0].log_tail(15),
        consumers[1].log_tail(15)
    );
    assert_eq!(exits, [None, None], "a consumer died");
    for consumer in &consumers {
        assert!(metric(&http, consumer, "kafka_consumer_renewals_total").await >= 1.0);
    }
}

/// The consumer's write: a batch goes in by COPY with its position; a batch
/// holding ids already stored (a redelivery, or one id twice on the topic)
/// is refused by the key and stored again around them, and says how many
/// of its events were new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_copied_with_its_position_and_redelivered_ids_are_skipped() {
    use faultline_services::store::{Batch, Position, Store};

    let stack = Stack::postgres("consumer-copy").await;
    let store = Store::new(stack.db_config()).unwrap();
    store.migrate().await.unwrap();
    let position = |offset: i64| Position {
        group: "g".into(),
        topic: "t".into(),
        next_offsets: [(0, offset), (1, offset + 1)].into(),
    };
    let first: Vec<_> = (0..300).map(event).collect();
    let mut batch = Batch::new("kafka-buffered", first.len());
    first.iter().cloned().for_each(|e| batch.push(e));
    assert_eq!(
        store
            .insert_batch(&batch, &position(300))
            .await
            .unwrap()
            .new,
        300
    );
    assert_eq!(store.load_position("g", "t").await.unwrap(), position(300));

    // 100 of the first batch again, 200 new, one of them twice.
    let new: Vec<_> = (0..200).map(event).collect();
    let mut again = Batch::new("kafka-buffered", 301);
    first[..100].iter().cloned().for_each(|e| again.push(e));
    new.iter().cloned().for_each(|e| again.push(e));
    again.push(new[7].clone());
    let stored = store.insert_batch(&again, &position(601)).await.unwrap();
    assert_eq!((stored.new, stored.conflicts), (200, 0));
    assert_eq!(store.load_position("g", "t").await.unwrap(), position(601));

    let stored: HashSet<Uuid> = stored_ids(&stack, "kafka-buffered")
        .await
        .into_iter()
        .collect();
    let sent: HashSet<Uuid> = first.iter().chain(&new).map(|e| e.event_id).collect();
    assert_eq!(stored, sent);
    assert_eq!(
        stack.count("SELECT count(*) FROM location_events").await,
        500
    );
    let row = stack
        .sql()
        .await
        .query_one(
            "SELECT driver_id, lat, lng, sent_at FROM location_events WHERE event_id = $1",
            &[&new[7].event_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), new[7].driver_id);
    assert_eq!(row.get::<_, f64>(1), new[7].lat);
    assert_eq!(row.get::<_, f64>(2), new[7].lng);
    let sent_at: chrono::DateTime<chrono::Utc> = row.get(3);
    assert_eq!(
        sent_at.timestamp_micros(),
        new[7].sent_at.timestamp_micros()
    );

    // A batch of one (one statement with its position) and a large one
    // (COPY, refused by the key, then stored around it): a redelivered
    // event is not new, an id reused with another payload is a conflict,
    // and the stored event is left alone.
    for size in [1, 100] {
        let fresh: Vec<_> = (0..size).map(event).collect();
        let mut reused = first[0].clone();
        reused.lat += 1.0;
        let mut batch = Batch::new("kafka-buffered", size + 2);
        fresh.iter().cloned().for_each(|e| batch.push(e));
        batch.push(first[1].clone());
        batch.push(reused);
        let stored = store.insert_batch(&batch, &position(700)).await.unwrap();
        assert_eq!((stored.new, stored.conflicts), (size as u64, 1), "{size}");
        assert_eq!(store.load_position("g", "t").await.unwrap(), position(700));
    }
    let kept: f64 = stack
        .sql()
        .await
        .query_one(
            "SELECT lat FROM location_events WHERE event_id = $1",
            &[&first[0].event_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, first[0].lat);
}
