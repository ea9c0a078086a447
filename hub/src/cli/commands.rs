//! Carrying out the client commands other than `apply` and `events`.

use chaoshub_schema::api::{
    AdapterInfo, EnvironmentObject, EventRecord, ExperimentObject, HaltRequest, HaltStatus, Health,
};
use chaoshub_schema::Target;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::apply::{self, read_input, route, split, Route};
use super::client::{render_error, CliError, HubClient};
use super::events;
use super::output::{
    adapters_table, describe_experiment, describe_halt, emit, environments_table, experiment_ref,
    experiments_table, render_structured, targets_table, ItemList, OutputFormat, Table,
};
use super::{
    AdaptersArgs, ClientCommand, ClientOptions, DescribeCommand, EnvCommand, ExitCode,
    ExperimentRef, GetCommand, GetExperimentsArgs, HaltArgs, HaltCommand, TargetsArgs,
};

/// `{"items": [...]}` answers that are not paged.
#[derive(Debug, Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

pub async fn execute(
    options: &ClientOptions,
    command: ClientCommand,
) -> Result<ExitCode, CliError> {
    let resolved = super::auth::resolve(options)?;
    let client = HubClient::with_ca(
        &resolved.server,
        resolved.token,
        options.request_timeout,
        super::auth::read_ca(resolved.ca_file.as_deref())?.as_deref(),
    )?;
    let format = options.output;
    match command {
        ClientCommand::Token(command) => super::auth::token(&client, format, command).await,
        ClientCommand::Audit(args) => super::auth::audit(&client, format, &args).await,
        ClientCommand::Login(args) => super::auth::login(options, &args).await,
        ClientCommand::Apply(args) => apply::apply(&client, format, &args).await,
        ClientCommand::Get(GetCommand::Experiments(args)) => {
            get_experiments(&client, format, &args).await
        }
        ClientCommand::Get(GetCommand::Environments) | ClientCommand::Env(EnvCommand::List) => {
            list_environments(&client, format).await
        }
        ClientCommand::Get(GetCommand::Adapters)
        | ClientCommand::Adapters(AdaptersArgs { matrix: false }) => {
            list_adapters(&client, format).await
        }
        ClientCommand::Adapters(AdaptersArgs { matrix: true }) => {
            conformance_matrix(&client, format).await
        }
        ClientCommand::Get(GetCommand::Targets(args))
        | ClientCommand::Env(EnvCommand::Targets(args)) => {
            list_targets(&client, format, &args).await
        }
        ClientCommand::Get(GetCommand::Events(args)) | ClientCommand::Events(args) => {
            events::events(&client, format, &args).await
        }
        ClientCommand::Describe(DescribeCommand::Experiment(reference)) => {
            describe(&client, format, &reference).await
        }
        ClientCommand::Pause(reference) => lifecycle(&client, format, &reference, "pause").await,
        ClientCommand::Resume(reference) => lifecycle(&client, format, &reference, "resume").await,
        ClientCommand::Stop(reference) => lifecycle(&client, format, &reference, "stop").await,
        ClientCommand::Delete(reference) => lifecycle(&client, format, &reference, "delete").await,
        ClientCommand::Env(EnvCommand::Add { file }) => env_add(&client, format, &file).await,
        ClientCommand::Env(EnvCommand::Get { name }) => env_get(&client, format, &name).await,
        ClientCommand::Env(EnvCommand::Delete { name }) => env_delete(&client, format, &name).await,
        ClientCommand::Env(EnvCommand::JoinToken { name, expires }) => {
            super::agents::create(&client, format, &name, &expires).await
        }
        ClientCommand::Env(EnvCommand::JoinTokens { name }) => {
            super::agents::list(&client, format, &name).await
        }
        ClientCommand::Env(EnvCommand::RevokeJoinToken { name, id }) => {
            super::agents::revoke(&client, format, &name, &id).await
        }
        ClientCommand::Env(EnvCommand::RemoveAgent { name, agent }) => {
            super::agents::remove_agent(&client, format, &name, &agent).await
        }
        ClientCommand::Halt(args) => halt(&client, format, &args).await,
        ClientCommand::Unhalt => {
            let status: HaltStatus = client.delete(&["api", "v1", "halt"], &[]).await?;
            print_halt(format, &status)
        }
        ClientCommand::Version => version(&client, format).await,
        ClientCommand::Health => health(&client, format).await,
        ClientCommand::Catalog(command) => super::catalog::execute(&client, format, command).await,
        ClientCommand::Run(args) => super::run::run(&client, format, &args).await,
    }
}

