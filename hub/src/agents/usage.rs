//! An agent's host-usage series, packed: the hub keeps [`USAGE_SAMPLES`] samples for every
//! agent (15 minutes of heartbeats), so with 10,000 agents the series alone are nine million
//! samples. As [`AgentUsage`] (40 bytes, in a `VecDeque` that grows to 1,024 slots) they took
//! about 410 MB; packed in 16 bytes in a deque of exactly [`USAGE_SAMPLES`] slots they take
//! 144 MB.
//!
//! What the packing keeps: the time to the millisecond (an offset from the series' epoch),
//! memory in whole KiB (the agent reads it from `/proc/meminfo`, which counts in kB, so nothing
//! is lost from a real agent; at most 4 TiB), the CPU share and the load to a hundredth (the
//! load at most 655.35). Values are sanitised before they are packed.

use std::collections::VecDeque;

use chaoshub_schema::agent::proto::HostUsage;
pub use chaoshub_schema::api::AgentUsage;
use chrono::{DateTime, Utc};

/// How many usage samples are kept per agent: 15 minutes of heartbeats.
pub const USAGE_SAMPLES: usize = 900;

/// One sample in 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    /// Milliseconds after the series' epoch.
    offset_ms: u32,
    mem_used_kib: u32,
    mem_total_kib: u32,
    /// Hundredths of a percent.
    cpu_centi: u16,
    /// Hundredths.
    load_centi: u16,
}

/// Samples oldest first, at most [`USAGE_SAMPLES`].
#[derive(Debug, Default)]
pub struct UsageSeries {
    epoch_ms: i64,
    samples: VecDeque<Packed>,
}

fn centi(value: f32, max: f32) -> u16 {
    if value.is_finite() {
        (value.clamp(0.0, max) * 100.0).round() as u16
    } else {
        0
    }
}

fn kib(bytes: u64) -> u32 {
    (bytes / 1024).min(u64::from(u32::MAX)) as u32
}

impl UsageSeries {
    /// Records `usage` reported at `at`; returns the sample as kept (what the API will show).
    pub fn push(&mut self, at: DateTime<Utc>, usage: &HostUsage) -> AgentUsage {
        let at_ms = at.timestamp_millis();
        if self.samples.is_empty() {
            self.epoch_ms = at_ms;
        }
        if at_ms < self.epoch_ms || at_ms - self.epoch_ms > i64::from(u32::MAX) {
            self.rebase(at_ms);
        }
        if self.samples.len() >= USAGE_SAMPLES {
            self.samples.pop_front();
        }
        if self.samples.capacity() < USAGE_SAMPLES {
            // Exactly the window: grown by doubling it would end at 1,024 slots.
            self.samples
                .reserve_exact(USAGE_SAMPLES - self.samples.len());
        }
        let packed = Packed {
            offset_ms: (at_ms - self.epoch_ms) as u32,
            mem_used_kib: kib(usage.mem_used_bytes.min(usage.mem_total_bytes)),
            mem_total_kib: kib(usage.mem_total_bytes),
            cpu_centi: centi(usage.cpu_percent, 100.0),
            load_centi: centi(usage.load1, f32::from(u16::MAX) / 100.0),
        };
        self.samples.push_back(packed);
        self.unpack(packed)
    }

    /// Moves the epoch for a sample at `at_ms` that the offsets cannot express, dropping the
    /// samples that cannot be kept with it: those more than 49 days older (long out of the
    /// window), or all of them when the clock went back before the epoch.
    fn rebase(&mut self, at_ms: i64) {
        let epoch = self.epoch_ms;
        let oldest = at_ms - i64::from(u32::MAX);
        self.samples.retain(|p| {
            let t = epoch + i64::from(p.offset_ms);
            t >= oldest && t <= at_ms
        });
        let new_epoch = self
            .samples
            .front()
            .map_or(at_ms, |p| epoch + i64::from(p.offset_ms));
        for p in &mut self.samples {
            p.offset_ms = (epoch + i64::from(p.offset_ms) - new_epoch) as u32;
        }
        self.epoch_ms = new_epoch;
    }

    fn unpack(&self, p: Packed) -> AgentUsage {
        let at_ms = self.epoch_ms + i64::from(p.offset_ms);
        AgentUsage {
            at: DateTime::from_timestamp_millis(at_ms).unwrap_or_default(),
            cpu_percent: f32::from(p.cpu_centi) / 100.0,
            mem_used_bytes: u64::from(p.mem_used_kib) * 1024,
            mem_total_bytes: u64::from(p.mem_total_kib) * 1024,
            load1: f32::from(p.load_centi) / 100.0,
        }
    }

