//! Pure translation of a manifest into a host fault the SSM adapter can run, independent of the
//! documents that will carry it (own scripts or AWSFIS-Run-* documents). No network here.
//!
//! Everything a user wrote that ends up in a shell script is either a validated number, a
//! validated name (interface, process), or a string that `scripts.rs` single-quotes.

use chaoshub_schema::agent::parse_rate_bps;
use chaoshub_schema::chaosmesh::network::{Direction, NetworkChaosAction, NetworkChaosSpec};
use chaoshub_schema::chaosmesh::physical_machine_chaos::{
    PhysicalMachineChaosAction as PmAction, PhysicalMachineChaosSpec,
};
use chaoshub_schema::chaosmesh::stress::StressChaosSpec;
use chaoshub_schema::duration::parse_duration;
use chaoshub_schema::Spec;

use crate::{AdapterError, FaultRequest};

/// Annotation naming the port a partition blackholes (Chaos Mesh has no such field; an
/// annotation keeps the manifest valid Chaos Mesh).
pub const PORT_ANNOTATION: &str = "chaoshub.dev/port";
/// Annotation naming the protocol of that port: `tcp` (default) or `udp`.
pub const PROTOCOL_ANNOTATION: &str = "chaoshub.dev/protocol";

/// A size: bytes, or a percentage (of memory for stress, of the filesystem for disk fill).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Bytes(u64),
    Percent(u8),
}

/// Which way traffic is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficDirection {
    /// Packets the instance sends (`to`, FIS `egress`).
    Egress,
    /// Packets the instance receives (`from`, FIS `ingress`).
    Ingress,
    Both,
}

impl TrafficDirection {
    pub fn egress(self) -> bool {
        matches!(self, Self::Egress | Self::Both)
    }
    pub fn ingress(self) -> bool {
        matches!(self, Self::Ingress | Self::Both)
    }
}

/// Which process a kill hits.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessRef {
    Pid(u32),
    Name(String),
}

/// What one injection does on one instance.
#[derive(Debug, Clone, PartialEq)]
pub enum HostFault {
    Stress {
        /// CPU workers; 0 means one per CPU.
        cpu_workers: Option<u32>,
        cpu_load: u8,
        memory: Option<(u32, Size)>,
        /// Raw stress-ng arguments (StressChaos `stressngStressors`).
        stress_ng: Option<String>,
    },
    Delay {
        device: Option<String>,
        latency_ms: f64,
        jitter_ms: f64,
        correlation: Option<f64>,
    },
    Loss {
        device: Option<String>,
        percent: f64,
        destinations: Vec<String>,
    },
    /// netem duplicating (`duplicate`) or corrupting (`corrupt`) `percent` of the packets the
    /// interface sends.
    Netem {
        device: Option<String>,
        effect: &'static str,
        percent: f64,
        correlation: Option<f64>,
    },
    /// Egress shaped to `rate_bps` by an HTB class (burst `buffer_bytes`) over a byte FIFO of
    /// `limit_bytes`; only packets to `destinations` when any are listed.
    Bandwidth {
        device: Option<String>,
        rate_bps: u64,
        limit_bytes: u64,
        buffer_bytes: u64,
        destinations: Vec<String>,
    },
    Partition {
        device: Option<String>,
        direction: TrafficDirection,
        peers: Vec<String>,
        port: Option<u16>,
        protocol: String,
    },
    DiskFill {
        path: String,
        size: Size,
        fallocate: bool,
    },
    ProcessKill {
        process: ProcessRef,
        signal: i32,
        recover_cmd: Option<String>,
    },
    UserDefined {
        attack: String,
        recover: Option<String>,
    },
}

/// A translated fault: what to do, for how long, and the fields it had to ignore.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpecOnHost {
    pub kind: &'static str,
    pub action: String,
    pub fault: HostFault,
    pub ignored: Vec<String>,
}

