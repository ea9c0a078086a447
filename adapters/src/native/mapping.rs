//! Pure translation of Chaos Mesh kinds into the agent's fault vocabulary. Used at submission
//! (`check_fault`, so bad values are refused before anything is stored) and at injection.

use chaoshub_schema::agent::{
    parse_rate_bps, parse_size_bytes, AgentFault, ClockFault, CpuStress, DiskAction, DiskFault,
    FileAction, FileFault, MemoryStress, NetworkAction, NetworkFault, ProcessAction, ProcessFault,
    StressFault, TrafficDirection, TrafficFilter, UserDefinedFault,
};
use chaoshub_schema::chaosmesh::dns::DNSChaosSpec;
use chaoshub_schema::chaosmesh::network::{Direction, NetworkChaosAction, NetworkChaosSpec};
use chaoshub_schema::chaosmesh::physical_machine_chaos::{
    PhysicalMachineChaosAction as Pm, PhysicalMachineChaosSpec,
};
use chaoshub_schema::chaosmesh::stress::StressChaosSpec;
use chaoshub_schema::duration::parse_duration;
use chaoshub_schema::{Manifest, Spec};

/// A value the agent cannot express, or a kind/action it does not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// A bad value at a field path (→ 400).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// Not something the agent runs (→ 422).
    #[error("{kind}/{action}: {message}")]
    Unsupported {
        kind: String,
        action: String,
        message: String,
    },
}

fn invalid(path: &str, message: impl Into<String>) -> MappingError {
    MappingError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

fn unsupported(kind: &str, action: &str, message: impl Into<String>) -> MappingError {
    MappingError::Unsupported {
        kind: kind.to_string(),
        action: action.to_string(),
        message: message.into(),
    }
}

fn ms(text: &str, path: &str) -> Result<f64, MappingError> {
    parse_duration(text)
        .map(|d| d.as_secs_f64() * 1000.0)
        .map_err(|e| invalid(path, e))
}

fn pct(text: &str, path: &str) -> Result<f64, MappingError> {
    let v: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| invalid(path, format!("{text:?} is not a percentage")))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(invalid(path, format!("{v} is not between 0 and 100")));
    }
    Ok(v)
}

/// Sorts Chaos Mesh's mixed address lists into CIDRs and host names.
/// An integer field of the manifest as a `u32` within `range`, or a 400 naming the field.
fn bounded(
    value: i64,
    range: std::ops::RangeInclusive<u32>,
    path: &str,
) -> Result<u32, MappingError> {
    u32::try_from(value)
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            invalid(
                path,
                format!("must be between {} and {}", range.start(), range.end()),
            )
        })
}

/// A memory size as Chaos Mesh writes it: bytes with a unit (`256MB`) or a share of total
/// memory (`25%`).
fn memory_size(size: &str, path: &str) -> Result<(Option<u64>, Option<f64>), MappingError> {
    match size.strip_suffix('%') {
        Some(p) => Ok((None, Some(pct(p, path)?))),
        None => Ok((
            Some(parse_size_bytes(size).map_err(|e| invalid(path, e))?),
            None,
        )),
    }
}

fn split_peers(items: &[String], filter: &mut TrafficFilter) {
    for item in items.iter().flat_map(|s| s.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let host = item.split('/').next().unwrap_or(item);
        if host.parse::<std::net::IpAddr>().is_ok() {
            filter.cidrs.push(item.to_string());
        } else {
            filter.hostnames.push(item.to_string());
        }
    }
}

fn ports(text: &str, path: &str) -> Result<Vec<u16>, MappingError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| invalid(path, format!("{p:?} is not a port number")))
        })
        .collect()
}

/// The agent fault for one target. `peer_addresses` are the addresses of the agents picked by a
/// NetworkChaos `target` selector (resolved by the adapter), added to the peer filter.
pub fn to_agent_fault(
    manifest: &Manifest,
    peer_addresses: &[String],
) -> Result<AgentFault, MappingError> {
    match &manifest.spec {
        Spec::NetworkChaos(spec) => network_chaos(spec, peer_addresses),
        Spec::StressChaos(spec) => stress_chaos(spec),
        Spec::PhysicalMachineChaos(spec) => physical_machine(spec),
        Spec::DNSChaos(spec) => dns_chaos(spec),
        other => Err(unsupported(
            other.kind().as_str(),
            "*",
            "the native agent runs NetworkChaos, StressChaos, DNSChaos and PhysicalMachineChaos",
        )),
    }
}

