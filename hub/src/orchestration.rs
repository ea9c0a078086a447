//! Schedules and workflows: experiments that own other experiments.
//!
//! A `Schedule` or `Workflow` is stored as an experiment row like any other (phase `Running`
//! while active), but it injects nothing itself. Its reconciler (`schedule`, `workflow`) creates
//! *children*: ordinary experiments submitted through [`Hub::submit`], labelled
//! `chaoshub.dev/parent: <parent uid>` and named deterministically (`<schedule>-<unix time>`,
//! `<workflow>-<template>`). Every lifecycle guarantee of a single experiment — confirmation,
//! deadlines, crash recovery, telemetry — therefore holds for each child, and the parent only
//! has to remember, in its own stored status, which children it meant to create.
//!
//! This module is the seam between those reconcilers and the rest of the hub: the engine asks
//! [`handles`], [`due`], [`reconcile`] and [`after_pass`]; `operations` hands submissions of
//! these kinds to [`submit`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use chaoshub_adapters::Environment;
use chaoshub_schema::api::{DesiredState, DryRunResult, ExperimentPhase};
use chaoshub_schema::chaosmesh::{ScheduleSpec, ScheduleType, WorkflowSpec, WorkflowTemplateType};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::{FieldError, Manifest, Spec};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::error::HubError;
use crate::events::experiment_event;
use crate::operations::{Hub, Submitted};
use crate::store::{ExperimentRow, NewEvent, StoreError};

/// Label linking a child experiment to the schedule or workflow that created it.
pub const PARENT_LABEL: &str = "chaoshub.dev/parent";
/// Annotations on children: the parent's kind and name, and the workflow node or fire time.
pub const PARENT_KIND_ANNOTATION: &str = "chaoshub.dev/parent-kind";
pub const PARENT_NAME_ANNOTATION: &str = "chaoshub.dev/parent-name";
pub const NODE_ANNOTATION: &str = "chaoshub.dev/workflow-node";
pub const SCHEDULED_TIME_ANNOTATION: &str = "chaoshub.dev/scheduled-time";

/// Whether experiments of this kind are driven by this module instead of the fault lifecycle.
pub fn handles(kind: &str) -> bool {
    matches!(kind, "Schedule" | "Workflow")
}

/// The in-memory side of schedules and workflows, owned by the engine. Nothing here is needed
/// to resume after a restart: it holds only what can be rebuilt (the submit handle) or rerun
/// (status checks in progress).
#[derive(Default)]
pub struct Runtime {
    /// What a [`Hub`] needs besides the engine, set once the server has built its hub.
    context: OnceLock<(Option<String>, Arc<Catalog>)>,
    /// Status checks running in this process, by (workflow uid, node name).
    pub(crate) checks: Mutex<HashMap<(String, String), crate::workflow::CheckRun>>,
}