impl HostFault {
    /// A one-line description for plans and logs.
    pub fn summary(&self) -> String {
        match self {
            HostFault::Stress {
                cpu_workers,
                cpu_load,
                memory,
                stress_ng,
            } => {
                let mut parts = Vec::new();
                if let Some(w) = cpu_workers {
                    let who = if *w == 0 {
                        "one worker per CPU".to_string()
                    } else {
                        format!("{w} worker(s)")
                    };
                    parts.push(format!("cpu {cpu_load}% load on {who}"));
                }
                if let Some((w, size)) = memory {
                    parts.push(format!("memory {} on {w} worker(s)", size_text(*size)));
                }
                if let Some(args) = stress_ng {
                    parts.push(format!("stress-ng {args}"));
                }
                parts.join(", ")
            }
            HostFault::Delay {
                latency_ms,
                jitter_ms,
                ..
            } => format!("delay {latency_ms}ms ± {jitter_ms}ms"),
            HostFault::Loss { percent, .. } => format!("loss {percent}% of outgoing packets"),
            HostFault::Netem {
                effect, percent, ..
            } => format!("{effect} {percent}% of outgoing packets"),
            HostFault::Bandwidth {
                rate_bps,
                destinations,
                ..
            } => {
                let to = if destinations.is_empty() {
                    String::new()
                } else {
                    format!(" to {}", destinations.join(", "))
                };
                format!("bandwidth {rate_bps} bit/s for outgoing packets{to}")
            }
            HostFault::Partition {
                peers,
                port,
                protocol,
                ..
            } => match port {
                Some(p) => format!("blackhole {protocol} port {p}"),
                None => format!("partition from {}", peers.join(", ")),
            },
            HostFault::DiskFill { path, size, .. } => {
                format!("fill {} at {path}", size_text(*size))
            }
            HostFault::ProcessKill {
                process, signal, ..
            } => match process {
                ProcessRef::Pid(p) => format!("signal {signal} to pid {p}"),
                ProcessRef::Name(n) => format!("signal {signal} to processes named {n}"),
            },
            HostFault::UserDefined { .. } => "user-defined attack command".into(),
        }
    }
}

fn size_text(size: Size) -> String {
    match size {
        Size::Bytes(b) => format!("{b} bytes"),
        Size::Percent(p) => format!("{p}%"),
    }
}

fn unsupported(kind: &str, action: &str, message: impl Into<String>) -> AdapterError {
    AdapterError::Unsupported {
        kind: kind.to_string(),
        action: action.to_string(),
        message: message.into(),
    }
}

/// Sizes as Chaos Mesh and chaosd write them: a number with an optional unit (`256MB`, `1GiB`,
/// `512K`, dd's `c`/`w`/`b`), or a percentage (`50%`).
pub fn parse_size(text: &str) -> Result<Size, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 256MB or 50%"))?;
    if unit == "%" {
        if !(n > 0.0 && n <= 100.0) {
            return Err(format!(
                "{text:?}: a percentage must be above 0 and at most 100"
            ));
        }
        return Ok(Size::Percent(n.round().clamp(1.0, 100.0) as u8));
    }
    let factor: f64 = match unit {
        "" | "B" | "c" => 1.0,
        "w" => 2.0,
        "b" => 512.0,
        "kB" | "KB" => 1e3,
        "K" | "KiB" | "k" => 1024.0,
        "MB" => 1e6,
        "M" | "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1e12,
        "T" | "TiB" => 1024f64.powi(4),
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (B, KB, K/KiB, MB, M/MiB, GB, G/GiB, TB, T/TiB, %)"
            ))
        }
    };
    let bytes = (n * factor).round();
    if !(1.0..=1e18).contains(&bytes) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Size::Bytes(bytes as u64))
}

/// A percentage written as a string (`"25"`, `"2.5"`).
fn percent(text: &str, field: &str, kind: &str, action: &str) -> Result<f64, AdapterError> {
    let v: f64 = text.trim().trim_end_matches('%').parse().map_err(|_| {
        unsupported(
            kind,
            action,
            format!("{field} {text:?} is not a percentage"),
        )
    })?;
    if !(0.0..=100.0).contains(&v) {
        return Err(unsupported(
            kind,
            action,
            format!("{field} {text:?} must be between 0 and 100"),
        ));
    }
    Ok(v)
}

