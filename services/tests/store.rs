//! The consumer's writes over a slow link to a real PostgreSQL (through the
//! lab's own fault proxy): a write pays the round trips its protocol needs,
//! and no more.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Stack, event};
use faultline_services::store::{Batch, DbConfig, Position, Store, Way};
use faultline_stack::{FaultProxy, ProxyMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_write_over_a_slow_link_takes_the_round_trips_of_its_protocol() {
    let stack = Stack::postgres("store-slow-link").await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], stack.postgres.port())))
        .await
        .unwrap();
    let store = Store::new(DbConfig {
        statement_timeout_ms: 20_000,
        ..DbConfig::new(format!(
            "postgres://postgres:{}@{}/postgres",
            stack.postgres.password(),
            proxy.addr()
        ))
    })
    .unwrap();
    store.migrate().await.unwrap();
    // Three connections open, as a service's start-up and its first
    // requests leave them: a lone writer takes the one it used last, whose
    // statements are prepared, not each in turn.
    let pings = tokio::join!(store.ping(), store.ping(), store.ping());
    for ping in [pings.0, pings.1, pings.2] {
        ping.unwrap();
    }
    assert_eq!(store.pool_status().0, 3);
    let mut offset = 0;
    let mut batch_of = |rows: usize| {
        let mut batch = Batch::new("kafka-buffered", rows);
        (0..rows).for_each(|i| batch.push(event(i)));
        offset += rows as i64;
        let position = Position {
            group: "g".into(),
            topic: "t".into(),
            next_offsets: [(0, offset)].into(),
        };
        (batch, position)
    };
    let write = async |way: Option<Way>, (batch, position): &(Batch, Position)| {
        let started = Instant::now();
        let stored = match way {
            Some(way) => store.insert_batch_by(way, batch, position).await,
            None => store.insert_batch(batch, position).await,
        }
        .unwrap();
        let took = started.elapsed();
        assert_eq!(stored.new, batch.len() as u64);
        assert_eq!(
            store.load_position("g", "t").await.unwrap().next_offsets,
            position.next_offsets
        );
        took
    };
    for way in [Way::OneStatement, Way::Copy] {
        write(Some(way), &batch_of(100)).await;
    }

    proxy.set_mode(ProxyMode::Delay {
        delay: Duration::from_millis(100),
        jitter: Duration::ZERO,
        seed: 1,
    });
    let started = Instant::now();
    store.ping().await.unwrap();
    let rtt = started.elapsed().as_secs_f64();
    let trips = |took: Duration| took.as_secs_f64() / rtt;
    for (way, least, most) in [(Way::OneStatement, 0.9, 1.5), (Way::Copy, 1.9, 2.5)] {
        for rows in [100, 2000] {
            let took = trips(write(Some(way), &batch_of(rows)).await);
            eprintln!("{way:?}, {rows} rows: {took:.2} round trips of {rtt:.3} s");
            assert!(
                (least..most).contains(&took),
                "{way:?}, {rows} rows: {took:.2} round trips of {rtt:.3} s"
            );
        }
    }

    // A COPY refused by the key (an id stored before) goes in around it, and
    // leaves its connection out of any transaction for the next write.
    let (mut refused, position) = batch_of(500);
    let stored_before = event(0);
    let mut before = Batch::new("kafka-buffered", 1);
    before.push(stored_before.clone());
    write(Some(Way::OneStatement), &(before, position.clone())).await;
    refused.push(stored_before);
    let outcome = store
        .insert_batch_by(Way::Copy, &refused, &position)
        .await
        .unwrap();
    assert_eq!((outcome.new, outcome.conflicts), (500, 0));
    write(Some(Way::Copy), &batch_of(100)).await;

    // The way chosen learns the link: a few writes on, a batch takes about
    // one round trip (one write in 32 tries the other way).
    // Batches of varied sizes, as a consumer's are.
    let sizes = [65, 180, 90, 300, 120, 70, 240, 150];
    for rows in sizes.iter().cycle().take(6) {
        write(None, &batch_of(*rows)).await;
    }
    let mut took = 0.0;
    for rows in sizes {
        let trips = trips(write(None, &batch_of(rows)).await);
        eprintln!("{rows} rows, the way chosen: {trips:.2} round trips");
        took += trips;
    }
    eprintln!("the way chosen: {took:.2} round trips for 8 writes");
    assert!(took < 8.0 * 1.3 + 1.0, "{took:.2} round trips for 8 writes");
}
