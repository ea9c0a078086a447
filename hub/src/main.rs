//! The `chaoshub` binary: `chaoshub serve` runs the hub; every other subcommand is a client.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "chaoshub",
    version,
    about = "Chaos-as-a-Service hub: one experiment format, any environment"
)]
struct Cli {
    #[command(flatten)]
    client: chaoshub::cli::ClientOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (TOML); see deploy/hub.example.toml. Without it, embedded defaults apply.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Listen address, overriding the config (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory for the embedded store, overriding the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The store, overriding the config's store.url: sqlite:DIR, or
    /// postgres://user:pass@host/db?sslmode=verify-full (docs/operations.md). From the
    /// environment, it keeps the password out of hub.toml and out of the process list.
    #[arg(long, env = "CHAOSHUB_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
    /// Write the bound address to this file once listening (for scripts using port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Serve TLS with a CA and a server certificate created under <data-dir>/tls/ (the CA
    /// once, the server certificate at every start); prints the CA's path for clients'
    /// --ca-file.
    #[arg(long)]
    tls_self_signed: bool,
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// The hub's SQLite store: sqlite:DATA_DIR (the directory holding chaoshub.db). Stop the
    /// hub first.
    #[arg(long)]
    from: String,
    /// The PostgreSQL store: postgres://user:pass@host/db (sslmode as in store.url).
    #[arg(long, env = "CHAOSHUB_STORE_URL", hide_env_values = true)]
    to: String,
    /// Empty a target that already holds data instead of refusing it.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the hub server.
    Serve(ServeArgs),
    /// Copy a hub's SQLite store into an empty PostgreSQL store, then verify the copy table by
    /// table (row counts and SHA-256 of each table read back from both).
    Migrate(MigrateArgs),
    #[command(flatten)]
    Client(chaoshub::cli::ClientCommand),
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => chaoshub::config::HubConfig::load(path)?,
        None => chaoshub::config::HubConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = args.store_url {
        config.store.url = Some(url);
    }
    if args.tls_self_signed {
        config.tls.self_signed = true;
    }
    config.check()?;
    let hub = chaoshub::server::start(config)
        .await
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, hub.addr.to_string())?;
    }
    eprintln!(
        "chaoshub {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        hub.url()
    );
    if let Some(ca) = &hub.tls_ca_file {
        eprintln!(
            "self-signed TLS: clients trust the CA at {} (chaoshub --ca-file {0}, chaos-agent serve --ca-file {0})",
            ca.display()
        );
    }
    hub.serve_until_signal().await;
    Ok(())
}

/// Runs `chaoshub migrate`; exit code 0 only when every table matches.
fn migrate(args: MigrateArgs) -> anyhow::Result<i32> {
    use chaoshub::store::migrate;
    let dir = migrate::source_dir(&args.from).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let checks = migrate::sqlite_to_postgres(&dir, &args.to, args.force)
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    print!("{}", migrate::render(&checks));
    let bad: Vec<&str> = checks
        .iter()
        .filter(|c| !c.matches())
        .map(|c| c.table.as_str())
        .collect();
    if bad.is_empty() {
        let rows: u64 = checks.iter().map(|c| c.target_rows).sum();
        println!(
            "copied {rows} rows in {} tables from {} to {}; every table verified",
            checks.len(),
            dir.display(),
            chaoshub::store::postgres::connection::redact(&args.to)
        );
        Ok(0)
    } else {
        eprintln!(
            "error: the copy differs from the source in: {}",
            bad.join(", ")
        );
        Ok(1)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("CHAOSHUB_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                // Colour codes only on a terminal: journald and log files get plain text.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            match serve(args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
        Command::Migrate(args) => {
            // The store's calls block; keep them off the runtime's worker.
            match tokio::task::spawn_blocking(move || migrate(args)).await {
                Ok(Ok(code)) => code,
                Ok(Err(e)) => {
                    eprintln!("error: {e:#}");
                    1
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Client(cmd) => chaoshub::cli::run(cli.client, cmd).await,
    };
    std::process::exit(code);
}