fn millis(text: &str, field: &str, kind: &str, action: &str) -> Result<f64, AdapterError> {
    let d = parse_duration(text).map_err(|e| unsupported(kind, action, format!("{field} {e}")))?;
    let ms = d.as_secs_f64() * 1000.0;
    if ms > 3_600_000.0 {
        return Err(unsupported(
            kind,
            action,
            format!("{field} {text} is too long"),
        ));
    }
    // tc takes microsecond resolution; three decimals of a millisecond keep it.
    Ok((ms * 1000.0).round() / 1000.0)
}

/// Interface names go into scripts unquoted-safe only if they are plain kernel names.
pub fn valid_device(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn device(
    value: Option<&String>,
    field: &str,
    kind: &str,
    action: &str,
) -> Result<Option<String>, AdapterError> {
    match value.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(d) if valid_device(d) => Ok(Some(d.to_string())),
        Some(d) => Err(unsupported(
            kind,
            action,
            format!("{field} {d:?} is not a network interface name"),
        )),
    }
}

/// IPv4 addresses or CIDR blocks (`10.0.0.5`, `10.0.0.0/24`). Host names are refused: resolving
/// them on the instance at inject and again at revert could give different addresses, and the
/// revert would then leave rules behind.
fn ipv4_peers(
    list: &[String],
    field: &str,
    kind: &str,
    action: &str,
) -> Result<Vec<String>, AdapterError> {
    let mut out = Vec::new();
    for item in list.iter().flat_map(|s| s.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr_ok = addr.parse::<std::net::Ipv4Addr>().is_ok();
        let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= 32));
        if !addr_ok || !prefix_ok {
            return Err(unsupported(
                kind,
                action,
                format!(
                    "{field} {item:?} is not an IPv4 address or CIDR block; the ssm adapter \
                     takes addresses, not host names, so the revert removes exactly the rules \
                     the inject added"
                ),
            ));
        }
        out.push(item.to_string());
    }
    Ok(out)
}

fn annotation_port(
    fault: &FaultRequest,
    kind: &str,
    action: &str,
) -> Result<(Option<u16>, String), AdapterError> {
    let annotations = &fault.manifest.metadata.annotations;
    let port = match annotations.get(PORT_ANNOTATION) {
        None => None,
        Some(p) => Some(
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    unsupported(
                        kind,
                        action,
                        format!(
                            "annotation {PORT_ANNOTATION} {p:?} is not a port number (1-65535)"
                        ),
                    )
                })?,
        ),
    };
    let protocol = match annotations.get(PROTOCOL_ANNOTATION).map(|s| s.trim()) {
        None | Some("tcp") => "tcp".to_string(),
        Some("udp") => "udp".to_string(),
        Some(other) => {
            return Err(unsupported(
                kind,
                action,
                format!("annotation {PROTOCOL_ANNOTATION} {other:?} must be tcp or udp"),
            ))
        }
    };
    Ok((port, protocol))
}

/// Translates a fault for this adapter; refuses, naming the field, what it cannot do.
pub fn translate(fault: &FaultRequest) -> Result<FaultSpecOnHost, AdapterError> {
    match &fault.manifest.spec {
        Spec::StressChaos(spec) => translate_stress(spec),
        Spec::NetworkChaos(spec) => translate_network(fault, spec),
        Spec::PhysicalMachineChaos(spec) => translate_physical(fault, spec),
        other => Err(unsupported(
            other.kind().as_str(),
            &fault.actions.join(","),
            "the ssm adapter runs StressChaos, NetworkChaos (delay, loss, duplicate, corrupt, bandwidth, partition) and \
             PhysicalMachineChaos (stress-cpu, stress-mem, disk-fill, process, network-delay, \
             network-loss, network-partition, user_defined)",
        )),
    }
}