fn network_chaos(
    spec: &NetworkChaosSpec,
    peer_addresses: &[String],
) -> Result<AgentFault, MappingError> {
    let kind = "NetworkChaos";
    let (action, path) = match spec.action {
        NetworkChaosAction::Delay => (NetworkAction::Delay, "spec.delay"),
        NetworkChaosAction::Loss => (NetworkAction::Loss, "spec.loss"),
        NetworkChaosAction::Duplicate => (NetworkAction::Duplicate, "spec.duplicate"),
        NetworkChaosAction::Corrupt => (NetworkAction::Corrupt, "spec.corrupt"),
        NetworkChaosAction::Bandwidth => (NetworkAction::Bandwidth, "spec.bandwidth"),
        NetworkChaosAction::Partition => (NetworkAction::Partition, "spec"),
        NetworkChaosAction::Netem => {
            return Err(unsupported(
                kind,
                "netem",
                "the native agent applies one netem effect per experiment; use the delay, loss, duplicate or corrupt action (one experiment each)",
            ))
        }
    };
    let mut f = NetworkFault::new(action);
    f.device = spec.device.clone();
    f.filter.direction = match spec.direction {
        Direction::To => TrafficDirection::To,
        Direction::From => TrafficDirection::From,
        Direction::Both => TrafficDirection::Both,
    };
    split_peers(&spec.external_targets, &mut f.filter);
    f.filter.cidrs.extend(peer_addresses.iter().cloned());
    if spec.target.is_some() && peer_addresses.is_empty() && spec.external_targets.is_empty() {
        // A target selector that picked nobody must not widen the fault to all traffic.
        return Err(invalid(
            "spec.target",
            "the target selector matched no agent with a known address",
        ));
    }
    match action {
        NetworkAction::Delay => {
            let d = spec
                .delay
                .as_ref()
                .ok_or_else(|| invalid(path, "is required for action delay"))?;
            f.latency_ms = ms(&d.latency, "spec.delay.latency")?;
            if let Some(j) = &d.jitter {
                f.jitter_ms = ms(j, "spec.delay.jitter")?;
            }
            if let Some(c) = &d.correlation {
                f.correlation_pct = pct(c, "spec.delay.correlation")?;
            }
            if let Some(r) = &d.reorder {
                // netem's `delay X reorder P gap G`: P% of packets (every G-th at most) go at
                // once, the rest wait X. The agent's reorder fault is exactly that, on netem or
                // on its NFQUEUE engine; it holds the others for a fixed latency, without jitter.
                if f.jitter_ms > 0.0 {
                    return Err(unsupported(
                        kind,
                        "delay",
                        "spec.delay.jitter together with spec.delay.reorder is not supported by the native agent (reordered traffic is held for a fixed latency); drop the jitter, or run the jitter as its own delay experiment",
                    ));
                }
                f = NetworkFault {
                    action: NetworkAction::Reorder,
                    percent: pct(&r.reorder, "spec.delay.reorder.reorder")?,
                    correlation_pct: match &r.correlation {
                        Some(c) => pct(c, "spec.delay.reorder.correlation")?,
                        None => 0.0,
                    },
                    reorder_gap: bounded(r.gap, 0..=u32::MAX, "spec.delay.reorder.gap")?,
                    ..f
                };
            }
        }
        NetworkAction::Loss => {
            let l = spec
                .loss
                .as_ref()
                .ok_or_else(|| invalid(path, "is required for action loss"))?;
            f.percent = pct(&l.loss, "spec.loss.loss")?;
            if let Some(c) = &l.correlation {
                f.correlation_pct = pct(c, "spec.loss.correlation")?;
            }
        }
        NetworkAction::Duplicate => {
            let l = spec
                .duplicate
                .as_ref()
                .ok_or_else(|| invalid(path, "is required for action duplicate"))?;
            f.percent = pct(&l.duplicate, "spec.duplicate.duplicate")?;
            if let Some(c) = &l.correlation {
                f.correlation_pct = pct(c, "spec.duplicate.correlation")?;
            }
        }
        NetworkAction::Corrupt => {
            let l = spec
                .corrupt
                .as_ref()
                .ok_or_else(|| invalid(path, "is required for action corrupt"))?;
            f.percent = pct(&l.corrupt, "spec.corrupt.corrupt")?;
            if let Some(c) = &l.correlation {
                f.correlation_pct = pct(c, "spec.corrupt.correlation")?;
            }
        }
        NetworkAction::Bandwidth => {
            let b = spec
                .bandwidth
                .as_ref()
                .ok_or_else(|| invalid(path, "is required for action bandwidth"))?;
            f.rate_bps = parse_rate_bps(&b.rate).map_err(|e| invalid("spec.bandwidth.rate", e))?;
            f.limit_bytes = u64::from(b.limit);
            f.buffer_bytes = u64::from(b.buffer);
            f.peakrate_bps = b.peakrate;
            f.minburst_bytes = b.minburst.map(u64::from);
        }
        _ => {}
    }
    Ok(AgentFault::Network(f))
}

