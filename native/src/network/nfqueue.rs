//! The userspace packet engine used where `sch_netem` is missing (and for DNS faults): an
//! iptables rule sends the selected packets to an NFQUEUE, and a worker thread bound to that
//! queue inside the target namespace decides each packet's fate — hold it for its delay, drop
//! it, flip a bit, send a copy, rewrite a DNS answer — and then issues the verdict.
//!
//! Safety net: the rules use `--queue-bypass` and the queue is configured fail-open, so when the
//! worker is gone or overwhelmed packets flow normally instead of being black-holed.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nfq::{Message, Queue, Verdict};
use rand::Rng;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::netns;
use super::packet::{self, DnsRewrite};
use crate::inject::{InjectError, Worker};

/// Marks packets the engine itself sends (duplicates) so the queue rule skips them instead of
/// queueing them again. ASCII "chb" plus one.
pub const ENGINE_MARK: u32 = 0x6368_6201;

/// First queue number handed out to faults; the probe uses numbers below it.
const QUEUE_BASE: u16 = 0x1000;
const QUEUE_SPAN: u16 = 0x6000;
/// Kernel-side queue length: enough for 100 ms of delay at several thousand packets per second.
const QUEUE_MAX_LEN: u32 = 8192;

/// What the engine does with each queued packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PacketAction {
    Delay {
        latency_ms: f64,
        jitter_ms: f64,
        correlation_pct: f64,
    },
    Loss {
        percent: f64,
        correlation_pct: f64,
    },
    /// A copy of the chosen packets is re-sent through a raw socket (egress only).
    Duplicate {
        percent: f64,
        correlation_pct: f64,
    },
    Corrupt {
        percent: f64,
        correlation_pct: f64,
    },
    /// Packets are held `latency_ms`, except every `gap`-th one which, with probability
    /// `percent`, is released at once and so overtakes the held ones (netem's semantics).
    Reorder {
        latency_ms: f64,
        percent: f64,
        correlation_pct: f64,
        gap: u32,
    },
    /// DNS responses whose question matches a pattern are rewritten.
    Dns {
        patterns: Vec<String>,
        random: bool,
    },
}

impl PacketAction {
    fn needs_payload(&self) -> bool {
        matches!(
            self,
            PacketAction::Duplicate { .. }
                | PacketAction::Corrupt { .. }
                | PacketAction::Dns { .. }
        )
    }
}

/// The engine's part of a plan: which queue, what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineConfig {
    pub queue_num: u16,
    pub action: PacketAction,
}

/// Queue numbers in use by faults of this agent process.
static QUEUES: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Reserves a queue number for a fault: a stable choice from its short id, moved on to the next
/// free number when another fault of this agent holds it. Numbers are per namespace in the
/// kernel, but keeping them distinct agent-wide makes rules and logs unambiguous.
pub fn allocate_queue(short_id: &str) -> Result<u16, InjectError> {
    let seed = u16::from_str_radix(short_id.get(..4).unwrap_or("0"), 16).unwrap_or(0);
    let mut used = QUEUES
        .lock()
        .map_err(|_| InjectError::Failed("nfqueue allocator poisoned".into()))?;
    for step in 0..QUEUE_SPAN {
        let candidate = QUEUE_BASE + (seed.wrapping_add(step) % QUEUE_SPAN);
        if used.insert(candidate) {
            return Ok(candidate);
        }
    }
    Err(InjectError::Failed("no free NFQUEUE number".into()))
}

/// Marks a queue number as taken (a plan read back from the journal).
pub fn reserve_queue(num: u16) {
    if let Ok(mut used) = QUEUES.lock() {
        used.insert(num);
    }
}

pub fn release_queue(num: u16) {
    if let Ok(mut used) = QUEUES.lock() {
        used.remove(&num);
    }
}

/// Correlated random draws that keep their distribution: with probability `rho` a draw repeats
/// the previous outcome, otherwise it is fresh. netem's older scheme (a weighted mean of the
/// fresh and the last value) narrows the distribution, so a "30 % loss, 50 % correlation"
/// there loses far fewer than 30 % of packets; here the long-run rate stays the nominal one and
/// only the burstiness grows with the correlation.
struct Correlated {
    rho: f64,
    last_value: f64,
    last_hit: bool,
}

