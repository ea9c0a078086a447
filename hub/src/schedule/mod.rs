//! The `Schedule` reconciler: creates a run (a child experiment) at every fire time of a cron
//! expression, as Chaos Mesh's Schedule does.
//!
//! Restart safety rests on two stored facts. `lastScheduledTime` is written, together with
//! the new run's history entry (name derived from the fire time, uid not yet known), *before*
//! the run is created; and the run's name is `<schedule>-<unix seconds of the fire time>`. A hub
//! that dies after the write but before the creation finds the entry on its next pass and
//! creates exactly that run (or finds it, if the creation did happen); a hub that dies earlier
//! sees the fire time again as due. Either way a fire time produces at most one run.
//!
//! Fire times that passed while the hub was down (or the schedule paused) are never skipped
//! silently: the most recent one is fired late if it is within `startingDeadlineSeconds` (or
//! if no deadline is set, as Kubernetes CronJobs do), and every other one is recorded in a
//! `chaoshub.schedule.missed` event and counted in `status.schedule.missed`.

pub mod cron;

use std::sync::Arc;

use chaoshub_schema::api::{DesiredState, ExperimentPhase, ScheduleRun, ScheduleStatus};
use chaoshub_schema::chaosmesh::{ConcurrencyPolicy, ScheduleSpec, ScheduleType};
use chaoshub_schema::Kind;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

use crate::engine::{Controller, Due, Engine};
use crate::events;
use crate::orchestration::{self, event, ChildRequest, Children};
use crate::store::{ExperimentRow, NewEvent, StoreError};
use crate::time;
use cron::CronSchedule;

/// Runs kept when `historyLimit` is not set. Chaos Mesh leaves it unset; an unbounded history
/// would grow the status of an `@every 1s` schedule without end, so the hub keeps ten.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// How many missed fire times are listed one by one in a `missed` event; beyond that only the
/// count and the range are given.
const LISTED_MISSES: usize = 20;

/// Fire times examined after a long outage; an `@every 1s` schedule down for a day has 86 400.
const MAX_CATCH_UP: usize = 1_000_000;

/// The `Schedule` controller. It owns nothing in memory: everything is in the stored status.
pub struct ScheduleController {
    children: Arc<dyn Children>,
}

impl ScheduleController {
    pub fn new(children: Arc<dyn Children>) -> Self {
        ScheduleController { children }
    }
}

impl Controller for ScheduleController {
    fn name(&self) -> &'static str {
        "schedule"
    }

    fn handles(&self, kind: &str) -> bool {
        kind == Kind::Schedule.as_str()
    }

    fn due(&self, _engine: &Engine, row: &ExperimentRow, now: DateTime<Utc>) -> Due {
        orchestration::parent_due(row, now, || due(row))
    }

    fn reconcile<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(reconcile(engine, self.children.as_ref(), row))
    }
}

/// When the schedule wants its next pass.
pub fn due(row: &ExperimentRow) -> Option<DateTime<Utc>> {
    let status = row.status.schedule.as_ref()?;
    // A run whose creation was interrupted is finished at once.
    if status
        .history
        .iter()
        .any(|r| r.uid.is_none() && r.error.is_none())
    {
        return Some(DateTime::<Utc>::MIN_UTC);
    }
    status.next_scheduled_time.as_deref().and_then(time::parse)
}

fn run_uids(status: &ScheduleStatus) -> Vec<String> {
    status
        .history
        .iter()
        .filter_map(|r| r.uid.clone())
        .collect()
}

