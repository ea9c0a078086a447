//! The non-network fault families, built in one place for the daemon.

use std::path::PathBuf;

use crate::clock::ClockInjector;
use crate::disk::DiskInjector;
use crate::file::FileInjector;
use crate::host::HostPowerInjector;
use crate::inject::Injector;
use crate::process::ProcessInjector;
use crate::stress::StressInjector;
use crate::user_defined::UserDefinedInjector;

/// How the agent was started, as far as host faults care.
#[derive(Debug, Clone, Default)]
pub struct HostInjectorOptions {
    /// `--allow clock`: allow moving the host's wall clock.
    pub allow_host_clock: bool,
    /// `--allow host-power`: allow reboot and shutdown.
    pub allow_host_power: bool,
    /// `--allow user-defined`: allow running user-supplied commands.
    pub allow_user_defined: bool,
    /// The agent's state directory; stress-ng's logs and temporary files go under
    /// `<state_dir>/stress`.
    pub state_dir: PathBuf,
    /// Use stress-ng for stress faults when it is installed (else in-process threads).
    pub prefer_stress_ng: bool,
}

/// Every non-network injector: process, stress, disk, file, clock, host power, user-defined.
pub fn host_injectors(opts: HostInjectorOptions) -> Vec<Box<dyn Injector>> {
    vec![
        Box::new(ProcessInjector::new()),
        Box::new(StressInjector::new(
            opts.prefer_stress_ng,
            opts.state_dir.join("stress"),
        )),
        Box::new(DiskInjector::new()),
        Box::new(FileInjector::new()),
        Box::new(ClockInjector::new(opts.allow_host_clock)),
        Box::new(HostPowerInjector::new(opts.allow_host_power)),
        Box::new(UserDefinedInjector::new(
            opts.allow_user_defined,
            crate::user_defined::DEFAULT_COMMAND_TIMEOUT,
        )),
    ]
}
