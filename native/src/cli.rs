//! The `chaos-agent` command line: `serve` runs the daemon; `attack`, `list`, `recover` and
//! `mechanisms` work against a running daemon's local REST API, or on their own with
//! `--foreground` (apply, hold until the duration ends or Ctrl-C, remove).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chaoshub_schema::agent::{
    parse_rate_bps, parse_size_bytes, AgentFault, AgentFaultStatus, ClockFault, CpuStress,
    DiskAction, DiskFault, FileAction, FileFault, HostPowerAction, HostPowerFault, MemoryStress,
    NetnsRef, NetworkAction, NetworkFault, ProcessAction, ProcessFault, StressFault,
    TrafficDirection, UserDefinedFault,
};
use chaoshub_schema::duration::parse_duration;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::daemon::{self, ServeConfig};
use crate::injectors::InjectorOptions;
use crate::local_api::LocalApi;
use crate::local_api::RestListen;
use hyper::Method;

const EXAMPLES: &str = "\
Examples:
  chaos-agent serve --hub http://hub.example:7070 --env edge --label zone=a
  chaos-agent attack network delay --latency 100ms --jitter 10ms --duration 30s
  chaos-agent attack network loss --percent 30 --cidr 198.18.0.2/32 --duration 1m --netns /run/netns/app
  chaos-agent attack stress cpu --load 80 --workers 2 --duration 1m
  chaos-agent attack process stop --name nginx --duration 20s
  chaos-agent list
  chaos-agent recover local-3f2c…
  chaos-agent attack network delay --latency 50ms --duration 10s --foreground   # no daemon needed";

/// Exit codes: 0 success, 1 the operation failed, 2 bad usage, 3 no daemon reachable.
#[derive(Debug, Parser)]
#[command(name = "chaos-agent", version, about = "chaoshub's native fault injector", after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; boxing the big variants would only add noise to the clap derive.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: dial the hub, take commands, enforce leases, serve the local REST API.
    Serve(ServeArgs),
    /// Apply a fault (through the local daemon, or with --foreground on its own).
    Attack(AttackArgs),
    /// List the faults in force on the local daemon.
    List(ClientArgs),
    /// Remove a fault by id, or every fault (--all).
    Recover(RecoverArgs),
    /// Probe and print the kernel mechanisms this host offers.
    Mechanisms(OutputArgs),
    /// Wait until an instant, then make HTTP calls that undo a fault (a timed revert: the
    /// hub's Docker adapter runs one per pause, disconnect or squeeze, so they end on time even
    /// without the hub). Prints one JSON line per event; exit 1 if a call failed.
    Watchdog(WatchdogArgs),
}

#[derive(Debug, Args)]
pub struct WatchdogArgs {
    /// When to fire (RFC 3339, e.g. 2026-11-29T10:00:00Z).
    #[arg(long)]
    pub at: String,
    /// The API: unix:///var/run/docker.sock, tcp://host:port or http://host:port.
    #[arg(long)]
    pub endpoint: String,
    /// The calls, as a JSON array of {"method","path","body"?,"accept"?}.
    #[arg(long)]
    pub calls: String,
    /// How long each call is retried while the API does not answer or answers 5xx.
    #[arg(long, default_value = "2m")]
    pub retry_for: String,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// A dangerous fault family an agent runs only when started with `--allow NAME`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Allow {
    /// `user_defined`: arbitrary attack / recover commands.
    UserDefined,
    /// Host reboot and shutdown.
    HostPower,
    /// Host-wide clock skew.
    Clock,
}

