//! Every default, in one place. They reproduce the original proof of
//! concept; the services' settings come from `faultline_services::defaults`.

use super::*;
use faultline_services::defaults as service;

pub fn duration() -> Span {
    Span::secs(300)
}
pub fn seed() -> u64 {
    1
}
pub fn repetitions() -> u32 {
    1
}
pub fn drain_timeout() -> Span {
    Span::secs(120)
}
pub fn partitions() -> u32 {
    1
}
pub fn group_commit_max_wait() -> Span {
    Span(Duration::from_millis(2))
}
pub fn client_timeout() -> Span {
    Span::secs(5)
}
pub fn drivers() -> u32 {
    5000
}
pub fn command_timeout() -> Span {
    Span::secs(30)
}
pub fn warmup() -> Span {
    Span::secs(5)
}
pub fn retry_backoff() -> Span {
    Span::millis(200)
}
pub fn retry_max_backoff() -> Span {
    Span::secs(30)
}
pub fn delivery_timeout() -> Span {
    Span::millis(service::DELIVERY_TIMEOUT_MS)
}
pub fn batch_size() -> u32 {
    service::BATCH_SIZE as u32
}
pub fn batch_linger() -> Span {
    Span::millis(service::BATCH_LINGER_MS)
}
pub fn pool_size() -> u32 {
    service::POOL_SIZE as u32
}
pub fn acquire_timeout() -> Span {
    Span::millis(service::ACQUIRE_TIMEOUT_MS)
}
pub fn connect_timeout() -> Span {
    Span::millis(service::CONNECT_TIMEOUT_MS)
}
pub fn statement_timeout() -> Span {
    Span::millis(service::STATEMENT_TIMEOUT_MS)
}
pub fn idle_timeout() -> Span {
    Span::millis(service::IDLE_TIMEOUT_MS)
}
pub fn breaker_failures() -> u32 {
    service::BREAKER_FAILURES
}
pub fn breaker_open_for() -> Span {
    Span::millis(service::BREAKER_OPEN_MS)
}
pub fn breaker_successes() -> u32 {
    service::BREAKER_SUCCESSES
}
pub fn currency() -> String {
    "USD".into()
}
pub fn order_value() -> f64 {
    25.0
}
pub fn orders_lost_per_failed_event() -> f64 {
    0.05
}
pub fn production_rps() -> f64 {
    50.0
}
pub fn outages_per_year() -> f64 {
    12.0
}
pub fn staleness_budget() -> Span {
    Span::secs(60)
}
pub fn capacity_max_p99() -> Span {
    Span(Duration::from_millis(100))
}
pub fn capacity_max_error_rate() -> f64 {
    0.01
}
/// The original's two architectures, and its drop policy as a baseline.
pub fn architectures() -> Vec<ArchitectureSettings> {
    let kafka = |name: &str, consumer| ArchitectureSettings::Kafka {
        name: name.into(),
        consumer,
        delivery_timeout: delivery_timeout(),
        batch_size: batch_size(),
        batch_linger: batch_linger(),
        breaker: Breaker::default(),
        pool: Pool::default(),
        retries: None,
    };
    vec![
        ArchitectureSettings::Rest {
            name: "rest".into(),
            pool: Pool::default(),
            retries: None,
            group_commit: None,
        },
        kafka("kafka-buffered", Mode::Buffered),
        kafka("kafka-drop", Mode::Drop),
    ]
}
