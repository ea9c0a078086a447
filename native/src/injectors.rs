//! Every injector of this build, assembled in one visible place for the daemon and the CLI.

use std::path::Path;

use chaoshub_schema::agent::KernelMechanisms;

use crate::host_injectors::{host_injectors, HostInjectorOptions};
use crate::inject::Injector;
use crate::network::NetworkInjector;

/// The opt-ins the agent was started with.
#[derive(Debug, Clone, Default)]
pub struct InjectorOptions {
    /// `--allow-clock-skew`: host-wide clock skew faults.
    pub allow_clock_skew: bool,
    /// `--allow-host-power`: reboot / shutdown faults.
    pub allow_host_power: bool,
}

/// Probes the kernel (in a scratch network namespace) for the network mechanisms.
pub fn probe_mechanisms() -> KernelMechanisms {
    crate::network::probe_mechanisms()
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
        state_dir: state_dir.to_path_buf(),
        prefer_stress_ng: mechanisms.stress_ng,
    }));
    out
}
