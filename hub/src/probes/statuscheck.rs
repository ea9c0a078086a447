//! Chaos Mesh `StatusCheck`: the check itself ([`run_status_check`], shared with workflow
//! StatusCheck nodes) and StatusCheck manifests submitted alone as experiments.
//!
//! A StatusCheck experiment injects nothing: it is stored like any experiment (environment
//! `hub`, no targets), goes `Running` when the engine picks it up, and a task in the hub runs
//! the check; it ends `Finished` when the check succeeds and `Failed` with the check's reason
//! when it fails. A stop ends it `Aborted` through the engine's usual path (there is nothing to
//! recover). After a hub restart a `Running` StatusCheck is started again from the beginning.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chaoshub_schema::api::{DesiredState, ExperimentPhase};
use chaoshub_schema::chaosmesh::status_check::{
    HTTPRequestMethod, HTTPStatusCheck, StatusCheckMode, StatusCheckSpec,
};
use chaoshub_schema::duration::parse_duration;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::events::{self, experiment_event};
use crate::store::{ExperimentRow, StoreError};

/// The pseudo-environment StatusCheck experiments are recorded in: the check runs in the hub.
pub const HUB_ENVIRONMENT: &str = "hub";

/// One HTTP request of a status check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// Status code and timing, or the error.
    pub detail: String,
}

/// The verdict of a status check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCheckOutcome {
    pub succeeded: bool,
    /// Why it ended: thresholds reached, duration over, cancelled; with the last evidence.
    pub reason: String,
    /// The most recent requests, at most `recordsHistoryLimit` of them, oldest first.
    pub records: Vec<ProbeRecord>,
}

/// Runs a Chaos Mesh StatusCheck (`spec.http` with `criteria.statusCode`) to its verdict.
///
/// One request every `intervalSeconds` (the first at once), each bounded by
/// `timeoutSeconds`. A request succeeds when it gets an answer whose status matches
/// `criteria.statusCode` (`"200"` or `"200-399"`).
/// - `Synchronous` (the default, as in Chaos Mesh): succeeds after `successThreshold`
///   consecutive successes, fails after `failureThreshold` consecutive failures; if
///   `duration` runs out before either, it fails ("no verdict within the duration").
/// - `Continuous`: runs for `duration` and succeeds at its end; fails as soon as
///   `failureThreshold` consecutive failures happen. Without a duration it runs until
///   cancelled or failed.
///
/// `cancel`: send `true` (or drop the sender) to end the check early; it then returns
/// `succeeded: false` with reason `cancelled`. Never panics; a malformed spec (it is validated
/// on submission) gives a failed outcome naming the problem.
pub async fn run_status_check(
    spec: &StatusCheckSpec,
    mut cancel: watch::Receiver<bool>,
) -> StatusCheckOutcome {
    let mut records: Vec<ProbeRecord> = Vec::new();
    let limit = spec.records_history_limit.clamp(1, 1000) as usize;
    let fail = |reason: String, records: Vec<ProbeRecord>| StatusCheckOutcome {
        succeeded: false,
        reason,
        records,
    };
    let Some(http) = &spec.http else {
        return fail("the StatusCheck has no http section".into(), records);
    };
    let Some((lo, hi)) = status_range(&http.criteria.status_code) else {
        return fail(
            format!(
                "criteria.statusCode {:?} is not a code or a range",
                http.criteria.status_code
            ),
            records,
        );
    };
    let duration = match spec.duration.as_deref().map(parse_duration).transpose() {
        Ok(d) => d,
        Err(e) => return fail(format!("duration: {e}"), records),
    };
    let mode = spec.mode.unwrap_or(StatusCheckMode::Synchronous);
    let interval = Duration::from_secs(spec.interval_seconds.max(1) as u64);
    let timeout = Duration::from_secs(spec.timeout_seconds.max(1) as u64);
    let success_threshold = spec.success_threshold.max(1) as u64;
    let failure_threshold = spec.failure_threshold.max(1) as u64;
    let ends_at = duration.map(|d| tokio::time::Instant::now() + d);
    let (mut successes, mut failures) = (0u64, 0u64);
    loop {
        if *cancel.borrow() {
            return fail("cancelled".into(), records);
        }
        let record = request_once(http, lo, hi, timeout).await;
        if record.ok {
            successes += 1;
            failures = 0;
        } else {
            failures += 1;
            successes = 0;
        }
        let detail = record.detail.clone();
        records.push(record);
        if records.len() > limit {
            records.remove(0);
        }
        if failures >= failure_threshold {
            return fail(
                format!("{failures} consecutive failure(s) (failureThreshold {failure_threshold}); last: {detail}"),
                records,
            );
        }
        if mode == StatusCheckMode::Synchronous && successes >= success_threshold {
            return StatusCheckOutcome {
                succeeded: true,
                reason: format!("{successes} consecutive success(es) (successThreshold {success_threshold}); last: {detail}"),
                records,
            };
        }
        let now = tokio::time::Instant::now();
        let wake = match ends_at {
            Some(end) if end <= now => {
                return match mode {
                    StatusCheckMode::Continuous => StatusCheckOutcome {
                        succeeded: true,
                        reason: format!("the duration ended without {failure_threshold} consecutive failure(s); last: {detail}"),
                        records,
                    },
                    StatusCheckMode::Synchronous => fail(
                        format!("no verdict within the duration ({successes} consecutive success(es) of {success_threshold} needed); last: {detail}"),
                        records,
                    ),
                };
            }
            Some(end) => (now + interval).min(end),
            None => now + interval,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            changed = cancel.changed() => {
                if changed.is_err() || *cancel.borrow() {
                    return fail("cancelled".into(), records);
                }
            }
        }
    }
}

