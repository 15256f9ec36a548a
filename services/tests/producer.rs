//! The producer service against a real broker: 202 only after the broker
//! acknowledged, bad input refused, a dead broker a 503 on time.

mod common;

use std::time::{Duration, Instant};

use common::{Http, Stack, check_bad_cases, event, start_producer};
use faultline_services::event::LocationEvent;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expect: usize,
) -> Vec<(String, LocationEvent)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "producer-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < expect && started.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let event: LocationEvent = serde_json::from_slice(message.payload().unwrap()).unwrap();
            seen.push((key, event));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_202_after_the_broker_acknowledged_keyed_by_driver() {
    let topic = "locations-ack";
    let stack = Stack::with_broker("producer-ack", topic, 3).await;
    let producer = start_producer(&stack, topic, 5000).await;
    let http = Http::new();
    let mut sent = Vec::new();
    for driver in 0..30 {
        let event = event(driver);
        let answer = http
            .post_json(
                &producer.url("/events"),
                serde_json::to_vec(&event).unwrap(),
            )
            .await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        assert_eq!(answer.body["event_id"], event.event_id.to_string());
        assert!(answer.body["offset"].as_i64().unwrap() >= 0);
        sent.push(event);
    }
    let legacy = http
        .post_json(
            &producer.url("/produce-event"),
            r#"{"driverId":"driver_9","lat":37.7,"lng":-122.4}"#,
        )
        .await;
    assert_eq!(legacy.status, 202, "{}", legacy.text);

    let bootstrap = stack.broker().bootstrap();
    let seen = tokio::task::spawn_blocking(move || read_topic(&bootstrap, topic, 3, 31))
        .await
        .unwrap();
    assert_eq!(seen.len(), 31);
    for event in &sent {
        let (key, stored) = seen
            .iter()
            .find(|(_, e)| e.event_id == event.event_id)
            .expect("every acknowledged event is on the topic");
        assert_eq!(key, &event.driver_id);
        assert_eq!(stored, event);
    }
    let metrics = http.get(&producer.url("/metrics")).await.text;
    assert!(
        metrics.contains(r#"kafka_produce_total{status="success"} 31"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"producer_http_requests_total{status="202"} 31"#),
        "{metrics}"
    );
    producer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_problem_and_produces_nothing() {
    let topic = "locations-bad";
    let stack = Stack::with_broker("producer-bad", topic, 1).await;
    let producer = start_producer(&stack, topic, 5000).await;
    let http = Http::new();
    check_bad_cases(&http, &producer, "/produce-event").await;
    let metrics = http.get(&producer.url("/metrics")).await.text;
    assert!(
        !metrics.contains("kafka_produce_total{"),
        "something was produced:\n{metrics}"
    );
    let identity = http.get(&producer.url("/identity")).await;
    assert_eq!(identity.body["service"], "faultline-producer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_is_a_503_within_the_delivery_timeout() {
    let topic = "locations-dead";
    let mut stack = Stack::with_broker("producer-dead", topic, 1).await;
    let delivery_timeout = Duration::from_millis(1500);
    let producer = start_producer(&stack, topic, delivery_timeout.as_millis() as u64).await;
    let http = Http::new();
    let url = producer.url("/events");
    assert_eq!(
        http.post_json(&url, serde_json::to_vec(&event(1)).unwrap())
            .await
            .status,
        202
    );
    stack.broker.as_mut().unwrap().kill().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let answer = http
            .post_json(&url, serde_json::to_vec(&event(2)).unwrap())
            .await;
        let took = started.elapsed();
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.body["error"], "broker_unavailable");
        assert!(answer.headers.get("retry-after").is_some());
        // librdkafka scans for expired messages once a second.
        let bound = delivery_timeout + Duration::from_millis(1200);
        assert!(took <= bound, "a 503 took {took:?}, more than {bound:?}");
    }
    let metrics = http.get(&producer.url("/metrics")).await.text;
    assert!(
        metrics.contains(r#"kafka_produce_total{status="error"} 3"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_gets_202s_again_without_restarting_the_producer() {
    let topic = "locations-restart";
    let mut stack = Stack::with_broker("producer-restart", topic, 1).await;
    let producer = start_producer(&stack, topic, 1500).await;
    let http = Http::new();
    let url = producer.url("/events");
    let post = |n: usize| {
        let http = &http;
        let url = &url;
        async move {
            http.post_json(url, serde_json::to_vec(&event(n)).unwrap())
                .await
        }
    };
    assert_eq!(post(1).await.status, 202);
    let broker = stack.broker.as_mut().unwrap();
    broker.kill().unwrap();
    assert_eq!(post(2).await.status, 503);
    broker.restart().await.unwrap();
    if !broker.kind().durable() {
        // Memory storage forgot the topic with everything else.
        broker.create_topic(topic, 1).await.unwrap();
    }
    // 503s while the producer finds its feet, then 202s again.
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut last = String::new();
    let mut n = 3;
    while started.elapsed() < Duration::from_secs(45) {
        let answer = post(n).await;
        n += 1;
        answers.push(answer.status);
        last = answer.text.clone();
        if answers.iter().rev().take(3).filter(|s| **s == 202).count() == 3 {
            break;
        }
        assert!(
            answer.status == 202 || answer.status == 503,
            "{}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answers.iter().rev().take(3).all(|s| *s == 202),
        "no 202 in {:?} after the restart: {answers:?}; the last answer: {last}",
        started.elapsed()
    );
    let metrics = http.get(&producer.url("/metrics")).await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kafka_producer_restarts_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_is_delivered_to_its_own_topic_or_answered_503() {
    let topic = "locations-probe";
    let mut stack = Stack::with_broker("producer-probe", topic, 1).await;
    let probes = faultline_services::producer::probe_topic(topic);
    stack.broker().create_topic(&probes, 1).await.unwrap();
    let producer = start_producer(&stack, topic, 1500).await;
    let http = Http::new();
    let probe = producer.url("/probe");
    let answer = http.post_json(&probe, Vec::new()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["topic"], probes.as_str());
    let probes = probes.clone();
    assert_eq!(http.get(&probe).await.status, 405);
    // The probe is not an event: it is on its own topic, and the events'
    // topic and figures stay empty.
    let bootstrap = stack.broker().bootstrap();
    let ends = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        [topic, probes.as_str()].map(|t| {
            client
                .fetch_watermarks(t, 0, Duration::from_secs(5))
                .unwrap()
                .1
        })
    })
    .await
    .unwrap();
    assert_eq!(ends, [0, 1]);
    let metrics = http.get(&producer.url("/metrics")).await.text;
    assert!(!metrics.contains("kafka_produce_total{"), "{metrics}");
    assert!(
        !metrics.contains("producer_http_requests_total{"),
        "{metrics}"
    );

    stack.broker.as_mut().unwrap().kill().unwrap();
    let answer = http.post_json(&probe, Vec::new()).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.body["error"], "broker_unavailable");
}

/// Events posted at once go to the broker in batches; the producer says
/// where each partition ends from the broker's acknowledgements, record by
/// record, whatever the broker's own end offsets count (tansu's count
/// batches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_says_where_each_partition_ends_from_its_acknowledgements() {
    let topic = "locations-ends";
    let stack = Stack::with_broker("producer-ends", topic, 2).await;
    let producer = start_producer(&stack, topic, 5000).await;
    let http = Http::new();
    let url = producer.url("/events");
    let posts = (0..300).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let body = serde_json::to_vec(&event(i % 40)).unwrap();
            http.post_json(&url, body).await.status
        })
    });
    let mut answered = Vec::new();
    for post in posts.collect::<Vec<_>>() {
        answered.push(post.await.unwrap());
    }
    assert!(answered.iter().all(|s| *s == 202), "{answered:?}");
    let metrics = http.get(&producer.url("/metrics")).await.text;
    let ends: Vec<i64> = (0..2)
        .map(|p| {
            let prefix = format!("kafka_produce_end_offset{{partition=\"{p}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no end for partition {p}: {metrics}"))
        })
        .collect();
    assert_eq!(ends.iter().sum::<i64>(), 300, "{metrics}");
    // Every record is on the topic, as many as the producer's ends say.
    let bootstrap = stack.broker().bootstrap();
    let seen = tokio::task::spawn_blocking(move || read_topic(&bootstrap, topic, 2, 300))
        .await
        .unwrap();
    assert_eq!(seen.len(), 300);
    producer.stop().await;
}
