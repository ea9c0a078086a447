//! The `chaoshub` client commands: everything but `serve` talks to a hub over its REST API.
//!
//! Layout: this file holds the command-line shape (clap types) and [`run`]; `client` is the HTTP
//! client and the mapping of failures onto exit codes; `output` renders tables, `describe` pages,
//! JSON and YAML; `commands`, `apply` and `events` carry out the commands.
//!
//! # Exit codes
//!
//! Scripts rely on these; keep them stable.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the hub refused the request or the operation failed (4xx other than 404, 5xx, an experiment that failed under `--wait`, a suite case that failed or errored under `run`) |
//! | 2 | usage error: bad flags or arguments (clap), an unreadable or unparsable input file |
//! | 3 | the hub is unreachable or did not answer within `--request-timeout` |
//! | 4 | not found (404) |
//! | 5 | timed out waiting (`apply --wait --timeout`, `run --timeout`) |

mod agents;
mod apply;
pub mod auth;
mod catalog;
mod client;
mod commands;
mod events;
mod output;
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chaoshub_schema::api::ExperimentPhase;

pub use catalog::CatalogCommand;
pub use client::{render_error, CliError, HubClient};
pub use output::OutputFormat;

/// The exit-code table shown under `--help`; the same as in the module documentation.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the hub refused the request or the operation failed (4xx other than 404, 5xx,
     an experiment that failed under --wait, a suite case that failed under run)
  2  usage error (bad flags or arguments, unreadable or unparsable input file)
  3  the hub is unreachable or did not answer within --request-timeout
  4  not found (404)
  5  timed out waiting (apply --wait --timeout, run --timeout)";

/// Process exit codes of client commands (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Everything worked.
    Success = 0,
    /// The hub refused the request, or the operation failed.
    Failure = 1,
    /// The command line or an input file is unusable (also clap's own code).
    Usage = 2,
    /// The hub could not be reached or did not answer in time.
    Unreachable = 3,
    /// The hub answered 404.
    NotFound = 4,
    /// Waiting for an outcome took longer than `--timeout`.
    TimedOut = 5,
}

impl From<ExitCode> for i32 {
    fn from(code: ExitCode) -> i32 {
        code as i32
    }
}

/// Global options of client commands (they may appear before or after the subcommand).
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct ClientOptions {
    /// Hub URL (default: the current context's, else http://127.0.0.1:7070).
    #[arg(long, global = true, env = "CHAOSHUB_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// CA certificate (PEM) to trust for an https:// hub, e.g. the one
    /// `chaoshub serve --tls-self-signed` prints (default: the context's, else the system's
    /// roots).
    #[arg(long, global = true, env = "CHAOSHUB_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// API token, sent as `Authorization: Bearer <token>` (default: the context's, else the
    /// admin token of a hub started on this machine).
    #[arg(long, global = true, env = "CHAOSHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Context of the CLI config (~/.config/chaoshub/config.toml) to use instead of its
    /// current one.
    #[arg(long, global = true, env = "CHAOSHUB_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// How long one HTTP request may take (e.g. 30s, 2m).
    #[arg(
        long,
        global = true,
        default_value = "30s",
        value_name = "DURATION",
        value_parser = parse_duration_arg
    )]
    pub request_timeout: Duration,
}

