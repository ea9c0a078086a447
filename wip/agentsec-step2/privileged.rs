//! What only an admin may submit: faults that amount to running arbitrary code or taking a
//! whole host down (arbitrary commands, host power, host clock), and command probes, which run
//! on the hub's own host. These are checked at submission, before anything is stored, on top
//! of the environment's own opt-ins (the agent's `--allow …`, `limits.allow_command_probes`).
//!
//! Work the hub does on its own (schedules' and workflows' children, suite cases) has no
//! principal and is not checked again: it was checked when its parent was submitted.

use chaoshub_schema::probe::ProbeSpec;
use chaoshub_schema::{Kind, Manifest};

use crate::error::HubError;

/// A capability that needs the admin role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// `PhysicalMachineChaos` `user_defined`: `sh -c` on the target host.
    UserDefined,
    /// Host reboot or shutdown.
    HostPower,
    /// `PhysicalMachineChaos` `clock`: the whole host's wall clock.
    Clock,
    /// A probe with `command`: a process on the hub's host.
    CommandProbe,
}

impl Privilege {
    /// The permission named in 403 messages and docs/security.md.
    pub fn permission(self) -> &'static str {
        match self {
            Privilege::UserDefined => "experiments:user-defined",
            Privilege::HostPower => "experiments:host-power",
            Privilege::Clock => "experiments:clock",
            Privilege::CommandProbe => "probes:command",
        }
    }

    /// Why it is admin-only, for the 403 message.
    pub fn reason(self) -> &'static str {
        match self {
            Privilege::UserDefined => {
                "user_defined runs arbitrary commands on the target hosts"
            }
            Privilege::HostPower => "host reboot and shutdown take whole hosts down",
            Privilege::Clock => "clock faults move the whole host's wall clock",
            Privilege::CommandProbe => "command probes run processes on the hub's own host",
        }
    }
}

/// The privileged fault of a fault manifest, if any.
pub fn of_manifest(manifest: &Manifest) -> Option<Privilege> {
    if manifest.kind() != Kind::PhysicalMachineChaos {
        return None;
    }
    let actions = manifest.fault().map(|f| f.actions()).unwrap_or_default();
    actions.iter().find_map(|a| of_action(a))
}

/// The privilege a `PhysicalMachineChaos` action needs, if any (Chaos Mesh has no host power
/// action; chaosd's `host-reboot` / `host-shutdown` names are recognised should one arrive).
fn of_action(action: &str) -> Option<Privilege> {
    match action {
        "user_defined" => Some(Privilege::UserDefined),
        "clock" => Some(Privilege::Clock),
        "host-reboot" | "host-shutdown" | "reboot" | "shutdown" => Some(Privilege::HostPower),
        _ => None,
    }
}

/// 403 unless the caller of the request being served (if any) is an admin.
pub fn require(privilege: Privilege) -> Result<(), HubError> {
    match super::current() {
        Some(principal) => principal
            .require_admin(privilege.permission())
            .map_err(|e| match e {
                HubError::Forbidden { message } => HubError::Forbidden {
                    message: format!("{message}: {}", privilege.reason()),
                },
                other => other,
            }),
        None => Ok(()),
    }
}

/// 403 unless the caller may submit this fault manifest.
pub fn require_for_manifest(manifest: &Manifest) -> Result<(), HubError> {
    match of_manifest(manifest) {
        Some(privilege) => require(privilege),
        None => Ok(()),
    }
}

/// 403 unless the caller may submit these probes (any with `command` needs an admin).
pub fn require_for_probes(probes: &[ProbeSpec]) -> Result<(), HubError> {
    if probes.iter().any(|p| p.command.is_some()) {
        return require(Privilege::CommandProbe);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(action: &str) -> Manifest {
        let extra = match action {
            "user_defined" => "  user_defined: {attackCmd: 'true', recoverCmd: 'true'}\n",
            "clock" => "  clock: {time-offset: '-5m'}\n",
            _ => "  process: {process: '1', signal: 9}\n",
        };
        let text = format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: x}}\nspec:\n  action: {action}\n  mode: all\n  selector: {{labelSelectors: {{a: b}}}}\n{extra}  duration: 10s\n"
        );
        chaoshub_schema::parse_one(&text).unwrap()
    }

    #[test]
    fn privileged_faults_are_recognised() {
        assert_eq!(
            of_manifest(&manifest("user_defined")),
            Some(Privilege::UserDefined)
        );
        assert_eq!(of_manifest(&manifest("clock")), Some(Privilege::Clock));
        assert_eq!(of_manifest(&manifest("process")), None);
        assert_eq!(of_action("host-reboot"), Some(Privilege::HostPower));
        // Without a request being served (the hub's own work), nothing is refused.
        assert!(require(Privilege::UserDefined).is_ok());
    }
}
