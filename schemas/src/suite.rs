//! The `Suite` kind (`chaoshub.dev/v1alpha1`): experiments × environments with a steady-state
//! hypothesis, and the run journal the hub keeps for each run (`/api/v1/suites/runs`).
//!
//! Each pair of an experiment and an environment is a *case*. The steady-state probes are
//! checked before the fault, during it and after it (the Chaos Toolkit hypothesis); an
//! experiment's `expect` says whether the steady state must hold (`hold`) or is expected to
//! break (`deviate`). A `thresholdSearch` experiment varies one fault parameter by bisection
//! and reports the largest value the steady state tolerates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::TargetRecord;
use crate::duration::parse_duration;
use crate::error::{join_path, ValidationErrors};
use crate::probe::{validate_probes, ProbeResult, ProbeSpec};
use crate::validate::Validate;

fn default_concurrency() -> u32 {
    1
}
fn default_interval() -> String {
    "1s".into()
}
fn default_case_timeout() -> String {
    "10m".into()
}
fn default_recovery_timeout() -> String {
    "30s".into()
}
fn default_max_steps() -> u32 {
    8
}
fn default_budget() -> String {
    "10m".into()
}
fn default_observe() -> String {
    "2s".into()
}

/// `spec` of a `Suite`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuiteSpec {
    /// Registered environments every experiment runs in (unless the experiment narrows them).
    pub environments: Vec<String>,
    /// The steady-state hypothesis: probes checked before, during and after every case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyState>,
    pub experiments: Vec<SuiteExperiment>,
    /// Cases run at once. Default 1 (one after the other).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: u32,
    #[serde(default)]
    pub timeouts: SuiteTimeouts,
}

/// Probes with their tolerances (`failureThreshold`), and how often they are checked during
/// the fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SteadyState {
    pub probes: Vec<ProbeSpec>,
    /// Pause between checks while the fault is in place. Default 1s.
    #[serde(default = "default_interval")]
    pub interval: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuiteTimeouts {
    /// Longest one case may take, from submission to the last check after recovery
    /// (a case past it is stopped and fails). Default 10m.
    #[serde(default = "default_case_timeout")]
    pub case: String,
    /// How long the steady state may take to come back after the fault is removed before
    /// the case fails. Default 30s.
    #[serde(default = "default_recovery_timeout")]
    pub recovery: String,
    /// Longest the whole run may take; cases not started by then are skipped. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
}

impl Default for SuiteTimeouts {
    fn default() -> Self {
        Self {
            case: default_case_timeout(),
            recovery: default_recovery_timeout(),
            suite: None,
        }
    }
}

/// `hold`: the steady state must hold during and after the fault. `deviate`: it is expected
/// to break during the fault (and must come back after it).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    #[default]
    Hold,
    Deviate,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Hold => "hold",
            Expectation::Deviate => "deviate",
        }
    }
}

/// One experiment of a suite: exactly one of `manifest`, `file`, `template`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuiteExperiment {
    /// Case name in reports (JUnit testcase name).
    pub name: String,
    #[serde(default)]
    pub expect: Expectation,
    /// An experiment manifest inline (any fault kind; `spec.environment` is set per case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    /// A manifest file, relative to the suite file; `chaoshub run` reads it and sends it
    /// inline (the hub itself never reads files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A catalog template rendered with parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    /// Only these of the suite's environments (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Probes evaluated while the fault runs; the first that fails aborts the experiment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_conditions: Vec<ProbeSpec>,
    /// Vary one fault parameter by bisection instead of running the fault once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_search: Option<ThresholdSearch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, Value>")]
    pub parameters: Map<String, Value>,
}

/// Finds the largest value of one fault parameter that the steady state tolerates.
///
/// The value is assumed monotonic in harm (more delay, more loss…). `from` is checked first
/// (it must be tolerated), then `to` (if tolerated, it is the answer), then the midpoint of
/// the tolerated and the failing value, until the two are `resolution` apart, `maxSteps`
/// faults have run or `budget` is spent. Every step's fault is removed before the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdSearch {
    /// Dotted path of the parameter in the manifest, e.g. `spec.delay.latency`.
    pub parameter: String,
    pub from: f64,
    pub to: f64,
    /// Appended to the number when written (`ms` gives `"250ms"`); without it the value is
    /// written as a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Stop when tolerated and failing values are this close. Default (to − from) / 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
    /// Most faults injected. Default 8.
    #[serde(default = "default_max_steps")]
    #[schemars(range(min = 2, max = 64))]
    pub max_steps: u32,
    /// Longest the search may take. Default 10m.
    #[serde(default = "default_budget")]
    pub budget: String,
    /// How long the steady-state probes are checked at each value. Default 2s.
    #[serde(default = "default_observe")]
    pub observe: String,
    /// The case fails when the tolerated value found is below this (an SLO on resilience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
}

fn check_duration_field(text: &str, path: &str, errors: &mut ValidationErrors) {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => errors.push(path, "must be longer than zero"),
        Ok(_) => {}
        Err(e) => errors.push(path, e),
    }
}