impl Correlated {
    fn new(correlation_pct: f64) -> Self {
        Correlated {
            rho: (correlation_pct / 100.0).clamp(0.0, 1.0),
            last_value: rand::rng().random(),
            last_hit: false,
        }
    }

    fn repeat(&self) -> bool {
        self.rho > 0.0 && rand::rng().random::<f64>() < self.rho
    }

    /// A uniform number in [0, 1).
    fn next(&mut self) -> f64 {
        if !self.repeat() {
            self.last_value = rand::rng().random();
        }
        self.last_value
    }

    /// A yes with probability `percent` %.
    fn chance(&mut self, percent: f64) -> bool {
        if !self.repeat() {
            self.last_hit = rand::rng().random::<f64>() < percent / 100.0;
        }
        self.last_hit
    }
}

struct Held {
    due: Instant,
    seq: u64,
    msg: Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    // Reversed so that the max-heap pops the earliest due packet first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

enum Fate {
    Accept,
    Drop,
    Hold(Duration),
}

/// Per-packet decision state.
struct Engine {
    action: PacketAction,
    rng: Correlated,
    counter: u64,
    raw4: Option<Socket>,
    raw6: Option<Socket>,
}

fn ms(value: f64) -> Duration {
    Duration::from_secs_f64((value.max(0.0)) / 1000.0)
}

impl Engine {
    fn new(action: PacketAction) -> Result<Self, InjectError> {
        let correlation = match &action {
            PacketAction::Delay {
                correlation_pct, ..
            }
            | PacketAction::Loss {
                correlation_pct, ..
            }
            | PacketAction::Duplicate {
                correlation_pct, ..
            }
            | PacketAction::Corrupt {
                correlation_pct, ..
            }
            | PacketAction::Reorder {
                correlation_pct, ..
            } => *correlation_pct,
            PacketAction::Dns { .. } => 0.0,
        };
        let (raw4, raw6) = if matches!(action, PacketAction::Duplicate { .. }) {
            (
                Some(raw_socket(Domain::IPV4)?),
                raw_socket(Domain::IPV6).ok(),
            )
        } else {
            (None, None)
        };
        Ok(Engine {
            rng: Correlated::new(correlation),
            action,
            counter: 0,
            raw4,
            raw6,
        })
    }

    fn decide(&mut self, msg: &mut Message) -> Fate {
        self.counter += 1;
        match &self.action {
            PacketAction::Delay {
                latency_ms,
                jitter_ms,
                ..
            } => {
                let offset = if *jitter_ms > 0.0 {
                    jitter_ms * (2.0 * self.rng.next() - 1.0)
                } else {
                    0.0
                };
                Fate::Hold(ms(latency_ms + offset))
            }
            PacketAction::Loss { percent, .. } => {
                if self.rng.chance(*percent) {
                    Fate::Drop
                } else {
                    Fate::Accept
                }
            }
            PacketAction::Duplicate { percent, .. } => {
                if self.rng.chance(*percent) {
                    self.send_copy(msg.get_payload());
                }
                Fate::Accept
            }
            PacketAction::Corrupt { percent, .. } => {
                if self.rng.chance(*percent) {
                    let mut rng = rand::rng();
                    packet::corrupt(msg.get_payload_mut(), |n| rng.random_range(0..n));
                }
                Fate::Accept
            }
            PacketAction::Reorder {
                latency_ms,
                percent,
                gap,
                ..
            } => {
                let gap = u64::from((*gap).max(1));
                // As netem: the first gap-1 packets of each run are delayed; the gap-th is a
                // candidate to go out at once.
                let position = self.counter % gap;
                if position == 0 && self.rng.chance(*percent) {
                    Fate::Accept
                } else {
                    Fate::Hold(ms(*latency_ms))
                }
            }
            PacketAction::Dns { patterns, random } => {
                let mode = if *random {
                    DnsRewrite::Random
                } else {
                    DnsRewrite::Error
                };
                let mut bytes = msg.get_payload().to_vec();
                let mut rng = rand::rng();
                if packet::rewrite_dns_response(&mut bytes, patterns, mode, &mut || rng.random()) {
                    tracing::debug!("dns response rewritten");
                    msg.set_payload(bytes);
                }
                Fate::Accept
            }
        }
    }

