//! The controller registry: every kind family's controller and every watcher, registered in
//! this one visible place (like `AdapterRegistry::builtin()` for adapters).
//!
//! To add a kind: write its controller (a type implementing [`crate::engine::Controller`], in
//! its own module) and add one `.controller(…)` line below, before the fault controller, which
//! takes every kind no other controller claims. The engine never names a kind; a test checks
//! that every kind of the schema has a controller.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::engine::{Controller, ControllerRegistry, Due, Engine, Inject};
use crate::orchestration::Children;
use crate::store::{ExperimentRow, StoreError};

/// Every controller and watcher of the hub. `children` is the port through which schedules
/// and workflows submit and find their child experiments.
pub fn builtin(children: Arc<dyn Children>) -> ControllerRegistry {
    ControllerRegistry::default()
        .controller(Arc::new(crate::schedule::ScheduleController::new(
            Arc::clone(&children),
        )))
        .controller(Arc::new(crate::workflow::WorkflowController::new(children)))
        .controller(Arc::new(crate::probes::statuscheck::StatusCheckController))
        .controller(Arc::new(FaultController))
        .watcher(Arc::new(crate::probes::stop::StopConditions))
        .watcher(Arc::new(crate::probes::statuscheck::StatusCheckRuns))
        .watcher(Arc::new(crate::engine::DriftWatches::new()))
}

/// Fault experiments: the engine's lifecycle with the inject/confirm start. It takes every kind
/// no controller before it claims, so it is registered last.
pub struct FaultController;

impl Controller for FaultController {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn handles(&self, _kind: &str) -> bool {
        true
    }

    fn due(&self, engine: &Engine, row: &ExperimentRow, now: DateTime<Utc>) -> Due {
        // A Running fault is also read back now and then (drift detection).
        engine
            .lifecycle_due(row, now)
            .earliest(engine.verification_due(row, now))
    }

    fn reconcile<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { engine.run_lifecycle(&row.uid, &Inject).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoChildren;

    impl Children for NoChildren {
        fn submit(
            &self,
            _manifest: serde_json::Value,
        ) -> BoxFuture<'_, Result<String, crate::orchestration::ChildError>> {
            Box::pin(async { Err(crate::orchestration::ChildError::Refused("none".into())) })
        }
    }

    #[test]
    fn every_kind_has_a_controller_and_orchestration_kinds_have_their_own() {
        let registry = builtin(Arc::new(NoChildren));
        for kind in chaoshub_schema::Kind::ALL {
            let controller = registry.for_kind(kind.as_str()).unwrap();
            let expected = match kind {
                chaoshub_schema::Kind::Schedule => "schedule",
                chaoshub_schema::Kind::Workflow => "workflow",
                chaoshub_schema::Kind::StatusCheck => "statuscheck",
                _ => "fault",
            };
            assert_eq!(controller.name(), expected, "{kind}");
        }
    }
}