/// Client subcommands of `chaoshub`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Create experiments and register environments from a manifest file.
    ///
    /// The file may hold several YAML or JSON documents separated by `---`. Documents of kind
    /// Environment (chaoshub.dev/v1alpha1) register environments; every other document creates
    /// an experiment.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Apply(ApplyArgs),
    /// List experiments, environments, adapters, targets or events.
    #[command(subcommand, after_long_help = EXIT_CODES_HELP)]
    Get(GetCommand),
    /// Show one object in detail.
    #[command(subcommand, after_long_help = EXIT_CODES_HELP)]
    Describe(DescribeCommand),
    /// Pause a running experiment: its faults are removed until it is resumed.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Pause(ExperimentRef),
    /// Resume a paused experiment.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Resume(ExperimentRef),
    /// Stop an experiment: its faults are removed and it finishes.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Stop(ExperimentRef),
    /// Delete an experiment: it is stopped if needed and moved to the archive.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Delete(ExperimentRef),
    /// List the event log, or follow it as it grows.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Events(EventsArgs),
    /// Register, list, inspect and remove environments.
    #[command(subcommand, after_long_help = EXIT_CODES_HELP)]
    Env(EnvCommand),
    /// List adapter types and their capabilities; with --matrix, the conformance matrix
    /// (what each adapter runs, per kind, action and notable option, with measured figures).
    #[command(after_long_help = EXIT_CODES_HELP)]
    Adapters(AdaptersArgs),
    /// Stop every experiment and refuse new ones until `unhalt` (or show the switch with
    /// `halt status`).
    #[command(args_conflicts_with_subcommands = true, after_long_help = EXIT_CODES_HELP)]
    Halt(HaltArgs),
    /// Lift the halt set by `halt`.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Unhalt,
    /// Show the versions of this client and of the hub.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Version,
    /// Show the hub's health.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Health,
    /// Browse, search, show, render and run catalog templates; add and remove remote catalogs.
    #[command(subcommand, after_long_help = EXIT_CODES_HELP)]
    Catalog(CatalogCommand),
    /// Create, list and revoke API tokens (admin).
    #[command(subcommand, after_long_help = EXIT_CODES_HELP)]
    Token(auth::TokenCommand),
    /// Check a token against a hub and save both as a context of the CLI config
    /// (~/.config/chaoshub/config.toml, mode 0600), made current.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Login(auth::LoginArgs),
    /// Show the audit trail: who did what, and every refused request (admin).
    #[command(after_long_help = EXIT_CODES_HELP)]
    Audit(auth::AuditArgs),
    /// Run a Suite (experiments × environments with steady-state checks) on the hub, follow
    /// it live, and write JUnit XML / JSON reports. Exits 1 if any case failed.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Run(RunArgs),
}

/// `run suite.yaml`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Suite file (kind Suite), or `-` for standard input; `file:` references in it are read
    /// relative to it.
    #[arg(value_name = "SUITE")]
    pub file: PathBuf,
    /// Only these of the suite's environments (repeat the flag or separate with commas).
    #[arg(long, value_name = "NAME")]
    pub env: Vec<String>,
    /// Write a JUnit XML report here (one testsuite per environment).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the run's JSON journal here (timings, probe results, per-target records).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How long to follow the run before giving up (exit 5; the run goes on in the hub).
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// Manifest file, or `-` for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Environment to run the experiments in (overrides the manifests' own choice).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Validate and show what would be hit, without creating anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every created experiment is Running (or has run); fail if one fails.
    #[arg(long, conflicts_with = "dry_run")]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// What `get` lists.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GetCommand {
    /// Experiments (live ones, or archived ones with --archived).
    #[command(visible_aliases = ["experiment", "exp"])]
    Experiments(GetExperimentsArgs),
    /// Registered environments.
    #[command(visible_aliases = ["environment", "env"])]
    Environments,
    /// Adapter types the hub knows and what they can do.
    #[command(visible_alias = "adapter")]
    Adapters,
    /// Targets an environment's adapter discovers.
    #[command(visible_alias = "target")]
    Targets(TargetsArgs),
    /// The event log (same as `chaoshub events`).
    #[command(visible_alias = "event")]
    Events(EventsArgs),
}

/// `adapters [--matrix]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdaptersArgs {
    /// Show the conformance matrix (rows kind/action[/option], one column per adapter:
    /// `✓` measured, `✓d` declared only, `✗` refused, `n/a` impossible there); with -o json the
    /// whole matrix with refusal messages and measured figures.
    #[arg(long)]
    pub matrix: bool,
}

/// `get experiments`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GetExperimentsArgs {
    /// Only experiments in this phase (Pending, Injecting, Running, Paused, Recovering,
    /// Finished, Failed, Aborted).
    #[arg(long, value_parser = parse_phase)]
    pub phase: Option<ExperimentPhase>,
    /// Only experiments of this kind (e.g. NetworkChaos).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only experiments in this namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only experiments in this environment.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// List archived (deleted) experiments instead of live ones.
    #[arg(long)]
    pub archived: bool,
}

