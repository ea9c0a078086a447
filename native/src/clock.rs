//! Clock skew: moves the host's wall clock (`CLOCK_REALTIME`) by an offset, and back.
//!
//! Linux has no per-process wall clock short of ptrace-injecting code into the target (what
//! Chaos Mesh's TimeChaos does) or a time namespace (which offsets only the monotonic and boot
//! clocks, not the wall clock). So the only skew this agent offers is host-wide: it needs
//! `CAP_SYS_TIME` and moves the time of *every* process on the host, so it is refused unless the
//! agent was started with `--allow clock` (the `allow_host_clock` constructor argument).
//!
//! The plan records the wall time and the boot time (`CLOCK_BOOTTIME`, which setting the wall
//! clock does not move) when it was made. From those two, the true time at any later instant is
//! `planned_wall + (boot_now - planned_boot)`: apply sets the clock to that plus the offset and
//! removal sets it back to exactly that. Both are absolute, so they are idempotent and work from
//! the journal alone — a removal after a crash between apply and the journal update, or a second
//! removal, does no harm. Removal only steps the clock when it is off by more than half the
//! offset (capped at 100 ms), so removing a fault that never got applied leaves the clock alone.
//! After a reboot the boot clock restarted; removal then cannot know the true time and leaves
//! the clock to NTP, saying so in the log.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use chaoshub_schema::agent::AgentFault;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, clock_settime, ClockId};
use serde::{Deserialize, Serialize};

use crate::inject::{Applied, InjectError, Injector, Plan};

/// The flag that allows host-wide clock skew, named in refusals.
pub const ALLOW_CLOCK_FLAG: &str = "--allow clock";

/// Reads and sets the host's clocks. Nanoseconds since the Unix epoch (wall) and since boot.
pub trait HostClock: Send + Sync {
    fn wall_ns(&self) -> Result<i128, InjectError>;
    fn set_wall_ns(&self, ns: i128) -> Result<(), InjectError>;
    fn boot_ns(&self) -> Result<i128, InjectError>;
    /// Identifies this boot (`/proc/sys/kernel/random/boot_id`).
    fn boot_id(&self) -> Result<String, InjectError>;
}

/// Lets a test keep a handle on the fake it gave the injector.
impl<T: HostClock + ?Sized> HostClock for Arc<T> {
    fn wall_ns(&self) -> Result<i128, InjectError> {
        (**self).wall_ns()
    }
    fn set_wall_ns(&self, ns: i128) -> Result<(), InjectError> {
        (**self).set_wall_ns(ns)
    }
    fn boot_ns(&self) -> Result<i128, InjectError> {
        (**self).boot_ns()
    }
    fn boot_id(&self) -> Result<String, InjectError> {
        (**self).boot_id()
    }
}

fn timespec_ns(ts: TimeSpec) -> i128 {
    i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
}

/// The real clocks (`clock_gettime` / `clock_settime`).
#[derive(Debug, Default)]
pub struct RealClock;

impl HostClock for RealClock {
    fn wall_ns(&self) -> Result<i128, InjectError> {
        clock_gettime(ClockId::CLOCK_REALTIME)
            .map(timespec_ns)
            .map_err(|e| InjectError::io("reading CLOCK_REALTIME", e.into()))
    }

    fn set_wall_ns(&self, ns: i128) -> Result<(), InjectError> {
        let secs = i64::try_from(ns.div_euclid(1_000_000_000))
            .map_err(|_| InjectError::Invalid("clock value out of range".to_string()))?;
        let nanos = ns.rem_euclid(1_000_000_000) as i64;
        clock_settime(ClockId::CLOCK_REALTIME, TimeSpec::new(secs, nanos)).map_err(|e| {
            if e == nix::errno::Errno::EPERM {
                InjectError::Unsupported {
                    feature: "CAP_SYS_TIME".to_string(),
                    message: "setting the wall clock was refused".to_string(),
                }
            } else {
                InjectError::io("setting CLOCK_REALTIME", e.into())
            }
        })
    }

