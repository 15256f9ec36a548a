//! The cost model: failed, lost and too-late events priced with the
//! scenario's economics, every input kept beside the result. Pure.

use crate::experiment::Economics;
use crate::run_folder::summary::{Cost, CostInputs};

/// What `failed_events` cost over `outages` outages, for an architecture
/// offered `run_rps` requests a second in the run.
pub fn of(economics: &Economics, failed_events: u64, outages: usize, run_rps: f64) -> Cost {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_economics_price_a_failed_event_at_125_cents() {
        let economics = Economics::default();
        let cost = of(&economics, 6000, 1, 50.0);
        assert_eq!(cost.orders_lost, 300.0);
        assert_eq!(cost.revenue_lost, 7500.0);
        assert_eq!(cost.per_outage, 7500.0);
        assert_eq!(cost.per_year, 7500.0 * 12.0);
        // Two outages halve the cost of one; a run at half the production
        // rate doubles the yearly figure.
        let cost = of(&economics, 6000, 2, 25.0);
        assert_eq!(cost.per_outage, 3750.0);
        assert_eq!(cost.per_year, 3750.0 * 2.0 * 12.0);
        assert_eq!(of(&economics, 10, 1, 0.0).per_year, 0.0);
    }
}