/// `get targets` / `env targets`.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetsArgs {
    /// Environment name.
    #[arg(value_name = "ENV")]
    pub env: String,
    /// Only targets carrying every one of these labels (`k=v,k2=v2`).
    #[arg(short = 'l', long = "selector", value_name = "k=v,...", value_parser = parse_label_selector)]
    pub selector: Option<LabelSelector>,
}

/// What `describe` shows.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DescribeCommand {
    /// An experiment: status, per-target records and its events.
    #[command(visible_aliases = ["experiments", "exp"])]
    Experiment(ExperimentRef),
}

/// An experiment named by uid, or by name within a namespace.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentRef {
    /// Experiment name or uid.
    #[arg(value_name = "NAME|UID")]
    pub id: String,
    /// Namespace of a named experiment (the hub's default: `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// `events` / `get events`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EventsArgs {
    /// Only events of this experiment (name or uid).
    #[arg(long, value_name = "NAME|UID")]
    pub experiment: Option<String>,
    /// Namespace of a named --experiment.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Keep printing new events until interrupted (Ctrl-C).
    #[arg(long, short = 'w', visible_alias = "watch")]
    pub follow: bool,
}

/// `env …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EnvCommand {
    /// Register environments from a manifest file (kind Environment).
    Add {
        /// Manifest file, or `-` for standard input.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
    /// List registered environments.
    #[command(visible_alias = "ls")]
    List,
    /// Show one environment.
    Get {
        /// Environment name.
        name: String,
    },
    /// Remove an environment.
    #[command(visible_alias = "rm")]
    Delete {
        /// Environment name.
        name: String,
    },
    /// List the targets an environment's adapter discovers.
    Targets(TargetsArgs),
    /// Create a join token for agents of an environment (admin). Only the token is printed
    /// to stdout, once: `chaoshub env join-token edge > edge.token`, then
    /// `chaos-agent serve --hub URL --env edge --join-token-file edge.token`.
    JoinToken {
        /// Environment name.
        name: String,
        /// How long the token may be used to join: a duration (30m, 24h, 7d) or `never`.
        /// Agents that joined keep their credentials after it expires.
        #[arg(long, default_value = "24h")]
        expires: String,
    },
    /// List an environment's join tokens (never their secrets).
    JoinTokens {
        /// Environment name.
        name: String,
    },
    /// Revoke a join token by id (agents that joined with it keep their credentials).
    RevokeJoinToken {
        /// Environment name.
        name: String,
        /// The token's id, as `env join-tokens` lists it.
        id: String,
    },
    /// Forget an agent: its credential is deleted and its stream closed, so that its name may
    /// join again (a re-installed host).
    RemoveAgent {
        /// Environment name.
        name: String,
        /// Agent name.
        agent: String,
    },
}

/// `halt [--reason TEXT]` or `halt status`.
#[derive(Debug, Clone, clap::Args)]
pub struct HaltArgs {
    /// Why chaos is halted (recorded and shown by `halt status`).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(subcommand)]
    pub action: Option<HaltCommand>,
}

/// Subcommands of `halt`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HaltCommand {
    /// Show whether chaos is halted, since when and why.
    Status,
}

/// A parsed `-l k=v,k2=v2`: every label must match exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(pub BTreeMap<String, String>);

impl LabelSelector {
    /// The canonical `k=v,k2=v2` form sent as `labelSelector`.
    pub fn to_query(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parses `k=v,k2=v2`. Keys must be non-empty and unique; values may be empty (`k=`).
pub fn parse_label_selector(text: &str) -> Result<LabelSelector, String> {
    let mut labels = BTreeMap::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("{text:?} has an empty entry; expected k=v,k2=v2"));
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!("{part:?} is not key=value; expected k=v,k2=v2"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(format!("{part:?} has no key; expected k=v,k2=v2"));
        }
        if key.ends_with('!') || value.starts_with('=') {
            return Err(format!("{part:?}: only equality (k=v) is supported"));
        }
        if value.contains('=') {
            return Err(format!("{part:?} has more than one '='; expected k=v"));
        }
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("label {key:?} is given twice"));
        }
    }
    Ok(LabelSelector(labels))
}

