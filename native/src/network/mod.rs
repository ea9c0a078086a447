//! Network faults (NetworkChaos / chaosd `network …`): delay, loss, duplicate, corrupt, reorder,
//! bandwidth, partition, port blackhole, DNS and NIC down, on the host or in any network
//! namespace.
//!
//! Mechanisms are chosen per fault from what the kernel offers (see [`probe_mechanisms`]):
//! tc netem where `sch_netem` exists, otherwise nftables `numgen` / iptables `statistic` for
//! loss and the NFQUEUE engine ([`nfqueue`]) for delay, jitter, duplicate, corrupt and reorder;
//! tbf / htb + u32 for bandwidth (ingress through ifb); nftables (or iptables) for partitions.
//! The chosen mechanism is `Plan::mechanism`, and a fault that cannot run is refused with
//! `InjectError::Unsupported` naming the missing kernel feature — never faked.
//!
//! Everything a fault creates is named after its short id and listed in its plan
//! ([`NetworkUndo`]), so removal deletes exactly that and works from the journal alone.
//! `docs/agent-network.md` has the full table.

pub mod commands;
pub mod iptables;
pub mod mechanisms;
pub mod netns;
pub mod nfqueue;
pub mod nft;
pub mod packet;
pub mod tc;

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use chaoshub_schema::agent::{
    AgentFault, KernelMechanisms, NetworkAction, NetworkFault, TrafficDirection,
};
use serde::{Deserialize, Serialize};

use crate::inject::{short_id, Applied, CommandRunner, InjectError, Injector, Plan};
use commands::SystemCommandRunner;
use iptables::OwnedChain;
pub use mechanisms::{disable as disable_mechanisms, probe_mechanisms, MECHANISM_NAMES};
use nfqueue::{EngineConfig, EngineHealth, NfqueueWorker, PacketAction};
use tc::{Leaf, OwnedIngress, OwnedQdisc};

/// Which netfilter hook (and so which direction) a rule sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hook {
    /// Packets leaving the target (`output`).
    Egress,
    /// Packets arriving at the target (`input`).
    Ingress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// The validated traffic a fault applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// IPv4 / IPv6 peers (addresses or CIDRs), including resolved host names.
    pub v4: Vec<String>,
    pub v6: Vec<String>,
    /// Remote ports.
    pub ports: Vec<u16>,
    /// Local ports.
    pub local_ports: Vec<u16>,
    pub protocol: Option<Protocol>,
    /// Interface restriction for firewall rules.
    pub device: Option<String>,
    /// Leave loopback traffic alone (everything but DNS: a local resolver is a legit target).
    pub skip_loopback: bool,
}

impl Selection {
    fn is_restricted(&self) -> bool {
        !(self.v4.is_empty()
            && self.v6.is_empty()
            && self.ports.is_empty()
            && self.local_ports.is_empty()
            && self.protocol.is_none())
    }
}

/// One host command of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCommand {
    pub program: String,
    pub args: Vec<String>,
}

impl HostCommand {
    fn new(program: &str, args: Vec<String>) -> Self {
        HostCommand {
            program: program.to_string(),
            args,
        }
    }

    pub fn line(&self) -> String {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        commands::render(None, &self.program, &args)
    }
}

/// A link this fault took down, with the routes through it that `ip link set down` deletes and
/// removal puts back (connected routes come back with the link by themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedLink {
    pub device: String,
    /// `ip` argument vectors (`route replace default via … dev eth0`).
    pub routes: Vec<Vec<String>>,
}

/// `Plan::undo` of a network fault: the commands `apply` runs and everything they create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkUndo {
    /// The namespace everything lives in (absent: the agent's own).
    pub netns: Option<String>,
    pub short_id: String,
    /// Run in order by `apply`.
    pub steps: Vec<HostCommand>,
    pub qdiscs: Vec<OwnedQdisc>,
    pub ingress: Vec<OwnedIngress>,
    pub nft_table: Option<String>,
    pub chains: Vec<OwnedChain>,
    pub engine: Option<EngineConfig>,
    pub links_down: Vec<OwnedLink>,
}

impl NetworkUndo {
    fn comment(&self) -> String {
        format!("chaoshub:{}", self.short_id)
    }
}

/// The mechanism strings shown in `Plan::mechanism`.
pub mod mechanism {
    pub const TC_NETEM: &str = "tc-netem";
    pub const TC_TBF: &str = "tc-tbf";
    pub const TC_HTB: &str = "tc-htb";
    pub const NFQUEUE: &str = "nfqueue";
    pub const NFT_NUMGEN: &str = "nft-numgen";
    pub const IPTABLES_STATISTIC: &str = "iptables-statistic";
    pub const NFTABLES: &str = "nftables";
    pub const IPTABLES: &str = "iptables";
    pub const IP_LINK: &str = "ip-link";
}