/// The opt-ins from `--allow` and the older flags.
fn injector_options(allow: &[Allow], clock_skew: bool, host_power: bool) -> InjectorOptions {
    InjectorOptions {
        allow_clock_skew: clock_skew || allow.contains(&Allow::Clock),
        allow_host_power: host_power || allow.contains(&Allow::HostPower),
        allow_user_defined: allow.contains(&Allow::UserDefined),
        disabled_mechanisms: Vec::new(),
    }
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The local daemon's REST API: unix:///path/agent.sock, or http://127.0.0.1:PORT for a
    /// daemon started with --rest-listen. Default: the Unix socket in --state-dir.
    #[arg(long, env = "CHAOS_AGENT_URL")]
    pub agent: Option<String>,
    /// The daemon's state directory (its socket, and its REST token for --rest-listen).
    #[arg(long, default_value = "/var/lib/chaos-agent")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The hub's address (its one listen address serves gRPC and REST), e.g. http://127.0.0.1:7070;
    /// for a highly available hub, its replicas separated by commas (the agent keeps one stream,
    /// to the replica that runs the engine, and follows it on failover). Without it the agent
    /// runs on its own, driven by its local REST API.
    #[arg(long, env = "CHAOS_AGENT_HUB")]
    pub hub: Option<String>,
    /// The environment this agent belongs to.
    #[arg(long = "env", default_value = "default")]
    pub environment: String,
    /// A label (repeatable): --label zone=a --label role=web.
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The agent's name (unique in its environment); default: the host name.
    #[arg(long)]
    pub name: Option<String>,
    /// Where the journal, the hub credential and the REST socket live.
    #[arg(long, default_value = "/var/lib/chaos-agent")]
    pub state_dir: PathBuf,
    /// A file holding a join token for --env (`chaoshub env join-token ENV`), presented on the
    /// first connection; the hub then issues this agent its own credential, kept in
    /// <state-dir>/hub-credential.json (mode 0600) and used from then on.
    #[arg(long, env = "CHAOS_AGENT_JOIN_TOKEN_FILE")]
    pub join_token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the hub's TLS certificate, for an https:// hub URL
    /// (e.g. the one `chaoshub serve --tls-self-signed` prints). Default: the system's roots.
    #[arg(long, env = "CHAOS_AGENT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a hub that requires one from agents
    /// (its `tls.client_ca_file`); with --tls-key-file.
    #[arg(long, requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// The local REST API's Unix socket (mode 0600). Default: <state-dir>/agent.sock.
    #[arg(long)]
    pub rest_socket: Option<PathBuf>,
    /// Serve the local REST API on this loopback TCP address instead of the Unix socket;
    /// every request but /healthz then needs the bearer token written to
    /// <state-dir>/rest.token (the chaos-agent CLI reads it).
    #[arg(long = "rest-listen", visible_alias = "listen")]
    pub rest_listen: Option<SocketAddr>,
    /// Allow a dangerous fault family (repeatable): user-defined (arbitrary commands),
    /// host-power (reboot, shutdown), clock (host-wide clock skew). Reported to the hub, which
    /// refuses such faults for agents without it.
    #[arg(long = "allow", value_enum)]
    pub allow: Vec<Allow>,
    /// Alias of --allow clock.
    #[arg(long)]
    pub allow_clock_skew: bool,
    /// Alias of --allow host-power.
    #[arg(long)]
    pub allow_host_power: bool,
    /// Treat a kernel mechanism as missing (repeatable), so the fallback runs: `netem` makes
    /// delay, duplicate, corrupt and reorder take the NFQUEUE engine, `nftables` makes loss
    /// and partition take iptables. For testing the fallback paths on any kernel.
    #[arg(long = "disable-mechanism", value_parser = clap::builder::PossibleValuesParser::new(crate::network::MECHANISM_NAMES))]
    pub disable_mechanisms: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The fault id (as shown by `list` or `attack`).
    pub id: Option<String>,
    /// Remove every fault. With no daemon running, removes what the journal in --state-dir
    /// still lists.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AttackArgs {
    #[command(subcommand)]
    pub fault: FaultCommand,
    /// How long the fault stays (e.g. 30s, 5m).
    #[arg(long, global = true, default_value = "")]
    pub duration: String,
    /// When the fault ends, as an RFC 3339 instant, instead of --duration (a deadline that
    /// does not drift with how long this command took to start).
    #[arg(long, global = true)]
    pub until: Option<String>,
    /// The fault's id (default: generated).
    #[arg(long, global = true)]
    pub id: Option<String>,
    /// Apply in this process and hold the fault until the duration ends or SIGINT/SIGTERM,
    /// then remove it — no daemon needed.
    #[arg(long, global = true)]
    pub foreground: bool,
    /// The daemon's state directory (its socket and REST token), or the journal directory
    /// for --foreground.
    #[arg(long, global = true, default_value = "/var/lib/chaos-agent")]
    pub state_dir: PathBuf,
    /// The local daemon's REST API: unix:///path/agent.sock or http://127.0.0.1:PORT.
    /// Default: the Unix socket in --state-dir.
    #[arg(long, global = true, env = "CHAOS_AGENT_URL")]
    pub agent: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Allow a dangerous fault family with --foreground (repeatable): user-defined,
    /// host-power, clock.
    #[arg(long = "allow", global = true, value_enum)]
    pub allow: Vec<Allow>,
    /// Alias of --allow clock.
    #[arg(long, global = true)]
    pub allow_clock_skew: bool,
    /// Alias of --allow host-power.
    #[arg(long, global = true)]
    pub allow_host_power: bool,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Network faults: delay, loss, duplicate, corrupt, reorder, bandwidth, partition,
    /// port-blackhole, dns, nic-down.
    Network(NetworkArgs),
    /// CPU or memory stress.
    Stress {
        #[command(subcommand)]
        what: StressCommand,
    },
    /// Kill or stop processes.
    Process(ProcessArgs),
    /// Disk fill or I/O payload.
    Disk(DiskArgs),
    /// File faults.
    File(FileArgs),
    /// Host-wide clock skew (needs --allow clock on the daemon).
    Clock {
        /// Offset, e.g. -10s or 5m.
        #[arg(long, allow_hyphen_values = true)]
        offset: String,
    },
    /// Reboot or shut the host down (needs --allow host-power on the daemon).
    Host {
        #[arg(value_enum)]
        action: HostAction,
    },
    /// Your own attack and recover commands (needs --allow user-defined on the daemon).
    UserDefined {
        #[arg(long)]
        attack_cmd: String,
        #[arg(long)]
        recover_cmd: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HostAction {
    Reboot,
    Shutdown,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetAction {
    Delay,
    Loss,
    Duplicate,
    Corrupt,
    Reorder,
    Bandwidth,
    Partition,
    PortBlackhole,
    Dns,
    NicDown,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Dir {
    To,
    From,
    Both,
}

#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[arg(value_enum)]
    pub action: NetAction,
    #[arg(long)]
    pub latency: Option<String>,
    #[arg(long)]
    pub jitter: Option<String>,
    /// Correlation in percent.
    #[arg(long)]
    pub correlation: Option<f64>,
    /// Share of packets (loss, duplicate, corrupt, reorder), in percent.
    #[arg(long)]
    pub percent: Option<f64>,
    /// Reorder gap.
    #[arg(long)]
    pub gap: Option<u32>,
    /// Bandwidth rate, e.g. 1mbit.
    #[arg(long)]
    pub rate: Option<String>,
    /// Bandwidth queue limit in bytes.
    #[arg(long)]
    pub limit: Option<String>,
    /// Bandwidth bucket size in bytes.
    #[arg(long)]
    pub buffer: Option<String>,
    #[arg(long, value_enum)]
    pub direction: Option<Dir>,
    /// Peer address or CIDR (repeatable).
    #[arg(long = "cidr")]
    pub cidrs: Vec<String>,
    /// Peer host name (repeatable).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// Peer port (repeatable).
    #[arg(long = "port")]
    pub ports: Vec<u16>,
    /// Local port (repeatable; port-blackhole).
    #[arg(long = "local-port")]
    pub local_ports: Vec<u16>,
    #[arg(long)]
    pub protocol: Option<String>,
    #[arg(long)]
    pub device: Option<String>,
    /// Network namespace path, e.g. /run/netns/app.
    #[arg(long, conflicts_with = "netns_pid")]
    pub netns: Option<String>,
    /// The network namespace of this process.
    #[arg(long)]
    pub netns_pid: Option<u32>,
    /// dns: name patterns (repeatable).
    #[arg(long = "dns-pattern")]
    pub dns_patterns: Vec<String>,
    /// dns: error or random.
    #[arg(long)]
    pub dns_mode: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StressCommand {
    /// CPU stress.
    Cpu {
        /// Per-worker load in percent.
        #[arg(long, default_value_t = 100)]
        load: u32,
        #[arg(long, default_value_t = 1)]
        workers: u32,
    },
    /// Memory stress.
    Mem {
        /// Size, e.g. 256MiB.
        #[arg(long)]
        size: Option<String>,
        /// Share of total memory in percent.
        #[arg(long)]
        percent: Option<f64>,
        #[arg(long, default_value_t = 1)]
        workers: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProcAction {
    Kill,
    Stop,
}

#[derive(Debug, Args)]
pub struct ProcessArgs {
    #[arg(value_enum)]
    pub action: ProcAction,
    #[arg(long)]
    pub pid: Option<u32>,
    #[arg(long)]
    pub name: Option<String>,
    /// Regular expression on the command line.
    #[arg(long)]
    pub pattern: Option<String>,
    /// Signal number for kill (default 9).
    #[arg(long)]
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiskAct {
    Fill,
    WritePayload,
    ReadPayload,
}

#[derive(Debug, Args)]
pub struct DiskArgs {
    #[arg(value_enum)]
    pub action: DiskAct,
    #[arg(long)]
    pub path: String,
    #[arg(long)]
    pub size: Option<String>,
    #[arg(long)]
    pub percent: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileAct {
    Create,
    ModifyMode,
    Delete,
    Append,
    Replace,
    Rename,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    #[arg(value_enum)]
    pub action: FileAct,
    #[arg(long)]
    pub path: String,
    #[arg(long)]
    pub data: Option<String>,
    #[arg(long)]
    pub count: Option<u32>,
    /// Octal mode, e.g. 000 or 0644.
    #[arg(long)]
    pub mode: Option<String>,
    #[arg(long)]
    pub origin: Option<String>,
    #[arg(long)]
    pub dest: Option<String>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: a label is key=value"))?;
    if k.is_empty() {
        return Err(format!("{text:?}: the label key is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn millis(text: &str, flag: &str) -> anyhow::Result<f64> {
    let d = parse_duration(text).map_err(|e| anyhow!("--{flag}: {e}"))?;
    Ok(d.as_secs_f64() * 1000.0)
}

/// Builds the fault from the command line.
pub fn fault_of(cmd: &FaultCommand) -> anyhow::Result<AgentFault> {
    Ok(match cmd {
        FaultCommand::Network(n) => {
            let action = match n.action {
                NetAction::Delay => NetworkAction::Delay,
                NetAction::Loss => NetworkAction::Loss,
                NetAction::Duplicate => NetworkAction::Duplicate,
                NetAction::Corrupt => NetworkAction::Corrupt,
                NetAction::Reorder => NetworkAction::Reorder,
                NetAction::Bandwidth => NetworkAction::Bandwidth,
                NetAction::Partition => NetworkAction::Partition,
                NetAction::PortBlackhole => NetworkAction::PortBlackhole,
                NetAction::Dns => NetworkAction::Dns,
                NetAction::NicDown => NetworkAction::NicDown,
            };
            let mut f = NetworkFault::new(action);
            f.netns = match (&n.netns, n.netns_pid) {
                (Some(p), _) => Some(NetnsRef::Path(p.clone())),
                (None, Some(pid)) => Some(NetnsRef::Pid(pid)),
                _ => None,
            };
            f.device = n.device.clone();
            f.filter.direction = match n.direction {
                Some(Dir::From) => TrafficDirection::From,
                Some(Dir::Both) => TrafficDirection::Both,
                _ => TrafficDirection::To,
            };
            f.filter.cidrs = n.cidrs.clone();
            f.filter.hostnames = n.hostnames.clone();
            f.filter.ports = n.ports.clone();
            f.filter.local_ports = n.local_ports.clone();
            f.filter.protocol = n.protocol.clone();
            if let Some(l) = &n.latency {
                f.latency_ms = millis(l, "latency")?;
            }
            if let Some(j) = &n.jitter {
                f.jitter_ms = millis(j, "jitter")?;
            }
            f.correlation_pct = n.correlation.unwrap_or(0.0);
            f.percent = n.percent.unwrap_or(0.0);
            f.reorder_gap = n.gap.unwrap_or(0);
            if let Some(r) = &n.rate {
                f.rate_bps = parse_rate_bps(r).map_err(|e| anyhow!("--rate: {e}"))?;
            }
            if let Some(l) = &n.limit {
                f.limit_bytes = parse_size_bytes(l).map_err(|e| anyhow!("--limit: {e}"))?;
            }
            if let Some(b) = &n.buffer {
                f.buffer_bytes = parse_size_bytes(b).map_err(|e| anyhow!("--buffer: {e}"))?;
            }
            f.dns_patterns = n.dns_patterns.clone();
            f.dns_mode = n.dns_mode.clone();
            match action {
                NetworkAction::Delay if f.latency_ms <= 0.0 => {
                    bail!("--latency is required for delay (e.g. --latency 100ms)")
                }
                NetworkAction::Loss
                | NetworkAction::Duplicate
                | NetworkAction::Corrupt
                | NetworkAction::Reorder
                    if !(f.percent > 0.0 && f.percent <= 100.0) =>
                {
                    bail!("--percent must be in (0, 100] for {}", action.as_str())
                }
                NetworkAction::Bandwidth if f.rate_bps == 0 => {
                    bail!("--rate is required for bandwidth (e.g. --rate 1mbit)")
                }
                _ => {}
            }
            AgentFault::Network(f)
        }
        FaultCommand::Stress { what } => match what {
            StressCommand::Cpu { load, workers } => {
                if !(1..=100).contains(load) {
                    bail!("--load must be between 1 and 100");
                }
                if *workers == 0 {
                    bail!("--workers must be at least 1");
                }
                AgentFault::Stress(StressFault {
                    cpu: Some(CpuStress {
                        workers: *workers,
                        load_pct: *load,
                    }),
                    memory: None,
                })
            }
            StressCommand::Mem {
                size,
                percent,
                workers,
            } => {
                let size_bytes = size
                    .as_deref()
                    .map(parse_size_bytes)
                    .transpose()
                    .map_err(|e| anyhow!("--size: {e}"))?;
                if size_bytes.is_none() && percent.is_none() {
                    bail!("give --size (e.g. 256MiB) or --percent");
                }
                AgentFault::Stress(StressFault {
                    cpu: None,
                    memory: Some(MemoryStress {
                        size_bytes,
                        percent: *percent,
                        workers: *workers,
                    }),
                })
            }
        },
        FaultCommand::Process(p) => {
            let given = [p.pid.is_some(), p.name.is_some(), p.pattern.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if given != 1 {
                bail!("give exactly one of --pid, --name or --pattern");
            }
            AgentFault::Process(ProcessFault {
                action: match p.action {
                    ProcAction::Kill => ProcessAction::Kill,
                    ProcAction::Stop => ProcessAction::Stop,
                },
                pid: p.pid,
                name: p.name.clone(),
                pattern: p.pattern.clone(),
                signal: p.signal,
            })
        }
        FaultCommand::Disk(d) => AgentFault::Disk(DiskFault {
            action: match d.action {
                DiskAct::Fill => DiskAction::Fill,
                DiskAct::WritePayload => DiskAction::WritePayload,
                DiskAct::ReadPayload => DiskAction::ReadPayload,
            },
            path: d.path.clone(),
            size_bytes: d
                .size
                .as_deref()
                .map(parse_size_bytes)
                .transpose()
                .map_err(|e| anyhow!("--size: {e}"))?,
            percent: d.percent,
            workers: d.workers,
        }),
        FaultCommand::File(f) => AgentFault::File(FileFault {
            action: match f.action {
                FileAct::Create => FileAction::Create,
                FileAct::ModifyMode => FileAction::ModifyMode,
                FileAct::Delete => FileAction::Delete,
                FileAct::Append => FileAction::Append,
                FileAct::Replace => FileAction::Replace,
                FileAct::Rename => FileAction::Rename,
            },
            path: f.path.clone(),
            data: f.data.clone(),
            count: f.count,
            mode: f
                .mode
                .as_deref()
                .map(|m| {
                    u32::from_str_radix(m.trim_start_matches("0o"), 8)
                        .map_err(|_| anyhow!("--mode: {m:?} is not an octal mode"))
                })
                .transpose()?,
            origin: f.origin.clone(),
            dest: f.dest.clone(),
        }),
        FaultCommand::Clock { offset } => {
            let (neg, body) = match offset.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, offset.trim_start_matches('+')),
            };
            let ms = millis(body, "offset")? as i64;
            AgentFault::Clock(ClockFault {
                offset_ms: if neg { -ms } else { ms },
            })
        }
        FaultCommand::Host { action } => AgentFault::HostPower(HostPowerFault {
            action: match action {
                HostAction::Reboot => HostPowerAction::Reboot,
                HostAction::Shutdown => HostPowerAction::Shutdown,
            },
        }),
        FaultCommand::UserDefined {
            attack_cmd,
            recover_cmd,
        } => AgentFault::UserDefined(UserDefinedFault {
            attack_cmd: attack_cmd.clone(),
            recover_cmd: recover_cmd.clone(),
        }),
    })
}

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

fn unreachable_daemon(api: &LocalApi, e: &anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(CliError {
        code: 3,
        message: format!(
            "no chaos-agent daemon answers at {} ({e:#}); start one with `chaos-agent serve` (or point --agent / --state-dir at it), or add --foreground to run this fault on its own",
            api.describe()
        ),
    })
}

async fn http_json(
    api: &LocalApi,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<Option<serde_json::Value>> {
    let (status, text) = api
        .request(method, path, body.as_ref())
        .await
        .map_err(|e| unreachable_daemon(api, &e))?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{status}: {message}");
    }
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&text)?))
}

fn print_status(s: &AgentFaultStatus, output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string(s).unwrap_or_default()),
        Output::Text => {
            let measured = s
                .measured
                .map(|m| format!("  measured {m:.1}"))
                .unwrap_or_default();
            println!(
                "{}  {}  {}  via {}  until {}{}{}",
                s.id,
                s.label,
                s.state,
                s.mechanism,
                s.lease_until.format("%H:%M:%S%.3f"),
                measured,
                s.error
                    .as_ref()
                    .map(|e| format!("  error: {e}"))
                    .unwrap_or_default()
            )
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let name = args
                .name
                .clone()
                .unwrap_or_else(daemon::capabilities::hostname);
            let usage = |message: String| anyhow::Error::new(CliError { code: 2, message });
            let join_token = match &args.join_token_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| usage(format!("--join-token-file {}: {e}", path.display())))?;
                    let token = text.trim().to_string();
                    if token.is_empty() {
                        return Err(usage(format!(
                            "--join-token-file {}: the file is empty",
                            path.display()
                        )));
                    }
                    Some(token)
                }
                None => None,
            };
            let ca_pem = match &args.ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| usage(format!("--ca-file {}: {e}", path.display())))?,
                ),
                None => None,
            };
            let client_identity = match (&args.tls_cert_file, &args.tls_key_file) {
                (Some(cert), Some(key)) => {
                    let read = |p: &PathBuf, flag: &str| {
                        std::fs::read(p).map_err(|e| usage(format!("{flag} {}: {e}", p.display())))
                    };
                    Some((read(cert, "--tls-cert-file")?, read(key, "--tls-key-file")?))
                }
                _ => None,
            };
            if let Some(hub) = &args.hub {
                // Checked here so a bad URL or CA file is a usage error, not a retry loop.
                let urls = daemon::hub_link::hub_urls(hub);
                if urls.is_empty() {
                    return Err(usage("--hub: no URL given".into()));
                }
                for url in &urls {
                    daemon::hub_link::endpoint(url, ca_pem.as_deref(), client_identity.as_ref())
                        .map_err(|e| usage(format!("--hub {url}: {e}")))?;
                }
            }
            let rest = match (args.rest_listen, args.rest_socket) {
                (Some(_), Some(_)) => {
                    return Err(usage(
                        "give --rest-listen or --rest-socket, not both".into(),
                    ))
                }
                (Some(addr), None) => RestListen::Tcp(addr),
                (None, Some(path)) => RestListen::Unix(path),
                (None, None) => {
                    RestListen::Unix(args.state_dir.join(crate::local_api::SOCKET_FILE))
                }
            };
            let (listen, state) = (rest.clone(), args.state_dir.clone());
            daemon::serve(
                ServeConfig {
                    hub: args.hub,
                    name,
                    environment: args.environment,
                    labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
                    state_dir: args.state_dir,
                    rest,
                    join_token,
                    ca_pem,
                    client_identity,
                    options: InjectorOptions {
                        disabled_mechanisms: args.disable_mechanisms,
                        ..injector_options(
                            &args.allow,
                            args.allow_clock_skew,
                            args.allow_host_power,
                        )
                    },
                },
                move |d, s| crate::rest::serve(listen, state, d, s),
            )
            .await
        }
        Command::Attack(args) => attack(args).await,
        Command::List(c) => {
            let api = LocalApi::resolve(c.agent.as_deref(), &c.state_dir)?;
            let v = http_json(&api, Method::GET, "/api/v1/faults", None)
                .await?
                .unwrap_or_default();
            let items: Vec<AgentFaultStatus> =
                serde_json::from_value(v["items"].clone()).unwrap_or_default();
            if c.out.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                println!("no faults in force");
            } else {
                for s in &items {
                    print_status(s, Output::Text);
                }
            }
            Ok(())
        }
        Command::Recover(r) => recover(r).await,
        Command::Watchdog(w) => watchdog(w).await,
        Command::Mechanisms(o) => {
            let m = tokio::task::spawn_blocking(crate::injectors::probe_mechanisms).await?;
            if o.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                let v = serde_json::to_value(&m)?;
                for (k, v) in v.as_object().into_iter().flatten() {
                    if k != "notes" {
                        println!("{k:<18} {}", if v == true { "yes" } else { "no" });
                    }
                }
                for n in &m.notes {
                    println!("note: {n}");
                }
            }
            Ok(())
        }
    }
}

