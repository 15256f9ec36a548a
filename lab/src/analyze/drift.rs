//! Drift: figures that move at constant load with no fault. Followed
//! through the controls' whole run (after the warm-up), or without a
//! control through the faulted runs' seconds before their first fault, and
//! compared between the first fifth of those seconds and the last (latency:
//! the median of each second's p99; CPU: cores busy; the producers'
//! acknowledgement: its mean). A
//! figure that moves by half or more there moves without the fault: the
//! report then says so and names no cause for it.

use std::collections::HashMap;

use crate::run_folder::frames::MetricColumns;
use crate::run_folder::summary::Drift;

use super::cpu::{Readings, spent_between};
use super::join::Request;

/// The fewest seconds with no fault that are followed: shorter, a fifth is
/// too short to read a p99 or a CPU rate from.
pub const SHORTEST_S: f64 = 60.0;

/// How far a figure moves before it is called drift: ×1.5 or ÷1.5.
pub const FACTOR: f64 = 1.5;

/// The seconds with no fault followed, and whose.
#[derive(Debug, Clone, PartialEq)]
pub struct Quiet {
    /// `control` or `before`.
    pub source: &'static str,
    pub repetitions: Vec<u32>,
    pub from_s: f64,
    pub to_s: f64,
}

impl Quiet {
    /// The controls' run after the warm-up; without a control, the faulted
    /// runs' seconds from the warm-up to the earliest fault. `None` when
    /// those are shorter than [`SHORTEST_S`].
    pub fn of(
        controls: &[u32],
        faulted: &[u32],
        windows: &HashMap<u32, Vec<(f64, f64)>>,
        warmup_s: f64,
        duration_s: f64,
    ) -> Option<Self> {
        let (source, repetitions, to_s) = if controls.is_empty() {
            let first_fault = faulted
                .iter()
                .flat_map(|r| windows.get(r).into_iter().flatten())
                .map(|w| w.0)
                .fold(duration_s, f64::min);
            ("before", faulted.to_vec(), first_fault)
        } else {
            ("control", controls.to_vec(), duration_s)
        };
        (to_s - warmup_s >= SHORTEST_S).then_some(Self {
            source,
            repetitions,
            from_s: warmup_s,
            to_s,
        })
    }

    /// The first and the last fifth.
    fn fifths(&self) -> [(f64, f64); 2] {
        let width = (self.to_s - self.from_s) / 5.0;
        [
            (self.from_s, self.from_s + width),
            (self.to_s - width, self.to_s),
        ]
    }

    fn drift(&self, figure: &str, subject: String, [first, last]: [f64; 2], floor: f64) -> Drift {
        let moved = first.max(last) >= floor
            && first > 0.0
            && (last / first >= FACTOR || last / first <= 1.0 / FACTOR);
        Drift {
            figure: figure.to_string(),
            subject,
            source: self.source.to_string(),
            from_s: self.from_s,
            to_s: self.to_s,
            first,
            last,
            drifted: moved,
        }
    }
}

/// Below these a figure is too small to call its move drift: 0.1 ms of
/// latency, 0.02 of a core.
const LATENCY_FLOOR_MS: f64 = 0.1;
const CPU_FLOOR_CORES: f64 = 0.02;

/// Every architecture's p99 (`order`), its producer's acknowledgement
/// time, and every process's CPU, through `quiet`.
pub fn drift(
    quiet: &Quiet,
    order: &[&str],
    requests: &HashMap<String, Vec<Request>>,
    cpu: &Readings,
    metrics: &MetricColumns,
) -> Vec<Drift> {
    let fifths = quiet.fifths();
    let mut out = Vec::new();
    for name in order {
        let rows = requests.get(*name).map_or(&[][..], Vec::as_slice);
        let p99 = |fifth: (f64, f64)| median_p99(rows, &quiet.repetitions, fifth);
        if let (Some(first), Some(last)) = (p99(fifths[0]), p99(fifths[1])) {
            out.push(quiet.drift(
                "latency_p99_ms",
                name.to_string(),
                [first, last],
                LATENCY_FLOOR_MS,
            ));
        }
    }
    out.extend(produce_ack(quiet, order, metrics));
    for ((architecture, process), series) in by_process(cpu, &quiet.repetitions) {
        let cores = |(from, to): (f64, f64)| {
            let each: Vec<f64> = series
                .iter()
                .filter_map(|points| spent_between(points, from, to))
                .filter(|s| s.to > s.from)
                .map(|s| s.cpu_s / (s.to - s.from))
                .collect();
            (!each.is_empty()).then(|| each.iter().sum::<f64>() / each.len() as f64)
        };
        if let (Some(first), Some(last)) = (cores(fifths[0]), cores(fifths[1])) {
            let subject = if architecture.is_empty() {
                process
            } else {
                format!("{architecture}/{process}")
            };
            out.push(quiet.drift("cpu_cores", subject, [first, last], CPU_FLOOR_CORES));
        }
    }
    out
}

