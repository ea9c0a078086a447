//! CPU and memory stress.
//!
//! Two mechanisms, chosen at plan time and recorded in `Plan::mechanism`:
//! - `threads` (the default): worker threads inside the agent. A CPU worker runs a duty cycle in
//!   100 ms windows, spinning until its *own* CPU time (the thread CPU clock) reaches
//!   `load_pct` of the wall time since it started, then sleeping to the end of the window. Because
//!   it counts CPU time rather than wall time, a worker that lost the CPU to other processes for a
//!   moment makes up for it in the next windows (at most 200 ms of CPU), so the load it delivers
//!   is the load asked for, not less on a busy host. A memory worker allocates the bytes, writes
//!   every page so they are resident, and touches one byte per page every second so they stay so.
//! - `stress-ng` (when the injector prefers it and it is installed): `stress-ng --cpu N
//!   --cpu-load P` and `stress-ng --vm W --vm-bytes X --vm-keep`, started as child processes in
//!   their own process group, through `setpriv --pdeathsig KILL` when available so that they die
//!   with the agent. Their pids and start times go into `Applied::undo_update`, so a restarted
//!   agent kills leftovers (and never an unrelated process that got a recycled pid).
//!
//! The worker's `measured()` is the CPU load in percent of one core per worker, averaged over
//! the stress workers and measured from their own CPU time (thread CPU clocks, or `utime+stime`
//! of the stress-ng processes in `/proc`) — never from the machine's total, which other
//! processes share. A memory-only fault measures the bytes held (touched in-process, or the
//! VmRSS of the stress-ng workers).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::{AgentFault, CpuStress, MemoryStress, StressFault};
use nix::sys::signal::{kill, killpg, Signal};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::inject::{short_id, Applied, InjectError, Injector, Plan, Worker};
use crate::process::{list_pids, read_stat, same_process, ProcStat};

/// Length of one duty-cycle window of a CPU worker.
const CPU_WINDOW: Duration = Duration::from_millis(100);
/// A CPU worker that fell behind catches up at most this much CPU time.
const CPU_MAX_DEBT_SECS: f64 = 0.2;
/// Memory workers touch their pages this often so they stay resident.
const MEMORY_TOUCH_INTERVAL: Duration = Duration::from_secs(1);
const PAGE: usize = 4096;
/// `measured()` averages over windows of at least this long.
const MEASURE_WINDOW: Duration = Duration::from_secs(1);

pub const MECHANISM_THREADS: &str = "threads";
pub const MECHANISM_STRESS_NG: &str = "stress-ng";

/// Looks `program` up in `PATH`.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether stress-ng is installed (reported among the agent's mechanisms).
pub fn stress_ng_available() -> bool {
    find_in_path("stress-ng").is_some()
}

/// One stress-ng process started by the agent, journalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnedProcess {
    pub pid: u32,
    pub start_time: u64,
}

/// The journalled record of a stress fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StressUndo {
    /// CPU workers and memory bytes decided at plan time (memory percent resolved).
    #[serde(default)]
    pub cpu_workers: u32,
    #[serde(default)]
    pub cpu_load_pct: u32,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub memory_workers: u32,
    /// stress-ng leaders (process-group leaders) started by `apply`; empty for threads.
    #[serde(default)]
    pub processes: Vec<SpawnedProcess>,
    /// stress-ng's log file, removed with the fault.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
}

/// Live state of one applied fault, shared by its worker and the injector (for `verify`).
#[derive(Debug, Default)]
struct LiveState {
    stop: AtomicBool,
    /// Threads still running.
    running: AtomicUsize,
    expected_threads: usize,
    /// Bytes allocated and touched by memory threads.
    memory_held: AtomicU64,
}

type Registry = Arc<Mutex<HashMap<String, Arc<LiveState>>>>;

