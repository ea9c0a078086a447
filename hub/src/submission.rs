//! Kind-specific submission, part of the operations layer: Schedules and Workflows (every
//! embedded chaos checked as a dry run through the single-experiment path) and StatusCheck
//! experiments; and [`HubChildren`], the port through which schedule and workflow controllers
//! submit their children along the same path.
//!
//! `Hub::submit` (operations.rs) hands these kinds here; the controllers below never name the
//! operations layer: they get the port when the server builds them.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use chaoshub_adapters::Environment;
use chaoshub_schema::api::DryRunResult;
use chaoshub_schema::chaosmesh::status_check::StatusCheckMode;
use chaoshub_schema::chaosmesh::{ScheduleSpec, ScheduleType, WorkflowSpec, WorkflowTemplateType};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::{FieldError, Manifest, Spec};
use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::error::HubError;
use crate::operations::{Hub, SubmitMode, Submitted};
use crate::orchestration::{ChildError, Children};

/// The [`Children`] port over the hub's submit path. It holds the engine weakly: the engine
/// owns the controllers that own this port.
pub struct HubChildren {
    pub engine: Weak<Engine>,
    pub default_environment: Option<String>,
    pub catalog: Arc<Catalog>,
}

impl Children for HubChildren {
    fn submit(&self, manifest: Value) -> BoxFuture<'_, Result<String, ChildError>> {
        Box::pin(async move {
            let engine = self
                .engine
                .upgrade()
                .ok_or_else(|| ChildError::Refused("the hub is shutting down".into()))?;
            let hub = Hub {
                engine,
                default_environment: self.default_environment.clone(),
                catalog: Arc::clone(&self.catalog),
            };
            match hub.submit(manifest, None, false).await {
                Ok(Submitted::Created(object)) => Ok(object.metadata.uid.unwrap_or_default()),
                Ok(Submitted::DryRun(_)) => Err(ChildError::Refused(
                    "the child was planned instead of created (a bug)".into(),
                )),
                Err(HubError::Conflict {
                    code: "already_exists",
                    ..
                }) => Err(ChildError::AlreadyExists),
                Err(e) => Err(ChildError::Refused(describe(&e))),
            }
        })
    }
}

impl Hub {
    /// A Schedule or Workflow (`Hub::submit` hands them here).
    pub(crate) async fn submit_parent(
        &self,
        manifest: Manifest,
        env_override: Option<&str>,
        mode: SubmitMode,
    ) -> Result<Submitted, HubError> {
        submit_parent(self, manifest, env_override, mode).await
    }

    /// A StatusCheck experiment (`Hub::submit` hands it here).
    pub(crate) fn submit_status_check(
        &self,
        manifest: Manifest,
        dry_run: bool,
    ) -> Result<Submitted, HubError> {
        submit_status_check(self, manifest, dry_run)
    }
}

