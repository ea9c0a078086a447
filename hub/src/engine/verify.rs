//! Drift detection: a Running experiment's faults are read back on a jittered interval
//! (`engine.verify_interval_ms`) and whenever an agent of its environment (re)connects, because
//! a fault can disappear behind the hub's back — someone deletes the toxic, the container is
//! restarted, the agent restarts with its journal gone. A target whose fault reads back as
//! absent gets a `chaoshub.target.drifted` event and the experiment's `status.drift` record,
//! then the policy (`engine.on_drift`, or the annotation [`ON_DRIFT_ANNOTATION`]) decides:
//! put it back for the time that remains (`reinject`, the default), end the experiment
//! `Failed` (`fail`), or leave it (`ignore`).
//!
//! Reads of one environment are capped (`engine.verify_reads_per_environment`), so many
//! Running experiments do not flood one far side; only `Absent` counts as drift — an
//! unreachable far side or a partial read-back says nothing certain and is only logged.
//! A re-injection records its intent (the target back to `Injecting`) before any adapter call,
//! so a crash in the middle leaves a target the next check puts back (or the deadline removes).

use std::sync::Arc;

use chaoshub_adapters::{FaultRequest, InjectionState};
use chaoshub_schema::api::{DesiredState, DriftStatus, ExperimentPhase, TargetPhase};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;

use super::{inject_and_confirm, injection_of, lock, stored_manifest, Due, Engine, InjectFailure};
use crate::config::OnDrift;
use crate::events::{self, target_event};
use crate::store::{ExperimentRow, StoreError};
use crate::telemetry::AdapterOp;
use crate::time;

/// Annotation choosing an experiment's drift policy: `reinject`, `fail` or `ignore`
/// (default: the hub's `engine.on_drift`).
pub const ON_DRIFT_ANNOTATION: &str = "chaoshub.dev/on-drift";

/// The drift policy of an experiment: its annotation, else `default`. An error says what the
/// annotation may hold (submission refuses it with a 400 at the annotation's path).
pub fn on_drift_of(
    annotations: &std::collections::BTreeMap<String, String>,
    default: OnDrift,
) -> Result<OnDrift, String> {
    match annotations.get(ON_DRIFT_ANNOTATION) {
        None => Ok(default),
        Some(text) => OnDrift::parse(text.trim())
            .ok_or_else(|| format!("{text:?} is not one of {}", OnDrift::NAMES)),
    }
}

impl Due {
    /// The earlier of two wishes (`Now` before any time, any time before `Idle`).
    pub fn earliest(self, other: Due) -> Due {
        match (self, other) {
            (Due::Now, _) | (_, Due::Now) => Due::Now,
            (Due::At(a), Due::At(b)) => Due::At(a.min(b)),
            (Due::At(a), Due::Idle) | (Due::Idle, Due::At(a)) => Due::At(a),
            (Due::Idle, Due::Idle) => Due::Idle,
        }
    }
}

impl Engine {
    /// When the next drift check of a Running experiment is due; `Idle` in any other phase, or
    /// when periodic reads are off and no agent reconnection asked for one.
    pub fn verification_due(&self, row: &ExperimentRow, now: DateTime<Utc>) -> Due {
        if row.status.phase != ExperimentPhase::Running || row.status.desired != DesiredState::Run {
            return Due::Idle;
        }
        let mut planned = lock(&self.verify_at);
        let at = match planned.get(&row.uid) {
            Some(at) => *at,
            None if self.config.verify_interval_ms == 0 => return Due::Idle,
            None => {
                let at = now + self.verify_period();
                planned.insert(row.uid.clone(), at);
                at
            }
        };
        Due::at(Some(at), now)
    }

    /// The interval, jittered by ±25 % so that experiments started together spread their reads.
    fn verify_period(&self) -> chrono::Duration {
        let base = self.config.verify_interval_ms.max(1) as f64;
        let jittered = base * rand::rng().random_range(0.75..=1.25);
        chrono::Duration::milliseconds(jittered as i64)
    }

    /// Schedules the next periodic check of `uid` (none when periodic reads are off).
    fn plan_next_verification(&self, uid: &str, now: DateTime<Utc>) {
        let mut planned = lock(&self.verify_at);
        if self.config.verify_interval_ms == 0 {
            planned.remove(uid);
        } else {
            planned.insert(uid.to_string(), now + self.verify_period());
        }
    }