/// Starts child processes from one long-lived thread.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. The
/// daemon may call `apply` from short-lived threads (a runtime's blocking pool retires idle
/// threads), which would kill the stress-ng children early; forking them all from this thread,
/// which lives as long as the injector, avoids that. The daemon keeps its injectors for its whole
/// life; dropping the injector ends the thread and so kills the children it started.
///
/// The thread starts with the first child, not with the injector: an agent that never runs
/// stress-ng does not keep an idle thread (its stack and malloc arena) for it.
#[derive(Default)]
struct Spawner {
    requests: Mutex<Option<SpawnRequests>>,
}

type SpawnRequests = mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>;

impl Spawner {
    /// The running thread's request queue, starting the thread if this is the first child.
    fn requests(&self) -> std::io::Result<SpawnRequests> {
        let mut requests = self
            .requests
            .lock()
            .map_err(|_| std::io::Error::other("spawner lock poisoned"))?;
        if let Some(sender) = requests.as_ref() {
            return Ok(sender.clone());
        }
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::Builder::new()
            .name("stress-spawner".to_string())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .map_err(|e| {
                std::io::Error::other(format!("cannot start the stress-ng spawner thread: {e}"))
            })?;
        *requests = Some(tx.clone());
        Ok(tx)
    }

    fn spawn(&self, command: Command) -> std::io::Result<Child> {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.requests()?
            .send((command, reply_tx))
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
        reply_rx
            .recv()
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
    }
}

/// The `stress` injector.
pub struct StressInjector {
    prefer_stress_ng: bool,
    state_dir: PathBuf,
    registry: Registry,
    spawner: Spawner,
}

impl std::fmt::Debug for StressInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StressInjector")
            .field("prefer_stress_ng", &self.prefer_stress_ng)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl StressInjector {
    /// `prefer_stress_ng`: use stress-ng when installed (else threads). `state_dir` holds
    /// stress-ng's log and temporary files.
    pub fn new(prefer_stress_ng: bool, state_dir: impl Into<PathBuf>) -> Self {
        StressInjector {
            prefer_stress_ng,
            state_dir: state_dir.into(),
            registry: Arc::default(),
            spawner: Spawner::default(),
        }
    }
}

fn stress_of(fault: &AgentFault) -> Result<&StressFault, InjectError> {
    match fault {
        AgentFault::Stress(s) => Ok(s),
        _ => Err(InjectError::Invalid("not a stress fault".to_string())),
    }
}

fn undo_of(plan: &Plan) -> Result<StressUndo, InjectError> {
    serde_json::from_value(plan.undo.clone())
        .map_err(|e| InjectError::Invalid(format!("stress plan {}: bad undo record: {e}", plan.id)))
}

fn validate_cpu(cpu: &CpuStress) -> Result<(), InjectError> {
    if cpu.workers == 0 || cpu.workers > 1024 {
        return Err(InjectError::Invalid(format!(
            "stress cpu: workers must be 1–1024, got {}",
            cpu.workers
        )));
    }
    if cpu.load_pct == 0 || cpu.load_pct > 100 {
        return Err(InjectError::Invalid(format!(
            "stress cpu: loadPct must be 1–100, got {}",
            cpu.load_pct
        )));
    }
    Ok(())
}

/// The bytes a memory stress asks for, checked against what the host can give without the
/// OOM killer picking a victim (possibly the agent itself).
fn memory_bytes(memory: &MemoryStress) -> Result<u64, InjectError> {
    let info = crate::node_metrics::read_meminfo()
        .map_err(|e| InjectError::io("reading /proc/meminfo", e))?;
    let bytes = match (memory.size_bytes, memory.percent) {
        (Some(size), None) => size,
        (None, Some(pct)) if pct > 0.0 && pct <= 100.0 => {
            (info.total_bytes as f64 * pct / 100.0) as u64
        }
        (None, Some(pct)) => {
            return Err(InjectError::Invalid(format!(
                "stress memory: percent must be in (0, 100], got {pct}"
            )))
        }
        _ => {
            return Err(InjectError::Invalid(
                "stress memory: give exactly one of sizeBytes or percent".to_string(),
            ))
        }
    };
    if bytes == 0 {
        return Err(InjectError::Invalid(
            "stress memory: the size is 0 bytes".to_string(),
        ));
    }
    if bytes > info.available_bytes {
        return Err(InjectError::Invalid(format!(
            "stress memory: {bytes} bytes requested but only {} bytes are available; asking for \
             more would wake the OOM killer",
            info.available_bytes
        )));
    }
    if memory.workers == 0 || memory.workers > 1024 {
        return Err(InjectError::Invalid(format!(
            "stress memory: workers must be 1–1024, got {}",
            memory.workers
        )));
    }
    Ok(bytes)
}

fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// One CPU worker's loop; `used_ns` publishes its CPU time for `measured()`.
fn cpu_worker(load: f64, live: &LiveState, used_ns: &AtomicU64) {
    let start = Instant::now();
    let cpu_start = thread_cpu_time();
    let used = || thread_cpu_time().saturating_sub(cpu_start).as_secs_f64();
    // CPU time forgiven because the worker could not get it (bounded catch-up).
    let mut forgiven = 0.0f64;
    let mut window_end = start + CPU_WINDOW;
    while !live.stop.load(Ordering::Relaxed) {
        let now_used = used();
        used_ns.store((now_used * 1e9) as u64, Ordering::Relaxed);
        let mut target = load * window_end.duration_since(start).as_secs_f64() - forgiven;
        if target - now_used > CPU_MAX_DEBT_SECS {
            forgiven += target - now_used - CPU_MAX_DEBT_SECS;
            target = now_used + CPU_MAX_DEBT_SECS;
        }
        while Instant::now() < window_end && used() < target {
            for _ in 0..200 {
                std::hint::spin_loop();
            }
            if live.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let now = Instant::now();
        if now < window_end {
            std::thread::sleep(window_end - now);
        }
        window_end += CPU_WINDOW;
    }
    used_ns.store((used() * 1e9) as u64, Ordering::Relaxed);
}

/// Allocates `bytes` and writes every page, so the memory is resident, not just reserved.
fn allocate_resident(bytes: u64) -> Result<Vec<u8>, InjectError> {
    let len = usize::try_from(bytes)
        .map_err(|_| InjectError::Invalid(format!("{bytes} bytes do not fit in memory")))?;
    let mut block = Vec::new();
    block
        .try_reserve_exact(len)
        .map_err(|e| InjectError::Failed(format!("allocating {bytes} bytes: {e}")))?;
    block.resize(len, 0xa5);
    std::hint::black_box(&mut block);
    Ok(block)
}

fn memory_worker(mut blocks: Vec<Vec<u8>>, live: &LiveState) {
    let mut next_touch = Instant::now() + MEMORY_TOUCH_INTERVAL;
    let mut round: u8 = 0;
    while !live.stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_touch {
            round = round.wrapping_add(1);
            for block in &mut blocks {
                for byte in block.iter_mut().step_by(PAGE) {
                    *byte = round;
                }
                std::hint::black_box(&mut *block);
            }
            next_touch = Instant::now() + MEMORY_TOUCH_INTERVAL;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    live.memory_held.store(0, Ordering::Relaxed);
    drop(blocks);
}

/// Averages a CPU-seconds counter over windows of at least [`MEASURE_WINDOW`].
#[derive(Debug)]
struct LoadSampler {
    workers: f64,
    state: Mutex<(Instant, f64, Option<f64>)>,
}

impl LoadSampler {
    fn new(workers: u32) -> Self {
        LoadSampler {
            workers: f64::from(workers.max(1)),
            state: Mutex::new((Instant::now(), 0.0, None)),
        }
    }

    /// Percent of one core per worker, given the workers' total CPU seconds now.
    fn sample(&self, cpu_secs: f64) -> Option<f64> {
        let mut state = self.state.lock().ok()?;
        let (since, base, last) = *state;
        let elapsed = since.elapsed();
        let load = |secs: f64| ((cpu_secs - base) / secs / self.workers * 100.0).max(0.0);
        if elapsed >= MEASURE_WINDOW {
            let value = load(elapsed.as_secs_f64());
            *state = (Instant::now(), cpu_secs, Some(value));
            return Some(value);
        }
        match last {
            Some(value) => Some(value),
            None if elapsed >= Duration::from_millis(100) => Some(load(elapsed.as_secs_f64())),
            None => None,
        }
    }
}

/// In-process stress threads.
struct ThreadsWorker {
    id: String,
    live: Arc<LiveState>,
    registry: Registry,
    handles: Vec<JoinHandle<()>>,
    cpu_used: Vec<Arc<AtomicU64>>,
    sampler: Option<LoadSampler>,
}

impl ThreadsWorker {
    fn shutdown(&mut self) {
        self.live.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
        if let Ok(mut registry) = self.registry.lock() {
            registry.remove(&self.id);
        }
    }
}

impl Drop for ThreadsWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Worker for ThreadsWorker {
    fn is_alive(&self) -> bool {
        self.live.running.load(Ordering::Relaxed) == self.live.expected_threads
    }

    fn measured(&self) -> Option<f64> {
        match &self.sampler {
            Some(sampler) => {
                let total: u64 = self
                    .cpu_used
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum();
                sampler.sample(total as f64 / 1e9)
            }
            None => Some(self.live.memory_held.load(Ordering::Relaxed) as f64),
        }
    }

    fn stop(mut self: Box<Self>) {
        self.shutdown();
    }
}

/// Stress-ng child processes.
struct StressNgWorker {
    children: Vec<Child>,
    cpu_leader: Option<u32>,
    memory_leader: Option<u32>,
    sampler: Option<LoadSampler>,
    clock_ticks: f64,
}

impl StressNgWorker {
    fn shutdown(&mut self) {
        for child in &mut self.children {
            let leader = child.id();
            for pid in descendants(leader) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = killpg(Pid::from_raw(leader as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for StressNgWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Worker for StressNgWorker {
    fn is_alive(&self) -> bool {
        !self.children.is_empty()
            && self
                .children
                .iter()
                .all(|c| read_stat(c.id()).is_ok_and(|s| s.state != 'Z'))
    }

    fn measured(&self) -> Option<f64> {
        if let (Some(sampler), Some(leader)) = (&self.sampler, self.cpu_leader) {
            let ticks: u64 = descendants(leader)
                .into_iter()
                .filter_map(|pid| read_stat(pid).ok())
                .map(|s| s.utime + s.stime)
                .sum();
            return sampler.sample(ticks as f64 / self.clock_ticks);
        }
        let leader = self.memory_leader?;
        let rss: u64 = descendants(leader)
            .into_iter()
            .filter_map(|pid| vm_rss_bytes(pid).ok())
            .sum();
        Some(rss as f64)
    }

    fn stop(mut self: Box<Self>) {
        self.shutdown();
    }
}

fn vm_rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(kib * 1024)
}

/// All live descendants of `root` (not `root` itself).
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let stats: Vec<ProcStat> = list_pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| read_stat(pid).ok())
        .collect();
    let mut found: HashSet<u32> = HashSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for stat in stats.iter().filter(|s| s.ppid == parent) {
            if found.insert(stat.pid) {
                frontier.push(stat.pid);
            }
        }
    }
    let mut out: Vec<u32> = found.into_iter().collect();
    out.sort_unstable();
    out
}

fn clock_ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .unwrap_or(100.0)
}

/// Kills one recorded stress-ng leader and its workers, checking identities first.
fn kill_spawned(process: &SpawnedProcess) {
    if same_process(process.pid, process.start_time).is_some() {
        let members = descendants(process.pid);
        let _ = kill(Pid::from_raw(process.pid as i32), Signal::SIGKILL);
        for pid in members {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    // Workers whose leader is already gone keep the leader's process group. Only processes that
    // started after the leader and are stress-ng's own are taken, so a recycled group id never
    // leads to an unrelated process.
    for pid in list_pids().unwrap_or_default() {
        if let Ok(stat) = read_stat(pid) {
            if stat.pgrp == process.pid as i32
                && stat.start_time >= process.start_time
                && stat.comm.starts_with("stress-ng")
                && stat.state != 'Z'
            {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

impl StressInjector {
    fn log_path(&self, id: &str) -> PathBuf {
        self.state_dir
            .join(format!("stress-ng-{}.log", short_id(id)))
    }

    fn apply_threads(&self, plan: &Plan, undo: &StressUndo) -> Result<Applied, InjectError> {
        let tag: String = short_id(&plan.id).chars().take(8).collect();
        let mut live = LiveState {
            expected_threads: undo.cpu_workers as usize,
            ..LiveState::default()
        };
        // Threads count as running from the start (each one decrements on exit), so `verify`
        // right after `apply` does not race the threads' start-up.
        // Allocate before starting anything, so a failed allocation leaves nothing behind.
        let mut memory_blocks = Vec::new();
        if undo.memory_bytes > 0 {
            let workers = u64::from(undo.memory_workers.max(1));
            let each = undo.memory_bytes / workers;
            let mut remainder = undo.memory_bytes % workers;
            for _ in 0..workers {
                let extra = u64::from(remainder > 0);
                remainder = remainder.saturating_sub(1);
                memory_blocks.push(allocate_resident(each + extra)?);
            }
            live.expected_threads += 1;
            live.memory_held = AtomicU64::new(undo.memory_bytes);
        }
        live.running = AtomicUsize::new(live.expected_threads);
        let live = Arc::new(live);
        let mut worker = ThreadsWorker {
            id: plan.id.clone(),
            live: Arc::clone(&live),
            registry: Arc::clone(&self.registry),
            handles: Vec::new(),
            cpu_used: Vec::new(),
            sampler: (undo.cpu_workers > 0).then(|| LoadSampler::new(undo.cpu_workers)),
        };
        let load = f64::from(undo.cpu_load_pct) / 100.0;
        for n in 0..undo.cpu_workers {
            let used = Arc::new(AtomicU64::new(0));
            worker.cpu_used.push(Arc::clone(&used));
            let live = Arc::clone(&live);
            let handle = std::thread::Builder::new()
                // The thread name is its /proc comm (15 bytes at most): `cpu<tag>-<n>`.
                .name(format!("cpu{tag}-{n}"))
                .spawn(move || {
                    cpu_worker(load, &live, &used);
                    live.running.fetch_sub(1, Ordering::Relaxed);
                })
                .map_err(|e| InjectError::io("starting a CPU stress thread", e))?;
            worker.handles.push(handle);
        }
        if !memory_blocks.is_empty() {
            let live = Arc::clone(&live);
            let handle = std::thread::Builder::new()
                .name(format!("mem{tag}"))
                .spawn(move || {
                    memory_worker(memory_blocks, &live);
                    live.running.fetch_sub(1, Ordering::Relaxed);
                })
                .map_err(|e| InjectError::io("starting the memory stress thread", e))?;
            worker.handles.push(handle);
        }
        if let Ok(mut registry) = self.registry.lock() {
            registry.insert(plan.id.clone(), live);
        }
        tracing::info!(
            fault_id = %plan.id,
            cpu_workers = undo.cpu_workers,
            cpu_load_pct = undo.cpu_load_pct,
            memory_bytes = undo.memory_bytes,
            "stress threads started"
        );
        Ok(Applied {
            worker: Some(Box::new(worker)),
            undo_update: None,
        })
    }

    fn start_stress_ng(
        &self,
        stress_ng: &Path,
        args: &[String],
        log: &File,
    ) -> Result<Child, InjectError> {
        use std::os::unix::process::CommandExt;
        let mut command = match find_in_path("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(stress_ng);
                c
            }
            None => {
                tracing::warn!(
                    "setpriv not found; stress-ng will not die with the agent by itself"
                );
                Command::new(stress_ng)
            }
        };
        let stderr = log
            .try_clone()
            .map_err(|e| InjectError::io("duplicating the stress-ng log handle", e))?;
        let stdout = log
            .try_clone()
            .map_err(|e| InjectError::io("duplicating the stress-ng log handle", e))?;
        command
            .args(args)
            .current_dir(&self.state_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        self.spawner
            .spawn(command)
            .map_err(|e| InjectError::io(format!("starting stress-ng {}", args.join(" ")), e))
    }

    fn apply_stress_ng(&self, plan: &Plan, undo: &StressUndo) -> Result<Applied, InjectError> {
        let stress_ng = find_in_path("stress-ng").ok_or_else(|| InjectError::Unsupported {
            feature: "stress-ng".to_string(),
            message: "the plan chose stress-ng but it is no longer installed".to_string(),
        })?;
        std::fs::create_dir_all(&self.state_dir)
            .map_err(|e| InjectError::io(format!("creating {}", self.state_dir.display()), e))?;
        let log_path = self.log_path(&plan.id);
        let log = File::create(&log_path)
            .map_err(|e| InjectError::io(format!("creating {}", log_path.display()), e))?;
        let temp = self.state_dir.display().to_string();
        let mut runs: Vec<(&str, Vec<String>)> = Vec::new();
        if undo.cpu_workers > 0 {
            runs.push((
                "cpu",
                vec![
                    "--cpu".into(),
                    undo.cpu_workers.to_string(),
                    "--cpu-load".into(),
                    undo.cpu_load_pct.to_string(),
                    // Short busy slices (50 ms) give a smooth load like the threads' 100 ms
                    // windows; stress-ng's default picks random slices of up to 0.5 s.
                    "--cpu-load-slice".into(),
                    "50".into(),
                    "--timeout".into(),
                    "0".into(),
                    "--temp-path".into(),
                    temp.clone(),
                ],
            ));
        }
        if undo.memory_bytes > 0 {
            let workers = undo.memory_workers.max(1);
            let each = undo.memory_bytes.div_ceil(u64::from(workers));
            runs.push((
                "memory",
                vec![
                    "--vm".into(),
                    workers.to_string(),
                    "--vm-bytes".into(),
                    format!("{each}"),
                    "--vm-keep".into(),
                    "--timeout".into(),
                    "0".into(),
                    "--temp-path".into(),
                    temp.clone(),
                ],
            ));
        }
        let mut worker = StressNgWorker {
            children: Vec::new(),
            cpu_leader: None,
            memory_leader: None,
            sampler: (undo.cpu_workers > 0).then(|| LoadSampler::new(undo.cpu_workers)),
            clock_ticks: clock_ticks_per_sec(),
        };
        let mut spawned = Vec::new();
        for (kind, args) in &runs {
            // On error `worker` is dropped, which kills what already started.
            let child = self.start_stress_ng(&stress_ng, args, &log)?;
            let pid = child.id();
            let start_time = read_stat(pid).map(|s| s.start_time).unwrap_or(0);
            spawned.push(SpawnedProcess { pid, start_time });
            match *kind {
                "cpu" => worker.cpu_leader = Some(pid),
                _ => worker.memory_leader = Some(pid),
            }
            worker.children.push(child);
            tracing::info!(fault_id = %plan.id, pid, args = %args.join(" "), "stress-ng started");
        }
        // A bad option or a missing stressor makes stress-ng exit at once; say so now rather
        // than report a fault that is not there.
        std::thread::sleep(Duration::from_millis(300));
        for child in &mut worker.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(InjectError::Command {
                    command: "stress-ng".to_string(),
                    stderr: format!("exited at once with {status}: {}", log_text.trim()),
                });
            }
        }
        let mut updated = undo.clone();
        updated.processes = spawned;
        updated.log_file = Some(log_path);
        Ok(Applied {
            worker: Some(Box::new(worker)),
            undo_update: Some(
                serde_json::to_value(&updated)
                    .map_err(|e| InjectError::Failed(format!("encoding stress plan: {e}")))?,
            ),
        })
    }
}

impl Injector for StressInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::Stress(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let stress = stress_of(fault)?;
        if stress.cpu.is_none() && stress.memory.is_none() {
            return Err(InjectError::Invalid(
                "a stress fault needs cpu, memory or both".to_string(),
            ));
        }
        let mut undo = StressUndo::default();
        if let Some(cpu) = &stress.cpu {
            validate_cpu(cpu)?;
            undo.cpu_workers = cpu.workers;
            undo.cpu_load_pct = cpu.load_pct;
        }
        if let Some(memory) = &stress.memory {
            undo.memory_bytes = memory_bytes(memory)?;
            undo.memory_workers = memory.workers;
        }
        let mechanism = if self.prefer_stress_ng && stress_ng_available() {
            MECHANISM_STRESS_NG
        } else {
            MECHANISM_THREADS
        };
        Ok(Plan {
            id: id.to_string(),
            mechanism: mechanism.to_string(),
            undo: serde_json::to_value(&undo)
                .map_err(|e| InjectError::Failed(format!("encoding stress plan: {e}")))?,
        })
    }

    fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        let undo = undo_of(plan)?;
        match plan.mechanism.as_str() {
            MECHANISM_THREADS => self.apply_threads(plan, &undo),
            MECHANISM_STRESS_NG => self.apply_stress_ng(plan, &undo),
            other => Err(InjectError::Invalid(format!(
                "unknown stress mechanism {other:?}"
            ))),
        }
    }

    fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
        let undo = undo_of(plan)?;
        if plan.mechanism == MECHANISM_STRESS_NG && !undo.processes.is_empty() {
            return Ok(undo.processes.iter().all(|p| {
                same_process(p.pid, p.start_time).is_some() && !descendants(p.pid).is_empty()
            }));
        }
        let registry = self
            .registry
            .lock()
            .map_err(|_| InjectError::Failed("stress registry lock poisoned".to_string()))?;
        Ok(registry.get(&plan.id).is_some_and(|live| {
            live.running.load(Ordering::Relaxed) == live.expected_threads
                && live.memory_held.load(Ordering::Relaxed) >= undo.memory_bytes
        }))
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo = undo_of(plan)?;
        // Threads of a live worker are stopped by `Worker::stop`; after a restart they are gone
        // with the old process. Only stress-ng children can outlive the agent.
        if let Ok(registry) = self.registry.lock() {
            if let Some(live) = registry.get(&plan.id) {
                live.stop.store(true, Ordering::Relaxed);
            }
        }
        for process in &undo.processes {
            kill_spawned(process);
            tracing::info!(fault_id = %plan.id, pid = process.pid, "stress-ng stopped");
        }
        // The log's name is fixed by the id, so it is found even when apply failed before the
        // journal learned it.
        let log = undo
            .log_file
            .clone()
            .unwrap_or_else(|| self.log_path(&plan.id));
        match std::fs::remove_file(&log) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %log.display(), error = %e, "cannot remove stress-ng log")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_sampler_averages_over_a_window() {
        let sampler = LoadSampler::new(2);
        assert_eq!(sampler.sample(0.0), None);
        std::thread::sleep(Duration::from_millis(150));
        // 0.15 s of wall time, 0.15 s of CPU over 2 workers: 50 %.
        let value = sampler.sample(0.15).unwrap();
        assert!((40.0..60.0).contains(&value), "{value}");
    }

    #[test]
    fn plan_validates_cpu_parameters() {
        let injector = StressInjector::new(false, std::env::temp_dir());
        let fault = |workers, load_pct| {
            AgentFault::Stress(StressFault {
                cpu: Some(CpuStress { workers, load_pct }),
                memory: None,
            })
        };
        assert!(injector.plan("a", &fault(0, 50)).is_err());
        assert!(injector.plan("a", &fault(1, 0)).is_err());
        assert!(injector.plan("a", &fault(1, 101)).is_err());
        let plan = injector.plan("a", &fault(2, 50)).unwrap();
        assert_eq!(plan.mechanism, MECHANISM_THREADS);
    }

    #[test]
    fn plan_refuses_more_memory_than_available() {
        let injector = StressInjector::new(false, std::env::temp_dir());
        let fault = AgentFault::Stress(StressFault {
            cpu: None,
            memory: Some(MemoryStress {
                size_bytes: Some(u64::MAX / 2),
                percent: None,
                workers: 1,
            }),
        });
        let err = injector.plan("a", &fault).unwrap_err().to_string();
        assert!(err.contains("OOM"), "{err}");
    }
}
