//! The value in force of a running experiment, derived from its spec: what a dashboard puts
//! next to the service's own latency and error rate. Pure functions over the stored spec.
//!
//! Values are in Prometheus base units: seconds, ratios (0–1) and bytes per second, whatever
//! unit the manifest used (`90ms`, `"25"` percent, `1mbps`, Toxiproxy KB/s).

use chaoshub_schema::duration::parse_duration;
use serde_json::Value;

/// One quantity a fault imposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultQuantity {
    DelaySeconds,
    JitterSeconds,
    LossRatio,
    DuplicateRatio,
    CorruptRatio,
    BandwidthBytesPerSecond,
    CpuLoadRatio,
    CpuWorkers,
    AbortRatio,
}

impl FaultQuantity {
    pub const ALL: [FaultQuantity; 9] = [
        Self::DelaySeconds,
        Self::JitterSeconds,
        Self::LossRatio,
        Self::DuplicateRatio,
        Self::CorruptRatio,
        Self::BandwidthBytesPerSecond,
        Self::CpuLoadRatio,
        Self::CpuWorkers,
        Self::AbortRatio,
    ];

    /// The metric name (after the `chaoshub_` prefix).
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::DelaySeconds => "fault_delay_seconds",
            Self::JitterSeconds => "fault_jitter_seconds",
            Self::LossRatio => "fault_packet_loss_ratio",
            Self::DuplicateRatio => "fault_packet_duplicate_ratio",
            Self::CorruptRatio => "fault_packet_corrupt_ratio",
            Self::BandwidthBytesPerSecond => "fault_bandwidth_limit_bytes_per_second",
            Self::CpuLoadRatio => "fault_cpu_load_ratio",
            Self::CpuWorkers => "fault_cpu_workers",
            Self::AbortRatio => "fault_abort_ratio",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Self::DelaySeconds => "Latency added by a running experiment to each target",
            Self::JitterSeconds => "Latency jitter added by a running experiment to each target",
            Self::LossRatio => "Share of packets dropped by a running experiment (0-1)",
            Self::DuplicateRatio => "Share of packets duplicated by a running experiment (0-1)",
            Self::CorruptRatio => "Share of packets corrupted by a running experiment (0-1)",
            Self::BandwidthBytesPerSecond => "Bandwidth limit imposed by a running experiment",
            Self::CpuLoadRatio => "CPU load per stress worker of a running experiment (0-1)",
            Self::CpuWorkers => "CPU stress workers started by a running experiment per target",
            Self::AbortRatio => {
                "Share of requests or connections aborted by a running experiment (0-1)"
            }
        }
    }
}

fn seconds(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_duration(s).ok().map(|d| d.as_secs_f64()),
        _ => None,
    }
}

