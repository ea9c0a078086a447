//! Ten thousand agents (issue 21, goal 3): one real `chaoshub serve` process and 10,000
//! simulated agents in this process, measured from /proc and from the agents' side.
//!
//! The agents speak the real agent protocol (`chaoshub.agent.v1.AgentHub/Connect`, as
//! `native/src/daemon/hub_link.rs` does): each opens its own bidirectional stream, registers with
//! a join token an operator created for the environment (exchanged for its own credential: real
//! admission, one store write per agent), then heartbeats at the interval the hub hands out
//! (1 s) with a host-usage sample, and answers inject / status / recover / renew commands at
//! once from a fault table in memory. They are tonic clients over a few HTTP/2 connections
//! (at most [`STREAMS_PER_CONNECTION`] streams each, under hyper's default of 200 concurrent
//! streams per connection): a real fleet has one connection per agent, which costs the hub a
//! socket and a TLS session more per agent than measured here.
//!
//! Measured, in order:
//! 1. joining: every agent registers with the join token (at most [`JOINING_AT_ONCE`] at once);
//! 2. steady state over the window: the hub process's CPU (utime + stime) as a share of one
//!    core, its resident memory, and the heartbeat
//!    latency: a probe agent's heartbeat carries a marker (`load1`), and the time from sending
//!    it until `GET /api/v1/agents/{env}/{name}/usage?since=` shows it is taken once a second;
//! 3. unless `--no-fill`: the usage window filled (every agent sends the rest of the
//!    `USAGE_SAMPLES` heartbeats the hub keeps, back to back), then resident memory again:
//!    what a hub holds after 15 minutes of 10,000 agents;
//! 4. inject: experiments (NetworkChaos delay, `mode: one`, a label selector naming one agent
//!    of the 10,000, 300 ms) submitted one at a time over REST; timed from sending the POST
//!    until the chosen agent's stream delivers the `Inject` command, and until the hub's
//!    confirmation (`Status`, sent after the agent's reply arrived) reaches it;
//! 5. the API over all agents: `GET /api/v1/agents`, target discovery
//!    (`GET /api/v1/environments/{env}/targets`, all and by a label selector) and a dry run.
//!    The listings are paged (500 by default): the goal is read on one page; fetching every
//!    page (`limit=5000`, so 3 requests for 10,001) is timed and shown as well.
//!
//! Goals: CPU < 50 % of one core, memory < 500 MB resident, inject p99 < 10 ms, the API calls
//! under 50 ms at p99. Exits non-zero when one is missed.
//!
//! Run: `cargo bench -p chaoshub --bench agents_10k` (10,000 agents, a 60 s window, 200
//! injects) or add `-- --quick` (10,000 agents, a 20 s window, 100 injects, no fill; under
//! five minutes in release). `--agents N`, `--window-secs N`, `--injects N`, `--no-fill` and
//! `--fill` override; `CHAOSHUB_BIN` runs another `chaoshub` binary (a build of an earlier
//! commit, for a before/after). The hub's log is kept in the temporary directory while it runs.
//! Results: docs/benchmarks.md.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::proto::agent_hub_client::AgentHubClient;
use chaoshub_schema::agent::proto::{
    agent_message, command, hub_message, AgentMessage, Command as HubCommand, CommandReply,
    Heartbeat, HostUsage, Register,
};
use chaoshub_schema::agent::{AgentFault, AgentFaultStatus, KernelMechanisms};
use chaoshub_testkit::bench::percentile;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

/// Streams opened over one HTTP/2 connection (hyper's server allows 200 at once by default).
const STREAMS_PER_CONNECTION: usize = 150;
/// Registrations in flight at once.
const JOINING_AT_ONCE: usize = 100;
const ENVIRONMENT: &str = "fleet";
/// The usage samples the hub keeps per agent (`agents::USAGE_SAMPLES`).
const USAGE_SAMPLES: usize = chaoshub::agents::USAGE_SAMPLES;
const CPU_GOAL_PERCENT: f64 = 50.0;
const MEMORY_GOAL_MB: f64 = 500.0;
const INJECT_GOAL_MS: f64 = 10.0;
const API_GOAL_MS: f64 = 50.0;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &Path, what: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hub process's CPU time so far, in seconds: utime + stime of `/proc/PID/stat`, which
/// count threads that have exited too (the blocking pool's come and go), in clock ticks of
/// 10 ms.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// A `/proc/PID/status` value in MiB (`VmRSS:`, `VmHWM:`).
fn status_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0) as f64
        / 1024.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn agent_name(i: usize) -> String {
    format!("host-{i:05}")
}

