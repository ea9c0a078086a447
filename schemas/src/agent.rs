//! The native agent's fault vocabulary: what the hub's `native` adapter (and the agent's own CLI
//! and local REST API) ask `chaos-agent` to do.
//!
//! These are already-resolved, unit-normalised instructions — durations in milliseconds, sizes
//! in bytes, rates in bits per second — so the agent never parses Chaos Mesh strings. The hub
//! translates NetworkChaos / StressChaos / PhysicalMachineChaos into them; the gRPC messages in
//! `proto/agent.proto` carry them as JSON.

use serde::{Deserialize, Serialize};

/// One fault the agent applies and later removes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AgentFault {
    Network(NetworkFault),
    Stress(StressFault),
    Process(ProcessFault),
    Disk(DiskFault),
    File(FileFault),
    Clock(ClockFault),
    /// Host reboot / shutdown: refused unless the agent was started with `--allow host-power`.
    HostPower(HostPowerFault),
    /// User-defined attack and recover commands (run with `sh -c`).
    UserDefined(UserDefinedFault),
}

impl AgentFault {
    /// `network/delay`, `stress/cpu`, … — the kind/action pair shown in status and metrics.
    pub fn label(&self) -> String {
        match self {
            AgentFault::Network(n) => format!("network/{}", n.action.as_str()),
            AgentFault::Stress(s) => match (&s.cpu, &s.memory) {
                (Some(_), Some(_)) => "stress/cpu+memory".to_string(),
                (None, Some(_)) => "stress/memory".to_string(),
                _ => "stress/cpu".to_string(),
            },
            AgentFault::Process(p) => format!("process/{}", p.action.as_str()),
            AgentFault::Disk(d) => format!("disk/{}", d.action.as_str()),
            AgentFault::File(f) => format!("file/{}", f.action.as_str()),
            AgentFault::Clock(_) => "clock/skew".to_string(),
            AgentFault::HostPower(h) => format!("host/{}", h.action.as_str()),
            AgentFault::UserDefined(_) => "user-defined/command".to_string(),
        }
    }
}

/// A network namespace to work in: a bind-mounted path (`/run/netns/NAME`) or a process's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum NetnsRef {
    Path(String),
    Pid(u32),
}