fn translate_stress(spec: &StressChaosSpec) -> Result<FaultSpecOnHost, AdapterError> {
    const KIND: &str = "StressChaos";
    let mut ignored = Vec::new();
    if !spec.container_names.is_empty() {
        ignored.push("spec.containerNames (instances have no containers)".to_string());
    }
    let stressors = spec.stressors.clone().unwrap_or_default();
    let mut actions = Vec::new();
    let cpu = match &stressors.cpu {
        Some(cpu) => {
            actions.push("cpu");
            if !cpu.options.is_empty() {
                ignored.push("spec.stressors.cpu.options".into());
            }
            let workers = u32::try_from(cpu.workers)
                .ok()
                .filter(|w| *w <= 8192)
                .ok_or_else(|| {
                    unsupported(KIND, "cpu", "spec.stressors.cpu.workers must be 0 to 8192")
                })?;
            let load = cpu.load.unwrap_or(100);
            let load = u8::try_from(load)
                .ok()
                .filter(|l| *l <= 100)
                .ok_or_else(|| {
                    unsupported(KIND, "cpu", "spec.stressors.cpu.load must be 0 to 100")
                })?;
            Some((workers, load))
        }
        None => None,
    };
    let memory = match &stressors.memory {
        Some(mem) => {
            actions.push("memory");
            if !mem.options.is_empty() {
                ignored.push("spec.stressors.memory.options".into());
            }
            if mem.oom_score_adj != 0 {
                ignored.push("spec.stressors.memory.oomScoreAdj".into());
            }
            let workers = u32::try_from(mem.workers)
                .ok()
                .filter(|w| (1..=8192).contains(w))
                .ok_or_else(|| {
                    unsupported(
                        KIND,
                        "memory",
                        "spec.stressors.memory.workers must be 1 to 8192",
                    )
                })?;
            let size = match &mem.size {
                Some(s) => parse_size(s).map_err(|e| {
                    unsupported(KIND, "memory", format!("spec.stressors.memory.size {e}"))
                })?,
                None => Size::Percent(80),
            };
            Some((workers, size))
        }
        None => None,
    };
    let stress_ng = spec
        .stressng_stressors
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if stress_ng.is_some() {
        actions.push("stress-ng");
    }
    if cpu.is_none() && memory.is_none() && stress_ng.is_none() {
        return Err(unsupported(KIND, "", "needs at least one stressor"));
    }
    Ok(FaultSpecOnHost {
        kind: KIND,
        action: actions.join(","),
        fault: HostFault::Stress {
            cpu_workers: cpu.map(|c| c.0),
            cpu_load: cpu.map_or(100, |c| c.1),
            memory,
            stress_ng,
        },
        ignored,
    })
}

