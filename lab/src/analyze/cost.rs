//! The cost model: failed, lost and too-late events priced with the
//! scenario's economics, every input kept beside the result. Pure.

use crate::experiment::Economics;
use crate::run_folder::summary::{BudgetBreakEven, BudgetCost, BudgetRange, Cost, CostInputs};

/// What `failed_events` cost over `outages` outages, for an architecture
/// offered `run_rps` requests a second in the run.
pub fn of(
    economics: &Economics,
    failed_events: u64,
    failed_requests: u64,
    outages: usize,
    run_rps: f64,
) -> Cost {
    let orders_lost = failed_events as f64 * economics.orders_lost_per_failed_event;
    let revenue_lost = orders_lost * economics.order_value;
    let per_outage = revenue_lost / outages.max(1) as f64;
    // One outage scaled from the run's rate to the production rate.
    let scale = if run_rps > 0.0 {
        economics.production_rps / run_rps
    } else {
        0.0
    };
    Cost {
        currency: economics.currency.clone(),
        failed_events,
        orders_lost,
        revenue_lost,
        per_outage,
        per_year: per_outage * scale * economics.outages_per_year,
        poc_revenue_lost: price(economics, failed_requests),
        poc_per_outage: price(economics, failed_requests) / outages.max(1) as f64,
        inputs: CostInputs {
            order_value: economics.order_value,
            orders_lost_per_failed_event: economics.orders_lost_per_failed_event,
            production_rps: economics.production_rps,
            run_rps,
            outages_per_year: economics.outages_per_year,
            staleness_budget_s: economics.staleness_budget.0.as_secs_f64(),
        },
    }
}

/// What `events` failed events cost.
pub fn price(economics: &Economics, events: u64) -> f64 {
    events as f64 * economics.orders_lost_per_failed_event * economics.order_value
}

/// The staleness budgets the cost is shown against, in seconds.
pub const BUDGETS_S: [f64; 11] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

/// Cost per outage against the staleness budget: `failed` requests and
/// lost events always count, an event stored after `delays_us` (sorted)
/// only beyond the budget.
pub fn by_budget(
    economics: &Economics,
    failed_and_lost: u64,
    delays_us: &[u64],
    outages: usize,
) -> Vec<BudgetCost> {
    let mut budgets: Vec<f64> = BUDGETS_S.to_vec();
    let own = economics.staleness_budget.0.as_secs_f64();
    if !budgets.contains(&own) {
        budgets.push(own);
        budgets.sort_by(f64::total_cmp);
    }
    budgets
        .into_iter()
        .map(|budget_s| {
            let budget_us = (budget_s * 1e6) as u64;
            let stale = (delays_us.len() - delays_us.partition_point(|d| *d <= budget_us)) as u64;
            BudgetCost {
                staleness_budget_s: budget_s,
                stale,
                per_outage: price(economics, failed_and_lost + stale) / outages.max(1) as f64,
            }
        })
        .collect()
}

/// One architecture's cost per outage as the staleness budget grows: a
/// step function, lower by one event's price at each stored event's
/// delay.
pub struct BudgetCurve<'a> {
    pub name: &'a str,
    /// Failed requests and lost events: they cost at every budget.
    pub failed_and_lost: u64,
    /// Each stored acknowledged event's delay, sorted.
    pub delays_us: &'a [u64],
    pub outages: usize,
}

impl BudgetCurve<'_> {
    /// The cost per outage at a budget of `budget_us`: an event costs if it
    /// was stored later than the budget.
    fn at(&self, economics: &Economics, budget_us: u64) -> f64 {
        price(economics, self.charged(budget_us)) / self.outages.max(1) as f64
    }

    /// The events charged at a budget of `budget_us`, every outage: failed,
    /// lost, and stored later than the budget.
    fn charged(&self, budget_us: u64) -> u64 {
        let stale =
            (self.delays_us.len() - self.delays_us.partition_point(|d| *d <= budget_us)) as u64;
        self.failed_and_lost + stale
    }
}