/// The median over the seconds of `(from, to)` of each second's p99 of the
/// successful requests of `repetitions` (pooled): a single slow second (a
/// checkpoint, a pause) moves it little, a slower stack moves it. `None`
/// with fewer than 5 such seconds.
fn median_p99(rows: &[Request], repetitions: &[u32], (from, to): (f64, f64)) -> Option<f64> {
    let mut seconds: std::collections::BTreeMap<i64, Vec<u64>> = std::collections::BTreeMap::new();
    for r in rows {
        if r.ok && repetitions.contains(&r.repetition) && r.intended_s >= from && r.intended_s < to
        {
            seconds
                .entry(r.intended_s.floor() as i64)
                .or_default()
                .push(r.latency_us);
        }
    }
    let mut each: Vec<f64> = seconds
        .into_values()
        .filter_map(|l| crate::stats::latency(l.into_iter()).map(|l| l.p99))
        .collect();
    if each.len() < 5 {
        return None;
    }
    each.sort_by(f64::total_cmp);
    let n = each.len();
    Some(if n % 2 == 1 {
        each[n / 2]
    } else {
        (each[n / 2 - 1] + each[n / 2]) / 2.0
    })
}

/// Per (architecture, process): one series of CPU readings per repetition.
type ByProcess<'a> = std::collections::BTreeMap<(String, String), Vec<&'a [(f64, f64)]>>;

/// Each process's CPU readings in `repetitions`, one series per repetition.
fn by_process<'a>(cpu: &'a Readings, repetitions: &[u32]) -> ByProcess<'a> {
    let mut out: std::collections::BTreeMap<_, Vec<_>> = std::collections::BTreeMap::new();
    for ((architecture, process, repetition), points) in cpu {
        if repetitions.contains(repetition) {
            out.entry((architecture.clone(), process.clone()))
                .or_default()
                .push(points.as_slice());
        }
    }
    out
}

/// The producers' mean acknowledgement time in the first and last fifth.
fn produce_ack(quiet: &Quiet, order: &[&str], metrics: &MetricColumns) -> Vec<Drift> {
    let readings = super::join::sum_and_count(
        metrics,
        faultline_services::metrics::names::KAFKA_PRODUCE_DURATION,
    );
    // The increase of a cumulative series between two times.
    let increase = |points: &[(f64, f64)], (from, to): (f64, f64)| {
        let inside: Vec<f64> = points
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, v)| *v)
            .collect();
        Some((inside.last()? - inside.first()?).max(0.0))
    };
    let fifths = quiet.fifths();
    let mut out = Vec::new();
    for name in order {
        let mean = |fifth: (f64, f64)| {
            let (mut seconds, mut produced) = (0.0, 0.0);
            for ((architecture, _, repetition, is_sum), points) in &readings {
                if architecture != name || !quiet.repetitions.contains(repetition) {
                    continue;
                }
                let Some(grown) = increase(points, fifth) else {
                    continue;
                };
                if *is_sum {
                    seconds += grown;
                } else {
                    produced += grown;
                }
            }
            (produced > 0.0).then(|| 1000.0 * seconds / produced)
        };
        if let (Some(first), Some(last)) = (mean(fifths[0]), mean(fifths[1])) {
            out.push(quiet.drift(
                "produce_ack_ms",
                name.to_string(),
                [first, last],
                LATENCY_FLOOR_MS,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quiet_seconds_are_the_controls_else_those_before_the_first_fault() {
        let windows = HashMap::from([(0, vec![(100.0, 160.0)]), (1, vec![(90.0, 150.0)])]);
        let control = Quiet::of(&[2], &[0, 1], &windows, 10.0, 300.0).unwrap();
        assert_eq!(
            (control.source, control.from_s, control.to_s),
            ("control", 10.0, 300.0)
        );
        assert_eq!(control.fifths(), [(10.0, 68.0), (242.0, 300.0)]);
        let before = Quiet::of(&[], &[0, 1], &windows, 10.0, 300.0).unwrap();
        assert_eq!((before.source, before.to_s), ("before", 90.0));
        // 50 s before the fault: too short to follow.
        assert_eq!(Quiet::of(&[], &[1], &windows, 40.0, 300.0), None);
    }

    #[test]
    fn a_move_by_half_is_drift_and_a_tiny_figure_is_not() {
        let quiet = Quiet {
            source: "control",
            repetitions: vec![1],
            from_s: 0.0,
            to_s: 100.0,
        };
        assert!(
            quiet
                .drift("cpu_cores", "broker".into(), [0.1, 0.36], 0.02)
                .drifted
        );
        assert!(
            quiet
                .drift("cpu_cores", "broker".into(), [0.3, 0.1], 0.02)
                .drifted
        );
        assert!(
            !quiet
                .drift("cpu_cores", "broker".into(), [0.3, 0.4], 0.02)
                .drifted
        );
        assert!(
            !quiet
                .drift("cpu_cores", "proxy".into(), [0.001, 0.01], 0.02)
                .drifted
        );
    }
}
