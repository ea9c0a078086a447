//! Traffic control: netem, tbf and htb + u32 commands, reading the qdiscs already on a device,
//! and the ifb redirect that lets egress qdiscs shape ingress traffic.
//!
//! Ownership: a fault's root qdisc gets a handle derived from its short id, and removal runs
//! `tc qdisc del dev D root handle H:` — the kernel refuses ("Invalid handle") when the root is
//! not ours, so a user's qdisc can never be deleted by mistake.

use serde::{Deserialize, Serialize};

use super::{Hook, Protocol, Selection};

/// A root qdisc this fault added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedQdisc {
    pub device: String,
    /// `8a3f:`
    pub handle: String,
    /// `netem`, `tbf` or `htb`.
    pub kind: String,
}

/// An ingress redirect this fault added: the `ingress` qdisc on `device` and the ifb device
/// its traffic is mirrored to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedIngress {
    pub device: String,
    pub ifb: String,
}

/// The root qdisc handle for a fault: four hex digits of its short id, kept away from the
/// small handles (1:, 10:…) people type by hand and from ffff: (ingress).
pub fn handle_for(short_id: &str) -> String {
    let raw = u16::from_str_radix(short_id.get(..4).unwrap_or("0"), 16).unwrap_or(0);
    let major = match raw {
        0..=0x0fff => raw | 0x1000,
        0xffff => 0xfffe,
        other => other,
    };
    format!("{major:x}:")
}

/// The child handle under our htb class (major + 1).
fn child_handle(handle: &str) -> String {
    let major = u16::from_str_radix(handle.trim_end_matches(':'), 16).unwrap_or(0x1000);
    format!("{:x}:", major.wrapping_add(1).max(0x1000))
}

/// An ifb device name for a fault and an index (IFNAMSIZ leaves 15 characters).
pub fn ifb_name(short_id: &str, index: usize) -> String {
    format!(
        "chb{}{:02}",
        short_id.get(..10).unwrap_or(short_id),
        index % 100
    )
}

/// A qdisc line of `tc qdisc show dev D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdiscLine {
    pub kind: String,
    pub handle: String,
    pub root: bool,
    pub ingress: bool,
}

pub fn parse_qdiscs(show: &str) -> Vec<QdiscLine> {
    show.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "qdisc" {
                return None;
            }
            let kind = words.next()?.to_string();
            let handle = words.next()?.to_string();
            let rest: Vec<&str> = words.collect();
            Some(QdiscLine {
                root: rest.first() == Some(&"root"),
                ingress: kind == "ingress" || kind == "clsact",
                kind,
                handle,
            })
        })
        .collect()
}

/// A root qdisc someone configured (the kernel's defaults have handle `0:`).
pub fn foreign_root(qdiscs: &[QdiscLine]) -> Option<&QdiscLine> {
    qdiscs.iter().find(|q| q.root && q.handle != "0:")
}

/// What shapes the selected traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// netem with these arguments (`delay 100ms 10ms 25%`).
    Netem(Vec<String>),
    /// Token bucket: rate in bit/s, bucket and queue limit in bytes.
    Rate {
        rate_bps: u64,
        buffer_bytes: u64,
        limit_bytes: u64,
        peakrate_bps: Option<u64>,
        minburst_bytes: Option<u64>,
    },
}

impl Leaf {
    pub fn kind(&self, filtered: bool) -> &'static str {
        match (self, filtered) {
            (_, true) => "htb",
            (Leaf::Netem(_), false) => "netem",
            (Leaf::Rate { .. }, false) => "tbf",
        }
    }
}

fn s(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// `tc` argument vectors that install `leaf` as the root of `device`, for all its traffic or —
/// when `filters` is non-empty — for the packets the u32 filters select (htb classes: 1 the
/// shaped one, 2 the default at line rate).
pub fn shaping_commands(
    device: &str,
    handle: &str,
    leaf: &Leaf,
    filters: &[Vec<String>],
) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let root = s(&["qdisc", "add", "dev", device, "root", "handle", handle]);
    if filters.is_empty() {
        let mut c = root;
        match leaf {
            Leaf::Netem(args) => {
                c.push("netem".into());
                c.extend(args.iter().cloned());
            }
            Leaf::Rate {
                rate_bps,
                buffer_bytes,
                limit_bytes,
                peakrate_bps,
                minburst_bytes,
            } => {
                c.extend(s(&["tbf", "rate"]));
                c.push(format!("{rate_bps}bit"));
                c.extend(["burst".into(), buffer_bytes.to_string()]);
                c.extend(["limit".into(), limit_bytes.to_string()]);
                if let Some(peak) = peakrate_bps {
                    c.extend(["peakrate".into(), format!("{peak}bit")]);
                    c.extend([
                        "minburst".into(),
                        minburst_bytes.unwrap_or(1600).to_string(),
                    ]);
                }
            }
        }
        cmds.push(c);
        return cmds;
    }
    let major = handle.trim_end_matches(':');
    let shaped = format!("{major}:1");
    let default = format!("{major}:2");
    let mut c = root;
    c.extend(s(&["htb", "default", "2"]));
    cmds.push(c);
    let class = |classid: &str, rate: String, burst: Option<u64>| {
        let mut c = s(&[
            "class", "add", "dev", device, "parent", handle, "classid", classid,
        ]);
        c.extend([
            "htb".into(),
            "rate".into(),
            rate.clone(),
            "ceil".into(),
            rate,
        ]);
        if let Some(b) = burst {
            c.extend(["burst".into(), b.to_string()]);
        }
        c
    };
    match leaf {
        Leaf::Rate {
            rate_bps,
            buffer_bytes,
            ..
        } => cmds.push(class(
            &shaped,
            format!("{rate_bps}bit"),
            Some(*buffer_bytes),
        )),
        Leaf::Netem(_) => cmds.push(class(&shaped, "10gbit".into(), None)),
    }
    cmds.push(class(&default, "10gbit".into(), None));
    if let Leaf::Netem(args) = leaf {
        let child = child_handle(handle);
        let mut c = s(&[
            "qdisc", "add", "dev", device, "parent", &shaped, "handle", &child,
        ]);
        c.push("netem".into());
        c.extend(args.iter().cloned());
        cmds.push(c);
    }
    for (i, m) in filters.iter().enumerate() {
        let v6 = m.iter().any(|a| a == "ip6");
        let mut c = s(&["filter", "add", "dev", device, "parent", handle, "protocol"]);
        c.push(if v6 { "ipv6" } else { "ip" }.into());
        c.extend(["prio".into(), (i + 1).to_string(), "u32".into()]);
        c.extend(m.iter().cloned());
        c.extend(["flowid".into(), shaped.clone()]);
        cmds.push(c);
    }
    cmds
}

