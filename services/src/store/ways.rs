//! Which way a consumer's large batch goes into PostgreSQL, learned from
//! the writes themselves.

/// How a batch of more than [`ONE_STATEMENT_ROWS`](super::ONE_STATEMENT_ROWS)
/// rows goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// `COPY` in a transaction with the position: the least work for
    /// PostgreSQL per row, two round trips.
    Copy,
    /// One statement for the rows and the position: one round trip.
    OneStatement,
}

/// One write in this many goes the way that is not the faster, so that a
/// link that slows down or recovers moves the choice.
pub const EXPLORE: u64 = 32;

/// Which [`Way`] a large batch takes, learned from the writes themselves:
/// each way's time per row, an exponential mean over its recent writes
/// (failures and timeouts count, at the time they took); the faster way is
/// taken (one statement only when it takes less than 0.8 of COPY's time:
/// COPY costs PostgreSQL less), the other tried once in [`EXPLORE`] writes. On a fast link
/// `COPY` wins (a batch of 100: 28,379 events/s against 21,859); 150 ms
/// away, one round trip instead of two does.
#[derive(Debug, Default)]
pub struct Ways {
    per_row_s: [Option<f64>; 2],
    writes: u64,
}

impl Ways {
    fn slot(way: Way) -> usize {
        match way {
            Way::Copy => 0,
            Way::OneStatement => 1,
        }
    }

    /// The way for the next large batch.
    pub fn choose(&mut self) -> Way {
        self.writes += 1;
        let faster = match self.per_row_s {
            [None, _] => return Way::Copy,
            [_, None] => return Way::OneStatement,
            // COPY is PostgreSQL's cheaper way: left only for a clear gain.
            [Some(copy), Some(one)] if one < 0.8 * copy => Way::OneStatement,
            _ => Way::Copy,
        };
        match (self.writes.is_multiple_of(EXPLORE), faster) {
            (false, way) => way,
            (true, Way::Copy) => Way::OneStatement,
            (true, Way::OneStatement) => Way::Copy,
        }
    }

    /// A write of `rows` rows went `way` and took `seconds`.
    pub fn took(&mut self, way: Way, rows: usize, seconds: f64) {
        let per_row = seconds / rows.max(1) as f64;
        let slot = &mut self.per_row_s[Self::slot(way)];
        *slot = Some(slot.map_or(per_row, |mean| 0.7 * mean + 0.3 * per_row));
    }
}

#[cfg(test)]
mod tests {
    use super::{EXPLORE, Way, Ways};

    #[test]
    fn a_large_batch_goes_the_way_that_has_been_faster_per_row() {
        let mut ways = Ways::default();
        // Each way tried first.
        assert_eq!(ways.choose(), Way::Copy);
        ways.took(Way::Copy, 100, 0.0035);
        assert_eq!(ways.choose(), Way::OneStatement);
        ways.took(Way::OneStatement, 100, 0.0031);
        // A fast link, one statement a little faster than COPY (within
        // 0.8): COPY, the other way once in EXPLORE writes.
        let picks: Vec<Way> = (0..EXPLORE).map(|_| ways.choose()).collect();
        assert_eq!(picks.iter().filter(|w| **w == Way::OneStatement).count(), 1);
        // The link slows to 300 ms a round trip: COPY's two take 0.6 s, the
        // one statement's 0.3 s; within a few tries of it, it is chosen.
        for _ in 0..2 * EXPLORE {
            match ways.choose() {
                Way::Copy => ways.took(Way::Copy, 100, 0.6),
                Way::OneStatement => ways.took(Way::OneStatement, 100, 0.3),
            }
        }
        let picks: Vec<Way> = (0..EXPLORE).map(|_| ways.choose()).collect();
        assert_eq!(
            picks.iter().filter(|w| **w == Way::Copy).count(),
            1,
            "{picks:?}"
        );
    }
}