/// Whether two counts of charged events are within each other's noise:
/// apart by no more than the square root of the larger (a count's
/// standard deviation were the events to come as they do by chance), as
/// two costs 0.03 % apart are.
fn tied(a: u64, b: u64) -> bool {
    (a.abs_diff(b) as f64) <= (a.max(b) as f64).sqrt()
}

/// For every pair of architectures (in `curves`' order), which one costs
/// less at each staleness budget from [`BUDGETS_S`]' first to its last:
/// exact, from every stored event's delay, each range and each crossing.
pub fn break_even_by_budget(economics: &Economics, curves: &[BudgetCurve]) -> Vec<BudgetBreakEven> {
    let (lo, hi) = (
        (BUDGETS_S[0] * 1e6) as u64,
        (BUDGETS_S[BUDGETS_S.len() - 1] * 1e6) as u64,
    );
    let mut found = Vec::new();
    for (i, a) in curves.iter().enumerate() {
        for b in &curves[i + 1..] {
            // Where either cost steps down, inside the budgets shown: the
            // difference is constant from one of these to the next.
            let mut steps: Vec<u64> = a
                .delays_us
                .iter()
                .chain(b.delays_us)
                .copied()
                .filter(|d| *d > lo && *d <= hi)
                .collect();
            steps.push(lo);
            steps.sort_unstable();
            steps.dedup();
            let mut ranges: Vec<BudgetRange> = Vec::new();
            for (k, from) in steps.iter().enumerate() {
                let to = steps.get(k + 1).copied().unwrap_or(hi);
                let (x, y) = (a.at(economics, *from), b.at(economics, *from));
                let cheaper = match x.total_cmp(&y) {
                    _ if tied(a.charged(*from), b.charged(*from)) => None,
                    std::cmp::Ordering::Less => Some(a.name.to_string()),
                    std::cmp::Ordering::Greater => Some(b.name.to_string()),
                    std::cmp::Ordering::Equal => None,
                };
                match ranges.last_mut() {
                    Some(last) if last.cheaper == cheaper => last.to_s = to as f64 / 1e6,
                    _ => ranges.push(BudgetRange {
                        from_s: *from as f64 / 1e6,
                        to_s: to as f64 / 1e6,
                        cheaper,
                    }),
                }
            }
            found.push(BudgetBreakEven::of(a.name, b.name, ranges));
        }
    }
    found
}

impl BudgetBreakEven {
    /// The crossings of `ranges` (one architecture cheaper, then the other,
    /// with or without a stretch of equal cost between) and the sentence.
    fn of(a: &str, b: &str, ranges: Vec<BudgetRange>) -> Self {
        let sided: Vec<&BudgetRange> = ranges.iter().filter(|r| r.cheaper.is_some()).collect();
        let crossings_s = sided
            .windows(2)
            .filter(|w| w[0].cheaper != w[1].cheaper)
            .map(|w| w[1].from_s)
            .collect();
        let sentence = sentence(a, b, &ranges);
        Self {
            a: a.to_string(),
            b: b.to_string(),
            crossings_s,
            ranges,
            sentence,
        }
    }
}

