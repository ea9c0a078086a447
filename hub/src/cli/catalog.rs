//! `chaoshub catalog …`: browse, search, show, render and run templates; add and remove remote
//! catalogs.

use chaoshub_schema::api::{DryRunResult, ExperimentObject, Page};
use chaoshub_schema::template::{
    AddCatalogRequest, CatalogObject, RenderRequest, RenderResult, TemplateDetail, TemplateList,
    TemplateSummary,
};
use serde_json::{Map, Value};

use super::client::{CliError, HubClient};
use super::output::{emit, experiment_ref, render_structured, ItemList, OutputFormat, Table};
use super::ExitCode;

/// `catalog …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CatalogCommand {
    /// List templates, optionally filtered.
    #[command(visible_alias = "ls")]
    List(FilterArgs),
    /// Search templates by words in their name, title, description and tags.
    Search {
        /// Words that must all occur.
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        #[command(flatten)]
        filters: FilterArgs,
    },
    /// Show a template: its description, adapters and parameters.
    Show {
        /// Template name (`hub/name` for a remote catalog's template).
        name: String,
    },
    /// Render a template into an experiment manifest (printed as YAML) without running it.
    Render(InstantiateArgs),
    /// Render a template and create the experiment.
    Run(RunArgs),
    /// Save a Template file into the hub's local catalog (admin; see docs/catalog.md).
    Save {
        /// The Template document (YAML or JSON); `-` reads standard input.
        #[arg(short = 'f', long = "filename")]
        file: std::path::PathBuf,
        /// Replace a local template of the same name.
        #[arg(long)]
        overwrite: bool,
    },
    /// Add a remote catalog by the URL of its index file.
    Add {
        /// Name of the remote hub; its templates appear as NAME/template.
        name: String,
        /// URL of the index file.
        url: String,
    },
    /// Remove a remote catalog.
    #[command(visible_alias = "rm")]
    Remove {
        /// Remote catalog name.
        name: String,
    },
    /// List remote catalogs and the state of their cached copies.
    Remotes,
    /// Check a remote catalog's index now.
    Refresh {
        /// Remote catalog name.
        name: String,
    },
}

/// Filters of `catalog list` / `catalog search`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    /// Only templates suited to this adapter type.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Only templates rendering this kind (e.g. NetworkChaos).
    #[arg(long)]
    pub kind: Option<String>,
    /// `local` or a remote catalog name.
    #[arg(long)]
    pub source: Option<String>,
}

/// Arguments shared by `render` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstantiateArgs {
    /// Template name (`hub/name` for a remote catalog's template).
    pub name: String,
    /// A parameter value, `key=value` (repeatable).
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Name of the experiment (default: generated from the template).
    #[arg(long = "experiment-name", value_name = "NAME")]
    pub experiment_name: Option<String>,
    /// Namespace of the experiment.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Environment to run in.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

/// `catalog run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub template: InstantiateArgs,
    /// Validate and show what would be hit, without creating anything.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_set(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

fn filter_query(filters: &FilterArgs) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    for (key, value) in [
        ("category", &filters.category),
        ("tag", &filters.tag),
        ("adapter", &filters.adapter),
        ("kind", &filters.kind),
        ("source", &filters.source),
    ] {
        if let Some(v) = value {
            query.push((key, v.clone()));
        }
    }
    query
}

fn render_request(args: &InstantiateArgs, dry_run: bool) -> RenderRequest {
    let parameters: Map<String, Value> = args
        .set
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    RenderRequest {
        parameters,
        name: args.experiment_name.clone(),
        namespace: args.namespace.clone(),
        env: args.env.clone(),
        dry_run,
    }
}

