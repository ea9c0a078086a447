//! Pure translation of a fault into what the adapter puts on a proxy: toxics (ProxyChaos,
//! NetworkChaos delay / bandwidth / partition) or taking the proxy down. No network here.
//!
//! Every toxic the adapter creates is named `chaoshub.<injection id>.<type>.<stream>`, so
//! recovery — even after a crash that lost the adapter's answer — finds exactly this
//! injection's toxics and never a user's own.

use chaoshub_schema::chaosmesh::network::{Direction, NetworkChaosAction, NetworkChaosSpec};
use chaoshub_schema::duration::parse_duration;
use chaoshub_schema::proxy::{ProxyChaosAction, ProxyChaosSpec, ToxicStream};
use chaoshub_schema::Spec;
use serde_json::{json, Value};

use super::client::ApiToxic;
use super::config::PartitionMode;
use crate::{AdapterError, FaultRequest};

/// Prefix of every name the adapter gives a toxic.
pub const NAME_PREFIX: &str = "chaoshub.";

const UPSTREAM: &str = "upstream";
const DOWNSTREAM: &str = "downstream";

/// What one injection does to one proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyFault {
    /// Toxics to add (one per stream).
    Toxics(Vec<ApiToxic>),
    /// Disable the proxy. The marker toxic (a `latency` of 0 ms with toxicity 0, which changes
    /// nothing) is added first and records on the server itself that this injection disabled
    /// the proxy, so recovery re-enables it even when the hub crashed before storing that.
    Down { marker: ApiToxic },
}

/// The translation of a fault, with the fields it had to ignore.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyPlan {
    pub action: String,
    pub fault: ProxyFault,
    /// Parts of the manifest a proxy has no notion of, which are ignored (said in the details).
    pub ignored: Vec<String>,
}

impl ProxyPlan {
    /// The toxics this plan creates, the marker included.
    pub fn toxics(&self) -> Vec<&ApiToxic> {
        match &self.fault {
            ProxyFault::Toxics(t) => t.iter().collect(),
            ProxyFault::Down { marker } => vec![marker],
        }
    }

    pub fn describe(&self) -> Value {
        json!({
            "action": self.action,
            "down": matches!(self.fault, ProxyFault::Down { .. }),
            "toxics": self.toxics(),
            "ignored": self.ignored,
        })
    }
}

/// The name of this injection's toxic of `toxic_type` on `stream`.
pub fn toxic_name(injection_id: &str, toxic_type: &str, stream: &str) -> String {
    format!("{NAME_PREFIX}{injection_id}.{toxic_type}.{stream}")
}

/// Whether a toxic name was given by this injection (and not by another one whose id merely
/// starts the same, like `…-1` and `…-10`).
pub fn owned_by(name: &str, injection_id: &str) -> bool {
    name.strip_prefix(NAME_PREFIX)
        .and_then(|rest| rest.strip_prefix(injection_id))
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The id of the chaoshub injection that owns a toxic, if any.
pub fn owner_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let mut parts = rest.rsplitn(3, '.');
    let _stream = parts.next()?;
    let _type = parts.next()?;
    parts.next()
}

pub fn down_marker(injection_id: &str) -> ApiToxic {
    ApiToxic {
        name: toxic_name(injection_id, "down", "marker"),
        toxic_type: "latency".into(),
        stream: DOWNSTREAM.into(),
        toxicity: 0.0,
        attributes: json!({"latency": 0, "jitter": 0}),
    }
}

fn streams(stream: ToxicStream) -> &'static [&'static str] {
    match stream {
        ToxicStream::Upstream => &[UPSTREAM],
        ToxicStream::Downstream => &[DOWNSTREAM],
        ToxicStream::Both => &[UPSTREAM, DOWNSTREAM],
    }
}

/// NetworkChaos directions seen from the proxied service: `to` (the default) is the traffic
/// the service sends back to its clients (`downstream`), `from` the traffic it receives.
fn direction_streams(direction: Direction) -> &'static [&'static str] {
    match direction {
        Direction::To => &[DOWNSTREAM],
        Direction::From => &[UPSTREAM],
        Direction::Both => &[UPSTREAM, DOWNSTREAM],
    }
}