/// A time in seconds as a sentence reads it: `8.3 s`, `2.5 min` from two
/// minutes on.
pub fn seconds(s: f64) -> String {
    if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// Which of `a` and `b` costs less over which budgets, in one sentence.
/// A stretch of equal cost too short to show (a tie for one event's
/// delay, where one curve steps onto the other) is left out of the words,
/// not out of the ranges.
fn sentence(a: &str, b: &str, ranges: &[BudgetRange]) -> String {
    let mut shown: Vec<BudgetRange> = Vec::new();
    for range in ranges {
        if range.cheaper.is_none() && seconds(range.from_s) == seconds(range.to_s) {
            continue;
        }
        match shown.last_mut() {
            Some(last) if last.cheaper == range.cheaper => last.to_s = range.to_s,
            _ => shown.push(range.clone()),
        }
    }
    // What is left spans every budget shown.
    if let (Some(head), Some(start)) = (shown.first_mut(), ranges.first()) {
        head.from_s = start.from_s;
    }
    if let (Some(tail), Some(end)) = (shown.last_mut(), ranges.last()) {
        tail.to_s = end.to_s;
    }
    let ranges = &shown;
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        return String::new();
    };
    let span = format!("from {} to {}", seconds(first.from_s), seconds(last.to_s));
    if ranges.len() == 1 {
        return match &first.cheaper {
            Some(lower) => {
                let higher = if lower == a { b } else { a };
                format!("{lower} costs less than {higher} at every staleness budget {span}.")
            }
            None => format!(
                "{a} and {b} cost the same (within the noise) at every staleness budget {span}."
            ),
        };
    }
    let stretch = |r: &BudgetRange| {
        if r.from_s == first.from_s {
            format!("below {}", seconds(r.to_s))
        } else if r.to_s == last.to_s {
            format!("from {} up", seconds(r.from_s))
        } else {
            format!("from {} to {}", seconds(r.from_s), seconds(r.to_s))
        }
    };
    let of = |who: Option<&str>| {
        ranges
            .iter()
            .filter(|r| r.cheaper.as_deref() == who)
            .map(stretch)
            .collect::<Vec<_>>()
    };
    let mut parts = Vec::new();
    for (who, other) in [(a, b), (b, a)] {
        let stretches = of(Some(who));
        if !stretches.is_empty() {
            parts.push(format!(
                "{who} costs less than {other} {}",
                listed(&stretches)
            ));
        }
    }
    let same = of(None);
    if !same.is_empty() {
        parts.push(format!(
            "they cost the same (within the noise) {}",
            listed(&same)
        ));
    }
    format!("Over staleness budgets {span}: {}.", parts.join("; "))
}