fn status_range(text: &str) -> Option<(u16, u16)> {
    chaoshub_schema::probe::StatusExpectation::Text(text.to_string())
        .range()
        .ok()
}

async fn request_once(http: &HTTPStatusCheck, lo: u16, hi: u16, timeout: Duration) -> ProbeRecord {
    let at = Utc::now();
    let method = match http.method {
        HTTPRequestMethod::Get => reqwest::Method::GET,
        HTTPRequestMethod::Post => reqwest::Method::POST,
    };
    let mut request = super::http::client()
        .request(method.clone(), &http.url)
        .timeout(timeout);
    for (name, values) in &http.headers {
        for value in values {
            request = request.header(name, value);
        }
    }
    if let Some(body) = &http.body {
        request = request.body(body.clone());
    }
    let started = std::time::Instant::now();
    let (ok, detail) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let ok = (lo..=hi).contains(&status);
            let wanted = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            (
                ok,
                format!(
                    "{method} {} → {status} in {} ms (expected {wanted})",
                    http.url,
                    started.elapsed().as_millis()
                ),
            )
        }
        Err(e) if e.is_timeout() => (
            false,
            format!(
                "{method} {}: no answer within {} ms",
                http.url,
                timeout.as_millis()
            ),
        ),
        Err(e) => (false, format!("{method} {}: {e}", http.url)),
    };
    ProbeRecord { at, ok, detail }
}

// ---- StatusCheck experiments ----

/// StatusCheck experiments: the engine's lifecycle, started by running the check in the hub
/// instead of injecting anything.
pub struct StatusCheckController;

impl crate::engine::Controller for StatusCheckController {
    fn name(&self) -> &'static str {
        "statuscheck"
    }

    fn handles(&self, kind: &str) -> bool {
        kind == chaoshub_schema::Kind::StatusCheck.as_str()
    }

    fn due(&self, engine: &Engine, row: &ExperimentRow, now: DateTime<Utc>) -> crate::engine::Due {
        engine.lifecycle_due(row, now)
    }

    fn reconcile<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { engine.run_lifecycle(&row.uid, &StartCheck).await })
    }
}

/// The start step of a StatusCheck: mark it Running and start its check (also on resume).
struct StartCheck;

impl crate::engine::Start for StartCheck {
    fn start<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { start(engine, row) })
    }

    fn resume<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { start(engine, row) })
    }
}

/// Restarts the check of a Running StatusCheck experiment after a hub restart (a watcher).
pub struct StatusCheckRuns;

impl crate::engine::Watcher for StatusCheckRuns {
    fn name(&self) -> &'static str {
        "statuscheck-runs"
    }

    fn watch(&self, engine: &Arc<Engine>, row: &ExperimentRow) {
        ensure(engine, row);
    }
}