/// One pass over a schedule.
pub async fn reconcile(
    engine: &Arc<Engine>,
    children: &dyn Children,
    mut row: ExperimentRow,
) -> Result<(), StoreError> {
    let now = engine.now();
    let spec: ScheduleSpec = match serde_json::from_value(row.spec.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            return fail(
                engine,
                &mut row,
                format!("the stored schedule no longer parses: {e}"),
            )
        }
    };
    let cron = match CronSchedule::parse(&spec.schedule) {
        Ok(c) => c,
        Err(e) => return fail(engine, &mut row, format!("spec.schedule: {e}")),
    };
    let mut status = row.status.schedule.clone().map(|s| *s).unwrap_or_default();
    refresh_history(engine, &mut status)?;
    let mut events = Vec::new();
    match (row.status.phase, row.status.desired) {
        (p, _) if p.is_terminal() => return Ok(()),
        (ExperimentPhase::Recovering, _) | (_, DesiredState::Stop) => {
            let why = row
                .desired_reason
                .clone()
                .or_else(|| row.status.reason.clone())
                .unwrap_or_else(|| "stopped".into());
            return stop(engine, &mut row, status, &why);
        }
        (ExperimentPhase::Pending, DesiredState::Run) => {
            let halt = engine.store().halt_status()?;
            if halt.halted {
                row.desired_reason = Some(format!("halted: {}", halt.reason.unwrap_or_default()));
                let why = row.desired_reason.clone().unwrap_or_default();
                return stop(engine, &mut row, status, &why);
            }
            row.status.phase = ExperimentPhase::Running;
            row.status.started_at = Some(time::format(now));
            let next = cron.next_after(now).map(time::format);
            events.push(event(
                &row,
                events::EXPERIMENT_RUNNING,
                format!(
                    "schedule {:?} active; first run at {}",
                    spec.schedule,
                    next.as_deref()
                        .unwrap_or("never (the expression matches no date)")
                ),
                &[],
            ));
        }
        (ExperimentPhase::Pending | ExperimentPhase::Running, DesiredState::Pause) => {
            orchestration::steer_children(
                engine,
                &run_uids(&status),
                DesiredState::Pause,
                "its schedule was paused",
            )?;
            row.status.phase = ExperimentPhase::Paused;
            status.next_scheduled_time = None;
            row.status.schedule = Some(Box::new(status));
            let ev = event(
                &row,
                events::EXPERIMENT_PAUSED,
                "schedule paused: no run starts until it is resumed; active runs paused",
                &[],
            );
            return orchestration::save(engine, &row, vec![ev]);
        }
        (ExperimentPhase::Paused, DesiredState::Run) => {
            orchestration::steer_children(
                engine,
                &run_uids(&status),
                DesiredState::Run,
                "its schedule was resumed",
            )?;
            row.status.phase = ExperimentPhase::Running;
            events.push(event(
                &row,
                events::EXPERIMENT_RESUMED,
                "schedule resumed",
                &[],
            ));
        }
        (ExperimentPhase::Paused, _) => {
            row.status.schedule = Some(Box::new(status));
            return orchestration::save(engine, &row, Vec::new());
        }
        _ => {}
    }

    // Running: finish creations an interrupted pass recorded, then act on due fire times.
    for i in 0..status.history.len() {
        if status.history[i].uid.is_none() && status.history[i].error.is_none() {
            create_run(engine, children, &row, &spec, &mut status, i, &mut events).await;
        }
    }
    let anchor = status
        .last_scheduled_time
        .as_deref()
        .and_then(time::parse)
        .or_else(|| row.status.started_at.as_deref().and_then(time::parse))
        .unwrap_or(now);
    let (times, more) = cron.fire_times(anchor, now, MAX_CATCH_UP);
    if let Some(&latest) = times.last() {
        let in_time = spec
            .starting_deadline_seconds
            .is_none_or(|secs| (now - latest).num_seconds() <= secs);
        let mut missed: Vec<DateTime<Utc>> = times[..times.len() - 1].to_vec();
        if !in_time {
            missed.push(latest);
        }
        if !missed.is_empty() || more {
            events.push(missed_event(&row, &spec, &missed, more));
            status.missed += missed.len() as u64;
        }
        // Stored with the new run's intent in one write, before the run is created.
        status.last_scheduled_time = Some(time::format(latest));
        if in_time {
            let forbid = spec.concurrency_policy == ConcurrencyPolicy::Forbid;
            let active: Vec<String> = status
                .history
                .iter()
                .filter(|r| r.phase.is_none_or(|p| !p.is_terminal()))
                .map(|r| r.name.clone())
                .collect();
            if forbid && !active.is_empty() {
                status.skipped += 1;
                events.push(event(
                    &row,
                    events::SCHEDULE_SKIPPED,
                    format!(
                        "run due at {} skipped: concurrencyPolicy is Forbid and {} is still active",
                        time::format(latest),
                        active.join(", ")
                    ),
                    &[("chaoshub.schedule.time", time::format(latest))],
                ));
            } else {
                status.history.push(ScheduleRun {
                    scheduled_time: time::format(latest),
                    name: format!("{}-{}", row.name, latest.timestamp()),
                    uid: None,
                    phase: None,
                    error: None,
                });
                row.status.schedule = Some(Box::new(status.clone()));
                orchestration::save(engine, &row, std::mem::take(&mut events))?;
                let i = status.history.len() - 1;
                create_run(engine, children, &row, &spec, &mut status, i, &mut events).await;
            }
        }
    }
    prune_history(engine, &row, &spec, &mut status)?;
    // The next fire time follows the previous one (or, before the first, the schedule's start),
    // never the time of this pass: a pass between fires (a run ending, a resync) must not move
    // an `@every` grid, and a fire time Forbid skipped stays skipped. Every fire time up to
    // `now` was handled above, so this one is in the future (unless the catch-up was capped,
    // and then the next pass goes on catching up at once).
    let anchor = status
        .last_scheduled_time
        .as_deref()
        .and_then(time::parse)
        .unwrap_or(anchor);
    status.next_scheduled_time = cron.next_after(anchor).map(time::format);
    row.status.schedule = Some(Box::new(status));
    orchestration::save(engine, &row, events)
}