fn unsupported(feature: &str, message: impl Into<String>) -> InjectError {
    InjectError::Unsupported {
        feature: feature.to_string(),
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> InjectError {
    InjectError::Invalid(message.into())
}

/// Formats a number the way tc likes it: `100`, `0.5`, never `1e-3`.
pub fn fmt_num(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let s = format!("{value:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn hooks(direction: TrafficDirection) -> Vec<Hook> {
    match direction {
        TrafficDirection::To => vec![Hook::Egress],
        TrafficDirection::From => vec![Hook::Ingress],
        TrafficDirection::Both => vec![Hook::Egress, Hook::Ingress],
    }
}

fn valid_device(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b))
}

/// Parses `addr` or `addr/len` into (is_v6, canonical text).
fn parse_cidr(text: &str) -> Result<(bool, String), InjectError> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| {
        invalid(format!(
            "filter.cidrs: {text:?} is not an IP address or CIDR"
        ))
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| invalid(format!("filter.cidrs: bad prefix length in {text:?}")))?,
        None => max,
    };
    Ok((ip.is_ipv6(), format!("{ip}/{len}")))
}

fn check_pct(name: &str, value: f64, allow_zero: bool) -> Result<(), InjectError> {
    let ok = value.is_finite() && value <= 100.0 && (value > 0.0 || (allow_zero && value == 0.0));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name} must be within {}0–100 %, got {value}",
            if allow_zero { "" } else { "(0, 100] — not " }
        )))
    }
}

/// Builds the validated selection of a fault; host names are resolved here, so the plan
/// records the addresses actually blocked.
pub fn selection(fault: &NetworkFault) -> Result<Selection, InjectError> {
    let filter = &fault.filter;
    let mut sel = Selection {
        ports: filter.ports.clone(),
        local_ports: filter.local_ports.clone(),
        skip_loopback: fault.action != NetworkAction::Dns,
        ..Selection::default()
    };
    for cidr in &filter.cidrs {
        let (v6, text) = parse_cidr(cidr)?;
        if v6 { &mut sel.v6 } else { &mut sel.v4 }.push(text);
    }
    for host in &filter.hostnames {
        let addrs = (host.as_str(), 0)
            .to_socket_addrs()
            .map_err(|e| invalid(format!("filter.hostnames: cannot resolve {host:?}: {e}")))?;
        let mut any = false;
        for addr in addrs {
            any = true;
            let text = match addr.ip() {
                IpAddr::V4(ip) => format!("{ip}/32"),
                IpAddr::V6(ip) => format!("{ip}/128"),
            };
            let list = if addr.is_ipv6() {
                &mut sel.v6
            } else {
                &mut sel.v4
            };
            if !list.contains(&text) {
                list.push(text);
            }
        }
        if !any {
            return Err(invalid(format!(
                "filter.hostnames: {host:?} has no address"
            )));
        }
    }
    sel.protocol = match filter
        .protocol
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("all") => None,
        Some("tcp") => Some(Protocol::Tcp),
        Some("udp") => Some(Protocol::Udp),
        Some("icmp") => Some(Protocol::Icmp),
        Some(other) => {
            return Err(invalid(format!(
                "filter.protocol: {other:?} is not tcp, udp, icmp or all"
            )))
        }
    };
    if sel.protocol == Some(Protocol::Icmp) && !(sel.ports.is_empty() && sel.local_ports.is_empty())
    {
        return Err(invalid(
            "filter: ports cannot be combined with protocol icmp",
        ));
    }
    if let Some(dev) = &fault.device {
        if !valid_device(dev) {
            return Err(invalid(format!("device {dev:?} is not an interface name")));
        }
        sel.device = Some(dev.clone());
    }
    // iptables has no sets; keep the rule count (product of the lists) reasonable.
    let width = |n: usize| n.max(1);
    let rules = width(sel.v4.len() + sel.v6.len())
        * width(sel.ports.len())
        * width(sel.local_ports.len())
        * 2;
    if rules > 512 {
        return Err(invalid(format!(
            "filter selects {rules} peer × port combinations; at most 512 are supported"
        )));
    }
    Ok(sel)
}

