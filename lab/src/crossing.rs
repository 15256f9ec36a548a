//! Break-even points: where one architecture's curve crosses another's
//! along a swept parameter, interpolated between the two points around it,
//! and said in a sentence. Pure.

use serde::{Deserialize, Serialize};

/// One architecture's figure at each x: its mean and, with several
/// repetitions, its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub mean: f64,
    pub interval: Option<(f64, f64)>,
}

impl Value {
    fn overlaps(&self, other: &Value) -> Option<bool> {
        let ((a_low, a_high), (b_low, b_high)) = (self.interval?, other.interval?);
        Some(a_low <= b_high && b_low <= a_high)
    }
}

/// Where `a − b` changes sign along `xs` (ascending), and which of the two
/// was lower before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cross {
    /// The interpolated x of the crossing.
    pub x: f64,
    /// The swept points on each side of it (indices into `xs`).
    pub between: (usize, usize),
    /// `a` was below `b` before the crossing.
    pub a_below_before: bool,
}

/// Every crossing of `a` and `b` along `xs`. A point where both are equal
/// is not a crossing by itself: the curves cross where the sign of the
/// difference changes from one side of it to the other.
pub fn crossings(xs: &[f64], a: &[f64], b: &[f64]) -> Vec<Cross> {
    let signed: Vec<(usize, f64)> = a
        .iter()
        .zip(b)
        .map(|(a, b)| a - b)
        .enumerate()
        .filter(|(_, d)| *d != 0.0 && d.is_finite())
        .collect();
    signed
        .windows(2)
        .filter(|w| (w[0].1 < 0.0) != (w[1].1 < 0.0))
        .map(|w| {
            let ((i, di), (j, dj)) = (w[0], w[1]);
            let x = if j == i + 1 {
                xs[i] + (xs[j] - xs[i]) * di / (di - dj)
            } else {
                // Equal at the points in between: the crossing is there.
                (xs[i + 1] + xs[j - 1]) / 2.0
            };
            Cross {
                x,
                between: (i, j),
                a_below_before: di < 0.0,
            }
        })
        .collect()
}

/// A break-even point, or its absence, said in words.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct BreakEven {
    /// `revenue_lost` or `lost`.
    pub figure: String,
    pub a: String,
    pub b: String,
    /// The other parameters' values this curve holds, e.g.
    /// `breaker.open_for = 10s`; empty with one parameter.
    pub holding: String,
    /// Where the curves cross, in the swept parameter's unit (seconds for
    /// durations); empty when they do not.
    pub at: Vec<f64>,
    /// Whether the intervals at the points around every crossing are
    /// apart (with no crossing, at every point); `None` without intervals
    /// (one repetition).
    pub sure: Option<bool>,
    pub sentence: String,
}

/// What the curves are of, for the sentence.
pub struct Subject<'a> {
    /// `faults[0].duration`.
    pub parameter: &'a str,
    /// How an x reads: `45 s`, `500`.
    pub show: &'a dyn Fn(f64) -> String,
    /// `costs less than`, `loses fewer events than`.
    pub less: &'a str,
    /// `cost the same`, `lose as many events`.
    pub same: &'a str,
    /// Before the parameter at a crossing: `` or `a ` (`below a staleness
    /// budget of 10 s`).
    pub article: &'a str,
    /// Joins the parameter and a value: ` = ` (`faults[0].duration = 45 s`)
    /// or ` of ` (`a staleness budget of 10 s`).
    pub joiner: &'a str,
    /// What the values span: `the swept range`.
    pub range: &'a str,
}

/// The break-even of architectures `a` and `b` (names and values along
/// `xs`): the crossings, whether the intervals around every one are apart
/// (`None` without intervals), and the sentence that says it.
pub fn break_even(
    subject: &Subject,
    xs: &[f64],
    (a, a_values): (&str, &[Value]),
    (b, b_values): (&str, &[Value]),
) -> (Vec<Cross>, Option<bool>, String) {
    let means = |values: &[Value]| values.iter().map(|v| v.mean).collect::<Vec<_>>();
    let found = crossings(xs, &means(a_values), &means(b_values));
    let show = subject.show;
    let range = match (xs.first(), xs.last()) {
        (Some(first), Some(last)) => format!("{} to {}", show(*first), show(*last)),
        _ => String::new(),
    };
    let apart = |k: usize| a_values[k].overlaps(&b_values[k]).map(|o| !o);
    // Sure of a crossing when the intervals on either side of it are apart;
    // of no crossing, when they are apart at every point. Without
    // intervals, unknown.
    let sides: Vec<usize> = if found.is_empty() {
        (0..a_values.len().min(b_values.len())).collect()
    } else {
        found
            .iter()
            .flat_map(|c| [c.between.0, c.between.1])
            .collect()
    };
    let sure = sides
        .into_iter()
        .map(apart)
        .collect::<Option<Vec<bool>>>()
        .filter(|apart| !apart.is_empty())
        .map(|apart| apart.into_iter().all(|a| a));
    let sentence = if found.is_empty() {
        let diffs: Vec<f64> = a_values
            .iter()
            .zip(b_values)
            .map(|(a, b)| a.mean - b.mean)
            .collect();
        let (lower, higher) = if diffs.iter().all(|d| *d == 0.0) {
            return (
                found,
                sure,
                format!(
                    "{a} and {b} {} at every {} from {range}.",
                    subject.same, subject.parameter
                ),
            );
        } else if diffs.iter().all(|d| *d <= 0.0) {
            (a, b)
        } else {
            (b, a)
        };
        format!(
            "No crossing in {}: {lower} {} {higher} at every {} from {range}.",
            subject.range, subject.less, subject.parameter
        )
    } else {
        let parts: Vec<String> = found
            .iter()
            .map(|c| {
                let (before, after) = if c.a_below_before { (a, b) } else { (b, a) };
                format!(
                    "below {}{}{}{} {before} {} {after}; above it {after} {} {before}",
                    subject.article,
                    subject.parameter,
                    subject.joiner,
                    show(c.x),
                    subject.less,
                    subject.less
                )
            })
            .collect();
        format!("{}.", capitalised(&parts.join("; then ")))
    };
    (found, sure, sentence)
}