/// What a real agent with every mechanism reports (`native/src/daemon/capabilities.rs`).
fn capabilities() -> Vec<String> {
    let mut out: Vec<String> = [
        "NetworkChaos/delay",
        "NetworkChaos/duplicate",
        "NetworkChaos/corrupt",
        "NetworkChaos/loss",
        "NetworkChaos/bandwidth",
        "NetworkChaos/partition",
        "StressChaos/cpu",
        "StressChaos/memory",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    for action in [
        "network-delay",
        "network-duplicate",
        "network-corrupt",
        "network-loss",
        "network-bandwidth",
        "network-partition",
        "network-port-occupied",
        "network-dns",
        "network-down",
        "stress-cpu",
        "stress-mem",
        "disk-fill",
        "disk-read-payload",
        "disk-write-payload",
        "process",
        "file-create",
        "file-modify",
        "file-delete",
        "file-rename",
        "file-append",
        "file-replace",
    ] {
        out.push(format!("PhysicalMachineChaos/{action}"));
    }
    out.sort();
    out
}

fn register(i: usize, join_token: &str) -> Register {
    let mechanisms = KernelMechanisms {
        netem: true,
        tbf: true,
        htb: true,
        u32_filter: true,
        ingress_ifb: true,
        nftables: true,
        nft_numgen: true,
        iptables: true,
        iptables_statistic: true,
        nfqueue: true,
        stress_ng: true,
        notes: Vec::new(),
    };
    Register {
        name: agent_name(i),
        environment: ENVIRONMENT.to_string(),
        labels: [
            ("host-id".to_string(), agent_name(i)),
            ("rack".to_string(), format!("r{:03}", i % 250)),
            ("zone".to_string(), format!("z{}", i % 3)),
            (
                "role".to_string(),
                ["web", "db", "cache", "batch"][i % 4].into(),
            ),
        ]
        .into_iter()
        .collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        mechanisms_json: serde_json::to_string(&mechanisms).unwrap(),
        capabilities: capabilities(),
        hostname: agent_name(i),
        addresses: vec![format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)],
        active_fault_ids: Vec::new(),
        credential: String::new(),
        join_token: join_token.to_string(),
        allowed: Vec::new(),
    }
}

/// A host-usage sample like `/proc` gives (memory in whole KiB).
fn usage(i: usize, beat: u64, load1: Option<f32>) -> HostUsage {
    HostUsage {
        cpu_percent: ((i as u64 * 7 + beat * 3) % 100) as f32,
        mem_used_bytes: (2_000_000 + (beat % 1000) * 100) * 1024,
        mem_total_bytes: 8_000_000 * 1024,
        load1: load1.unwrap_or(((i + beat as usize) % 400) as f32 / 100.0),
    }
}

/// A command an agent received: which agent, which operation, when.
struct Seen {
    agent: usize,
    op: &'static str,
    at: Instant,
}

