//! The pure translation of a fault into what the adapter does to a container: a signal, a stop,
//! a pause, helper containers running `chaos-agent`, a network disconnect or a resource squeeze.
//! Nothing here touches the engine, so `check_fault` and dry-run plans use it as is.

use chaoshub_schema::chaosmesh::network::{Direction, NetworkChaosAction, NetworkChaosSpec};
use chaoshub_schema::chaosmesh::pod::PodChaosAction;
use chaoshub_schema::chaosmesh::selector::PodSelectorSpec;
use chaoshub_schema::chaosmesh::stress::StressChaosSpec;
use chaoshub_schema::Spec;
use serde_json::{json, Value};

use crate::{AdapterError, FaultRequest};

/// container-kill: the signal sent (default `SIGKILL`, as Chaos Mesh).
pub const SIGNAL_ANNOTATION: &str = "chaoshub.dev/signal";
/// NetworkChaos partition: `agent` (default, filter rules in the namespace) or `disconnect`
/// (the container is disconnected from its Docker networks).
pub const PARTITION_ANNOTATION: &str = "chaoshub.dev/partition";
/// partition by disconnect: the networks to leave, comma-separated (default: all of them).
pub const NETWORKS_ANNOTATION: &str = "chaoshub.dev/networks";
/// StressChaos squeeze: the CPU limit imposed with `docker update`, in CPUs (`0.25`).
pub const CPU_LIMIT_ANNOTATION: &str = "chaoshub.dev/cpu-limit";
/// StressChaos squeeze: the memory limit imposed with `docker update` (`64MiB`).
pub const MEMORY_LIMIT_ANNOTATION: &str = "chaoshub.dev/memory-limit";

/// Docker refuses memory limits below 6 MiB.
const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;

/// Which of the target's namespaces a helper joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperNamespace {
    /// `NetworkMode: container:<id>` with `NET_ADMIN`: network faults.
    Network,
    /// `PidMode: container:<id>` (and the target's cgroup where the engine allows): stress.
    Pid,
}

/// One helper container running `chaos-agent attack …` in the foreground.
#[derive(Debug, Clone, PartialEq)]
pub struct HelperRun {
    /// Distinguishes an injection's helpers (`network`, `cpu`, `mem`); part of the name.
    pub role: &'static str,
    /// The agent's arguments after `chaos-agent`, without `--duration`, `--id`, `--state-dir`
    /// and the output flags, which depend on the injection and are added when it runs.
    pub args: Vec<String>,
    pub namespace: HelperNamespace,
}

/// What the adapter does to one container.
#[derive(Debug, Clone, PartialEq)]
pub enum DockerFault {
    /// container-kill: one signal; the restart policy decides what happens next.
    Kill { signal: String },
    /// pod-kill: SIGTERM, the grace period, then SIGKILL — sent as kills rather than a
    /// `docker stop`, so the engine does not mark the container as stopped by hand and its
    /// restart policy still applies, as a Kubernetes controller recreates a killed pod.
    Stop { grace_secs: u64 },
    /// pod-failure: the container's processes are frozen (`docker pause`).
    Pause,
    /// Network and stress faults run by `chaos-agent` in helper containers.
    Helpers(Vec<HelperRun>),
    /// partition by leaving Docker networks (all when empty).
    Disconnect { networks: Vec<String> },
    /// Resource squeeze (`docker update`), restored exactly on recovery.
    Squeeze {
        nano_cpus: Option<i64>,
        memory: Option<i64>,
    },
}

/// The peers on the other side of a network fault (`spec.target`), resolved at injection.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSelector {
    pub selector: PodSelectorSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DockerPlan {
    pub action: String,
    pub fault: DockerFault,
    /// `spec.containerNames`: a container is hit only if its name or compose service is listed.
    pub container_names: Vec<String>,
    /// Peers whose addresses become `--cidr` arguments of the network helper.
    pub peers: Option<PeerSelector>,
    /// Fields that have no meaning for a container, reported rather than silently dropped.
    pub ignored: Vec<String>,
}