/// Prints a listing: a table (or a note on stderr when it is empty) or the `items` envelope.
fn print_list<T: Serialize>(
    format: OutputFormat,
    items: &[T],
    what: &str,
    table: impl FnOnce(&[T]) -> Table,
) -> Result<ExitCode, CliError> {
    match format {
        OutputFormat::Table if items.is_empty() => eprintln!("no {what} found"),
        OutputFormat::Table => emit(&table(items).render()),
        _ => emit(&render_structured(format, &ItemList { items })?),
    }
    Ok(ExitCode::Success)
}

/// The query of `get experiments`.
pub fn experiment_query(args: &GetExperimentsArgs) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(phase) = args.phase {
        query.push(("phase", phase.as_str().to_string()));
    }
    if let Some(kind) = &args.kind {
        query.push(("kind", kind.clone()));
    }
    if let Some(namespace) = &args.namespace {
        query.push(("namespace", namespace.clone()));
    }
    if let Some(env) = &args.env {
        query.push(("env", env.clone()));
    }
    query
}

async fn get_experiments(
    client: &HubClient,
    format: OutputFormat,
    args: &GetExperimentsArgs,
) -> Result<ExitCode, CliError> {
    let collection = if args.archived {
        "archives"
    } else {
        "experiments"
    };
    let items: Vec<ExperimentObject> = client
        .list_all(&["api", "v1", collection], &experiment_query(args))
        .await?;
    let what = if args.archived {
        "archived experiments"
    } else {
        "experiments"
    };
    let now = Utc::now();
    print_list(format, &items, what, |items| experiments_table(items, now))
}

async fn conformance_matrix(
    client: &HubClient,
    format: OutputFormat,
) -> Result<ExitCode, CliError> {
    let matrix: chaoshub_schema::api::ConformanceMatrix =
        client.get(&["api", "v1", "conformance"], &[]).await?;
    match format {
        OutputFormat::Table => emit(&super::output::conformance_table(&matrix)),
        _ => emit(&render_structured(format, &matrix)?),
    }
    Ok(ExitCode::Success)
}

async fn list_environments(client: &HubClient, format: OutputFormat) -> Result<ExitCode, CliError> {
    let items: Vec<EnvironmentObject> =
        client.list_all(&["api", "v1", "environments"], &[]).await?;
    print_list(format, &items, "environments", environments_table)
}

async fn list_adapters(client: &HubClient, format: OutputFormat) -> Result<ExitCode, CliError> {
    let answer: Items<AdapterInfo> = client.get(&["api", "v1", "adapters"], &[]).await?;
    print_list(format, &answer.items, "adapters", adapters_table)
}

async fn list_targets(
    client: &HubClient,
    format: OutputFormat,
    args: &TargetsArgs,
) -> Result<ExitCode, CliError> {
    let query: Vec<(&str, String)> = match &args.selector {
        Some(selector) if !selector.0.is_empty() => vec![("labelSelector", selector.to_query())],
        _ => Vec::new(),
    };
    // Every page: the hub hands out at most 500 targets at once unless asked for more.
    let items: Vec<Target> = client
        .list_all(&["api", "v1", "environments", &args.env, "targets"], &query)
        .await?;
    let what = format!("targets in environment {:?}", args.env);
    print_list(format, &items, &what, targets_table)
}

fn namespace_query(reference: &ExperimentRef) -> Vec<(&'static str, String)> {
    reference
        .namespace
        .iter()
        .map(|n| ("namespace", n.clone()))
        .collect()
}