/// The answer a simulated agent gives; it keeps its faults in `faults`.
fn answer(
    cmd: HubCommand,
    faults: &mut HashMap<String, AgentFaultStatus>,
) -> (&'static str, CommandReply) {
    let mut reply = CommandReply {
        command_id: cmd.command_id,
        ok: true,
        ..Default::default()
    };
    fn refuse(reply: &mut CommandReply, kind: &str, message: String) {
        reply.ok = false;
        reply.error_kind = kind.to_string();
        reply.error = message;
    }
    let lease = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let op = match cmd.op {
        Some(command::Op::Inject(inject)) => {
            match serde_json::from_str::<AgentFault>(&inject.fault_json) {
                Ok(fault) => {
                    let status = AgentFaultStatus {
                        id: inject.fault_id.clone(),
                        label: fault.label(),
                        fault,
                        state: "active".into(),
                        mechanism: "simulated".into(),
                        applied_at: chrono::Utc::now(),
                        lease_until: lease(inject.lease_until_unix_ms),
                        measured: None,
                        error: None,
                    };
                    reply.status_json = serde_json::to_string(&status).unwrap();
                    faults.insert(inject.fault_id, status);
                }
                Err(e) => refuse(&mut reply, "invalid", format!("fault_json: {e}")),
            }
            "inject"
        }
        Some(command::Op::Status(s)) => {
            match faults.get(&s.fault_id) {
                Some(status) => reply.status_json = serde_json::to_string(status).unwrap(),
                None => refuse(&mut reply, "not-found", s.fault_id),
            }
            "status"
        }
        Some(command::Op::Renew(r)) => {
            match faults.get_mut(&r.fault_id) {
                Some(status) => {
                    status.lease_until = lease(r.lease_until_unix_ms);
                    reply.status_json = serde_json::to_string(status).unwrap();
                }
                None => refuse(&mut reply, "not-found", r.fault_id),
            }
            "renew"
        }
        Some(command::Op::Recover(r)) => {
            faults.remove(&r.fault_id);
            "recover"
        }
        None => {
            refuse(&mut reply, "invalid", "no operation".into());
            "none"
        }
    };
    (op, reply)
}

/// Shared by every simulated agent.
struct Fleet {
    join_token: String,
    joining: Semaphore,
    /// Commands received, for the inject measurement.
    seen: mpsc::UnboundedSender<Seen>,
    heartbeats: AtomicU64,
    /// Set to fill the usage window: each agent sends the rest of it back to back.
    fill: watch::Receiver<bool>,
    filled: AtomicU64,
}

/// Registers and returns the stream to the hub, its sender and the time registration took.
async fn join(
    i: usize,
    channel: tonic::transport::Channel,
    fleet: &Fleet,
) -> (
    mpsc::Sender<AgentMessage>,
    tonic::Streaming<chaoshub_schema::agent::proto::HubMessage>,
    Duration,
) {
    let _permit = fleet.joining.acquire().await.unwrap();
    let started = Instant::now();
    let mut client = AgentHubClient::new(channel);
    let (tx, rx) = mpsc::channel::<AgentMessage>(16);
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Register(register(i, &fleet.join_token))),
    })
    .await
    .unwrap();
    let mut inbound = client
        .connect(ReceiverStream::new(rx))
        .await
        .unwrap_or_else(|s| panic!("agent {i} refused: {s:?}"))
        .into_inner();
    match inbound.message().await {
        Ok(Some(m)) => match m.msg {
            Some(hub_message::Msg::Registered(r)) => {
                assert!(!r.credential.is_empty(), "joined without a credential");
                assert_eq!(r.heartbeat_interval_ms, 1000, "the default interval");
            }
            other => panic!("agent {i}: registration answered with {other:?}"),
        },
        other => panic!("agent {i}: registration failed: {other:?}"),
    }
    (tx, inbound, started.elapsed())
}

/// One simulated agent: joins, then heartbeats every second (from a random phase, as agents
/// started at different times do) and answers commands, until the hub ends the stream.
async fn agent(
    i: usize,
    channel: tonic::transport::Channel,
    fleet: Arc<Fleet>,
    joined: mpsc::UnboundedSender<Duration>,
) {
    let (tx, mut inbound, took) = join(i, channel, &fleet).await;
    let _ = joined.send(took);
    let phase = Duration::from_millis(rand::random::<u64>() % 1000);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut faults = HashMap::new();
    let mut beat = 0u64;
    let mut fill = fleet.fill.clone();
    let mut filling = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                beat += 1;
                let msg = heartbeat(i, beat, faults.len(), None);
                if tx.send(msg).await.is_err() {
                    return;
                }
                fleet.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            changed = fill.changed(), if !filling => {
                if changed.is_err() {
                    filling = true;
                    continue;
                }
                filling = true;
                // The rest of the window, back to back (the hub stamps each with its own clock).
                while beat < USAGE_SAMPLES as u64 {
                    beat += 1;
                    if tx.send(heartbeat(i, beat, faults.len(), None)).await.is_err() {
                        return;
                    }
                    fleet.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                fleet.filled.fetch_add(1, Ordering::Relaxed);
            }
            msg = inbound.message() => {
                let Ok(Some(msg)) = msg else { return };
                if let Some(hub_message::Msg::Command(cmd)) = msg.msg {
                    let at = Instant::now();
                    let (op, reply) = answer(cmd, &mut faults);
                    let _ = fleet.seen.send(Seen { agent: i, op, at });
                    let _ = tx.send(AgentMessage { msg: Some(agent_message::Msg::Reply(reply)) }).await;
                }
            }
        }
    }
}

