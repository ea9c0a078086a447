//! Failed-authentication limiter: an address that fails more than `max_failures` times within
//! a window is answered 429 (with `Retry-After`) until the window ends, without its credential
//! even being looked at. Successful requests are never limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// `max_failures` 0 disables the limiter.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Some(seconds to wait) when this address is blocked now.
    pub fn blocked(&self, addr: IpAddr) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = state.get(&addr)?;
        let elapsed = start.elapsed();
        if *count >= self.max_failures && elapsed < self.window {
            Some((self.window - elapsed).as_secs().max(1))
        } else {
            None
        }
    }

    /// Records one failed attempt.
    pub fn failed(&self, addr: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Old windows are dropped as new failures arrive, so the map holds only addresses that
        // failed recently, however many there were.
        if state.len() > 10_000 {
            let window = self.window;
            state.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = state.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_millis(200));
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.blocked(addr).is_none());
            limiter.failed(addr);
        }
        assert_eq!(limiter.blocked(addr), Some(1));
        assert!(limiter.blocked(other).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.blocked(addr).is_none());
        assert!(FailureLimiter::new(0, Duration::from_secs(1))
            .blocked(addr)
            .is_none());
    }
}
