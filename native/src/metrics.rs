//! The agent's `/metrics`: node metrics from /proc (see `node_metrics`) and fault metrics —
//! faults in force by kind/action, and the value each one holds (latency, loss, load…).

use std::collections::BTreeMap;
use std::fmt::Write;

use chaoshub_schema::agent::AgentFault;

use crate::daemon::faults::FaultTable;

/// Renders the whole exposition.
pub fn render(table: &FaultTable) -> String {
    let mut out = String::new();
    if let Err(e) = crate::node_metrics::render_node_metrics(&mut out) {
        tracing::warn!(error = %e, "node metrics unavailable");
    }
    render_faults(&table.summary(), &mut out);
    out
}

/// The value a fault asks for, with its unit suffix, for `chaos_agent_fault_value`.
fn requested(fault: &AgentFault) -> Vec<(&'static str, f64)> {
    match fault {
        AgentFault::Network(n) => match n.action.as_str() {
            "delay" => vec![
                ("latency_seconds", n.latency_ms / 1000.0),
                ("jitter_seconds", n.jitter_ms / 1000.0),
            ],
            "loss" | "duplicate" | "corrupt" | "reorder" => vec![("percent", n.percent)],
            "bandwidth" => vec![("rate_bits_per_second", n.rate_bps as f64)],
            _ => vec![],
        },
        AgentFault::Stress(s) => {
            let mut v = Vec::new();
            if let Some(cpu) = &s.cpu {
                v.push(("cpu_load_percent", f64::from(cpu.load_pct)));
                v.push(("cpu_workers", f64::from(cpu.workers)));
            }
            if let Some(mem) = &s.memory {
                if let Some(size) = mem.size_bytes {
                    v.push(("memory_bytes", size as f64));
                }
                if let Some(p) = mem.percent {
                    v.push(("memory_percent", p));
                }
            }
            v
        }
        AgentFault::Disk(d) => d
            .size_bytes
            .map(|s| vec![("bytes", s as f64)])
            .unwrap_or_default(),
        AgentFault::Clock(c) => vec![("offset_seconds", c.offset_ms as f64 / 1000.0)],
        _ => vec![],
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render_faults(faults: &[(String, AgentFault, Option<f64>)], out: &mut String) {
    let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
    for (_, fault, _) in faults {
        *by_label.entry(fault.label()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP chaos_agent_faults_active Faults in force, by kind/action."
    );
    let _ = writeln!(out, "# TYPE chaos_agent_faults_active gauge");
    for (label, count) in &by_label {
        let (kind, action) = label.split_once('/').unwrap_or((label, ""));
        let _ = writeln!(
            out,
            "chaos_agent_faults_active{{kind=\"{}\",action=\"{}\"}} {count}",
            escape(kind),
            escape(action)
        );
    }
    let _ = writeln!(out, "# HELP chaos_agent_fault_value The value a fault in force asks for (unit in the `unit` label).");
    let _ = writeln!(out, "# TYPE chaos_agent_fault_value gauge");
    for (id, fault, _) in faults {
        for (unit, value) in requested(fault) {
            let _ = writeln!(
                out,
                "chaos_agent_fault_value{{id=\"{}\",fault=\"{}\",unit=\"{unit}\"}} {value}",
                escape(id),
                escape(&fault.label())
            );
        }
    }
    let _ = writeln!(out, "# HELP chaos_agent_fault_measured The value a fault in force delivers, as measured by its worker (CPU load percent, bytes held…).");
    let _ = writeln!(out, "# TYPE chaos_agent_fault_measured gauge");
    for (id, fault, measured) in faults {
        if let Some(m) = measured {
            let _ = writeln!(
                out,
                "chaos_agent_fault_measured{{id=\"{}\",fault=\"{}\"}} {m}",
                escape(id),
                escape(&fault.label())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::agent::{NetworkAction, NetworkFault};

    #[test]
    fn fault_metrics_have_kind_action_and_values() {
        let mut delay = NetworkFault::new(NetworkAction::Delay);
        delay.latency_ms = 100.0;
        let faults = vec![("a\"b".to_string(), AgentFault::Network(delay), None)];
        let mut out = String::new();
        render_faults(&faults, &mut out);
        assert!(out.contains("chaos_agent_faults_active{kind=\"network\",action=\"delay\"} 1"));
        assert!(out.contains("chaos_agent_fault_value{id=\"a\\\"b\",fault=\"network/delay\",unit=\"latency_seconds\"} 0.1"));
    }
}