async fn describe(
    client: &HubClient,
    format: OutputFormat,
    reference: &ExperimentRef,
) -> Result<ExitCode, CliError> {
    let object: ExperimentObject = client
        .get(
            &["api", "v1", "experiments", &reference.id],
            &namespace_query(reference),
        )
        .await?;
    if format != OutputFormat::Table {
        emit(&render_structured(format, &object)?);
        return Ok(ExitCode::Success);
    }
    let events: Vec<EventRecord> = match &object.metadata.uid {
        Some(uid) => {
            let query = [("experiment", uid.clone())];
            // The experiment itself was found; a failure to list its events should not hide it.
            match events::list_events(client, &query, None).await {
                Ok(events) => events,
                Err(error) => {
                    eprint!("warning: cannot list events: {}", render_error(&error));
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    emit(&describe_experiment(&object, &events, Utc::now()));
    Ok(ExitCode::Success)
}

/// The line shown after pause/resume/stop/delete. The hub answers as soon as it has recorded
/// the request, usually before the engine has acted on it; the line says which of the two it is.
pub fn lifecycle_message(action: &str, object: &ExperimentObject) -> String {
    use chaoshub_schema::api::ExperimentPhase as P;
    let phase = object.status.phase;
    let done = match action {
        "pause" => phase == P::Paused,
        "resume" => matches!(phase, P::Running | P::Injecting),
        "stop" => phase.is_terminal(),
        "delete" => true,
        _ => false,
    };
    let verb = match (action, done) {
        ("pause", true) => "paused".to_string(),
        ("resume", true) => "resumed".to_string(),
        ("stop", true) => "stopped".to_string(),
        ("delete", _) => "deleted".to_string(),
        (other, _) => format!("{other} requested"),
    };
    format!("{} {verb} (phase {phase})\n", experiment_ref(object))
}

async fn lifecycle(
    client: &HubClient,
    format: OutputFormat,
    reference: &ExperimentRef,
    action: &str,
) -> Result<ExitCode, CliError> {
    let query = namespace_query(reference);
    let object: ExperimentObject = if action == "delete" {
        client
            .delete(&["api", "v1", "experiments", &reference.id], &query)
            .await?
    } else {
        client
            .post::<_, ()>(
                &["api", "v1", "experiments", &reference.id, action],
                &query,
                None,
            )
            .await?
    };
    match format {
        OutputFormat::Table => emit(&lifecycle_message(action, &object)),
        _ => emit(&render_structured(format, &object)?),
    }
    Ok(ExitCode::Success)
}

async fn env_add(
    client: &HubClient,
    format: OutputFormat,
    file: &std::path::Path,
) -> Result<ExitCode, CliError> {
    let text = read_input(file)?;
    let documents = split(&text, file)?;
    if let Some(index) = documents
        .iter()
        .position(|d| route(d) != Route::Environment)
    {
        return Err(CliError::Usage(format!(
            "{}: document {} ({}) is not an Environment (apiVersion chaoshub.dev/v1alpha1); \
             use `chaoshub apply -f` for experiments",
            file.display(),
            index + 1,
            apply::document_ref(&documents[index], index)
        )));
    }
    let mut first_failure = None;
    let mut created = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        match client
            .post::<EnvironmentObject, _>(&["api", "v1", "environments"], &[], Some(document))
            .await
        {
            Ok(object) => created.push(object),
            Err(error) => {
                eprint!(
                    "{}: {}",
                    apply::document_ref(document, index),
                    render_error(&error)
                );
                if error.exit_code() == ExitCode::Unreachable {
                    return Ok(ExitCode::Unreachable);
                }
                first_failure.get_or_insert(error.exit_code());
            }
        }
    }
    match format {
        OutputFormat::Table => {
            for object in &created {
                emit(&format!(
                    "environment/{} registered (adapter {})\n",
                    object.metadata.name.as_deref().unwrap_or("?"),
                    object.spec.adapter
                ));
            }
        }
        _ => {
            for (i, object) in created.iter().enumerate() {
                if format == OutputFormat::Yaml && i > 0 {
                    emit("---\n");
                }
                emit(&render_structured(format, object)?);
            }
        }
    }
    Ok(first_failure.unwrap_or(ExitCode::Success))
}

async fn env_get(
    client: &HubClient,
    format: OutputFormat,
    name: &str,
) -> Result<ExitCode, CliError> {
    let object: EnvironmentObject = client
        .get(&["api", "v1", "environments", name], &[])
        .await?;
    match format {
        OutputFormat::Table => {
            let mut text = environments_table(std::slice::from_ref(&object)).render();
            if let Some(description) = &object.spec.description {
                text.push_str(&format!("\nDescription: {description}\n"));
            }
            emit(&text);
        }
        _ => emit(&render_structured(format, &object)?),
    }
    Ok(ExitCode::Success)
}

async fn env_delete(
    client: &HubClient,
    format: OutputFormat,
    name: &str,
) -> Result<ExitCode, CliError> {
    // The hub may answer with the removed object or with nothing useful; either is success.
    let answer: serde_json::Value = client
        .delete(&["api", "v1", "environments", name], &[])
        .await?;
    match format {
        OutputFormat::Table => emit(&format!("environment/{name} deleted\n")),
        _ => emit(&render_structured(format, &answer)?),
    }
    Ok(ExitCode::Success)
}

async fn halt(
    client: &HubClient,
    format: OutputFormat,
    args: &HaltArgs,
) -> Result<ExitCode, CliError> {
    let status: HaltStatus = match args.action {
        Some(HaltCommand::Status) => client.get(&["api", "v1", "halt"], &[]).await?,
        None => {
            let body = HaltRequest {
                reason: args.reason.clone(),
            };
            client
                .post(&["api", "v1", "halt"], &[], Some(&body))
                .await?
        }
    };
    print_halt(format, &status)
}

fn print_halt(format: OutputFormat, status: &HaltStatus) -> Result<ExitCode, CliError> {
    match format {
        OutputFormat::Table => emit(&describe_halt(status)),
        _ => emit(&render_structured(format, status)?),
    }
    Ok(ExitCode::Success)
}

/// `version -o json|yaml`.
#[derive(Debug, Serialize)]
struct Versions {
    client: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
}

const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

async fn version(client: &HubClient, format: OutputFormat) -> Result<ExitCode, CliError> {
    // The client's own version is worth printing even when the hub cannot be asked for its own.
    let server = client.get::<Health>(&["healthz"], &[]).await;
    let versions = Versions {
        client: CLIENT_VERSION,
        server: server.as_ref().ok().map(|h| h.version.clone()),
    };
    match format {
        OutputFormat::Table => {
            let mut text = format!("client: {CLIENT_VERSION}\n");
            if let Some(v) = &versions.server {
                text.push_str(&format!("server: {v} ({})\n", client.server()));
            }
            emit(&text);
        }
        _ => emit(&render_structured(format, &versions)?),
    }
    server.map(|_| ExitCode::Success)
}

async fn health(client: &HubClient, format: OutputFormat) -> Result<ExitCode, CliError> {
    let health: Health = client.get(&["healthz"], &[]).await?;
    match format {
        OutputFormat::Table => emit(&format!(
            "{} (hub {} at {})\n",
            health.status,
            health.version,
            client.server()
        )),
        _ => emit(&render_structured(format, &health)?),
    }
    if health.status == "ok" {
        Ok(ExitCode::Success)
    } else {
        Ok(ExitCode::Failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::api::ExperimentPhase;

    #[test]
    fn experiment_filters_become_query_parameters() {
        let args = GetExperimentsArgs {
            phase: Some(ExperimentPhase::Running),
            kind: Some("NetworkChaos".into()),
            namespace: Some("payments".into()),
            env: Some("staging".into()),
            archived: false,
        };
        assert_eq!(
            experiment_query(&args),
            vec![
                ("phase", "Running".to_string()),
                ("kind", "NetworkChaos".to_string()),
                ("namespace", "payments".to_string()),
                ("env", "staging".to_string()),
            ]
        );
        assert!(experiment_query(&GetExperimentsArgs::default()).is_empty());
    }

    #[test]
    fn lifecycle_messages_say_whether_the_change_happened() {
        let mut object: ExperimentObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "chaos-mesh.org/v1alpha1",
            "kind": "NetworkChaos",
            "metadata": {"name": "web-delay", "uid": "u1"},
            "spec": {},
            "status": {"phase": "Running", "desired": "Pause", "environment": "e",
                       "adapter": "a", "actions": [], "createdAt": "2024-05-01T12:00:00Z"},
        }))
        .unwrap();
        assert_eq!(
            lifecycle_message("pause", &object),
            "networkchaos/web-delay pause requested (phase Running)\n"
        );
        assert_eq!(
            lifecycle_message("resume", &object),
            "networkchaos/web-delay resumed (phase Running)\n"
        );
        object.status.phase = ExperimentPhase::Paused;
        assert_eq!(
            lifecycle_message("pause", &object),
            "networkchaos/web-delay paused (phase Paused)\n"
        );
        assert_eq!(
            lifecycle_message("stop", &object),
            "networkchaos/web-delay stop requested (phase Paused)\n"
        );
        object.status.phase = ExperimentPhase::Aborted;
        assert_eq!(
            lifecycle_message("delete", &object),
            "networkchaos/web-delay deleted (phase Aborted)\n"
        );
    }

    #[test]
    fn non_paged_items_decode() {
        let answer: Items<AdapterInfo> = serde_json::from_str(
            r#"{"items":[{"type":"native","description":"d","capabilities":[],"dynamicCapabilities":false}]}"#,
        )
        .unwrap();
        assert_eq!(answer.items[0].adapter_type, "native");
    }
}
