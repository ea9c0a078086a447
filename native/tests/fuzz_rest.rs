//! The agent REST fuzz driver's short run (the long one is `native/benches/fuzz_rest.rs`):
//! generated and mutated fault bodies, ids, queries and broken credentials sent in-process to
//! the local REST router, with a fixed seed. No 5xx, no panicked request, every broken
//! credential answered 401.

// Shared with the other fuzz test; its table serves tests/fuzz_commands.rs.
#[allow(dead_code)]
mod fuzz_agent;

use std::sync::Arc;

use chaoshub_testkit::fuzz::{self, agent::AgentInputs, RunOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_generated_requests_to_the_agent_get_no_5xx() {
    let agent = fuzz_agent::start();
    let inputs = Arc::new(AgentInputs::new(agent.token.clone()));
    let options = RunOptions {
        inputs: 3000,
        seed: 16,
        concurrency: 4,
        ..Default::default()
    };
    let tally = fuzz::drive(agent.router.clone(), inputs, &options).await;
    println!("{}", tally.report());
    assert!(tally.clean(), "{}", tally.report());
    for class in ["fault", "fault-id", "query", "auth"] {
        assert!(
            tally.by_class.contains_key(class),
            "no {class} input was sent"
        );
    }
    // Valid faults got through (and were deleted again), so the generator reaches the table.
    assert!(
        tally.by_class["fault"].contains_key(&201),
        "{}",
        tally.report()
    );
    assert!(tally.by_class.contains_key("delete"));
    assert_eq!(
        tally.by_class["auth"].keys().copied().collect::<Vec<_>>(),
        vec![401]
    );
}
