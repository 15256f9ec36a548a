//! What a person sees while a run goes: a line per event, and a status line
//! a second (rewritten in place on a terminal, one every ten seconds
//! otherwise).

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_services::breaker::BreakerState;
use faultline_services::metrics::names;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collect::Latest;
use crate::load::Counters;

/// Prints progress to stderr: a line a second on a terminal (rewritten in
/// place), one every ten seconds otherwise, none when quiet.
#[derive(Debug, Clone)]
pub struct Progress {
    pub quiet: bool,
    pub terminal: bool,
}

impl Progress {
    /// Progress lines on stderr, the status line redrawn in place on a
    /// terminal; none with `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            // Redrawn in place on a terminal (NO_COLOR is about colour,
            // and this has none).
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn of(options: &super::RunOptions) -> Self {
        Self::new(options.quiet)
    }

    pub fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            eprint!("\r\x1b[K");
        }
        eprintln!("faultline: {line}");
    }

    fn status(&self, tick: u64, line: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            eprint!("\r\x1b[K{line}");
        } else if tick.is_multiple_of(10) {
            eprintln!("{line}");
        }
    }
}

/// The latest backlog of `architecture`, in messages: the lab's own
/// measure where it has one (the producers' acknowledged ends less the
/// consumer's position), else the consumer's gauge, which reads the
/// broker's end offsets (a broker that counts batches there, as tansu
/// does, makes it an undercount). A negative gauge is a consumer that does
/// not know yet.
pub fn backlog_value(latest: &Latest, architecture: &str) -> Option<f64> {
    let measured = latest
        .lock()
        .expect("latest lock")
        .get(&(
            architecture.to_string(),
            "lab".into(),
            names::LAB_BACKLOG.into(),
        ))
        .copied();
    measured.or_else(|| consumer_value(latest, architecture, names::CONSUMER_BACKLOG_MESSAGES))
}

/// The latest scraped value of a consumer metric of `architecture`.
pub fn consumer_value(latest: &Latest, architecture: &str, metric: &str) -> Option<f64> {
    latest
        .lock()
        .expect("latest lock")
        .get(&(architecture.to_string(), "consumer".into(), metric.into()))
        .copied()
}

/// The status line's sources, read once a second.
pub struct Ticker {
    pub progress: Progress,
    pub label: String,
    pub duration: Duration,
    pub names: Vec<String>,
    pub counters: Vec<Arc<Counters>>,
    pub latest: Latest,
    pub active_faults: Arc<Mutex<Vec<String>>>,
    pub t0: Instant,
    /// The live view, fed each second too (`--dashboard`).
    pub live: Option<Arc<crate::live::Live>>,
}

impl Ticker {
    /// One status line a second until `stop`: elapsed time, active faults,
    /// and per architecture the last second's ok/failed counts, breaker and
    /// backlog.
    pub async fn run(self, stop: CancellationToken) {
        let mut last: Vec<(u64, u64)> = vec![(0, 0); self.names.len()];
        let mut tick =
            tokio::time::interval_at(self.t0 + Duration::from_secs(1), Duration::from_secs(1));
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            n += 1;
            let line = self.line(&mut last);
            self.progress.status(n, &line);
        }
        if self.progress.terminal && !self.progress.quiet {
            eprintln!();
        }
    }

    fn line(&self, last: &mut [(u64, u64)]) -> String {
        let elapsed = self.t0.elapsed();
        let phase = if elapsed <= self.duration {
            "load"
        } else {
            "drain"
        };
        let active = self.active_faults.lock().expect("faults lock").clone();
        let faults = active.join(",");
        let mut parts = Vec::new();
        let mut seconds = Vec::new();
        // The second that just ended.
        let t = (elapsed.as_secs_f64() - 1.0).max(0.0).floor() as u32;
        for (i, name) in self.names.iter().enumerate() {
            let ok = self.counters[i].ok.load(Ordering::Relaxed);
            let failed = self.counters[i].failed.load(Ordering::Relaxed);
            let (last_ok, last_failed) = last[i];
            last[i] = (ok, failed);
            let mut part = format!(
                "{name} ok {}/s fail {}/s",
                ok - last_ok,
                failed - last_failed
            );
            let value = |metric| consumer_value(&self.latest, name, metric);
            let breaker = value(names::CIRCUIT_BREAKER_STATE);
            if let Some(state) = breaker.and_then(BreakerState::from_code) {
                part.push_str(&format!(" breaker {}", state.as_str()));
            }
            // A consumer with no partitions yet does not know its backlog.
            let backlog = backlog_value(&self.latest, name);
            match backlog {
                Some(backlog) if backlog >= 0.0 => {
                    part.push_str(&format!(" backlog {backlog:.0}"));
                }
                Some(_) => part.push_str(" backlog ?"),
                None => {}
            }
            parts.push(part);
            // The successful requests that finished in the last second.
            let latency = self.live.as_ref().and_then(|live| {
                let taken = std::mem::take(
                    &mut *self.counters[i].latencies.lock().expect("latencies lock"),
                );
                live.observe(i, &taken);
                crate::stats::latency(taken.into_iter())
            });
            seconds.push(crate::live::Second {
                t,
                architecture: i,
                ok: ok - last_ok,
                failed: failed - last_failed,
                p50_ms: latency.as_ref().map(|l| l.p50),
                p99_ms: latency.as_ref().map(|l| l.p99),
                backlog: backlog.filter(|b| *b >= 0.0),
                breaker,
            });
        }
        if let Some(live) = &self.live {
            live.tick(seconds, &active, elapsed.as_secs_f64(), phase);
        }
        format!(
            "{} {phase} {:>4.0}s/{}s{} | {}",
            self.label,
            elapsed.as_secs_f64(),
            self.duration.as_secs(),
            if faults.is_empty() {
                String::new()
            } else {
                format!(" [{faults}]")
            },
            parts.join(" | ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_the_labs_own_measure_where_it_has_one() {
        let latest: Latest = Arc::default();
        let set = |service: &str, metric: &str, value: f64| {
            latest
                .lock()
                .unwrap()
                .insert(("kafka".into(), service.into(), metric.into()), value);
        };
        assert_eq!(backlog_value(&latest, "kafka"), None);
        // A broker that counts batches in its end offsets: the consumer
        // reads an empty backlog while 1,200 events wait.
        set("consumer", names::CONSUMER_BACKLOG_MESSAGES, 0.0);
        assert_eq!(backlog_value(&latest, "kafka"), Some(0.0));
        set("lab", names::LAB_BACKLOG, 1200.0);
        assert_eq!(backlog_value(&latest, "kafka"), Some(1200.0));
        assert_eq!(backlog_value(&latest, "other"), None);
    }
}