fn toxics_for(
    injection_id: &str,
    toxic_type: &str,
    stream_names: &[&str],
    toxicity: f64,
    attributes: Value,
) -> Vec<ApiToxic> {
    stream_names
        .iter()
        .map(|stream| ApiToxic {
            name: toxic_name(injection_id, toxic_type, stream),
            toxic_type: toxic_type.to_string(),
            stream: stream.to_string(),
            toxicity,
            attributes: attributes.clone(),
        })
        .collect()
}

/// Translates a fault for this adapter; refuses, naming the field, what a proxy cannot do.
pub fn plan(fault: &FaultRequest, partition: PartitionMode) -> Result<ProxyPlan, AdapterError> {
    match &fault.manifest.spec {
        Spec::ProxyChaos(spec) => Ok(plan_proxy_chaos(&fault.injection_id, spec)),
        Spec::NetworkChaos(spec) => plan_network_chaos(&fault.injection_id, spec, partition),
        other => Err(AdapterError::Unsupported {
            kind: other.kind().as_str().to_string(),
            action: fault.actions.join(","),
            message: "the toxiproxy adapter runs ProxyChaos and NetworkChaos delay, bandwidth \
                      and partition"
                .into(),
        }),
    }
}

fn plan_proxy_chaos(injection_id: &str, spec: &ProxyChaosSpec) -> ProxyPlan {
    let action = spec.action.as_str().to_string();
    let fault = match spec.action {
        ProxyChaosAction::Down => ProxyFault::Down {
            marker: down_marker(injection_id),
        },
        _ => ProxyFault::Toxics(toxics_for(
            injection_id,
            &action,
            streams(spec.stream),
            spec.toxicity,
            spec.toxic_attributes(),
        )),
    };
    let mut ignored = Vec::new();
    if spec.action == ProxyChaosAction::Down && spec.stream != ToxicStream::Downstream {
        ignored.push("spec.stream (down disables the whole proxy)".into());
    }
    ProxyPlan {
        action,
        fault,
        ignored,
    }
}

fn unsupported(action: NetworkChaosAction, message: String) -> AdapterError {
    AdapterError::Unsupported {
        kind: "NetworkChaos".into(),
        action: action.as_str().into(),
        message,
    }
}

/// A Chaos Mesh duration in whole milliseconds (Toxiproxy's resolution).
fn millis(text: &str, field: &str, action: NetworkChaosAction) -> Result<i64, AdapterError> {
    let d = parse_duration(text).map_err(|e| unsupported(action, format!("{field} {e}")))?;
    let ms = (d.as_secs_f64() * 1000.0).round();
    if !d.is_zero() && ms < 1.0 {
        return Err(unsupported(
            action,
            format!(
                "{field} is {text}, but Toxiproxy works in whole milliseconds; use 1ms or more"
            ),
        ));
    }
    if ms > i64::MAX as f64 {
        return Err(unsupported(action, format!("{field} {text} is too long")));
    }
    Ok(ms as i64)
}

/// A tc rate (`100kbps`, `1mbit`) in Toxiproxy's unit, KB/s (1000 bytes a second).
pub fn rate_kb_per_sec(text: &str) -> Result<i64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate such as 100kbps or 1mbit"))?;
    let bytes_per_unit = match unit {
        "bit" => 1.0 / 8.0,
        "kbit" => 1e3 / 8.0,
        "mbit" => 1e6 / 8.0,
        "gbit" => 1e9 / 8.0,
        "tbit" => 1e12 / 8.0,
        "bps" => 1.0,
        "kbps" => 1e3,
        "mbps" => 1e6,
        "gbps" => 1e9,
        "tbps" => 1e12,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (bit, kbit, mbit, gbit, tbit, bps, kbps, mbps, gbps, tbps)"
            ))
        }
    };
    let kb = (number * bytes_per_unit / 1000.0).round();
    if kb < 1.0 {
        return Err(format!(
            "{text} is below 1 KB/s (8kbit), the smallest bandwidth Toxiproxy can set"
        ));
    }
    if kb > i64::MAX as f64 {
        return Err(format!("{text} is too large"));
    }
    Ok(kb as i64)
}