async fn watchdog(w: WatchdogArgs) -> anyhow::Result<()> {
    let usage = |message: String| anyhow::Error::new(CliError { code: 2, message });
    let at = chrono::DateTime::parse_from_rfc3339(&w.at)
        .map_err(|e| usage(format!("--at {:?}: not an RFC 3339 instant ({e})", w.at)))?
        .with_timezone(&chrono::Utc);
    let endpoint = crate::watchdog::Endpoint::parse(&w.endpoint).map_err(usage)?;
    let calls: Vec<chaoshub_schema::agent::RevertCall> = serde_json::from_str(&w.calls)
        .map_err(|e| usage(format!("--calls: not a JSON array of calls ({e})")))?;
    let retry_for = parse_duration(&w.retry_for)
        .map_err(|e| usage(format!("--retry-for {:?}: {e}", w.retry_for)))?;
    let ok = tokio::task::spawn_blocking(move || {
        crate::watchdog::run(&endpoint, at, &calls, retry_for, &mut |event| {
            println!("{event}")
        })
    })
    .await?;
    if ok {
        Ok(())
    } else {
        Err(anyhow::Error::new(CliError {
            code: 1,
            message: "a revert call failed (see the lines above)".into(),
        }))
    }
}

async fn attack(args: AttackArgs) -> anyhow::Result<()> {
    let duration = match (&args.until, args.duration.is_empty()) {
        (Some(_), false) => bail!("give --duration or --until, not both"),
        (None, true) => bail!("--duration is required (e.g. --duration 30s), or --until"),
        (Some(until), true) => {
            let until = chrono::DateTime::parse_from_rfc3339(until)
                .map_err(|e| anyhow!("--until {until:?}: not an RFC 3339 instant ({e})"))?;
            let left = until.with_timezone(&chrono::Utc) - chrono::Utc::now();
            left.to_std()
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| anyhow!("--until {until} is already past"))?
        }
        (None, false) => parse_duration(&args.duration).map_err(|e| anyhow!("--duration: {e}"))?,
    };
    if duration.is_zero() {
        bail!("--duration must be positive");
    }
    let fault = fault_of(&args.fault)?;
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4()));
    if !args.foreground {
        let api = LocalApi::resolve(args.agent.as_deref(), &args.state_dir)?;
        let body = serde_json::json!({
            "id": id,
            "fault": fault,
            "durationMs": duration.as_millis() as u64,
        });
        let v = http_json(&api, Method::POST, "/api/v1/faults", Some(body))
            .await?
            .ok_or_else(|| anyhow!("the daemon answered with an empty body"))?;
        let status: AgentFaultStatus = serde_json::from_value(v)?;
        print_status(&status, args.output);
        return Ok(());
    }
    foreground(args, id, fault, duration).await
}