    fn send_copy(&self, bytes: &[u8]) {
        let Some(dest) = packet::destination(bytes) else {
            return;
        };
        let socket = match dest {
            std::net::IpAddr::V4(_) => self.raw4.as_ref(),
            std::net::IpAddr::V6(_) => self.raw6.as_ref(),
        };
        if let Some(socket) = socket {
            let addr = SockAddr::from(SocketAddr::new(dest, 0));
            if let Err(error) = socket.send_to(bytes, &addr) {
                tracing::debug!(%error, "cannot send duplicate packet");
            }
        }
    }
}

/// A raw socket that sends complete IP packets (IPPROTO_RAW implies the header is included),
/// marked so our own queue rule lets them through.
fn raw_socket(domain: Domain) -> Result<Socket, InjectError> {
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(255)))
        .map_err(|e| InjectError::io("cannot open raw socket for duplicates", e))?;
    socket
        .set_mark(ENGINE_MARK)
        .map_err(|e| InjectError::io("cannot mark raw socket", e))?;
    Ok(socket)
}

/// Shared between the worker thread and its handle.
struct Shared {
    stop: AtomicBool,
    alive: AtomicBool,
    packets: AtomicU64,
}

/// Liveness of a running engine, kept by the injector so `verify` can tell whether the worker
/// still delivers the fault.
#[derive(Clone)]
pub struct EngineHealth(Arc<Shared>);

impl EngineHealth {
    pub fn is_alive(&self) -> bool {
        self.0.alive.load(Ordering::SeqCst)
    }

    /// Asks the worker to release its packets and exit (removal without `Worker::stop`).
    pub fn request_stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// The worker handed to the daemon.
pub struct NfqueueWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    queue_num: u16,
}

impl NfqueueWorker {
    /// Starts the worker thread, enters `netns`, binds the queue, and returns once the queue is
    /// bound (so the rules that feed it can be added without a window where packets bypass it).
    pub fn start(netns: Option<String>, config: EngineConfig) -> Result<Self, InjectError> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            alive: AtomicBool::new(false),
            packets: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let queue_num = config.queue_num;
        let thread = std::thread::Builder::new()
            .name(format!("nfqueue-{queue_num}"))
            .spawn(move || run(netns, config, thread_shared, ready_tx))
            .map_err(|e| InjectError::io("cannot start nfqueue worker", e))?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(NfqueueWorker {
                shared,
                thread: Some(thread),
                queue_num,
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                shared.stop.store(true, Ordering::SeqCst);
                Err(InjectError::Failed(format!(
                    "nfqueue worker for queue {queue_num} did not start"
                )))
            }
        }
    }

    pub fn health(&self) -> EngineHealth {
        EngineHealth(Arc::clone(&self.shared))
    }
}

impl Worker for NfqueueWorker {
    fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }

    fn measured(&self) -> Option<f64> {
        Some(self.shared.packets.load(Ordering::Relaxed) as f64)
    }

    fn stop(mut self: Box<Self>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // The loop polls the flag at least every millisecond; held packets are released
            // on the way out, so joining is quick.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    queue = self.queue_num,
                    "nfqueue worker did not stop within 1 s"
                );
            }
        }
    }
}

impl Drop for NfqueueWorker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn open_queue(netns: Option<&str>, config: &EngineConfig) -> Result<Queue, InjectError> {
    if let Some(path) = netns {
        netns::enter_current_thread(path)?;
    }
    let num = config.queue_num;
    let ctx = |what: &str| format!("nfqueue {num}: cannot {what}");
    let mut queue = Queue::open().map_err(|e| InjectError::io(ctx("open netlink socket"), e))?;
    queue
        .bind(num)
        .map_err(|e| InjectError::io(ctx("bind (is another process bound to it?)"), e))?;
    // Only payload-changing actions need the packet bytes; the others copy metadata only,
    // which keeps the memory of held packets small.
    let range = if config.action.needs_payload() {
        0xffff
    } else {
        0
    };
    queue
        .set_copy_range(num, range)
        .map_err(|e| InjectError::io(ctx("set copy range"), e))?;
    queue
        .set_queue_max_len(num, QUEUE_MAX_LEN)
        .map_err(|e| InjectError::io(ctx("set queue length"), e))?;
    queue
        .set_fail_open(num, true)
        .map_err(|e| InjectError::io(ctx("set fail-open"), e))?;
    queue.set_nonblocking(true);
    Ok(queue)
}