/// Creates (or finds) the run recorded at `history[i]` and records the outcome.
async fn create_run(
    engine: &Engine,
    children: &dyn Children,
    row: &ExperimentRow,
    spec: &ScheduleSpec,
    status: &mut ScheduleStatus,
    i: usize,
    events: &mut Vec<NewEvent>,
) {
    let run = status.history[i].clone();
    let (kind, field) = if spec.schedule_type == ScheduleType::Workflow {
        ("Workflow".to_string(), "workflow".to_string())
    } else {
        let kind = spec.type_name();
        let field = orchestration::embedded_field(&kind);
        (kind, field)
    };
    let child_spec = row.spec.get(&field).cloned().unwrap_or(Value::Null);
    let result = orchestration::create_child(
        engine,
        children,
        row,
        ChildRequest {
            name: &run.name,
            kind: &kind,
            spec: child_spec,
            annotations: vec![(
                orchestration::SCHEDULED_TIME_ANNOTATION,
                run.scheduled_time.clone(),
            )],
        },
    )
    .await;
    let attrs = [
        ("chaoshub.schedule.time", run.scheduled_time.clone()),
        ("chaoshub.schedule.run", run.name.clone()),
    ];
    match result {
        Ok(uid) => {
            status.history[i].uid = Some(uid);
            status.history[i].phase = Some(ExperimentPhase::Pending);
            events.push(event(
                row,
                events::SCHEDULE_FIRED,
                format!("run {} created for {}", run.name, run.scheduled_time),
                &attrs,
            ));
        }
        Err(reason) => {
            status.history[i].error = Some(reason.clone());
            events.push(event(
                row,
                events::SCHEDULE_RUN_FAILED,
                format!(
                    "run {} for {} could not be created: {reason}",
                    run.name, run.scheduled_time
                ),
                &attrs,
            ));
        }
    }
}

fn missed_event(
    row: &ExperimentRow,
    spec: &ScheduleSpec,
    missed: &[DateTime<Utc>],
    more: bool,
) -> NewEvent {
    let listed: Vec<String> = missed
        .iter()
        .take(LISTED_MISSES)
        .map(|t| time::format(*t))
        .collect();
    let rest = missed.len().saturating_sub(LISTED_MISSES);
    let why = match spec.starting_deadline_seconds {
        Some(secs) => format!(
            "more than startingDeadlineSeconds ({secs} s) late, or superseded by a later run"
        ),
        None => "superseded by a later run".to_string(),
    };
    let mut message = format!(
        "missed {} run(s) while the hub was not running them ({why}): {}",
        missed.len(),
        listed.join(", ")
    );
    if rest > 0 {
        message.push_str(&format!(" and {rest} more"));
    }
    if more {
        message.push_str(&format!(
            " (and more than {MAX_CATCH_UP} further fire times not examined)"
        ));
    }
    let mut attrs = vec![("chaoshub.schedule.missed", missed.len().to_string())];
    if let (Some(first), Some(last)) = (missed.first(), missed.last()) {
        attrs.push(("chaoshub.schedule.missed.first", time::format(*first)));
        attrs.push(("chaoshub.schedule.missed.last", time::format(*last)));
    }
    event(row, events::SCHEDULE_MISSED, message, &attrs)
}