impl Validate for SuiteSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if self.environments.is_empty() {
            errors.push(
                join_path(path, "environments"),
                "must name at least one environment",
            );
        }
        for (i, env) in self.environments.iter().enumerate() {
            if self.environments[..i].contains(env) {
                errors.push(
                    format!("{}[{i}]", join_path(path, "environments")),
                    format!("environment {env:?} is listed twice"),
                );
            }
        }
        if let Some(ss) = &self.steady_state {
            let p = join_path(path, "steadyState");
            validate_probes(&ss.probes, &join_path(&p, "probes"), errors);
            check_duration_field(&ss.interval, &join_path(&p, "interval"), errors);
        }
        if self.experiments.is_empty() {
            errors.push(
                join_path(path, "experiments"),
                "must list at least one experiment",
            );
        }
        if self.concurrency == 0 {
            errors.push(join_path(path, "concurrency"), "must be at least 1");
        }
        let t = join_path(path, "timeouts");
        check_duration_field(&self.timeouts.case, &join_path(&t, "case"), errors);
        check_duration_field(&self.timeouts.recovery, &join_path(&t, "recovery"), errors);
        if let Some(s) = &self.timeouts.suite {
            check_duration_field(s, &join_path(&t, "suite"), errors);
        }
        let has_probes = self
            .steady_state
            .as_ref()
            .is_some_and(|s| !s.probes.is_empty());
        for (i, exp) in self.experiments.iter().enumerate() {
            let p = format!("{}[{i}]", join_path(path, "experiments"));
            exp.validate(&p, errors);
            if self.experiments[..i].iter().any(|e| e.name == exp.name) {
                errors.push(
                    join_path(&p, "name"),
                    format!("experiment name {:?} is used twice", exp.name),
                );
            }
            for (j, env) in exp.environments.iter().enumerate() {
                if !self.environments.contains(env) {
                    errors.push(
                        format!("{}[{j}]", join_path(&p, "environments")),
                        format!(
                            "{env:?} is not one of the suite's environments ({})",
                            self.environments.join(", ")
                        ),
                    );
                }
            }
            if !has_probes && (exp.expect == Expectation::Deviate || exp.threshold_search.is_some())
            {
                errors.push(
                    &p,
                    "needs steadyState.probes: deviations and thresholds are judged by them",
                );
            }
        }
    }
}

impl Validate for SuiteExperiment {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if crate::meta::check_dns_name(&self.name).is_err() {
            errors.push(
                join_path(path, "name"),
                format!(
                    "must be a DNS-1123 name (lowercase letters, digits, '-'); got {:?}",
                    self.name
                ),
            );
        }
        let sources = [
            self.manifest.is_some(),
            self.file.is_some(),
            self.template.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources != 1 {
            errors.push(
                path,
                format!("needs exactly one of manifest, file, template; got {sources}"),
            );
        }
        validate_probes(
            &self.stop_conditions,
            &join_path(path, "stopConditions"),
            errors,
        );
        if let Some(search) = &self.threshold_search {
            let p = join_path(path, "thresholdSearch");
            if !search.parameter.starts_with("spec.") || search.parameter.ends_with('.') {
                errors.push(
                    join_path(&p, "parameter"),
                    format!(
                        "must be a dotted path under spec, such as spec.delay.latency; got {:?}",
                        search.parameter
                    ),
                );
            }
            if !(search.from.is_finite() && search.to.is_finite() && search.from < search.to) {
                errors.push(
                    join_path(&p, "to"),
                    format!("must be larger than from ({} → {})", search.from, search.to),
                );
            }
            if let Some(r) = search.resolution {
                if !(r.is_finite() && r > 0.0) {
                    errors.push(join_path(&p, "resolution"), "must be larger than zero");
                }
            }
            if search.max_steps < 2 {
                errors.push(join_path(&p, "maxSteps"), "must be at least 2");
            }
            check_duration_field(&search.budget, &join_path(&p, "budget"), errors);
            check_duration_field(&search.observe, &join_path(&p, "observe"), errors);
            if self.expect == Expectation::Deviate {
                errors.push(
                    join_path(path, "expect"),
                    "does not apply to a threshold search (leave it out)",
                );
            }
        }
    }
}

// ---- run journal (REST) ----

/// Where a suite run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SuiteRunPhase {
    Running,
    /// Every case passed (or was skipped).
    Passed,
    /// At least one case failed or met an error.
    Failed,
}

impl SuiteRunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteRunPhase::Running => "Running",
            SuiteRunPhase::Passed => "Passed",
            SuiteRunPhase::Failed => "Failed",
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum CaseOutcome {
    Pending,
    Running,
    Passed,
    /// The system did not behave as expected (JUnit `<failure>`).
    Failed,
    /// The case could not be carried out: refused experiment, unreachable environment, steady
    /// state not holding before the fault, timeout (JUnit `<error>`).
    Error,
    /// Not run (JUnit `<skipped>`): the suite's time ran out first.
    Skipped,
}

impl CaseOutcome {
    pub fn is_done(self) -> bool {
        !matches!(self, CaseOutcome::Pending | CaseOutcome::Running)
    }
}

