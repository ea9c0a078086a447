//! `apply -f`: split a file into documents, send each to the right collection, optionally wait.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use chaoshub_schema::api::{
    DryRunResult, EnvironmentObject, ExperimentObject, ExperimentPhase, TargetPhase,
};
use chaoshub_schema::CHAOSHUB_API_VERSION;
use serde_json::Value;
use tokio::time::Instant;

use super::client::{render_error, CliError, HubClient};
use super::output::{emit, experiment_ref, object_ref, render_structured, OutputFormat};
use super::{ApplyArgs, ExitCode};

/// How often `--wait` asks for the experiment's phase.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Where a document goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/environments`.
    Environment,
    /// `POST /api/v1/experiments`.
    Experiment,
}

/// Environments are the `Environment` kind of chaoshub's own API group; everything else is an
/// experiment, and the hub's validation names what is wrong with a document that is neither.
pub fn route(document: &Value) -> Route {
    let api_version = document.get("apiVersion").and_then(Value::as_str);
    let kind = document.get("kind").and_then(Value::as_str);
    if (api_version == Some(CHAOSHUB_API_VERSION) && kind == Some("Environment"))
        || (api_version == Some(chaoshub_schema::CHAOS_MESH_API_VERSION)
            && kind == Some("RemoteCluster"))
    {
        // Chaos Mesh's RemoteCluster registers a kubernetes environment of its name.
        Route::Environment
    } else {
        Route::Experiment
    }
}

/// `kind/name` of a document before it is sent (for messages about it).
pub fn document_ref(document: &Value, index: usize) -> String {
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("document");
    let metadata = document.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate = metadata
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    match (name, generate) {
        (Some(name), _) => object_ref(kind, name),
        (None, Some(prefix)) => object_ref(kind, &format!("{prefix}*")),
        (None, None) => format!("{} #{}", kind.to_ascii_lowercase(), index + 1),
    }
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// Splits a manifest file into its documents; an empty file is a usage error.
pub fn split(text: &str, source: &Path) -> Result<Vec<Value>, CliError> {
    let documents = chaoshub_schema::split_documents(text)
        .map_err(|e| CliError::Usage(format!("{}: {e}", source.display())))?;
    if documents.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no document",
            source.display()
        )));
    }
    if let Some(index) = documents.iter().position(|d| !d.is_object()) {
        return Err(CliError::Usage(format!(
            "{}: document {} is not a mapping (expected apiVersion, kind, metadata, spec)",
            source.display(),
            index + 1
        )));
    }
    Ok(documents)
}

/// What one document turned into.
enum Applied {
    Experiment(Box<ExperimentObject>),
    Environment(Box<EnvironmentObject>),
    DryRun(Box<DryRunResult>),
    /// An environment checked locally under `--dry-run` (the hub has no dry run for them).
    EnvironmentChecked(String),
}

pub async fn apply(
    client: &HubClient,
    format: OutputFormat,
    args: &ApplyArgs,
) -> Result<ExitCode, CliError> {
    let text = read_input(&args.file)?;
    let documents = split(&text, &args.file)?;
    let mut first_failure: Option<ExitCode> = None;
    let mut created: Vec<ExperimentObject> = Vec::new();
    let mut outputs = Vec::new();

    for (index, document) in documents.iter().enumerate() {
        match apply_one(client, args, document).await {
            Ok(applied) => {
                if let Applied::Experiment(object) = &applied {
                    created.push((**object).clone());
                }
                outputs.push(applied);
            }
            Err(error) => {
                let code = error.exit_code();
                eprint!(
                    "{}: {}",
                    document_ref(document, index),
                    render_error(&error)
                );
                // Without a hub, every later document would fail the same way.
                if code == ExitCode::Unreachable {
                    flush_outputs(format, &outputs)?;
                    return Ok(code);
                }
                first_failure.get_or_insert(code);
            }
        }
    }
    flush_outputs(format, &outputs)?;

    if args.wait && !created.is_empty() {
        let deadline = Instant::now() + args.timeout;
        for object in &created {
            if let Err(error) = wait_for(client, object, deadline, args.timeout).await {
                eprint!("{}", render_error(&error));
                first_failure.get_or_insert(error.exit_code());
            }
        }
    }
    Ok(first_failure.unwrap_or(ExitCode::Success))
}

