//! Stop conditions: probes evaluated while an experiment runs; the first one that fails (past
//! its `failureThreshold`) stops the experiment at once, as AWS FIS stop conditions and
//! Gremlin health checks do.
//!
//! They travel in the annotation `chaoshub.dev/stop-conditions` (a YAML or JSON list of
//! probes), so the manifest stays a valid Chaos Mesh object. While the experiment is
//! `Running`, a watcher task evaluates them every [`INTERVAL`]; on failure it records the
//! user-level intent *stop* with the reason `stop condition <name> failed: <evidence>` — the
//! same path as `POST …/stop` — so the engine removes the fault at once and the experiment
//! ends `Aborted` with that reason. The watcher only reads stored state and writes intent, so
//! the engine stays the only writer of lifecycle status; after a hub restart the engine's scan
//! starts the watchers of Running experiments again.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chaoshub_schema::api::{DesiredState, ExperimentPhase};
use chaoshub_schema::probe::{stop_conditions, ProbeSpec};

use super::{EnvironmentValues, ProbePolicy};
use crate::engine::Engine;
use crate::events::{self, experiment_event};
use crate::store::ExperimentRow;

/// Pause between two rounds of stop-condition checks.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Experiments with a watcher in this process (uids are unique, so one process-wide set).
static WATCHED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn watched() -> std::sync::MutexGuard<'static, HashSet<String>> {
    WATCHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The stop-condition watcher, registered in `crate::controllers::builtin`.
pub struct StopConditions;

impl crate::engine::Watcher for StopConditions {
    fn name(&self) -> &'static str {
        "stop-conditions"
    }

    fn watch(&self, engine: &Arc<Engine>, row: &ExperimentRow) {
        ensure(engine, row);
    }
}

/// Engine hook: every Running experiment with stop conditions gets one watcher. Cheap when
/// there is nothing to do; safe to call on every scan.
pub(crate) fn ensure(engine: &Arc<Engine>, row: &ExperimentRow) {
    if row.status.phase != ExperimentPhase::Running || row.status.desired != DesiredState::Run {
        return;
    }
    // Validated at submission; a stored annotation that no longer parses is ignored here
    // rather than stopping a running experiment for a reason the user cannot act on.
    let probes = match stop_conditions(&row.metadata.annotations) {
        Ok(p) if !p.is_empty() => p,
        _ => return,
    };
    if !watched().insert(row.uid.clone()) {
        return;
    }
    let engine = Arc::clone(engine);
    let uid = row.uid.clone();
    let environment = row.status.environment.clone();
    tokio::spawn(async move {
        watch(&engine, &uid, &environment, probes).await;
        watched().remove(&uid);
    });
}

fn still_running(engine: &Engine, uid: &str) -> bool {
    matches!(
        engine.store().get_experiment(uid),
        Ok(Some(r)) if r.status.phase == ExperimentPhase::Running
            && r.status.desired == DesiredState::Run
    )
}

async fn watch(engine: &Arc<Engine>, uid: &str, environment: &str, probes: Vec<ProbeSpec>) {
    let policy = ProbePolicy::new(engine.limits(), engine.endpoints());
    let values = match engine.store().get_environment(environment) {
        Ok(Some(env)) => EnvironmentValues::of(&env),
        _ => EnvironmentValues {
            name: environment.to_string(),
            ..Default::default()
        },
    };
    // Placeholders are filled once; a probe that cannot be filled is itself a failure to
    // report, since nothing would guard the experiment otherwise.
    let mut filled = Vec::new();
    for probe in &probes {
        match values.fill_probe(probe) {
            Ok(p) => filled.push(p),
            Err(e) => {
                request_stop(
                    engine,
                    uid,
                    &format!("stop condition {} cannot run: {e}", probe.name),
                );
                return;
            }
        }
    }
    let mut consecutive = vec![0u32; filled.len()];
    loop {
        if !still_running(engine, uid) {
            return;
        }
        let results = super::evaluate_all(&filled, &policy).await;
        if !still_running(engine, uid) {
            return;
        }
        for (i, result) in results.iter().enumerate() {
            if result.ok {
                consecutive[i] = 0;
                continue;
            }
            consecutive[i] += 1;
            tracing::info!(experiment = %uid, probe = %result.probe, detail = %result.detail, "stop condition check failed");
            if consecutive[i] >= filled[i].failure_threshold {
                let reason = format!("stop condition {} failed: {}", result.probe, result.detail);
                request_stop(engine, uid, &reason);
                return;
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Records the stop intent, exactly as a user's stop does, and asks for a pass now.
fn request_stop(engine: &Arc<Engine>, uid: &str, reason: &str) {
    let Ok(Some(row)) = engine.store().get_experiment(uid) else {
        return;
    };
    let ev = experiment_event(
        &row,
        events::EXPERIMENT_STOP_REQUESTED,
        format!("stop requested: {reason}"),
    );
    match engine
        .store()
        .set_desired(uid, DesiredState::Stop, Some(reason), &[ev])
    {
        Ok(records) => {
            engine.publish(records);
            engine.trigger(uid);
        }
        // A user's stop or a finished experiment got there first: nothing left to do.
        Err(e) => {
            tracing::debug!(experiment = %uid, error = %e, "stop condition could not stop the experiment")
        }
    }
}

/// Submission check: the stop-condition annotation parses as probes (400 with paths under
/// the annotation), this hub may run them, and the caller may submit them (403: command
/// probes are admin-only).
pub(crate) fn check_submission(
    manifest: &chaoshub_schema::Manifest,
    policy: &ProbePolicy,
) -> Result<(), crate::error::HubError> {
    let probes =
        stop_conditions(&manifest.metadata.annotations).map_err(crate::error::HubError::invalid)?;
    let mut errors = chaoshub_schema::ValidationErrors::new();
    let path = format!(
        "metadata.annotations[\"{}\"]",
        chaoshub_schema::probe::STOP_CONDITIONS_ANNOTATION
    );
    super::check_policy(&probes, &path, policy, &mut errors);
    errors
        .into_result()
        .map_err(crate::error::HubError::invalid)?;
    // Allowed on this hub; command probes are for admins only (docs/security.md).
    crate::auth::privileged::authorize_probes(&probes, &path)
}