/// u32 match arguments selecting the fault's packets as seen at `hook` (on an ifb device the
/// packets are ingress ones: the peer is the source). One vector per filter. Assumes IPv4
/// headers without options and IPv6 without extension headers, as u32's `ip dport` does.
pub fn u32_matches(selection: &Selection, hook: Hook) -> Vec<Vec<String>> {
    let (addr, remote_port, local_port) = match hook {
        Hook::Egress => ("dst", "dport", "sport"),
        Hook::Ingress => ("src", "sport", "dport"),
    };
    let mut filters = Vec::new();
    let only_ports = selection.v4.is_empty() && selection.v6.is_empty();
    for (family, peers) in [("ip", &selection.v4), ("ip6", &selection.v6)] {
        let peer_list: Vec<Option<&String>> = if peers.is_empty() {
            // A family without peers is matched only when no peer restricts the fault at all.
            if only_ports {
                vec![None]
            } else {
                continue;
            }
        } else {
            peers.iter().map(Some).collect()
        };
        let needs_l4 = !selection.ports.is_empty() || !selection.local_ports.is_empty();
        let protos: Vec<Option<u8>> = match selection.protocol {
            Some(Protocol::Tcp) => vec![Some(6)],
            Some(Protocol::Udp) => vec![Some(17)],
            Some(Protocol::Icmp) => vec![Some(if family == "ip6" { 58 } else { 1 })],
            None if needs_l4 => vec![Some(6), Some(17)],
            None => vec![None],
        };
        let rports: Vec<Option<u16>> = if selection.ports.is_empty() {
            vec![None]
        } else {
            selection.ports.iter().copied().map(Some).collect()
        };
        let lports: Vec<Option<u16>> = if selection.local_ports.is_empty() {
            vec![None]
        } else {
            selection.local_ports.iter().copied().map(Some).collect()
        };
        for peer in &peer_list {
            for proto in &protos {
                for rp in &rports {
                    for lp in &lports {
                        let mut m: Vec<String> = Vec::new();
                        if let Some(peer) = peer {
                            m.extend(s(&["match", family, addr, peer]));
                        }
                        if let Some(p) = proto {
                            m.extend(s(&["match", family, "protocol", &p.to_string(), "0xff"]));
                        }
                        if let Some(p) = rp {
                            m.extend(s(&["match", family, remote_port, &p.to_string(), "0xffff"]));
                        }
                        if let Some(p) = lp {
                            m.extend(s(&["match", family, local_port, &p.to_string(), "0xffff"]));
                        }
                        if m.is_empty() {
                            m.extend(s(&["match", "u32", "0", "0"]));
                        }
                        filters.push(m);
                    }
                }
            }
        }
    }
    filters
}

/// Commands that mirror `device`'s ingress traffic to the ifb device `ifb` (created here).
pub fn ingress_redirect_commands(device: &str, ifb: &str) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("ip", s(&["link", "add", ifb, "type", "ifb"])),
        ("ip", s(&["link", "set", "dev", ifb, "up"])),
        (
            "tc",
            s(&["qdisc", "add", "dev", device, "handle", "ffff:", "ingress"]),
        ),
        (
            "tc",
            s(&[
                "filter", "add", "dev", device, "parent", "ffff:", "protocol", "all", "prio", "1",
                "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
                ifb,
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_avoid_manual_and_ingress_ranges() {
        assert_eq!(handle_for("0001aaaaaaaaaaaa"), "1001:");
        assert_eq!(handle_for("8a3f000000000000"), "8a3f:");
        assert_eq!(handle_for("ffff000000000000"), "fffe:");
    }

    #[test]
    fn parses_qdisc_show() {
        let show = "qdisc noqueue 0: root refcnt 2 \nqdisc ingress ffff: parent ffff:fff1 ----------------\n";
        let q = parse_qdiscs(show);
        assert_eq!(q.len(), 2);
        assert!(foreign_root(&q).is_none());
        assert!(q[1].ingress);
        let user = parse_qdiscs("qdisc htb 1: root refcnt 3 r2q 10 default 0x1\n");
        assert_eq!(foreign_root(&user).map(|q| q.handle.as_str()), Some("1:"));
    }
}