fn translate_network(
    fault: &FaultRequest,
    spec: &NetworkChaosSpec,
) -> Result<FaultSpecOnHost, AdapterError> {
    const KIND: &str = "NetworkChaos";
    let action = spec.action;
    let a = action.as_str();
    let mut ignored = Vec::new();
    if spec.target.is_some() {
        ignored.push(
            "spec.target (pods are not EC2 instances; name peers in spec.externalTargets)".into(),
        );
    }
    if spec.target_device.is_some() {
        ignored.push("spec.targetDevice".into());
    }
    let dev = device(spec.device.as_ref(), "spec.device", KIND, a)?;
    let host_fault = match action {
        NetworkChaosAction::Delay => {
            let Some(delay) = &spec.delay else {
                return Err(unsupported(KIND, a, "spec.delay is required"));
            };
            // Dropping either would run a different fault than the one asked for (in order,
            // or on every peer instead of one), so both are refused rather than ignored.
            if delay.reorder.is_some() {
                return Err(unsupported(
                    KIND,
                    a,
                    "spec.delay.reorder is not supported by the ssm adapter's delay script (a \
                     plain netem delay); remove it, or run the reorder on a native agent or \
                     docker environment",
                ));
            }
            if !spec.external_targets.is_empty() {
                return Err(unsupported(
                    KIND,
                    a,
                    "spec.externalTargets is not supported with delay by the ssm adapter (its \
                     delay applies to every packet the interface sends); remove it to delay all \
                     traffic, use a native agent or docker environment for a per-peer delay, or \
                     loss / partition, which ssm limits to the listed addresses",
                ));
            }
            HostFault::Delay {
                device: dev,
                latency_ms: millis(&delay.latency, "spec.delay.latency", KIND, a)?,
                jitter_ms: match &delay.jitter {
                    Some(j) => millis(j, "spec.delay.jitter", KIND, a)?,
                    None => 0.0,
                },
                correlation: match &delay.correlation {
                    Some(c) => Some(percent(c, "spec.delay.correlation", KIND, a)?),
                    None => None,
                },
            }
        }
        NetworkChaosAction::Duplicate | NetworkChaosAction::Corrupt => {
            let (effect, pct, correlation) = match (action, &spec.duplicate, &spec.corrupt) {
                (NetworkChaosAction::Duplicate, Some(d), _) => {
                    ("duplicate", &d.duplicate, &d.correlation)
                }
                (NetworkChaosAction::Corrupt, _, Some(c)) => ("corrupt", &c.corrupt, &c.correlation),
                _ => return Err(unsupported(KIND, a, format!("spec.{a} is required"))),
            };
            // Like the delay, a plain root netem: limiting it to peers would be a different
            // fault, so that is refused rather than ignored.
            if !spec.external_targets.is_empty() {
                return Err(unsupported(
                    KIND,
                    a,
                    format!(
                        "spec.externalTargets is not supported with {a} by the ssm adapter (its \
                         netem applies to every packet the interface sends); remove it, or use a \
                         native agent or docker environment for a per-peer {a}"
                    ),
                ));
            }
            if spec.direction != Direction::To {
                ignored.push(format!("spec.direction ({a} applies to outgoing packets)"));
            }
            HostFault::Netem {
                device: dev,
                effect,
                percent: percent(pct, &format!("spec.{a}.{a}"), KIND, a)?,
                correlation: match correlation {
                    Some(c) => Some(percent(c, &format!("spec.{a}.correlation"), KIND, a)?),
                    None => None,
                },
            }
        }
        NetworkChaosAction::Loss => {
            let Some(loss) = &spec.loss else {
                return Err(unsupported(KIND, a, "spec.loss is required"));
            };
            if loss.correlation.is_some() {
                ignored
                    .push("spec.loss.correlation (loss is drawn independently per packet)".into());
            }
            if spec.direction != Direction::To {
                ignored.push("spec.direction (loss applies to outgoing packets)".into());
            }
            HostFault::Loss {
                device: dev,
                percent: percent(&loss.loss, "spec.loss.loss", KIND, a)?,
                destinations: ipv4_peers(&spec.external_targets, "spec.externalTargets", KIND, a)?,
            }
        }
        NetworkChaosAction::Bandwidth => {
            let Some(bw) = &spec.bandwidth else {
                return Err(unsupported(KIND, a, "spec.bandwidth is required"));
            };
            // The same reading of tc's rate units as the native agent's mapping (bit vs bytes).
            let rate_bps = parse_rate_bps(&bw.rate)
                .map_err(|e| unsupported(KIND, a, format!("spec.bandwidth.rate {e}")))?;
            if bw.peakrate.is_some() || bw.minburst.is_some() {
                ignored.push(
                    "spec.bandwidth.peakrate / minburst (an HTB class shapes at rate, with buffer \
                     as its burst; there is no second, peak-rate bucket)"
                        .into(),
                );
            }
            if spec.direction != Direction::To {
                ignored.push("spec.direction (bandwidth shapes outgoing packets)".into());
            }
            HostFault::Bandwidth {
                device: dev,
                rate_bps,
                limit_bytes: u64::from(bw.limit),
                buffer_bytes: u64::from(bw.buffer),
                destinations: ipv4_peers(&spec.external_targets, "spec.externalTargets", KIND, a)?,
            }
        }
        NetworkChaosAction::Partition => {
            let peers = ipv4_peers(&spec.external_targets, "spec.externalTargets", KIND, a)?;
            let (port, protocol) = annotation_port(fault, KIND, a)?;
            if peers.is_empty() && port.is_none() {
                return Err(unsupported(
                    KIND,
                    a,
                    format!(
                        "a partition of a whole instance would cut it off from SSM too (and from \
                         the command that removes the fault); name the peers in \
                         spec.externalTargets or the port in annotation {PORT_ANNOTATION}"
                    ),
                ));
            }
            HostFault::Partition {
                device: dev,
                direction: match spec.direction {
                    Direction::To => TrafficDirection::Egress,
                    Direction::From => TrafficDirection::Ingress,
                    Direction::Both => TrafficDirection::Both,
                },
                peers,
                port,
                protocol,
            }
        }
        other => {
            return Err(unsupported(
                KIND,
                other.as_str(),
                "the ssm adapter runs NetworkChaos delay, loss, duplicate, corrupt, bandwidth and partition",
            ))
        }
    };
    Ok(FaultSpecOnHost {
        kind: KIND,
        action: a.to_string(),
        fault: host_fault,
        ignored,
    })
}