    /// Asks for a drift check now of every Running experiment in `environment` (all of them
    /// for `None`): an agent there (re)connected and may have lost its faults.
    pub(crate) fn verify_soon(&self, environment: Option<&str>) {
        let rows = match self.store.active_experiments() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot list experiments to read back");
                return;
            }
        };
        let now = self.now();
        let mut planned = lock(&self.verify_at);
        for row in rows {
            if row.status.phase == ExperimentPhase::Running
                && environment.is_none_or(|env| row.status.environment == env)
            {
                planned.insert(row.uid, now);
            }
        }
    }

    /// Asks for a drift check of one experiment now: its adapter's watch announced a change on
    /// the far side (`drift_watch.rs`). The check itself runs inside the experiment's pass.
    pub(crate) fn verify_now(self: &Arc<Self>, uid: &str) {
        lock(&self.verify_at).insert(uid.to_string(), self.now());
        self.trigger(uid);
    }

    /// The semaphore capping drift-detection reads into one environment.
    fn verify_permits(&self, environment: &str) -> Arc<tokio::sync::Semaphore> {
        let mut map = lock(&self.verifying);
        Arc::clone(map.entry(environment.to_string()).or_insert_with(|| {
            Arc::new(tokio::sync::Semaphore::new(
                self.config.verify_reads_per_environment,
            ))
        }))
    }

    /// One drift check of a Running experiment: reads back every `Injected` target and applies
    /// the drift policy to those found gone. Returns whether the row changed.
    pub async fn verify_running(
        self: &Arc<Self>,
        row: &mut ExperimentRow,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        self.plan_next_verification(&row.uid, now);
        if row
            .status
            .deadline
            .as_deref()
            .and_then(time::parse)
            .is_some_and(|d| d <= now)
        {
            // Its end is the lifecycle's business, not a drift.
            return Ok(false);
        }
        let (env, adapter) = match self.environment(row) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(experiment = %row.uid, error = %e, "cannot read back the faults");
                return Ok(false);
            }
        };
        let policy = on_drift_of(&row.metadata.annotations, self.config.on_drift)
            .unwrap_or(self.config.on_drift);
        // A target left `Injecting` while Running is a re-injection a crash interrupted: it is
        // put back without a read (whatever may be there is removed first).
        let mut gone: Vec<usize> = row
            .status
            .targets
            .iter()
            .enumerate()
            .filter(|(_, r)| r.phase == TargetPhase::Injecting)
            .map(|(i, _)| i)
            .collect();
        let reads: Vec<(usize, chaoshub_adapters::Injection)> = row
            .status
            .targets
            .iter()
            .enumerate()
            .filter(|(_, r)| r.phase == TargetPhase::Injected)
            // An ignored drift is reported once, not at every check.
            .filter(|(_, r)| !(policy == OnDrift::Ignore && r.drifted_at.is_some()))
            .map(|(i, r)| (i, injection_of(row, r)))
            .collect();
        // Targets found there but changed by someone else, with what changed.
        let mut changed: std::collections::HashMap<usize, String> = Default::default();
        let permits = self.verify_permits(&env.name);
        let mut results = futures::stream::iter(reads.into_iter().map(|(i, injection)| {
            let adapter = Arc::clone(&adapter);
            let env = env.clone();
            let permits = Arc::clone(&permits);
            async move {
                let _permit = permits.acquire_owned().await;
                (i, adapter.status(&env, &injection).await)
            }
        }))
        .buffer_unordered(self.config.parallelism);
        while let Some((i, state)) = results.next().await {
            let target = &row.status.targets[i].target.name;
            match state {
                Ok(InjectionState::Active) => {}
                Ok(InjectionState::Absent) => gone.push(i),
                Ok(InjectionState::Changed(what)) => {
                    gone.push(i);
                    changed.insert(i, what);
                }
                Ok(InjectionState::Unknown(why)) => {
                    tracing::debug!(experiment = %row.uid, target = %target, reason = %why, "drift check inconclusive")
                }
                Err(e) => {
                    tracing::debug!(experiment = %row.uid, target = %target, error = %e, "drift check could not read the fault")
                }
            }
        }
        drop(results);
        if gone.is_empty() {
            return Ok(false);
        }
        gone.sort_unstable();
        self.on_drift(row, &gone, &changed, policy, now).await?;
        Ok(true)
    }

    /// Records the drift of `gone` targets (those in `changed` found there but changed by
    /// someone else, with what changed) and applies `policy`.
    async fn on_drift(
        self: &Arc<Self>,
        row: &mut ExperimentRow,
        gone: &[usize],
        changed: &std::collections::HashMap<usize, String>,
        policy: OnDrift,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = time::format(now);
        let names: Vec<String> = gone
            .iter()
            .map(|i| row.status.targets[*i].target.name.clone())
            .collect();
        let what = match policy {
            OnDrift::Reinject => "putting it back for the time that remains",
            OnDrift::Fail => "failing the experiment",
            OnDrift::Ignore => "leaving it as it is",
        };
        let mut evs = Vec::new();
        for i in gone {
            let record = &mut row.status.targets[*i];
            record.drifted_at = Some(at.clone());
            let interrupted = record.phase == TargetPhase::Injecting;
            let message = if interrupted {
                format!(
                    "a re-injection was interrupted (hub restart); {what} (on_drift: {policy})",
                    policy = policy.as_str()
                )
            } else if let Some(change) = changed.get(i) {
                format!(
                    "the fault was changed by someone else while Running ({change}); {what} \
                     (on_drift: {policy})",
                    policy = policy.as_str()
                )
            } else {
                format!(
                    "the fault was found gone while Running; {what} (on_drift: {policy})",
                    policy = policy.as_str()
                )
            };
            evs.push(target_event(
                row,
                &row.status.targets[*i],
                events::TARGET_DRIFTED,
                message,
            ));
        }
        let drift = row.status.drift.get_or_insert_with(DriftStatus::default);
        drift.drifts += gone.len() as u32;
        drift.on_drift = policy.as_str().to_string();
        drift.last_drift_at = Some(at.clone());
        drift.last_drift_target = names.last().cloned();
        let found = match gone.last().and_then(|i| changed.get(i)) {
            Some(change) => format!("changed by someone else ({change})"),
            None => "found gone".to_string(),
        };
        drift.last_drift_message = Some(format!("{found}; {what}"));
        tracing::warn!(experiment = %row.uid, targets = ?names, policy = policy.as_str(), "fault found gone while Running");
        match policy {
            OnDrift::Ignore => self.save(row, evs),
            OnDrift::Fail => {
                self.save(row, evs)?;
                let reason = if changed.is_empty() {
                    format!(
                        "drift: the fault was found gone from {} at {at} while Running \
                         (on_drift: fail)",
                        names.join(", ")
                    )
                } else {
                    format!(
                        "drift: the fault in {} was {found} at {at} while Running \
                         (on_drift: fail)",
                        names.join(", ")
                    )
                };
                self.recover(row, ExperimentPhase::Failed, &reason).await
            }
            OnDrift::Reinject => self.reinject(row, gone, evs).await,
        }
    }

    /// Puts the faults of `gone` targets back until the experiment's deadline, each read back
    /// in place; the experiment fails (everything removed) if one cannot be.
    async fn reinject(
        self: &Arc<Self>,
        row: &mut ExperimentRow,
        gone: &[usize],
        mut evs: Vec<crate::store::NewEvent>,
    ) -> Result<(), StoreError> {
        // A stop or pause may have arrived during the reads: then the lifecycle removes the
        // rest, and nothing is put back.
        let wanted = matches!(
            self.store.get_experiment(&row.uid)?,
            Some(fresh) if fresh.status.desired == DesiredState::Run
        );
        if !wanted {
            return self.save(row, evs);
        }
        let (env, adapter) = match self.environment(row) {
            Ok(x) => x,
            Err(reason) => {
                self.save(row, evs)?;
                let reason = format!("drift: the fault cannot be put back: {reason}");
                return self.recover(row, ExperimentPhase::Failed, &reason).await;
            }
        };
        let manifest = match stored_manifest(row) {
            Ok(m) => Arc::new(m),
            Err(reason) => {
                self.save(row, evs)?;
                return self
                    .recover(row, ExperimentPhase::Failed, &format!("drift: {reason}"))
                    .await;
            }
        };
        let deadline = row.status.deadline.as_deref().and_then(time::parse);
        // The reads may have outlasted the window: a fault whose time is over is not put back
        // (the lifecycle ends the experiment at its deadline), and its absence is no failure.
        if deadline.is_some_and(|d| d <= self.now()) {
            return self.save(row, evs);
        }
        // Intent first, as for the first injection.
        for i in gone {
            let record = &mut row.status.targets[*i];
            record.phase = TargetPhase::Injecting;
            record.error = None;
            record.injections += 1;
        }
        evs.push(events::experiment_event(
            row,
            events::EXPERIMENT_INJECTING,
            format!("re-injecting {} target(s) after drift", gone.len()),
        ));
        self.save(row, evs)?;
        self.ensure_leader()?;

        let confirm_timeout = std::time::Duration::from_millis(self.config.confirm_timeout_ms);
        let calls = self.telemetry.adapter_calls(row);
        let work: Vec<(usize, FaultRequest, chaoshub_adapters::Injection)> = gone
            .iter()
            .map(|i| {
                let record = &row.status.targets[*i];
                (
                    *i,
                    FaultRequest {
                        experiment_uid: row.uid.clone(),
                        injection_id: record.injection_id.clone(),
                        name: row.name.clone(),
                        namespace: row.namespace.clone(),
                        manifest: Arc::clone(&manifest),
                        actions: row.status.actions.clone(),
                        deadline,
                    },
                    injection_of(row, record),
                )
            })
            .collect();
        let mut results = futures::stream::iter(work.into_iter().map(|(i, fault, old)| {
            let adapter = Arc::clone(&adapter);
            let env = env.clone();
            let calls = calls.clone();
            async move {
                // Whatever is left of the old injection (a half-deleted pair of toxics) goes
                // first, so the new one is not refused as a duplicate.
                let call = calls.start(AdapterOp::Recover, &old.target, &old.injection_id);
                let cleared = adapter.recover(&env, &old).await;
                call.finish(cleared.as_ref().err().map(|e| e.to_string()).as_deref());
                let result = match cleared {
                    Ok(()) => {
                        let call = calls.start(AdapterOp::Inject, &old.target, &old.injection_id);
                        let result = inject_and_confirm(
                            adapter.as_ref(),
                            &env,
                            &fault,
                            &old.target,
                            confirm_timeout,
                        )
                        .await;
                        call.finish(result.as_ref().err().map(|f| f.error.as_str()));
                        result
                    }
                    Err(e) => Err(InjectFailure {
                        details: old.details.clone(),
                        error: format!("what remained could not be removed first: {e}"),
                        transient: false,
                    }),
                };
                (i, result)
            }
        }))
        .buffer_unordered(self.config.parallelism);
        let mut failures = Vec::new();
        while let Some((i, result)) = results.next().await {
            let record = &mut row.status.targets[i];
            let event = match result {
                Ok(details) => {
                    record.phase = TargetPhase::Injected;
                    record.details = details;
                    record.injected_at = Some(time::format(self.now()));
                    let drift = row.status.drift.get_or_insert_with(DriftStatus::default);
                    drift.reinjections += 1;
                    drift.last_drift_message =
                        Some("found gone; put back and read back in place".into());
                    target_event(
                        row,
                        &row.status.targets[i],
                        events::TARGET_REINJECTED,
                        "fault put back after drift and confirmed in place",
                    )
                }
                Err(InjectFailure { details, error, .. }) => {
                    if !details.is_null() {
                        record.details = details;
                    }
                    record.error = Some(error.clone());
                    failures.push(format!("{}: {error}", record.target.name));
                    target_event(
                        row,
                        &row.status.targets[i],
                        events::TARGET_FAILED,
                        format!("re-injection after drift failed: {error}"),
                    )
                }
            };
            self.save(row, vec![event])?;
        }
        drop(results);
        if failures.is_empty() {
            return Ok(());
        }
        if deadline.is_some_and(|d| d <= self.now()) {
            // The window closed while the fault was being put back (an agent refuses a lease
            // that ends in the past): nothing is owed any more, so this is no failure; the
            // lifecycle removes whatever is there and ends the experiment.
            tracing::info!(experiment = %row.uid, failures = ?failures, "re-injection after drift ran into the deadline; the experiment ends as planned");
            return Ok(());
        }
        let reason = format!(
            "drift: the fault was found gone and could not be put back ({})",
            failures.join("; ")
        );
        if let Some(drift) = row.status.drift.as_mut() {
            drift.last_drift_message = Some("found gone; putting it back failed".into());
        }
        self.recover(row, ExperimentPhase::Failed, &reason).await
    }
}
