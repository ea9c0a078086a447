//! Process faults: `kill` (a signal, SIGKILL by default; nothing to recover) and `stop`
//! (SIGSTOP now, SIGCONT on recovery), by pid, exact name or command-line pattern.
//!
//! The plan resolves the targets once and records each pid together with its start time (field
//! 22 of `/proc/<pid>/stat`, in clock ticks since boot). Every later signal checks that start
//! time first, so a recovery that runs long after the fault — or after an agent restart — never
//! signals an unrelated process that happens to have been given a recycled pid.
//!
//! Selection by name or pattern never picks the agent itself, pid 1, kernel threads or zombies;
//! pid 1 is refused even when named explicitly, because stopping or killing init takes the whole
//! host (or container) down with it. The agent's own pid may be killed when given explicitly (a
//! test of its restart and journal recovery) but never stopped: nobody could continue it.

use std::io;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::{AgentFault, ProcessAction, ProcessFault};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::inject::{Applied, InjectError, Injector, Plan};

/// The kernel marks its own threads with this flag in `/proc/<pid>/stat` (PF_KTHREAD).
const PF_KTHREAD: u64 = 0x0020_0000;

/// One line of `/proc/<pid>/stat`, the fields the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub pgrp: i32,
    pub flags: u64,
    /// User and system CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start time in clock ticks since boot: with the pid, it identifies one process for good.
    pub start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name sits in parentheses and may itself
/// contain spaces and parentheses, so the fields after it are found from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // `rest[0]` is field 3 (state); field N is `rest[N - 3]`.
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcStat {
        pid,
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

pub(crate) fn read_stat(pid: u32) -> io::Result<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unparsable /proc/{pid}/stat"),
        )
    })
}

/// The pids listed in `/proc` (processes, not threads).
pub(crate) fn list_pids() -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The process `pid` if it still is the one that started at `start_time` (and is not a zombie).
pub(crate) fn same_process(pid: u32, start_time: u64) -> Option<ProcStat> {
    read_stat(pid)
        .ok()
        .filter(|stat| stat.start_time == start_time && stat.state != 'Z' && stat.state != 'X')
}

/// A process as seen when selecting targets.
#[derive(Debug, Clone)]
pub(crate) struct ProcInfo {
    pub stat: ProcStat,
    /// Arguments joined with spaces (the NULs of `/proc/<pid>/cmdline`).
    pub cmdline: String,
    /// File name of `/proc/<pid>/exe`, when readable.
    pub exe_name: Option<String>,
}

fn read_proc_info(pid: u32) -> Option<ProcInfo> {
    let stat = read_stat(pid).ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let exe_name = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        // A replaced binary reads as `name (deleted)`.
        .map(|name| name.trim_end_matches(" (deleted)").to_string());
    Some(ProcInfo {
        stat,
        cmdline,
        exe_name,
    })
}

/// What to select by.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    Pid(u32),
    Name(String),
    Pattern(regex_lite::Regex),
}