fn flush_outputs(format: OutputFormat, outputs: &[Applied]) -> Result<(), CliError> {
    let mut text = String::new();
    for (i, applied) in outputs.iter().enumerate() {
        match format {
            OutputFormat::Table => text.push_str(&describe_applied(applied)),
            OutputFormat::Json | OutputFormat::Yaml => {
                if format == OutputFormat::Yaml && i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&match applied {
                    Applied::Experiment(o) => render_structured(format, o)?,
                    Applied::Environment(o) => render_structured(format, o)?,
                    Applied::DryRun(o) => render_structured(format, o)?,
                    Applied::EnvironmentChecked(_) => continue,
                });
            }
        }
    }
    emit(&text);
    Ok(())
}

async fn apply_one(
    client: &HubClient,
    args: &ApplyArgs,
    document: &Value,
) -> Result<Applied, CliError> {
    match route(document) {
        Route::Environment => {
            if args.dry_run {
                // Validating locally keeps a dry run free of side effects even against a hub
                // that would ignore `dryRun` on this collection.
                return check_environment_locally(document).map(Applied::EnvironmentChecked);
            }
            let object: EnvironmentObject = client
                .post(&["api", "v1", "environments"], &[], Some(document))
                .await?;
            Ok(Applied::Environment(Box::new(object)))
        }
        Route::Experiment => {
            let mut query = Vec::new();
            if let Some(env) = &args.env {
                query.push(("env", env.clone()));
            }
            if args.dry_run {
                query.push(("dryRun", "true".to_string()));
                let result: DryRunResult = client
                    .post(&["api", "v1", "experiments"], &query, Some(document))
                    .await?;
                return Ok(Applied::DryRun(Box::new(result)));
            }
            let object: ExperimentObject = client
                .post(&["api", "v1", "experiments"], &query, Some(document))
                .await?;
            Ok(Applied::Experiment(Box::new(object)))
        }
    }
}

fn check_environment_locally(document: &Value) -> Result<String, CliError> {
    let reference = document_ref(document, 0);
    match chaoshub_schema::manifest_from_value(document.clone()) {
        Ok(_) => Ok(reference),
        Err(errors) => Err(CliError::Api {
            status: 400,
            body: chaoshub_schema::api::ErrorBody {
                code: "invalid_manifest".into(),
                message: "the manifest is invalid".into(),
                details: errors.0,
            },
        }),
    }
}

/// The one-line (or, for a dry run, few-line) account of an applied document.
fn describe_applied(applied: &Applied) -> String {
    match applied {
        Applied::Experiment(o) => format!(
            "{} created (uid {}, phase {})\n",
            experiment_ref(o),
            o.metadata.uid.as_deref().unwrap_or("?"),
            o.status.phase
        ),
        Applied::Environment(o) => format!(
            "{} registered (adapter {})\n",
            object_ref("environment", o.metadata.name.as_deref().unwrap_or("?")),
            o.spec.adapter
        ),
        Applied::EnvironmentChecked(reference) => {
            format!("{reference} valid (dry run, not registered)\n")
        }
        Applied::DryRun(result) => describe_dry_run(result),
    }
}

