//! The circuit breaker that guards the consumer's database writes.
//!
//! A pure state machine: every method takes the current time as an argument,
//! so the transitions are tested with injected time and the consumer decides
//! what "now" is.
//!
//! Closed → (N consecutive failures) → Open → (open time elapsed) → HalfOpen.
//! In HalfOpen one failure re-opens it; M consecutive successes close it.

use std::time::{Duration, Instant};

/// The breaker's constants. The defaults are the original proof of concept's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets a probe through.
    pub open_for: Duration,
    /// Consecutive successes in half-open that close the breaker.
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: crate::defaults::BREAKER_FAILURES,
            open_for: Duration::from_millis(crate::defaults::BREAKER_OPEN_MS),
            success_threshold: crate::defaults::BREAKER_SUCCESSES,
        }
    }
}

/// The state as exported in the `circuit_breaker_state` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    /// The value of the `circuit_breaker_state` gauge.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The state a scraped `circuit_breaker_state` value stands for: the
    /// nearest code, so a value averaged over a second still reads.
    pub fn from_code(value: f64) -> Option<Self> {
        match value.round() as i64 {
            0 => Some(BreakerState::Closed),
            1 => Some(BreakerState::HalfOpen),
            2 => Some(BreakerState::Open),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32 },
}

/// A circuit breaker. See the module documentation for its transitions.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Inner,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Inner::Closed { failures: 0 },
        }
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The state at `now`: an open breaker whose time is up reads as half-open.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go through at `now`. An open breaker whose time is
    /// up moves to half-open and lets the probe through.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.inner {
            Inner::Closed { .. } | Inner::HalfOpen { .. } => true,
            Inner::Open { until } if now >= until => {
                self.inner = Inner::HalfOpen { successes: 0 };
                true
            }
            Inner::Open { .. } => false,
        }
    }

    /// How long until an open breaker lets a probe through; zero otherwise.
    pub fn wait(&self, now: Instant) -> Duration {
        match self.inner {
            Inner::Open { until } => until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }

    /// Records a successful call.
    pub fn on_success(&mut self, _now: Instant) {
        self.inner = match self.inner {
            Inner::Closed { .. } => Inner::Closed { failures: 0 },
            Inner::HalfOpen { successes } if successes + 1 >= self.config.success_threshold => {
                Inner::Closed { failures: 0 }
            }
            Inner::HalfOpen { successes } => Inner::HalfOpen {
                successes: successes + 1,
            },
            // A call let through before the breaker opened finished late: it
            // does not shorten the open period.
            open @ Inner::Open { .. } => open,
        };
    }

    /// Records a failed call.
    pub fn on_failure(&mut self, now: Instant) {
        let open = Inner::Open {
            until: now + self.config.open_for,
        };
        self.inner = match self.inner {
            Inner::Closed { failures } if failures + 1 >= self.config.failure_threshold => open,
            Inner::Closed { failures } => Inner::Closed {
                failures: failures + 1,
            },
            Inner::HalfOpen { .. } => open,
            Inner::Open { until } => Inner::Open { until },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
            success_threshold: 2,
        }
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn defaults_are_the_original_constants() {
        let c = BreakerConfig::default();
        assert_eq!(
            (c.failure_threshold, c.open_for, c.success_threshold),
            (5, Duration::from_secs(60), 3)
        );
    }

    #[test]
    fn closed_stays_closed_below_the_threshold() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        for state in [
            BreakerState::Closed,
            BreakerState::HalfOpen,
            BreakerState::Open,
        ] {
            assert_eq!(BreakerState::from_code(state.code() as f64), Some(state));
        }
        assert_eq!(BreakerState::from_code(7.0), None);
        assert!(b.allow(t0));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success(t0);
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn closed_opens_at_the_threshold_and_refuses_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.allow(secs(t0, 9)));
        assert_eq!(b.wait(secs(t0, 4)), Duration::from_secs(6));
    }

    #[test]
    fn open_turns_half_open_when_its_time_is_up() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.state(secs(t0, 10)), BreakerState::HalfOpen);
        assert!(b.allow(secs(t0, 10)));
        assert_eq!(b.state(secs(t0, 10)), BreakerState::HalfOpen);
        assert_eq!(b.wait(secs(t0, 10)), Duration::ZERO);
    }

    #[test]
    fn one_failure_in_half_open_reopens_for_a_full_period() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert!(b.allow(secs(t0, 12)));
        b.on_failure(secs(t0, 12));
        assert_eq!(b.state(secs(t0, 12)), BreakerState::Open);
        assert!(!b.allow(secs(t0, 21)));
        assert!(b.allow(secs(t0, 22)));
    }

    #[test]
    fn enough_successes_in_half_open_close_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert!(b.allow(secs(t0, 10)));
        b.on_success(secs(t0, 10));
        assert_eq!(b.state(secs(t0, 10)), BreakerState::HalfOpen);
        b.on_success(secs(t0, 11));
        assert_eq!(b.state(secs(t0, 11)), BreakerState::Closed);
        // Closed again: it takes the full threshold to open it.
        b.on_failure(secs(t0, 12));
        b.on_failure(secs(t0, 12));
        assert_eq!(b.state(secs(t0, 12)), BreakerState::Closed);
    }

    #[test]
    fn a_late_result_while_open_changes_nothing() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        b.on_success(secs(t0, 1));
        b.on_failure(secs(t0, 5));
        assert_eq!(b.state(secs(t0, 9)), BreakerState::Open);
        assert_eq!(b.state(secs(t0, 10)), BreakerState::HalfOpen);
    }
}