/// Checks the numbers of a fault before anything is chosen.
pub fn validate(fault: &NetworkFault) -> Result<(), InjectError> {
    let finite = [
        fault.latency_ms,
        fault.jitter_ms,
        fault.correlation_pct,
        fault.percent,
    ]
    .iter()
    .all(|v| v.is_finite() && *v >= 0.0);
    if !finite {
        return Err(invalid(
            "latency, jitter, correlation and percent must be ≥ 0",
        ));
    }
    check_pct("correlationPct", fault.correlation_pct, true)?;
    match fault.action {
        NetworkAction::Delay => {
            if fault.latency_ms <= 0.0 {
                return Err(invalid("delay needs latencyMs > 0"));
            }
        }
        NetworkAction::Loss | NetworkAction::Duplicate | NetworkAction::Corrupt => {
            check_pct("percent", fault.percent, false)?
        }
        NetworkAction::Reorder => {
            check_pct("percent", fault.percent, false)?;
            if fault.latency_ms <= 0.0 {
                return Err(invalid(
                    "reorder needs latencyMs > 0: the packets that are not sent at once are held that long",
                ));
            }
        }
        NetworkAction::Bandwidth => {
            if fault.rate_bps == 0 {
                return Err(invalid("bandwidth needs rateBps > 0"));
            }
        }
        NetworkAction::PortBlackhole => {
            if fault.filter.ports.is_empty() && fault.filter.local_ports.is_empty() {
                return Err(invalid(
                    "port-blackhole needs filter.ports (remote) or filter.localPorts",
                ));
            }
        }
        NetworkAction::Dns => {
            if fault.dns_patterns.is_empty() {
                return Err(invalid("dns needs at least one pattern in dnsPatterns"));
            }
            match fault.dns_mode.as_deref() {
                None | Some("error") | Some("random") => {}
                Some(other) => {
                    return Err(invalid(format!(
                        "dnsMode {other:?} is not `error` or `random`"
                    )))
                }
            }
        }
        NetworkAction::Partition | NetworkAction::NicDown => {}
    }
    Ok(())
}

/// Picks the mechanism for a fault on a kernel with `mechanisms`. Pure: the rules of the
/// fallback chain live here and are unit-tested.
pub fn choose_mechanism(
    fault: &NetworkFault,
    selection: &Selection,
    m: &KernelMechanisms,
) -> Result<&'static str, InjectError> {
    use mechanism::*;
    let direction = fault.filter.direction;
    let filtered = selection.is_restricted();
    // netem shapes egress; ingress needs an ifb redirect, and peer/port filters an htb tree.
    let netem_ok = m.netem
        && (direction == TrafficDirection::To || m.ingress_ifb)
        && (!filtered || (m.htb && m.u32_filter));
    let missing_netem = "sch_netem";
    let action = fault.action.as_str();
    match fault.action {
        NetworkAction::Delay | NetworkAction::Corrupt | NetworkAction::Reorder => {
            if netem_ok {
                Ok(TC_NETEM)
            } else if m.nfqueue {
                Ok(NFQUEUE)
            } else {
                Err(unsupported(
                    missing_netem,
                    format!(
                        "network/{action} needs tc netem or the NFQUEUE engine (nfnetlink_queue and the iptables NFQUEUE target); this kernel has neither"
                    ),
                ))
            }
        }
        NetworkAction::Loss => {
            if netem_ok {
                Ok(TC_NETEM)
            } else if fault.correlation_pct > 0.0 && m.nfqueue {
                // Only the engine reproduces netem's correlated losses.
                Ok(NFQUEUE)
            } else if m.nftables && m.nft_numgen {
                Ok(NFT_NUMGEN)
            } else if m.iptables && m.iptables_statistic {
                Ok(IPTABLES_STATISTIC)
            } else if m.nfqueue {
                Ok(NFQUEUE)
            } else {
                Err(unsupported(
                    missing_netem,
                    "network/loss needs tc netem, nft numgen, iptables statistic or NFQUEUE; none is available",
                ))
            }
        }
        NetworkAction::Duplicate => {
            if netem_ok {
                Ok(TC_NETEM)
            } else if m.nfqueue && direction == TrafficDirection::To {
                Ok(NFQUEUE)
            } else if m.nfqueue {
                Err(unsupported(
                    missing_netem,
                    "network/duplicate on incoming traffic needs tc netem with ifb; the NFQUEUE engine duplicates outgoing packets only (direction: to)",
                ))
            } else {
                Err(unsupported(
                    missing_netem,
                    "network/duplicate needs tc netem or the NFQUEUE engine",
                ))
            }
        }
        NetworkAction::Bandwidth => {
            if direction != TrafficDirection::To && !m.ingress_ifb {
                return Err(unsupported(
                    "ifb",
                    "network/bandwidth with direction from/both shapes incoming traffic through an ifb device and the ingress qdisc, which this kernel lacks; use direction: to",
                ));
            }
            if filtered {
                if m.htb && m.u32_filter {
                    Ok(TC_HTB)
                } else {
                    Err(unsupported(
                        if m.htb { "cls_u32" } else { "sch_htb" },
                        "network/bandwidth restricted to peers or ports needs htb classes and u32 filters",
                    ))
                }
            } else if m.tbf {
                Ok(TC_TBF)
            } else {
                Err(unsupported(
                    "sch_tbf",
                    "network/bandwidth needs the tbf qdisc",
                ))
            }
        }
        NetworkAction::Partition | NetworkAction::PortBlackhole => {
            if m.nftables {
                Ok(NFTABLES)
            } else if m.iptables {
                Ok(IPTABLES)
            } else {
                Err(unsupported(
                    "nf_tables",
                    format!("network/{action} needs nftables or iptables"),
                ))
            }
        }
        NetworkAction::Dns => {
            if m.nfqueue {
                Ok(NFQUEUE)
            } else {
                Err(unsupported(
                    "nfnetlink_queue",
                    "network/dns rewrites DNS answers in the NFQUEUE engine, which this kernel lacks",
                ))
            }
        }
        NetworkAction::NicDown => Ok(IP_LINK),
    }
}