/// DNSChaos onto the agent's DNS fault: the agent rewrites the answers its host receives (UDP
/// from port 53, from any server) instead of Chaos Mesh's chaos DNS server answering the pod.
/// The patterns keep their meaning (`?` one character, `*` at the end, checked by the schema;
/// none means every name), and so do the actions: `error` answers SERVFAIL, `random` replaces
/// the answer's A / AAAA addresses.
fn dns_chaos(spec: &DNSChaosSpec) -> Result<AgentFault, MappingError> {
    if !spec.container_names.is_empty() {
        return Err(unsupported(
            "DNSChaos",
            spec.action.as_str(),
            "spec.containerNames names containers, and an agent's target is a whole host whose lookups are all affected; remove containerNames",
        ));
    }
    let mut f = NetworkFault::new(NetworkAction::Dns);
    f.dns_patterns = if spec.patterns.is_empty() {
        vec!["*".to_string()]
    } else {
        spec.patterns.iter().map(|p| p.trim().to_string()).collect()
    };
    f.dns_mode = Some(spec.action.as_str().to_string());
    Ok(AgentFault::Network(f))
}

fn stress_chaos(spec: &StressChaosSpec) -> Result<AgentFault, MappingError> {
    if spec.stressng_stressors.is_some() {
        return Err(unsupported(
            "StressChaos",
            "stress-ng",
            "stressngStressors are not passed through by the native agent; use stressors.cpu / stressors.memory",
        ));
    }
    let stressors = spec
        .stressors
        .as_ref()
        .ok_or_else(|| invalid("spec.stressors", "is required"))?;
    let cpu = match &stressors.cpu {
        Some(c) => Some(CpuStress {
            workers: bounded(c.workers, 1..=1024, "spec.stressors.cpu.workers")?,
            load_pct: match c.load {
                None => 100,
                Some(l) => bounded(l, 1..=100, "spec.stressors.cpu.load")?,
            },
        }),
        None => None,
    };
    let memory = match &stressors.memory {
        Some(m) => {
            let workers = bounded(m.workers, 1..=64, "spec.stressors.memory.workers")?;
            let size = m.size.as_deref().ok_or_else(|| {
                invalid(
                    "spec.stressors.memory.size",
                    "is required (e.g. 256MB or 25%)",
                )
            })?;
            let (size_bytes, percent) = memory_size(size, "spec.stressors.memory.size")?;
            Some(MemoryStress {
                size_bytes,
                percent,
                workers,
            })
        }
        None => None,
    };
    if cpu.is_none() && memory.is_none() {
        return Err(invalid(
            "spec.stressors",
            "needs cpu or memory for the native agent",
        ));
    }
    Ok(AgentFault::Stress(StressFault { cpu, memory }))
}

fn req<'a, T>(v: &'a Option<T>, path: &str) -> Result<&'a T, MappingError> {
    v.as_ref().ok_or_else(|| invalid(path, "is required"))
}

