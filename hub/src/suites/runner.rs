//! Running a planned suite: cases with bounded concurrency, the steady-state hypothesis checked
//! before, during and after each fault, and the verdict per expectation.
//!
//! The runner steers experiments only through the hub's operations (`submit`, `stop`) and
//! reads them back from the store, like any API client; the engine owns their lifecycle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaoshub_schema::api::{EventRecord, ExperimentPhase};
use chaoshub_schema::duration::{format_duration, parse_duration};
use chaoshub_schema::probe::{ProbeResult, ProbeSpec, STOP_CONDITIONS_ANNOTATION};
use chaoshub_schema::suite::{
    CaseExperiment, CaseOutcome, Expectation, SuiteLogLine, SuiteRun, SuiteRunPhase,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{CasePlan, SuitePlan};
use crate::operations::{Hub, Submitted};
use crate::store::{ExperimentRow, StoreError};

/// How long a stopped experiment may take to reach a terminal phase before the case gives up
/// waiting (the engine keeps recovering it regardless).
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Wakes a waiting runner as soon as the engine stores an event of the experiment it follows,
/// or another replica commits a change (on a shared store the leader's engine writes the
/// experiment's events, which this replica's broadcast never carries), instead of on a polling
/// tick. Wake-ups are only that: the runner reads the experiment from the store after every
/// one (and after a lagged receiver), so none can be missed or misread. Take it before the
/// first read of the row, so no change falls between the read and the wait.
pub(crate) struct ExperimentWatch {
    events: broadcast::Receiver<EventRecord>,
    external: tokio::sync::watch::Receiver<u64>,
}

impl ExperimentWatch {
    /// Returns when an event of experiment `uid` is stored, another replica changes the store,
    /// or `limit` has passed.
    pub async fn changed(&mut self, uid: &str, limit: Duration) {
        let local = async {
            loop {
                match self.events.recv().await {
                    Ok(event) if event.experiment_uid.as_deref() == Some(uid) => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    // The engine is gone (the hub is stopping): only the limit ends the wait.
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        let external = async {
            if self.external.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let _ = tokio::time::timeout(limit, async {
            tokio::select! {
                _ = local => {}
                _ = external => {}
            }
        })
        .await;
    }
}

/// What a case ended with.
pub(crate) type Verdict = (CaseOutcome, String);

/// How a case with a `thresholdSearch` is run (`super::threshold::run`). The search drives the
/// runner's steps, so it is handed in by the caller rather than named here: the runner stays
/// below it in the module graph.
pub(crate) type Search =
    for<'a> fn(&'a SuiteRunner, &'a SuitePlan, &'a CasePlan) -> BoxFuture<'a, Verdict>;

#[derive(Clone)]
pub(crate) struct SuiteRunner {
    pub hub: Hub,
    run: Arc<Mutex<SuiteRun>>,
    search: Search,
    /// Set when the store refused a journal write because another replica took the run over
    /// (this process was frozen or cut off past its liveness lease): the runner starts nothing
    /// more and leaves the run to its new owner.
    abandoned: Arc<AtomicBool>,
}

/// Which steady-state list a probe result belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Before,
    During,
    After,
}

fn lock(run: &Mutex<SuiteRun>) -> std::sync::MutexGuard<'_, SuiteRun> {
    run.lock().unwrap_or_else(|p| p.into_inner())
}

fn duration_or(text: &str, fallback: Duration) -> Duration {
    parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(fallback)
}

/// `probe name: detail` of every failed result.
pub(crate) fn evidence(results: &[ProbeResult]) -> String {
    results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("probe {}: {}", r.probe, r.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Consecutive-failure counters against each probe's tolerance (`failureThreshold`).
pub(crate) struct Tolerance {
    thresholds: Vec<u32>,
    consecutive: Vec<u32>,
}

impl Tolerance {
    pub fn new(probes: &[ProbeSpec]) -> Self {
        Tolerance {
            thresholds: probes.iter().map(|p| p.failure_threshold.max(1)).collect(),
            consecutive: vec![0; probes.len()],
        }
    }

    /// Counts one round; returns the evidence when a probe has now failed past its tolerance.
    pub fn observe(&mut self, results: &[ProbeResult]) -> Option<String> {
        let mut broken = Vec::new();
        for (i, r) in results.iter().enumerate() {
            if r.ok {
                self.consecutive[i] = 0;
            } else {
                self.consecutive[i] += 1;
                if self.consecutive[i] >= self.thresholds[i] {
                    broken.push(format!(
                        "probe {} failed {} time(s) in a row (tolerance {}): {}",
                        r.probe, self.consecutive[i], self.thresholds[i], r.detail
                    ));
                }
            }
        }
        (!broken.is_empty()).then(|| broken.join("; "))
    }
}

impl SuiteRunner {
    pub fn new(hub: Hub, run: SuiteRun, search: Search) -> Self {
        SuiteRunner {
            hub,
            run: Arc::new(Mutex::new(run)),
            search,
            abandoned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Changes the journal and stores it (a failed write is logged: the run goes on, and the
    /// next write carries the change).
    pub fn update(&self, change: impl FnOnce(&mut SuiteRun)) {
        let snapshot = {
            let mut run = lock(&self.run);
            change(&mut run);
            run.recount();
            run.clone()
        };
        match self.hub.engine.store().put_suite_run(&snapshot) {
            Ok(()) => {}
            Err(StoreError::Fenced(why)) => {
                if !self.abandoned.swap(true, Ordering::SeqCst) {
                    tracing::warn!(run = %snapshot.id, reason = %why, "this replica no longer owns the suite run: it starts nothing more and leaves the run to its new owner");
                }
            }
            Err(e) => {
                tracing::error!(run = %snapshot.id, error = %e, "cannot store the suite run journal")
            }
        }
    }

    /// Whether another replica has taken the run over (see the field).
    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    pub fn log(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(message = %message, "suite");
        self.update(|run| {
            run.log.push(SuiteLogLine {
                at: crate::time::now_rfc3339(),
                message,
            })
        });
        self.announce(crate::events::SUITE_PROGRESS, None);
    }

    /// Stores a suite event (what `chaoshub run` follows on the event stream); a failed write
    /// is logged: followers still read the journal when the run ends.
    fn announce(&self, name: &str, phase: Option<&str>) {
        let event = crate::events::suite_event(name, &self.run_id(), phase);
        if let Err(e) = self.hub.engine.record(&[event]) {
            tracing::error!(error = %e, "cannot store a suite event");
        }
    }

    fn run_id(&self) -> String {
        lock(&self.run).id.clone()
    }

    pub fn record_probes(&self, index: usize, stage: Stage, results: &[ProbeResult]) {
        self.update(|run| {
            let ss = &mut run.cases[index].steady_state;
            let list = match stage {
                Stage::Before => &mut ss.before,
                Stage::During => &mut ss.during,
                Stage::After => &mut ss.after,
            };
            list.extend_from_slice(results);
        });
    }

    /// Runs every case not yet done and ends the run. A run taken over from another replica
    /// comes here with its finished cases kept; its clock counts from the run's creation.
    pub async fn run(self, plan: SuitePlan) {
        let created = lock(&self.run).created_at.clone();
        let age = chrono::DateTime::parse_from_rfc3339(&created)
            .ok()
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .unwrap_or_default();
        let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let suite_budget = plan
            .spec
            .timeouts
            .suite
            .as_deref()
            .and_then(|s| parse_duration(s).ok());
        let concurrency = plan.spec.concurrency.max(1) as usize;
        let cases: Vec<CasePlan> = {
            let run = lock(&self.run);
            plan.cases
                .iter()
                .filter(|c| !run.cases[c.index].outcome.is_done())
                .cloned()
                .collect()
        };
        futures::stream::iter(cases.into_iter().map(|case| {
            let runner = self.clone();
            let plan = &plan;
            async move {
                if runner.abandoned() {
                    return;
                }
                if suite_budget.is_some_and(|b| started.elapsed() >= b) {
                    runner.update(|run| {
                        let c = &mut run.cases[case.index];
                        c.outcome = CaseOutcome::Skipped;
                        c.message =
                            Some("not started: the suite's time (timeouts.suite) ran out".into());
                    });
                    return;
                }
                runner.run_case(plan, &case).await;
            }
        }))
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
        if self.abandoned() {
            return;
        }
        let (passed, summary) = {
            let run = lock(&self.run);
            let s = run.summary.clone();
            (s.failed == 0 && s.errors == 0, s)
        };
        self.log(format!(
            "suite {}: {} passed, {} failed, {} error(s), {} skipped of {} case(s) in {}",
            plan.name,
            summary.passed,
            summary.failed,
            summary.errors,
            summary.skipped,
            summary.cases,
            format_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
        ));
        self.update(|run| {
            run.phase = if passed {
                SuiteRunPhase::Passed
            } else {
                SuiteRunPhase::Failed
            };
            run.ended_at = Some(crate::time::now_rfc3339());
            run.duration_ms = Some(started.elapsed().as_millis() as u64);
        });
        let phase = if passed { "Passed" } else { "Failed" };
        self.announce(crate::events::SUITE_FINISHED, Some(phase));
    }

    async fn run_case(&self, plan: &SuitePlan, case: &CasePlan) {
        let started = Instant::now();
        let label = format!("{} in {}", case.experiment.name, case.environment);
        self.update(|run| {
            let c = &mut run.cases[case.index];
            c.outcome = CaseOutcome::Running;
            c.started_at = Some(crate::time::now_rfc3339());
        });
        self.log(format!(
            "▶ {label}: started (expect {})",
            case.experiment.expect.as_str()
        ));
        let (outcome, message) = if let Some(why) = self.cannot_run(case).await {
            (CaseOutcome::Skipped, format!("skipped: {why}"))
        } else if case.experiment.threshold_search.is_some() {
            (self.search)(self, plan, case).await
        } else {
            self.fault_case(plan, case).await
        };
        let mark = match outcome {
            CaseOutcome::Passed => "✔ passed",
            CaseOutcome::Failed => "✘ failed",
            CaseOutcome::Error => "✘ error",
            CaseOutcome::Skipped => "↷",
            _ => "·",
        };
        self.log(format!("{mark}: {label}: {message}"));
        self.update(|run| {
            let c = &mut run.cases[case.index];
            c.outcome = outcome;
            c.message = Some(message);
            c.ended_at = Some(crate::time::now_rfc3339());
            c.duration_ms = Some(started.elapsed().as_millis() as u64);
        });
    }

    /// Evaluates the steady state; `Some(evidence)` when it does not hold.
    pub async fn check(
        &self,
        plan: &SuitePlan,
        case: &CasePlan,
        stage: Stage,
    ) -> (Vec<ProbeResult>, Option<String>) {
        let results = crate::probes::evaluate_all(&case.probes, &plan.policy).await;
        self.record_probes(case.index, stage, &results);
        let failed = results.iter().any(|r| !r.ok);
        let ev = failed.then(|| evidence(&results));
        (results, ev)
    }

    /// Checks the steady state until it holds or the recovery timeout ends.
    pub async fn wait_recovered(&self, plan: &SuitePlan, case: &CasePlan) -> Result<(), String> {
        if case.probes.is_empty() {
            return Ok(());
        }
        let window = duration_or(&plan.spec.timeouts.recovery, Duration::from_secs(30));
        let interval = self.interval(plan);
        let started = Instant::now();
        loop {
            let (_, failed) = self.check(plan, case, Stage::After).await;
            match failed {
                None => return Ok(()),
                Some(ev) if started.elapsed() >= window => {
                    return Err(format!(
                        "the steady state did not come back within {} after the fault was removed: {ev}",
                        format_duration(window)
                    ))
                }
                Some(_) => tokio::time::sleep(interval).await,
            }
        }
    }

    pub fn interval(&self, plan: &SuitePlan) -> Duration {
        plan.spec
            .steady_state
            .as_ref()
            .map(|s| duration_or(&s.interval, Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(1))
    }

    /// Why the case's environment cannot run its fault at all, from a dry run of the case's
    /// manifest there: the adapter's declared capabilities and its own check of the manifest
    /// (the conformance matrix), so the case is skipped with that reason instead of ending in
    /// an error. Any other answer (a halt, a far side that does not answer, a manifest the
    /// threshold search fills in later) is left to the real submission.
    async fn cannot_run(&self, case: &CasePlan) -> Option<String> {
        match self
            .hub
            .submit(case.manifest.clone(), Some(&case.environment), true)
            .await
        {
            Err(e @ crate::error::HubError::Unsupported { .. }) => Some(e.to_string()),
            _ => None,
        }
    }

    pub fn case_timeout(&self, plan: &SuitePlan) -> Duration {
        duration_or(&plan.spec.timeouts.case, Duration::from_secs(600))
    }

    /// Submits the case's experiment (optionally with a manifest changed for a threshold
    /// step) through `Hub::submit`, named uniquely for this run.
    pub async fn start_experiment(
        &self,
        plan: &SuitePlan,
        case: &CasePlan,
        manifest: Value,
        step: Option<usize>,
        value: Option<f64>,
    ) -> Result<String, String> {
        if self.abandoned() {
            return Err("another replica has taken the suite run over".into());
        }
        let (run_id, takeovers) = {
            let run = lock(&self.run);
            (run.id.clone(), run.takeovers)
        };
        let mut manifest = manifest;
        // A case started again after a takeover gets new names: the first attempt's
        // experiments keep theirs.
        let attempt = match takeovers {
            0 => String::new(),
            n => format!("-t{n}"),
        };
        let suffix = match step {
            Some(s) => format!("{}-{}{attempt}-s{s}", &run_id[..8], case.index),
            None => format!("{}-{}{attempt}", &run_id[..8], case.index),
        };
        let stem: String = case
            .experiment
            .name
            .chars()
            .take(62 - suffix.len())
            .collect();
        let name = format!("{}-{suffix}", stem.trim_end_matches('-'));
        let meta = manifest
            .as_object_mut()
            .and_then(|m| {
                m.entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()))
                    .as_object_mut()
            })
            .ok_or("the manifest has no metadata object")?;
        meta.remove("generateName");
        meta.insert("name".into(), Value::String(name.clone()));
        if !meta.contains_key("namespace") {
            if let Some(ns) = &plan.namespace {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(
                "chaoshub.dev/suite".into(),
                Value::String(plan.name.clone()),
            );
            labels.insert(
                "chaoshub.dev/suite-run".into(),
                Value::String(run_id.clone()),
            );
        }
        if !case.stop_conditions.is_empty() {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(annotations) = annotations.as_object_mut() {
                // The suite's stop conditions join any the manifest already carries.
                let mut all: Vec<Value> = annotations
                    .get(STOP_CONDITIONS_ANNOTATION)
                    .and_then(Value::as_str)
                    .and_then(|t| chaoshub_schema::document::yaml_documents(t).ok())
                    .and_then(|docs| docs.into_iter().next())
                    .and_then(|v| match v {
                        Value::Array(items) => Some(items),
                        _ => None,
                    })
                    .unwrap_or_default();
                all.extend(
                    case.stop_conditions
                        .iter()
                        .filter_map(|p| serde_json::to_value(p).ok()),
                );
                annotations.insert(
                    STOP_CONDITIONS_ANNOTATION.into(),
                    Value::String(Value::Array(all).to_string()),
                );
            }
        }
        match self
            .hub
            .submit(manifest, Some(&case.environment), false)
            .await
        {
            Ok(Submitted::Created(object)) => {
                let uid = object.metadata.uid.clone().unwrap_or_default();
                self.update(|run| {
                    run.cases[case.index].experiments.push(CaseExperiment {
                        uid: uid.clone(),
                        name: name.clone(),
                        kind: object.kind.clone(),
                        phase: object.status.phase.as_str().into(),
                        reason: None,
                        started_at: None,
                        ended_at: None,
                        targets: Vec::new(),
                        value,
                    })
                });
                self.log(format!(
                    "  {} in {}: experiment {name} ({}) submitted",
                    case.experiment.name, case.environment, object.kind
                ));
                Ok(uid)
            }
            Ok(Submitted::DryRun(_)) => {
                Err("the hub answered with a plan, not an experiment".into())
            }
            Err(e) => {
                let details: Vec<String> = e
                    .body()
                    .details
                    .iter()
                    .map(|d| format!("{}: {}", d.path, d.message))
                    .collect();
                Err(if details.is_empty() {
                    format!("the hub refused the experiment ({}): {e}", e.code())
                } else {
                    format!(
                        "the hub refused the experiment ({}): {e}: {}",
                        e.code(),
                        details.join("; ")
                    )
                })
            }
        }
    }

    /// Uids of the experiments a case created, oldest first.
    pub fn experiment_uids(&self, case: &CasePlan) -> Vec<String> {
        lock(&self.run).cases[case.index]
            .experiments
            .iter()
            .map(|e| e.uid.clone())
            .collect()
    }

    pub fn experiment(&self, uid: &str) -> Option<ExperimentRow> {
        self.hub.engine.store().get_experiment(uid).ok().flatten()
    }

    /// Copies an experiment's current phase, reason and target records into the journal.
    pub fn refresh_experiment(&self, case: &CasePlan, row: &ExperimentRow) {
        self.update(|run| {
            if let Some(e) = run.cases[case.index]
                .experiments
                .iter_mut()
                .find(|e| e.uid == row.uid)
            {
                e.phase = row.status.phase.as_str().into();
                e.reason = row.status.reason.clone();
                e.started_at = row.status.started_at.clone();
                e.ended_at = row.status.ended_at.clone();
                e.targets = row.status.targets.clone();
            }
        });
    }

    /// Stops an experiment (the engine recovers it) and waits until it is terminal.
    pub async fn stop_and_wait(&self, uid: &str, reason: &str) -> Option<ExperimentRow> {
        if let Err(e) = self.hub.stop(uid, None, reason) {
            tracing::warn!(experiment = %uid, error = %e, "suite could not stop its experiment");
        }
        self.wait_terminal(uid, STOP_WAIT).await
    }

    /// Follows experiments' stored events (see [`ExperimentWatch`]).
    pub fn watch(&self) -> ExperimentWatch {
        ExperimentWatch {
            events: self.hub.engine.subscribe(),
            external: self.hub.engine.subscribe_external_changes(),
        }
    }

    pub async fn wait_terminal(&self, uid: &str, timeout: Duration) -> Option<ExperimentRow> {
        let mut watch = self.watch();
        let until = Instant::now() + timeout;
        loop {
            let row = self.experiment(uid)?;
            let left = until.saturating_duration_since(Instant::now());
            if row.status.phase.is_terminal() || left.is_zero() {
                return Some(row);
            }
            watch.changed(uid, left).await;
        }
    }

    /// One fault, the steady state checked around it, judged by the case's expectation.
    async fn fault_case(&self, plan: &SuitePlan, case: &CasePlan) -> Verdict {
        let started = Instant::now();
        let case_timeout = self.case_timeout(plan);
        let interval = self.interval(plan);
        let has_probes = !case.probes.is_empty();

        if has_probes {
            let (_, failed) = self.check(plan, case, Stage::Before).await;
            if let Some(ev) = failed {
                return (
                    CaseOutcome::Error,
                    format!("the steady state did not hold before the fault, so nothing was injected: {ev}"),
                );
            }
        }
        let uid = match self
            .start_experiment(plan, case, case.manifest.clone(), None, None)
            .await
        {
            Ok(uid) => uid,
            Err(e) => return (CaseOutcome::Error, e),
        };

        let mut tolerance = Tolerance::new(&case.probes);
        let mut deviation: Option<String> = None;
        let mut checks = 0usize;
        let mut timed_out = false;
        // Woken by the experiment's own events (Running, Recovering, Finished…), so the case
        // moves on the moment the fault ends rather than at the next check interval.
        let mut watch = self.watch();
        let mut next_check = Instant::now();
        let last = loop {
            let Some(row) = self.experiment(&uid) else {
                return (CaseOutcome::Error, format!("experiment {uid} disappeared"));
            };
            if row.status.phase.is_terminal() {
                break row;
            }
            if started.elapsed() >= case_timeout {
                timed_out = true;
                let reason = format!(
                    "suite case timed out after {}",
                    format_duration(case_timeout)
                );
                match self.stop_and_wait(&uid, &reason).await {
                    Some(row) => break row,
                    None => return (CaseOutcome::Error, reason),
                }
            }
            let mut wait = case_timeout.saturating_sub(started.elapsed());
            if row.status.phase == ExperimentPhase::Running && has_probes {
                if Instant::now() >= next_check {
                    let (results, _) = self.check(plan, case, Stage::During).await;
                    checks += 1;
                    if let Some(ev) = tolerance.observe(&results) {
                        if deviation.is_none() {
                            self.log(format!(
                                "  {} in {}: steady state deviated: {ev}",
                                case.experiment.name, case.environment
                            ));
                            deviation = Some(ev);
                        }
                    }
                    self.refresh_experiment(case, &row);
                    next_check = Instant::now() + interval;
                }
                wait = wait.min(next_check.saturating_duration_since(Instant::now()));
            }
            watch.changed(&uid, wait).await;
        };
        self.refresh_experiment(case, &last);
        let reason = last.status.reason.clone().unwrap_or_default();
        if timed_out {
            return (
                CaseOutcome::Error,
                format!(
                    "the case took longer than timeouts.case ({}); the experiment was stopped",
                    format_duration(case_timeout)
                ),
            );
        }
        match last.status.phase {
            ExperimentPhase::Failed => {
                return (
                    CaseOutcome::Error,
                    format!("the experiment failed: {reason}"),
                )
            }
            // A stop condition firing is the system breaking: evidence of a deviation.
            ExperimentPhase::Aborted if reason.starts_with("stop condition") => {
                deviation.get_or_insert_with(|| format!("the experiment was aborted: {reason}"));
            }
            ExperimentPhase::Aborted => {
                return (
                    CaseOutcome::Error,
                    format!("the experiment was aborted: {reason}"),
                )
            }
            _ => {}
        }

        let recovered = self.wait_recovered(plan, case).await;
        let expect = case.experiment.expect;
        match (expect, deviation, recovered) {
            (Expectation::Hold, Some(ev), _) => (
                CaseOutcome::Failed,
                format!("the steady state must hold, but it deviated during the fault: {ev}"),
            ),
            (_, _, Err(e)) => (CaseOutcome::Failed, e),
            (Expectation::Hold, None, Ok(())) if has_probes => (
                CaseOutcome::Passed,
                format!("the steady state held during the fault ({checks} check(s)) and after it"),
            ),
            (Expectation::Hold, None, Ok(())) => (
                CaseOutcome::Passed,
                "the fault ran and was removed (no steady-state probes)".into(),
            ),
            (Expectation::Deviate, None, Ok(())) => (
                CaseOutcome::Failed,
                format!("the steady state was expected to deviate during the fault, but it held ({checks} check(s))"),
            ),
            (Expectation::Deviate, Some(ev), Ok(())) => (
                CaseOutcome::Passed,
                format!("deviated as expected ({ev}) and came back after the fault"),
            ),
        }
    }
}