/// `POST /api/v1/suites` answer and `GET /api/v1/suites/runs/{id}`: the JSON journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuiteRun {
    pub id: String,
    /// `metadata.name` of the suite.
    pub suite: String,
    pub phase: SuiteRunPhase,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub summary: SuiteSummary,
    pub cases: Vec<SuiteCase>,
    /// Progress lines, oldest first (what `chaoshub run` prints live).
    pub log: Vec<SuiteLogLine>,
    /// The suite as submitted (after file references were inlined by the CLI).
    pub manifest: Value,
    /// On a hub of several replicas: the replica process running it. A run whose replica is
    /// gone is ended (its unfinished cases errors) when next read; while that replica lives,
    /// every replica shows the run as it progresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// How many times another replica took the run over after its replica died: the leader
    /// continues such a run, keeping finished cases and starting interrupted ones again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub takeovers: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuiteSummary {
    pub cases: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuiteLogLine {
    pub at: String,
    pub message: String,
}

/// One experiment × environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuiteCase {
    pub experiment: String,
    pub environment: String,
    pub expect: Expectation,
    pub outcome: CaseOutcome,
    /// Why it failed or errored, with the evidence; or what passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The experiment(s) created for this case (one per step of a threshold search).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<CaseExperiment>,
    #[serde(default)]
    pub steady_state: SteadyStateRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdResult>,
}

/// An experiment a case created, with its outcome and per-target records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaseExperiment {
    pub uid: String,
    pub name: String,
    pub kind: String,
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetRecord>,
    /// The parameter value of a threshold-search step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Every steady-state probe result of a case, by phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SteadyStateRecord {
    #[serde(default)]
    pub before: Vec<ProbeResult>,
    #[serde(default)]
    pub during: Vec<ProbeResult>,
    #[serde(default)]
    pub after: Vec<ProbeResult>,
}

/// What a threshold search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdResult {
    pub parameter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The largest value tolerated (none when even `from` broke the steady state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerated: Option<f64>,
    /// The smallest value seen to break it (none when even `to` was tolerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failing: Option<f64>,
    pub steps: Vec<ThresholdStep>,
    /// `converged`, `maxSteps`, `budget`, `toTolerated`, `fromFailed` or `error`.
    pub ended_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdStep {
    pub value: f64,
    pub tolerated: bool,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_uid: Option<String>,
}

/// One line of `GET /api/v1/suites/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuiteRunSummary {
    pub id: String,
    pub suite: String,
    pub phase: SuiteRunPhase,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    pub summary: SuiteSummary,
}

impl SuiteRun {
    pub fn summary_line(&self) -> SuiteRunSummary {
        SuiteRunSummary {
            id: self.id.clone(),
            suite: self.suite.clone(),
            phase: self.phase,
            created_at: self.created_at.clone(),
            ended_at: self.ended_at.clone(),
            summary: self.summary.clone(),
        }
    }

    /// Recounts `summary` from the cases.
    pub fn recount(&mut self) {
        let mut s = SuiteSummary {
            cases: self.cases.len(),
            ..Default::default()
        };
        for case in &self.cases {
            match case.outcome {
                CaseOutcome::Passed => s.passed += 1,
                CaseOutcome::Failed => s.failed += 1,
                CaseOutcome::Error => s.errors += 1,
                CaseOutcome::Skipped => s.skipped += 1,
                CaseOutcome::Pending | CaseOutcome::Running => {}
            }
        }
        self.summary = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(yaml: &str) -> Result<crate::Manifest, ValidationErrors> {
        crate::parse_one(yaml)
    }

    #[test]
    fn the_minimal_suite_of_the_issue_parses() {
        let m = suite(
            r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {name: checkout-resilience}
spec:
  environments: [edge-a, edge-b]
  steadyState:
    probes:
      - name: web-ok
        http: {url: "http://127.0.0.1:8080/", timeout: 500ms, expect: {status: 200}}
  experiments:
    - name: slow-web
      expect: hold
      manifest: { apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: slow-web}, spec: {action: delay, mode: all, selector: {}, delay: {latency: 100ms}, duration: 5s} }
"#,
        )
        .unwrap();
        assert_eq!(m.kind(), crate::Kind::Suite);
    }

    #[test]
    fn bad_suites_name_their_fields() {
        let errors = suite(
            r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {name: s}
spec:
  environments: [a, a]
  experiments:
    - name: x
      expect: deviate
      file: x.yaml
      template: {name: t}
      environments: [zz]
      thresholdSearch: {parameter: delay, from: 10, to: 5}
"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "spec.environments[1]",
            "spec.experiments[0]",
            "spec.experiments[0].environments[0]",
            "spec.experiments[0].thresholdSearch.parameter",
            "spec.experiments[0].thresholdSearch.to",
            "spec.experiments[0].expect",
        ] {
            assert!(paths.contains(&expected), "{expected} missing in {paths:?}");
        }
        let errors = suite("apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {name: s}\nspec: {environments: [a], experiments: [{name: x, manifest: {}, expct: hold}]}\n").unwrap_err();
        assert!(
            errors.iter().any(|e| e.path == "spec.experiments[0].expct"),
            "{errors:?}"
        );
    }
}