/// `x`, `x and y`, `x, y and z`.
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    /// Two curves that cross three times, at delays no grid of budgets
    /// holds: every crossing is found where it is, with the ranges between.
    #[test]
    fn the_cheaper_architecture_is_found_at_every_budget_and_every_crossing() {
        let economics = Economics::default();
        // Each event of the story a thousand times, as a run has them:
        // a: 4,000 stale below 4 s, 2,000 below 50 s, none above.
        let n = |delay: u64, count: usize| std::iter::repeat_n(delay, count);
        let a_delays: Vec<u64> = n(4 * S, 2000).chain(n(50 * S, 2000)).collect();
        // b: 1,000 failures always, and 3,000 stale below 2 s, 2,000 below
        // 20 s.
        let b_delays: Vec<u64> = n(2 * S, 1000).chain(n(20 * S, 2000)).collect();
        let curves = [
            BudgetCurve {
                name: "a",
                failed_and_lost: 0,
                delays_us: &a_delays,
                outages: 1,
            },
            BudgetCurve {
                name: "b",
                failed_and_lost: 1000,
                delays_us: &b_delays,
                outages: 1,
            },
        ];
        let found = break_even_by_budget(&economics, &curves);
        assert_eq!(found.len(), 1);
        let pair = &found[0];
        assert_eq!(pair.crossings_s, [4.0, 20.0, 50.0]);
        let ranges: Vec<(f64, f64, Option<&str>)> = pair
            .ranges
            .iter()
            .map(|r| (r.from_s, r.to_s, r.cheaper.as_deref()))
            .collect();
        assert_eq!(
            ranges,
            [
                (1.0, 2.0, None),
                (2.0, 4.0, Some("b")),
                (4.0, 20.0, Some("a")),
                (20.0, 50.0, Some("b")),
                (50.0, 600.0, Some("a")),
            ]
        );
        assert_eq!(
            pair.sentence,
            "Over staleness budgets from 1.0 s to 10.0 min: a costs less than b from 4.0 s to 20.0 s and from 50.0 s up; b costs less than a from 2.0 s to 4.0 s and from 20.0 s to 50.0 s; they cost the same (within the noise) below 2.0 s."
        );
        // b's 20 s events stored at 30 s: the crossing moves with them.
        let later: Vec<u64> = n(2 * S, 1000).chain(n(30 * S, 2000)).collect();
        let moved = break_even_by_budget(
            &economics,
            &[
                BudgetCurve { ..curves[0] },
                BudgetCurve {
                    delays_us: &later,
                    ..curves[1]
                },
            ],
        );
        assert_eq!(moved[0].crossings_s, [4.0, 30.0, 50.0]);
        // Costs within the noise are a tie, not a crossing: 3,000 and
        // 3,001 events (0.03 % apart) at every budget.
        let near = break_even_by_budget(
            &economics,
            &[
                BudgetCurve {
                    name: "a",
                    failed_and_lost: 3000,
                    delays_us: &[],
                    outages: 1,
                },
                BudgetCurve {
                    name: "b",
                    failed_and_lost: 3001,
                    delays_us: &[],
                    outages: 1,
                },
            ],
        );
        assert!(near[0].crossings_s.is_empty());
        assert_eq!(
            near[0].sentence,
            "a and b cost the same (within the noise) at every staleness budget from 1.0 s to 10.0 min."
        );
    }

    #[test]
    fn one_architecture_cheaper_throughout_is_one_range_and_one_sentence() {
        let economics = Economics::default();
        let none: [u64; 0] = [];
        let curves = [
            BudgetCurve {
                name: "rest",
                failed_and_lost: 10,
                delays_us: &none,
                outages: 2,
            },
            BudgetCurve {
                name: "kafka",
                failed_and_lost: 0,
                delays_us: &none,
                outages: 2,
            },
        ];
        let found = break_even_by_budget(&economics, &curves);
        assert!(found[0].crossings_s.is_empty());
        assert_eq!(found[0].ranges.len(), 1);
        assert_eq!(
            found[0].sentence,
            "kafka costs less than rest at every staleness budget from 1.0 s to 10.0 min."
        );
    }

    #[test]
    fn the_originals_economics_price_a_failed_event_at_125_cents() {
        let economics = Economics::default();
        let cost = of(&economics, 6000, 1000, 1, 50.0);
        assert_eq!(cost.orders_lost, 300.0);
        assert_eq!(cost.poc_revenue_lost, 1250.0);
        assert_eq!(cost.revenue_lost, 7500.0);
        assert_eq!(cost.per_outage, 7500.0);
        assert_eq!(cost.per_year, 7500.0 * 12.0);
        // Two outages halve the cost of one; a run at half the production
        // rate doubles the yearly figure.
        let cost = of(&economics, 6000, 0, 2, 25.0);
        assert_eq!(cost.per_outage, 3750.0);
        assert_eq!(cost.per_year, 3750.0 * 2.0 * 12.0);
        assert_eq!(of(&economics, 10, 0, 1, 0.0).per_year, 0.0);
    }

    #[test]
    fn a_tighter_budget_charges_every_event_stored_after_it() {
        let economics = Economics::default();
        // 10 failed or lost; events stored after 0.5 s, 3 s, 3 s, 90 s.
        let delays = [500_000, 3_000_000, 3_000_000, 90_000_000];
        let curve = by_budget(&economics, 10, &delays, 2);
        let at = |s: f64| {
            curve
                .iter()
                .find(|c| c.staleness_budget_s == s)
                .unwrap()
                .clone()
        };
        assert_eq!(at(1.0).stale, 3);
        assert_eq!(at(1.0).per_outage, 13.0 * 1.25 / 2.0);
        assert_eq!(at(5.0).stale, 1);
        assert_eq!(at(120.0).stale, 0);
        assert_eq!(at(120.0).per_outage, 10.0 * 1.25 / 2.0);
        // The scenario's own budget (60 s by default) is one of the points.
        assert!(curve.iter().any(|c| c.staleness_budget_s == 60.0));
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].staleness_budget_s < w[1].staleness_budget_s
                    && w[0].per_outage >= w[1].per_outage)
        );
    }
}