fn translate_physical(
    fault: &FaultRequest,
    spec: &PhysicalMachineChaosSpec,
) -> Result<FaultSpecOnHost, AdapterError> {
    const KIND: &str = "PhysicalMachineChaos";
    let a = spec.action.as_str();
    let missing = |block: &str| unsupported(KIND, a, format!("spec.{block} is required"));
    let mut ignored = Vec::new();
    let host_fault = match spec.action {
        PmAction::StressCpu => {
            let b = spec
                .stress_cpu
                .as_ref()
                .ok_or_else(|| missing("stress-cpu"))?;
            if !b.options.is_empty() {
                ignored.push("spec.stress-cpu.options".into());
            }
            let workers = u32::try_from(b.workers.unwrap_or(0))
                .ok()
                .filter(|w| *w <= 8192)
                .ok_or_else(|| unsupported(KIND, a, "spec.stress-cpu.workers must be 0 to 8192"))?;
            let load = u8::try_from(b.load.unwrap_or(100))
                .ok()
                .filter(|l| *l <= 100)
                .ok_or_else(|| unsupported(KIND, a, "spec.stress-cpu.load must be 0 to 100"))?;
            HostFault::Stress {
                cpu_workers: Some(workers),
                cpu_load: load,
                memory: None,
                stress_ng: None,
            }
        }
        PmAction::StressMem => {
            let b = spec
                .stress_mem
                .as_ref()
                .ok_or_else(|| missing("stress-mem"))?;
            if !b.options.is_empty() {
                ignored.push("spec.stress-mem.options".into());
            }
            let size = match &b.size {
                Some(s) => parse_size(s)
                    .map_err(|e| unsupported(KIND, a, format!("spec.stress-mem.size {e}")))?,
                None => Size::Percent(80),
            };
            HostFault::Stress {
                cpu_workers: None,
                cpu_load: 100,
                memory: Some((1, size)),
                stress_ng: None,
            }
        }
        PmAction::DiskFill => {
            let b = spec
                .disk_fill
                .as_ref()
                .ok_or_else(|| missing("disk-fill"))?;
            let size = match &b.size {
                Some(s) => parse_size(s)
                    .map_err(|e| unsupported(KIND, a, format!("spec.disk-fill.size {e}")))?,
                None => return Err(unsupported(KIND, a, "spec.disk-fill.size is required")),
            };
            let path = b
                .path
                .clone()
                .filter(|p| !p.trim().is_empty())
                .unwrap_or_else(|| "/tmp".to_string());
            if !path.starts_with('/') {
                return Err(unsupported(
                    KIND,
                    a,
                    format!("spec.disk-fill.path {path:?} must be an absolute path"),
                ));
            }
            HostFault::DiskFill {
                path,
                size,
                fallocate: b.fill_by_fallocate.unwrap_or(true),
            }
        }
        PmAction::Process => {
            let b = spec.process.as_ref().ok_or_else(|| missing("process"))?;
            let name = b
                .process
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| unsupported(KIND, a, "spec.process.process is required"))?;
            let process = match name.parse::<u32>() {
                Ok(pid) if pid > 1 => ProcessRef::Pid(pid),
                Ok(_) => {
                    return Err(unsupported(
                        KIND,
                        a,
                        "spec.process.process must not be pid 0 or 1",
                    ))
                }
                Err(_) => ProcessRef::Name(name.to_string()),
            };
            let signal = b.signal.unwrap_or(9);
            let signal = i32::try_from(signal)
                .ok()
                .filter(|s| (1..=64).contains(s))
                .ok_or_else(|| {
                    unsupported(
                        KIND,
                        a,
                        format!("spec.process.signal {signal} is not 1 to 64"),
                    )
                })?;
            HostFault::ProcessKill {
                process,
                signal,
                recover_cmd: b.recover_cmd.clone().filter(|c| !c.trim().is_empty()),
            }
        }
        PmAction::NetworkDelay => {
            let b = spec
                .network_delay
                .as_ref()
                .ok_or_else(|| missing("network-delay"))?;
            for (set, field) in [
                (b.ip_address.is_some(), "ip-address"),
                (b.hostname.is_some(), "hostname"),
                (b.egress_port.is_some(), "egress-port"),
                (b.source_port.is_some(), "source-port"),
                (b.ip_protocol.is_some(), "ip-protocol"),
                (b.accept_tcp_flags.is_some(), "accept-tcp-flags"),
            ] {
                if set {
                    ignored.push(format!(
                        "spec.network-delay.{field} (delay applies to every packet the \
                         interface sends)"
                    ));
                }
            }
            let latency = b
                .latency
                .as_deref()
                .ok_or_else(|| unsupported(KIND, a, "spec.network-delay.latency is required"))?;
            HostFault::Delay {
                device: device(b.device.as_ref(), "spec.network-delay.device", KIND, a)?,
                latency_ms: millis(latency, "spec.network-delay.latency", KIND, a)?,
                jitter_ms: match &b.jitter {
                    Some(j) => millis(j, "spec.network-delay.jitter", KIND, a)?,
                    None => 0.0,
                },
                correlation: match &b.correlation {
                    Some(c) => Some(percent(c, "spec.network-delay.correlation", KIND, a)?),
                    None => None,
                },
            }
        }
        PmAction::NetworkLoss => {
            let b = spec
                .network_loss
                .as_ref()
                .ok_or_else(|| missing("network-loss"))?;
            for (set, field) in [
                (b.hostname.is_some(), "hostname"),
                (b.egress_port.is_some(), "egress-port"),
                (b.source_port.is_some(), "source-port"),
                (b.ip_protocol.is_some(), "ip-protocol"),
                (b.correlation.is_some(), "correlation"),
            ] {
                if set {
                    ignored.push(format!("spec.network-loss.{field}"));
                }
            }
            let pct = b
                .percent
                .as_deref()
                .ok_or_else(|| unsupported(KIND, a, "spec.network-loss.percent is required"))?;
            HostFault::Loss {
                device: device(b.device.as_ref(), "spec.network-loss.device", KIND, a)?,
                percent: percent(pct, "spec.network-loss.percent", KIND, a)?,
                destinations: ipv4_peers(
                    b.ip_address.as_slice(),
                    "spec.network-loss.ip-address",
                    KIND,
                    a,
                )?,
            }
        }
        PmAction::NetworkPartition => {
            let b = spec
                .network_partition
                .as_ref()
                .ok_or_else(|| missing("network-partition"))?;
            if b.hostname.is_some() {
                return Err(unsupported(
                    KIND,
                    a,
                    "spec.network-partition.hostname: the ssm adapter takes addresses \
                     (ip-address), not host names",
                ));
            }
            if b.accept_tcp_flags.is_some() {
                ignored.push("spec.network-partition.accept-tcp-flags".into());
            }
            let peers = ipv4_peers(
                b.ip_address.as_slice(),
                "spec.network-partition.ip-address",
                KIND,
                a,
            )?;
            let (port, mut protocol) = annotation_port(fault, KIND, a)?;
            if let Some(p) = b.ip_protocol.as_deref().map(str::trim) {
                match p {
                    "tcp" | "udp" => protocol = p.to_string(),
                    "" | "all" => {}
                    other => {
                        return Err(unsupported(
                            KIND,
                            a,
                            format!(
                                "spec.network-partition.ip-protocol {other:?}: tcp, udp or all"
                            ),
                        ))
                    }
                }
            }
            if peers.is_empty() && port.is_none() {
                return Err(unsupported(
                    KIND,
                    a,
                    format!(
                        "a partition of a whole instance would cut it off from SSM too; name \
                         spec.network-partition.ip-address or the port in annotation \
                         {PORT_ANNOTATION}"
                    ),
                ));
            }
            let direction = match b.direction.as_deref().map(str::trim) {
                None | Some("") | Some("to") => TrafficDirection::Egress,
                Some("from") => TrafficDirection::Ingress,
                Some("both") => TrafficDirection::Both,
                Some(other) => {
                    return Err(unsupported(
                        KIND,
                        a,
                        format!("spec.network-partition.direction {other:?}: to, from or both"),
                    ))
                }
            };
            HostFault::Partition {
                device: device(b.device.as_ref(), "spec.network-partition.device", KIND, a)?,
                direction,
                peers,
                port,
                protocol,
            }
        }
        PmAction::UserDefined => {
            let b = spec
                .user_defined
                .as_ref()
                .ok_or_else(|| missing("user_defined"))?;
            let attack = b
                .attack_cmd
                .clone()
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| unsupported(KIND, a, "spec.user_defined.attackCmd is required"))?;
            HostFault::UserDefined {
                attack,
                recover: b.recover_cmd.clone().filter(|c| !c.trim().is_empty()),
            }
        }
        other => {
            return Err(unsupported(
                KIND,
                other.as_str(),
                "the ssm adapter runs PhysicalMachineChaos stress-cpu, stress-mem, disk-fill, \
                 process, network-delay, network-loss, network-partition and user_defined",
            ))
        }
    };
    if !spec.address.is_empty() {
        ignored.push("spec.address (instances are chosen by the selector)".into());
    }
    Ok(FaultSpecOnHost {
        kind: KIND,
        action: a.to_string(),
        fault: host_fault,
        ignored,
    })
}

