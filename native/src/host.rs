//! Host power faults: reboot and shutdown, refused unless the agent was started with
//! `--allow host-power` (the `allow_host_power` constructor argument).
//!
//! The power call sits behind [`PowerControl`]; the real one asks the init system
//! (`systemctl reboot` / `systemctl poweroff`, else `reboot` / `poweroff`) so services stop
//! cleanly and file systems are synced, and falls back to `sync(2)` + `reboot(2)` where there is
//! no such command (minimal containers, initless VMs). The call is made on a background thread
//! after a short delay, so the daemon can journal and report the fault as applied first.
//!
//! There is nothing to remove: once the host is back, the fault is over. A restarted agent that
//! finds the fault in its journal only removes it (a no-op) — it never applies it again, which
//! would put the host in a reboot loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoshub_schema::agent::{AgentFault, HostPowerAction};
use serde::{Deserialize, Serialize};

use crate::inject::{Applied, InjectError, Injector, Plan};

/// The flag that allows host power faults, named in refusals.
pub const ALLOW_POWER_FLAG: &str = "--allow host-power";

/// Default delay between `apply` and the power call.
pub const DEFAULT_POWER_DELAY: Duration = Duration::from_secs(2);

/// Reboots or powers off the host.
pub trait PowerControl: Send + Sync {
    fn power(&self, action: HostPowerAction) -> Result<(), InjectError>;
}

/// The real host.
#[derive(Debug, Default)]
pub struct RealPower;

impl PowerControl for RealPower {
    fn power(&self, action: HostPowerAction) -> Result<(), InjectError> {
        let (verb, fallback) = match action {
            HostPowerAction::Reboot => ("reboot", nix::sys::reboot::RebootMode::RB_AUTOBOOT),
            HostPowerAction::Shutdown => ("poweroff", nix::sys::reboot::RebootMode::RB_POWER_OFF),
        };
        let attempts: [(&str, Vec<&str>); 2] = [("systemctl", vec![verb]), (verb, vec![])];
        for (program, args) in attempts {
            if crate::stress::find_in_path(program).is_none() {
                continue;
            }
            match std::process::Command::new(program).args(&args).status() {
                Ok(status) if status.success() => return Ok(()),
                Ok(status) => {
                    tracing::warn!(program, %status, "power command failed; trying the next way")
                }
                Err(e) => tracing::warn!(program, error = %e, "power command did not start"),
            }
        }
        nix::unistd::sync();
        match nix::sys::reboot::reboot(fallback) {
            Ok(never) => match never {},
            Err(e) => Err(InjectError::io(
                format!("reboot(2) for {verb}"),
                std::io::Error::from(e),
            )),
        }
    }
}

/// Records power calls instead of making them (tests).
#[derive(Debug, Default)]
pub struct FakePower {
    pub calls: Mutex<Vec<HostPowerAction>>,
}

impl PowerControl for FakePower {
    fn power(&self, action: HostPowerAction) -> Result<(), InjectError> {
        self.calls
            .lock()
            .map_err(|_| InjectError::Failed("fake power poisoned".to_string()))?
            .push(action);
        Ok(())
    }
}

impl<T: PowerControl + ?Sized> PowerControl for Arc<T> {
    fn power(&self, action: HostPowerAction) -> Result<(), InjectError> {
        (**self).power(action)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HostUndo {
    action: HostPowerAction,
}

/// The `host-power` injector.
pub struct HostPowerInjector {
    allow_host_power: bool,
    delay: Duration,
    power: Arc<dyn PowerControl>,
}

impl std::fmt::Debug for HostPowerInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPowerInjector")
            .field("allow_host_power", &self.allow_host_power)
            .field("delay", &self.delay)
            .finish()
    }
}

impl HostPowerInjector {
    /// The real host; refused unless `allow_host_power`.
    pub fn new(allow_host_power: bool) -> Self {
        HostPowerInjector::with_power(allow_host_power, DEFAULT_POWER_DELAY, Arc::new(RealPower))
    }

    pub fn with_power(
        allow_host_power: bool,
        delay: Duration,
        power: Arc<dyn PowerControl>,
    ) -> Self {
        HostPowerInjector {
            allow_host_power,
            delay,
            power,
        }
    }

    fn refuse(&self) -> Result<(), InjectError> {
        if self.allow_host_power {
            return Ok(());
        }
        Err(InjectError::Unsupported {
            feature: ALLOW_POWER_FLAG.to_string(),
            message: format!(
                "host reboot and shutdown are disabled; start the agent with {ALLOW_POWER_FLAG} \
                 to allow them"
            ),
        })
    }
}

impl Injector for HostPowerInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::HostPower(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let AgentFault::HostPower(host) = fault else {
            return Err(InjectError::Invalid("not a host power fault".to_string()));
        };
        self.refuse()?;
        Ok(Plan {
            id: id.to_string(),
            mechanism: format!("host-{}", host.action.as_str()),
            undo: serde_json::to_value(HostUndo {
                action: host.action,
            })
            .map_err(|e| InjectError::Failed(format!("encoding host plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        self.refuse()?;
        let undo: HostUndo = serde_json::from_value(plan.undo.clone()).map_err(|e| {
            InjectError::Invalid(format!("host plan {}: bad undo record: {e}", plan.id))
        })?;
        let power = Arc::clone(&self.power);
        let delay = self.delay;
        let fault_id = plan.id.clone();
        tracing::warn!(
            fault_id = %fault_id,
            action = undo.action.as_str(),
            delay_ms = delay.as_millis() as u64,
            "host power action scheduled"
        );
        std::thread::Builder::new()
            .name("host-power".to_string())
            .spawn(move || {
                std::thread::sleep(delay);
                if let Err(e) = power.power(undo.action) {
                    tracing::error!(fault_id = %fault_id, error = %e, "host power action failed");
                }
            })
            .map_err(|e| InjectError::io("starting the host power thread", e))?;
        Ok(Applied::nothing_running())
    }

    /// Nothing can be read back before the host goes down; the scheduled call is the fault.
    fn verify(&self, _plan: &Plan) -> Result<bool, InjectError> {
        Ok(true)
    }

    fn remove(&self, _plan: &Plan) -> Result<(), InjectError> {
        Ok(())
    }
}
