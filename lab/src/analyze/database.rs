//! What bounded a database writer, per phase of the faults: from the
//! services' scraped pool histograms, how long each write waited for a
//! connection and how long it held one, how many rows it carried, and so
//! the most rows a second its pool could store (connections × rows per
//! write ÷ time held, Little's law), beside the rows it did store and the
//! requests offered. A rate that fell is then explained by its round trips
//! and its pool, in figures of the same run.

use std::collections::{BTreeMap, HashMap};

use faultline_services::metrics::names;

use super::join::counter_increase;
use crate::experiment::{Experiment, Phase, RateShape};
use crate::run_folder::frames::MetricColumns;
use crate::run_folder::summary::DatabaseTime;

/// Fewer writes than this in a slot give no pool's bound: the time a
/// handful of writes held their connections (the one a crash let through)
/// says nothing of what the pool could store.
pub const FEW_WRITES: f64 = 30.0;

/// A series the figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    WaitSum,
    WaitCount,
    HeldSum,
    HeldCount,
    Rows,
    Connections,
}

/// The increases of every series (waits, time held, rows) in one phase of one repetition, and the
/// seconds the pool's readings covered there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    wait_s: f64,
    waits: f64,
    held_s: f64,
    writes: f64,
    rows: f64,
    seconds: f64,
    connections: f64,
    /// A counter of rows was read: without one, rows per write are unknown.
    rows_read: bool,
}

/// Per (architecture, repetition) and slot (a phase of the faults, a step
/// of a stepped rate).
pub type DatabaseSums<K = Phase> = HashMap<(String, u32), BTreeMap<K, Sums>>;

/// Sums the scraped pool series into phases of the fault `windows`, leaving
/// out readings before `warmup_s`: each increase between two readings goes
/// to the phase of the later one.
pub fn sums(
    metrics: &MetricColumns,
    windows: &HashMap<u32, Vec<(f64, f64)>>,
    warmup_s: f64,
) -> DatabaseSums {
    sums_by(metrics, warmup_s, |rep, t| {
        Phase::of(windows.get(&rep).map_or(&[][..], Vec::as_slice), t)
    })
}

/// The pool's sums over the whole run, for a run without faults or steps
/// (which split it by phase or by step); `None` otherwise.
pub fn run_sums(metrics: &MetricColumns, experiment: &Experiment) -> Option<DatabaseSums<()>> {
    let split = !experiment.faults.is_empty()
        || matches!(experiment.workload.rate, RateShape::Steps { .. });
    (!split).then(|| sums_by(metrics, experiment.warmup().as_secs_f64(), |_, _| Some(())))
}

/// Sums the scraped pool series into the slots `slot` gives each
/// (repetition, second), leaving out readings before `warmup_s`: each
/// increase between two readings goes to the slot of the later one.
pub fn sums_by<K: Ord + Copy>(
    metrics: &MetricColumns,
    warmup_s: f64,
    slot: impl Fn(u32, f64) -> Option<K>,
) -> DatabaseSums<K> {
    let (wait_sum, wait_count) = (
        format!("{}_sum", names::DB_POOL_WAIT),
        format!("{}_count", names::DB_POOL_WAIT),
    );
    let (held_sum, held_count) = (
        format!("{}_sum", names::DB_CONNECTION_HELD),
        format!("{}_count", names::DB_CONNECTION_HELD),
    );
    let (stored, duplicate) = (
        format!("{}_total", names::EVENTS_STORED),
        format!("{}_total", names::EVENTS_DUPLICATE),
    );
    let readings = metrics.readings_of(|m| match m {
        m if m == wait_sum => Some(Part::WaitSum),
        m if m == wait_count => Some(Part::WaitCount),
        m if m == held_sum => Some(Part::HeldSum),
        m if m == held_count => Some(Part::HeldCount),
        m if m == stored => Some(Part::Rows),
        m if m == names::DB_POOL_MAX => Some(Part::Connections),
        _ => None,
    });
    // Rows stored again (duplicates) held a connection as new ones did.
    let duplicates = metrics.readings_of(|m| (m == duplicate).then_some(Part::Rows));
    let mut out = DatabaseSums::new();
    for ((arch, _, rep, part), points) in readings.iter().chain(duplicates.iter()) {
        for w in points.windows(2).filter(|w| w[0].0 >= warmup_s) {
            let Some(key) = slot(*rep, w[1].0) else {
                continue;
            };
            let sums = out
                .entry((arch.clone(), *rep))
                .or_default()
                .entry(key)
                .or_default();
            let increase = counter_increase(w[0].1, w[1].1);
            match part {
                Part::WaitSum => sums.wait_s += increase,
                Part::WaitCount => sums.waits += increase,
                Part::HeldSum => sums.held_s += increase,
                Part::HeldCount => {
                    sums.writes += increase;
                    sums.seconds += w[1].0 - w[0].0;
                }
                Part::Rows => {
                    sums.rows += increase;
                    sums.rows_read = true;
                }
                Part::Connections => sums.connections = sums.connections.max(w[1].1),
            }
        }
    }
    out
}