    fn boot_ns(&self) -> Result<i128, InjectError> {
        clock_gettime(ClockId::CLOCK_BOOTTIME)
            .map(timespec_ns)
            .map_err(|e| InjectError::io("reading CLOCK_BOOTTIME", e.into()))
    }

    fn boot_id(&self) -> Result<String, InjectError> {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .map_err(|e| InjectError::io("reading the boot id", e))
    }
}

/// A clock for tests: a wall clock that can be set, over a boot clock that follows real time.
#[derive(Debug)]
pub struct FakeClock {
    started: Instant,
    /// The wall time at `started`, in ns since the epoch.
    wall_at_start: Mutex<i128>,
    /// Every value passed to `set_wall_ns`.
    pub sets: Mutex<Vec<i128>>,
}

impl FakeClock {
    pub fn new(wall_ns: i128) -> Self {
        FakeClock {
            started: Instant::now(),
            wall_at_start: Mutex::new(wall_ns),
            sets: Mutex::new(Vec::new()),
        }
    }

    fn elapsed_ns(&self) -> i128 {
        self.started.elapsed().as_nanos() as i128
    }
}

impl HostClock for FakeClock {
    fn wall_ns(&self) -> Result<i128, InjectError> {
        let base = *self
            .wall_at_start
            .lock()
            .map_err(|_| InjectError::Failed("fake clock poisoned".to_string()))?;
        Ok(base + self.elapsed_ns())
    }

    fn set_wall_ns(&self, ns: i128) -> Result<(), InjectError> {
        let elapsed = self.elapsed_ns();
        *self
            .wall_at_start
            .lock()
            .map_err(|_| InjectError::Failed("fake clock poisoned".to_string()))? = ns - elapsed;
        if let Ok(mut sets) = self.sets.lock() {
            sets.push(ns);
        }
        Ok(())
    }

    fn boot_ns(&self) -> Result<i128, InjectError> {
        Ok(1_000_000_000_000 + self.elapsed_ns())
    }

    fn boot_id(&self) -> Result<String, InjectError> {
        Ok("fake-boot".to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClockUndo {
    offset_ns: i128,
    planned_wall_ns: i128,
    planned_boot_ns: i128,
    boot_id: String,
}

/// The `clock` injector.
pub struct ClockInjector {
    allow_host_clock: bool,
    clock: Box<dyn HostClock>,
}

impl std::fmt::Debug for ClockInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockInjector")
            .field("allow_host_clock", &self.allow_host_clock)
            .finish()
    }
}

impl ClockInjector {
    /// The real host clock; skew is refused unless `allow_host_clock`.
    pub fn new(allow_host_clock: bool) -> Self {
        ClockInjector::with_clock(allow_host_clock, Box::new(RealClock))
    }

    pub fn with_clock(allow_host_clock: bool, clock: Box<dyn HostClock>) -> Self {
        ClockInjector {
            allow_host_clock,
            clock,
        }
    }

