//! The cost model: failed, lost and too-late events priced with the
//! scenario's economics, every input kept beside the result. Pure.

use std::collections::BTreeMap;

use crate::catalogue;
use crate::crossing::{BreakEven, Subject, Value, break_even};
use crate::experiment::Economics;
use crate::run_folder::summary::{ArchitectureSummary, BudgetCost, Cost, CostInputs};

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

/// For every pair of architectures (in the scenario's `order`), where
/// their costs per outage cross as the staleness budget grows, or that
/// they do not.
pub fn break_even_by_budget(
    order: &[&str],
    architectures: &BTreeMap<String, ArchitectureSummary>,
) -> Vec<BreakEven> {
    let show = |s: f64| {
        if s >= 120.0 {
            format!("{:.1} min", s / 60.0)
        } else {
            format!("{s:.1} s")
        }
    };
    let subject = Subject {
        parameter: "staleness budget",
        show: &show,
        less: "costs less than",
        same: "cost the same",
        article: "a ",
        joiner: " of ",
        range: "the budgets shown",
    };
    let curves: Vec<(&str, Vec<(f64, Value)>)> = order
        .iter()
        .filter_map(|name| {
            let costs = &architectures.get(*name)?.cost_by_staleness_budget;
            let values = costs
                .iter()
                .map(|c| {
                    let value = Value {
                        mean: c.per_outage,
                        interval: None,
                    };
                    (c.staleness_budget_s, value)
                })
                .collect();
            Some((*name, values))
        })
        .collect();
    let mut found = Vec::new();
    for (i, (a, a_curve)) in curves.iter().enumerate() {
        for (b, b_curve) in &curves[i + 1..] {
            let xs: Vec<f64> = a_curve.iter().map(|p| p.0).collect();
            let values = |curve: &[(f64, Value)]| curve.iter().map(|p| p.1).collect::<Vec<_>>();
            let (crosses, sure, sentence) =
                break_even(&subject, &xs, (a, &values(a_curve)), (b, &values(b_curve)));
            found.push(BreakEven {
                figure: catalogue::REVENUE_LOST.into(),
                a: a.to_string(),
                b: b.to_string(),
                holding: String::new(),
                at: crosses.iter().map(|c| c.x).collect(),
                sure,
                sentence,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

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