impl DockerPlan {
    pub fn describe(&self) -> Value {
        let fault = match &self.fault {
            DockerFault::Kill { signal } => json!({"mechanism": "kill", "signal": signal}),
            DockerFault::Stop { grace_secs } => {
                json!({"mechanism": "stop", "graceSecs": grace_secs})
            }
            DockerFault::Pause => json!({"mechanism": "pause"}),
            DockerFault::Helpers(helpers) => json!({
                "mechanism": "helper",
                "helpers": helpers.iter().map(|h| json!({
                    "role": h.role,
                    "command": std::iter::once("chaos-agent".to_string()).chain(h.args.iter().cloned()).collect::<Vec<_>>(),
                    "namespace": match h.namespace { HelperNamespace::Network => "network", HelperNamespace::Pid => "pid" },
                })).collect::<Vec<_>>(),
            }),
            DockerFault::Disconnect { networks } => {
                json!({"mechanism": "disconnect", "networks": networks})
            }
            DockerFault::Squeeze { nano_cpus, memory } => {
                json!({"mechanism": "update", "nanoCpus": nano_cpus, "memory": memory})
            }
        };
        json!({
            "action": self.action,
            "fault": fault,
            "containerNames": self.container_names,
            "ignored": self.ignored,
        })
    }
}

fn rejected(message: impl Into<String>) -> AdapterError {
    AdapterError::Rejected(message.into())
}

fn unsupported(kind: &str, action: &str, message: impl Into<String>) -> AdapterError {
    AdapterError::Unsupported {
        kind: kind.into(),
        action: action.into(),
        message: message.into(),
    }
}

/// A signal name as Docker accepts it (`SIGKILL`, `KILL`, `9`), normalised to `SIGKILL` form.
pub fn normalise_signal(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(n.to_string())
        } else {
            Err(format!("signal number {n} is out of range 1..=64"))
        };
    }
    let name = t.strip_prefix("SIG").unwrap_or(&t);
    const KNOWN: &[&str] = &[
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    if KNOWN.contains(&name) {
        Ok(format!("SIG{name}"))
    } else {
        Err(format!("unknown signal {text:?}"))
    }
}

/// A size such as `64MiB`, `64MB`, `64m` or `1GiB` in bytes. Units are binary whatever their
/// spelling, as `docker run -m` reads them.
pub fn parse_size(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a size: {text:?} (e.g. 64MiB)"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as i64)
}

fn percent(text: &str, path: &str) -> Result<String, AdapterError> {
    let value: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| rejected(format!("{path}: not a percentage: {text:?}")))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(rejected(format!(
            "{path}: must be from 0 to 100, got {text:?}"
        )));
    }
    Ok(format!("{value}"))
}

fn push_correlation(
    args: &mut Vec<String>,
    correlation: Option<&str>,
    path: &str,
) -> Result<(), AdapterError> {
    if let Some(c) = correlation.filter(|c| !c.trim().is_empty()) {
        args.push("--correlation".into());
        args.push(percent(c, path)?);
    }
    Ok(())
}

/// One external target: an address or CIDR, or a host name.
enum External {
    Cidr(String),
    Host(String),
}

/// The external targets as CIDRs and host names. Host names go to the helper agent, which
/// resolves them as the agent does on a host, but inside the target's network namespace with
/// the target's `/etc/resolv.conf` and `/etc/hosts` (Docker shares them with a container that
/// joins another's network), so a name resolves as the target itself would resolve it.
fn external_targets(spec: &NetworkChaosSpec) -> Result<Vec<External>, AdapterError> {
    spec.external_targets
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (addr, prefix) = t.split_once('/').unwrap_or((t, ""));
            let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
                if prefix.is_empty() && valid_host_name(t) {
                    return Ok(External::Host(t.to_string()));
                }
                return Err(rejected(format!(
                    "spec.externalTargets: {t:?} is neither an IP address, a CIDR nor a host name"
                )));
            };
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = if prefix.is_empty() {
                max
            } else {
                prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| rejected(format!("spec.externalTargets: bad prefix in {t:?}")))?
            };
            Ok(External::Cidr(format!("{ip}/{bits}")))
        })
        .collect()
}