    fn true_now_ns(&self, undo: &ClockUndo) -> Result<Option<i128>, InjectError> {
        if self.clock.boot_id()? != undo.boot_id {
            return Ok(None);
        }
        Ok(Some(
            undo.planned_wall_ns + (self.clock.boot_ns()? - undo.planned_boot_ns),
        ))
    }
}

fn undo_of(plan: &Plan) -> Result<ClockUndo, InjectError> {
    serde_json::from_value(plan.undo.clone())
        .map_err(|e| InjectError::Invalid(format!("clock plan {}: bad undo record: {e}", plan.id)))
}

/// How far off the clock may be and still count as "in place" or "restored".
fn tolerance_ns(offset_ns: i128) -> i128 {
    (offset_ns.abs() / 2).min(100_000_000)
}

impl Injector for ClockInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::Clock(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let AgentFault::Clock(clock) = fault else {
            return Err(InjectError::Invalid("not a clock fault".to_string()));
        };
        if !self.allow_host_clock {
            return Err(InjectError::Unsupported {
                feature: ALLOW_CLOCK_FLAG.to_string(),
                message: format!(
                    "clock skew moves the wall clock of the whole host (CAP_SYS_TIME); start the \
                     agent with {ALLOW_CLOCK_FLAG} to allow it"
                ),
            });
        }
        if clock.offset_ms == 0 {
            return Err(InjectError::Invalid(
                "clock skew: offsetMs is 0".to_string(),
            ));
        }
        let undo = ClockUndo {
            offset_ns: i128::from(clock.offset_ms) * 1_000_000,
            planned_wall_ns: self.clock.wall_ns()?,
            planned_boot_ns: self.clock.boot_ns()?,
            boot_id: self.clock.boot_id()?,
        };
        Ok(Plan {
            id: id.to_string(),
            mechanism: "clock-settime".to_string(),
            undo: serde_json::to_value(&undo)
                .map_err(|e| InjectError::Failed(format!("encoding clock plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        if !self.allow_host_clock {
            return Err(InjectError::Unsupported {
                feature: ALLOW_CLOCK_FLAG.to_string(),
                message: "clock skew is not allowed on this agent".to_string(),
            });
        }
        let undo = undo_of(plan)?;
        let true_now = self.true_now_ns(&undo)?.ok_or_else(|| {
            InjectError::Failed("the host rebooted since the plan was made".to_string())
        })?;
        self.clock.set_wall_ns(true_now + undo.offset_ns)?;
        tracing::warn!(
            fault_id = %plan.id,
            offset_ms = undo.offset_ns / 1_000_000,
            "host wall clock skewed"
        );
        Ok(Applied::nothing_running())
    }

    fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
        let undo = undo_of(plan)?;
        let Some(true_now) = self.true_now_ns(&undo)? else {
            return Ok(false);
        };
        let skew = self.clock.wall_ns()? - true_now;
        Ok((skew - undo.offset_ns).abs() <= tolerance_ns(undo.offset_ns))
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo = undo_of(plan)?;
        let Some(true_now) = self.true_now_ns(&undo)? else {
            tracing::warn!(
                fault_id = %plan.id,
                "host rebooted since the clock skew; leaving the wall clock to NTP"
            );
            return Ok(());
        };
        let off = self.clock.wall_ns()? - true_now;
        if off.abs() <= tolerance_ns(undo.offset_ns) {
            return Ok(());
        }
        if !self.allow_host_clock {
            // A journal from a run that allowed skew, replayed by one that does not: restoring
            // the true time is always safe, so it is done regardless.
            tracing::info!(fault_id = %plan.id, "restoring the clock although skew is not allowed now");
        }
        // Re-read the boot clock right before setting, so the time spent in the checks above
        // does not end up as a residual skew.
        let true_now = self.true_now_ns(&undo)?.unwrap_or(true_now);
        self.clock.set_wall_ns(true_now)?;
        tracing::warn!(
            fault_id = %plan.id,
            corrected_ms = (off / 1_000_000) as i64,
            "host wall clock restored"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::agent::ClockFault;

    #[test]
    fn tolerance_is_bounded() {
        assert_eq!(tolerance_ns(10_000_000), 5_000_000);
        assert_eq!(tolerance_ns(-10_000_000_000), 100_000_000);
    }

    #[test]
    fn refused_without_opt_in() {
        let injector = ClockInjector::with_clock(false, Box::new(FakeClock::new(0)));
        let err = injector
            .plan("c", &AgentFault::Clock(ClockFault { offset_ms: 1000 }))
            .unwrap_err();
        assert!(matches!(err, InjectError::Unsupported { .. }));
        assert!(err.to_string().contains(ALLOW_CLOCK_FLAG));
    }
}