fn parse_phase(text: &str) -> Result<ExperimentPhase, String> {
    ExperimentPhase::parse(text).ok_or_else(|| {
        let known: Vec<&str> = ExperimentPhase::ALL.iter().map(|p| p.as_str()).collect();
        format!(
            "unknown phase {text:?}; expected one of {}",
            known.join(", ")
        )
    })
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    let d = chaoshub_schema::duration::parse_duration(text)?;
    if d.is_zero() {
        return Err("must be longer than zero".to_string());
    }
    Ok(d)
}

/// Runs one client command and returns the process exit code (see [`ExitCode`]). Errors are
/// printed to stderr here, once.
pub async fn run(options: ClientOptions, command: ClientCommand) -> i32 {
    match commands::execute(&options, command).await {
        Ok(code) => code.into(),
        Err(error) => {
            eprint!("{}", client::render_error(&error));
            error.exit_code().into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    /// The same shape as the binary's top-level parser in `main.rs`.
    #[derive(Debug, Parser)]
    #[command(name = "chaoshub")]
    struct TestCli {
        #[command(flatten)]
        client: ClientOptions,
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Debug, clap::Subcommand)]
    enum TestCommand {
        Serve,
        #[command(flatten)]
        Client(ClientCommand),
    }

    fn parse(args: &[&str]) -> Result<TestCli, clap::Error> {
        let mut argv = vec!["chaoshub"];
        argv.extend_from_slice(args);
        let matches = TestCli::command().try_get_matches_from(argv)?;
        TestCli::from_arg_matches(&matches)
    }

    #[test]
    fn command_tree_is_consistent() {
        TestCli::command().debug_assert();
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = parse(&["get", "experiments", "-o", "json", "--server", "http://h:1"]).unwrap();
        assert_eq!(cli.client.output, OutputFormat::Json);
        assert_eq!(cli.client.server.as_deref(), Some("http://h:1"));
        assert_eq!(cli.client.request_timeout, Duration::from_secs(30));
        let cli = parse(&[
            "-o",
            "yaml",
            "apply",
            "-f",
            "x.yaml",
            "--wait",
            "--timeout",
            "2m",
        ])
        .unwrap();
        match cli.command {
            TestCommand::Client(ClientCommand::Apply(a)) => {
                assert!(a.wait);
                assert_eq!(a.timeout, Duration::from_secs(120));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_errors_exit_with_two() {
        let err = parse(&["get", "experiments", "--phase", "Sleeping"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage as i32);
        let err = parse(&["get", "targets", "staging", "-l", "novalue"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage as i32);
        let err = parse(&["apply", "-f", "x", "--dry-run", "--wait"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage as i32);
        let err = parse(&["halt", "--reason", "x", "status"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage as i32);
    }

    #[test]
    fn halt_forms_parse() {
        let cli = parse(&["halt", "--reason", "incident"]).unwrap();
        assert!(matches!(
            cli.command,
            TestCommand::Client(ClientCommand::Halt(HaltArgs {
                reason: Some(_),
                action: None
            }))
        ));
        let cli = parse(&["halt", "status"]).unwrap();
        assert!(matches!(
            cli.command,
            TestCommand::Client(ClientCommand::Halt(HaltArgs {
                action: Some(HaltCommand::Status),
                ..
            }))
        ));
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = TestCli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("4  not found (404)"), "{help}");
    }

    #[test]
    fn label_selector_parsing() {
        let s = parse_label_selector("app=web, tier=frontend").unwrap();
        assert_eq!(s.to_query(), "app=web,tier=frontend");
        assert_eq!(parse_label_selector("k=").unwrap().to_query(), "k=");
        for bad in [
            "", "app", "=web", "a=b,", "a=b,a=c", "a!=b", "a==b", "a=b=c",
        ] {
            assert!(
                parse_label_selector(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn phases_parse_case_insensitively() {
        assert_eq!(parse_phase("running").unwrap(), ExperimentPhase::Running);
        assert!(parse_phase("sleeping")
            .unwrap_err()
            .contains("Pending, Injecting"));
    }
}