impl Runtime {
    /// Lets the engine submit children through the same path as the API.
    pub fn attach(&self, default_environment: Option<String>, catalog: Arc<Catalog>) {
        let _ = self.context.set((default_environment, catalog));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn checks(
    engine: &Engine,
) -> std::sync::MutexGuard<'_, HashMap<(String, String), crate::workflow::CheckRun>> {
    lock(&engine.orchestration.checks)
}

/// A hub handle over this engine, for submitting children.
fn hub_of(engine: &Arc<Engine>) -> Result<Hub, String> {
    let (default_environment, catalog) = engine
        .orchestration
        .context
        .get()
        .ok_or("this engine was started without a hub to submit children through (a bug)")?;
    Ok(Hub {
        engine: Arc::clone(engine),
        default_environment: default_environment.clone(),
        catalog: Arc::clone(catalog),
    })
}

/// When the engine should next look at a schedule or workflow (`None`: only when poked).
pub fn due(engine: &Engine, row: &ExperimentRow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let status = &row.status;
    match status.phase {
        ExperimentPhase::Pending | ExperimentPhase::Injecting | ExperimentPhase::Recovering => {
            Some(now)
        }
        p if p.is_terminal() => None,
        ExperimentPhase::Paused if status.desired == DesiredState::Pause => None,
        ExperimentPhase::Running if status.desired == DesiredState::Run => {
            match row.kind.as_str() {
                "Schedule" => crate::schedule::due(row),
                _ => crate::workflow::due(engine, row),
            }
        }
        _ => Some(now),
    }
}

/// One pass over a schedule or workflow.
pub async fn reconcile(engine: &Arc<Engine>, row: ExperimentRow) -> Result<(), StoreError> {
    match row.kind.as_str() {
        "Schedule" => crate::schedule::reconcile(engine, row).await,
        _ => crate::workflow::reconcile(engine, row).await,
    }
}

/// After a pass over any experiment: a child's parent is poked so it notices the child's phase.
pub fn after_pass(engine: &Arc<Engine>, uid: &str) {
    let parent = match engine.store().get_experiment(uid) {
        Ok(Some(row)) => row.metadata.labels.get(PARENT_LABEL).cloned(),
        _ => None,
    };
    if let Some(parent) = parent {
        engine.trigger(&parent);
    }
}

/// Stores a parent's status with its events and publishes them.
pub(crate) fn save(
    engine: &Engine,
    row: &ExperimentRow,
    events: Vec<NewEvent>,
) -> Result<(), StoreError> {
    let records = engine
        .store()
        .update_status(&row.uid, &row.status, &events)?;
    engine.publish(records);
    Ok(())
}

/// An event about a parent with extra attributes.
pub(crate) fn event(
    row: &ExperimentRow,
    name: &str,
    message: impl Into<String>,
    attributes: &[(&str, String)],
) -> NewEvent {
    let mut ev = experiment_event(row, name, message);
    for (k, v) in attributes {
        ev.attributes.insert((*k).to_string(), v.clone());
    }
    ev
}

/// A child to create.
pub(crate) struct ChildRequest<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub spec: Value,
    pub annotations: Vec<(&'static str, String)>,
}

/// Creates a child experiment through the normal submit path, or finds the one an earlier
/// (interrupted) pass created: the name is deterministic, so a retry never makes a second one.
/// Returns the child's uid, or why it could not be created.
pub(crate) async fn create_child(
    engine: &Arc<Engine>,
    parent: &ExperimentRow,
    child: ChildRequest<'_>,
) -> Result<String, String> {
    if let Some(existing) = find_child(engine, parent, child.name)? {
        return Ok(existing);
    }
    let hub = hub_of(engine)?;
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    annotations.insert(PARENT_KIND_ANNOTATION.into(), parent.kind.clone());
    annotations.insert(PARENT_NAME_ANNOTATION.into(), parent.name.clone());
    for (k, v) in child.annotations {
        annotations.insert(k.into(), v);
    }
    let value = json!({
        "apiVersion": chaoshub_schema::CHAOS_MESH_API_VERSION,
        "kind": child.kind,
        "metadata": {
            "name": child.name,
            "namespace": parent.namespace,
            "labels": { PARENT_LABEL: parent.uid },
            "annotations": annotations,
        },
        "spec": child.spec,
    });
    match hub.submit(value, None, false).await {
        Ok(Submitted::Created(object)) => Ok(object.metadata.uid.unwrap_or_default()),
        Ok(Submitted::DryRun(_)) => Err("the child was planned instead of created (a bug)".into()),
        Err(HubError::Conflict {
            code: "already_exists",
            ..
        }) => {
            // Created by a pass that was interrupted before it could record the uid.
            find_child(engine, parent, child.name)?.ok_or_else(|| {
                format!(
                    "an experiment named {:?} already exists in namespace {:?} and does not belong to {} {}; rename or delete it",
                    child.name, parent.namespace, parent.kind, parent.name
                )
            })
        }
        Err(e) => Err(describe(&e)),
    }
}

fn find_child(
    engine: &Engine,
    parent: &ExperimentRow,
    name: &str,
) -> Result<Option<String>, String> {
    let found = engine
        .store()
        .find_experiment_by_name(&parent.namespace, name)
        .map_err(|e| format!("cannot read the store: {e}"))?;
    Ok(found
        .filter(|row| row.metadata.labels.get(PARENT_LABEL) == Some(&parent.uid))
        .map(|row| row.uid))
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

/// Asks every live child for `desired` (pause, resume or stop) and pokes it. Children already
/// terminal, or already asked, are left alone; a stop is never turned back into a pause.
pub(crate) fn steer_children(
    engine: &Arc<Engine>,
    uids: &[String],
    desired: DesiredState,
    reason: &str,
) -> Result<(), StoreError> {
    for uid in uids {
        let Some(child) = engine.store().get_experiment(uid)? else {
            continue;
        };
        if child.status.phase.is_terminal()
            || child.status.desired == desired
            || child.status.desired == DesiredState::Stop
        {
            continue;
        }
        let (name, message) = match desired {
            DesiredState::Stop => (
                crate::events::EXPERIMENT_STOP_REQUESTED,
                format!("stop requested: {reason}"),
            ),
            DesiredState::Pause => (
                crate::events::EXPERIMENT_PAUSE_REQUESTED,
                format!("pause requested: {reason}"),
            ),
            DesiredState::Run => (
                crate::events::EXPERIMENT_RESUME_REQUESTED,
                format!("resume requested: {reason}"),
            ),
        };
        let ev = experiment_event(&child, name, message);
        let why = (desired == DesiredState::Stop).then_some(reason);
        match engine.store().set_desired(uid, desired, why, &[ev]) {
            Ok(records) => engine.publish(records),
            // The store refuses what the child's phase no longer allows; nothing to do then.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
        engine.trigger(uid);
    }
    Ok(())
}

/// Whether any of these children is still active (not in a terminal phase).
pub(crate) fn any_live(engine: &Engine, uids: &[String]) -> Result<bool, StoreError> {
    for uid in uids {
        if let Some(child) = engine.store().get_experiment(uid)? {
            if !child.status.phase.is_terminal() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

// ---- submission ----

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
pub async fn submit(
    hub: &Hub,
    manifest: Manifest,
    env_override: Option<&str>,
    dry_run: bool,
) -> Result<Submitted, HubError> {
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
        }
        _ => unreachable!("orchestration::submit is only called for schedules and workflows"),
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
        // A dry run of the embedded chaos on its own: validation, guardrails, the
        // environment's capability matrix and the adapter's own check, with its plan.
        let planned = Box::pin(hub.submit(probe, None, true))
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

/// The JSON field of an embedded chaos kind (`NetworkChaos` → `networkChaos`).
pub(crate) fn embedded_field(kind: &str) -> String {
    match kind {
        "AWSChaos" => "awsChaos".into(),
        "GCPChaos" => "gcpChaos".into(),
        "DNSChaos" => "dnsChaos".into(),
        "HTTPChaos" => "httpChaos".into(),
        "IOChaos" => "ioChaos".into(),
        "JVMChaos" => "jvmChaos".into(),
        "PhysicalMachineChaos" => "physicalmachineChaos".into(),
        other => {
            let mut chars = other.chars();
            match chars.next() {
                Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        }
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
    let field = embedded_field(&kind);
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
                let field = embedded_field(&kind);
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
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_field_names_match_the_crd() {
        for (kind, field) in [
            ("NetworkChaos", "networkChaos"),
            ("PodChaos", "podChaos"),
            ("StressChaos", "stressChaos"),
            ("PhysicalMachineChaos", "physicalmachineChaos"),
            ("HTTPChaos", "httpChaos"),
            ("IOChaos", "ioChaos"),
            ("AWSChaos", "awsChaos"),
            ("TimeChaos", "timeChaos"),
            ("BlockChaos", "blockChaos"),
            ("KernelChaos", "kernelChaos"),
        ] {
            assert_eq!(embedded_field(kind), field);
        }
    }

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