/// The sums of `name` over the repetitions `reps`, per slot.
pub fn pooled<K: Ord + Copy>(
    sums: &DatabaseSums<K>,
    name: &str,
    reps: &[u32],
) -> BTreeMap<K, Sums> {
    let mut pooled: BTreeMap<K, Sums> = BTreeMap::new();
    for r in reps {
        for (key, s) in sums.get(&(name.to_string(), *r)).into_iter().flatten() {
            let slot = pooled.entry(*key).or_default();
            slot.wait_s += s.wait_s;
            slot.waits += s.waits;
            slot.held_s += s.held_s;
            slot.writes += s.writes;
            slot.rows += s.rows;
            slot.seconds += s.seconds;
            slot.connections = slot.connections.max(s.connections);
            slot.rows_read |= s.rows_read;
        }
    }
    pooled
}

impl Sums {
    /// The figures of these sums, with the rate offered meanwhile; `None`
    /// without a write or a wait, or without a count of rows (a `service`
    /// of the user's that maps neither). Rates stored and connections busy
    /// are over the seconds the pool's readings covered; without a write
    /// (every wait got no connection) rows per write and time held are 0.
    pub fn figures(&self, offered_per_s: Option<f64>) -> Option<DatabaseTime> {
        if self.writes.max(self.waits) < 1.0 || self.seconds <= 0.0 || !self.rows_read {
            return None;
        }
        let per_write = |v: f64| {
            if self.writes >= 1.0 {
                v / self.writes
            } else {
                0.0
            }
        };
        let held_ms = per_write(1000.0 * self.held_s);
        let rows_per_write = per_write(self.rows);
        let connections = self.connections.round() as u32;
        Some(DatabaseTime {
            writes: self.writes.round() as u64,
            rows_per_write,
            held_ms,
            waited_ms: (self.waits >= 1.0).then(|| 1000.0 * self.wait_s / self.waits),
            no_connection: (self.waits - self.writes).max(0.0).round() as u64,
            connections,
            busy_connections: self.held_s / self.seconds,
            bound_rows_per_s: (held_ms > 0.0 && connections > 0 && self.writes >= FEW_WRITES)
                .then(|| f64::from(connections) * rows_per_write / (held_ms / 1000.0)),
            rows_per_s: self.rows / self.seconds,
            offered_per_s,
        })
    }
}

