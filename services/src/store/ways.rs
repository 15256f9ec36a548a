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

/// The weight a way's earlier writes keep at each of its new ones.
const KEEP: f64 = 0.7;

/// Which [`Way`] a large batch takes, learned from the writes themselves:
/// each way's time for a batch of its size, from a line fitted to that
/// way's recent writes (seconds against rows, weighted to the latest;
/// failures and timeouts count, at the time they took). The faster way for
/// the batch at hand is taken (one statement only when it takes less than
/// 0.8 of COPY's time: COPY costs PostgreSQL less), the other tried once in
/// [`EXPLORE`] writes. On a fast link `COPY` wins (a batch of 100: 28,379
/// events/s against 21,859); 150 ms away, one round trip instead of two
/// does, whatever the batch's size: a time per row would set a large batch
/// by one way against a small one by the other.
#[derive(Debug, Default)]
pub struct Ways {
    fits: [Fit; 2],
    writes: u64,
}

impl Ways {
    fn slot(way: Way) -> usize {
        match way {
            Way::Copy => 0,
            Way::OneStatement => 1,
        }
    }

    /// The way for the next large batch, of `rows` rows.
    pub fn choose(&mut self, rows: usize) -> Way {
        self.writes += 1;
        let rows = rows as f64;
        let faster = match self.fits.map(|fit| fit.seconds(rows)) {
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
        self.fits[Self::slot(way)].add(rows as f64, seconds);
    }
}

/// A way's recent writes, each weighted [`KEEP`] times its successor: the
/// sums of a least-squares line of seconds against rows.
#[derive(Debug, Default, Clone, Copy)]
struct Fit {
    weight: f64,
    rows: f64,
    rows_squared: f64,
    seconds: f64,
    rows_seconds: f64,
}

impl Fit {
    fn add(&mut self, rows: f64, seconds: f64) {
        self.weight = KEEP * self.weight + 1.0;
        self.rows = KEEP * self.rows + rows;
        self.rows_squared = KEEP * self.rows_squared + rows * rows;
        self.seconds = KEEP * self.seconds + seconds;
        self.rows_seconds = KEEP * self.rows_seconds + rows * seconds;
    }