pub async fn execute(
    client: &HubClient,
    format: OutputFormat,
    command: CatalogCommand,
) -> Result<ExitCode, CliError> {
    match command {
        CatalogCommand::List(filters) => list(client, format, filter_query(&filters)).await,
        CatalogCommand::Search { words, filters } => {
            let mut query = filter_query(&filters);
            query.push(("q", words.join(" ")));
            list(client, format, query).await
        }
        CatalogCommand::Show { name } => {
            let detail: TemplateDetail =
                client.get(&["api", "v1", "templates", &name], &[]).await?;
            match format {
                OutputFormat::Table => emit(&describe_template(&detail)),
                _ => emit(&render_structured(format, &detail)?),
            }
            Ok(ExitCode::Success)
        }
        CatalogCommand::Render(args) => {
            let result: RenderResult = client
                .post(
                    &["api", "v1", "templates", &args.name, "render"],
                    &[],
                    Some(&render_request(&args, false)),
                )
                .await?;
            let text = match format {
                OutputFormat::Json => render_structured(format, &result.manifest)?,
                _ => render_structured(OutputFormat::Yaml, &result.manifest)?,
            };
            emit(&text);
            Ok(ExitCode::Success)
        }
        CatalogCommand::Run(args) => run(client, format, &args).await,
        CatalogCommand::Save { file, overwrite } => {
            let text = super::apply::read_input(&file)?;
            let mut documents = super::apply::split(&text, &file)?;
            if documents.len() != 1 {
                return Err(CliError::Usage(format!(
                    "{}: holds {} documents; a template file holds exactly one",
                    file.display(),
                    documents.len()
                )));
            }
            let query = if overwrite {
                vec![("overwrite", "true".to_string())]
            } else {
                vec![]
            };
            let detail: TemplateDetail = client
                .post(
                    &["api", "v1", "templates"],
                    &query,
                    Some(&documents.remove(0)),
                )
                .await?;
            match format {
                OutputFormat::Table => emit(&format!(
                    "template/{} saved ({} {}, parameters: {})\n",
                    detail.summary.name,
                    detail.summary.category,
                    detail.summary.kind,
                    if detail.summary.parameters.is_empty() {
                        "none".to_string()
                    } else {
                        detail.summary.parameters.join(", ")
                    }
                )),
                _ => emit(&render_structured(format, &detail)?),
            }
            Ok(ExitCode::Success)
        }
        CatalogCommand::Add { name, url } => {
            let object: CatalogObject = client
                .post(
                    &["api", "v1", "catalogs"],
                    &[],
                    Some(&AddCatalogRequest { name, url }),
                )
                .await?;
            print_remote(format, &object, "added")
        }
        CatalogCommand::Remove { name } => {
            let object: CatalogObject = client
                .delete(&["api", "v1", "catalogs", &name], &[])
                .await?;
            match format {
                OutputFormat::Table => emit(&format!("catalog/{} removed\n", object.name)),
                _ => emit(&render_structured(format, &object)?),
            }
            Ok(ExitCode::Success)
        }
        CatalogCommand::Remotes => {
            let page: Page<CatalogObject> = client.get(&["api", "v1", "catalogs"], &[]).await?;
            match format {
                OutputFormat::Table if page.items.is_empty() => {
                    eprintln!("no remote catalogs added")
                }
                OutputFormat::Table => emit(&remotes_table(&page.items).render()),
                _ => emit(&render_structured(
                    format,
                    &ItemList { items: &page.items },
                )?),
            }
            Ok(ExitCode::Success)
        }
        CatalogCommand::Refresh { name } => {
            let object: CatalogObject = client
                .post::<_, ()>(&["api", "v1", "catalogs", &name, "refresh"], &[], None)
                .await?;
            print_remote(format, &object, "refreshed")
        }
    }
}