/// A dry run's plan: what would be hit, where and how.
pub fn describe_dry_run(result: &DryRunResult) -> String {
    let reference = document_ref(&result.manifest, 0);
    let verdict = if result.valid { "valid" } else { "invalid" };
    let Some(plan) = &result.plan else {
        let mut out = format!(
            "{reference} {verdict} (dry run; name an environment with --env to see the targets)\n"
        );
        for warning in &result.warnings {
            out.push_str(&format!("  warning: {warning}\n"));
        }
        return out;
    };
    let mut out = format!(
        "{reference} {verdict} (dry run): would run {}/{} in environment {} via {}\n",
        plan.kind,
        plan.actions.join(","),
        plan.environment,
        plan.adapter
    );
    out.push_str(&format!(
        "  mode {}: {} of {} matching target(s) would be hit",
        plan.mode,
        plan.targets.len(),
        plan.matched
    ));
    match &plan.duration {
        Some(d) => out.push_str(&format!(" for {d}\n")),
        None => out.push_str(" until stopped\n"),
    }
    let line = |target: &chaoshub_schema::Target, indent: &str| {
        let namespace = target
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        format!(
            "{indent}- {namespace}{} ({} {})\n",
            target.name, target.kind, target.id
        )
    };
    for target in &plan.targets {
        out.push_str(&line(target, "  "));
    }
    if let Some(far) = &plan.far_side {
        out.push_str(&format!(
            "  {} selects when it runs: {} of {} matching target(s) now\n",
            far.selected_by,
            far.targets.len(),
            far.matched
        ));
        for target in &far.targets {
            out.push_str(&line(target, "    "));
        }
    }
    for warning in &result.warnings {
        out.push_str(&format!("  warning: {warning}\n"));
    }
    out
}

/// How a phase seen while waiting ends the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Keep polling.
    Pending,
    /// The fault is (or was) in place.
    Succeeded,
    /// It will not run; the message says why.
    Failed(String),
}

/// Running is success. An experiment so short that it is already recovering or finished when
/// first seen has still run if it has a start time; without one it ended before injecting.
pub fn wait_outcome(object: &ExperimentObject) -> WaitOutcome {
    let status = &object.status;
    let ran = status.started_at.is_some() || status.targets.iter().any(|t| t.injected_at.is_some());
    let reason = || {
        status
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".into())
    };
    // While recovering, the hub says where the experiment is headed; heading for Failed or
    // Aborted is a failure now, not after the recovery.
    let phase = match (status.phase, status.next_phase) {
        (
            ExperimentPhase::Recovering,
            Some(next @ (ExperimentPhase::Failed | ExperimentPhase::Aborted)),
        ) => next,
        (phase, _) => phase,
    };
    match phase {
        ExperimentPhase::Running => WaitOutcome::Succeeded,
        ExperimentPhase::Recovering | ExperimentPhase::Finished if ran => WaitOutcome::Succeeded,
        ExperimentPhase::Finished => WaitOutcome::Failed(format!(
            "{} finished without running: {}",
            experiment_ref(object),
            reason()
        )),
        ExperimentPhase::Failed | ExperimentPhase::Aborted => WaitOutcome::Failed(format!(
            "{} {}: {}",
            experiment_ref(object),
            phase.as_str().to_ascii_lowercase(),
            reason()
        )),
        _ => WaitOutcome::Pending,
    }
}

/// Per-target errors of a failed experiment, one indented line each.
pub fn target_errors(object: &ExperimentObject) -> String {
    let mut out = String::new();
    for t in &object.status.targets {
        if t.phase == TargetPhase::Failed || t.error.is_some() {
            let error = t.error.as_deref().unwrap_or("failed (no error recorded)");
            out.push_str(&format!(
                "  target {} ({}): {error}\n",
                t.target.name, t.target.id
            ));
        }
    }
    out
}

