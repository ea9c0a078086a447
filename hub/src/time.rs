//! Timestamps: RFC 3339 in UTC with milliseconds, everywhere; and the clock the engine reads.
//!
//! The engine takes "now" from a [`Clock`] so that time-driven behaviour (experiment
//! deadlines, schedule fire times, workflow deadlines) can be tested exactly with a
//! [`ManualClock`] instead of sleeping. Only the wall-clock instant is injectable: short
//! in-process waits (adapter confirmation, retry back-off) stay on tokio's real timer, because
//! they measure how long a far side takes to answer, not when something is due.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn now_rfc3339() -> String {
    format(now())
}

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Where the engine reads the current instant.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// A receiver that changes whenever the clock is moved by hand, so a sleeping reconciler
    /// wakes up and re-evaluates its deadlines. `None` for a clock that simply runs.
    fn subscribe(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock {
    current: Mutex<DateTime<Utc>>,
    changed: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<ManualClock> {
        let (changed, _) = watch::channel(start);
        Arc::new(ManualClock {
            current: Mutex::new(start),
            changed,
        })
    }

    /// Sets the clock to `t` (which may be earlier, to model a wrong clock) and wakes every
    /// engine that reads it.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.changed.send_replace(t);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        let next = self.now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        self.set(next);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribe(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.changed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_notifies() {
        let start = parse("2030-01-01T00:00:00Z").unwrap();
        let clock = ManualClock::new(start);
        let mut rx = clock.subscribe().unwrap();
        assert_eq!(clock.now(), start);
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(format(clock.now()), "2030-01-01T00:01:30.000Z");
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), clock.now());
        assert!(RealClock.subscribe().is_none());
    }
}
