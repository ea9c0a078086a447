//! Suites (docs/suites.md): experiments × environments with a steady-state hypothesis.
//!
//! `POST /api/v1/suites` checks the whole suite before anything runs — every environment
//! registered, every experiment a valid fault manifest in every environment it runs in (after
//! the environment's `{{ environment.… }}` values are filled in), templates rendered, probes
//! allowed — and answers 400 with field paths under `spec.` otherwise. It then stores a run
//! journal and starts the run in the background (`runner.rs`); the journal is rewritten on
//! every change, so `GET /api/v1/suites/runs/{id}` shows live progress.
//!
//! Experiments are submitted through `Hub::submit`, exactly as a user's would be: the same
//! capability checks, guardrails, halt switch and engine. A suite adds no fault path of its own.

pub mod http;
pub mod junit;
mod runner;
mod threshold;

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use chaoshub_schema::api::Page;
use chaoshub_schema::probe::ProbeSpec;
use chaoshub_schema::suite::{
    CaseOutcome, SteadyStateRecord, SuiteCase, SuiteExperiment, SuiteLogLine, SuiteRun,
    SuiteRunPhase, SuiteRunSummary, SuiteSpec, SuiteSummary,
};
use chaoshub_schema::template::RenderRequest;
use chaoshub_schema::{Kind, Spec, ValidationErrors};
use serde_json::Value;

use crate::error::HubError;
use crate::operations::Hub;
use crate::probes::{EnvironmentValues, ProbePolicy};

/// Runs under way in this process. A stored run still `Running` that is not in this set was
/// cut short by a hub restart; it is marked so when read.
static ACTIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn active() -> std::sync::MutexGuard<'static, HashSet<String>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// One experiment × environment, ready to run: placeholders filled, manifest validated.
#[derive(Debug, Clone)]
pub(crate) struct CasePlan {
    /// Index into the run's `cases`.
    pub index: usize,
    pub experiment: SuiteExperiment,
    pub environment: String,
    /// The experiment manifest for this environment (no `metadata.name` uniqueness yet).
    pub manifest: Value,
    /// Steady-state probes with this environment's values.
    pub probes: Vec<ProbeSpec>,
    pub stop_conditions: Vec<ProbeSpec>,
}

/// The whole checked suite.
#[derive(Debug, Clone)]
pub(crate) struct SuitePlan {
    pub name: String,
    pub namespace: Option<String>,
    pub spec: SuiteSpec,
    pub cases: Vec<CasePlan>,
    pub policy: ProbePolicy,
}

fn prefixed(errors: ValidationErrors, prefix: &str) -> ValidationErrors {
    let mut out = ValidationErrors::new();
    for e in errors.0 {
        let path = if e.path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", e.path)
        };
        out.push(path, e.message);
    }
    out
}