/// Applies the fault in this process, holds it, removes it.
async fn foreground(
    args: AttackArgs,
    id: String,
    fault: AgentFault,
    duration: Duration,
) -> anyhow::Result<()> {
    let options = injector_options(&args.allow, args.allow_clock_skew, args.allow_host_power);
    let state_dir = args.state_dir.clone();
    let (table, _) = tokio::task::spawn_blocking(move || daemon::open_table(&state_dir, &options))
        .await?
        .context("cannot open the journal")?;
    let lease = chrono::Utc::now()
        + chrono::Duration::from_std(duration).map_err(|e| anyhow!("--duration: {e}"))?;
    let t = table.clone();
    let fid = id.clone();
    let status = match tokio::task::spawn_blocking(move || t.inject(&fid, fault, lease)).await? {
        Ok(s) => s,
        Err(e) => {
            if args.output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "state": "failed", "error": e.to_string()})
                );
            }
            return Err(anyhow::Error::new(CliError {
                code: 1,
                message: e.to_string(),
            }));
        }
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"id": id, "state": "active", "mechanism": status.mechanism, "leaseUntil": status.lease_until})
        ),
        Output::Text => {
            print_status(&status, Output::Text);
            println!("holding for {}; Ctrl-C removes it now", args.duration);
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let lease_loop = tokio::spawn(daemon::faults::lease_loop(table.clone(), stop_rx));
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = daemon::wait_for_signal() => {}
    }
    let _ = stop_tx.send(true);
    let _ = lease_loop.await;
    let t = table.clone();
    let removals = tokio::task::spawn_blocking(move || t.recover_all()).await?;
    let failed: Vec<_> = removals
        .into_iter()
        .filter_map(|r| r.result.err().map(|e| format!("{}: {e}", r.id)))
        .collect();
    if !failed.is_empty() {
        bail!("could not remove: {}", failed.join("; "));
    }
    match args.output {
        Output::Json => println!("{}", serde_json::json!({"id": id, "state": "removed"})),
        Output::Text => println!("{id} removed"),
    }
    Ok(())
}

