//! Credentials and the security commands: where the CLI finds its hub and token (`--token`,
//! `CHAOSHUB_TOKEN`, a context of `~/.config/chaoshub/config.toml`, a local hub's admin
//! token), and `token`, `login`, `audit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chaoshub_schema::api::Page;
use chaoshub_schema::auth::{AuditRecord, CreateTokenRequest, CreatedToken, Role, TokenInfo};
use serde::{Deserialize, Serialize};

use super::client::{CliError, HubClient};
use super::output::{emit, render_structured, Table};
use super::{ClientOptions, ExitCode, OutputFormat};

/// The hub a command talks to when nothing else names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// `~/.config/chaoshub/config.toml`: contexts like kubectl's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CliConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One hub: where it is and how to prove who we are to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the token (read at each command), instead of `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The CA certificate that signed the hub's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// `$CHAOSHUB_CONFIG`, else `$XDG_CONFIG_HOME/chaoshub/config.toml`, else
/// `~/.config/chaoshub/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHAOSHUB_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(dir).join("chaoshub/config.toml"));
    }
    std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .map(|home| PathBuf::from(home).join(".config/chaoshub/config.toml"))
}

pub fn load_config(path: &Path) -> Result<CliConfig, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CliConfig::default()),
        Err(e) => Err(CliError::Usage(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Where the hub and the token come from, resolved once per command.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub server: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Resolves the hub and the token:
/// 1. `--server` / `CHAOSHUB_SERVER`, else the context's server, else 127.0.0.1:7070;
/// 2. `--token` / `CHAOSHUB_TOKEN`; else the context's token when the server is the
///    context's; else the admin token a hub on this machine left a note for (the data dir's
///    `admin.token`, readable only by the user who runs that hub); else, for a loopback
///    server, `./chaoshub-data/admin.token` (the default data dir of a hub started here).
pub fn resolve(options: &ClientOptions) -> Result<Resolved, CliError> {
    let config = match config_path() {
        Some(path) => load_config(&path)?,
        None => CliConfig::default(),
    };
    resolve_with(options, &config)
}

pub fn resolve_with(options: &ClientOptions, config: &CliConfig) -> Result<Resolved, CliError> {
    let context_name = options
        .context
        .clone()
        .or_else(|| config.current_context.clone());
    let context = match &context_name {
        Some(name) => match config.contexts.get(name) {
            Some(c) => Some(c),
            None if options.context.is_some() => {
                let known: Vec<&str> = config.contexts.keys().map(String::as_str).collect();
                return Err(CliError::Usage(format!(
                    "no context {name:?} in the CLI config (known: {})",
                    if known.is_empty() {
                        "none; create one with `chaoshub login`".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            None => None,
        },
        None => None,
    };
    let server = options
        .server
        .clone()
        .or_else(|| context.map(|c| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let same_hub = |c: &Context| same_server(&c.server, &server);
    let context = context.filter(|c| same_hub(c));
    let mut token = options.token.clone().filter(|t| !t.trim().is_empty());
    if token.is_none() {
        if let Some(c) = context {
            token = match (&c.token, &c.token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(file)) => Some(
                    crate::auth::bootstrap::read_token_file(file).ok_or_else(|| {
                        CliError::Usage(format!(
                            "cannot read the token file {} of the CLI context",
                            file.display()
                        ))
                    })?,
                ),
                (None, None) => None,
            };
        }
    }
    if token.is_none() {
        token = local_hub_token(&server);
    }
    Ok(Resolved {
        server,
        token,
        ca_file: options
            .ca_file
            .clone()
            .or_else(|| context.and_then(|c| c.ca_file.clone())),
    })
}

/// Reads the CA certificate (PEM) to trust for an https:// hub, if one is named.
pub fn read_ca(path: Option<&Path>) -> Result<Option<Vec<u8>>, CliError> {
    match path {
        Some(path) => std::fs::read(path)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", path.display()))),
        None => Ok(None),
    }
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn local_hub_token(server: &str) -> Option<String> {
    let url = reqwest::Url::parse(server).ok()?;
    let host = url.host_str()?.to_string();
    let port = url.port_or_known_default()?;
    if let Some(token) = crate::auth::bootstrap::local_token(&host, port) {
        return Some(token);
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return crate::auth::bootstrap::read_token_file(
            &Path::new("chaoshub-data").join(crate::auth::bootstrap::ADMIN_TOKEN_FILE),
        );
    }
    None
}

/// `token …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (once: the hub keeps only its hash).
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a token: it is refused from its next request on.
    Revoke {
        /// Token name.
        name: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenCreateArgs {
    /// Token name (how it appears in the audit log).
    pub name: String,
    /// viewer (read), operator (also run and stop experiments) or admin (everything).
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// A namespace the token may act in (repeat; default all).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// An environment the token may act in (repeat; default all).
    #[arg(long = "environment", value_name = "ENV")]
    pub environments: Vec<String>,
    /// Lifetime, e.g. 30d or 12h (default: no expiry).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
}

/// `login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// A file holding the token (e.g. the hub's data-dir/admin.token, or the output of
    /// `token create`); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// Name of the context to write (default: the server's host and port).
    #[arg(long = "name", value_name = "NAME")]
    pub context_name: Option<String>,
    /// CA certificate of the hub's TLS certificate, stored with the context.
    #[arg(long = "context-ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `audit`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuditArgs {
    /// Only entries of this principal (token name or JWT subject).
    #[arg(long)]
    pub principal: Option<String>,
    /// Only entries whose object contains this text (an experiment's name or uid…).
    #[arg(long)]
    pub object: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only success, denied or failure.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Keep printing new entries until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text)
        .ok_or_else(|| format!("unknown role {text:?}; expected viewer, operator or admin"))
}

pub async fn token(
    client: &HubClient,
    format: OutputFormat,
    command: TokenCommand,
) -> Result<ExitCode, CliError> {
    match command {
        TokenCommand::Create(args) => {
            let request = CreateTokenRequest {
                name: args.name,
                role: args.role,
                namespaces: args.namespaces,
                environments: args.environments,
                expires: args.expires,
            };
            let created: CreatedToken = client
                .post(&["api", "v1", "tokens"], &[], Some(&request))
                .await?;
            match format {
                OutputFormat::Table => {
                    emit(&format!("{}\n", created.token));
                    eprintln!(
                        "token {:?} (role {}) created; it is shown only this once",
                        created.info.name, created.info.role
                    );
                }
                _ => emit(&render_structured(format, &created)?),
            }
            Ok(ExitCode::Success)
        }
        TokenCommand::List => {
            let page: Page<TokenInfo> = client.get(&["api", "v1", "tokens"], &[]).await?;
            match format {
                OutputFormat::Table => {
                    let mut table = Table::new(&[
                        "NAME",
                        "ROLE",
                        "NAMESPACES",
                        "ENVIRONMENTS",
                        "EXPIRES",
                        "LAST USED",
                        "STATUS",
                    ]);
                    for t in &page.items {
                        table.push(vec![
                            t.name.clone(),
                            t.role.to_string(),
                            t.namespaces.join(","),
                            if t.environments.is_empty() {
                                "*".into()
                            } else {
                                t.environments.join(",")
                            },
                            t.expires_at.clone().unwrap_or_else(|| "never".into()),
                            t.last_used_at.clone().unwrap_or_else(|| "-".into()),
                            if t.revoked_at.is_some() {
                                "revoked".into()
                            } else {
                                "active".into()
                            },
                        ]);
                    }
                    emit(&table.render());
                }
                _ => emit(&render_structured(format, &page)?),
            }
            Ok(ExitCode::Success)
        }
        TokenCommand::Revoke { name } => {
            let info: TokenInfo = client.delete(&["api", "v1", "tokens", &name], &[]).await?;
            match format {
                OutputFormat::Table => emit(&format!("token {:?} revoked\n", info.name)),
                _ => emit(&render_structured(format, &info)?),
            }
            Ok(ExitCode::Success)
        }
    }
}

/// Checks the token against the hub, then writes the context and makes it current.
pub async fn login(options: &ClientOptions, args: &LoginArgs) -> Result<ExitCode, CliError> {
    let server = options
        .server
        .clone()
        .ok_or_else(|| CliError::Usage("login needs --server URL (the hub to log in to)".into()))?;
    let token = if args.token_file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| CliError::Usage(format!("cannot read the token from stdin: {e}")))?;
        text.lines().next().unwrap_or("").trim().to_string()
    } else {
        crate::auth::bootstrap::read_token_file(&args.token_file).ok_or_else(|| {
            CliError::Usage(format!(
                "cannot read a token from {}",
                args.token_file.display()
            ))
        })?
    };
    if token.is_empty() {
        return Err(CliError::Usage("the token file is empty".into()));
    }
    let ca_file = args.ca_file.clone().or_else(|| options.ca_file.clone());
    let client = HubClient::with_ca(
        &server,
        Some(token.clone()),
        options.request_timeout,
        read_ca(ca_file.as_deref())?.as_deref(),
    )?;
    // Any authenticated read proves the token; adapters are readable by every role.
    let _: serde_json::Value = client.get(&["api", "v1", "adapters"], &[]).await?;
    let path = config_path().ok_or_else(|| {
        CliError::Usage(
            "cannot tell where the CLI config lives: set HOME or CHAOSHUB_CONFIG".into(),
        )
    })?;
    let mut config = load_config(&path)?;
    let name = args.context_name.clone().unwrap_or_else(|| {
        reqwest::Url::parse(&server)
            .ok()
            .and_then(|u| {
                Some(format!(
                    "{}-{}",
                    u.host_str()?.replace([':', '[', ']'], "_"),
                    u.port_or_known_default()?
                ))
            })
            .unwrap_or_else(|| "default".into())
    });
    config.contexts.insert(
        name.clone(),
        Context {
            server: server.clone(),
            token: Some(token),
            token_file: None,
            ca_file,
        },
    );
    config.current_context = Some(name.clone());
    let text = toml::to_string(&config)
        .map_err(|e| CliError::Protocol(format!("cannot write the CLI config: {e}")))?;
    crate::auth::bootstrap::write_secret(&path, &text)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "logged in to {server}; context {name:?} written to {} (mode 0600) and made current",
        path.display()
    );
    Ok(ExitCode::Success)
}

pub async fn audit(
    client: &HubClient,
    format: OutputFormat,
    args: &AuditArgs,
) -> Result<ExitCode, CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &args.principal {
        query.push(("principal", p.clone()));
    }
    if let Some(o) = &args.object {
        query.push(("object", o.clone()));
    }
    if let Some(s) = &args.since {
        query.push(("since", s.clone()));
    }
    if let Some(o) = &args.outcome {
        query.push(("outcome", o.clone()));
    }
    let page: Page<AuditRecord> = client.get(&["api", "v1", "audit"], &query).await?;
    // Newest first from the hub; shown oldest first, like the event log.
    let mut items = page.items;
    items.reverse();
    let mut last = items.last().map(|a| a.id).unwrap_or(0);
    print_audit(format, &items, !args.follow)?;
    if !args.follow {
        return Ok(ExitCode::Success);
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut q = query.clone();
        q.push(("after", last.to_string()));
        let page: Page<AuditRecord> = client.get(&["api", "v1", "audit"], &q).await?;
        if let Some(a) = page.items.last() {
            last = a.id;
        }
        print_audit(format, &page.items, false)?;
    }
}

fn print_audit(
    format: OutputFormat,
    items: &[AuditRecord],
    note_empty: bool,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Table => {
            if items.is_empty() {
                if note_empty {
                    eprintln!("no audit entries found");
                }
                return Ok(());
            }
            let mut table = Table::new(&[
                "TIME",
                "PRINCIPAL",
                "ROLE",
                "SOURCE",
                "REQUEST",
                "OBJECT",
                "OUTCOME",
                "STATUS",
            ]);
            for a in items {
                table.push(vec![
                    a.time.clone(),
                    a.principal.clone(),
                    a.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                    a.source.clone(),
                    format!("{} {}", a.method, a.path),
                    a.object.clone().unwrap_or_else(|| "-".into()),
                    a.outcome.clone(),
                    a.status.to_string(),
                ]);
            }
            emit(&table.render());
        }
        _ => {
            for a in items {
                emit(&render_structured(format, a)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(server: Option<&str>, token: Option<&str>, context: Option<&str>) -> ClientOptions {
        ClientOptions {
            server: server.map(str::to_string),
            output: OutputFormat::Table,
            ca_file: None,
            token: token.map(str::to_string),
            context: context.map(str::to_string),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn contexts_resolve_like_kubectl() {
        let mut config = CliConfig {
            current_context: Some("prod".into()),
            ..Default::default()
        };
        config.contexts.insert(
            "prod".into(),
            Context {
                server: "https://hub.example:7070".into(),
                token: Some("t-prod".into()),
                token_file: None,
                ca_file: Some("/etc/ca.pem".into()),
            },
        );
        config.contexts.insert(
            "lab".into(),
            Context {
                server: "http://lab:7070".into(),
                token: Some("t-lab".into()),
                ..Default::default()
            },
        );
        let r = resolve_with(&options(None, None, None), &config).unwrap();
        assert_eq!(r.server, "https://hub.example:7070");
        assert_eq!(r.token.as_deref(), Some("t-prod"));
        assert_eq!(r.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        let r = resolve_with(&options(None, None, Some("lab")), &config).unwrap();
        assert_eq!(r.token.as_deref(), Some("t-lab"));
        // --token wins over the context.
        let r = resolve_with(&options(None, Some("flag"), None), &config).unwrap();
        assert_eq!(r.token.as_deref(), Some("flag"));
        // Another server than the context's never gets the context's token.
        let r = resolve_with(&options(Some("http://elsewhere:1"), None, None), &config).unwrap();
        assert_eq!(r.token, None);
        let err = resolve_with(&options(None, None, Some("nope")), &config).unwrap_err();
        assert!(format!("{err:?}").contains("lab, prod"), "{err:?}");
    }

    #[test]
    fn config_file_round_trips() {
        let mut config = CliConfig {
            current_context: Some("a".into()),
            ..Default::default()
        };
        config.contexts.insert(
            "a".into(),
            Context {
                server: "http://a:1".into(),
                token: Some("x".into()),
                ..Default::default()
            },
        );
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("current-context = \"a\""), "{text}");
        assert_eq!(toml::from_str::<CliConfig>(&text).unwrap(), config);
    }
}