/// The fault's duration: the hub's deadline when it has one (the lease), else the manifest's
/// `duration`.
pub fn duration_secs(fault: &FaultRequest) -> Result<u64, AdapterError> {
    if let Some(deadline) = fault.deadline {
        let left = (deadline - chrono::Utc::now()).num_milliseconds();
        return Ok((left.max(0) as u64).div_ceil(1000).max(1));
    }
    let text = fault
        .manifest
        .fault()
        .and_then(|f| f.duration())
        .ok_or_else(|| {
            unsupported(
                fault.kind(),
                &fault.actions.join(","),
                "the ssm adapter needs a duration (spec.duration) so each instance can remove the \
             fault by itself",
            )
        })?;
    let d = parse_duration(text).map_err(|e| {
        unsupported(
            fault.kind(),
            &fault.actions.join(","),
            format!("spec.duration {e}"),
        )
    })?;
    Ok(d.as_secs_f64().ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_chaosd_units() {
        assert_eq!(parse_size("256MB"), Ok(Size::Bytes(256_000_000)));
        assert_eq!(parse_size("1M"), Ok(Size::Bytes(1 << 20)));
        assert_eq!(parse_size("1GiB"), Ok(Size::Bytes(1 << 30)));
        assert_eq!(parse_size("4096"), Ok(Size::Bytes(4096)));
        assert_eq!(parse_size("2b"), Ok(Size::Bytes(1024)));
        assert_eq!(parse_size("50%"), Ok(Size::Percent(50)));
        assert!(parse_size("0%").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn devices_are_plain_names() {
        assert!(valid_device("eth0"));
        assert!(valid_device("ens5"));
        assert!(!valid_device("eth0; reboot"));
        assert!(!valid_device(""));
        assert!(!valid_device("a-very-long-interface-name"));
    }
}