async fn wait_for(
    client: &HubClient,
    created: &ExperimentObject,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), CliError> {
    let reference = experiment_ref(created);
    let Some(uid) = created.metadata.uid.clone() else {
        return Err(CliError::Protocol(format!(
            "{reference} was created without a uid"
        )));
    };
    let mut latest = created.clone();
    loop {
        match wait_outcome(&latest) {
            WaitOutcome::Succeeded => {
                eprintln!("{reference} is {}", latest.status.phase);
                return Ok(());
            }
            WaitOutcome::Failed(message) => {
                return Err(CliError::Failed(
                    format!("{message}\n{}", target_errors(&latest))
                        .trim_end()
                        .to_string(),
                ));
            }
            WaitOutcome::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(CliError::TimedOut(format!(
                "timed out after {} waiting for {reference} to run (phase {})",
                chaoshub_schema::duration::format_duration(timeout),
                latest.status.phase
            )));
        }
        tokio::time::sleep(WAIT_POLL_INTERVAL.min(deadline - Instant::now())).await;
        latest = client.get(&["api", "v1", "experiments", &uid], &[]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::meta::ObjectMeta;
    use serde_json::json;

    const FILE: &str = "\
apiVersion: chaoshub.dev/v1alpha1
kind: Environment
metadata: {name: staging}
spec: {adapter: docker}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: web-delay}
spec: {action: delay, mode: all, selector: {}, delay: {latency: 100ms}}
---
# an empty document is skipped
---
{\"apiVersion\": \"chaoshub.dev/v1alpha1\", \"kind\": \"HttpChaos\", \"metadata\": {\"generateName\": \"slow-\"}}
---
apiVersion: v1
kind: Environment
metadata: {name: not-ours}
";

    #[test]
    fn documents_are_routed_by_kind_and_group() {
        let docs = split(FILE, Path::new("f.yaml")).unwrap();
        let routes: Vec<Route> = docs.iter().map(route).collect();
        assert_eq!(
            routes,
            vec![
                Route::Environment,
                Route::Experiment,
                Route::Experiment,
                Route::Experiment
            ]
        );
        // Chaos Mesh's RemoteCluster registers a kubernetes environment.
        let remote = json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "RemoteCluster"});
        assert_eq!(route(&remote), Route::Environment);
        let refs: Vec<String> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| document_ref(d, i))
            .collect();
        assert_eq!(
            refs,
            vec![
                "environment/staging",
                "networkchaos/web-delay",
                "httpchaos/slow-*",
                "environment/not-ours"
            ]
        );
        assert_eq!(document_ref(&json!({}), 2), "document #3");
    }

    #[test]
    fn unusable_files_are_usage_errors() {
        for text in ["", "---\n", "a: [", "- 1\n- 2\n"] {
            let err = split(text, Path::new("bad.yaml")).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::Usage, "{text:?}");
        }
        let err = read_input(Path::new("/nonexistent/chaoshub.yaml"))
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), ExitCode::Usage);
    }

    #[test]
    fn environment_dry_run_validates_locally() {
        let good = json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment",
                          "metadata": {"name": "staging"}, "spec": {"adapter": "docker"}});
        assert_eq!(
            check_environment_locally(&good).unwrap(),
            "environment/staging"
        );
        let bad = json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment",
                         "metadata": {"name": "staging"}, "spec": {"adapter": ""}});
        let err = check_environment_locally(&bad).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Failure);
        assert!(
            render_error(&err).contains("spec.adapter"),
            "{}",
            render_error(&err)
        );
    }

    fn object(phase: ExperimentPhase, started: bool) -> ExperimentObject {
        ExperimentObject {
            api_version: "chaos-mesh.org/v1alpha1".into(),
            kind: "NetworkChaos".into(),
            metadata: ObjectMeta {
                name: Some("web-delay".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: json!({}),
            // Built from JSON so fields the schema adds later take their defaults.
            status: serde_json::from_value(json!({
                "phase": phase,
                "desired": "Run",
                "reason": "adapter refused",
                "environment": "staging",
                "adapter": "docker",
                "actions": ["delay"],
                "createdAt": "2024-05-01T12:00:00Z",
                "startedAt": started.then_some("2024-05-01T12:00:01Z"),
                "targets": [{
                    "target": {"environment": "staging", "adapter": "docker",
                               "kind": "container", "id": "c1", "name": "web-1"},
                    "injectionId": "u1-0",
                    "phase": "Failed",
                    "error": "no such container",
                }],
            }))
            .unwrap(),
        }
    }

    #[test]
    fn wait_outcomes() {
        use ExperimentPhase::*;
        assert_eq!(wait_outcome(&object(Running, true)), WaitOutcome::Succeeded);
        assert_eq!(wait_outcome(&object(Pending, false)), WaitOutcome::Pending);
        assert_eq!(
            wait_outcome(&object(Injecting, false)),
            WaitOutcome::Pending
        );
        assert_eq!(wait_outcome(&object(Paused, true)), WaitOutcome::Pending);
        assert_eq!(
            wait_outcome(&object(Finished, true)),
            WaitOutcome::Succeeded
        );
        assert_eq!(
            wait_outcome(&object(Recovering, true)),
            WaitOutcome::Succeeded
        );
        assert_eq!(
            wait_outcome(&object(Recovering, false)),
            WaitOutcome::Pending
        );
        assert_eq!(
            wait_outcome(&object(Finished, false)),
            WaitOutcome::Failed(
                "networkchaos/web-delay finished without running: adapter refused".into()
            )
        );
        assert_eq!(
            wait_outcome(&object(Failed, false)),
            WaitOutcome::Failed("networkchaos/web-delay failed: adapter refused".into())
        );
        assert_eq!(
            target_errors(&object(Failed, false)),
            "  target web-1 (c1): no such container\n"
        );
    }

    #[test]
    fn created_and_dry_run_lines() {
        let line = describe_applied(&Applied::Experiment(Box::new(object(
            ExperimentPhase::Pending,
            false,
        ))));
        assert_eq!(
            line,
            "networkchaos/web-delay created (uid u1, phase Pending)\n"
        );
        let target = object(ExperimentPhase::Pending, false).status.targets[0]
            .target
            .clone();
        let result: DryRunResult = serde_json::from_value(json!({
            "valid": true,
            "manifest": {"kind": "NetworkChaos", "metadata": {"name": "web-delay"}},
            "plan": {
                "environment": "staging", "adapter": "docker", "kind": "NetworkChaos",
                "actions": ["delay"], "duration": "30s", "mode": "one",
                "targets": [target], "matched": 3,
            },
        }))
        .unwrap();
        assert_eq!(
            describe_dry_run(&result),
            "networkchaos/web-delay valid (dry run): would run NetworkChaos/delay in environment \
             staging via docker\n  mode one: 1 of 3 matching target(s) would be hit for 30s\n  \
             - web-1 (container c1)\n"
        );
        let no_plan = DryRunResult {
            plan: None,
            ..result.clone()
        };
        assert!(describe_dry_run(&no_plan).contains("valid (dry run; name an environment"));
        let warned = DryRunResult {
            warnings: vec!["no target matched".into()],
            ..result
        };
        assert!(describe_dry_run(&warned).ends_with("  warning: no target matched\n"));
        let federated: DryRunResult = serde_json::from_value(json!({
            "valid": true,
            "manifest": {"kind": "NetworkChaos", "metadata": {"name": "d"}},
            "plan": {
                "environment": "eu", "adapter": "kubernetes", "kind": "NetworkChaos",
                "actions": ["delay"], "mode": "all", "matched": 1,
                "targets": [{"environment": "eu", "adapter": "kubernetes", "kind": "chaos-mesh",
                             "id": "shop/NetworkChaos/d", "name": "d", "namespace": "shop"}],
                "farSide": {"selectedBy": "Chaos Mesh", "matched": 2, "targets": [
                    {"environment": "eu", "adapter": "kubernetes", "kind": "pod", "id": "u1",
                     "name": "web-0", "namespace": "shop"}]},
            },
        }))
        .unwrap();
        assert!(
            describe_dry_run(&federated).ends_with(
                "  - shop/d (chaos-mesh shop/NetworkChaos/d)\n  Chaos Mesh selects when it runs: \
                 1 of 2 matching target(s) now\n    - shop/web-0 (pod u1)\n"
            ),
            "{}",
            describe_dry_run(&federated)
        );
    }
}