fn heartbeat(i: usize, beat: u64, active: usize, load1: Option<f32>) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Heartbeat(Heartbeat {
            sent_unix_ms: chrono::Utc::now().timestamp_millis(),
            active_faults: active as u32,
            usage: Some(usage(i, beat, load1)),
        })),
    }
}

/// The probe agent: heartbeats driven by the bench, each with a marker in `load1`; returns the
/// time from sending each until the REST API shows it.
async fn heartbeat_probe(
    i: usize,
    channel: tonic::transport::Channel,
    fleet: &Fleet,
    api: &reqwest::Client,
    base: &str,
    beats: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (tx, mut inbound, _) = join(i, channel, fleet).await;
    // Commands are not sent to the probe; its stream is drained all the same.
    tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    let url = format!("{base}/api/v1/agents/{ENVIRONMENT}/{}/usage", agent_name(i));
    let mut latencies = Vec::with_capacity(beats);
    let mut polls = Vec::new();
    for beat in 0..beats {
        let marker = (beat % 1000) as f32 + 0.5;
        let since = chrono::Utc::now() - chrono::Duration::milliseconds(1);
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let sent = Instant::now();
        tx.send(heartbeat(i, beat as u64, 0, Some(marker)))
            .await
            .unwrap();
        loop {
            let poll = Instant::now();
            let body: Value = api
                .get(&url)
                .query(&[("since", &since)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            polls.push(poll.elapsed().as_secs_f64() * 1000.0);
            let arrived = body["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|u| u["load1"] == json!(marker)));
            if arrived {
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "the probe's heartbeat never showed: {body}"
            );
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            sent + Duration::from_secs(1),
        ))
        .await;
    }
    (latencies, polls)
}

fn experiment(n: usize, agent: usize, dry_run: bool) -> Value {
    json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": format!("{}-{n}", if dry_run { "dry" } else { "inject" })},
        "spec": {
            "environment": ENVIRONMENT,
            "action": "delay",
            "mode": "one",
            "selector": {"labelSelectors": {"host-id": agent_name(agent)}},
            "delay": {"latency": "10ms"},
            "duration": "300ms",
        },
    })
}

/// Waits for the chosen agent to receive command `op` of inject `n`; returns when it did.
async fn wait_for(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    n: usize,
    chosen: usize,
    op: &'static str,
) -> Instant {
    loop {
        let s = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap_or_else(|_| panic!("inject {n}: no {op} reached agent {chosen}"))
            .expect("the agents are running");
        assert_eq!(s.agent, chosen, "a command went to another agent");
        if s.op == op {
            return s.at;
        }
    }
}

struct Row {
    label: String,
    times: Vec<f64>,
    bytes: usize,
    items: usize,
}

impl Row {
    fn p(&self, p: f64) -> f64 {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        percentile(&t, p)
    }

    fn print(&self, goal_ms: Option<f64>) {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            self.label,
            self.times.len(),
            self.p(50.0),
            self.p(90.0),
            self.p(99.0),
            self.p(100.0),
            self.items,
            self.bytes,
            match goal_ms {
                Some(g) if self.p(99.0) < g => format!("met (< {g} ms)"),
                Some(g) => format!("MISSED (< {g} ms)"),
                None => "-".to_string(),
            }
        );
    }
}

