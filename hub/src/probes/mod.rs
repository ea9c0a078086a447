//! Probes: the hub's checks of a system's health (docs/suites.md).
//!
//! One runner serves every user of probes: suites (steady-state hypothesis, threshold search),
//! stop conditions of running experiments (`stop.rs`), StatusCheck experiments and workflow
//! StatusCheck nodes (`statuscheck.rs`). A probe evaluation never fails the caller: whatever
//! happens (refused connection, timeout, garbage answer) becomes a failed [`ProbeResult`]
//! whose `detail` is the evidence shown to the user.
//!
//! Architecture note: probes reach the *system under test* (its HTTP endpoints, Prometheus,
//! TCP ports), never an environment's fault machinery, so they do not go through adapters.

pub mod command;
pub mod http;
pub mod prometheus;
pub mod statuscheck;
pub mod stop;
pub mod tcp;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chaoshub_schema::duration::parse_duration;
use chaoshub_schema::probe::{ProbeResult, ProbeSpec};
use serde_json::Value;

/// What probes may do in this hub.
#[derive(Debug, Clone, Default)]
pub struct ProbePolicy {
    /// Whether `command` probes may run programs on the hub's host
    /// (`limits.allow_command_probes`).
    pub allow_commands: bool,
    /// What they may call (`security.allowed_endpoints`).
    pub endpoints: std::sync::Arc<crate::endpoints::EndpointAllowList>,
}

impl ProbePolicy {
    /// The policy of a hub with these limits and allowed endpoints.
    pub fn new(
        limits: &crate::config::LimitsConfig,
        endpoints: &std::sync::Arc<crate::endpoints::EndpointAllowList>,
    ) -> Self {
        ProbePolicy {
            allow_commands: limits.allow_command_probes,
            endpoints: std::sync::Arc::clone(endpoints),
        }
    }
}

/// Why a probe could not be prepared for an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{placeholder} is not known: environment {environment:?} has labels {known}")]
    UnknownLabel {
        placeholder: String,
        environment: String,
        known: String,
    },
    #[error("unsupported placeholder {0} (use {{{{ environment.name }}}} or {{{{ environment.labels.<key> }}}})")]
    Unsupported(String),
    #[error("unclosed placeholder in {0:?}")]
    Unclosed(String),
    #[error("after filling in the environment's values: {0}")]
    Invalid(String),
}

