//! Threshold search: the largest value of one fault parameter the steady state tolerates,
//! found by bisection ("find the latency your service can handle").
//!
//! Harm is assumed to grow with the value. `from` must be tolerated and is tried first; then
//! `to` (tolerated means it is the answer); then the midpoint of the largest tolerated and the
//! smallest failing value, until they are `resolution` apart, `maxSteps` faults have run, or
//! the `budget` is spent. Each step injects the fault with the value written at `parameter`,
//! checks the steady-state probes for `observe`, stops the experiment, and waits until the
//! steady state is back before the next step — so no two steps' faults ever overlap.

use std::time::{Duration, Instant};

use chaoshub_schema::api::ExperimentPhase;
use chaoshub_schema::duration::{format_duration, parse_duration};
use chaoshub_schema::suite::{CaseOutcome, ThresholdResult, ThresholdSearch, ThresholdStep};

use super::runner::{Stage, SuiteRunner, Tolerance, Verdict};
use super::{parameter_value, set_path, CasePlan, SuitePlan};

/// What one step found.
enum StepResult {
    Tolerated(String),
    Broke(String),
}

fn format_value(v: f64, unit: Option<&str>) -> String {
    match super::parameter_value(v, unit) {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

pub(crate) async fn run(runner: &SuiteRunner, plan: &SuitePlan, case: &CasePlan) -> Verdict {
    let Some(search) = case.experiment.threshold_search.clone() else {
        return (CaseOutcome::Error, "no thresholdSearch".into());
    };
    let started = Instant::now();
    let budget = parse_duration(&search.budget).unwrap_or(Duration::from_secs(600));
    let unit = search.unit.as_deref();
    let resolution = search
        .resolution
        .unwrap_or((search.to - search.from) / 100.0)
        .max(f64::MIN_POSITIVE);
    // Whole numbers stay whole (50 ms, 2000 ms) unless the resolution asks for finer steps.
    let integral = search.from.fract() == 0.0 && search.to.fract() == 0.0 && resolution >= 1.0;

    let (_, failed) = runner.check(plan, case, Stage::Before).await;
    if let Some(ev) = failed {
        return (
            CaseOutcome::Error,
            format!(
                "the steady state did not hold before the search, so nothing was injected: {ev}"
            ),
        );
    }

    let mut result = ThresholdResult {
        parameter: search.parameter.clone(),
        unit: search.unit.clone(),
        tolerated: None,
        first_failing: None,
        steps: Vec::new(),
        ended_by: String::new(),
    };
    let publish = |result: &ThresholdResult| {
        let r = result.clone();
        runner.update(move |run| run.cases[case.index].threshold = Some(r));
    };

    let mut lo: Option<f64> = None;
    let mut hi: Option<f64> = None;
    let mut ended_by = "converged";
    let mut error: Option<String> = None;
    let mut step_no = 0usize;
    loop {
        let value = match (lo, hi, step_no) {
            (_, _, 0) => search.from,
            (Some(_), None, _) => search.to,
            (Some(l), Some(h), _) => {
                if h - l <= resolution {
                    ended_by = "converged";
                    break;
                }
                let mid = (l + h) / 2.0;
                let mid = if integral { mid.round() } else { mid };
                if mid <= l || mid >= h {
                    ended_by = "converged";
                    break;
                }
                mid
            }
            (None, _, _) => break,
        };
        if step_no >= search.max_steps as usize {
            ended_by = "maxSteps";
            break;
        }
        if started.elapsed() >= budget {
            ended_by = "budget";
            break;
        }
        let outcome = step(runner, plan, case, &search, step_no, value).await;
        step_no += 1;
        let (tolerated, detail) = match outcome {
            Ok(StepResult::Tolerated(d)) => (true, d),
            Ok(StepResult::Broke(d)) => (false, d),
            Err(e) => {
                error = Some(format!(
                    "step {step_no} ({}={}): {e}",
                    search.parameter,
                    format_value(value, unit)
                ));
                ended_by = "error";
                break;
            }
        };
        runner.log(format!(
            "  {} in {}: {}={} {}",
            case.experiment.name,
            case.environment,
            search.parameter,
            format_value(value, unit),
            if tolerated {
                "tolerated"
            } else {
                "broke the steady state"
            }
        ));
        let uid = runner.experiment_uids(case).last().cloned();
        result.steps.push(ThresholdStep {
            value,
            tolerated,
            detail,
            experiment_uid: uid,
        });
        if tolerated {
            lo = Some(value);
            result.tolerated = Some(value);
        } else {
            hi = Some(value);
            result.first_failing = Some(value);
        }
        publish(&result);
        if step_no == 1 && !tolerated {
            ended_by = "fromFailed";
            break;
        }
        if step_no == 2 && tolerated {
            ended_by = "toTolerated";
            break;
        }
    }
    result.ended_by = ended_by.to_string();
    publish(&result);

    let steps = result.steps.len();
    let found = result.tolerated.map(|v| format_value(v, unit));
    let failing = result
        .first_failing
        .map(|v| format!(", smallest failing {}", format_value(v, unit)))
        .unwrap_or_default();
    if let Some(e) = error {
        return (CaseOutcome::Error, e);
    }
    match (found, ended_by) {
        (None, _) => (
            CaseOutcome::Failed,
            format!(
                "even {}={} breaks the steady state: {}",
                search.parameter,
                format_value(search.from, unit),
                result
                    .steps
                    .first()
                    .map(|s| s.detail.clone())
                    .unwrap_or_default()
            ),
        ),
        (Some(v), _) => {
            let summary = format!(
                "tolerates {}={v}{failing} ({steps} step(s), ended by {ended_by}, {} spent)",
                search.parameter,
                format_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
            );
            match (search.at_least, result.tolerated) {
                (Some(min), Some(t)) if t < min => (
                    CaseOutcome::Failed,
                    format!(
                        "{summary}; below the required atLeast {}",
                        format_value(min, unit)
                    ),
                ),
                _ => (CaseOutcome::Passed, summary),
            }
        }
    }
}

/// Injects the fault at `value`, observes the steady state, removes the fault and waits for
/// the steady state to come back.
async fn step(
    runner: &SuiteRunner,
    plan: &SuitePlan,
    case: &CasePlan,
    search: &ThresholdSearch,
    step_no: usize,
    value: f64,
) -> Result<StepResult, String> {
    let mut manifest = case.manifest.clone();
    set_path(
        &mut manifest,
        &search.parameter,
        parameter_value(value, search.unit.as_deref()),
    )?;
    let uid = runner
        .start_experiment(plan, case, manifest, Some(step_no), Some(value))
        .await?;
    // Wait for the fault to be confirmed in place before judging anything.
    let confirm_by = Instant::now() + runner.case_timeout(plan);
    let mut watch = runner.watch();
    loop {
        let row = runner
            .experiment(&uid)
            .ok_or_else(|| format!("experiment {uid} disappeared"))?;
        match row.status.phase {
            ExperimentPhase::Running => break,
            p if p.is_terminal() => {
                runner.refresh_experiment(case, &row);
                return Err(format!(
                    "the experiment ended {p} before the fault ran: {}",
                    row.status.reason.unwrap_or_default()
                ));
            }
            _ if Instant::now() >= confirm_by => {
                runner.stop_and_wait(&uid, "suite case timed out").await;
                return Err("the fault was not confirmed in place within timeouts.case".into());
            }
            _ => {
                watch
                    .changed(&uid, confirm_by.saturating_duration_since(Instant::now()))
                    .await
            }
        }
    }
    let observe = parse_duration(&search.observe).unwrap_or(Duration::from_secs(2));
    let interval = runner.interval(plan).min(observe);
    let until = Instant::now() + observe;
    let mut tolerance = Tolerance::new(&case.probes);
    let mut broke: Option<String> = None;
    let mut checks = 0;
    let mut ended_early = None;
    while Instant::now() < until || checks == 0 {
        match runner.experiment(&uid) {
            Some(row) if row.status.phase == ExperimentPhase::Running => {}
            Some(row) => {
                ended_early = Some(row.status.phase);
                break;
            }
            None => break,
        }
        let (results, _) = runner.check(plan, case, Stage::During).await;
        checks += 1;
        if let Some(ev) = tolerance.observe(&results) {
            broke = Some(ev);
            break;
        }
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(interval.min(left)).await;
    }
    let last = runner
        .stop_and_wait(&uid, "threshold search step observed")
        .await;
    if let Some(row) = &last {
        runner.refresh_experiment(case, row);
        if !row.status.phase.is_terminal() {
            return Err(format!(
                "the fault of this step was not removed in time (phase {}); the search stops so faults never overlap",
                row.status.phase
            ));
        }
    }
    if let Some(phase) = ended_early {
        if broke.is_none() && checks == 0 {
            return Err(format!(
                "the experiment ended {phase} before it could be observed; give the fault a duration longer than observe ({})",
                search.observe
            ));
        }
    }
    runner
        .wait_recovered(plan, case)
        .await
        .map_err(|e| format!("after this step: {e}"))?;
    Ok(match broke {
        Some(ev) => StepResult::Broke(ev),
        None => StepResult::Tolerated(format!("{checks} check(s) held")),
    })
}