/// A percentage given as a string (`"25"`, `"12.5%"`) or a number, as a ratio.
fn percent_ratio(v: &Value) -> Option<f64> {
    let n = match v {
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some((n / 100.0).clamp(0.0, 1.0))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A tc-style rate (`100kbps`, `1mbit`, `8gbit`) in bytes per second. As in tc and Chaos Mesh,
/// `bps` suffixes are bytes per second and `bit` suffixes bits per second; a bare number is
/// bits per second.
pub fn rate_bytes_per_second(text: &str) -> Option<f64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let (scale, bytes) = match unit.trim() {
        "" | "bit" => (1.0, false),
        "kbit" => (1e3, false),
        "mbit" => (1e6, false),
        "gbit" => (1e9, false),
        "tbit" => (1e12, false),
        "bps" => (1.0, true),
        "kbps" => (1e3, true),
        "mbps" => (1e6, true),
        "gbps" => (1e9, true),
        "tbps" => (1e12, true),
        "kibit" => (1024.0, false),
        "mibit" => (1024.0 * 1024.0, false),
        "gibit" => (1024.0 * 1024.0 * 1024.0, false),
        "kibps" => (1024.0, true),
        "mibps" => (1024.0 * 1024.0, true),
        "gibps" => (1024.0 * 1024.0 * 1024.0, true),
        _ => return None,
    };
    Some(if bytes { n * scale } else { n * scale / 8.0 })
}

/// The quantities a fault of `kind` with `actions` and `spec` imposes on each target.
pub fn fault_values(kind: &str, actions: &[String], spec: &Value) -> Vec<(FaultQuantity, f64)> {
    let mut out = Vec::new();
    let mut push = |q: FaultQuantity, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.push((q, v));
        }
    };
    let has = |a: &str| actions.iter().any(|x| x == a);
    match kind {
        "NetworkChaos" => {
            if let Some(d) = spec.get("delay") {
                push(
                    FaultQuantity::DelaySeconds,
                    d.get("latency").and_then(seconds),
                );
                push(
                    FaultQuantity::JitterSeconds,
                    d.get("jitter").and_then(seconds),
                );
            }
            push(
                FaultQuantity::LossRatio,
                spec.pointer("/loss/loss").and_then(percent_ratio),
            );
            push(
                FaultQuantity::DuplicateRatio,
                spec.pointer("/duplicate/duplicate").and_then(percent_ratio),
            );
            push(
                FaultQuantity::CorruptRatio,
                spec.pointer("/corrupt/corrupt").and_then(percent_ratio),
            );
            let rate = spec
                .pointer("/bandwidth/rate")
                .or_else(|| spec.pointer("/rate/rate"))
                .and_then(Value::as_str)
                .and_then(rate_bytes_per_second);
            push(FaultQuantity::BandwidthBytesPerSecond, rate);
            if has("partition") {
                push(FaultQuantity::LossRatio, Some(1.0));
            }
        }
        "StressChaos" => {
            if let Some(cpu) = spec.pointer("/stressors/cpu") {
                push(
                    FaultQuantity::CpuLoadRatio,
                    Some(cpu.get("load").and_then(percent_ratio).unwrap_or(1.0)),
                );
                push(
                    FaultQuantity::CpuWorkers,
                    cpu.get("workers").and_then(number),
                );
            }
        }
        "PhysicalMachineChaos" => {
            if let Some(d) = spec.get("network-delay") {
                push(
                    FaultQuantity::DelaySeconds,
                    d.get("latency").and_then(seconds),
                );
                push(
                    FaultQuantity::JitterSeconds,
                    d.get("jitter").and_then(seconds),
                );
            }
            push(
                FaultQuantity::LossRatio,
                spec.pointer("/network-loss/percent")
                    .and_then(percent_ratio),
            );
            push(
                FaultQuantity::DuplicateRatio,
                spec.pointer("/network-duplicate/percent")
                    .and_then(percent_ratio),
            );
            push(
                FaultQuantity::CorruptRatio,
                spec.pointer("/network-corrupt/percent")
                    .and_then(percent_ratio),
            );
            push(
                FaultQuantity::BandwidthBytesPerSecond,
                spec.pointer("/network-bandwidth/rate")
                    .and_then(Value::as_str)
                    .and_then(rate_bytes_per_second),
            );
            if let Some(cpu) = spec.get("stress-cpu") {
                push(
                    FaultQuantity::CpuLoadRatio,
                    Some(cpu.get("load").and_then(percent_ratio).unwrap_or(1.0)),
                );
                push(
                    FaultQuantity::CpuWorkers,
                    cpu.get("workers").and_then(number),
                );
            }
            if has("network-partition") {
                push(FaultQuantity::LossRatio, Some(1.0));
            }
        }
        "HTTPChaos" => {
            push(
                FaultQuantity::DelaySeconds,
                spec.get("delay").and_then(seconds),
            );
            if spec.get("abort").and_then(Value::as_bool) == Some(true) {
                push(FaultQuantity::AbortRatio, Some(1.0));
            }
        }
        "ProxyChaos" => {
            let toxicity = spec.get("toxicity").and_then(number).unwrap_or(1.0);
            if let Some(l) = spec.get("latency") {
                let ms = |k: &str| l.get(k).and_then(number).map(|v| v / 1000.0);
                push(FaultQuantity::DelaySeconds, ms("latency"));
                push(FaultQuantity::JitterSeconds, ms("jitter"));
            }
            push(
                FaultQuantity::BandwidthBytesPerSecond,
                spec.pointer("/bandwidth/rate")
                    .and_then(number)
                    .map(|kb| kb * 1024.0),
            );
            if has("down") || has("reset_peer") || has("timeout") {
                push(FaultQuantity::AbortRatio, Some(toxicity.clamp(0.0, 1.0)));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn actions(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn network_delay_and_loss() {
        let spec = json!({"delay": {"latency": "90ms", "jitter": "10ms"}, "loss": {"loss": "25"}});
        let v = fault_values("NetworkChaos", &actions(&["delay"]), &spec);
        assert!(v.contains(&(FaultQuantity::DelaySeconds, 0.09)));
        assert!(v.contains(&(FaultQuantity::JitterSeconds, 0.01)));
        assert!(v.contains(&(FaultQuantity::LossRatio, 0.25)));
    }

    #[test]
    fn bandwidth_units_follow_tc() {
        assert_eq!(rate_bytes_per_second("1mbps"), Some(1e6));
        assert_eq!(rate_bytes_per_second("8mbit"), Some(1e6));
        assert_eq!(rate_bytes_per_second("100kbps"), Some(1e5));
        assert_eq!(rate_bytes_per_second("fast"), None);
    }

    #[test]
    fn stress_and_http_and_proxy() {
        let v = fault_values(
            "StressChaos",
            &actions(&["cpu"]),
            &json!({"stressors": {"cpu": {"workers": 2, "load": 50}}}),
        );
        assert!(v.contains(&(FaultQuantity::CpuLoadRatio, 0.5)));
        assert!(v.contains(&(FaultQuantity::CpuWorkers, 2.0)));
        let v = fault_values(
            "HTTPChaos",
            &actions(&["abort"]),
            &json!({"abort": true, "target": "Request"}),
        );
        assert_eq!(v, vec![(FaultQuantity::AbortRatio, 1.0)]);
        let v = fault_values(
            "ProxyChaos",
            &actions(&["latency"]),
            &json!({"latency": {"latency": 250, "jitter": 0}, "toxicity": 1.0}),
        );
        assert!(v.contains(&(FaultQuantity::DelaySeconds, 0.25)));
    }
}
