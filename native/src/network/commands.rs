//! The real [`CommandRunner`] and a recording fake for unit tests of planning.
//!
//! The real runner enters a network namespace with `nsenter --net=PATH`: it works for both
//! `/run/netns/NAME` bind mounts and `/proc/PID/ns/net`, which `ip netns exec` does not, and it
//! keeps the agent's own threads in the namespace they started in.

use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::inject::{CommandRunner, InjectError};

/// Spawns `tc`, `nft`, `iptables`, `ip`… as child processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemCommandRunner;

impl CommandRunner for SystemCommandRunner {
    fn run(
        &self,
        netns: Option<&str>,
        program: &str,
        args: &[&str],
    ) -> Result<String, InjectError> {
        let mut command = match netns {
            Some(path) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={path}")).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let rendered = render(netns, program, args);
        tracing::debug!(command = %rendered, "running host command");
        let output = command
            .output()
            .map_err(|e| InjectError::io(format!("cannot start `{program}`"), e))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if stderr.is_empty() {
                stderr = format!("exit status {}", output.status);
            }
            Err(InjectError::Command {
                command: rendered,
                stderr,
            })
        }
    }
}

/// A command as shown in logs and errors: `[netns /run/netns/x] tc qdisc add …`.
pub fn render(netns: Option<&str>, program: &str, args: &[&str]) -> String {
    let mut out = String::new();
    if let Some(ns) = netns {
        out.push_str(&format!("[netns {ns}] "));
    }
    out.push_str(program);
    for arg in args {
        out.push(' ');
        if arg.contains(char::is_whitespace) || arg.is_empty() {
            out.push('\'');
            out.push_str(arg);
            out.push('\'');
        } else {
            out.push_str(arg);
        }
    }
    out
}

/// One call seen by [`RecordingRunner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub netns: Option<String>,
    pub program: String,
    pub args: Vec<String>,
}

impl RecordedCall {
    /// `program arg1 arg2…` without the namespace, for compact assertions.
    pub fn line(&self) -> String {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        render(None, &self.program, &args)
    }
}

/// A canned answer: calls whose rendered line starts with `prefix` get `result`.
struct Canned {
    prefix: String,
    result: Result<String, String>,
    /// Whether the answer is used once (then the next matching answer, or the default).
    once: bool,
}

/// A fake [`CommandRunner`] that records every call and answers from canned outputs (empty
/// stdout by default), so planning and removal can be checked command by command without root.
#[derive(Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<RecordedCall>>,
    canned: Mutex<VecDeque<Canned>>,
}

impl RecordingRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers every call starting with `prefix` (`"tc qdisc show dev eth0"`) with `stdout`.
    pub fn answer(&self, prefix: &str, stdout: &str) -> &Self {
        self.push(prefix, Ok(stdout.to_string()), false)
    }

    /// Makes every call starting with `prefix` fail with `stderr`.
    pub fn fail(&self, prefix: &str, stderr: &str) -> &Self {
        self.push(prefix, Err(stderr.to_string()), false)
    }

    /// Makes the next call starting with `prefix` fail with `stderr`, later ones use the other
    /// answers.
    pub fn fail_once(&self, prefix: &str, stderr: &str) -> &Self {
        self.push(prefix, Err(stderr.to_string()), true)
    }

    fn push(&self, prefix: &str, result: Result<String, String>, once: bool) -> &Self {
        if let Ok(mut canned) = self.canned.lock() {
            canned.push_back(Canned {
                prefix: prefix.to_string(),
                result,
                once,
            });
        }
        self
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The calls as `program args…` lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(RecordedCall::line).collect()
    }

    /// Forgets the calls seen so far (canned answers stay).
    pub fn clear(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.clear();
        }
    }
}

impl CommandRunner for RecordingRunner {
    fn run(
        &self,
        netns: Option<&str>,
        program: &str,
        args: &[&str],
    ) -> Result<String, InjectError> {
        let call = RecordedCall {
            netns: netns.map(str::to_string),
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let line = call.line();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        let mut canned = match self.canned.lock() {
            Ok(c) => c,
            Err(_) => return Ok(String::new()),
        };
        let Some(index) = canned.iter().position(|c| line.starts_with(&c.prefix)) else {
            return Ok(String::new());
        };
        let result = canned[index].result.clone();
        if canned[index].once {
            canned.remove(index);
        }
        result.map_err(|stderr| InjectError::Command {
            command: line,
            stderr,
        })
    }
}
