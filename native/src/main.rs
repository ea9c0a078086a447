//! `chaos-agent`: the native injector daemon and its command line (see `cli`).

use clap::Parser;

fn main() {
    let cli = chaos_agent::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAOS_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One thread runs every task: the daemon's async work is waiting on the hub stream, the
    // REST socket and timers, and everything that blocks or takes time (injections, removals,
    // the journal, metrics) goes to the blocking pool, whose threads exit after 10 s idle. Two
    // worker threads cost an agent at rest their stacks and one glibc malloc arena each
    // (docs/benchmarks.md, "Agent at rest").
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos-agent: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(chaos_agent::cli::run(cli)) {
        let code = e
            .downcast_ref::<chaos_agent::cli::CliError>()
            .map(|c| c.code)
            .unwrap_or(1);
        eprintln!("chaos-agent: {e:#}");
        std::process::exit(code);
    }
}
