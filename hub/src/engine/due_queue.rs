//! When the engine's loop must next look at each experiment.
//!
//! A pass that ends reports its experiment's next due time here, so the loop wakes for that one
//! experiment at that time instead of reading every active experiment after every pass (which,
//! with many experiments in flight, kept a core busy decoding rows). The loop still scans
//! everything at the resync interval and when asked (`Engine::wake`), and merges what it finds.
//!
//! Each experiment keeps only its earliest time: a stale earlier time costs one pass that finds
//! nothing to do, while a stale later time could make a deadline late, so the earlier always
//! wins.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

#[derive(Debug, Default)]
pub(crate) struct DueQueue {
    by_uid: HashMap<String, DateTime<Utc>>,
    order: BTreeSet<(DateTime<Utc>, String)>,
}

impl DueQueue {
    /// Notes that `uid` is due at `at`. True when that is now the earliest time in the queue
    /// (the loop must wake sooner than it planned).
    pub(crate) fn note(&mut self, uid: &str, at: DateTime<Utc>) -> bool {
        if let Some(old) = self.by_uid.get(uid).copied() {
            if old <= at {
                return false;
            }
            self.order.remove(&(old, uid.to_string()));
        }
        self.by_uid.insert(uid.to_string(), at);
        self.order.insert((at, uid.to_string()));
        self.order.first().is_some_and(|(first, _)| *first == at)
    }

    /// Takes out every experiment due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.order.first() {
            if *at > now {
                break;
            }
            let (_, uid) = self.order.pop_first().expect("checked above");
            self.by_uid.remove(&uid);
            due.push(uid);
        }
        due
    }

    /// The earliest time noted.
    pub(crate) fn next(&self) -> Option<DateTime<Utc>> {
        self.order.first().map(|(at, _)| *at)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_uid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn the_earliest_time_per_experiment_wins_and_due_ones_come_out_in_order() {
        let mut q = DueQueue::default();
        assert!(q.note("a", t(300)), "the first entry is the earliest");
        assert!(q.note("b", t(100)), "an earlier entry moves the wake-up");
        assert!(!q.note("c", t(200)), "a later entry does not");
        assert!(
            !q.note("a", t(500)),
            "a later time for a noted experiment is ignored"
        );
        assert!(
            !q.note("a", t(150)),
            "an earlier one replaces it, not the earliest overall"
        );
        assert_eq!(q.len(), 3, "one entry per experiment");
        assert_eq!(q.next(), Some(t(100)));
        assert_eq!(q.pop_due(t(99)), Vec::<String>::new());
        assert_eq!(q.pop_due(t(160)), vec!["b".to_string(), "a".to_string()]);
        assert_eq!(q.next(), Some(t(200)));
        assert_eq!(q.pop_due(t(1000)), vec!["c".to_string()]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next(), None);
    }
}