/// Updates each run's phase from its experiment.
fn refresh_history(engine: &Engine, status: &mut ScheduleStatus) -> Result<(), StoreError> {
    for run in &mut status.history {
        if let Some(uid) = &run.uid {
            if run.phase.is_some_and(|p| p.is_terminal()) {
                continue;
            }
            run.phase = Some(match engine.store().get_experiment(uid)? {
                Some(child) => child.status.phase,
                // Deleted from under us: nothing of it is active any more.
                None => ExperimentPhase::Aborted,
            });
        }
    }
    Ok(())
}

/// Archives the oldest finished runs beyond `historyLimit`. Active runs are never pruned.
fn prune_history(
    engine: &Engine,
    row: &ExperimentRow,
    spec: &ScheduleSpec,
    status: &mut ScheduleStatus,
) -> Result<(), StoreError> {
    let limit = spec
        .history_limit
        .map_or(DEFAULT_HISTORY_LIMIT, |l| l.max(1) as usize);
    while status.history.len() > limit {
        let Some(i) = status
            .history
            .iter()
            .position(|r| r.error.is_some() || r.phase.is_some_and(|p| p.is_terminal()))
        else {
            break;
        };
        let run = status.history.remove(i);
        if let Some(uid) = &run.uid {
            if let Some(child) = engine.store().get_experiment(uid)? {
                if !child.status.archived {
                    let ev = crate::events::experiment_event(
                        &child,
                        events::EXPERIMENT_ARCHIVED,
                        format!(
                            "archived: beyond the history limit ({limit}) of schedule {}",
                            row.name
                        ),
                    );
                    let records = engine.store().set_archived(uid, &[ev])?;
                    engine.publish(records);
                }
            }
        }
    }
    Ok(())
}

/// Stops every run, then ends the schedule `Aborted` once none is active.
fn stop(
    engine: &Arc<Engine>,
    row: &mut ExperimentRow,
    mut status: ScheduleStatus,
    why: &str,
) -> Result<(), StoreError> {
    let uids = run_uids(&status);
    orchestration::steer_children(
        engine,
        &uids,
        DesiredState::Stop,
        &format!("its schedule stopped: {why}"),
    )?;
    status.next_scheduled_time = None;
    let mut events = Vec::new();
    if orchestration::any_live(engine, &uids)? {
        if row.status.phase != ExperimentPhase::Recovering {
            row.status.phase = ExperimentPhase::Recovering;
            row.status.next_phase = Some(ExperimentPhase::Aborted);
            row.status.reason = Some(why.to_string());
            events.push(event(
                row,
                events::EXPERIMENT_RECOVERING,
                format!("stopping every run: {why}"),
                &[],
            ));
        }
        row.status.schedule = Some(Box::new(status));
        return orchestration::save(engine, row, events);
    }
    let next = row
        .status
        .next_phase
        .take()
        .unwrap_or(ExperimentPhase::Aborted);
    row.status.phase = next;
    row.status.reason = Some(why.to_string());
    row.status.ended_at = Some(time::format(engine.now()));
    row.status.schedule = Some(Box::new(status));
    events.push(event(
        row,
        events::EXPERIMENT_ABORTED,
        format!("aborted: {why}"),
        &[],
    ));
    orchestration::save(engine, row, events)
}

fn fail(engine: &Engine, row: &mut ExperimentRow, reason: String) -> Result<(), StoreError> {
    row.status.phase = ExperimentPhase::Failed;
    row.status.reason = Some(reason.clone());
    row.status.ended_at = Some(time::format(engine.now()));
    let ev = event(
        row,
        events::EXPERIMENT_FAILED,
        format!("failed: {reason}"),
        &[],
    );
    orchestration::save(engine, row, vec![ev])
}
