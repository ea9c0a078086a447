//! Fuzzing at scale (issue 16; the auth inputs of issue 15): N generated and mutated requests
//! sent to the hub's router in-process (no sockets), with a real SQLite store in a temporary
//! data dir and authentication on. Inputs: manifests of every kind (mutated structurally and
//! byte-wise, valid, with duplicate keys or huge scalars), alias and merge bombs, deep nesting,
//! many-document streams, YAML tags, bodies over the limit, template renders and runs (dry),
//! suites, environment registrations, query strings and path parameters on every route, odd
//! headers, the console, admin calls, real submissions (stopped at once), and malformed
//! credentials, which must be answered 401 and nothing else.
//!
//! Run: `cargo bench -p chaoshub --bench fuzz_router -- --inputs 1000000 --seed 1`
//! (defaults: 1,000,000 inputs, seed 1, 8 in flight). Prints the status histogram (overall and
//! per input class), 5xx, panics, resident memory at start, end and peak, and exits non-zero on
//! any 5xx, panic or non-401 answer to a broken credential.
//! Results: docs/reliability.md, section "Fuzzing".

#[path = "../tests/fuzz_hub/mod.rs"]
mod fuzz_hub;

use std::time::Instant;

use chaoshub_testkit::fuzz::{self, PanicCounter, RunOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = RunOptions::from_args(1_000_000);
    // Only this process's own panics count here: the hub's catch-panic layer turns a handler's
    // panic into a 500, and background tasks (engine, controllers) would panic silently.
    let panics = PanicCounter::install();
    let fuzz_hub = fuzz_hub::start().await;
    for note in &fuzz_hub.notes {
        println!("corpus: {note}");
    }
    let rss_start = fuzz::resident_kb().unwrap_or(0);
    println!(
        "fuzzing the hub's router: {} inputs, seed {}, {} in flight, body limit {} bytes; resident at start {} MB",
        options.inputs,
        options.seed,
        options.concurrency,
        fuzz_hub.max_body,
        rss_start / 1024
    );
    let started = Instant::now();
    let tally = fuzz::drive(fuzz_hub.hub.router(), fuzz_hub.inputs.clone(), &options).await;
    let took = started.elapsed();
    let rss_end = fuzz::resident_kb().unwrap_or(0);
    let peak = fuzz::peak_resident_kb().unwrap_or(0);
    print!("{}", tally.report());
    println!(
        "process panics (hook): {}\nelapsed: {:.1} s, rate: {:.0} inputs/s\nresident: start {} MB, end {} MB, peak {} MB",
        panics.count(),
        took.as_secs_f64(),
        tally.inputs as f64 / took.as_secs_f64(),
        rss_start / 1024,
        rss_end / 1024,
        peak / 1024
    );
    let health = fuzz::drive_one(fuzz_hub.hub.router(), "/healthz").await;
    println!("healthz after the run: {health}");
    fuzz_hub.hub.shutdown().await;
    if !tally.clean() || panics.count() > 0 || health != 200 {
        std::process::exit(1);
    }
}
