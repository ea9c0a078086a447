//! nftables: one table per fault, `inet chaoshub_<short_id>`, created in a single `nft`
//! transaction and removed by deleting the table — which cannot touch anyone else's rules.

use super::{Hook, Protocol, Selection};

pub fn table_name(short_id: &str) -> String {
    format!("chaoshub_{short_id}")
}

fn chain_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Egress => "egress",
        Hook::Ingress => "ingress",
    }
}

fn set(items: &[String]) -> String {
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

fn ports(ports: &[u16]) -> String {
    let items: Vec<String> = ports.iter().map(u16::to_string).collect();
    set(&items)
}

/// The match expressions selecting the fault's packets at `hook`: one string per address
/// family that needs its own rule (`ip daddr` and `ip6 daddr` cannot share one).
pub fn matches(selection: &Selection, hook: Hook) -> Vec<String> {
    let (iface, addr, remote_port, local_port) = match hook {
        Hook::Egress => ("oifname", "daddr", "dport", "sport"),
        Hook::Ingress => ("iifname", "saddr", "sport", "dport"),
    };
    let mut common = Vec::new();
    match &selection.device {
        Some(dev) => common.push(format!("{iface} \"{dev}\"")),
        None if selection.skip_loopback => common.push(format!("{iface} != \"lo\"")),
        None => {}
    }
    let needs_l4 = !selection.ports.is_empty() || !selection.local_ports.is_empty();
    match selection.protocol {
        Some(Protocol::Tcp) => common.push("meta l4proto tcp".into()),
        Some(Protocol::Udp) => common.push("meta l4proto udp".into()),
        Some(Protocol::Icmp) => common.push("meta l4proto { icmp, ipv6-icmp }".into()),
        None if needs_l4 => common.push("meta l4proto { tcp, udp }".into()),
        None => {}
    }
    if !selection.ports.is_empty() {
        common.push(format!("th {remote_port} {}", ports(&selection.ports)));
    }
    if !selection.local_ports.is_empty() {
        common.push(format!("th {local_port} {}", ports(&selection.local_ports)));
    }
    let mut variants = Vec::new();
    if selection.v4.is_empty() && selection.v6.is_empty() {
        variants.push(common.join(" "));
    } else {
        if !selection.v4.is_empty() {
            let mut parts = vec![format!("ip {addr} {}", set(&selection.v4))];
            parts.extend(common.iter().cloned());
            variants.push(parts.join(" "));
        }
        if !selection.v6.is_empty() {
            let mut parts = vec![format!("ip6 {addr} {}", set(&selection.v6))];
            parts.extend(common.iter().cloned());
            variants.push(parts.join(" "));
        }
    }
    variants
}

/// The whole table as one `nft` script. `verdict` is appended to every match
/// (`drop`, `numgen random mod 10000 < 3000 drop`); every rule carries the ownership comment.
pub fn table_script(
    table: &str,
    comment: &str,
    selection: &Selection,
    hooks: &[Hook],
    verdict: &str,
) -> String {
    let mut lines = vec![format!("add table inet {table}")];
    for &hook in hooks {
        let chain = chain_name(hook);
        let nf_hook = match hook {
            Hook::Egress => "output",
            Hook::Ingress => "input",
        };
        // Priority -5 runs just before the usual filter tables (0), so a user's own accept
        // rules cannot hide the fault, and our table never changes theirs.
        lines.push(format!(
            "add chain inet {table} {chain} {{ type filter hook {nf_hook} priority -5; policy accept; }}"
        ));
        for m in matches(selection, hook) {
            let m = if m.is_empty() {
                String::new()
            } else {
                format!("{m} ")
            };
            lines.push(format!(
                "add rule inet {table} {chain} {m}counter {verdict} comment \"{comment}\""
            ));
        }
    }
    lines.join("\n")
}
