//! `chaoshub env join-token ENV`, `env join-tokens ENV`, `env revoke-join-token ENV ID` and
//! `env remove-agent ENV NAME`: agent admission, for admins.

use chaoshub_schema::api::{JoinTokenInfo, JoinTokenRequest, Page};

use super::client::{CliError, HubClient};
use super::output::{emit, render_structured, ItemList, OutputFormat, Table};
use super::ExitCode;

/// Creates a join token. In table format only the secret goes to stdout (so
/// `chaoshub env join-token edge > edge.token` makes the file an agent reads), the rest to
/// stderr.
pub async fn create(
    client: &HubClient,
    format: OutputFormat,
    environment: &str,
    expires: &str,
) -> Result<ExitCode, CliError> {
    let request = JoinTokenRequest {
        expires: Some(expires.to_string()),
    };
    let token: JoinTokenInfo = client
        .post(
            &["api", "v1", "environments", environment, "join-tokens"],
            &[],
            Some(&request),
        )
        .await?;
    match format {
        OutputFormat::Table => {
            emit(&format!("{}\n", token.token.as_deref().unwrap_or_default()));
            eprintln!(
                "join token {} for environment {environment}, expires {}; shown once. Start agents with:\n  chaos-agent serve --hub {} --env {environment} --join-token-file FILE",
                token.id,
                token.expires_at.as_deref().unwrap_or("never"),
                client.server()
            );
        }
        _ => emit(&render_structured(format, &token)?),
    }
    Ok(ExitCode::Success)
}

pub async fn list(
    client: &HubClient,
    format: OutputFormat,
    environment: &str,
) -> Result<ExitCode, CliError> {
    let page: Page<JoinTokenInfo> = client
        .get(
            &["api", "v1", "environments", environment, "join-tokens"],
            &[],
        )
        .await?;
    match format {
        OutputFormat::Table => {
            let mut table = Table::new(&["ID", "STATE", "CREATED", "EXPIRES", "USES", "LAST USED"]);
            for t in &page.items {
                table.push(vec![
                    t.id.clone(),
                    t.state.clone(),
                    t.created_at.clone(),
                    t.expires_at.clone().unwrap_or_else(|| "never".into()),
                    t.uses.to_string(),
                    t.last_used_at.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            emit(&table.render());
        }
        _ => emit(&render_structured(
            format,
            &ItemList { items: &page.items },
        )?),
    }
    Ok(ExitCode::Success)
}

pub async fn revoke(
    client: &HubClient,
    format: OutputFormat,
    environment: &str,
    id: &str,
) -> Result<ExitCode, CliError> {
    let token: JoinTokenInfo = client
        .delete(
            &["api", "v1", "environments", environment, "join-tokens", id],
            &[],
        )
        .await?;
    match format {
        OutputFormat::Table => emit(&format!(
            "join token {id} of environment {environment} revoked\n"
        )),
        _ => emit(&render_structured(format, &token)?),
    }
    Ok(ExitCode::Success)
}

pub async fn remove_agent(
    client: &HubClient,
    format: OutputFormat,
    environment: &str,
    name: &str,
) -> Result<ExitCode, CliError> {
    let answer: serde_json::Value = client
        .delete(&["api", "v1", "agents", environment, name], &[])
        .await?;
    match format {
        OutputFormat::Table => emit(&format!(
            "agent {name} of environment {environment} removed; its name may join again with a join token\n"
        )),
        _ => emit(&render_structured(format, &answer)?),
    }
    Ok(ExitCode::Success)
}