/// Errors that mean "already gone", which make removal idempotent.
fn already_gone(error: &InjectError) -> bool {
    const GONE: &[&str] = &[
        "No such file or directory",
        "does not exist",
        "Cannot find device",
        "Cannot find specified qdisc",
        "Invalid handle",
        "No chain/target/match by that name",
        "Bad rule",
        "Couldn't load target",
        "not found",
        "cannot open /run/netns",
        "cannot open /proc",
    ];
    match error {
        InjectError::Command { stderr, .. } => GONE.iter().any(|g| stderr.contains(g)),
        _ => false,
    }
}

/// The network injector.
pub struct NetworkInjector {
    mechanisms: KernelMechanisms,
    runner: Arc<dyn CommandRunner>,
    /// Live NFQUEUE engines by fault id, for `verify`.
    engines: Mutex<HashMap<String, EngineHealth>>,
}

impl NetworkInjector {
    pub fn new(mechanisms: KernelMechanisms, runner: Arc<dyn CommandRunner>) -> Self {
        NetworkInjector {
            mechanisms,
            runner,
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// With the real command runner.
    pub fn real(mechanisms: KernelMechanisms) -> Self {
        Self::new(mechanisms, Arc::new(SystemCommandRunner))
    }

    pub fn mechanisms(&self) -> &KernelMechanisms {
        &self.mechanisms
    }

    fn run(
        &self,
        netns: Option<&str>,
        program: &str,
        args: &[String],
    ) -> Result<String, InjectError> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.runner.run(netns, program, &args)
    }

    fn read(
        &self,
        netns: Option<&str>,
        program: &str,
        args: &[&str],
    ) -> Result<String, InjectError> {
        self.runner.run(netns, program, args)
    }

    /// The devices a tc or link fault works on: the named one, else the devices of the default
    /// routes, else every non-loopback device with a route.
    fn devices(
        &self,
        netns: Option<&str>,
        fault: &NetworkFault,
    ) -> Result<Vec<String>, InjectError> {
        if let Some(dev) = &fault.device {
            if !valid_device(dev) {
                return Err(invalid(format!("device {dev:?} is not an interface name")));
            }
            self.read(netns, "ip", &["-o", "link", "show", "dev", dev])
                .map_err(|_| invalid(format!("device {dev:?} does not exist")))?;
            return Ok(vec![dev.clone()]);
        }
        let route_devices = |out: &str| -> Vec<String> {
            out.lines()
                .filter_map(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let i = words.iter().position(|w| *w == "dev")?;
                    let dev = words.get(i + 1)?.to_string();
                    (dev != "lo").then_some(dev)
                })
                .collect()
        };
        let mut devices = Vec::new();
        for family in ["-4", "-6"] {
            let out = self.read(netns, "ip", &[family, "-o", "route", "show", "default"])?;
            devices.extend(route_devices(&out));
        }
        if devices.is_empty() {
            let out = self.read(netns, "ip", &["-4", "-o", "route", "show"])?;
            devices.extend(route_devices(&out));
        }
        let mut unique = Vec::new();
        for d in devices {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        if unique.is_empty() {
            return Err(invalid(format!(
                "no network device with a route in {}; name one with `device`",
                netns.unwrap_or("the agent's namespace")
            )));
        }
        Ok(unique)
    }

    fn plan_tc(
        &self,
        undo: &mut NetworkUndo,
        fault: &NetworkFault,
        selection: &Selection,
        leaf: Leaf,
    ) -> Result<(), InjectError> {
        let netns = undo.netns.clone();
        let ns = netns.as_deref();
        let devices = self.devices(ns, fault)?;
        let handle = tc::handle_for(&undo.short_id);
        let filtered = selection.is_restricted();
        let kind = leaf.kind(filtered).to_string();
        for (index, device) in devices.iter().enumerate() {
            let show = self.read(ns, "tc", &["qdisc", "show", "dev", device])?;
            let qdiscs = tc::parse_qdiscs(&show);
            for hook in hooks(fault.filter.direction) {
                let filters = if filtered {
                    tc::u32_matches(selection, hook)
                } else {
                    Vec::new()
                };
                let target = match hook {
                    Hook::Egress => {
                        if let Some(root) = tc::foreign_root(&qdiscs) {
                            return Err(invalid(format!(
                                "device {device} already has a root qdisc `{} {}` that this fault did not create; chaoshub never replaces or deletes someone else's qdisc — remove it or target another device",
                                root.kind, root.handle
                            )));
                        }
                        device.clone()
                    }
                    Hook::Ingress => {
                        if let Some(q) = qdiscs.iter().find(|q| q.ingress) {
                            return Err(invalid(format!(
                                "device {device} already has an `{}` qdisc that this fault did not create; shaping incoming traffic needs its own",
                                q.kind
                            )));
                        }
                        let ifb = tc::ifb_name(&undo.short_id, index);
                        for (program, args) in tc::ingress_redirect_commands(device, &ifb) {
                            undo.steps.push(HostCommand::new(program, args));
                        }
                        undo.ingress.push(OwnedIngress {
                            device: device.clone(),
                            ifb: ifb.clone(),
                        });
                        ifb
                    }
                };
                for args in tc::shaping_commands(&target, &handle, &leaf, &filters) {
                    undo.steps.push(HostCommand::new("tc", args));
                }
                undo.qdiscs.push(OwnedQdisc {
                    device: target,
                    handle: handle.clone(),
                    kind: kind.clone(),
                });
            }
        }
        Ok(())
    }

    fn plan_nft(
        &self,
        undo: &mut NetworkUndo,
        selection: &Selection,
        hooks: &[Hook],
        verdict: &str,
    ) {
        let table = nft::table_name(&undo.short_id);
        let script = nft::table_script(&table, &undo.comment(), selection, hooks, verdict);
        undo.steps.push(HostCommand::new("nft", vec![script]));
        undo.nft_table = Some(table);
    }

    fn plan_iptables(
        &self,
        undo: &mut NetworkUndo,
        selection: &Selection,
        hooks: &[Hook],
        target: &[String],
    ) {
        let comment = undo.comment();
        for &hook in hooks {
            let chain = iptables::chain_name(&undo.short_id, hook);
            let from = iptables::builtin(hook);
            for binary in iptables::binaries(selection) {
                let mut steps = vec![HostCommand::new(
                    binary,
                    vec![
                        "-w".into(),
                        "-t".into(),
                        "filter".into(),
                        "-N".into(),
                        chain.clone(),
                    ],
                )];
                for m in iptables::matches(selection, hook, binary) {
                    let mut args: Vec<String> = vec![
                        "-w".into(),
                        "-t".into(),
                        "filter".into(),
                        "-A".into(),
                        chain.clone(),
                    ];
                    args.extend(m);
                    args.extend([
                        "-m".into(),
                        "comment".into(),
                        "--comment".into(),
                        comment.clone(),
                    ]);
                    args.extend(target.iter().cloned());
                    steps.push(HostCommand::new(binary, args));
                }
                steps.push(HostCommand::new(
                    binary,
                    jump_args("-I", from, &comment, &chain),
                ));
                undo.steps.extend(steps);
                undo.chains.push(OwnedChain {
                    binary: binary.to_string(),
                    chain: chain.clone(),
                    from: from.to_string(),
                });
            }
        }
    }

    fn plan_nic_down(
        &self,
        undo: &mut NetworkUndo,
        fault: &NetworkFault,
    ) -> Result<(), InjectError> {
        let netns = undo.netns.clone();
        let ns = netns.as_deref();
        for device in self.devices(ns, fault)? {
            let link = self.read(ns, "ip", &["-o", "link", "show", "dev", &device])?;
            if !link_is_up(&link) {
                tracing::info!(device = %device, "link already down; nic-down leaves it to its owner");
                continue;
            }
            let mut routes = Vec::new();
            for family in ["-4", "-6"] {
                let out = self.read(ns, "ip", &[family, "-o", "route", "show", "dev", &device])?;
                routes.extend(routes_to_restore(&out, family, &device));
            }
            undo.steps.push(HostCommand::new(
                "ip",
                vec![
                    "link".into(),
                    "set".into(),
                    "dev".into(),
                    device.clone(),
                    "down".into(),
                ],
            ));
            undo.links_down.push(OwnedLink { device, routes });
        }
        if undo.links_down.is_empty() {
            return Err(invalid("every selected device is already down"));
        }
        Ok(())
    }

    fn undo_of(plan: &Plan) -> Result<NetworkUndo, InjectError> {
        serde_json::from_value(plan.undo.clone()).map_err(|e| {
            InjectError::Failed(format!(
                "plan {} has an unreadable undo record: {e}",
                plan.id
            ))
        })
    }

    fn remove_undo(&self, id: &str, undo: &NetworkUndo) -> Result<(), InjectError> {
        if let Some(engine) = &undo.engine {
            // Normally the daemon has stopped the worker already; if not, do not leave a
            // thread bound to a queue that nothing feeds any more.
            if let Some(health) = self.engines.lock().ok().and_then(|mut e| e.remove(id)) {
                health.request_stop();
            }
            nfqueue::release_queue(engine.queue_num);
        }
        let ns = undo.netns.as_deref();
        if let Some(path) = ns {
            if !std::path::Path::new(path).exists() {
                // The namespace is gone, and everything we created in it went with it.
                tracing::info!(
                    fault = id,
                    netns = path,
                    "namespace gone; nothing to remove"
                );
                return Ok(());
            }
        }
        let mut failures = Vec::new();
        let mut attempt = |program: &str, args: Vec<String>| {
            if let Err(error) = self.run(ns, program, &args) {
                if already_gone(&error) {
                    tracing::debug!(fault = id, %error, "already removed");
                } else {
                    tracing::warn!(fault = id, %error, "removal step failed");
                    failures.push(error.to_string());
                }
            }
        };
        let comment = undo.comment();
        for chain in &undo.chains {
            attempt(
                &chain.binary,
                jump_args("-D", &chain.from, &comment, &chain.chain),
            );
            for op in ["-F", "-X"] {
                attempt(
                    &chain.binary,
                    vec![
                        "-w".into(),
                        "-t".into(),
                        "filter".into(),
                        op.into(),
                        chain.chain.clone(),
                    ],
                );
            }
        }
        if let Some(table) = &undo.nft_table {
            attempt(
                "nft",
                vec![
                    "delete".into(),
                    "table".into(),
                    "inet".into(),
                    table.clone(),
                ],
            );
        }
        for q in &undo.qdiscs {
            // With `handle`, the kernel deletes the root only if it is still ours.
            attempt(
                "tc",
                [
                    "qdisc", "del", "dev", &q.device, "root", "handle", &q.handle,
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        for i in &undo.ingress {
            attempt(
                "tc",
                ["qdisc", "del", "dev", &i.device, "ingress"]
                    .map(String::from)
                    .to_vec(),
            );
            attempt(
                "ip",
                ["link", "del", "dev", &i.ifb].map(String::from).to_vec(),
            );
        }
        for link in &undo.links_down {
            attempt(
                "ip",
                ["link", "set", "dev", &link.device, "up"]
                    .map(String::from)
                    .to_vec(),
            );
            for route in &link.routes {
                if let Err(error) = self.run(ns, "ip", route) {
                    // A route may already be back (another agent, DHCP); say so and go on.
                    tracing::warn!(fault = id, %error, "cannot restore route");
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(InjectError::Failed(format!(
                "removing network fault {id} left something behind: {}",
                failures.join("; ")
            )))
        }
    }
}

fn jump_args(op: &str, from: &str, comment: &str, chain: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-w".into(),
        "-t".into(),
        "filter".into(),
        op.into(),
        from.into(),
    ];
    if op == "-I" {
        // First position: a user's ACCEPT rules earlier in the chain would otherwise hide the
        // fault.
        args.push("1".into());
    }
    args.extend(
        ["-m", "comment", "--comment", comment, "-j", chain]
            .iter()
            .map(|s| s.to_string()),
    );
    args
}

/// Whether `ip -o link show` reports the administrative UP flag.
fn link_is_up(line: &str) -> bool {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"))
}

/// Routes through `device` that `ip link set down` deletes and that do not come back by
/// themselves (everything but `proto kernel` and link-local / multicast ones), as `ip`
/// arguments that put them back.
fn routes_to_restore(show: &str, family: &str, device: &str) -> Vec<Vec<String>> {
    show.lines()
        .filter(|line| !line.contains("proto kernel") && !line.trim().is_empty())
        .filter(|line| !line.starts_with("fe80::") && !line.starts_with("multicast"))
        .map(|line| {
            let mut args: Vec<String> = vec![family.into(), "route".into(), "replace".into()];
            args.extend(
                line.split_whitespace()
                    .filter(|w| !matches!(*w, "linkdown" | "dead" | "offload" | "trap"))
                    .map(str::to_string),
            );
            args.extend(["dev".into(), device.to_string()]);
            args
        })
        .collect()
}

impl Injector for NetworkInjector {
    fn handles(&self, fault: &AgentFault) -> bool {
        matches!(fault, AgentFault::Network(_))
    }

    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError> {
        let AgentFault::Network(fault) = fault else {
            return Err(invalid(format!(
                "the network injector cannot plan {}",
                fault.label()
            )));
        };
        validate(fault)?;
        let netns = fault.netns.as_ref().map(netns::resolve).transpose()?;
        let mut selection = selection(fault)?;
        if fault.action == NetworkAction::Dns {
            // DNS answers come back from port 53; the peers, if any, are the servers.
            selection.protocol = Some(Protocol::Udp);
            selection.ports = vec![53];
            selection.local_ports.clear();
        }
        let chosen = choose_mechanism(fault, &selection, &self.mechanisms)?;
        let mut undo = NetworkUndo {
            netns,
            short_id: short_id(id),
            ..NetworkUndo::default()
        };
        let direction_hooks = hooks(fault.filter.direction);
        let pct = |p: f64| format!("{}%", fmt_num(p));
        let with_corr = |mut args: Vec<String>| {
            if fault.correlation_pct > 0.0 {
                args.push(pct(fault.correlation_pct));
            }
            args
        };
        match chosen {
            mechanism::TC_NETEM => {
                let args = match fault.action {
                    NetworkAction::Delay => {
                        let mut a =
                            vec!["delay".into(), format!("{}ms", fmt_num(fault.latency_ms))];
                        if fault.jitter_ms > 0.0 || fault.correlation_pct > 0.0 {
                            a.push(format!("{}ms", fmt_num(fault.jitter_ms)));
                        }
                        with_corr(a)
                    }
                    NetworkAction::Loss => {
                        with_corr(vec!["loss".into(), "random".into(), pct(fault.percent)])
                    }
                    NetworkAction::Duplicate => {
                        with_corr(vec!["duplicate".into(), pct(fault.percent)])
                    }
                    NetworkAction::Corrupt => with_corr(vec!["corrupt".into(), pct(fault.percent)]),
                    _ => {
                        let mut a = with_corr(vec![
                            "delay".into(),
                            format!("{}ms", fmt_num(fault.latency_ms)),
                            "reorder".into(),
                            pct(fault.percent),
                        ]);
                        if fault.reorder_gap > 0 {
                            a.extend(["gap".into(), fault.reorder_gap.to_string()]);
                        }
                        a
                    }
                };
                self.plan_tc(&mut undo, fault, &selection, Leaf::Netem(args))?;
            }
            mechanism::TC_TBF | mechanism::TC_HTB => {
                let bytes_per_sec = fault.rate_bps / 8;
                // Chaos Mesh requires buffer and limit; standalone use may omit them, so pick a
                // bucket of ~10 ms of traffic (at least a few full frames) and a 50 ms queue.
                let buffer = if fault.buffer_bytes > 0 {
                    fault.buffer_bytes
                } else {
                    (bytes_per_sec / 100).max(5_000)
                };
                let limit = if fault.limit_bytes > 0 {
                    fault.limit_bytes
                } else {
                    (bytes_per_sec / 20).max(buffer)
                };
                let leaf = Leaf::Rate {
                    rate_bps: fault.rate_bps,
                    buffer_bytes: buffer,
                    limit_bytes: limit,
                    peakrate_bps: fault.peakrate_bps,
                    minburst_bytes: fault.minburst_bytes,
                };
                self.plan_tc(&mut undo, fault, &selection, leaf)?;
            }
            mechanism::NFQUEUE => {
                let action = match fault.action {
                    NetworkAction::Delay => PacketAction::Delay {
                        latency_ms: fault.latency_ms,
                        jitter_ms: fault.jitter_ms,
                        correlation_pct: fault.correlation_pct,
                    },
                    NetworkAction::Loss => PacketAction::Loss {
                        percent: fault.percent,
                        correlation_pct: fault.correlation_pct,
                    },
                    NetworkAction::Duplicate => PacketAction::Duplicate {
                        percent: fault.percent,
                        correlation_pct: fault.correlation_pct,
                    },
                    NetworkAction::Corrupt => PacketAction::Corrupt {
                        percent: fault.percent,
                        correlation_pct: fault.correlation_pct,
                    },
                    NetworkAction::Reorder => PacketAction::Reorder {
                        latency_ms: fault.latency_ms,
                        percent: fault.percent,
                        correlation_pct: fault.correlation_pct,
                        gap: fault.reorder_gap,
                    },
                    _ => PacketAction::Dns {
                        patterns: fault.dns_patterns.clone(),
                        random: fault.dns_mode.as_deref() == Some("random"),
                    },
                };
                let queue_num = nfqueue::allocate_queue(&undo.short_id)?;
                let hooks = if fault.action == NetworkAction::Dns {
                    vec![Hook::Ingress]
                } else {
                    direction_hooks
                };
                let mut target: Vec<String> = Vec::new();
                if fault.action == NetworkAction::Duplicate {
                    // Copies the engine sends carry this mark and must not be queued again.
                    target.extend(["-m", "mark", "!", "--mark"].map(String::from));
                    target.push(format!("{:#x}", nfqueue::ENGINE_MARK));
                }
                target.extend(["-j", "NFQUEUE", "--queue-num"].map(String::from));
                target.push(queue_num.to_string());
                target.push("--queue-bypass".into());
                self.plan_iptables(&mut undo, &selection, &hooks, &target);
                undo.engine = Some(EngineConfig { queue_num, action });
            }
            mechanism::NFT_NUMGEN => {
                let threshold = (fault.percent * 100.0).round() as u32;
                let verdict = format!("numgen random mod 10000 < {threshold} drop");
                self.plan_nft(&mut undo, &selection, &direction_hooks, &verdict);
            }
            mechanism::IPTABLES_STATISTIC => {
                let target = vec![
                    "-m".into(),
                    "statistic".into(),
                    "--mode".into(),
                    "random".into(),
                    "--probability".into(),
                    format!("{:.4}", fault.percent / 100.0),
                    "-j".into(),
                    "DROP".into(),
                ];
                self.plan_iptables(&mut undo, &selection, &direction_hooks, &target);
            }
            mechanism::NFTABLES => self.plan_nft(&mut undo, &selection, &direction_hooks, "drop"),
            mechanism::IPTABLES => {
                let target = vec!["-j".into(), "DROP".into()];
                self.plan_iptables(&mut undo, &selection, &direction_hooks, &target);
            }
            _ => self.plan_nic_down(&mut undo, fault)?,
        }
        tracing::info!(
            fault = id,
            action = fault.action.as_str(),
            mechanism = chosen,
            netns = ?undo.netns,
            steps = undo.steps.len(),
            "network fault planned"
        );
        let undo_value = serde_json::to_value(&undo)
            .map_err(|e| InjectError::Failed(format!("cannot record the plan: {e}")))?;
        Ok(Plan {
            id: id.to_string(),
            mechanism: chosen.to_string(),
            undo: undo_value,
        })
    }

    fn apply(&self, plan: &Plan, _fault: &AgentFault) -> Result<Applied, InjectError> {
        let undo = Self::undo_of(plan)?;
        let ns = undo.netns.as_deref();
        // The engine binds its queue before any rule feeds it, so no packet ever reaches an
        // unbound queue (which --queue-bypass would let through untouched).
        let mut worker = match &undo.engine {
            Some(engine) => {
                nfqueue::reserve_queue(engine.queue_num);
                let worker = NfqueueWorker::start(undo.netns.clone(), engine.clone())?;
                if let Ok(mut engines) = self.engines.lock() {
                    engines.insert(plan.id.clone(), worker.health());
                }
                Some(Box::new(worker))
            }
            None => None,
        };
        for step in &undo.steps {
            if let Err(error) = self.run(ns, &step.program, &step.args) {
                tracing::error!(fault = %plan.id, %error, "apply failed; rolling back");
                if let Some(w) = worker.take() {
                    crate::inject::Worker::stop(w);
                }
                if let Err(rollback) = self.remove_undo(&plan.id, &undo) {
                    tracing::error!(fault = %plan.id, error = %rollback, "rollback incomplete");
                }
                return Err(error);
            }
        }
        tracing::info!(fault = %plan.id, mechanism = %plan.mechanism, "network fault applied");
        Ok(Applied {
            worker: worker.map(|w| w as Box<dyn crate::inject::Worker>),
            undo_update: None,
        })
    }

    fn verify(&self, plan: &Plan) -> Result<bool, InjectError> {
        let undo = Self::undo_of(plan)?;
        let ns = undo.netns.as_deref();
        for q in &undo.qdiscs {
            // A device that is gone (an ifb deleted by removal) reads as "not in place".
            let show = self
                .read(ns, "tc", &["qdisc", "show", "dev", &q.device])
                .unwrap_or_default();
            let present = tc::parse_qdiscs(&show)
                .iter()
                .any(|l| l.root && l.handle == q.handle && l.kind == q.kind);
            if !present {
                tracing::warn!(fault = %plan.id, device = %q.device, handle = %q.handle, "qdisc missing");
                return Ok(false);
            }
        }
        for i in &undo.ingress {
            let filters = self.read(ns, "tc", &["filter", "show", "dev", &i.device, "ingress"]);
            if !filters.is_ok_and(|f| f.contains(&i.ifb)) {
                return Ok(false);
            }
        }
        if let Some(table) = &undo.nft_table {
            if self
                .read(ns, "nft", &["list", "table", "inet", table])
                .is_err()
            {
                return Ok(false);
            }
        }
        let comment = undo.comment();
        for c in &undo.chains {
            let check = jump_args("-C", &c.from, &comment, &c.chain);
            if self.run(ns, &c.binary, &check).is_err() {
                return Ok(false);
            }
            let rules = self.read(ns, &c.binary, &["-w", "-t", "filter", "-S", &c.chain]);
            if !rules.is_ok_and(|r| r.contains(&comment)) {
                return Ok(false);
            }
        }
        if undo.engine.is_some() {
            let alive = self
                .engines
                .lock()
                .ok()
                .and_then(|e| e.get(&plan.id).map(EngineHealth::is_alive))
                .unwrap_or(false);
            if !alive {
                tracing::warn!(fault = %plan.id, "nfqueue worker is not running");
                return Ok(false);
            }
        }
        for link in &undo.links_down {
            let show = self.read(ns, "ip", &["-o", "link", "show", "dev", &link.device]);
            if show.map_or(true, |s| link_is_up(&s)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn remove(&self, plan: &Plan) -> Result<(), InjectError> {
        let undo = Self::undo_of(plan)?;
        self.remove_undo(&plan.id, &undo)?;
        tracing::info!(fault = %plan.id, mechanism = %plan.mechanism, "network fault removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
