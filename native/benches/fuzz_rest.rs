//! Fuzzing the agent's local REST API at scale (issue 16): N generated and mutated requests
//! sent in-process to the router a loopback TCP listener serves (bearer token required), over a
//! real fault table and journal whose injectors plan for real and apply nothing (see
//! `native/tests/fuzz_agent/mod.rs`). No root needed; nothing reaches the host.
//!
//! Run: `cargo bench -p chaos-agent --bench fuzz_rest -- --inputs 200000 --seed 1`
//! (defaults: 200,000 inputs, seed 1, 8 in flight). Prints the status histogram, 5xx, panics
//! and resident memory, and exits non-zero on any 5xx, panic or non-401 answer to a broken
//! credential. Results: docs/reliability.md, section "Fuzzing".

// Shared with the tests; its table serves tests/fuzz_commands.rs only.
#[allow(dead_code)]
#[path = "../tests/fuzz_agent/mod.rs"]
mod fuzz_agent;

use std::sync::Arc;
use std::time::Instant;

use chaoshub_testkit::fuzz::{self, agent::AgentInputs, PanicCounter, RunOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = RunOptions::from_args(200_000);
    let panics = PanicCounter::install();
    let agent = fuzz_agent::start();
    let inputs = Arc::new(AgentInputs::new(agent.token.clone()));
    let rss_start = fuzz::resident_kb().unwrap_or(0);
    println!(
        "fuzzing the agent's REST router: {} inputs, seed {}, {} in flight; resident at start {} MB",
        options.inputs,
        options.seed,
        options.concurrency,
        rss_start / 1024
    );
    let started = Instant::now();
    let tally = fuzz::drive(agent.router.clone(), inputs, &options).await;
    let took = started.elapsed();
    print!("{}", tally.report());
    println!(
        "process panics (hook): {}\nelapsed: {:.1} s, rate: {:.0} inputs/s\nresident: start {} MB, end {} MB, peak {} MB",
        panics.count(),
        took.as_secs_f64(),
        tally.inputs as f64 / took.as_secs_f64(),
        rss_start / 1024,
        fuzz::resident_kb().unwrap_or(0) / 1024,
        fuzz::peak_resident_kb().unwrap_or(0) / 1024
    );
    let health = fuzz::drive_one(agent.router.clone(), "/healthz").await;
    println!("healthz after the run: {health}");
    if !tally.clean() || panics.count() > 0 || health != 200 {
        std::process::exit(1);
    }
}
