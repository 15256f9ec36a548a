//! The services' hot paths without I/O: decoding and validating a request
//! body, a circuit-breaker transition, and laying out a batch for the
//! consumer's `INSERT ... UNNEST`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use faultline_services::breaker::{Breaker, BreakerConfig};
use faultline_services::event::{BodyShape, LocationEvent, decode};
use faultline_services::store::Batch;

fn sample(i: usize) -> LocationEvent {
    LocationEvent {
        event_id: uuid::Uuid::new_v4(),
        driver_id: format!("driver_{}", i % 5000),
        lat: 37.7749 + (i % 100) as f64 / 1000.0,
        lng: -122.4194 + (i % 100) as f64 / 1000.0,
        sent_at: chrono::Utc::now(),
    }
}

fn decode_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_validate");
    let body = sample(7).to_json();
    group.throughput(Throughput::Elements(1));
    group.bench_function("event", |b| {
        b.iter(|| decode(black_box(&body), BodyShape::Event, chrono::Utc::now).unwrap())
    });
    let legacy = br#"{"driverId":"driver_4821","lat":37.8123,"lng":-122.3971}"#;
    group.bench_function("legacy", |b| {
        b.iter(|| decode(black_box(legacy), BodyShape::Legacy, chrono::Utc::now).unwrap())
    });
    let bad = br#"{"driverId":"driver_1","lat":91.0,"lng":0}"#;
    group.bench_function("out_of_range", |b| {
        b.iter(|| decode(black_box(bad), BodyShape::Legacy, chrono::Utc::now).unwrap_err())
    });
    group.finish();
}

fn breaker(c: &mut Criterion) {
    let config = BreakerConfig {
        failure_threshold: 5,
        open_for: Duration::from_millis(1),
        success_threshold: 3,
    };
    let t0 = Instant::now();
    c.bench_function("breaker/closed_success", |b| {
        let mut breaker = Breaker::new(config);
        b.iter(|| {
            let allowed = breaker.allow(black_box(t0));
            breaker.on_success(t0);
            allowed
        })
    });
    c.bench_function("breaker/full_cycle", |b| {
        // closed → open → half-open → closed: 5 failures, the wait, 3 successes.
        let mut breaker = Breaker::new(config);
        let later = t0 + Duration::from_millis(2);
        b.iter(|| {
            for _ in 0..5 {
                breaker.on_failure(black_box(t0));
            }
            assert!(breaker.allow(later));
            for _ in 0..3 {
                breaker.on_success(later);
            }
        })
    });
}

fn batch_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_encode");
    for size in [1usize, 100, 500] {
        let payloads: Vec<Vec<u8>> = (0..size).map(|i| sample(i).to_json()).collect();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(size),
            &payloads,
            |b, payloads| {
                let mut batch = Batch::new("kafka-buffered", size);
                b.iter(|| {
                    batch.clear();
                    for payload in payloads {
                        batch.push(decode(payload, BodyShape::Event, chrono::Utc::now).unwrap());
                    }
                    black_box(batch.len())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode_validate, breaker, batch_encode);
criterion_main!(benches);
