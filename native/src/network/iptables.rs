//! iptables / ip6tables: the fallback for packet filtering where nftables is missing, and the
//! only way to reach NFQUEUE on kernels without nft's `queue` statement. Each fault owns one
//! chain per hook, `CHAOSHUB-<12 hex of its short id>-OUT` / `-IN`, entered by one jump rule
//! tagged `-m comment --comment chaoshub:<short_id>`; removal deletes exactly that jump, then
//! flushes and deletes the chain.

use serde::{Deserialize, Serialize};

use super::{Hook, Protocol, Selection};

/// One chain this fault owns, and where it is jumped to from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedChain {
    /// `iptables` or `ip6tables`.
    pub binary: String,
    pub chain: String,
    /// The built-in chain of the `filter` table with our jump (`OUTPUT`, `INPUT`).
    pub from: String,
}

pub fn chain_name(short_id: &str, hook: Hook) -> String {
    let prefix = short_id.get(..12).unwrap_or(short_id);
    match hook {
        Hook::Egress => format!("CHAOSHUB-{prefix}-OUT"),
        Hook::Ingress => format!("CHAOSHUB-{prefix}-IN"),
    }
}

pub fn builtin(hook: Hook) -> &'static str {
    match hook {
        Hook::Egress => "OUTPUT",
        Hook::Ingress => "INPUT",
    }
}

/// Which binaries a selection needs: addresses of one family restrict it to that family's tool.
pub fn binaries(selection: &Selection) -> Vec<&'static str> {
    match (selection.v4.is_empty(), selection.v6.is_empty()) {
        (false, true) => vec!["iptables"],
        (true, false) => vec!["ip6tables"],
        _ => vec!["iptables", "ip6tables"],
    }
}

/// Match arguments, one vector per rule (iptables has no sets: peers × protocols × ports are
/// spelled out rule by rule).
pub fn matches(selection: &Selection, hook: Hook, binary: &str) -> Vec<Vec<String>> {
    let v6 = binary == "ip6tables";
    let (iface, addr, remote_port, local_port) = match hook {
        Hook::Egress => ("-o", "-d", "--dport", "--sport"),
        Hook::Ingress => ("-i", "-s", "--sport", "--dport"),
    };
    let peers: Vec<Option<&String>> = {
        let list = if v6 { &selection.v6 } else { &selection.v4 };
        if list.is_empty() {
            vec![None]
        } else {
            list.iter().map(Some).collect()
        }
    };
    let needs_l4 = !selection.ports.is_empty() || !selection.local_ports.is_empty();
    let protocols: Vec<Option<&str>> = match selection.protocol {
        Some(Protocol::Tcp) => vec![Some("tcp")],
        Some(Protocol::Udp) => vec![Some("udp")],
        Some(Protocol::Icmp) => vec![Some(if v6 { "ipv6-icmp" } else { "icmp" })],
        None if needs_l4 => vec![Some("tcp"), Some("udp")],
        None => vec![None],
    };
    let remote: Vec<Option<u16>> = if selection.ports.is_empty() {
        vec![None]
    } else {
        selection.ports.iter().copied().map(Some).collect()
    };
    let local: Vec<Option<u16>> = if selection.local_ports.is_empty() {
        vec![None]
    } else {
        selection.local_ports.iter().copied().map(Some).collect()
    };
    let mut rules = Vec::new();
    for peer in &peers {
        for proto in &protocols {
            for rport in &remote {
                for lport in &local {
                    let mut args: Vec<String> = Vec::new();
                    match &selection.device {
                        Some(dev) => args.extend([iface.to_string(), dev.clone()]),
                        None if selection.skip_loopback => {
                            args.extend(["!".into(), iface.to_string(), "lo".into()])
                        }
                        None => {}
                    }
                    if let Some(peer) = peer {
                        args.extend([addr.to_string(), (*peer).clone()]);
                    }
                    if let Some(proto) = proto {
                        args.extend(["-p".to_string(), proto.to_string()]);
                    }
                    if let Some(p) = rport {
                        args.extend([remote_port.to_string(), p.to_string()]);
                    }
                    if let Some(p) = lport {
                        args.extend([local_port.to_string(), p.to_string()]);
                    }
                    rules.push(args);
                }
            }
        }
    }
    rules
}