/// How sure a crossing is, in a sentence, from [`break_even`]'s `sure`.
pub fn certainty(sure: Option<bool>) -> &'static str {
    match sure {
        Some(true) => "The intervals at the points on either side are apart.",
        Some(false) => {
            "The intervals at the points on either side overlap: the crossing could lie elsewhere between them."
        }
        None => {
            "One repetition per point: no interval, so the crossing is only as sure as one run."
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(means: &[f64]) -> Vec<Value> {
        means
            .iter()
            .map(|&mean| Value {
                mean,
                interval: None,
            })
            .collect()
    }

    fn seconds(x: f64) -> String {
        format!("{x:.0} s")
    }

    const COST: Subject = Subject {
        parameter: "faults[0].duration",
        show: &seconds,
        less: "costs less than",
        same: "cost the same",
        article: "",
        joiner: " = ",
        range: "the swept range",
    };

    #[test]
    fn the_crossing_is_interpolated_between_the_points_around_it() {
        // REST costs 10 per second of outage; the buffered path a flat 450
        // until late events pass the budget: they cross at 45 s.
        let xs = [15.0, 30.0, 60.0, 120.0];
        let rest = values(&[150.0, 300.0, 600.0, 1200.0]);
        let buffered = values(&[450.0, 450.0, 450.0, 450.0]);
        let (found, sure, sentence) =
            break_even(&COST, &xs, ("rest", &rest), ("kafka-buffered", &buffered));
        assert_eq!(found.len(), 1);
        assert!((found[0].x - 45.0).abs() < 1e-9, "{found:?}");
        assert_eq!(found[0].between, (1, 2));
        assert_eq!(sure, None);
        assert!(
            sentence.starts_with(
                "Below faults[0].duration = 45 s rest costs less than kafka-buffered; \
                 above it kafka-buffered costs less than rest."
            ),
            "{sentence}"
        );
    }

    #[test]
    fn no_crossing_says_which_is_lower_throughout() {
        let xs = [10.0, 20.0];
        let (found, _, sentence) = break_even(
            &COST,
            &xs,
            ("rest", &values(&[5.0, 9.0])),
            ("kafka-drop", &values(&[3.0, 9.0])),
        );
        assert!(found.is_empty());
        assert_eq!(
            sentence,
            "No crossing in the swept range: kafka-drop costs less than rest at every \
             faults[0].duration from 10 s to 20 s."
        );
        // One repetition per point: how sure is unknown, not "sure".
        let (_, sure, _) = break_even(
            &COST,
            &xs,
            ("rest", &values(&[5.0, 9.0])),
            ("kafka-drop", &values(&[3.0, 9.0])),
        );
        assert_eq!(sure, None);
        let (_, _, same) = break_even(
            &COST,
            &xs,
            ("a", &values(&[0.0, 0.0])),
            ("b", &values(&[0.0, 0.0])),
        );
        assert!(same.contains("a and b cost the same"), "{same}");
    }

    #[test]
    fn equal_at_a_point_crosses_there_and_touching_is_not_crossing() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        let found = crossings(&xs, &[1.0, 5.0, 9.0, 9.0], &[3.0, 5.0, 7.0, 9.0]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].x, 2.0);
        assert!(found[0].a_below_before);
        // Touching without changing sides.
        assert!(crossings(&xs, &[1.0, 5.0, 1.0, 0.0], &[3.0, 5.0, 3.0, 3.0]).is_empty());
        // Two crossings.
        assert_eq!(
            crossings(&xs, &[0.0, 4.0, 0.0, 0.0], &[2.0, 2.0, 2.0, 2.0]).len(),
            2
        );
    }

    #[test]
    fn overlapping_intervals_make_a_crossing_unsure() {
        let xs = [1.0, 2.0];
        let with = |mean: f64, half: f64| Value {
            mean,
            interval: Some((mean - half, mean + half)),
        };
        let a = [with(1.0, 0.5), with(3.0, 0.5)];
        let b = [with(2.0, 0.2), with(2.0, 0.2)];
        let (_, sure, sentence) = break_even(&COST, &xs, ("a", &a), ("b", &b));
        assert_eq!(sure, Some(true), "{sentence}");
        let wide = [with(1.0, 2.0), with(3.0, 0.5)];
        let (_, sure, sentence) = break_even(&COST, &xs, ("a", &wide), ("b", &b));
        assert_eq!(sure, Some(false), "{sentence}");
        assert!(certainty(sure).contains("overlap"));
    }
}
