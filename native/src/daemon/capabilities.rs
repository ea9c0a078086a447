//! What this agent can run, from the mechanisms the kernel offers, as `Kind/action` pairs the
//! hub's `native` adapter understands; plus the host facts it reports when registering.

use chaoshub_schema::agent::KernelMechanisms;

use crate::injectors::InjectorOptions;

/// `Kind/action` pairs runnable here.
pub fn of(m: &KernelMechanisms, options: &InjectorOptions) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |kind: &str, actions: &[&str]| {
        for a in actions {
            out.push(format!("{kind}/{a}"));
        }
    };
    let queue = m.netem || m.nfqueue;
    let filter = m.nftables || m.iptables;
    let loss = m.netem || m.nft_numgen || m.iptables_statistic;
    let shape = m.netem || m.tbf;
    if queue {
        add("NetworkChaos", &["delay", "duplicate", "corrupt"]);
        add(
            "PhysicalMachineChaos",
            &["network-delay", "network-duplicate", "network-corrupt"],
        );
    }
    if loss {
        add("NetworkChaos", &["loss"]);
        add("PhysicalMachineChaos", &["network-loss"]);
    }
    if shape {
        add("NetworkChaos", &["bandwidth"]);
        add("PhysicalMachineChaos", &["network-bandwidth"]);
    }
    if filter {
        add("NetworkChaos", &["partition"]);
        add(
            "PhysicalMachineChaos",
            &["network-partition", "network-port-occupied"],
        );
    }
    // DNS answers are rewritten in the NFQUEUE engine only (`choose_mechanism` refuses the
    // fault without it), so a filter alone is not enough.
    if m.nfqueue {
        add("PhysicalMachineChaos", &["network-dns"]);
        add("DNSChaos", &["error", "random"]);
    }
    add("PhysicalMachineChaos", &["network-down"]);
    add("StressChaos", &["cpu", "memory"]);
    add(
        "PhysicalMachineChaos",
        &[
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
        ],
    );
    // Dangerous families are offered only when the agent was started to allow them, so the
    // hub refuses them at submission instead of the agent at injection.
    if options.allow_user_defined {
        add("PhysicalMachineChaos", &["user_defined"]);
    }
    if options.allow_clock_skew {
        add("PhysicalMachineChaos", &["clock"]);
    }
    out.sort();
    out.dedup();
    out
}

/// The host name from the kernel.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Non-loopback addresses of this network namespace (`ip -j addr`), best effort.
pub fn addresses() -> Vec<String> {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    let mut addrs = Vec::new();
    for link in value.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(local) = info["local"].as_str() {
                if info["scope"].as_str() == Some("global") {
                    addrs.push(local.to_string());
                }
            }
        }
    }
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DNS faults need the NFQUEUE engine: nftables alone offers partitions but not DNS, and
    /// DNSChaos is offered beside PhysicalMachineChaos network-dns.
    #[test]
    fn dns_is_offered_only_with_nfqueue() {
        let options = InjectorOptions::default();
        let nft_only = KernelMechanisms {
            nftables: true,
            ..KernelMechanisms::default()
        };
        let offered = of(&nft_only, &options);
        assert!(offered.contains(&"PhysicalMachineChaos/network-partition".to_string()));
        assert!(!offered
            .iter()
            .any(|c| c.contains("dns") || c.starts_with("DNSChaos")));
        let with_queue = KernelMechanisms {
            iptables: true,
            nfqueue: true,
            ..KernelMechanisms::default()
        };
        let offered = of(&with_queue, &options);
        for c in [
            "PhysicalMachineChaos/network-dns",
            "DNSChaos/error",
            "DNSChaos/random",
        ] {
            assert!(offered.contains(&c.to_string()), "{c} in {offered:?}");
        }
    }
}
