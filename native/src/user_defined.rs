//! User-defined faults: an attack command run at apply and a recover command run at removal,
//! each with `sh -c` and a timeout. Both commands are journalled in the plan, so a restarted
//! agent can still run the recovery.
//!
//! The commands run in their own process group: on timeout the whole group is killed, so a
//! hung command does not leave its helpers behind. A command that succeeds may leave background
//! helpers running on purpose (they are the fault); the recover command must stop them.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::AgentFault;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::inject::{Applied, InjectError, Injector, Plan};

/// Default limit for one attack or recover command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this much of each output stream goes into an error message.
const OUTPUT_LIMIT: usize = 4096;

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct ShellOutput {
    pub stdout: String,
    pub stderr: String,
}

fn trimmed(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= OUTPUT_LIMIT {
        return text.to_string();
    }
    let mut end = OUTPUT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

fn read_all(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error only truncates what is reported; the exit status still decides.
        let _ = stream.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `sh -c command` with a timeout. A non-zero exit, a signal or the timeout is an
/// `InjectError::Command` whose text carries the exit status, stdout and stderr.
pub(crate) fn run_shell(command: &str, timeout: Duration) -> Result<ShellOutput, InjectError> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| InjectError::io(format!("starting `sh -c {command}`"), e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(InjectError::Failed(
            "child output pipes are missing".to_string(),
        ));
    };
    let stdout = read_all(stdout);
    let stderr = read_all(stderr);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(InjectError::io(format!("waiting for `{command}`"), e)),
        }
    };
    let pgid = Pid::from_raw(child.id() as i32);
    if status.is_none() {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait();
    }
    // An attack may legitimately leave a helper running in the background (`nohup x &`); it
    // keeps the output pipes open, so the output is only waited for briefly.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        trimmed(&rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default())
    };
    let out = ShellOutput {
        stdout: collect(stdout),
        stderr: collect(stderr),
    };
    let failure = match status {
        None => Some(format!("timed out after {} ms", timeout.as_millis())),
        Some(status) if status.success() => None,
        Some(status) => Some(status.to_string()),
    };
    match failure {
        None => Ok(out),
        Some(why) => Err(InjectError::Command {
            command: format!("sh -c {command}"),
            stderr: format!("{why}; stdout: {:?}; stderr: {:?}", out.stdout, out.stderr),
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserDefinedUndo {
    recover_cmd: String,
    timeout_ms: u64,
}

/// The flag that allows user-defined faults, named in refusals.
pub const ALLOW_USER_DEFINED_FLAG: &str = "--allow user-defined";

/// The `user-defined` injector.
#[derive(Debug)]
pub struct UserDefinedInjector {
    allowed: bool,
    timeout: Duration,
}

impl UserDefinedInjector {
    /// Refuses every fault unless `allowed` (`--allow user-defined`: these are arbitrary
    /// commands run as the agent's user, usually root). `timeout` bounds each attack and
    /// recover command.
    pub fn new(allowed: bool, timeout: Duration) -> Self {
        UserDefinedInjector { allowed, timeout }
    }
}

impl Injector for UserDefinedInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::UserDefined(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let AgentFault::UserDefined(fault) = fault else {
            return Err(InjectError::Invalid("not a user-defined fault".to_string()));
        };
        if !self.allowed {
            return Err(InjectError::Unsupported {
                feature: ALLOW_USER_DEFINED_FLAG.to_string(),
                message: format!(
                    "user-defined faults run arbitrary commands on this host; start the agent \
                     with {ALLOW_USER_DEFINED_FLAG} to allow them"
                ),
            });
        }
        if fault.attack_cmd.trim().is_empty() {
            return Err(InjectError::Invalid(
                "user-defined fault: attackCmd is empty".to_string(),
            ));
        }
        let undo = UserDefinedUndo {
            recover_cmd: fault.recover_cmd.clone(),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        Ok(Plan {
            id: id.to_string(),
            mechanism: "sh".to_string(),
            undo: serde_json::to_value(&undo)
                .map_err(|e| InjectError::Failed(format!("encoding plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, fault: &AgentFault) -> Result<Applied, InjectError> {
        let AgentFault::UserDefined(fault) = fault else {
            return Err(InjectError::Invalid("not a user-defined fault".to_string()));
        };
        let out = run_shell(&fault.attack_cmd, self.timeout)?;
        tracing::info!(fault_id = %plan.id, stdout = %out.stdout, "user-defined attack command succeeded");
        Ok(Applied::nothing_running())
    }

    /// There is nothing generic to read back: the attack command's success is the confirmation.
    fn verify(&self, _plan: &Plan) -> Result<bool, InjectError> {
        Ok(true)
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo: UserDefinedUndo = serde_json::from_value(plan.undo.clone()).map_err(|e| {
            InjectError::Invalid(format!(
                "user-defined plan {}: bad undo record: {e}",
                plan.id
            ))
        })?;
        if undo.recover_cmd.trim().is_empty() {
            return Ok(());
        }
        let out = run_shell(&undo.recover_cmd, Duration::from_millis(undo.timeout_ms))?;
        tracing::info!(fault_id = %plan.id, stdout = %out.stdout, "user-defined recover command succeeded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_status_and_output() {
        let err = run_shell("echo out; echo err >&2; exit 3", Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("\"out\""), "{err}");
        assert!(err.contains("\"err\""), "{err}");
    }

    #[test]
    fn timeout_kills_the_group() {
        let started = Instant::now();
        let err = run_shell("sleep 30 & sleep 30", Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn success_returns_stdout() {
        let out = run_shell("printf hello", Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout, "hello");
    }
}