/// An API error as one line, with its field paths.
fn describe(e: &HubError) -> String {
    match e {
        HubError::Invalid { details, .. } => details
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// One embedded chaos of a schedule or workflow, as found at submission.
struct Embedded {
    /// Field path of the embedded spec (`spec.templates[2].networkChaos`).
    path: String,
    kind: String,
    spec: Value,
}

/// Validates a Schedule or Workflow for submission: the cron expression and the template tree,
/// then every embedded chaos through the single-experiment path as a dry run (so the same
/// capability checks and 422 messages apply), and stores it with each embedded chaos's
/// environment resolved.
async fn submit_parent(
    hub: &Hub,
    manifest: Manifest,
    env_override: Option<&str>,
    mode: SubmitMode,
) -> Result<Submitted, HubError> {
    let dry_run = mode == SubmitMode::DryRun;
    let mut value = manifest.to_value();
    let (parent_env, env_path) = match (
        env_override,
        own_environment(&manifest),
        &hub.default_environment,
    ) {
        (Some(e), _, _) => (Some(e.to_string()), "env"),
        (None, Some(e), _) => (Some(e), "spec.environment"),
        (None, None, Some(d)) => (Some(d.clone()), "spec.environment"),
        (None, None, None) => (None, "spec.environment"),
    };
    let mut embedded = Vec::new();
    match &manifest.spec {
        Spec::Schedule(spec) => collect_schedule(spec, &value["spec"], "spec", &mut embedded)?,
        Spec::Workflow(spec) => {
            let name = manifest
                .metadata
                .name
                .clone()
                .or_else(|| manifest.metadata.generate_name.clone())
                .unwrap_or_default();
            crate::workflow::plan(&name, spec).map_err(|(path, message)| {
                HubError::invalid_field(&format!("spec{path}"), message)
            })?;
            collect_workflow(spec, &value["spec"], "spec", &mut embedded)?;
            // Status checks run in the hub: their URLs are calls the hub makes.
            for (i, template) in spec.templates.iter().enumerate() {
                if let Some(http) = template.status_check.as_ref().and_then(|c| c.http.as_ref()) {
                    hub.engine.endpoints().check_url(&http.url).map_err(|why| {
                        HubError::invalid_field(
                            &format!("spec.templates[{i}].statusCheck.http.url"),
                            format!("{:?}: {why}", http.url),
                        )
                    })?;
                }
            }
        }
        _ => unreachable!("submit_parent is only called for schedules and workflows"),
    }
    let mut warnings = Vec::new();
    let probe_name = manifest
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "dry-run".into());
    for item in &embedded {
        let own = item
            .spec
            .get("environment")
            .or_else(|| item.spec.get("remoteCluster"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let env = match (env_override, own, &parent_env) {
            (Some(e), _, _) => e.to_string(),
            (None, Some(e), _) => e,
            (None, None, Some(e)) => e.clone(),
            (None, None, None) if dry_run => {
                warnings.push(format!(
                    "{}: no environment named: validated only (set spec.environment or ?env= to check what the environment can run)",
                    item.path
                ));
                continue;
            }
            (None, None, None) => {
                return Err(HubError::invalid_field(
                    &format!("{}.environment", item.path),
                    "no environment named: set spec.environment on the schedule or workflow (or on this chaos), pass ?env=NAME, or configure default_environment",
                ))
            }
        };
        let mut spec = item.spec.clone();
        spec["environment"] = Value::String(env.clone());
        let probe = json!({
            "apiVersion": chaoshub_schema::CHAOS_MESH_API_VERSION,
            "kind": item.kind,
            "metadata": { "name": probe_name, "namespace": manifest.metadata.namespace_or_default() },
            "spec": spec,
        });
        // A dry run of the embedded chaos on its own: validation, the environment's capability
        // matrix and the adapter's own check, with its plan; when the parent is being created,
        // protected targets and the blast-radius cap refuse as for a real run.
        let embedded_mode = match mode {
            SubmitMode::DryRun => SubmitMode::DryRun,
            SubmitMode::Create | SubmitMode::Embedded => SubmitMode::Embedded,
        };
        let planned = Box::pin(hub.submit_as(probe, None, embedded_mode))
            .await
            .map_err(|e| at_path(e, &item.path))?;
        if let Submitted::DryRun(result) = planned {
            if let Some(plan) = &result.plan {
                warnings.push(format!(
                    "{}: {}/{} in environment {} would hit {} of {} matching target(s)",
                    item.path,
                    item.kind,
                    plan.actions.join(","),
                    plan.environment,
                    plan.targets.len(),
                    plan.matched
                ));
            }
            warnings.extend(
                result
                    .warnings
                    .iter()
                    .map(|w| format!("{}: {w}", item.path)),
            );
        }
        // Store the resolved environment in the embedded spec, so every child runs where
        // this submission was checked, whatever the defaults are later.
        set_at(&mut value, &item.path, "environment", Value::String(env));
    }
    if let Some(env) = &parent_env {
        value["spec"]["environment"] = Value::String(env.clone());
    }
    let manifest = chaoshub_schema::manifest_from_value(value).map_err(HubError::invalid)?;
    if dry_run {
        return Ok(Submitted::DryRun(Box::new(DryRunResult {
            valid: true,
            manifest: manifest.to_value(),
            plan: None,
            warnings,
        })));
    }
    let env = match &parent_env {
        Some(name) => match hub.engine.store().get_environment(name)? {
            Some(env) => Environment {
                name: name.clone(),
                spec: env.spec,
            },
            None => {
                return Err(HubError::invalid_field(
                    env_path,
                    format!("environment {name:?} is not registered"),
                ))
            }
        },
        // A workflow of suspends and status checks needs no environment.
        None => Environment {
            name: String::new(),
            spec: EnvironmentSpec {
                adapter: String::new(),
                endpoint: None,
                description: None,
                labels: BTreeMap::new(),
                settings: Default::default(),
            },
        },
    };
    let halt = hub.engine.store().halt_status()?;
    if halt.halted {
        return Err(HubError::Conflict {
            code: "halted",
            message: format!(
                "the hub is halted{}: no experiment may start or resume until DELETE /api/v1/halt (chaoshub unhalt)",
                halt.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        });
    }
    hub.store_experiment(manifest, &env, Vec::new())
        .map(|o| Submitted::Created(Box::new(o)))
}

fn own_environment(manifest: &Manifest) -> Option<String> {
    match &manifest.spec {
        Spec::Schedule(s) => s.environment.clone(),
        Spec::Workflow(w) => w.environment.clone(),
        _ => None,
    }
}

fn collect_schedule(
    spec: &ScheduleSpec,
    value: &Value,
    path: &str,
    out: &mut Vec<Embedded>,
) -> Result<(), HubError> {
    crate::schedule::cron::CronSchedule::parse(&spec.schedule)
        .map_err(|e| HubError::invalid_field(&format!("{path}.schedule"), e.to_string()))?;
    if spec.schedule_type == ScheduleType::Workflow {
        let workflow = spec.workflow.as_deref().ok_or_else(|| {
            HubError::invalid_field(
                &format!("{path}.workflow"),
                "is required when type is Workflow",
            )
        })?;
        crate::workflow::plan("schedule", workflow).map_err(|(p, message)| {
            HubError::invalid_field(&format!("{path}.workflow{p}"), message)
        })?;
        return collect_workflow(
            workflow,
            &value["workflow"],
            &format!("{path}.workflow"),
            out,
        );
    }
    let kind = spec.type_name();
    let field = crate::orchestration::embedded_field(&kind);
    out.push(Embedded {
        path: format!("{path}.{field}"),
        kind,
        spec: value[field.as_str()].clone(),
    });
    Ok(())
}

fn collect_workflow(
    spec: &WorkflowSpec,
    value: &Value,
    path: &str,
    out: &mut Vec<Embedded>,
) -> Result<(), HubError> {
    for (i, template) in spec.templates.iter().enumerate() {
        let tpath = format!("{path}.templates[{i}]");
        let tvalue = &value["templates"][i];
        match template.template_type {
            WorkflowTemplateType::Serial
            | WorkflowTemplateType::Parallel
            | WorkflowTemplateType::Suspend
            | WorkflowTemplateType::StatusCheck => {}
            WorkflowTemplateType::Task => {
                return Err(HubError::Unsupported {
                    message: format!(
                        "{tpath} ({:?}): templateType Task runs a user container, which this hub cannot run; use a chaos, Suspend or StatusCheck template instead",
                        template.name
                    ),
                })
            }
            WorkflowTemplateType::Schedule => {
                if let Some(schedule) = &template.schedule {
                    collect_schedule(schedule, &tvalue["schedule"], &format!("{tpath}.schedule"), out)?;
                }
            }
            _ => {
                let kind = template.type_name();
                let field = crate::orchestration::embedded_field(&kind);
                out.push(Embedded {
                    path: format!("{tpath}.{field}"),
                    kind,
                    spec: tvalue[field.as_str()].clone(),
                });
            }
        }
    }
    Ok(())
}

/// Sets `value.<path>.<field>`, where `path` is a field path such as `spec.templates[2].podChaos`.
fn set_at(value: &mut Value, path: &str, field: &str, new: Value) {
    let mut cursor = value;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cursor = &mut cursor[name];
        if let Some(i) = index {
            cursor = &mut cursor[i];
        }
    }
    if cursor.is_object() {
        cursor[field] = new;
    }
}

/// Moves the field paths of an embedded chaos's errors under its place in the parent.
fn at_path(e: HubError, path: &str) -> HubError {
    let rebase = |p: &str| match p.strip_prefix("spec") {
        Some(rest) => format!("{path}{rest}"),
        None if p.is_empty() => path.to_string(),
        None => format!("{path}.{p}"),
    };
    match e {
        HubError::Invalid { message, details } => HubError::Invalid {
            message,
            details: details
                .into_iter()
                .map(|d| FieldError::new(rebase(&d.path), d.message))
                .collect(),
        },
        HubError::Unsupported { message } => HubError::Unsupported {
            message: format!("{path}: {message}"),
        },
        HubError::BadRequest { code, message } => HubError::BadRequest {
            code,
            message: format!("{path}: {message}"),
        },
        HubError::Forbidden { message } => HubError::Forbidden {
            message: format!("{path}: {message}"),
        },
        HubError::Guardrail { code, message } => HubError::Guardrail {
            code,
            message: format!("{path}: {message}"),
        },
        other => other,
    }
}

/// Stores a StatusCheck experiment (or answers its dry run). Called by `Hub::submit`.
fn submit_status_check(
    hub: &Hub,
    manifest: Manifest,
    dry_run: bool,
) -> Result<Submitted, HubError> {
    if dry_run {
        return Ok(Submitted::DryRun(Box::new(DryRunResult {
            valid: true,
            manifest: manifest.to_value(),
            plan: None,
            warnings: vec![
                "a StatusCheck runs in the hub and injects nothing: there are no targets".into(),
            ],
        })));
    }
    let env = Environment {
        name: crate::probes::statuscheck::HUB_ENVIRONMENT.into(),
        spec: EnvironmentSpec {
            adapter: crate::probes::statuscheck::HUB_ENVIRONMENT.into(),
            endpoint: None,
            description: None,
            labels: Default::default(),
            settings: Default::default(),
        },
    };
    let mode = match &manifest.spec {
        Spec::StatusCheck(s) => match s.mode.unwrap_or(StatusCheckMode::Synchronous) {
            StatusCheckMode::Synchronous => "synchronous",
            StatusCheckMode::Continuous => "continuous",
        },
        _ => "synchronous",
    };
    hub.store_experiment(manifest, &env, vec![mode.to_string()])
        .map(|o| Submitted::Created(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_at_walks_indexes() {
        let mut v = json!({"spec": {"templates": [{}, {"podChaos": {"action": "pod-kill"}}]}});
        set_at(
            &mut v,
            "spec.templates[1].podChaos",
            "environment",
            json!("mem"),
        );
        assert_eq!(v["spec"]["templates"][1]["podChaos"]["environment"], "mem");
    }

    #[test]
    fn errors_move_under_the_embedded_path() {
        let e = HubError::invalid_field("spec.duration", "too long");
        let HubError::Invalid { details, .. } = at_path(e, "spec.templates[3].networkChaos") else {
            panic!()
        };
        assert_eq!(details[0].path, "spec.templates[3].networkChaos.duration");
    }
}
