//! Faults that amount to running arbitrary code, taking whole hosts down or moving their clocks
//! (`user_defined`, host power, clock), and command probes, which run on the hub's own host.
//! They are checked at submission, before anything is stored, on top of the environment's own
//! opt-ins (an agent's `--allow …`, `limits.allow_command_probes`):
//!
//! - a privileged fault needs an admin caller, or an environment registered with
//!   `settings.allow: [user-defined | host-power | clock]`, which lets every caller in scope
//!   submit that family there;
//! - a command probe needs an admin caller (no environment setting unlocks it: it runs on the
//!   hub, not in the environment).
//!
//! Work the hub does on its own (schedules' and workflows' children, suite cases) has no
//! principal and is not checked again: every path that creates such work (a Schedule or
//! Workflow, a suite) checks each fault it will ever create when it is submitted, so an
//! operator's schedule cannot later spawn a privileged child.

use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::probe::ProbeSpec;
use chaoshub_schema::{Kind, Manifest, ValidationErrors};
use serde_json::Value;

use crate::error::HubError;

/// The environment setting that opts an environment into privileged fault families.
pub const ALLOW_SETTING: &str = "allow";

/// A capability that needs the admin role (or, for faults, an environment's opt-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// `PhysicalMachineChaos` `user_defined`: `sh -c` on the target hosts.
    UserDefined,
    /// Stopping or restarting whole machines: `AWSChaos` `ec2-stop`/`ec2-restart`,
    /// `GCPChaos` `node-stop`/`node-reset`, `AzureChaos` `vm-stop`/`vm-restart` (the agent's
    /// host reboot/shutdown has no Chaos Mesh action; it is reachable only through
    /// `chaos-agent attack host` on the host itself).
    HostPower,
    /// `PhysicalMachineChaos` `clock` (the whole host's clock) and `TimeChaos` (processes'
    /// clocks).
    Clock,
    /// A probe with `command`: a process on the hub's host.
    CommandProbe,
}

impl Privilege {
    /// The fault families an environment can opt into, in the order messages list them.
    pub const FAULTS: [Privilege; 3] = [
        Privilege::UserDefined,
        Privilege::HostPower,
        Privilege::Clock,
    ];

    /// The permission named in 403 messages and docs/security.md.
    pub fn permission(self) -> &'static str {
        match self {
            Privilege::UserDefined => "experiments:user-defined",
            Privilege::HostPower => "experiments:host-power",
            Privilege::Clock => "experiments:clock",
            Privilege::CommandProbe => "probes:command",
        }
    }

    /// The name in `settings.allow` (the same as the agent's `--allow`); None for command
    /// probes, which no environment unlocks.
    pub fn opt_in(self) -> Option<&'static str> {
        match self {
            Privilege::UserDefined => Some("user-defined"),
            Privilege::HostPower => Some("host-power"),
            Privilege::Clock => Some("clock"),
            Privilege::CommandProbe => None,
        }
    }

    fn from_opt_in(name: &str) -> Option<Privilege> {
        Self::FAULTS.into_iter().find(|p| p.opt_in() == Some(name))
    }

    /// Why it is restricted, for the 403 message.
    pub fn reason(self) -> &'static str {
        match self {
            Privilege::UserDefined => "it runs arbitrary commands on the target hosts",
            Privilege::HostPower => "it stops or restarts whole machines",
            Privilege::Clock => "it moves the clocks of hosts or processes",
            Privilege::CommandProbe => "it runs a process on the hub's own host",
        }
    }
}

/// The privilege a fault kind and action needs, if any.
pub fn of_fault(kind: Kind, action: &str) -> Option<Privilege> {
    match (kind, action) {
        (Kind::PhysicalMachineChaos, "user_defined") => Some(Privilege::UserDefined),
        (Kind::PhysicalMachineChaos, "clock") | (Kind::TimeChaos, _) => Some(Privilege::Clock),
        (Kind::AWSChaos, "ec2-stop" | "ec2-restart")
        | (Kind::GCPChaos, "node-stop" | "node-reset")
        | (Kind::AzureChaos, "vm-stop" | "vm-restart") => Some(Privilege::HostPower),
        _ => None,
    }
}

/// The privileged fault of a manifest, if any, with its `Kind/action` for messages.
pub fn of_manifest(manifest: &Manifest) -> Option<(Privilege, String)> {
    let kind = manifest.kind();
    let actions = manifest.fault().map(|f| f.actions()).unwrap_or_default();
    actions
        .iter()
        .find_map(|a| of_fault(kind, a).map(|p| (p, format!("{kind}/{a}"))))
}

/// The fault families an environment's registration opts into (`settings.allow`); entries
/// that are not known names are ignored here (registration refuses them).
pub fn environment_allows(spec: &EnvironmentSpec) -> Vec<Privilege> {
    match spec.settings.get(ALLOW_SETTING) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Privilege::from_opt_in)
            .collect(),
        _ => Vec::new(),
    }
}