/// Sets a dotted path (`spec.delay.latency`) in a JSON object, creating objects on the way.
pub(crate) fn set_path(value: &mut Value, path: &str, new: Value) -> Result<(), String> {
    let mut current = value;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = current else {
            return Err(format!("{} is not an object", parts[..i].join(".")));
        };
        if i == parts.len() - 1 {
            map.insert(part.to_string(), new);
            return Ok(());
        }
        current = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Writes a threshold-search value as the manifest expects it.
pub(crate) fn parameter_value(value: f64, unit: Option<&str>) -> Value {
    let number = if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    match unit {
        Some(u) => Value::String(format!("{number}{u}")),
        None => serde_json::from_str(&number).unwrap_or(Value::Null),
    }
}

/// Checks a suite and plans its cases; every problem is reported at once, with its path.
pub(crate) fn plan(
    hub: &Hub,
    value: Value,
    env_filter: Option<&[String]>,
) -> Result<SuitePlan, HubError> {
    let manifest = chaoshub_schema::manifest_from_value(value).map_err(HubError::invalid)?;
    let Spec::Suite(spec) = &manifest.spec else {
        return Err(HubError::invalid_field(
            "kind",
            format!(
                "expected kind Suite (apiVersion chaoshub.dev/v1alpha1), got {}; experiments go to /api/v1/experiments",
                manifest.kind()
            ),
        ));
    };
    let spec = (**spec).clone();
    let name = manifest
        .metadata
        .name
        .clone()
        .ok_or_else(|| HubError::invalid_field("metadata.name", "is required for a Suite"))?;
    let policy = ProbePolicy::new(hub.engine.limits(), hub.engine.endpoints());
    let mut errors = ValidationErrors::new();

    // Environments: registered, and narrowed by ?env= when given.
    let store = hub.engine.store();
    let mut environments = Vec::new();
    for (i, env) in spec.environments.iter().enumerate() {
        match store.get_environment(env)? {
            Some(object) => {
                environments.push((env.clone(), EnvironmentValues::of(&object), object.spec))
            }
            None => errors.push(
                format!("spec.environments[{i}]"),
                format!("environment {env:?} is not registered"),
            ),
        }
    }
    if let Some(filter) = env_filter {
        for env in filter {
            if !spec.environments.contains(env) {
                errors.push(
                    "env",
                    format!(
                        "{env:?} is not one of the suite's environments ({})",
                        spec.environments.join(", ")
                    ),
                );
            }
        }
        environments.retain(|(name, _, _)| filter.contains(name));
    }

    let steady: Vec<ProbeSpec> = spec
        .steady_state
        .as_ref()
        .map(|s| s.probes.clone())
        .unwrap_or_default();
    crate::probes::check_policy(&steady, "spec.steadyState.probes", &policy, &mut errors);
    // The runner submits in the background, without the caller: everything a suite will ever
    // run is authorized here, before anything is stored (command probes and privileged faults).
    crate::auth::privileged::authorize_probes(&steady, "spec.steadyState.probes")?;

    let mut cases = Vec::new();
    for (i, exp) in spec.experiments.iter().enumerate() {
        let path = format!("spec.experiments[{i}]");
        crate::probes::check_policy(
            &exp.stop_conditions,
            &format!("{path}.stopConditions"),
            &policy,
            &mut errors,
        );
        crate::auth::privileged::authorize_probes(
            &exp.stop_conditions,
            &format!("{path}.stopConditions"),
        )?;
        let base = match base_manifest(hub, exp, &path) {
            Ok(v) => v,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        for (env_name, values, env_spec) in &environments {
            if !exp.environments.is_empty() && !exp.environments.contains(env_name) {
                continue;
            }
            let case_errors_before = errors.len();
            let mut manifest = base.clone();
            if let Err(e) = values.fill_value(&mut manifest) {
                errors.push(format!("{path} (environment {env_name})"), e.to_string());
                continue;
            }
            // A threshold search writes its parameter at every step; check it writes where the
            // kind expects it, with the first value.
            let mut checked = manifest.clone();
            if let Some(search) = &exp.threshold_search {
                if let Err(e) = set_path(
                    &mut checked,
                    &search.parameter,
                    parameter_value(search.from, search.unit.as_deref()),
                ) {
                    errors.push(format!("{path}.thresholdSearch.parameter"), e);
                    continue;
                }
            }
            let source = if exp.template.is_some() {
                format!("{path}.template")
            } else {
                format!("{path}.manifest")
            };
            match chaoshub_schema::manifest_from_value(checked) {
                Ok(m) if !m.kind().is_fault() || m.kind() == Kind::Suite => errors.push(
                    format!("{source}.kind"),
                    format!(
                        "a suite runs fault experiments; {} injects no fault",
                        m.kind()
                    ),
                ),
                Ok(m) => {
                    crate::auth::privileged::authorize_fault(&m, Some((env_name, env_spec)))
                        .map_err(|e| match e {
                            HubError::Forbidden { message } => HubError::Forbidden {
                                message: format!("{source} (environment {env_name}): {message}"),
                            },
                            other => other,
                        })?;
                }
                Err(e) => {
                    let prefix = match &exp.threshold_search {
                        Some(_) => format!(
                            "{source} (with thresholdSearch.from, in environment {env_name})"
                        ),
                        None if environments.len() > 1 => {
                            format!("{source} (in environment {env_name})")
                        }
                        None => source.clone(),
                    };
                    // Paths stay machine-readable: the environment note goes into the message.
                    for fe in e.0 {
                        let p = if fe.path.is_empty() {
                            source.clone()
                        } else {
                            format!("{source}.{}", fe.path)
                        };
                        errors.push(p, format!("{} ({prefix})", fe.message));
                    }
                }
            }
            let fill_all = |probes: &[ProbeSpec], at: &str, errors: &mut ValidationErrors| {
                probes
                    .iter()
                    .enumerate()
                    .filter_map(|(j, p)| match values.fill_probe(p) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            errors.push(
                                format!("{at}[{j}]"),
                                format!("in environment {env_name}: {e}"),
                            );
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            };
            let probes = fill_all(&steady, "spec.steadyState.probes", &mut errors);
            let stop_conditions = fill_all(
                &exp.stop_conditions,
                &format!("{path}.stopConditions"),
                &mut errors,
            );
            if errors.len() > case_errors_before {
                continue;
            }
            cases.push(CasePlan {
                index: cases.len(),
                experiment: exp.clone(),
                environment: env_name.clone(),
                manifest,
                probes,
                stop_conditions,
            });
        }
    }
    if errors.is_empty() && cases.is_empty() {
        errors.push(
            "spec.experiments",
            "no case to run: no experiment runs in the chosen environments",
        );
    }
    if !errors.is_empty() {
        let n = errors.len();
        return Err(HubError::Invalid {
            message: format!(
                "the suite is invalid: {n} problem{}",
                if n == 1 { "" } else { "s" }
            ),
            details: errors.0,
        });
    }
    Ok(SuitePlan {
        name,
        namespace: manifest.metadata.namespace.clone(),
        spec,
        cases,
        policy,
    })
}

/// The experiment manifest of a suite entry, before any environment's values.
fn base_manifest(hub: &Hub, exp: &SuiteExperiment, path: &str) -> Result<Value, ValidationErrors> {
    if let Some(m) = &exp.manifest {
        return match m {
            Value::Object(_) => Ok(m.clone()),
            _ => Err(ValidationErrors::single(
                format!("{path}.manifest"),
                "must be a manifest object (apiVersion, kind, metadata, spec)",
            )),
        };
    }
    if exp.file.is_some() {
        return Err(ValidationErrors::single(
            format!("{path}.file"),
            "file references are read by `chaoshub run` (relative to the suite file) and sent inline; the hub reads no files — send the manifest under `manifest`",
        ));
    }
    let Some(template) = &exp.template else {
        return Err(ValidationErrors::single(
            path,
            "needs one of manifest, file, template",
        ));
    };
    let request = RenderRequest {
        parameters: template.parameters.clone(),
        name: None,
        namespace: None,
        env: None,
        dry_run: false,
    };
    match hub.catalog.render(&template.name, &request) {
        Ok((manifest, _)) => Ok(manifest.to_value()),
        Err(HubError::NotFound { what }) => Err(ValidationErrors::single(
            format!("{path}.template.name"),
            format!("{what} not found in the catalog"),
        )),
        Err(HubError::Invalid { details, .. }) => Err(prefixed(
            ValidationErrors(details),
            &format!("{path}.template"),
        )),
        Err(other) => Err(ValidationErrors::single(
            format!("{path}.template"),
            other.to_string(),
        )),
    }
}

/// Checks, stores and starts a suite run; answers with the run's first journal.
pub async fn submit(
    hub: &Hub,
    value: Value,
    env_filter: Option<&[String]>,
) -> Result<SuiteRun, HubError> {
    let manifest_value = value.clone();
    let plan = plan(hub, value, env_filter)?;
    if let Some(halt) = halted(hub)? {
        return Err(halt);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = crate::time::now_rfc3339();
    let cases: Vec<SuiteCase> = plan
        .cases
        .iter()
        .map(|c| SuiteCase {
            experiment: c.experiment.name.clone(),
            environment: c.environment.clone(),
            expect: c.experiment.expect,
            outcome: CaseOutcome::Pending,
            message: None,
            started_at: None,
            ended_at: None,
            duration_ms: None,
            experiments: Vec::new(),
            steady_state: SteadyStateRecord::default(),
            threshold: None,
        })
        .collect();
    let mut run = SuiteRun {
        id: id.clone(),
        suite: plan.name.clone(),
        phase: SuiteRunPhase::Running,
        created_at: now.clone(),
        ended_at: None,
        duration_ms: None,
        summary: SuiteSummary::default(),
        cases,
        log: vec![SuiteLogLine {
            at: now,
            message: format!(
                "suite {} started: {} case(s) in {} environment(s), concurrency {}",
                plan.name,
                plan.cases.len(),
                plan.cases
                    .iter()
                    .map(|c| c.environment.as_str())
                    .collect::<HashSet<_>>()
                    .len(),
                plan.spec.concurrency
            ),
        }],
        manifest: manifest_value,
        replica: hub
            .engine
            .leadership()
            .shared()
            .then(|| hub.engine.leadership().holder().to_string()),
        takeovers: 0,
    };
    run.recount();
    hub.engine.store().put_suite_run(&run)?;
    active().insert(id.clone());
    let runner = runner::SuiteRunner::new(hub.clone(), run.clone(), |runner, plan, case| {
        Box::pin(threshold::run(runner, plan, case))
    });
    tokio::spawn(async move {
        runner.run(plan).await;
        active().remove(&id);
    });
    Ok(run)
}

fn halted(hub: &Hub) -> Result<Option<HubError>, HubError> {
    let halt = hub.engine.store().halt_status()?;
    Ok(halt.halted.then(|| HubError::Conflict {
        code: "halted",
        message: format!(
            "the hub is halted{}: no suite may start until DELETE /api/v1/halt (chaoshub unhalt)",
            halt.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ),
    }))
}

/// A run whose process went away (hub restart) is ended here, once, when first read.
fn settle_interrupted(hub: &Hub, mut run: SuiteRun) -> Result<SuiteRun, HubError> {
    if run.phase != SuiteRunPhase::Running || active().contains(&run.id) {
        return Ok(run);
    }
    // On a shared store another replica runs it, or the engine leader takes it over once that
    // replica's liveness lease has run out (`adopt_orphans`): it is never ended here.
    if hub.engine.leadership().shared() {
        return Ok(run);
    }
    let now = crate::time::now_rfc3339();
    for case in &mut run.cases {
        if !case.outcome.is_done() {
            case.outcome = CaseOutcome::Error;
            case.message = Some(
                "the hub restarted while this case ran; its experiment, if any, was recovered by the engine".into(),
            );
            case.ended_at = Some(now.clone());
        }
    }
    run.log.push(SuiteLogLine {
        at: now.clone(),
        message: "the hub restarted during the run: unfinished cases are errors".into(),
    });
    run.phase = SuiteRunPhase::Failed;
    run.ended_at = Some(now);
    run.recount();
    hub.engine.store().put_suite_run(&run)?;
    Ok(run)
}

/// On a shared store, the engine leader takes over every run whose replica died: each round,
/// runs still `Running` whose owner's liveness lease has lapsed are claimed (fenced, and
/// conditional on the owner named in the store, so two replicas never both continue one run)
/// and continued here.
pub async fn adopt_loop(hub: Hub, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let leadership = std::sync::Arc::clone(hub.engine.leadership());
    if !leadership.shared() {
        return;
    }
    let period = leadership.renew_interval();
    loop {
        if leadership.is_leader() {
            if let Err(e) = adopt_orphans(&hub).await {
                tracing::warn!(error = %e, "cannot look for suite runs whose replica died");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One round of [`adopt_loop`]; the number of runs taken over.
pub async fn adopt_orphans(hub: &Hub) -> Result<usize, HubError> {
    let store = std::sync::Arc::clone(hub.engine.store());
    let me = hub.engine.leadership().holder().to_string();
    let mut taken = 0;
    for run in store.running_suite_runs()? {
        if active().contains(&run.id) || run.replica.as_deref() == Some(me.as_str()) {
            continue;
        }
        if let Some(owner) = &run.replica {
            let lease = crate::leadership::replica_lease(owner);
            if store.lease_holder(&lease)?.is_some() {
                continue;
            }
        }
        if adopt(hub, run).await? {
            taken += 1;
        }
    }
    Ok(taken)
}

/// Claims a run whose replica died and continues it: finished cases stay as they are; a case
/// that was under way has its experiments stopped (the engine recovers them) and starts again.
async fn adopt(hub: &Hub, mut run: SuiteRun) -> Result<bool, HubError> {
    let previous = run.replica.clone();
    let was = previous
        .as_deref()
        .map(|p| p.split('#').next().unwrap_or(p).to_string())
        .unwrap_or_else(|| "a hub no longer running".into());
    let now = crate::time::now_rfc3339();
    let mut environments: Vec<String> = Vec::new();
    for case in &run.cases {
        if !environments.contains(&case.environment) {
            environments.push(case.environment.clone());
        }
    }
    // The same plan as at submission: the stored manifest narrowed to the run's environments.
    let planned = plan(hub, run.manifest.clone(), Some(&environments)).and_then(|p| {
        let same = p.cases.len() == run.cases.len()
            && p.cases
                .iter()
                .zip(&run.cases)
                .all(|(a, b)| a.experiment.name == b.experiment && a.environment == b.environment);
        if same {
            Ok(p)
        } else {
            Err(HubError::invalid_field(
                "spec",
                "the suite now plans different cases (an environment or template changed)",
            ))
        }
    });
    let mut interrupted = Vec::new();
    for case in &mut run.cases {
        if case.outcome == CaseOutcome::Running {
            interrupted.extend(case.experiments.iter().map(|e| e.uid.clone()));
            case.outcome = CaseOutcome::Pending;
            case.message = None;
            case.started_at = None;
            case.experiments.clear();
            case.steady_state = SteadyStateRecord::default();
            case.threshold = None;
        }
    }
    run.replica = Some(hub.engine.leadership().holder().to_string());
    run.takeovers += 1;
    let done = run.cases.iter().filter(|c| c.outcome.is_done()).count();
    let plan = match planned {
        Ok(plan) => {
            run.log.push(SuiteLogLine {
                at: now.clone(),
                message: format!(
                    "replica {} took the run over from {was}, whose liveness lease ran out: {done} case(s) were done; {} interrupted experiment(s) are stopped and their cases start again",
                    hub.engine.leadership().id(),
                    interrupted.len()
                ),
            });
            Some(plan)
        }
        Err(e) => {
            for case in &mut run.cases {
                if !case.outcome.is_done() {
                    case.outcome = CaseOutcome::Error;
                    case.message = Some(format!("not continued after {was} died: {e}"));
                    case.ended_at = Some(now.clone());
                }
            }
            run.log.push(SuiteLogLine {
                at: now.clone(),
                message: format!(
                    "replica {} could not continue the run after {was} died: {e}",
                    hub.engine.leadership().id()
                ),
            });
            run.phase = SuiteRunPhase::Failed;
            run.ended_at = Some(now);
            None
        }
    };
    run.recount();
    let claim = {
        let store = std::sync::Arc::clone(hub.engine.store());
        let (run, previous) = (run.clone(), previous.clone());
        crate::store::fence::scope(hub.engine.fence(), async move {
            store.claim_suite_run(&run, previous.as_deref())
        })
        .await
    };
    if !claim? {
        return Ok(false);
    }
    let Some(plan) = plan else {
        tracing::warn!(run = %run.id, "a suite run whose replica died could not be continued");
        return Ok(true);
    };
    tracing::info!(run = %run.id, from = %was, "took over a suite run whose replica died");
    let id = run.id.clone();
    active().insert(id.clone());
    let runner = runner::SuiteRunner::new(hub.clone(), run, |runner, plan, case| {
        Box::pin(threshold::run(runner, plan, case))
    });
    tokio::spawn(async move {
        for uid in interrupted {
            let terminal = runner
                .experiment(&uid)
                .is_none_or(|row| row.status.phase.is_terminal());
            if !terminal {
                runner
                    .stop_and_wait(
                        &uid,
                        "its suite run was taken over by another replica: the case starts again",
                    )
                    .await;
            }
        }
        runner.run(plan).await;
        active().remove(&id);
    });
    Ok(true)
}

pub fn get_run(hub: &Hub, id: &str) -> Result<SuiteRun, HubError> {
    let run = hub
        .engine
        .store()
        .get_suite_run(id)?
        .ok_or_else(|| HubError::not_found(format!("suite run {id:?}")))?;
    settle_interrupted(hub, run)
}

pub fn list_runs(hub: &Hub, limit: Option<usize>) -> Result<Page<SuiteRunSummary>, HubError> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let mut items = hub.engine.store().list_suite_runs(limit)?;
    for item in &mut items {
        if item.phase == SuiteRunPhase::Running && !active().contains(&item.id) {
            if let Some(run) = hub.engine.store().get_suite_run(&item.id)? {
                *item = settle_interrupted(hub, run)?.summary_line();
            }
        }
    }
    Ok(Page {
        items,
        continue_token: None,
        total: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_written_as_the_manifest_expects() {
        assert_eq!(parameter_value(250.0, Some("ms")), json!("250ms"));
        assert_eq!(parameter_value(0.25, None), json!(0.25));
        assert_eq!(parameter_value(12.5, Some("%")), json!("12.5%"));
        let mut v = json!({"spec": {"delay": {"latency": "1ms"}}});
        set_path(&mut v, "spec.delay.latency", json!("9ms")).unwrap();
        set_path(&mut v, "spec.new.deep", json!(1)).unwrap();
        assert_eq!(v["spec"]["delay"]["latency"], "9ms");
        assert_eq!(v["spec"]["new"]["deep"], 1);
        assert!(set_path(&mut v, "spec.delay.latency.x", json!(1)).is_err());
    }
}
