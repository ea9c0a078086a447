//! Failed-authentication limiter: an address that fails more than `max_failures` times within
//! a window is answered 429 (with `Retry-After`) until the window ends, without its credential
//! even being looked at. Successful requests are never limited.
//!
//! IPv6 sources are counted per /64 (one host or site usually holds a whole /64, so rotating
//! addresses inside it would otherwise never be limited); IPv4-mapped IPv6 counts as its IPv4
//! address. The table is bounded: expired windows are dropped when it doubles past its last
//! size (amortised, never a scan per failure), and past [`MAX_TRACKED`] live addresses the ones
//! with a single failure are forgotten first, then all not yet blocked.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Below this size the table is never pruned.
const PRUNE_AT: usize = 10_000;
/// Live addresses kept at most after a prune (the table holds at most twice this).
pub const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<Table>,
}

struct Table {
    failures: HashMap<IpAddr, (Instant, u32)>,
    /// The size at which the next prune runs.
    prune_at: usize,
}

/// The key an address is counted under: IPv4 as is, IPv4-mapped IPv6 as its IPv4 address,
/// other IPv6 by its /64 prefix.
fn source_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

impl FailureLimiter {
    /// `max_failures` 0 disables the limiter.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            state: Mutex::new(Table {
                failures: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    /// Some(seconds to wait) when this address is blocked now.
    pub fn blocked(&self, addr: IpAddr) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = state.failures.get(&source_key(addr))?;
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
        if state.failures.len() >= state.prune_at {
            self.prune(&mut state);
        }
        let entry = state
            .failures
            .entry(source_key(addr))
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Drops expired windows; past [`MAX_TRACKED`] live ones, forgets single failures, then
    /// everything not blocked. The next prune runs when the table has doubled again.
    fn prune(&self, state: &mut Table) {
        let window = self.window;
        let max = self.max_failures;
        state
            .failures
            .retain(|_, (start, _)| start.elapsed() < window);
        if state.failures.len() > MAX_TRACKED {
            state.failures.retain(|_, (_, count)| *count > 1);
        }
        if state.failures.len() > MAX_TRACKED {
            state.failures.retain(|_, (_, count)| *count >= max);
        }
        state.prune_at = (state.failures.len() * 2).max(PRUNE_AT);
    }

    /// How many sources are tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failures
            .len()
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

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        for last in 1..=3u16 {
            let addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, last));
            assert!(limiter.blocked(addr).is_none());
            limiter.failed(addr);
        }
        let rotated: IpAddr = "2001:db8:0:7:ffff::99".parse().unwrap();
        assert!(
            limiter.blocked(rotated).is_some(),
            "a new address in the same /64 is blocked too"
        );
        let neighbour: IpAddr = "2001:db8:0:8::1".parse().unwrap();
        assert!(limiter.blocked(neighbour).is_none());
        let v4: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            limiter.failed(IpAddr::V6("::ffff:192.0.2.9".parse().unwrap()));
        }
        assert!(limiter.blocked(v4).is_some());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_blocked_sources() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(600));
        let blocked: IpAddr = "198.18.0.1".parse().unwrap();
        limiter.failed(blocked);
        limiter.failed(blocked);
        // Far more distinct sources than the cap, each failing once, within one window.
        for i in 0..(3 * MAX_TRACKED as u32) {
            limiter.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            assert!(limiter.tracked() <= 2 * MAX_TRACKED + 1);
        }
        assert!(
            limiter.blocked(blocked).is_some(),
            "a blocked source survives the pruning"
        );
    }
}
