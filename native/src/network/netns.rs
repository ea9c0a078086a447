//! Network namespaces: validating a target, entering one from a worker thread, and scratch
//! namespaces for probing.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use chaoshub_schema::agent::NetnsRef;
use nix::sched::{setns, CloneFlags};

use crate::inject::{CommandRunner, InjectError};

/// Checks that a target namespace is one we may work in and exists, and returns its path.
///
/// Only bind mounts under `/run/netns` (`/var/run/netns`) and `/proc/PID/ns/net` are accepted:
/// any other path would let a caller point `nsenter` at an arbitrary file.
pub fn resolve(netns: &NetnsRef) -> Result<String, InjectError> {
    let path = netns.path();
    let allowed = path.starts_with("/run/netns/")
        || path.starts_with("/var/run/netns/")
        || is_proc_netns(&path);
    if !allowed || path.contains("/../") || path.ends_with("/..") {
        return Err(InjectError::Invalid(format!(
            "network namespace path {path:?} is not under /run/netns/ or /proc/PID/ns/net"
        )));
    }
    if !Path::new(&path).exists() {
        return Err(InjectError::Invalid(format!(
            "network namespace {path:?} does not exist"
        )));
    }
    Ok(path)
}

fn is_proc_netns(path: &str) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.strip_suffix("/ns/net"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Moves the calling thread into the network namespace at `path`. Sockets opened afterwards
/// (netlink, raw) belong to that namespace; other threads of the agent are not affected, which
/// is why NFQUEUE workers call this on their own thread only.
pub fn enter_current_thread(path: &str) -> Result<(), InjectError> {
    let file = File::open(path)
        .map_err(|e| InjectError::io(format!("cannot open network namespace {path}"), e))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
        InjectError::io(
            format!("cannot enter network namespace {path}"),
            std::io::Error::from(errno),
        )
    })
}

/// A named namespace created with `ip netns add` and deleted when dropped (also on panic and
/// early return), used by the mechanism probe so that it never touches the host's interfaces.
pub struct ScratchNetns<'a> {
    name: String,
    path: String,
    runner: &'a dyn CommandRunner,
}

impl<'a> ScratchNetns<'a> {
    pub fn create(prefix: &str, runner: &'a dyn CommandRunner) -> Result<Self, InjectError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        runner.run(None, "ip", &["netns", "add", &name])?;
        let scratch = ScratchNetns {
            path: format!("/run/netns/{name}"),
            name,
            runner,
        };
        scratch
            .runner
            .run(Some(&scratch.path), "ip", &["link", "set", "lo", "up"])?;
        Ok(scratch)
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for ScratchNetns<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.runner.run(None, "ip", &["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, %error, "cannot delete scratch network namespace");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_netns_roots_are_accepted() {
        for bad in [
            "/etc/passwd",
            "/run/netns/../../etc/passwd",
            "/proc/self/ns/net",
            "/proc/1x/ns/net",
        ] {
            let err = resolve(&NetnsRef::Path(bad.to_string())).unwrap_err();
            assert!(matches!(err, InjectError::Invalid(_)), "{bad}: {err}");
        }
        assert!(is_proc_netns("/proc/42/ns/net"));
    }
}