/// A DNS name as RFC 1123 allows it (letters, digits, hyphens and dots; labels of 1 to 63).
fn valid_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn annotation<'a>(fault: &'a FaultRequest, key: &str) -> Option<&'a str> {
    fault
        .manifest
        .metadata
        .annotations
        .get(key)
        .map(String::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn network_plan(fault: &FaultRequest, spec: &NetworkChaosSpec) -> Result<DockerPlan, AdapterError> {
    let action = spec.action.as_str();
    let mut ignored = Vec::new();
    if spec.target_device.is_some() {
        ignored.push("spec.targetDevice (the peer's device is not touched)".to_string());
    }
    let partition_mode = annotation(fault, PARTITION_ANNOTATION).unwrap_or("agent");
    if spec.action == NetworkChaosAction::Partition && partition_mode == "disconnect" {
        if spec.target.is_some() || !spec.external_targets.is_empty() {
            return Err(rejected(format!(
                "{PARTITION_ANNOTATION}: disconnect cuts the container off its Docker networks \
                 altogether; it cannot be limited to spec.target or spec.externalTargets (use \
                 the default agent partition for that)"
            )));
        }
        let networks = annotation(fault, NETWORKS_ANNOTATION)
            .map(|n| {
                n.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        return Ok(DockerPlan {
            action: action.into(),
            fault: DockerFault::Disconnect { networks },
            container_names: Vec::new(),
            peers: None,
            ignored,
        });
    }
    if !matches!(partition_mode, "agent" | "disconnect") {
        return Err(rejected(format!(
            "{PARTITION_ANNOTATION} must be \"agent\" or \"disconnect\", got {partition_mode:?}"
        )));
    }
    let mut args: Vec<String> = vec!["attack".into(), "network".into()];
    match spec.action {
        NetworkChaosAction::Delay => {
            let delay = spec
                .delay
                .as_ref()
                .ok_or_else(|| rejected("spec.delay is required for action delay"))?;
            if let Some(reorder) = &delay.reorder {
                // The agent's reorder is netem's `delay X reorder P gap G`: P% of packets go at
                // once, the rest wait X; it holds them for a fixed latency, without jitter.
                if delay.jitter.as_ref().is_some_and(|j| !j.trim().is_empty()) {
                    return Err(unsupported(
                        "NetworkChaos",
                        action,
                        "spec.delay.jitter together with spec.delay.reorder is not supported on \
                         Docker (reordered traffic is held for a fixed latency); drop the jitter, \
                         or run the jitter as its own delay experiment",
                    ));
                }
                let gap = u32::try_from(reorder.gap)
                    .map_err(|_| rejected("spec.delay.reorder.gap: must be 0 or more"))?;
                args.extend([
                    "reorder".into(),
                    "--latency".into(),
                    delay.latency.clone(),
                    "--percent".into(),
                    percent(&reorder.reorder, "spec.delay.reorder.reorder")?,
                    "--gap".into(),
                    gap.to_string(),
                ]);
                push_correlation(
                    &mut args,
                    reorder.correlation.as_deref(),
                    "spec.delay.reorder.correlation",
                )?;
            } else {
                args.extend(["delay".into(), "--latency".into(), delay.latency.clone()]);
                if let Some(j) = delay.jitter.as_ref().filter(|j| !j.trim().is_empty()) {
                    args.extend(["--jitter".into(), j.clone()]);
                }
                push_correlation(
                    &mut args,
                    delay.correlation.as_deref(),
                    "spec.delay.correlation",
                )?;
            }
        }
        NetworkChaosAction::Loss => {
            let loss = spec
                .loss
                .as_ref()
                .ok_or_else(|| rejected("spec.loss is required for action loss"))?;
            args.extend([
                "loss".into(),
                "--percent".into(),
                percent(&loss.loss, "spec.loss.loss")?,
            ]);
            push_correlation(
                &mut args,
                loss.correlation.as_deref(),
                "spec.loss.correlation",
            )?;
        }
        NetworkChaosAction::Duplicate => {
            let d = spec
                .duplicate
                .as_ref()
                .ok_or_else(|| rejected("spec.duplicate is required for action duplicate"))?;
            args.extend([
                "duplicate".into(),
                "--percent".into(),
                percent(&d.duplicate, "spec.duplicate.duplicate")?,
            ]);
            push_correlation(
                &mut args,
                d.correlation.as_deref(),
                "spec.duplicate.correlation",
            )?;
        }
        NetworkChaosAction::Corrupt => {
            let c = spec
                .corrupt
                .as_ref()
                .ok_or_else(|| rejected("spec.corrupt is required for action corrupt"))?;
            args.extend([
                "corrupt".into(),
                "--percent".into(),
                percent(&c.corrupt, "spec.corrupt.corrupt")?,
            ]);
            push_correlation(
                &mut args,
                c.correlation.as_deref(),
                "spec.corrupt.correlation",
            )?;
        }
        NetworkChaosAction::Bandwidth => {
            let b = spec
                .bandwidth
                .as_ref()
                .ok_or_else(|| rejected("spec.bandwidth is required for action bandwidth"))?;
            args.extend([
                "bandwidth".into(),
                "--rate".into(),
                b.rate.clone(),
                "--limit".into(),
                b.limit.to_string(),
                "--buffer".into(),
                b.buffer.to_string(),
            ]);
            if b.peakrate.is_some() || b.minburst.is_some() {
                ignored.push("spec.bandwidth.peakrate / minburst".to_string());
            }
        }
        NetworkChaosAction::Partition => {
            args.push("partition".into());
        }
        NetworkChaosAction::Netem => {
            return Err(unsupported(
                "NetworkChaos",
                action,
                "the combined netem action is not supported on Docker; use one of delay, loss, \
                 duplicate, corrupt as its own experiment",
            ))
        }
    }
    let direction = match spec.direction {
        Direction::To => "to",
        Direction::From => "from",
        Direction::Both => "both",
    };
    args.extend(["--direction".into(), direction.into()]);
    for target in external_targets(spec)? {
        match target {
            External::Cidr(cidr) => args.extend(["--cidr".into(), cidr]),
            External::Host(host) => args.extend(["--hostname".into(), host]),
        }
    }
    if let Some(device) = spec.device.as_ref().filter(|d| !d.trim().is_empty()) {
        args.extend(["--device".into(), device.clone()]);
    }
    Ok(DockerPlan {
        action: action.into(),
        fault: DockerFault::Helpers(vec![HelperRun {
            role: "network",
            args,
            namespace: HelperNamespace::Network,
        }]),
        container_names: Vec::new(),
        peers: spec.target.as_ref().map(|t| PeerSelector {
            selector: t.selector.clone(),
        }),
        ignored,
    })
}

fn stress_plan(fault: &FaultRequest, spec: &StressChaosSpec) -> Result<DockerPlan, AdapterError> {
    let cpu_limit = annotation(fault, CPU_LIMIT_ANNOTATION);
    let memory_limit = annotation(fault, MEMORY_LIMIT_ANNOTATION);
    if cpu_limit.is_some() || memory_limit.is_some() {
        let nano_cpus = cpu_limit
            .map(|c| match c.parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 1024.0 => Ok((v * 1e9).round() as i64),
                _ => Err(rejected(format!(
                    "{CPU_LIMIT_ANNOTATION} must be a number of CPUs above 0 (e.g. \"0.25\"), got {c:?}"
                ))),
            })
            .transpose()?;
        let memory = memory_limit
            .map(|m| {
                let bytes = parse_size(m)
                    .map_err(|e| rejected(format!("{MEMORY_LIMIT_ANNOTATION}: {e}")))?;
                if bytes < MIN_MEMORY_BYTES {
                    return Err(rejected(format!(
                        "{MEMORY_LIMIT_ANNOTATION}: Docker needs at least 6MiB, got {m:?}"
                    )));
                }
                Ok(bytes)
            })
            .transpose()?;
        return Ok(DockerPlan {
            action: "squeeze".into(),
            fault: DockerFault::Squeeze { nano_cpus, memory },
            container_names: spec.container_names.clone(),
            peers: None,
            ignored: vec![
                "spec.stressors (a squeeze takes resources away instead of loading them)".into(),
            ],
        });
    }
    if spec
        .stressng_stressors
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
    {
        return Err(unsupported(
            "StressChaos",
            "stress-ng",
            "raw stressngStressors are not supported on Docker; use stressors.cpu / stressors.memory",
        ));
    }
    let mut helpers = Vec::new();
    let mut ignored = Vec::new();
    if let Some(cpu) = spec.stressors.as_ref().and_then(|s| s.cpu.as_ref()) {
        let mut args: Vec<String> = vec![
            "attack".into(),
            "stress".into(),
            "cpu".into(),
            "--workers".into(),
            cpu.workers.to_string(),
        ];
        if let Some(load) = cpu.load {
            args.extend(["--load".into(), load.to_string()]);
        }
        if !cpu.options.is_empty() {
            ignored.push("spec.stressors.cpu.options (stress-ng options)".into());
        }
        helpers.push(HelperRun {
            role: "cpu",
            args,
            namespace: HelperNamespace::Pid,
        });
    }
    if let Some(mem) = spec.stressors.as_ref().and_then(|s| s.memory.as_ref()) {
        let mut args: Vec<String> = vec!["attack".into(), "stress".into(), "mem".into()];
        if let Some(size) = mem.size.as_ref().filter(|s| !s.trim().is_empty()) {
            args.extend(["--size".into(), size.clone()]);
        }
        if mem.workers > 1 {
            args.extend(["--workers".into(), mem.workers.to_string()]);
        }
        if mem.oom_score_adj != 0 || !mem.options.is_empty() {
            ignored.push("spec.stressors.memory.oomScoreAdj / options".into());
        }
        helpers.push(HelperRun {
            role: "mem",
            args,
            namespace: HelperNamespace::Pid,
        });
    }
    if helpers.is_empty() {
        return Err(rejected(
            "StressChaos needs stressors.cpu or stressors.memory (or a squeeze annotation)",
        ));
    }
    Ok(DockerPlan {
        action: helpers
            .iter()
            .map(|h| if h.role == "mem" { "memory" } else { h.role })
            .collect::<Vec<_>>()
            .join("+"),
        fault: DockerFault::Helpers(helpers),
        container_names: spec.container_names.clone(),
        peers: None,
        ignored,
    })
}

/// Translates a fault; refuses what Docker cannot do, naming the field.
pub fn plan(fault: &FaultRequest) -> Result<DockerPlan, AdapterError> {
    match &fault.manifest.spec {
        Spec::PodChaos(spec) => {
            let action = spec.action.as_str();
            let fault_kind = match spec.action {
                PodChaosAction::ContainerKill => {
                    let signal =
                        normalise_signal(annotation(fault, SIGNAL_ANNOTATION).unwrap_or("SIGKILL"))
                            .map_err(|e| rejected(format!("{SIGNAL_ANNOTATION}: {e}")))?;
                    DockerFault::Kill { signal }
                }
                PodChaosAction::PodKill => DockerFault::Stop {
                    grace_secs: spec.grace_period.unwrap_or(0).max(0) as u64,
                },
                PodChaosAction::PodFailure => DockerFault::Pause,
            };
            Ok(DockerPlan {
                action: action.into(),
                fault: fault_kind,
                container_names: spec.container_names.clone(),
                peers: None,
                ignored: Vec::new(),
            })
        }
        Spec::NetworkChaos(spec) => network_plan(fault, spec),
        Spec::StressChaos(spec) => stress_plan(fault, spec),
        other => Err(unsupported(
            other.kind().as_str(),
            fault.actions.first().map(String::as_str).unwrap_or(""),
            "the Docker adapter runs PodChaos, NetworkChaos and StressChaos",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn request(yaml: &str) -> FaultRequest {
        let manifest = chaoshub_schema::parse_one(yaml).unwrap();
        let actions = manifest.fault().unwrap().actions();
        FaultRequest {
            experiment_uid: "u".into(),
            injection_id: "u-0".into(),
            name: "x".into(),
            namespace: "default".into(),
            manifest: Arc::new(manifest),
            actions,
            deadline: None,
        }
    }

    #[test]
    fn container_kill_defaults_to_sigkill_and_takes_an_annotation() {
        let base = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: k\n";
        let spec = "spec:\n  action: container-kill\n  mode: one\n  containerNames: [web]\n  selector:\n    labelSelectors: {app: web}\n";
        let p = plan(&request(&format!("{base}{spec}"))).unwrap();
        assert_eq!(
            p.fault,
            DockerFault::Kill {
                signal: "SIGKILL".into()
            }
        );
        assert_eq!(p.container_names, ["web"]);
        let annotated = format!("{base}  annotations:\n    chaoshub.dev/signal: term\n{spec}");
        let p = plan(&request(&annotated)).unwrap();
        assert_eq!(
            p.fault,
            DockerFault::Kill {
                signal: "SIGTERM".into()
            }
        );
        let bad = format!("{base}  annotations:\n    chaoshub.dev/signal: SIGNOPE\n{spec}");
        assert!(matches!(
            plan(&request(&bad)),
            Err(AdapterError::Rejected(_))
        ));
    }

    #[test]
    fn delay_becomes_agent_arguments() {
        let p = plan(&request(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: d\nspec:\n  action: delay\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n  delay:\n    latency: 100ms\n    jitter: 10ms\n    correlation: \"25\"\n  externalTargets: [10.1.2.3, 10.9.0.0/16]\n",
        ))
        .unwrap();
        let DockerFault::Helpers(h) = p.fault else {
            panic!()
        };
        assert_eq!(
            h[0].args.join(" "),
            "attack network delay --latency 100ms --jitter 10ms --correlation 25 --direction to --cidr 10.1.2.3/32 --cidr 10.9.0.0/16"
        );
        assert_eq!(h[0].namespace, HelperNamespace::Network);
    }

    #[test]
    fn partition_can_disconnect() {
        let p = plan(&request(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: p\n  annotations:\n    chaoshub.dev/partition: disconnect\n    chaoshub.dev/networks: a, b\nspec:\n  action: partition\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n",
        ))
        .unwrap();
        assert_eq!(
            p.fault,
            DockerFault::Disconnect {
                networks: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn stress_and_squeeze() {
        let base = "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata:\n  name: s\n";
        let spec = "spec:\n  mode: all\n  selector:\n    labelSelectors: {app: web}\n  stressors:\n    cpu: {workers: 2, load: 80}\n    memory: {workers: 1, size: 256MB}\n";
        let p = plan(&request(&format!("{base}{spec}"))).unwrap();
        let DockerFault::Helpers(h) = &p.fault else {
            panic!()
        };
        assert_eq!(
            h[0].args.join(" "),
            "attack stress cpu --workers 2 --load 80"
        );
        assert_eq!(h[1].args.join(" "), "attack stress mem --size 256MB");
        assert_eq!(p.action, "cpu+memory");
        let squeezed = format!(
            "{base}  annotations:\n    chaoshub.dev/cpu-limit: \"0.25\"\n    chaoshub.dev/memory-limit: 64MiB\n{spec}"
        );
        let p = plan(&request(&squeezed)).unwrap();
        assert_eq!(
            p.fault,
            DockerFault::Squeeze {
                nano_cpus: Some(250_000_000),
                memory: Some(64 << 20)
            }
        );
    }

    #[test]
    fn sizes_and_signals() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(normalise_signal("9").unwrap(), "9");
        assert_eq!(normalise_signal("sigusr1").unwrap(), "SIGUSR1");
    }
}