impl NetnsRef {
    /// The namespace file to open.
    pub fn path(&self) -> String {
        match self {
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Pid(pid) => format!("/proc/{pid}/ns/net"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkAction {
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

impl NetworkAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            NetworkAction::Delay => "delay",
            NetworkAction::Loss => "loss",
            NetworkAction::Duplicate => "duplicate",
            NetworkAction::Corrupt => "corrupt",
            NetworkAction::Reorder => "reorder",
            NetworkAction::Bandwidth => "bandwidth",
            NetworkAction::Partition => "partition",
            NetworkAction::PortBlackhole => "port-blackhole",
            NetworkAction::Dns => "dns",
            NetworkAction::NicDown => "nic-down",
        }
    }
}

/// Which traffic a network fault applies to, seen from the target host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrafficDirection {
    /// Traffic leaving the target (egress), as Chaos Mesh's `direction: to`.
    #[default]
    To,
    /// Traffic arriving at the target (ingress), as `direction: from`.
    From,
    Both,
}

/// Restricts a network fault to some peers / ports. Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TrafficFilter {
    pub direction: TrafficDirection,
    /// Peer addresses or CIDRs (IPv4 or IPv6).
    pub cidrs: Vec<String>,
    /// Peer host names, resolved by the agent when the fault is applied.
    pub hostnames: Vec<String>,
    /// Peer (remote) ports.
    pub ports: Vec<u16>,
    /// Local ports on the target (for `port-blackhole` and ingress filters).
    pub local_ports: Vec<u16>,
    /// `tcp`, `udp`, `icmp` or empty for all.
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkFault {
    pub action: NetworkAction,
    /// Where: the agent's own namespace when absent.
    #[serde(default)]
    pub netns: Option<NetnsRef>,
    /// Interface to shape (`tc` faults) or take down (`nic-down`); default: every non-loopback
    /// interface with a route, or the device of the default route.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub filter: TrafficFilter,
    /// delay: latency, jitter (ms) and correlation (%).
    #[serde(default)]
    pub latency_ms: f64,
    #[serde(default)]
    pub jitter_ms: f64,
    #[serde(default)]
    pub correlation_pct: f64,
    /// loss / duplicate / corrupt / reorder: share of packets in percent (0–100).
    #[serde(default)]
    pub percent: f64,
    /// reorder: packets sent immediately every `gap` packets.
    #[serde(default)]
    pub reorder_gap: u32,
    /// bandwidth: rate in bits per second, queue limit and bucket size in bytes.
    #[serde(default)]
    pub rate_bps: u64,
    #[serde(default)]
    pub limit_bytes: u64,
    #[serde(default)]
    pub buffer_bytes: u64,
    #[serde(default)]
    pub peakrate_bps: Option<u64>,
    #[serde(default)]
    pub minburst_bytes: Option<u64>,
    /// dns: which names (glob patterns) and what to answer (`error` or `random`).
    #[serde(default)]
    pub dns_patterns: Vec<String>,
    #[serde(default)]
    pub dns_mode: Option<String>,
}

impl NetworkFault {
    pub fn new(action: NetworkAction) -> Self {
        NetworkFault {
            action,
            netns: None,
            device: None,
            filter: TrafficFilter::default(),
            latency_ms: 0.0,
            jitter_ms: 0.0,
            correlation_pct: 0.0,
            percent: 0.0,
            reorder_gap: 0,
            rate_bps: 0,
            limit_bytes: 0,
            buffer_bytes: 0,
            peakrate_bps: None,
            minburst_bytes: None,
            dns_patterns: Vec::new(),
            dns_mode: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StressFault {
    #[serde(default)]
    pub cpu: Option<CpuStress>,
    #[serde(default)]
    pub memory: Option<MemoryStress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuStress {
    /// Worker count (each one a thread or process busy `load_pct` of its time).
    pub workers: u32,
    /// Per-worker load, 1–100.
    pub load_pct: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryStress {
    /// Absolute size in bytes, or
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// a share of total memory in percent.
    #[serde(default)]
    pub percent: Option<f64>,
    #[serde(default = "one")]
    pub workers: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessAction {
    /// Sends `signal` once (default SIGKILL); nothing to recover.
    Kill,
    /// SIGSTOP now, SIGCONT on recovery.
    Stop,
}

impl ProcessAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProcessAction::Kill => "kill",
            ProcessAction::Stop => "stop",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessFault {
    pub action: ProcessAction,
    /// Exactly one of pid, name (exact comm / executable name) or pattern (regex on the
    /// command line).
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    /// Signal number for `kill` (default 9).
    #[serde(default)]
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskAction {
    Fill,
    WritePayload,
    ReadPayload,
}

impl DiskAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            DiskAction::Fill => "fill",
            DiskAction::WritePayload => "write-payload",
            DiskAction::ReadPayload => "read-payload",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskFault {
    pub action: DiskAction,
    /// Directory (fill, payload files are created in it) or file to read.
    pub path: String,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// fill: share of the file system's free space in percent.
    #[serde(default)]
    pub percent: Option<f64>,
    /// payload: parallel I/O workers.
    #[serde(default = "one")]
    pub workers: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileAction {
    Create,
    ModifyMode,
    Delete,
    Append,
    Replace,
    Rename,
}

impl FileAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            FileAction::Create => "create",
            FileAction::ModifyMode => "modify-mode",
            FileAction::Delete => "delete",
            FileAction::Append => "append",
            FileAction::Replace => "replace",
            FileAction::Rename => "rename",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileFault {
    pub action: FileAction,
    pub path: String,
    /// create / append: the content; replace: the replacement.
    #[serde(default)]
    pub data: Option<String>,
    /// append: how many times.
    #[serde(default)]
    pub count: Option<u32>,
    /// modify-mode: octal mode such as 0o000.
    #[serde(default)]
    pub mode: Option<u32>,
    /// replace: the string to replace.
    #[serde(default)]
    pub origin: Option<String>,
    /// rename: the new path.
    #[serde(default)]
    pub dest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClockFault {
    /// Offset applied to the wall clock, in milliseconds (negative: back in time).
    pub offset_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostPowerAction {
    Reboot,
    Shutdown,
}

impl HostPowerAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            HostPowerAction::Reboot => "reboot",
            HostPowerAction::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPowerFault {
    pub action: HostPowerAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserDefinedFault {
    pub attack_cmd: String,
    pub recover_cmd: String,
}

/// Kernel and host mechanisms the agent found at start (probed in a scratch namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct KernelMechanisms {
    pub netem: bool,
    pub tbf: bool,
    pub htb: bool,
    pub u32_filter: bool,
    pub ingress_ifb: bool,
    pub nftables: bool,
    pub nft_numgen: bool,
    pub iptables: bool,
    pub iptables_statistic: bool,
    pub nfqueue: bool,
    pub stress_ng: bool,
    /// Free-form notes (why something is missing).
    pub notes: Vec<String>,
}

/// What an agent reports about one of its faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentFaultStatus {
    pub id: String,
    /// `network/delay`, …
    pub label: String,
    pub fault: AgentFault,
    /// `active`, `removed`, `failed`
    pub state: String,
    /// The mechanism chosen (`tc-netem`, `nfqueue`, `nft-numgen`, `iptables-statistic`,
    /// `tc-tbf`, `threads`, `stress-ng`, …), shown in status.
    pub mechanism: String,
    pub applied_at: chrono::DateTime<chrono::Utc>,
    /// The lease: the agent removes the fault itself at this instant.
    pub lease_until: chrono::DateTime<chrono::Utc>,
    /// Measured value in force, when the injector can tell (CPU load %, bytes held, …).
    #[serde(default)]
    pub measured: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One HTTP call of a timed revert (`chaos-agent watchdog`): what the Docker adapter hands a
/// watchdog container so that a pause, a network disconnect or a resource squeeze ends on time
/// even when the hub is gone. The agent knows nothing of Docker; the adapter writes the calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertCall {
    /// `POST`, `DELETE`…
    pub method: String,
    /// The request path, query included (`/containers/ID/unpause`).
    pub path: String,
    /// A JSON body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Status codes that mean "done" besides 2xx (e.g. 409 "not paused": already reverted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<u16>,
}

/// Parses a size such as `256MiB`, `1GB`, `512KB`, `4096` or `64Mi` into bytes (SI suffixes
/// are powers of 1000, IEC suffixes powers of 1024; `B` is optional).
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("{text:?} is not a size (expected a number with an optional unit such as 256MiB)")
    })?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a rate in tc's notation into bits per second: `bit`, `kbit`, `mbit`, `gbit` are bits
/// per second; `bps`, `kbps`, `mbps`, `gbps` are *bytes* per second (as tc and Chaos Mesh
/// read them); a bare number is bits per second.
pub fn parse_rate_bps(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (expected e.g. 1mbit or 100kbps)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "kibit" => 1024.0,
        "mibit" => 1024.0 * 1024.0,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        other => return Err(format!("{text:?}: unknown rate unit {other:?} (use bit, kbit, mbit, gbit, or bps, kbps, mbps for bytes per second)")),
    };
    let bps = value * mult;
    if !bps.is_finite() || bps < 1.0 || bps > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bps.round() as u64)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_size_bytes("256MiB").unwrap(), 256 * 1024 * 1024);
        assert_eq!(parse_size_bytes("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size_bytes("4096").unwrap(), 4096);
        assert!(parse_size_bytes("12 parsecs").is_err());
        assert_eq!(parse_rate_bps("1mbit").unwrap(), 1_000_000);
        assert_eq!(parse_rate_bps("1mbps").unwrap(), 8_000_000);
        assert_eq!(parse_rate_bps("100kbit").unwrap(), 100_000);
        assert!(parse_rate_bps("fast").is_err());
        assert!(parse_rate_bps("0bit").is_err());
    }
}

/// The generated gRPC protocol (`proto/agent.proto`), with the `grpc` feature.
#[cfg(feature = "grpc")]
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("chaoshub.agent.v1");
}

/// The agent protocol's codec: prost, with 1 KiB buffers where tonic's default is 8 KiB.
/// tonic allocates an encode and a decode buffer up front for every stream and keeps them while
/// it is open, and a hub holds one open stream per connected agent: with the default that was
/// 16 KiB per agent (160 MB for 10,000 agents) for messages that are mostly heartbeats of a few
/// dozen bytes. A larger message (a registration, a fault) grows the buffer in 1 KiB steps.
#[cfg(feature = "grpc")]
#[derive(Debug)]
pub struct AgentCodec<T, U>(std::marker::PhantomData<(T, U)>);

#[cfg(feature = "grpc")]
impl<T, U> Default for AgentCodec<T, U> {
    fn default() -> Self {
        AgentCodec(std::marker::PhantomData)
    }
}

/// The buffers of [`AgentCodec`]: 1 KiB, yielding after 32 KiB (tonic's default).
#[cfg(feature = "grpc")]
pub const AGENT_CODEC_BUFFER: usize = 1024;

#[cfg(feature = "grpc")]
impl<T, U> tonic::codec::Codec for AgentCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<T, U>::raw_encoder(tonic::codec::BufferSettings::new(
            AGENT_CODEC_BUFFER,
            32 * 1024,
        ))
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(tonic::codec::BufferSettings::new(
            AGENT_CODEC_BUFFER,
            32 * 1024,
        ))
    }
}

#[cfg(all(test, feature = "grpc"))]
mod codec_tests {
    use super::proto::{AgentMessage, HubMessage};
    use super::*;
    use tonic::codec::{Codec, Decoder, Encoder};

    #[test]
    fn the_agent_codec_allocates_small_buffers_both_ways() {
        // `BufferSettings` shows its fields only through `Debug`.
        let small = format!(
            "{:?}",
            tonic::codec::BufferSettings::new(AGENT_CODEC_BUFFER, 32 * 1024)
        );
        assert!(small.contains("buffer_size: 1024"), "{small}");
        // The hub's side (decodes agent messages, encodes hub messages) and the agent's.
        let mut hub = AgentCodec::<HubMessage, AgentMessage>::default();
        let mut agent = AgentCodec::<AgentMessage, HubMessage>::default();
        for settings in [
            hub.encoder().buffer_settings(),
            hub.decoder().buffer_settings(),
            agent.encoder().buffer_settings(),
            agent.decoder().buffer_settings(),
        ] {
            assert_eq!(format!("{settings:?}"), small);
        }
    }
}