impl Selector {
    pub(crate) fn from_fault(fault: &ProcessFault) -> Result<Self, InjectError> {
        match (&fault.pid, &fault.name, &fault.pattern) {
            (Some(pid), None, None) => Ok(Selector::Pid(*pid)),
            (None, Some(name), None) if !name.is_empty() => Ok(Selector::Name(name.clone())),
            (None, None, Some(pattern)) if !pattern.is_empty() => regex_lite::Regex::new(pattern)
                .map(Selector::Pattern)
                .map_err(|e| InjectError::Invalid(format!("pattern {pattern:?}: {e}"))),
            _ => Err(InjectError::Invalid(
                "a process fault needs exactly one of pid, name or pattern (non-empty)".to_string(),
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Selector::Pid(pid) => format!("pid {pid}"),
            Selector::Name(name) => format!("name {name:?}"),
            Selector::Pattern(re) => format!("pattern {:?}", re.as_str()),
        }
    }
}

/// Picks the targets among `procs`. `own_pid` (the agent) is never picked by name or pattern,
/// nor are pid 1, kernel threads and zombies.
pub(crate) fn select(selector: &Selector, procs: &[ProcInfo], own_pid: u32) -> Vec<ProcStat> {
    let eligible = |p: &&ProcInfo| {
        p.stat.pid != own_pid
            && p.stat.pid != 1
            && p.stat.flags & PF_KTHREAD == 0
            && p.stat.state != 'Z'
            && p.stat.state != 'X'
    };
    let matches = |p: &&ProcInfo| match selector {
        Selector::Pid(pid) => p.stat.pid == *pid,
        Selector::Name(name) => &p.stat.comm == name || p.exe_name.as_deref() == Some(name),
        Selector::Pattern(re) => re.is_match(&p.cmdline),
    };
    let mut out: Vec<ProcStat> = procs
        .iter()
        .filter(eligible)
        .filter(matches)
        .map(|p| p.stat.clone())
        .collect();
    out.sort_by_key(|s| s.pid);
    out
}

/// One resolved target, journalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub pid: u32,
    pub start_time: u64,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProcessUndo {
    action: ProcessAction,
    signal: i32,
    targets: Vec<Target>,
}

/// The `process` injector.
#[derive(Debug, Default)]
pub struct ProcessInjector;

impl ProcessInjector {
    pub fn new() -> Self {
        ProcessInjector
    }
}

fn undo_of(plan: &Plan) -> Result<ProcessUndo, InjectError> {
    serde_json::from_value(plan.undo.clone()).map_err(|e| {
        InjectError::Invalid(format!("process plan {}: bad undo record: {e}", plan.id))
    })
}

fn signal_of(number: i32) -> Result<Signal, InjectError> {
    Signal::try_from(number)
        .map_err(|_| InjectError::Invalid(format!("signal {number} is not a valid signal number")))
}

/// Sends `signal` to `target` if it is still the same process. Returns whether it was sent.
fn signal_target(target: &Target, signal: Signal) -> Result<bool, InjectError> {
    if same_process(target.pid, target.start_time).is_none() {
        tracing::info!(
            pid = target.pid,
            comm = %target.comm,
            "process is gone (or its pid was reused); not signalling it"
        );
        return Ok(false);
    }
    match kill(Pid::from_raw(target.pid as i32), signal) {
        Ok(()) => Ok(true),
        // It exited between the check and the signal.
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(InjectError::io(
            format!("sending {signal} to pid {} ({})", target.pid, target.comm),
            io::Error::from(e),
        )),
    }
}

impl Injector for ProcessInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::Process(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let AgentFault::Process(fault) = fault else {
            return Err(InjectError::Invalid("not a process fault".to_string()));
        };
        let selector = Selector::from_fault(fault)?;
        if let Selector::Pid(1) = selector {
            return Err(InjectError::Invalid(
                "refusing to signal pid 1 (init): stopping or killing it takes the whole host or \
                 container down"
                    .to_string(),
            ));
        }
        let own_pid = std::process::id();
        let targets_self = matches!(selector, Selector::Pid(pid) if pid == own_pid);
        if targets_self && fault.action == ProcessAction::Stop {
            // A stopped agent could never run the SIGCONT that ends the fault, nor its lease.
            return Err(InjectError::Invalid(format!(
                "pid {own_pid} is the agent itself; stopping it would leave nobody to continue it"
            )));
        }
        let signal = match fault.action {
            ProcessAction::Kill => fault.signal.unwrap_or(Signal::SIGKILL as i32),
            ProcessAction::Stop => Signal::SIGSTOP as i32,
        };
        signal_of(signal)?;
        let procs: Vec<ProcInfo> = match selector {
            Selector::Pid(pid) => read_proc_info(pid).into_iter().collect(),
            _ => list_pids()
                .map_err(|e| InjectError::io("listing /proc", e))?
                .into_iter()
                .filter_map(read_proc_info)
                .collect(),
        };
        // Killing the agent by its explicit pid is allowed (it tests that the agent comes back
        // and cleans up from its journal); by name or pattern it is never selected.
        let exclude = if targets_self { 0 } else { own_pid };
        let targets: Vec<Target> = select(&selector, &procs, exclude)
            .into_iter()
            .map(|s| Target {
                pid: s.pid,
                start_time: s.start_time,
                comm: s.comm,
            })
            .collect();
        if targets.is_empty() {
            return Err(InjectError::Invalid(format!(
                "no process matches {} (the agent itself, pid 1, kernel threads and zombies are \
                 never targets)",
                selector.describe()
            )));
        }
        let mechanism = match fault.action {
            ProcessAction::Kill => "signal",
            ProcessAction::Stop => "sigstop",
        };
        let undo = ProcessUndo {
            action: fault.action,
            signal,
            targets,
        };
        Ok(Plan {
            id: id.to_string(),
            mechanism: mechanism.to_string(),
            undo: serde_json::to_value(&undo)
                .map_err(|e| InjectError::Failed(format!("encoding process plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        let undo = undo_of(plan)?;
        let signal = signal_of(undo.signal)?;
        let mut sent = 0usize;
        for target in &undo.targets {
            if signal_target(target, signal)? {
                sent += 1;
                tracing::info!(
                    fault_id = %plan.id,
                    pid = target.pid,
                    comm = %target.comm,
                    signal = %signal,
                    "signalled process"
                );
            }
        }
        if sent == 0 {
            return Err(InjectError::Failed(format!(
                "none of the {} planned processes is still running",
                undo.targets.len()
            )));
        }
        Ok(Applied::nothing_running())
    }

    fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
        let undo = undo_of(plan)?;
        match undo.action {
            // Every planned process that still exists must be stopped (state T). One that exited
            // meanwhile no longer needs stopping. SIGSTOP is delivered asynchronously (a process
            // that is running on another core stops at its next return to user space), so give
            // the kernel a moment before calling it a failure.
            ProcessAction::Stop => {
                let deadline = Instant::now() + Duration::from_secs(1);
                loop {
                    let stopped = undo.targets.iter().all(|t| {
                        same_process(t.pid, t.start_time).is_none_or(|stat| stat.state == 'T')
                    });
                    if stopped || Instant::now() >= deadline {
                        return Ok(stopped);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // After SIGKILL the targets must be gone; the kernel may still be tearing them down,
            // so give it a moment. Other signals may legitimately be caught or ignored: having
            // delivered them is all there is to confirm.
            ProcessAction::Kill if undo.signal == Signal::SIGKILL as i32 => {
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    let alive = undo
                        .targets
                        .iter()
                        .any(|t| same_process(t.pid, t.start_time).is_some());
                    if !alive {
                        return Ok(true);
                    }
                    if Instant::now() >= deadline {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            ProcessAction::Kill => Ok(true),
        }
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo = undo_of(plan)?;
        if undo.action != ProcessAction::Stop {
            // A kill cannot be undone; there is nothing to restore.
            return Ok(());
        }
        for target in &undo.targets {
            if signal_target(target, Signal::SIGCONT)? {
                tracing::info!(
                    fault_id = %plan.id,
                    pid = target.pid,
                    comm = %target.comm,
                    "continued stopped process"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, comm: &str, cmdline: &str, flags: u64, state: char) -> ProcInfo {
        ProcInfo {
            stat: ProcStat {
                pid,
                comm: comm.to_string(),
                state,
                ppid: 1,
                pgrp: pid as i32,
                flags,
                utime: 0,
                stime: 0,
                start_time: 1000 + u64::from(pid),
            },
            cmdline: cmdline.to_string(),
            exe_name: Some(comm.to_string()),
        }
    }

    #[test]
    fn parses_stat_with_spaces_and_parens_in_comm() {
        let text = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
                    123456 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.comm, "my (odd) proc");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.utime, 7);
        assert_eq!(stat.stime, 3);
        assert_eq!(stat.start_time, 123456);
    }

    #[test]
    fn parses_own_stat() {
        let stat = read_stat(std::process::id()).unwrap();
        assert_eq!(stat.pid, std::process::id());
        assert!(stat.start_time > 0);
    }

    #[test]
    fn selection_skips_agent_init_kernel_threads_and_zombies() {
        let procs = vec![
            info(1, "worker", "/sbin/init", 0, 'S'),
            info(2, "worker", "", PF_KTHREAD, 'S'),
            info(10, "worker", "worker --a", 0, 'S'),
            info(11, "worker", "worker --b", 0, 'Z'),
            info(12, "worker", "worker --c", 0, 'S'),
            info(13, "other", "other worker", 0, 'S'),
        ];
        let name = Selector::Name("worker".to_string());
        let pids: Vec<u32> = select(&name, &procs, 12).iter().map(|s| s.pid).collect();
        assert_eq!(pids, vec![10]);
        let pattern = Selector::Pattern(regex_lite::Regex::new("worker").unwrap());
        let pids: Vec<u32> = select(&pattern, &procs, 999)
            .iter()
            .map(|s| s.pid)
            .collect();
        assert_eq!(pids, vec![10, 12, 13]);
    }

    #[test]
    fn selector_needs_exactly_one_criterion() {
        let mut fault = ProcessFault {
            action: ProcessAction::Kill,
            pid: Some(5),
            name: Some("x".to_string()),
            pattern: None,
            signal: None,
        };
        assert!(Selector::from_fault(&fault).is_err());
        fault.name = None;
        assert!(Selector::from_fault(&fault).is_ok());
        fault.pid = None;
        assert!(Selector::from_fault(&fault).is_err());
        fault.pattern = Some("(".to_string());
        assert!(Selector::from_fault(&fault).is_err());
    }

    #[test]
    fn refuses_pid_one_and_self() {
        let injector = ProcessInjector::new();
        let fault = |pid| {
            AgentFault::Process(ProcessFault {
                action: ProcessAction::Stop,
                pid: Some(pid),
                name: None,
                pattern: None,
                signal: None,
            })
        };
        let err = injector.plan("f", &fault(1)).unwrap_err().to_string();
        assert!(err.contains("pid 1"), "{err}");
        let err = injector
            .plan("f", &fault(std::process::id()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("agent itself"), "{err}");
        // Killing the agent by its explicit pid is planned (not applied here).
        let kill_self = AgentFault::Process(ProcessFault {
            action: ProcessAction::Kill,
            pid: Some(std::process::id()),
            name: None,
            pattern: None,
            signal: None,
        });
        let plan = injector.plan("f", &kill_self).unwrap();
        assert_eq!(plan.undo["targets"][0]["pid"], std::process::id());
    }
}