/// Every page of a listing (`url` has a query string or not), `limit` at a time: the items and
/// the bytes of all pages.
async fn all_pages(api: &reqwest::Client, url: &str, limit: usize) -> (Vec<Value>, usize) {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut bytes = 0;
    let mut token: Option<String> = None;
    loop {
        let page_url = match &token {
            Some(t) => format!("{url}{sep}limit={limit}&continue={t}"),
            None => format!("{url}{sep}limit={limit}"),
        };
        let r = api.get(&page_url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page_url}");
        let body = r.bytes().await.unwrap();
        bytes += body.len();
        let mut page: Value = serde_json::from_slice(&body).unwrap();
        if let Some(list) = page["items"].as_array_mut() {
            items.append(list);
        }
        match page["continue"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return (items, bytes),
        }
    }
}

/// Warm-up rounds run before the timed ones.
const WARM_UP: usize = 3;

/// `fetch(round)` timed over `rounds` rounds after [`WARM_UP`] untimed ones, from its start to
/// its return; `count` (untimed) says how many items and bytes a round's answer holds, and the
/// row keeps the last round's.
async fn timed<T>(
    label: &str,
    rounds: usize,
    mut fetch: impl AsyncFnMut(usize) -> T,
    count: impl Fn(&T) -> (usize, usize),
) -> Row {
    let mut row = Row {
        label: label.to_string(),
        times: Vec::new(),
        bytes: 0,
        items: 0,
    };
    for round in 0..rounds + WARM_UP {
        let t0 = Instant::now();
        let answer = fetch(round).await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if round >= WARM_UP {
            row.times.push(ms);
        }
        (row.items, row.bytes) = count(&answer);
    }
    row
}

/// Fetching every page of a listing, timed from the first request to the last byte of the
/// last page.
async fn timed_all_pages(
    api: &reqwest::Client,
    url: &str,
    label: &str,
    rounds: usize,
    limit: usize,
) -> Row {
    timed(
        label,
        rounds,
        async |_| all_pages(api, url, limit).await,
        |(items, bytes)| (items.len(), *bytes),
    )
    .await
}

/// One GET, timed to the last byte of its answer.
async fn timed_get(api: &reqwest::Client, url: &str, label: &str, rounds: usize) -> Row {
    timed(
        label,
        rounds,
        async |_| {
            let r = api.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            r.bytes().await.unwrap()
        },
        |body| {
            let value: Value = serde_json::from_slice(body).unwrap();
            let items = value["items"]
                .as_array()
                .or(value["targets"].as_array())
                .map_or(0, Vec::len);
            (items, body.len())
        },
    )
    .await
}

