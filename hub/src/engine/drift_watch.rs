//! Drift noticed as it happens: where an adapter can watch a fault on the far side
//! (`Adapter::watches_drift`: the Kubernetes adapter's Chaos Mesh objects, through the API
//! server's watch), every `Injected` target of a Running experiment gets a watch task, and
//! when the far side announces a change the engine reads the experiment back at once
//! ([`Engine::verify_now`]) instead of at its next periodic check.
//!
//! The watch decides nothing: it only moves the periodic read-back (`verify.rs`) forward, so
//! the decision — `status` read back `Absent` or `Changed`, then `on_drift` — is taken in one
//! place, inside the experiment's pass, where it never races a stop, pause or the deadline.
//! A task ends once it fired, or once the experiment is no longer Running with that target
//! injected as it was, or once the engine stops (a stopped engine never acts on a store a
//! newer one owns); the watcher starts it again (idempotently) on the next scan.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoshub_schema::api::{DesiredState, ExperimentPhase, TargetPhase};

use super::{injection_of, lock, Engine, Watcher};
use crate::store::ExperimentRow;

/// How long one adapter watch runs before the task checks that it is still wanted. Bounds how
/// long a task outlives its experiment when nothing happens on the far side.
const WATCH_SPAN: Duration = Duration::from_secs(30);

/// The pause after a watch that failed (the far side unreachable, say) before the next one.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The drift watcher, registered in `crate::controllers::builtin`. Holds the injections being
/// watched (by injection id and injection count), so a scan starts each watch once.
#[derive(Default)]
pub struct DriftWatches {
    watching: Arc<Mutex<HashSet<(String, u32)>>>,
}

impl DriftWatches {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Watcher for DriftWatches {
    fn name(&self) -> &'static str {
        "drift-watch"
    }

    fn watch(&self, engine: &Arc<Engine>, row: &ExperimentRow) {
        if row.status.phase != ExperimentPhase::Running || row.status.desired != DesiredState::Run {
            return;
        }
        let wanted: Vec<usize> = {
            let watching = lock(&self.watching);
            row.status
                .targets
                .iter()
                .enumerate()
                .filter(|(_, r)| r.phase == TargetPhase::Injected)
                .filter(|(_, r)| !watching.contains(&(r.injection_id.clone(), r.injections)))
                // Offered every Running row on every scan: the target's own adapter type (in
                // memory) rules out adapters that never watch before the store is read.
                .filter(|(_, r)| {
                    engine
                        .registry()
                        .get(&r.target.adapter)
                        .is_ok_and(|a| a.watches_drift(&injection_of(row, r)))
                })
                .map(|(i, _)| i)
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        let Ok((env, adapter)) = engine.environment(row) else {
            return;
        };
        for i in wanted {
            let record = &row.status.targets[i];
            let injection = injection_of(row, record);
            if !adapter.watches_drift(&injection) {
                continue;
            }
            let key = (record.injection_id.clone(), record.injections);
            if !lock(&self.watching).insert(key.clone()) {
                continue;
            }
            let engine = Arc::clone(engine);
            let adapter = Arc::clone(&adapter);
            let env = env.clone();
            let uid = row.uid.clone();
            let watching = Arc::clone(&self.watching);
            let mut stopped = engine.stopped.subscribe();
            tokio::spawn(async move {
                loop {
                    if *stopped.borrow() || !still_wanted(&engine, &uid, &key) {
                        break;
                    }
                    let watched = tokio::select! {
                        watched = tokio::time::timeout(WATCH_SPAN, adapter.watch_drift(&env, &injection)) => watched,
                        _ = stopped.changed() => break,
                    };
                    match watched {
                        Err(_) => continue,
                        Ok(Ok(what)) => {
                            // A re-injection or the experiment's end made the change: nothing
                            // to check for this injection any more.
                            if still_wanted(&engine, &uid, &key) {
                                tracing::info!(experiment = %uid, injection = %key.0, change = %what, "the far side announced a change: reading the fault back now");
                                engine.verify_now(&uid);
                            }
                            break;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(experiment = %uid, injection = %key.0, error = %e, "drift watch failed; watching again shortly");
                            tokio::time::sleep(RETRY_AFTER).await;
                        }
                    }
                }
                lock(&watching).remove(&key);
            });
        }
    }
}

/// Whether the experiment is still Running with this injection in place as it was watched.
fn still_wanted(engine: &Engine, uid: &str, key: &(String, u32)) -> bool {
    matches!(
        engine.store().get_experiment(uid),
        Ok(Some(r)) if r.status.phase == ExperimentPhase::Running
            && r.status.desired == DesiredState::Run
            && r.status.targets.iter().any(|t| t.phase == TargetPhase::Injected
                && t.injection_id == key.0
                && t.injections == key.1)
    )
}