/// Registration check of `spec.settings.allow`: absent, or a list of known opt-in names.
pub fn check_allow_setting(spec: &EnvironmentSpec) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let known = Privilege::FAULTS
        .iter()
        .filter_map(|p| p.opt_in())
        .collect::<Vec<_>>()
        .join(", ");
    match spec.settings.get(ALLOW_SETTING) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) if Privilege::from_opt_in(name).is_some() => {}
                    _ => errors.push(
                        format!("spec.settings.{ALLOW_SETTING}[{i}]"),
                        format!(
                            "{item} is not a fault family that can be allowed (known: {known})"
                        ),
                    ),
                }
            }
        }
        Some(other) => errors.push(
            format!("spec.settings.{ALLOW_SETTING}"),
            format!("must be a list of fault families ({known}), got {other}"),
        ),
    }
    errors.into_result()
}

/// Why a privileged fault was let through, for a dry run's warnings.
fn granted(privilege: Privilege, what: &str, by: &str) -> String {
    format!(
        "{what} is privileged ({}: {}); allowed because {by}",
        privilege.permission(),
        privilege.reason()
    )
}

/// Checks that the caller of the request being served may submit this fault into this
/// environment. `Ok(Some(note))` for a privileged fault that is allowed (a dry run reports
/// the note), `Ok(None)` for an ordinary one or the hub's own work.
pub fn authorize_fault(
    manifest: &Manifest,
    environment: Option<(&str, &EnvironmentSpec)>,
) -> Result<Option<String>, HubError> {
    let Some((privilege, what)) = of_manifest(manifest) else {
        return Ok(None);
    };
    let Some(principal) = super::current() else {
        return Ok(None);
    };
    if principal.role >= chaoshub_schema::auth::Role::Admin {
        return Ok(Some(granted(
            privilege,
            &what,
            &format!("{} is an admin", principal.describe()),
        )));
    }
    let opt_in = privilege.opt_in().unwrap_or_default();
    if let Some((name, spec)) = environment {
        if environment_allows(spec).contains(&privilege) {
            return Ok(Some(granted(
                privilege,
                &what,
                &format!("environment {name:?} is registered with settings.allow: [{opt_in}]"),
            )));
        }
    }
    let place = match environment {
        Some((name, _)) => format!(
            "environment {name:?} (its registration does not set settings.allow: [{opt_in}])"
        ),
        None => "an environment registered with it (none is named)".to_string(),
    };
    Err(HubError::Forbidden {
        message: format!(
            "{} lacks the permission {} for {what}: {}; it needs role admin, or {place}",
            principal.describe(),
            privilege.permission(),
            privilege.reason()
        ),
    })
}

/// 403 unless the caller of the request being served (if any) may submit these probes: one
/// with `command` needs an admin. `path` locates them in the submitted document.
pub fn authorize_probes(probes: &[ProbeSpec], path: &str) -> Result<(), HubError> {
    let Some(i) = probes.iter().position(|p| p.command.is_some()) else {
        return Ok(());
    };
    match super::current() {
        Some(principal) if principal.role < chaoshub_schema::auth::Role::Admin => {
            Err(HubError::Forbidden {
                message: format!(
                    "{} lacks the permission {} for {path}[{i}].command: {}; it needs role admin",
                    principal.describe(),
                    Privilege::CommandProbe.permission(),
                    Privilege::CommandProbe.reason()
                ),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn spec(settings: Value) -> EnvironmentSpec {
        EnvironmentSpec {
            adapter: "native".into(),
            endpoint: None,
            description: None,
            labels: Default::default(),
            settings: settings.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn privileged_faults_are_recognised() {
        assert_eq!(
            of_manifest(&manifest("user_defined")).map(|p| p.0),
            Some(Privilege::UserDefined)
        );
        assert_eq!(
            of_manifest(&manifest("clock")).map(|p| p.0),
            Some(Privilege::Clock)
        );
        assert_eq!(of_manifest(&manifest("process")), None);
        assert_eq!(
            of_fault(Kind::AWSChaos, "ec2-restart"),
            Some(Privilege::HostPower)
        );
        assert_eq!(of_fault(Kind::AWSChaos, "detach-volume"), None);
        assert_eq!(
            of_fault(Kind::TimeChaos, "time-offset"),
            Some(Privilege::Clock)
        );
        // Without a request being served (the hub's own work), nothing is refused.
        assert_eq!(
            authorize_fault(&manifest("user_defined"), None).unwrap(),
            None
        );
    }

    #[test]
    fn the_allow_setting_is_checked_and_read() {
        assert!(check_allow_setting(&spec(json!({}))).is_ok());
        let ok = spec(json!({"allow": ["user-defined", "clock"]}));
        assert!(check_allow_setting(&ok).is_ok());
        assert_eq!(
            environment_allows(&ok),
            [Privilege::UserDefined, Privilege::Clock]
        );
        let err =
            check_allow_setting(&spec(json!({"allow": ["user-defined", "reboot"]}))).unwrap_err();
        assert_eq!(err.0[0].path, "spec.settings.allow[1]");
        assert!(err.0[0].message.contains("host-power"), "{err:?}");
        let err = check_allow_setting(&spec(json!({"allow": "clock"}))).unwrap_err();
        assert_eq!(err.0[0].path, "spec.settings.allow");
    }
}