fn pm_network(
    action: NetworkAction,
    device: &Option<String>,
    hostname: &Option<String>,
    ip_address: &Option<String>,
    ip_protocol: &Option<String>,
    egress_port: &Option<String>,
    base: &str,
) -> Result<NetworkFault, MappingError> {
    let mut f = NetworkFault::new(action);
    f.device = device.clone();
    if let Some(h) = hostname {
        f.filter.hostnames.extend(
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    if let Some(ip) = ip_address {
        split_peers(std::slice::from_ref(ip), &mut f.filter);
    }
    if let Some(p) = ip_protocol {
        let p = p.trim().to_ascii_lowercase();
        if !p.is_empty() && p != "all" {
            if !["tcp", "udp", "icmp"].contains(&p.as_str()) {
                return Err(invalid(
                    &format!("{base}.ip-protocol"),
                    format!("{p:?} is not one of tcp, udp, icmp, all"),
                ));
            }
            f.filter.protocol = Some(p);
        }
    }
    if let Some(e) = egress_port {
        f.filter.ports = ports(e, &format!("{base}.egress-port"))?;
    }
    Ok(f)
}

fn physical_machine(spec: &PhysicalMachineChaosSpec) -> Result<AgentFault, MappingError> {
    let kind = "PhysicalMachineChaos";
    let action_name = serde_json::to_value(spec.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(match spec.action {
        Pm::StressCpu => {
            let s = req(&spec.stress_cpu, "spec.stress-cpu")?;
            AgentFault::Stress(StressFault {
                cpu: Some(CpuStress {
                    workers: bounded(s.workers.unwrap_or(1), 1..=1024, "spec.stress-cpu.workers")?,
                    load_pct: bounded(s.load.unwrap_or(100), 1..=100, "spec.stress-cpu.load")?,
                }),
                memory: None,
            })
        }
        Pm::StressMem => {
            let s = req(&spec.stress_mem, "spec.stress-mem")?;
            let size = req(&s.size, "spec.stress-mem.size")?;
            let (size_bytes, percent) = memory_size(size, "spec.stress-mem.size")?;
            AgentFault::Stress(StressFault {
                cpu: None,
                memory: Some(MemoryStress {
                    size_bytes,
                    percent,
                    workers: 1,
                }),
            })
        }
        Pm::DiskFill => {
            let s = req(&spec.disk_fill, "spec.disk-fill")?;
            let size = req(&s.size, "spec.disk-fill.size")?;
            AgentFault::Disk(DiskFault {
                action: DiskAction::Fill,
                path: s.path.clone().unwrap_or_else(|| "/tmp".to_string()),
                size_bytes: Some(
                    parse_size_bytes(size).map_err(|e| invalid("spec.disk-fill.size", e))?,
                ),
                percent: None,
                workers: 1,
            })
        }
        Pm::DiskReadPayload | Pm::DiskWritePayload => {
            let (path, workers, size, base, action) = if spec.action == Pm::DiskReadPayload {
                let s = req(&spec.disk_read_payload, "spec.disk-read-payload")?;
                (&s.path, s.payload_process_num, &s.size, "spec.disk-read-payload", DiskAction::ReadPayload)
            } else {
                let s = req(&spec.disk_write_payload, "spec.disk-write-payload")?;
                (&s.path, s.payload_process_num, &s.size, "spec.disk-write-payload", DiskAction::WritePayload)
            };
            AgentFault::Disk(DiskFault {
                action,
                path: path.clone().unwrap_or_else(|| "/tmp".to_string()),
                size_bytes: size
                    .as_deref()
                    .map(parse_size_bytes)
                    .transpose()
                    .map_err(|e| invalid(&format!("{base}.size"), e))?,
                percent: None,
                workers: bounded(workers.unwrap_or(1), 1..=64, &format!("{base}.payload-process-num"))?,
            })
        }
        Pm::NetworkDelay => {
            let s = req(&spec.network_delay, "spec.network-delay")?;
            let mut f = pm_network(NetworkAction::Delay, &s.device, &s.hostname, &s.ip_address, &s.ip_protocol, &s.egress_port, "spec.network-delay")?;
            f.latency_ms = ms(req(&s.latency, "spec.network-delay.latency")?, "spec.network-delay.latency")?;
            if let Some(j) = &s.jitter {
                f.jitter_ms = ms(j, "spec.network-delay.jitter")?;
            }
            if let Some(c) = &s.correlation {
                f.correlation_pct = pct(c, "spec.network-delay.correlation")?;
            }
            AgentFault::Network(f)
        }
        Pm::NetworkLoss => {
            let s = req(&spec.network_loss, "spec.network-loss")?;
            let mut f = pm_network(NetworkAction::Loss, &s.device, &s.hostname, &s.ip_address, &s.ip_protocol, &s.egress_port, "spec.network-loss")?;
            f.percent = pct(req(&s.percent, "spec.network-loss.percent")?, "spec.network-loss.percent")?;
            if let Some(c) = &s.correlation {
                f.correlation_pct = pct(c, "spec.network-loss.correlation")?;
            }
            AgentFault::Network(f)
        }
        Pm::NetworkCorrupt => {
            let s = req(&spec.network_corrupt, "spec.network-corrupt")?;
            let mut f = pm_network(NetworkAction::Corrupt, &s.device, &s.hostname, &s.ip_address, &s.ip_protocol, &s.egress_port, "spec.network-corrupt")?;
            f.percent = pct(req(&s.percent, "spec.network-corrupt.percent")?, "spec.network-corrupt.percent")?;
            AgentFault::Network(f)
        }
        Pm::NetworkDuplicate => {
            let s = req(&spec.network_duplicate, "spec.network-duplicate")?;
            let mut f = pm_network(NetworkAction::Duplicate, &s.device, &s.hostname, &s.ip_address, &s.ip_protocol, &s.egress_port, "spec.network-duplicate")?;
            f.percent = pct(req(&s.percent, "spec.network-duplicate.percent")?, "spec.network-duplicate.percent")?;
            AgentFault::Network(f)
        }
        Pm::NetworkPartition => {
            let s = req(&spec.network_partition, "spec.network-partition")?;
            let mut f = pm_network(NetworkAction::Partition, &s.device, &s.hostname, &s.ip_address, &s.ip_protocol, &None, "spec.network-partition")?;
            f.filter.direction = match s.direction.as_deref().unwrap_or("both") {
                "to" => TrafficDirection::To,
                "from" => TrafficDirection::From,
                "both" => TrafficDirection::Both,
                other => {
                    return Err(invalid(
                        "spec.network-partition.direction",
                        format!("{other:?} is not one of to, from, both"),
                    ))
                }
            };
            AgentFault::Network(f)
        }
        Pm::NetworkBandwidth => {
            let s = req(&spec.network_bandwidth, "spec.network-bandwidth")?;
            let mut f = pm_network(NetworkAction::Bandwidth, &s.device, &s.hostname, &s.ip_address, &None, &None, "spec.network-bandwidth")?;
            f.rate_bps = parse_rate_bps(&s.rate).map_err(|e| invalid("spec.network-bandwidth.rate", e))?;
            f.limit_bytes = u64::try_from(s.limit).map_err(|_| invalid("spec.network-bandwidth.limit", "must not be negative"))?;
            f.buffer_bytes = u64::try_from(s.buffer).map_err(|_| invalid("spec.network-bandwidth.buffer", "must not be negative"))?;
            f.peakrate_bps = s.peakrate.and_then(|p| u64::try_from(p).ok());
            f.minburst_bytes = s.minburst.and_then(|m| u64::try_from(m).ok());
            AgentFault::Network(f)
        }
        Pm::NetworkDns => {
            let s = req(&spec.network_dns, "spec.network-dns")?;
            // The agent answers matching lookups with errors; it does not rewrite resolv.conf
            // or /etc/hosts, so a server or a fixed address would be silently dropped.
            for (set, field) in [(s.dns_server.is_some(), "dns-server"), (s.dns_ip.is_some(), "dns-ip")] {
                if set {
                    return Err(unsupported(
                        kind,
                        "network-dns",
                        format!("spec.network-dns.{field} is not supported by the native agent, which makes lookups of spec.network-dns.dns-domain-name (a glob, `*` for all) fail instead of changing the resolver; remove {field}"),
                    ));
                }
            }
            let path = "spec.network-dns.dns-domain-name";
            let name = req(&s.dns_domain_name, path)?.trim();
            // An empty pattern would match no name: the experiment would run and change nothing.
            if name.is_empty() {
                return Err(invalid(path, "must not be empty (a host name or a glob such as `*.example.com`; `*` for every name)"));
            }
            let mut f = NetworkFault::new(NetworkAction::Dns);
            f.dns_patterns = vec![name.to_string()];
            f.dns_mode = Some("error".to_string());
            AgentFault::Network(f)
        }
        Pm::NetworkDown => {
            let s = req(&spec.network_down, "spec.network-down")?;
            let mut f = NetworkFault::new(NetworkAction::NicDown);
            f.device = Some(req(&s.device, "spec.network-down.device")?.clone());
            AgentFault::Network(f)
        }
        Pm::Process => {
            let s = req(&spec.process, "spec.process")?;
            let process = req(&s.process, "spec.process.process")?;
            let signal = s.signal.unwrap_or(9);
            let signal = i32::try_from(signal)
                .ok()
                .filter(|s| (1..=64).contains(s))
                .ok_or_else(|| invalid("spec.process.signal", "must be a signal number between 1 and 64"))?;
            let (pid, name) = match process.parse::<u32>() {
                Ok(pid) => (Some(pid), None),
                Err(_) => (None, Some(process.clone())),
            };
            // SIGSTOP (19) is a stop that recovery continues; any other signal is a one-off.
            let action = if signal == 19 { ProcessAction::Stop } else { ProcessAction::Kill };
            AgentFault::Process(ProcessFault {
                action,
                pid,
                name,
                pattern: None,
                signal: Some(signal),
            })
        }
        Pm::FileCreate | Pm::FileDelete => {
            let (s, base, action) = if spec.action == Pm::FileCreate {
                (req(&spec.file_create, "spec.file-create")?, "spec.file-create", FileAction::Create)
            } else {
                let d = req(&spec.file_delete, "spec.file-delete")?;
                let path = join_dir(&d.dir_name, &d.file_name, "spec.file-delete")?;
                return Ok(AgentFault::File(FileFault {
                    action: FileAction::Delete,
                    path,
                    data: None,
                    count: None,
                    mode: None,
                    origin: None,
                    dest: None,
                }));
            };
            AgentFault::File(FileFault {
                action,
                path: join_dir(&s.dir_name, &s.file_name, base)?,
                data: None,
                count: None,
                mode: None,
                origin: None,
                dest: None,
            })
        }
        Pm::FileModify => {
            let s = req(&spec.file_modify, "spec.file-modify")?;
            let privilege = *req(&s.privilege, "spec.file-modify.privilege")?;
            // chaosd writes the mode as decimal digits of the octal form (e.g. 777).
            let mode = u32::from_str_radix(&privilege.to_string(), 8)
                .map_err(|_| invalid("spec.file-modify.privilege", "must be an octal mode such as 600"))?;
            AgentFault::File(FileFault {
                action: FileAction::ModifyMode,
                path: req(&s.file_name, "spec.file-modify.file-name")?.clone(),
                data: None,
                count: None,
                mode: Some(mode),
                origin: None,
                dest: None,
            })
        }
        Pm::FileRename => {
            let s = req(&spec.file_rename, "spec.file-rename")?;
            AgentFault::File(FileFault {
                action: FileAction::Rename,
                path: req(&s.source_file, "spec.file-rename.source-file")?.clone(),
                data: None,
                count: None,
                mode: None,
                origin: None,
                dest: Some(req(&s.dest_file, "spec.file-rename.dest-file")?.clone()),
            })
        }
        Pm::FileAppend => {
            let s = req(&spec.file_append, "spec.file-append")?;
            AgentFault::File(FileFault {
                action: FileAction::Append,
                path: req(&s.file_name, "spec.file-append.file-name")?.clone(),
                data: Some(req(&s.data, "spec.file-append.data")?.clone()),
                count: Some(
                    bounded(s.count.unwrap_or(1), 1..=1_000_000, "spec.file-append.count")?,
                ),
                mode: None,
                origin: None,
                dest: None,
            })
        }
        Pm::FileReplace => {
            let s = req(&spec.file_replace, "spec.file-replace")?;
            if s.line.is_some_and(|l| l != 0) {
                return Err(unsupported(kind, "file-replace", "spec.file-replace.line is not supported by the native agent yet; every occurrence is replaced"));
            }
            AgentFault::File(FileFault {
                action: FileAction::Replace,
                path: req(&s.file_name, "spec.file-replace.file-name")?.clone(),
                data: Some(req(&s.dest_string, "spec.file-replace.dest-string")?.clone()),
                count: None,
                mode: None,
                origin: Some(req(&s.origin_string, "spec.file-replace.origin-string")?.clone()),
                dest: None,
            })
        }
        Pm::Clock => {
            let s = req(&spec.clock, "spec.clock")?;
            if s.pid.is_some_and(|p| p != 0) {
                return Err(unsupported(kind, "clock", "per-process clock skew (spec.clock.pid) is not supported; the native agent can only skew the host clock, and only when started with --allow clock"));
            }
            let offset = req(&s.time_offset, "spec.clock.time-offset")?;
            let (neg, body) = match offset.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, offset.as_str()),
            };
            let v = ms(body, "spec.clock.time-offset")? as i64;
            AgentFault::Clock(ClockFault {
                offset_ms: if neg { -v } else { v },
            })
        }
        Pm::UserDefined => {
            let s = req(&spec.user_defined, "spec.user_defined")?;
            AgentFault::UserDefined(UserDefinedFault {
                attack_cmd: req(&s.attack_cmd, "spec.user_defined.attackCmd")?.clone(),
                recover_cmd: req(&s.recover_cmd, "spec.user_defined.recoverCmd")?.clone(),
            })
        }
        _ => {
            return Err(unsupported(
                kind,
                &action_name,
                "the native agent does not run this action (JVM, Redis, Kafka, HTTP, VM and network-flood attacks are not implemented)",
            ))
        }
    })
}

fn join_dir(
    dir: &Option<String>,
    file: &Option<String>,
    base: &str,
) -> Result<String, MappingError> {
    let file = file
        .as_ref()
        .ok_or_else(|| invalid(&format!("{base}.file-name"), "is required"))?;
    Ok(match dir {
        Some(d) if !d.is_empty() && !file.starts_with('/') => {
            format!("{}/{}", d.trim_end_matches('/'), file)
        }
        _ => file.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(yaml: &str) -> Result<AgentFault, MappingError> {
        let manifest = chaoshub_schema::parse_one(yaml).expect("a valid manifest");
        to_agent_fault(&manifest, &[])
    }

    fn dns(fault: AgentFault) -> (Vec<String>, Option<String>) {
        match fault {
            AgentFault::Network(f) if f.action == NetworkAction::Dns => {
                (f.dns_patterns, f.dns_mode)
            }
            other => panic!("not a dns fault: {other:?}"),
        }
    }

    fn dns_chaos(body: &str) -> String {
        format!("apiVersion: chaos-mesh.org/v1alpha1\nkind: DNSChaos\nmetadata: {{name: d}}\nspec:\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n{body}")
    }

    fn network_dns(block: &str) -> String {
        format!("apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: d}}\nspec:\n  action: network-dns\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  network-dns: {block}\n")
    }

    #[test]
    fn dns_chaos_keeps_its_patterns_and_action() {
        let (patterns, mode) = dns(fault(&dns_chaos(
            "  action: random\n  patterns: ['api.example.*', 'db.?.example.com']\n",
        ))
        .unwrap());
        assert_eq!(patterns, ["api.example.*", "db.?.example.com"]);
        assert_eq!(mode.as_deref(), Some("random"));
        let (patterns, mode) = dns(fault(&dns_chaos("  action: error\n")).unwrap());
        assert_eq!(patterns, ["*"], "no patterns: every name, as in Chaos Mesh");
        assert_eq!(mode.as_deref(), Some("error"));
    }

    #[test]
    fn dns_chaos_refuses_container_names() {
        let err = fault(&dns_chaos("  action: error\n  containerNames: [web]\n")).unwrap_err();
        assert!(matches!(err, MappingError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("containerNames"), "{err}");
    }

    #[test]
    fn network_dns_takes_the_domain_as_a_pattern_and_refuses_an_empty_one() {
        let (patterns, mode) =
            dns(fault(&network_dns("{dns-domain-name: ' *.example.com '}")).unwrap());
        assert_eq!(patterns, ["*.example.com"]);
        assert_eq!(mode.as_deref(), Some("error"));
        let err = fault(&network_dns("{dns-domain-name: ''}")).unwrap_err();
        assert!(
            matches!(&err, MappingError::Invalid { path, .. } if path == "spec.network-dns.dns-domain-name"),
            "{err}"
        );
        let err = fault(&network_dns(
            "{dns-domain-name: x.example.com, dns-ip: 198.51.100.1}",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("dns-ip"), "{err}");
    }
}