/// StatusCheck experiments whose check runs in this process. A process-wide set (uids are
/// unique) so the engine needs no extra state for the checks it starts.
static RUNNING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn running() -> std::sync::MutexGuard<'static, HashSet<String>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Engine hook for a StatusCheck experiment that should run (Pending, or Paused and resumed):
/// marks it Running and starts its check.
pub(crate) fn start(engine: &Arc<Engine>, row: &mut ExperimentRow) -> Result<(), StoreError> {
    let now = crate::time::now_rfc3339();
    row.status.phase = ExperimentPhase::Running;
    row.status.reason = None;
    row.status.deadline = None;
    row.status.remaining_ms = None;
    if row.status.started_at.is_none() {
        row.status.started_at = Some(now);
    }
    let ev = experiment_event(
        row,
        events::EXPERIMENT_RUNNING,
        "running: the status check runs in the hub",
    );
    let records = engine.store().update_status(&row.uid, &row.status, &[ev])?;
    engine.publish(records);
    ensure(engine, row);
    Ok(())
}

/// Starts the check of a Running StatusCheck experiment unless it already runs here.
pub(crate) fn ensure(engine: &Arc<Engine>, row: &ExperimentRow) {
    if row.kind != chaoshub_schema::Kind::StatusCheck.as_str()
        || row.status.phase != ExperimentPhase::Running
    {
        return;
    }
    if !running().insert(row.uid.clone()) {
        return;
    }
    let spec: StatusCheckSpec = match serde_json::from_value(row.spec.clone()) {
        Ok(s) => s,
        Err(e) => {
            running().remove(&row.uid);
            let _ = conclude(
                engine,
                &row.uid,
                false,
                format!("the stored StatusCheck no longer parses: {e}"),
            );
            return;
        }
    };
    let engine = Arc::clone(engine);
    let uid = row.uid.clone();
    tokio::spawn(async move {
        let (cancel, rx) = watch::channel(false);
        let check = run_status_check(&spec, rx);
        tokio::pin!(check);
        let outcome = loop {
            tokio::select! {
                outcome = &mut check => break Some(outcome),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    // A stop, a pause, or an archived row ends the check; the engine does
                    // the bookkeeping.
                    let live = matches!(
                        engine.store().get_experiment(&uid),
                        Ok(Some(r)) if r.status.phase == ExperimentPhase::Running
                            && r.status.desired == DesiredState::Run
                    );
                    if !live {
                        let _ = cancel.send(true);
                        break None;
                    }
                }
            }
        };
        if let Some(outcome) = outcome {
            if let Err(e) = conclude(&engine, &uid, outcome.succeeded, outcome.reason) {
                tracing::error!(experiment = %uid, error = %e, "cannot record the status check's verdict");
            }
        }
        running().remove(&uid);
    });
}

/// Ends a StatusCheck experiment with the check's verdict, unless a user got there first.
fn conclude(
    engine: &Arc<Engine>,
    uid: &str,
    succeeded: bool,
    reason: String,
) -> Result<(), StoreError> {
    let Some(mut row) = engine.store().get_experiment(uid)? else {
        return Ok(());
    };
    if row.status.phase != ExperimentPhase::Running || row.status.desired != DesiredState::Run {
        return Ok(());
    }
    let (phase, name, message) = if succeeded {
        (
            ExperimentPhase::Finished,
            events::EXPERIMENT_FINISHED,
            format!("finished: the status check succeeded: {reason}"),
        )
    } else {
        (
            ExperimentPhase::Failed,
            events::EXPERIMENT_FAILED,
            format!("failed: the status check failed: {reason}"),
        )
    };
    row.status.phase = phase;
    row.status.next_phase = None;
    row.status.reason = Some(if succeeded {
        format!("the status check succeeded: {reason}")
    } else {
        format!("the status check failed: {reason}")
    });
    row.status.ended_at = Some(crate::time::now_rfc3339());
    let ev = experiment_event(&row, name, message);
    let records = engine.store().update_status(uid, &row.status, &[ev])?;
    engine.publish(records);
    engine.wake();
    Ok(())
}