async fn list(
    client: &HubClient,
    format: OutputFormat,
    query: Vec<(&'static str, String)>,
) -> Result<ExitCode, CliError> {
    let list: TemplateList = client.get(&["api", "v1", "templates"], &query).await?;
    match format {
        OutputFormat::Table if list.items.is_empty() => eprintln!("no templates found"),
        OutputFormat::Table => emit(&templates_table(&list.items).render()),
        _ => emit(&render_structured(format, &list)?),
    }
    Ok(ExitCode::Success)
}

async fn run(
    client: &HubClient,
    format: OutputFormat,
    args: &RunArgs,
) -> Result<ExitCode, CliError> {
    let segments = ["api", "v1", "templates", &args.template.name, "run"];
    let request = render_request(&args.template, args.dry_run);
    if args.dry_run {
        let result: DryRunResult = client.post(&segments, &[], Some(&request)).await?;
        match format {
            OutputFormat::Table => {
                let mut text = String::new();
                if let Some(plan) = &result.plan {
                    text.push_str(&format!(
                        "dry run: {} {} in {} ({}) would hit {} of {} matching target(s):\n",
                        plan.kind,
                        plan.actions.join(","),
                        plan.environment,
                        plan.adapter,
                        plan.targets.len(),
                        plan.matched
                    ));
                    for t in &plan.targets {
                        text.push_str(&format!("  {} {}\n", t.kind, t.name));
                    }
                } else {
                    text.push_str("dry run: valid\n");
                }
                for w in &result.warnings {
                    text.push_str(&format!("warning: {w}\n"));
                }
                emit(&text);
            }
            _ => emit(&render_structured(format, &result)?),
        }
    } else {
        let created: ExperimentObject = client.post(&segments, &[], Some(&request)).await?;
        match format {
            OutputFormat::Table => emit(&format!("{} created\n", experiment_ref(&created))),
            _ => emit(&render_structured(format, &created)?),
        }
    }
    Ok(ExitCode::Success)
}

fn print_remote(
    format: OutputFormat,
    object: &CatalogObject,
    verb: &str,
) -> Result<ExitCode, CliError> {
    match format {
        OutputFormat::Table => {
            emit(&format!(
                "catalog/{} {verb}: {} template(s){}\n",
                object.name,
                object.templates,
                if object.rejected.is_empty() {
                    String::new()
                } else {
                    format!(", {} rejected", object.rejected.len())
                }
            ));
            for r in &object.rejected {
                eprintln!("rejected {}: {}", r.name, r.message);
            }
        }
        _ => emit(&render_structured(format, object)?),
    }
    if let Some(error) = &object.last_error {
        eprintln!("error: the catalog could not be fetched: {error}");
        return Ok(ExitCode::Failure);
    }
    Ok(ExitCode::Success)
}

pub fn templates_table(items: &[TemplateSummary]) -> Table {
    let mut table = Table::new(&["NAME", "CATEGORY", "KIND", "ACTION", "ADAPTERS", "TITLE"]);
    for t in items {
        table.push(vec![
            t.name.clone(),
            t.category.clone(),
            t.kind.clone(),
            t.actions.join(","),
            t.adapters.join(","),
            t.title.clone(),
        ]);
    }
    table
}

pub fn remotes_table(items: &[CatalogObject]) -> Table {
    let mut table = Table::new(&["NAME", "TEMPLATES", "LAST-CHANGE", "STATUS", "URL"]);
    for c in items {
        let status = match (&c.last_error, c.rejected.len()) {
            (Some(e), _) => format!("error: {e}"),
            (None, 0) => "ok".to_string(),
            (None, n) => format!("ok, {n} rejected"),
        };
        table.push(vec![
            c.name.clone(),
            c.templates.to_string(),
            c.last_change.clone().unwrap_or_else(|| "-".into()),
            status,
            c.url.clone(),
        ]);
    }
    table
}

/// The `catalog show` page.
pub fn describe_template(detail: &TemplateDetail) -> String {
    let s = &detail.summary;
    let mut out = String::new();
    out.push_str(&format!("Name:        {}\n", s.name));
    out.push_str(&format!("Title:       {}\n", s.title));
    out.push_str(&format!("Source:      {}\n", s.source));
    out.push_str(&format!("Category:    {}\n", s.category));
    out.push_str(&format!(
        "Kind:        {} ({})\n",
        s.kind,
        s.actions.join(", ")
    ));
    out.push_str(&format!("Adapters:    {}\n", s.adapters.join(", ")));
    out.push_str(&format!("Tags:        {}\n", s.tags.join(", ")));
    out.push_str("Description:\n");
    for line in s.description.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    let properties = detail.parameters_schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if !properties.is_empty() {
        out.push_str("Parameters:\n");
        let mut table = Table::new(&["NAME", "TYPE", "DEFAULT", "RANGE", "DESCRIPTION"]);
        for (name, p) in &properties {
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let range = if let Some(values) = p["enum"].as_array() {
                values.iter().map(text).collect::<Vec<_>>().join("|")
            } else {
                let min = text(&p["minimum"]) + &text(&p["x-chaoshub-minimum"]);
                let max = text(&p["maximum"]) + &text(&p["x-chaoshub-maximum"]);
                if min.is_empty() && max.is_empty() {
                    String::new()
                } else {
                    format!("{min}..{max}")
                }
            };
            table.push(vec![
                name.clone(),
                text(&p["x-chaoshub-type"]),
                text(&p["default"]),
                range,
                text(&p["description"]),
            ]);
        }
        for line in table.render().lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str(&format!(
        "Run it:      chaoshub catalog run {} --env ENV{}\n",
        s.name,
        s.parameters
            .first()
            .map(|p| format!(" --set {p}=..."))
            .unwrap_or_default()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: CatalogCommand,
    }

    #[test]
    fn commands_parse() {
        let cli = Cli::try_parse_from([
            "catalog",
            "run",
            "acme/slow-redis",
            "--env",
            "lab",
            "--set",
            "latency=900",
            "-s",
            "jitter=5",
            "--dry-run",
        ])
        .unwrap();
        let CatalogCommand::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.dry_run);
        let request = render_request(&args.template, args.dry_run);
        assert_eq!(request.env.as_deref(), Some("lab"));
        assert_eq!(request.parameters["latency"], "900");
        assert_eq!(request.parameters["jitter"], "5");
        let cli =
            Cli::try_parse_from(["catalog", "search", "disk", "fill", "--adapter", "ssm"]).unwrap();
        let CatalogCommand::Search { words, filters } = cli.command else {
            panic!("not search")
        };
        assert_eq!(words, vec!["disk", "fill"]);
        assert_eq!(filter_query(&filters), vec![("adapter", "ssm".to_string())]);
        assert!(Cli::try_parse_from(["catalog", "search"]).is_err());
        assert!(Cli::try_parse_from(["catalog", "render", "x", "--set", "novalue"]).is_err());
        assert!(Cli::try_parse_from(["catalog", "add", "acme"]).is_err());
    }

    #[test]
    fn set_parses_key_value() {
        assert_eq!(parse_set("a=1").unwrap(), ("a".into(), "1".into()));
        assert_eq!(parse_set("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_set("=1").is_err());
        assert!(parse_set("novalue").is_err());
    }
}