    /// The samples at or after `since` (all without it), oldest first.
    pub fn since(&self, since: Option<DateTime<Utc>>) -> Vec<AgentUsage> {
        let from = match since {
            None => 0,
            Some(t) => {
                let t_ms =
                    t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0);
                self.samples
                    .partition_point(|p| self.epoch_ms + i64::from(p.offset_ms) < t_ms)
            }
        };
        self.samples
            .range(from..)
            .map(|p| self.unpack(*p))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Bytes the samples' storage takes.
    pub fn heap_bytes(&self) -> usize {
        self.samples.capacity() * std::mem::size_of::<Packed>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu: f32, used: u64, total: u64, load: f32) -> HostUsage {
        HostUsage {
            cpu_percent: cpu,
            mem_used_bytes: used,
            mem_total_bytes: total,
            load1: load,
        }
    }

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_796_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_sample_is_sixteen_bytes_and_the_window_is_allocated_exactly() {
        assert_eq!(std::mem::size_of::<Packed>(), 16);
        let mut s = UsageSeries::default();
        for i in 0..USAGE_SAMPLES as i64 * 2 {
            s.push(t(i * 1000), &usage(1.0, 1024, 2048, 0.5));
        }
        assert_eq!(s.len(), USAGE_SAMPLES);
        assert_eq!(s.heap_bytes(), USAGE_SAMPLES * 16);
    }

    #[test]
    fn what_a_real_agent_reports_comes_back_unchanged() {
        let mut s = UsageSeries::default();
        let kept = s.push(
            t(1_234),
            &usage(37.25, 2_000_123 * 1024, 8_000_000 * 1024, 1.5),
        );
        let expected = AgentUsage {
            at: t(1_234),
            cpu_percent: 37.25,
            mem_used_bytes: 2_000_123 * 1024,
            mem_total_bytes: 8_000_000 * 1024,
            load1: 1.5,
        };
        assert_eq!(kept, expected);
        assert_eq!(s.since(None), [expected]);
    }

    #[test]
    fn values_are_sanitised_and_rounded_to_what_is_kept() {
        let mut s = UsageSeries::default();
        let a = s.push(t(0), &usage(150.0, 5 * 1024, 4 * 1024, f32::NAN));
        assert_eq!(a.cpu_percent, 100.0, "clamped to 0–100");
        assert_eq!(a.mem_used_bytes, 4 * 1024, "never above the total");
        assert_eq!(a.load1, 0.0, "a NaN load is not passed on");
        let b = s.push(t(1), &usage(-3.0, 1500, 1 << 50, 1e9));
        assert_eq!(b.cpu_percent, 0.0);
        assert_eq!(b.mem_used_bytes, 1024, "whole KiB");
        assert_eq!(
            b.mem_total_bytes,
            u64::from(u32::MAX) * 1024,
            "at most 4 TiB"
        );
        assert_eq!(b.load1, 655.35);
        let c = s.push(t(2), &usage(12.345, 0, 0, 0.004));
        assert!((c.cpu_percent - 12.35).abs() < 1e-4, "{}", c.cpu_percent);
        assert_eq!(c.load1, 0.0);
    }

    #[test]
    fn since_selects_by_millisecond() {
        let mut s = UsageSeries::default();
        for i in 0..10 {
            s.push(t(i * 1000), &usage(i as f32, 0, 0, 0.0));
        }
        let from = s.since(Some(t(5000)));
        assert_eq!(from.len(), 5);
        assert_eq!(from[0].cpu_percent, 5.0);
        // A bound a fraction of a millisecond after a sample excludes it.
        let just_after = t(5000) + chrono::Duration::microseconds(300);
        assert_eq!(s.since(Some(just_after))[0].cpu_percent, 6.0);
        assert!(s.since(Some(t(9001))).is_empty());
        assert_eq!(s.since(Some(t(-1))).len(), 10);
    }

    #[test]
    fn samples_beyond_the_offsets_range_are_dropped_and_the_rest_kept() {
        let mut s = UsageSeries::default();
        s.push(t(0), &usage(1.0, 0, 0, 0.0));
        s.push(t(1000), &usage(2.0, 0, 0, 0.0));
        // 50 days later (an agent that reconnects keeps its series).
        let later = 50 * 86_400_000;
        s.push(t(later - 1000), &usage(3.0, 0, 0, 0.0));
        let kept: Vec<f32> = s.since(None).iter().map(|u| u.cpu_percent).collect();
        assert_eq!(kept, [3.0]);
        s.push(t(later), &usage(4.0, 0, 0, 0.0));
        let all = s.since(None);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].at, t(later));
        // The clock went back: the series starts over.
        s.push(t(later - 10_000), &usage(5.0, 0, 0, 0.0));
        let all = s.since(None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].cpu_percent, 5.0);
    }
}