fn run(
    netns: Option<String>,
    config: EngineConfig,
    shared: Arc<Shared>,
    ready: mpsc::Sender<Result<(), InjectError>>,
) {
    let num = config.queue_num;
    let setup = open_queue(netns.as_deref(), &config)
        .and_then(|queue| Engine::new(config.action.clone()).map(|engine| (queue, engine)));
    let (mut queue, mut engine) = match setup {
        Ok(pair) => pair,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    shared.alive.store(true, Ordering::SeqCst);
    let _ = ready.send(Ok(()));
    tracing::info!(queue = num, netns = ?netns, action = ?config.action, "nfqueue worker started");

    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    let mut seq: u64 = 0;
    let mut failure = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let mut received = 0;
        // Drain what the kernel has queued, bounded so that due packets are not starved.
        while received < 512 {
            match queue.recv() {
                Ok(mut msg) => {
                    received += 1;
                    shared.packets.fetch_add(1, Ordering::Relaxed);
                    match engine.decide(&mut msg) {
                        Fate::Accept => verdict(&mut queue, msg, Verdict::Accept),
                        Fate::Drop => verdict(&mut queue, msg, Verdict::Drop),
                        Fate::Hold(delay) => {
                            seq += 1;
                            held.push(Held {
                                due: Instant::now() + delay,
                                seq,
                                msg,
                            });
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            break;
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.due <= now) {
            if let Some(h) = held.pop() {
                verdict(&mut queue, h.msg, Verdict::Accept);
            }
        }
        if received == 0 {
            // The crate exposes no descriptor to poll, so the loop naps: at most 1 ms, which
            // bounds both the added latency and the CPU cost of an idle queue.
            let nap = held
                .peek()
                .map(|h| h.due.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(1))
                .min(Duration::from_millis(1));
            std::thread::sleep(nap);
        }
    }
    // Let held packets go rather than lose them: stopping the fault must not add loss.
    while let Some(h) = held.pop() {
        verdict(&mut queue, h.msg, Verdict::Accept);
    }
    let _ = queue.unbind(num);
    shared.alive.store(false, Ordering::SeqCst);
    match failure {
        Some(error) => tracing::error!(queue = num, %error, "nfqueue worker failed"),
        None => tracing::info!(queue = num, "nfqueue worker stopped"),
    }
}

fn verdict(queue: &mut Queue, mut msg: Message, verdict: Verdict) {
    msg.set_verdict(verdict);
    if let Err(error) = queue.verdict(msg) {
        // The kernel forgets a packet whose queue was flushed; nothing to do but note it.
        tracing::debug!(%error, "nfqueue verdict failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_numbers_are_distinct_and_released() {
        let a = allocate_queue("abcd000000000000").unwrap();
        let b = allocate_queue("abcd000000000001").unwrap();
        assert_ne!(a, b);
        assert!(a >= QUEUE_BASE && b >= QUEUE_BASE);
        release_queue(a);
        release_queue(b);
    }

    #[test]
    fn correlation_keeps_the_mean() {
        let mut c = Correlated::new(50.0);
        let draws: Vec<bool> = (0..40_000).map(|_| c.chance(30.0)).collect();
        let rate = draws.iter().filter(|d| **d).count() as f64 / draws.len() as f64;
        assert!((0.28..0.32).contains(&rate), "{rate}");
        // Bursty: a loss follows a loss far more often than 30 % of the time.
        let pairs = draws.windows(2).filter(|w| w[0]).count() as f64;
        let repeats = draws.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        assert!(repeats / pairs > 0.55, "{}", repeats / pairs);
    }
}
