//! Stable event names of the event log (and, later, OpenTelemetry log records).

use std::collections::BTreeMap;

use chaoshub_schema::api::TargetRecord;

use crate::store::{ExperimentRow, NewEvent};

pub const EXPERIMENT_CREATED: &str = "chaoshub.experiment.created";
pub const EXPERIMENT_INJECTING: &str = "chaoshub.experiment.injecting";
/// Pending, waiting for something before its clock starts (an environment's preparation).
pub const EXPERIMENT_WAITING: &str = "chaoshub.experiment.waiting";
pub const EXPERIMENT_RUNNING: &str = "chaoshub.experiment.running";
pub const EXPERIMENT_PAUSED: &str = "chaoshub.experiment.paused";
pub const EXPERIMENT_RESUMED: &str = "chaoshub.experiment.resumed";
pub const EXPERIMENT_RECOVERING: &str = "chaoshub.experiment.recovering";
pub const EXPERIMENT_FINISHED: &str = "chaoshub.experiment.finished";
pub const EXPERIMENT_FAILED: &str = "chaoshub.experiment.failed";
pub const EXPERIMENT_ABORTED: &str = "chaoshub.experiment.aborted";
pub const EXPERIMENT_ARCHIVED: &str = "chaoshub.experiment.archived";
pub const EXPERIMENT_PAUSE_REQUESTED: &str = "chaoshub.experiment.pause_requested";
pub const EXPERIMENT_RESUME_REQUESTED: &str = "chaoshub.experiment.resume_requested";
pub const EXPERIMENT_STOP_REQUESTED: &str = "chaoshub.experiment.stop_requested";
pub const TARGET_INJECTED: &str = "chaoshub.target.injected";
pub const TARGET_RECOVERED: &str = "chaoshub.target.recovered";
pub const TARGET_FAILED: &str = "chaoshub.target.failed";
/// Drift detection read a Running experiment's fault back as gone from this target.
pub const TARGET_DRIFTED: &str = "chaoshub.target.drifted";
/// A fault found gone was put back (`on_drift: reinject`) and read back in place.
pub const TARGET_REINJECTED: &str = "chaoshub.target.reinjected";
pub const HALT_SET: &str = "chaoshub.halt.set";
pub const HALT_RELEASED: &str = "chaoshub.halt.released";
pub const ENVIRONMENT_REGISTERED: &str = "chaoshub.environment.registered";
pub const ENVIRONMENT_DELETED: &str = "chaoshub.environment.deleted";
pub const HUB_STARTED: &str = "chaoshub.hub.started";
/// A schedule created a run (a child experiment).
pub const SCHEDULE_FIRED: &str = "chaoshub.schedule.fired";
/// A schedule's fire times passed unacted (hub down or schedule paused beyond
/// `startingDeadlineSeconds`); the event lists them.
pub const SCHEDULE_MISSED: &str = "chaoshub.schedule.missed";
/// A fire time was skipped by `concurrencyPolicy: Forbid` while a run was still active.
pub const SCHEDULE_SKIPPED: &str = "chaoshub.schedule.skipped";
/// A schedule's run could not be created (the reason is in the message).
pub const SCHEDULE_RUN_FAILED: &str = "chaoshub.schedule.run_failed";
pub const WORKFLOW_NODE_STARTED: &str = "chaoshub.workflow.node_started";
pub const WORKFLOW_NODE_ENDED: &str = "chaoshub.workflow.node_ended";
/// A suite run's journal gained a progress line (attribute `run`: the run id). The journal
/// itself is read with `GET /api/v1/suites/runs/{id}`; the event is what `chaoshub run` wakes on.
pub const SUITE_PROGRESS: &str = "chaoshub.suite.progress";
/// A suite run ended (attributes `run` and `phase`: Passed or Failed).
pub const SUITE_FINISHED: &str = "chaoshub.suite.finished";

/// An event about a suite run: it names the run only (the journal, read with the caller's
/// scope, says what happened), so a viewer scoped to other environments learns nothing from it.
pub fn suite_event(name: &str, run: &str, phase: Option<&str>) -> NewEvent {
    let mut attributes = std::collections::BTreeMap::from([("run".to_string(), run.to_string())]);
    if let Some(phase) = phase {
        attributes.insert("phase".into(), phase.to_string());
    }
    NewEvent {
        name: name.to_string(),
        message: match phase {
            Some(phase) => format!("suite run {run} ended: {phase}"),
            None => format!("suite run {run} progressed"),
        },
        attributes,
        ..Default::default()
    }
}

/// An event about an experiment, with the standard attributes.
pub fn experiment_event(row: &ExperimentRow, name: &str, message: impl Into<String>) -> NewEvent {
    let mut attributes = BTreeMap::new();
    attributes.insert("chaoshub.experiment.name".into(), row.name.clone());
    attributes.insert(
        "chaoshub.experiment.namespace".into(),
        row.namespace.clone(),
    );
    attributes.insert("chaoshub.experiment.kind".into(), row.kind.clone());
    attributes.insert(
        "chaoshub.experiment.action".into(),
        row.status.actions.join(","),
    );
    attributes.insert("chaoshub.adapter".into(), row.status.adapter.clone());
    // Set when a request caused the event (created, paused, stopped, deleted by someone).
    if let Some(principal) = crate::auth::current_name() {
        attributes.insert("principal".into(), principal);
    }
    NewEvent {
        name: name.to_string(),
        experiment_uid: Some(row.uid.clone()),
        environment: Some(row.status.environment.clone()),
        target: None,
        message: message.into(),
        attributes,
    }
}

/// An event about one target of an experiment.
pub fn target_event(
    row: &ExperimentRow,
    record: &TargetRecord,
    name: &str,
    message: impl Into<String>,
) -> NewEvent {
    let mut event = experiment_event(row, name, message);
    event.target = Some(record.target.id.clone());
    event
        .attributes
        .insert("chaoshub.target.id".into(), record.target.id.clone());
    event
        .attributes
        .insert("chaoshub.target.name".into(), record.target.name.clone());
    event
        .attributes
        .insert("chaoshub.injection.id".into(), record.injection_id.clone());
    if let Some(error) = &record.error {
        event.attributes.insert("error".into(), error.clone());
    }
    event
}

/// An event not tied to an experiment.
pub fn hub_event(name: &str, message: impl Into<String>) -> NewEvent {
    NewEvent {
        name: name.to_string(),
        message: message.into(),
        ..Default::default()
    }
}
