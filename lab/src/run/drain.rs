//! When a Kafka architecture has drained after the load: the rule, pure, fed
//! one poll at a time by the runner.

/// Polls in a row with nothing left to read that count as drained.
pub const IDLE_POLLS: u32 = 3;

/// What one poll saw of one architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Poll {
    /// Events the architecture acknowledged to clients.
    pub acknowledged: u64,
    /// Events stored in the database under its name.
    pub stored: u64,
    /// The consumer's scraped backlog, in messages.
    pub backlog: Option<f64>,
    /// The consumer's scraped lag, in seconds.
    pub lag_s: Option<f64>,
    /// For an architecture with no backlog to read (a `service`): how long
    /// the stored count must hold still to count as drained.
    pub settle_s: Option<f64>,
}

/// The drain of one architecture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drain {
    idle_polls: u32,
    /// The stored count last seen, and when it last moved.
    moved: Option<(u64, f64)>,
    /// Seconds from the load's end until it drained.
    pub drained_after_s: Option<f64>,
}

impl Drain {
    /// Takes the poll made `at_s` seconds after the load's end. The
    /// architecture has drained once it stored every event it acknowledged,
    /// or once its consumer has read nothing left (backlog and lag both 0)
    /// for [`IDLE_POLLS`] polls in a row: a consumer that drops events never
    /// stores them all. With `settle_s`, also once the stored count has not
    /// moved for that long: it has drained when it last moved. Returns
    /// whether it has drained.
    pub fn poll(&mut self, at_s: f64, poll: Poll) -> bool {
        if self.drained_after_s.is_some() {
            return true;
        }
        match self.moved {
            Some((stored, _)) if stored == poll.stored => {}
            _ => self.moved = Some((poll.stored, at_s)),
        }
        if let (Some(settle_s), Some((_, since))) = (poll.settle_s, self.moved)
            && at_s - since >= settle_s
        {
            self.drained_after_s = Some(since);
            return true;
        }
        let nothing_left = poll.backlog == Some(0.0) && poll.lag_s == Some(0.0);
        self.idle_polls = if nothing_left { self.idle_polls + 1 } else { 0 };
        if poll.stored >= poll.acknowledged || self.idle_polls >= IDLE_POLLS {
            self.drained_after_s = Some(at_s);
        }
        self.drained_after_s.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(acknowledged: u64, stored: u64, backlog: f64, lag_s: f64) -> Poll {
        Poll {
            acknowledged,
            stored,
            backlog: Some(backlog),
            lag_s: Some(lag_s),
            settle_s: None,
        }
    }

    #[test]
    fn storing_everything_acknowledged_drains_at_once() {
        let mut drain = Drain::default();
        assert!(!drain.poll(0.5, poll(100, 40, 60.0, 3.0)));
        assert!(drain.poll(1.0, poll(100, 100, 0.0, 0.0)));
        assert_eq!(drain.drained_after_s, Some(1.0));
        // Later polls change nothing.
        assert!(drain.poll(9.0, poll(100, 10, 5.0, 1.0)));
        assert_eq!(drain.drained_after_s, Some(1.0));
    }

    #[test]
    fn a_dropping_consumer_drains_when_it_has_read_everything_for_three_polls() {
        let mut drain = Drain::default();
        assert!(!drain.poll(0.5, poll(100, 60, 0.0, 0.0)));
        assert!(!drain.poll(1.0, poll(100, 60, 0.0, 0.0)));
        // Something to read again: the count starts over.
        assert!(!drain.poll(1.5, poll(100, 60, 4.0, 0.5)));
        assert!(!drain.poll(2.0, poll(100, 60, 0.0, 0.0)));
        assert!(!drain.poll(2.5, poll(100, 60, 0.0, 0.0)));
        assert!(drain.poll(3.0, poll(100, 60, 0.0, 0.0)));
        assert_eq!(drain.drained_after_s, Some(3.0));
    }

    #[test]
    fn an_unread_consumer_never_counts_as_idle() {
        let mut drain = Drain::default();
        for t in 0..10 {
            let unknown = Poll {
                acknowledged: 100,
                stored: 60,
                backlog: None,
                lag_s: None,
                settle_s: None,
            };
            assert!(!drain.poll(f64::from(t), unknown));
        }
        assert_eq!(drain.drained_after_s, None);
    }

    #[test]
    fn a_service_without_a_backlog_drains_when_its_stored_count_settles() {
        let mut drain = Drain::default();
        let at = |stored| Poll {
            acknowledged: 100,
            stored,
            backlog: None,
            lag_s: None,
            settle_s: Some(2.0),
        };
        assert!(!drain.poll(0.0, at(50)));
        assert!(!drain.poll(1.5, at(50)));
        // It moved: the clock starts over.
        assert!(!drain.poll(2.0, at(70)));
        assert!(!drain.poll(3.5, at(70)));
        assert!(drain.poll(4.0, at(70)));
        // Drained when it last moved, not when that was seen.
        assert_eq!(drain.drained_after_s, Some(2.0));
    }
}