fn plan_network_chaos(
    injection_id: &str,
    spec: &NetworkChaosSpec,
    partition: PartitionMode,
) -> Result<ProxyPlan, AdapterError> {
    let action = spec.action;
    let mut ignored = Vec::new();
    if spec.target.is_some() {
        ignored.push("spec.target (a proxy has a single upstream)".to_string());
    }
    if !spec.external_targets.is_empty() {
        ignored.push("spec.externalTargets (a proxy has a single upstream)".to_string());
    }
    if spec.device.is_some() {
        ignored.push("spec.device (proxies have no network devices)".to_string());
    }
    if spec.target_device.is_some() {
        ignored.push("spec.targetDevice (proxies have no network devices)".to_string());
    }
    let stream_names = direction_streams(spec.direction);
    let fault = match action {
        NetworkChaosAction::Delay => {
            let Some(delay) = &spec.delay else {
                return Err(unsupported(action, "spec.delay is required".into()));
            };
            if delay.reorder.is_some() {
                return Err(unsupported(
                    action,
                    "spec.delay.reorder cannot be done by Toxiproxy (it never reorders data \
                     within a TCP stream); remove it or use an adapter with netem (native, docker)"
                        .into(),
                ));
            }
            if delay.correlation.is_some() {
                ignored.push("spec.delay.correlation (Toxiproxy's jitter is uncorrelated)".into());
            }
            let latency = millis(&delay.latency, "spec.delay.latency", action)?;
            let jitter = match &delay.jitter {
                Some(j) => millis(j, "spec.delay.jitter", action)?,
                None => 0,
            };
            ProxyFault::Toxics(toxics_for(
                injection_id,
                "latency",
                stream_names,
                1.0,
                json!({"latency": latency, "jitter": jitter}),
            ))
        }
        NetworkChaosAction::Bandwidth => {
            let Some(bandwidth) = &spec.bandwidth else {
                return Err(unsupported(action, "spec.bandwidth is required".into()));
            };
            let rate = rate_kb_per_sec(&bandwidth.rate)
                .map_err(|e| unsupported(action, format!("spec.bandwidth.rate {e}")))?;
            ignored.push(
                "spec.bandwidth.limit, buffer, peakrate, minburst (Toxiproxy paces data itself)"
                    .into(),
            );
            ProxyFault::Toxics(toxics_for(
                injection_id,
                "bandwidth",
                stream_names,
                1.0,
                json!({ "rate": rate }),
            ))
        }
        NetworkChaosAction::Partition => match partition {
            PartitionMode::Timeout => ProxyFault::Toxics(toxics_for(
                injection_id,
                "timeout",
                stream_names,
                1.0,
                json!({"timeout": 0}),
            )),
            PartitionMode::Down => {
                if spec.direction != Direction::To {
                    ignored.push("spec.direction (down disables the whole proxy)".into());
                }
                ProxyFault::Down {
                    marker: down_marker(injection_id),
                }
            }
        },
        other => {
            return Err(unsupported(
                other,
                format!(
                    "Toxiproxy works on TCP streams and cannot {} packets; use an adapter with \
                     netem (native, docker, ssm)",
                    other.as_str()
                ),
            ))
        }
    };
    Ok(ProxyPlan {
        action: action.as_str().to_string(),
        fault,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_injection_id_and_nothing_else_matches() {
        let name = toxic_name("0b6c-1", "latency", "downstream");
        assert_eq!(name, "chaoshub.0b6c-1.latency.downstream");
        assert!(owned_by(&name, "0b6c-1"));
        assert!(!owned_by(&name, "0b6c"));
        assert!(!owned_by("chaoshub.0b6c-10.latency.downstream", "0b6c-1"));
        assert!(!owned_by("latency_downstream", "0b6c-1"));
        assert_eq!(owner_of(&name), Some("0b6c-1"));
        assert_eq!(owner_of("latency_downstream"), None);
        assert_eq!(
            owner_of(&down_marker("a-b-2").name),
            Some("a-b-2"),
            "the marker is owned like any toxic"
        );
    }

    #[test]
    fn rates_convert_to_kilobytes_per_second() {
        assert_eq!(rate_kb_per_sec("100kbps"), Ok(100));
        assert_eq!(rate_kb_per_sec("1mbps"), Ok(1000));
        assert_eq!(rate_kb_per_sec("8mbit"), Ok(1000));
        assert_eq!(rate_kb_per_sec("800kbit"), Ok(100));
        assert!(rate_kb_per_sec("1kbit")
            .unwrap_err()
            .contains("below 1 KB/s"));
        assert!(rate_kb_per_sec("3furlongs").unwrap_err().contains("unit"));
    }
}
