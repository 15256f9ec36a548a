//! Every default setting of the services, in one place: the original proof
//! of concept's. The services' flags and the lab's scenario format both take
//! their defaults from here, so a scenario that says nothing runs the
//! services exactly as they run alone.

/// Most connections a database pool opens.
pub const POOL_SIZE: usize = 10;
/// Longest wait for a free pooled connection, in milliseconds.
pub const ACQUIRE_TIMEOUT_MS: u64 = 2000;
/// Longest wait to open a database connection, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 2000;
/// Longest a statement may run, in milliseconds.
pub const STATEMENT_TIMEOUT_MS: u64 = 2000;
/// Idle connections older than this are closed, in milliseconds.
pub const IDLE_TIMEOUT_MS: u64 = 5000;
/// Longest wait for the broker's acknowledgement, in milliseconds.
pub const DELIVERY_TIMEOUT_MS: u64 = 5000;
/// Most events the consumer writes in one transaction: the original wrote
/// one at a time.
pub const BATCH_SIZE: usize = 1;
/// Longest wait to fill a batch once its first event arrived, in milliseconds.
pub const BATCH_LINGER_MS: u64 = 10;
/// Consecutive failed writes that open the circuit breaker.
pub const BREAKER_FAILURES: u32 = 5;
/// How long the breaker stays open, in milliseconds.
pub const BREAKER_OPEN_MS: u64 = 60_000;
/// Consecutive successes in half-open that close the breaker.
pub const BREAKER_SUCCESSES: u32 = 3;
