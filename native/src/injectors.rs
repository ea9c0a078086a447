//! Every injector of this build, assembled in one visible place for the daemon and the CLI.

use std::path::Path;

use chaoshub_schema::agent::KernelMechanisms;

use crate::host_injectors::{host_injectors, HostInjectorOptions};
use crate::inject::Injector;
use crate::network::NetworkInjector;

/// The opt-ins the agent was started with (`--allow user-defined|host-power|clock`; the older
/// `--allow-clock-skew` and `--allow-host-power` flags are aliases).
#[derive(Debug, Clone, Default)]
pub struct InjectorOptions {
    /// `--allow clock`: host-wide clock skew faults.
    pub allow_clock_skew: bool,
    /// `--allow host-power`: reboot / shutdown faults.
    pub allow_host_power: bool,
    /// `--allow user-defined`: arbitrary attack / recover commands.
    pub allow_user_defined: bool,
    /// `--disable-mechanism`: mechanisms treated as missing although the kernel has them.
    pub disabled_mechanisms: Vec<String>,
}

impl InjectorOptions {
    /// The opt-ins by the names `--allow` takes, as reported to the hub.
    pub fn allowed(&self) -> Vec<String> {
        [
            (self.allow_user_defined, "user-defined"),
            (self.allow_host_power, "host-power"),
            (self.allow_clock_skew, "clock"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect()
    }
}

/// Probes the kernel (in a scratch network namespace) for the network mechanisms.
pub fn probe_mechanisms() -> KernelMechanisms {
    crate::network::probe_mechanisms()
}

/// Probes, then turns off what the options disable.
pub fn mechanisms_for(options: &InjectorOptions) -> anyhow::Result<KernelMechanisms> {
    let mut m = probe_mechanisms();
    crate::network::disable_mechanisms(&mut m, &options.disabled_mechanisms)
        .map_err(|e| anyhow::anyhow!("--disable-mechanism: {e}"))?;
    Ok(m)
}

/// Network first, then the host families; the first injector that handles a fault runs it.
pub fn all(
    mechanisms: &KernelMechanisms,
    options: &InjectorOptions,
    state_dir: &Path,
) -> Vec<Box<dyn Injector>> {
    let mut out: Vec<Box<dyn Injector>> = vec![Box::new(NetworkInjector::real(mechanisms.clone()))];
    out.extend(host_injectors(HostInjectorOptions {
        allow_host_clock: options.allow_clock_skew,
        allow_host_power: options.allow_host_power,
        allow_user_defined: options.allow_user_defined,
        state_dir: state_dir.to_path_buf(),
        prefer_stress_ng: mechanisms.stress_ng,
    }));
    out
}