fn arg(name: &str) -> Option<usize> {
    std::env::args().skip_while(|a| a != name).nth(1).map(|n| {
        n.parse()
            .unwrap_or_else(|_| panic!("{name} takes a number"))
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let agents = arg("--agents").unwrap_or(10_000);
    let window =
        Duration::from_secs(arg("--window-secs").unwrap_or(if quick { 20 } else { 60 }) as u64);
    let injects = arg("--injects").unwrap_or(if quick { 100 } else { 200 });
    let fill = if std::env::args().any(|a| a == "--no-fill") {
        false
    } else {
        std::env::args().any(|a| a == "--fill") || !quick
    };
    let api_rounds = if quick { 30 } else { 100 };
    println!(
        "agents_10k: {agents} agents, {} s window, {injects} injects, {api_rounds} rounds per API call, usage window fill: {}{}",
        window.as_secs(),
        if fill { "yes" } else { "no" },
        if quick { " (--quick)" } else { "" }
    );
    println!("load average at start: {}", load_average());
    // The simulated agents and the bench's clients share this runtime; the hub is its own
    // process, so its CPU and memory are its own.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(agents, window, injects, fill, api_rounds));
}

async fn run(agents: usize, window: Duration, injects: usize, fill: bool, api_rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let addr_file = dir.path().join("addr");
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let hub = Killed(
        Command::new(
            std::env::var_os("CHAOSHUB_BIN").unwrap_or(env!("CARGO_BIN_EXE_chaoshub").into()),
        )
        .env("CHAOSHUB_RUNTIME_DIR", dir.path().join("runtime"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--addr-file")
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("chaoshub serve starts"),
    );
    let pid = hub.0.id();
    let base = format!("http://{}", wait_for_file(&addr_file, "the hub"));
    let token = wait_for_file(&dir.path().join("data/admin.token"), "the hub");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = {
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {token}");
        headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let rss_empty = status_mib(pid, "VmRSS:");

    // The environment and a join token, as an operator sets them up.
    let r = api
        .post(format!("{base}/api/v1/environments"))
        .header("content-type", "application/yaml")
        .body(format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {ENVIRONMENT}}}\nspec: {{adapter: native}}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "registering the environment");
    let join: Value = api
        .post(format!(
            "{base}/api/v1/environments/{ENVIRONMENT}/join-tokens"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let join_token = join["token"].as_str().expect("a join token").to_string();

    // The connections: each a tonic channel, i.e. one HTTP/2 connection.
    let connections = (agents + 1).div_ceil(STREAMS_PER_CONNECTION);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = tonic::transport::Endpoint::from_shared(base.clone())
            .unwrap()
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        channels.push(channel);
    }
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (fill_tx, fill_rx) = watch::channel(false);
    let fleet = Arc::new(Fleet {
        join_token,
        joining: Semaphore::new(JOINING_AT_ONCE),
        seen: seen_tx,
        heartbeats: AtomicU64::new(0),
        fill: fill_rx,
        filled: AtomicU64::new(0),
    });

    // 1. Joining.
    let (cpu0, started) = (cpu(pid), Instant::now());
    let (joined_tx, mut joined) = mpsc::unbounded_channel();
    for i in 0..agents {
        tokio::spawn(agent(
            i,
            channels[i % connections].clone(),
            Arc::clone(&fleet),
            joined_tx.clone(),
        ));
    }
    let mut join_ms = Vec::with_capacity(agents);
    while join_ms.len() < agents {
        let took = tokio::time::timeout(Duration::from_secs(60), joined.recv())
            .await
            .expect("agents keep joining")
            .unwrap();
        join_ms.push(took.as_secs_f64() * 1000.0);
    }
    let join_secs = started.elapsed().as_secs_f64();
    let cpu1 = cpu(pid);
    join_ms.sort_by(f64::total_cmp);
    println!(
        "joined: {agents} agents over {connections} HTTP/2 connections in {join_secs:.1} s ({:.0}/s; {JOINING_AT_ONCE} at once; each registration p50 {:.1} ms, p99 {:.1} ms); hub CPU while joining {:.0} % of one core",
        agents as f64 / join_secs,
        percentile(&join_ms, 50.0),
        percentile(&join_ms, 99.0),
        (cpu1 - cpu0) / join_secs * 100.0,
    );
    let (listed, _) = all_pages(
        &api,
        &format!("{base}/api/v1/agents?env={ENVIRONMENT}"),
        5000,
    )
    .await;
    let healthy = listed.iter().filter(|a| a["health"] == "healthy").count();
    assert_eq!(healthy, agents, "every agent is listed healthy");

    // 2. Steady state: heartbeats only (and the probe's REST polls), after a settling pause.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let probe_channel = channels[agents % connections].clone();
    let beats_before = fleet.heartbeats.load(Ordering::Relaxed);
    let (c0, t0) = (cpu(pid), Instant::now());
    let (latencies, polls) = heartbeat_probe(
        agents,
        probe_channel,
        &fleet,
        &api,
        &base,
        window.as_secs() as usize,
    )
    .await;
    let (c1, secs) = (cpu(pid), t0.elapsed().as_secs_f64());
    let beats = fleet.heartbeats.load(Ordering::Relaxed) - beats_before;
    let cpu_run = (c1 - c0) / secs * 100.0;
    let rss_steady = status_mib(pid, "VmRSS:");
    let per_beat_us = (c1 - c0) * 1e6 / beats.max(1) as f64;
    println!(
        "steady state over {secs:.1} s: {:.0} heartbeats/s; hub CPU {cpu_run:.1} % of one core ({:.2} s in clock ticks), {per_beat_us:.1} µs of hub CPU per heartbeat",
        beats as f64 / secs,
        c1 - c0
    );
    println!(
        "hub resident: {rss_empty:.1} MiB before any agent, {rss_steady:.1} MiB with {agents} agents after {} heartbeats each ({:.1} KiB per agent)",
        (fleet.heartbeats.load(Ordering::Relaxed) / agents as u64),
        (rss_steady - rss_empty) * 1024.0 / agents as f64
    );
    let mut lat = latencies.clone();
    lat.sort_by(f64::total_cmp);
    let mut polls = polls;
    polls.sort_by(f64::total_cmp);
    println!(
        "heartbeat sent → shown by GET …/usage?since= ({} probes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (one such GET alone: p50 {:.2} ms)",
        lat.len(),
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        percentile(&polls, 50.0),
    );

    // 3. The usage window filled, before the API's answers leave freed memory in the heap.
    let rss_full = if fill {
        let t0 = Instant::now();
        fill_tx.send(true).unwrap();
        while fleet.filled.load(Ordering::Relaxed) < agents as u64 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The last heartbeats are through once a late agent shows the full window.
        let last = agent_name(agents - 1);
        loop {
            let body: Value = api
                .get(format!("{base}/api/v1/agents/{ENVIRONMENT}/{last}/usage"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["items"].as_array().map_or(0, Vec::len) >= USAGE_SAMPLES {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rss = status_mib(pid, "VmRSS:");
        println!(
            "usage window filled ({USAGE_SAMPLES} samples per agent) in {:.1} s: hub resident {rss:.1} MiB ({:.1} KiB per agent)",
            t0.elapsed().as_secs_f64(),
            (rss - rss_empty) * 1024.0 / agents as f64
        );
        Some(rss)
    } else {
        None
    };
    // 4. Inject: submit → the chosen agent receives it; → the confirmation reaches it.
    while seen.try_recv().is_ok() {}
    let mut to_inject = Vec::with_capacity(injects);
    let mut to_confirm = Vec::with_capacity(injects);
    let mut to_answer = Vec::with_capacity(injects);
    let (ci0, ti0) = (cpu(pid), Instant::now());
    for n in 0..injects {
        let chosen = (n * 7_919 + 13) % agents;
        let sent = Instant::now();
        let r = api
            .post(format!("{base}/api/v1/experiments"))
            .json(&experiment(n, chosen, false))
            .send()
            .await
            .unwrap();
        let answered = sent.elapsed().as_secs_f64() * 1000.0;
        let status = r.status();
        assert_eq!(status, 201, "submitting: {}", r.text().await.unwrap());
        to_answer.push(answered);
        let injected = wait_for(&mut seen, n, chosen, "inject").await;
        let confirmed = wait_for(&mut seen, n, chosen, "status").await;
        to_inject.push(injected.duration_since(sent).as_secs_f64() * 1000.0);
        to_confirm.push(confirmed.duration_since(sent).as_secs_f64() * 1000.0);
        // Its 300 ms run ends with a recover; the next starts after it.
        wait_for(&mut seen, n, chosen, "recover").await;
    }
    let (ci1, tsecs) = (cpu(pid), ti0.elapsed().as_secs_f64());
    // Where the tail is: which injects were slowest (the first one warms the hub's paths up),
    // and how much of each was the POST's answer.
    let mut slowest: Vec<usize> = (0..to_inject.len()).collect();
    slowest.sort_by(|&a, &b| to_inject[b].total_cmp(&to_inject[a]));
    println!(
        "slowest injects (#n: submit → Inject ms, of which POST answered ms): {}",
        slowest
            .iter()
            .take(4)
            .map(|&n| format!("#{n}: {:.2}, {:.2}", to_inject[n], to_answer[n]))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "injects: {injects} experiments one at a time, each to one agent of {agents} picked by label; hub CPU meanwhile {:.1} % of one core",
        (ci1 - ci0) / tsecs * 100.0
    );

    // 5. The API over every agent.
    println!("| measured | n | p50 ms | p90 ms | p99 ms | max ms | items | bytes | goal |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let inject_row = Row {
        label: "submit → Inject command at the chosen agent".into(),
        times: to_inject,
        bytes: 0,
        items: 1,
    };
    inject_row.print(Some(INJECT_GOAL_MS));
    Row {
        label: "submit → confirmation (Status, after the agent's reply) at the agent".into(),
        times: to_confirm,
        bytes: 0,
        items: 1,
    }
    .print(None);
    Row {
        label: "POST /api/v1/experiments answered".into(),
        times: to_answer,
        bytes: 0,
        items: 1,
    }
    .print(None);
    Row {
        label: "heartbeat sent → shown over REST".into(),
        times: latencies,
        bytes: 0,
        items: 1,
    }
    .print(None);
    // The listings hand out pages (500 items unless `limit` says otherwise, at most 5,000):
    // one page is what a client showing a list asks for; every page is what a client that
    // needs them all (the CLI) costs the hub. The goal is read on the first; both are shown.
    let mut api_rows = vec![
        timed_get(
            &api,
            &format!("{base}/api/v1/agents"),
            "GET /api/v1/agents (first page, default 500)",
            api_rounds,
        )
        .await,
        timed_get(
            &api,
            &format!("{base}/api/v1/environments/{ENVIRONMENT}/targets"),
            "GET /api/v1/environments/fleet/targets (first page, default 500)",
            api_rounds,
        )
        .await,
        timed_get(
            &api,
            &format!(
                "{base}/api/v1/environments/{ENVIRONMENT}/targets?labelSelector=host-id%3D{}",
                agent_name(agents / 2)
            ),
            "GET …/targets?labelSelector=host-id=… (one of all)",
            api_rounds,
        )
        .await,
    ];
    let dry = timed(
        "POST /api/v1/experiments?dryRun=true (mode one, by label)",
        api_rounds,
        async |n| {
            let r = api
                .post(format!("{base}/api/v1/experiments?dryRun=true"))
                .json(&experiment(n, (n * 31) % agents, true))
                .send()
                .await
                .unwrap();
            (r.status(), r.bytes().await.unwrap())
        },
        |(status, body)| {
            assert!(
                status.is_success(),
                "dry run: {}",
                String::from_utf8_lossy(body)
            );
            (0, body.len())
        },
    )
    .await;
    api_rows.push(dry);
    for row in &api_rows {
        row.print(Some(API_GOAL_MS));
    }
    // Every page, shown against the goal but not counted in it (see above).
    for row in [
        timed_all_pages(
            &api,
            &format!("{base}/api/v1/agents"),
            "GET /api/v1/agents, every page (limit=5000)",
            api_rounds,
            5000,
        )
        .await,
        timed_all_pages(
            &api,
            &format!("{base}/api/v1/environments/{ENVIRONMENT}/targets"),
            "GET …/targets, every page (limit=5000)",
            api_rounds,
            5000,
        )
        .await,
    ] {
        row.print(Some(API_GOAL_MS));
    }

    let peak = status_mib(pid, "VmHWM:");
    println!("hub peak resident (VmHWM): {peak:.1} MiB");

    // Goals.
    let rss_goal = rss_full.unwrap_or(rss_steady) * 1.048_576;
    let mut missed = Vec::new();
    if cpu_run >= CPU_GOAL_PERCENT {
        missed.push(format!("CPU {cpu_run:.1} % ≥ {CPU_GOAL_PERCENT} %"));
    }
    if rss_goal >= MEMORY_GOAL_MB {
        missed.push(format!("memory {rss_goal:.0} MB ≥ {MEMORY_GOAL_MB} MB"));
    }
    if inject_row.p(99.0) >= INJECT_GOAL_MS {
        missed.push(format!("inject p99 {:.2} ms", inject_row.p(99.0)));
    }
    for row in &api_rows {
        if row.p(99.0) >= API_GOAL_MS {
            missed.push(format!("{} p99 {:.2} ms", row.label, row.p(99.0)));
        }
    }
    println!(
        "goals: CPU {cpu_run:.1} % (< {CPU_GOAL_PERCENT}), memory {rss_goal:.0} MB{} (< {MEMORY_GOAL_MB}), inject p99 {:.2} ms (< {INJECT_GOAL_MS}), API p99 under {API_GOAL_MS} ms: {}",
        if rss_full.is_some() { " with the usage window full" } else { " (usage window not filled)" },
        inject_row.p(99.0),
        if missed.is_empty() { "all met".to_string() } else { format!("MISSED: {}", missed.join("; ")) }
    );
    drop(hub);
    if !missed.is_empty() {
        std::process::exit(1);
    }
}