    /// The seconds a write of `rows` rows would take; `None` before a
    /// write. Writes of about one size give no slope: their mean time,
    /// whatever the size. A way not taken gets no new writes, so its guess
    /// must not hold it back (a time per row would price one write of 66
    /// rows at 304 ms as 566 ms for 123, and keep the way of 606 ms); a way
    /// taken on too kind a guess corrects it with its own write.
    fn seconds(&self, rows: f64) -> Option<f64> {
        if self.weight <= 0.0 {
            return None;
        }
        let (mean_rows, mean_s) = (self.rows / self.weight, self.seconds / self.weight);
        let spread = self.rows_squared / self.weight - mean_rows * mean_rows;
        if spread <= (0.05 * mean_rows).powi(2) {
            return Some(mean_s);
        }
        // The least-squares line with neither part below zero: a falling
        // line is a flat one, one through a negative fixed time goes
        // through zero (writes from before and after a link changed make
        // such lines; clamping one part alone would leave the other wild).
        let per_row = (self.rows_seconds / self.weight - mean_rows * mean_s) / spread;
        let fixed = mean_s - per_row * mean_rows;
        Some(if per_row < 0.0 {
            mean_s
        } else if fixed < 0.0 {
            self.rows_seconds / self.rows_squared.max(f64::MIN_POSITIVE) * rows
        } else {
            fixed + per_row * rows
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{EXPLORE, Way, Ways};

    #[test]
    fn a_large_batch_goes_the_way_that_has_been_faster_for_its_size() {
        let mut ways = Ways::default();
        // Each way tried first.
        assert_eq!(ways.choose(100), Way::Copy);
        ways.took(Way::Copy, 100, 0.0035);
        assert_eq!(ways.choose(100), Way::OneStatement);
        ways.took(Way::OneStatement, 100, 0.0031);
        // A fast link, one statement a little faster than COPY (within
        // 0.8): COPY, the other way once in EXPLORE writes.
        let picks: Vec<Way> = (0..EXPLORE).map(|_| ways.choose(100)).collect();
        assert_eq!(picks.iter().filter(|w| **w == Way::OneStatement).count(), 1);
        // The link slows to 300 ms a round trip: COPY's two take 0.6 s, the
        // one statement's 0.3 s; within a few tries of it, it is chosen.
        for _ in 0..2 * EXPLORE {
            match ways.choose(100) {
                Way::Copy => ways.took(Way::Copy, 100, 0.6),
                Way::OneStatement => ways.took(Way::OneStatement, 100, 0.3),
            }
        }
        let picks: Vec<Way> = (0..EXPLORE).map(|_| ways.choose(100)).collect();
        assert_eq!(
            picks.iter().filter(|w| **w == Way::Copy).count(),
            1,
            "{picks:?}"
        );
    }

    #[test]
    fn batches_of_other_sizes_are_set_against_each_other_at_the_same_size() {
        // A slow link: whatever the size, COPY 0.6 s (and 20 µs a row), one
        // statement 0.3 s (and 40 µs a row). COPY was last taken by large
        // batches, one statement by small ones: per row, COPY looks the
        // cheaper (about 2.1 ms against 3.8 ms).
        let mut ways = Ways::default();
        for i in 0..8 {
            let (large, small) = (250.0 + 20.0 * f64::from(i), 70.0 + 10.0 * f64::from(i));
            ways.took(Way::Copy, large as usize, 0.6 + 20e-6 * large);
            ways.took(Way::OneStatement, small as usize, 0.3 + 40e-6 * small);
        }
        for rows in [80, 200, 1000] {
            assert_eq!(ways.choose(rows), Way::OneStatement, "{rows} rows");
        }
        // A fast link, time all in the rows: COPY, the cheaper per row.
        let mut ways = Ways::default();
        for i in 0..8 {
            let rows = 100.0 + 50.0 * f64::from(i);
            ways.took(Way::Copy, rows as usize, 20e-6 * rows);
            ways.took(Way::OneStatement, rows as usize, 40e-6 * rows);
        }
        assert_eq!(ways.choose(300), Way::Copy);

        // A slow link met by one large batch each way, of other sizes: one
        // statement's single write of 66 rows (304 ms) against COPY's of
        // 125 (606 ms): one statement for the next batch of 123.
        let mut ways = Ways::default();
        ways.took(Way::Copy, 189, 0.0032);
        ways.took(Way::OneStatement, 66, 0.304);
        ways.took(Way::Copy, 125, 0.606);
        ways.took(Way::Copy, 124, 0.606);
        assert_eq!(ways.choose(123), Way::OneStatement);
    }

    #[test]
    fn a_link_that_slows_is_followed_within_a_few_writes() {
        // One fast write each way (100 and 90 rows, 2.7 ms), then the link
        // slows: COPY 606 ms, one statement 304 ms, whatever the size. A
        // line through the fast and the slow writes of one statement must
        // not price it out (its fixed time below zero, its rows dear).
        let mut ways = Ways::default();
        for rows in [100, 90] {
            let way = ways.choose(rows);
            ways.took(way, rows, 0.0027);
        }
        let picks: Vec<Way> = (0..20)
            .map(|_| {
                let way = ways.choose(100);
                let took = match way {
                    Way::Copy => 0.606,
                    Way::OneStatement => 0.304,
                };
                ways.took(way, 100, took);
                way
            })
            .collect();
        assert!(
            picks.iter().filter(|w| **w == Way::Copy).count() <= 2,
            "{picks:?}"
        );
        assert!(
            picks[10..].iter().all(|w| *w == Way::OneStatement),
            "{picks:?}"
        );
    }
}
