//! Schedules and workflows: experiments that own other experiments.
//!
//! A `Schedule` or `Workflow` is stored as an experiment row like any other (phase `Running`
//! while active), but it injects nothing itself. Its controller (`schedule`, `workflow`) creates
//! *children*: ordinary experiments submitted through the [`Children`] port (the hub's normal
//! submit path), labelled `chaoshub.dev/parent: <parent uid>` and named deterministically
//! (`<schedule>-<unix time>`, `<workflow>-<template>`). Every lifecycle guarantee of a single
//! experiment — confirmation, deadlines, crash recovery, telemetry — therefore holds for each
//! child, and the parent only has to remember, in its own stored status, which children it
//! meant to create.
//!
//! This module is the controllers' shared kit: storing a parent's status, its events (also
//! written to the hub log), creating, steering and following children. It names neither the
//! operations layer nor the catalog: the port is handed to the controllers when the server
//! builds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chaoshub_schema::api::{DesiredState, ExperimentPhase};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::engine::{Due, Engine};
use crate::events::experiment_event;
use crate::store::{ExperimentRow, NewEvent, StoreError};

/// Label linking a child experiment to the schedule or workflow that created it.
pub use crate::engine::PARENT_LABEL;
/// Annotations on children: the parent's kind and name, and the workflow node or fire time.
pub const PARENT_KIND_ANNOTATION: &str = "chaoshub.dev/parent-kind";
pub const PARENT_NAME_ANNOTATION: &str = "chaoshub.dev/parent-name";
pub const NODE_ANNOTATION: &str = "chaoshub.dev/workflow-node";
pub const SCHEDULED_TIME_ANNOTATION: &str = "chaoshub.dev/scheduled-time";

/// Why a child could not be submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildError {
    /// An experiment of that name already exists in the namespace.
    AlreadyExists,
    /// Refused (validation, guardrails, capability, halt…), as one line with field paths.
    Refused(String),
}

/// The port through which controllers create children: the hub's own submit path, with its
/// validation, guardrails, capability checks and halt check (implemented in the operations
/// layer, `crate::submission::HubChildren`; a test can pass its own).
pub trait Children: Send + Sync {
    /// Submits a manifest (a JSON value); the new experiment's uid.
    fn submit(&self, manifest: Value) -> BoxFuture<'_, Result<String, ChildError>>;
}

/// When the engine should next look at a schedule or workflow: at once while it starts or
/// stops, never once it ended or while paused, and when `running` says while it runs.
pub(crate) fn parent_due(
    row: &ExperimentRow,
    now: DateTime<Utc>,
    running: impl FnOnce() -> Option<DateTime<Utc>>,
) -> Due {
    let status = &row.status;
    let at = match status.phase {
        ExperimentPhase::Pending | ExperimentPhase::Injecting | ExperimentPhase::Recovering => {
            Some(now)
        }
        p if p.is_terminal() => None,
        ExperimentPhase::Paused if status.desired == DesiredState::Pause => None,
        ExperimentPhase::Running if status.desired == DesiredState::Run => running(),
        _ => Some(now),
    };
    Due::at(at, now)
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
    for ev in &events {
        log_event(row, ev);
    }
    engine.publish(records);
    Ok(())
}

/// Writes a parent's event to the hub log too, with structured fields (the schedule's fire
/// time and run, the workflow's node), so firing, skipping, missing and node transitions can
/// be followed without the event store.
fn log_event(row: &ExperimentRow, ev: &NewEvent) {
    let attr = |k: &str| ev.attributes.get(k).map(String::as_str).unwrap_or("");
    let warn = matches!(
        ev.name.as_str(),
        crate::events::SCHEDULE_MISSED
            | crate::events::SCHEDULE_RUN_FAILED
            | crate::events::EXPERIMENT_FAILED
    );
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                kind = %row.kind,
                name = %row.name,
                uid = %row.uid,
                event = %ev.name,
                run = attr("chaoshub.schedule.run"),
                fire_time = attr("chaoshub.schedule.time"),
                missed = attr("chaoshub.schedule.missed"),
                node = attr("chaoshub.workflow.node"),
                node_phase = attr("chaoshub.workflow.node.phase"),
                child = attr("chaoshub.workflow.child"),
                reason = %ev.message,
                "{}",
                ev.name.trim_start_matches("chaoshub.")
            )
        };
    }
    if warn {
        emit!(warn);
    } else {
        emit!(info);
    }
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
    engine: &Engine,
    children: &dyn Children,
    parent: &ExperimentRow,
    child: ChildRequest<'_>,
) -> Result<String, String> {
    if let Some(existing) = find_child(engine, parent, child.name)? {
        return Ok(existing);
    }
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
    match children.submit(value).await {
        Ok(uid) => Ok(uid),
        Err(ChildError::AlreadyExists) => {
            // Created by a pass that was interrupted before it could record the uid.
            find_child(engine, parent, child.name)?.ok_or_else(|| {
                format!(
                    "an experiment named {:?} already exists in namespace {:?} and does not belong to {} {}; rename or delete it",
                    child.name, parent.namespace, parent.kind, parent.name
                )
            })
        }
        Err(ChildError::Refused(reason)) => Err(reason),
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
}