/// The figures of `name` over the repetitions `reps`, per phase, with the
/// requests `offered` in each phase over those repetitions and the phases'
/// `seconds` (the rate offered is over the phase's own seconds).
pub fn figures(
    sums: &DatabaseSums,
    name: &str,
    reps: &[u32],
    offered: &BTreeMap<Phase, u64>,
    seconds: &BTreeMap<Phase, f64>,
) -> BTreeMap<Phase, DatabaseTime> {
    pooled(sums, name, reps)
        .into_iter()
        .filter_map(|(phase, s)| {
            let offered_per_s = offered
                .get(&phase)
                .zip(seconds.get(&phase).filter(|s| **s > 0.0))
                .map(|(n, s)| *n as f64 / s);
            Some((phase, s.figures(offered_per_s)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(rows: &[(&str, f64, f64)]) -> MetricColumns {
        MetricColumns {
            repetition: vec![0; rows.len()],
            t_s: rows.iter().map(|r| Some(r.1)).collect(),
            architecture: vec!["rest".into(); rows.len()],
            service: vec!["rest".into(); rows.len()],
            metric: rows.iter().map(|r| r.0.to_string()).collect(),
            value: rows.iter().map(|r| Some(r.2)).collect(),
        }
    }

    #[test]
    fn a_pool_held_by_slow_writes_bounds_the_rate_it_can_store() {
        // A fault from 10 s to 20 s: before it, 100 writes a second of one
        // row, each holding its connection 2 ms; in it, 30 writes a second
        // holding it 300 ms, each after a 1 s wait.
        let mut rows = Vec::new();
        let (mut wait, mut waits, mut held, mut writes, mut stored) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for t in 0..=20 {
            let t = f64::from(t);
            rows.push(("db_pool_max_connections", t, 10.0));
            for (m, v) in [
                ("db_pool_wait_seconds_sum", wait),
                ("db_pool_wait_seconds_count", waits),
                ("db_connection_held_seconds_sum", held),
                ("db_connection_held_seconds_count", writes),
                ("events_stored_total", stored),
                ("events_duplicate_total", 0.0),
            ] {
                rows.push((m, t, v));
            }
            // What happens until the next reading, which the fault's
            // phase of that reading gets.
            let (n, hold, waited) = if t + 1.0 < 10.0 {
                (100.0, 0.002, 0.0)
            } else {
                (30.0, 0.3, 1.0)
            };
            wait += n * waited;
            waits += n;
            held += n * hold;
            writes += n;
            stored += n;
        }
        let windows = HashMap::from([(0, vec![(10.0, 20.0)])]);
        let sums = sums(&columns(&rows), &windows, 0.0);
        let offered = BTreeMap::from([(Phase::Before, 900), (Phase::During, 2000)]);
        let seconds = BTreeMap::from([(Phase::Before, 9.0), (Phase::During, 10.0)]);
        let figures = figures(&sums, "rest", &[0], &offered, &seconds);
        let before = &figures[&Phase::Before];
        assert_eq!(before.connections, 10);
        assert!((before.held_ms - 2.0).abs() < 1e-9, "{before:?}");
        assert!((before.rows_per_write - 1.0).abs() < 1e-9);
        assert!((before.bound_rows_per_s.unwrap() - 5000.0).abs() < 1e-6);
        assert!((before.rows_per_s - 100.0).abs() < 1e-9);
        let during = &figures[&Phase::During];
        assert!((during.held_ms - 300.0).abs() < 1e-9, "{during:?}");
        assert!((during.waited_ms.unwrap() - 1000.0).abs() < 1e-9);
        assert!((during.bound_rows_per_s.unwrap() - 10.0 / 0.3).abs() < 1e-6);
        assert!((during.rows_per_s - 30.0).abs() < 1e-9);
        // 30 writes a second of 0.3 s: 9 connections busy at once.
        assert!((during.busy_connections - 9.0).abs() < 1e-9);
        assert!((before.busy_connections - 0.2).abs() < 1e-9);
        assert!((during.offered_per_s.unwrap() - 200.0).abs() < 1e-9);
        // No pool histograms: no figures.
        assert!(super::figures(&sums, "kafka", &[0], &offered, &seconds).is_empty());
        // Time held without a count of rows: no figures either.
        let held_only: Vec<_> = rows
            .iter()
            .filter(|r| !r.0.starts_with("events_"))
            .copied()
            .collect();
        let sums = super::sums(&columns(&held_only), &windows, 0.0);
        assert!(super::figures(&sums, "rest", &[0], &offered, &seconds).is_empty());
    }

    #[test]
    fn waits_that_got_no_connection_are_counted_and_a_few_writes_give_no_bound() {
        // Ten seconds of 50 waits a second; one write got a connection.
        let mut rows = vec![("db_pool_max_connections", 0.0, 10.0)];
        for (t, waits, writes) in [(0.0, 0.0, 0.0), (10.0, 500.0, 1.0)] {
            rows.extend([
                ("db_pool_wait_seconds_sum", t, waits * 0.0002),
                ("db_pool_wait_seconds_count", t, waits),
                ("db_connection_held_seconds_sum", t, writes * 0.001),
                ("db_connection_held_seconds_count", t, writes),
                ("events_stored_total", t, writes),
            ]);
        }
        let sums = sums_by(&columns(&rows), 0.0, |_, _| Some(()));
        let figures = pooled(&sums, "rest", &[0])[&()]
            .figures(Some(50.0))
            .unwrap();
        assert_eq!((figures.writes, figures.no_connection), (1, 499));
        assert!((figures.held_ms - 1.0).abs() < 1e-9, "{figures:?}");
        assert_eq!(figures.bound_rows_per_s, None);
        // Not one got a connection: figures of the waits alone.
        let none: Vec<_> = rows
            .iter()
            .map(|r| match r.0 {
                "db_connection_held_seconds_count"
                | "db_connection_held_seconds_sum"
                | "events_stored_total" => (r.0, r.1, 0.0),
                _ => *r,
            })
            .collect();
        let sums = sums_by(&columns(&none), 0.0, |_, _| Some(()));
        let figures = pooled(&sums, "rest", &[0])[&()]
            .figures(Some(50.0))
            .unwrap();
        assert_eq!((figures.writes, figures.no_connection), (0, 500));
        assert_eq!((figures.held_ms, figures.rows_per_write), (0.0, 0.0));
        // As many writes as the least that gives a bound: it is given.
        let writes = 1.0 + FEW_WRITES;
        rows.extend([
            ("db_pool_max_connections", 20.0, 10.0),
            ("db_connection_held_seconds_count", 20.0, writes),
            ("db_connection_held_seconds_sum", 20.0, writes * 0.001),
            ("db_pool_wait_seconds_count", 20.0, 500.0 + FEW_WRITES),
            ("events_stored_total", 20.0, writes),
        ]);
        let sums = sums_by(&columns(&rows), 0.0, |_, t| Some(t > 10.0));
        let later = pooled(&sums, "rest", &[0])[&true].figures(None).unwrap();
        assert_eq!(later.no_connection, 0, "{later:?}");
        assert!(later.bound_rows_per_s.is_some(), "{later:?}");
    }
}
