//! Group commit for the REST service: concurrent requests are gathered into
//! one multi-row insert, one commit, and each is answered only after the
//! commit that holds its row. A failed commit fails every request in it.
//!
//! [`Gathering`] is the pure part (when a group is full or due), with the
//! clock passed in; [`commit_groups`] runs it against the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::event::LocationEvent;
use crate::store::{Inserted, Store, StoreError};

/// How requests are grouped: at most `max_rows` per commit, and none waits
/// more than `max_wait` for its group to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    pub max_rows: usize,
    pub max_wait: Duration,
}

/// Items gathered for the next commit.
#[derive(Debug)]
pub struct Gathering<T> {
    config: GroupCommit,
    items: Vec<T>,
    /// When the first item of the group came.
    first_at: Option<Instant>,
}

impl<T> Gathering<T> {
    pub fn new(config: GroupCommit) -> Self {
        Self {
            config,
            items: Vec::with_capacity(config.max_rows.max(1)),
            first_at: None,
        }
    }

    /// Adds `item`, come at `now`; `true` when the group is full.
    pub fn push(&mut self, item: T, now: Instant) -> bool {
        self.first_at.get_or_insert(now);
        self.items.push(item);
        self.items.len() >= self.config.max_rows.max(1)
    }

    /// When the group must be committed however full it is; `None` while
    /// it is empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.first_at.map(|first| first + self.config.max_wait)
    }

    /// Whether the group is to be committed at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.items.len() >= self.config.max_rows.max(1)
            || self.deadline().is_some_and(|deadline| now >= deadline)
    }

    /// The group, leaving an empty one.
    pub fn take(&mut self) -> Vec<T> {
        self.first_at = None;
        std::mem::replace(
            &mut self.items,
            Vec::with_capacity(self.config.max_rows.max(1)),
        )
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What a request waits for: its row's fate once its group is committed.
pub type Outcome = Result<Inserted, Arc<StoreError>>;

/// A request in a group: its event and where its answer goes.
pub type Waiting = (LocationEvent, oneshot::Sender<Outcome>);

/// Gathers the requests that come on `requests` into groups and commits
/// each, until the channel closes; then commits what is left and waits for
/// every commit. At most `slots` groups commit at once (the pool's
/// connections): a group that is due while every connection is busy keeps
/// filling (up to `max_rows`; past that, requests wait in the channel), so
/// that a slow database gets fewer, fuller commits rather than a queue of
/// small ones waiting for a connection.
pub async fn commit_groups(
    mut requests: mpsc::Receiver<Waiting>,
    store: Store,
    stored_by: String,
    config: GroupCommit,
    slots: usize,
) {
    let stored_by: Arc<str> = stored_by.into();
    let total = u32::try_from(slots.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(total as usize));
    let mut gathering = Gathering::new(config);
    let mut open = true;
    while open || !gathering.is_empty() {
        let Some(deadline) = gathering.deadline() else {
            match requests.recv().await {
                Some(waiting) => {
                    gathering.push(waiting, Instant::now());
                }
                None => open = false,
            }
            continue;
        };
        let full = gathering.len() >= config.max_rows.max(1);
        if full || !open || gathering.due(Instant::now()) {
            // Due: committed as soon as a connection is free, filling
            // meanwhile.
            tokio::select! {
                biased;
                permit = slots.clone().acquire_owned() => {
                    let permit = permit.expect("the slots are never closed");
                    commit(gathering.take(), &store, &stored_by, permit);
                }
                next = requests.recv(), if open && !full => match next {
                    Some(waiting) => {
                        gathering.push(waiting, Instant::now());
                    }
                    None => open = false,
                },
            }
        } else {
            tokio::select! {
                next = requests.recv() => match next {
                    Some(waiting) => {
                        gathering.push(waiting, Instant::now());
                    }
                    None => open = false,
                },
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
    // Every commit under way has answered its requests.
    let _ = slots.acquire_many(total).await;
}

/// Commits `group` in a task of its own, holding `slot` until it is done,
/// and answers each of its requests.
fn commit(group: Vec<Waiting>, store: &Store, stored_by: &Arc<str>, slot: OwnedSemaphorePermit) {
    if group.is_empty() {
        return;
    }
    let store = store.clone();
    let stored_by = stored_by.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let (events, answers): (Vec<LocationEvent>, Vec<_>) = group.into_iter().unzip();
        match store.insert_many(&events, &stored_by).await {
            Ok(fates) => {
                for (answer, fate) in answers.into_iter().zip(fates) {
                    let _ = answer.send(Ok(fate));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for answer in answers {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: GroupCommit = GroupCommit {
        max_rows: 3,
        max_wait: Duration::from_millis(10),
    };

    #[test]
    fn a_group_is_due_when_full_or_when_its_first_request_waited_long_enough() {
        let t0 = Instant::now();
        let mut gathering = Gathering::new(CONFIG);
        assert_eq!(gathering.deadline(), None);
        assert!(
            !gathering.due(t0 + Duration::from_secs(60)),
            "an empty group is never due"
        );
        assert!(!gathering.push(1, t0));
        assert!(!gathering.push(2, t0 + Duration::from_millis(4)));
        // The deadline runs from the first request, not the last.
        assert_eq!(gathering.deadline(), Some(t0 + CONFIG.max_wait));
        assert!(!gathering.due(t0 + Duration::from_millis(9)));
        assert!(gathering.due(t0 + Duration::from_millis(10)));
        assert!(
            gathering.push(3, t0 + Duration::from_millis(5)),
            "full at max_rows"
        );
        assert!(gathering.due(t0 + Duration::from_millis(5)));
        assert_eq!(gathering.take(), [1, 2, 3]);
        assert!(gathering.is_empty());
        assert_eq!(gathering.deadline(), None);
        // The next group's deadline is its own first request's.
        let later = t0 + Duration::from_secs(1);
        gathering.push(4, later);
        assert_eq!(gathering.deadline(), Some(later + CONFIG.max_wait));
        assert_eq!(gathering.len(), 1);
    }

    #[test]
    fn one_row_groups_commit_each_request_at_once() {
        let t0 = Instant::now();
        let mut gathering = Gathering::new(GroupCommit {
            max_rows: 1,
            max_wait: Duration::ZERO,
        });
        assert!(gathering.push("a", t0));
        assert!(gathering.due(t0));
    }
}