async fn recover(r: RecoverArgs) -> anyhow::Result<()> {
    let api = LocalApi::resolve(r.client.agent.as_deref(), &r.client.state_dir)?;
    match (&r.id, r.all) {
        (Some(id), false) => {
            http_json(&api, Method::DELETE, &format!("/api/v1/faults/{id}"), None).await?;
            println!("{id} removed");
            Ok(())
        }
        (None, true) => {
            // A running daemon removes its own faults; without one, the journal is the truth.
            let listed = http_json(&api, Method::GET, "/api/v1/faults", None).await;
            match listed {
                Ok(v) => {
                    let items: Vec<AgentFaultStatus> = v
                        .map(|v| serde_json::from_value(v["items"].clone()).unwrap_or_default())
                        .unwrap_or_default();
                    for s in items {
                        http_json(
                            &api,
                            Method::DELETE,
                            &format!("/api/v1/faults/{}", s.id),
                            None,
                        )
                        .await?;
                        println!("{} removed", s.id);
                    }
                    Ok(())
                }
                Err(_) => {
                    let state_dir = r.client.state_dir.clone();
                    let options = InjectorOptions::default();
                    // Opening the table replays (and so removes) whatever the journal lists.
                    let (table, _) = tokio::task::spawn_blocking(move || {
                        daemon::open_table(&state_dir, &options)
                    })
                    .await??;
                    drop(table);
                    println!(
                        "no daemon at {}; removed what the journal in {} listed",
                        api.describe(),
                        r.client.state_dir.display()
                    );
                    Ok(())
                }
            }
        }
        _ => bail!("give a fault id, or --all"),
    }
}