/// The values a probe's `{{ environment.… }}` placeholders take in one environment.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentValues {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl EnvironmentValues {
    /// An environment's values: its name, and its labels (`metadata.labels`, overridden by
    /// `spec.labels`, which the Environment kind documents as the labels suites use).
    pub fn of(env: &chaoshub_schema::api::EnvironmentObject) -> Self {
        let mut labels = env.metadata.labels.clone();
        labels.extend(env.spec.labels.clone());
        EnvironmentValues {
            name: env.metadata.name.clone().unwrap_or_default(),
            labels,
        }
    }

    /// Fills `{{ environment.name }}` and `{{ environment.labels.<key> }}` into one string.
    pub fn fill(&self, text: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(text.to_string()))?;
            let expr = after[..end].trim();
            let placeholder = format!("{{{{ {expr} }}}}");
            if expr == "environment.name" {
                out.push_str(&self.name);
            } else if let Some(key) = expr.strip_prefix("environment.labels.") {
                let value = self
                    .labels
                    .get(key)
                    .ok_or_else(|| TemplateError::UnknownLabel {
                        placeholder: placeholder.clone(),
                        environment: self.name.clone(),
                        known: if self.labels.is_empty() {
                            "none".into()
                        } else {
                            self.labels.keys().cloned().collect::<Vec<_>>().join(", ")
                        },
                    })?;
                out.push_str(value);
            } else {
                return Err(TemplateError::Unsupported(placeholder));
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Fills every string of a JSON value (keys are left alone).
    pub fn fill_value(&self, value: &mut Value) -> Result<(), TemplateError> {
        match value {
            Value::String(s) if s.contains("{{") => *s = self.fill(s)?,
            Value::Array(items) => {
                for item in items {
                    self.fill_value(item)?;
                }
            }
            Value::Object(map) => {
                for (_, v) in map.iter_mut() {
                    self.fill_value(v)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A probe with this environment's values filled in, validated again.
    pub fn fill_probe(&self, probe: &ProbeSpec) -> Result<ProbeSpec, TemplateError> {
        let mut value =
            serde_json::to_value(probe).map_err(|e| TemplateError::Invalid(e.to_string()))?;
        self.fill_value(&mut value)?;
        let filled = chaoshub_schema::probe::parse_probes(Value::Array(vec![value]), "probe")
            .map_err(|errors| {
                TemplateError::Invalid(
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        filled
            .into_iter()
            .next()
            .ok_or_else(|| TemplateError::Invalid("no probe".into()))
    }
}

/// Parses a probe timeout (validated on the way in; a bad one falls back to 5 s).
pub(crate) fn timeout_of(text: &str) -> Duration {
    parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(5))
}

/// Shortens evidence for reports: at most `max` characters, on one line.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_string()
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Evaluates one probe once. Never panics and never returns an error: a probe that cannot
/// run is a failed probe with the reason as evidence.
pub async fn evaluate(probe: &ProbeSpec, policy: &ProbePolicy) -> ProbeResult {
    let at = crate::time::now_rfc3339();
    let started = Instant::now();
    // Checked again before every call: placeholders are filled by now, and the list may have
    // changed since the probe was submitted.
    let refused = policy.endpoints.check_probe(probe, false).err();
    let outcome: Result<String, String> = if let Some(why) = refused {
        Err(format!("not called: {why}"))
    } else if let Some(spec) = &probe.http {
        http::check(spec, http::client_for(policy)).await
    } else if let Some(spec) = &probe.prometheus {
        prometheus::check(spec, http::client_for(policy)).await
    } else if let Some(spec) = &probe.command {
        if policy.allow_commands {
            command::check(spec).await
        } else {
            Err(
                "command probes are disabled on this hub (limits.allow_command_probes = false)"
                    .into(),
            )
        }
    } else if let Some(spec) = &probe.tcp {
        tcp::check(spec).await
    } else if let Some(spec) = &probe.status_check {
        // A StatusCheck probe is the whole check (its own interval and thresholds); nothing
        // cancels it early here, its own duration bounds it.
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let outcome = statuscheck::run_status_check(spec, rx).await;
        if outcome.succeeded {
            Ok(outcome.reason)
        } else {
            Err(outcome.reason)
        }
    } else {
        Err("the probe has no check (http, prometheus, command, tcp or statusCheck)".into())
    };
    let (ok, detail) = match outcome {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    ProbeResult {
        probe: probe.name.clone(),
        at,
        ok,
        duration_ms: started.elapsed().as_millis() as u64,
        detail,
    }
}

/// Evaluates several probes at once, results in the probes' order.
pub async fn evaluate_all(probes: &[ProbeSpec], policy: &ProbePolicy) -> Vec<ProbeResult> {
    futures::future::join_all(probes.iter().map(|p| evaluate(p, policy))).await
}

/// Checks, before anything runs, that a hub with `policy` may run these probes.
pub fn check_policy(
    probes: &[ProbeSpec],
    path: &str,
    policy: &ProbePolicy,
    errors: &mut chaoshub_schema::ValidationErrors,
) {
    for (i, probe) in probes.iter().enumerate() {
        if let Err(why) = policy.endpoints.check_probe(probe, true) {
            errors.push(format!("{path}[{i}]"), why);
        }
        if probe.command.is_some() && !policy.allow_commands {
            errors.push(
                format!("{path}[{i}].command"),
                "command probes are disabled on this hub; an operator can allow them with limits.allow_command_probes = true",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> EnvironmentValues {
        EnvironmentValues {
            name: "edge-a".into(),
            labels: [("port".to_string(), "8080".to_string())].into(),
        }
    }

    #[test]
    fn placeholders_are_filled_from_the_environment() {
        let v = values();
        assert_eq!(
            v.fill("http://127.0.0.1:{{ environment.labels.port }}/{{environment.name}}")
                .unwrap(),
            "http://127.0.0.1:8080/edge-a"
        );
        assert!(matches!(
            v.fill("{{ environment.labels.nope }}"),
            Err(TemplateError::UnknownLabel { .. })
        ));
        assert!(matches!(
            v.fill("{{ env.x }}"),
            Err(TemplateError::Unsupported(_))
        ));
        assert!(matches!(v.fill("{{ x"), Err(TemplateError::Unclosed(_))));
    }

    #[test]
    fn a_filled_probe_is_validated_again() {
        let probe: ProbeSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "tcp": {"address": "127.0.0.1:{{ environment.labels.port }}"}
        }))
        .unwrap();
        let filled = values().fill_probe(&probe).unwrap();
        assert_eq!(filled.tcp.unwrap().address, "127.0.0.1:8080");
        let mut v = values();
        v.labels.insert("port".into(), "x".into());
        assert!(matches!(
            v.fill_probe(&probe),
            Err(TemplateError::Invalid(_))
        ));
    }

    #[test]
    fn excerpts_are_short_and_flat() {
        assert_eq!(excerpt("a\nb", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
