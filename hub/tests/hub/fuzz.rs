//! The fuzz driver's short run (the long one is `hub/benches/fuzz_router.rs`): a few thousand
//! generated and mutated requests of every class, with a fixed seed, sent to the hub's router
//! in-process. No 5xx, no panicked request, and every broken credential answered 401.

use chaoshub_testkit::fuzz::{self, RunOptions};

/// Enough to meet every input class many times; small enough for a debug build on two busy
/// cores.
const INPUTS: u64 = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_generated_requests_get_no_5xx_and_broken_credentials_get_401() {
    let fuzz_hub = crate::fuzz_hub::start().await;
    for note in &fuzz_hub.notes {
        println!("corpus: {note}");
    }
    println!("body limit: {} bytes", fuzz_hub.max_body);
    let options = RunOptions {
        inputs: INPUTS,
        seed: 16,
        concurrency: 4,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let tally = fuzz::drive(fuzz_hub.hub.router(), fuzz_hub.inputs.clone(), &options).await;
    println!("{}\nin {:?}", tally.report(), started.elapsed());
    assert!(tally.clean(), "{}", tally.report());
    assert_eq!(tally.inputs, INPUTS);
    // Every class was exercised, and some inputs got through to success (the generator is not
    // only producing garbage the first parser refuses).
    for class in [
        "manifest",
        "hostile",
        "template",
        "suite",
        "environment",
        "query",
        "auth",
        "headers",
        "console",
        "admin",
        "submit",
    ] {
        assert!(
            tally.by_class.contains_key(class),
            "no {class} input was sent"
        );
    }
    let ok: u64 = tally.by_class["manifest"]
        .iter()
        .filter(|(s, _)| **s == 200)
        .map(|(_, n)| n)
        .sum();
    assert!(ok > 0, "no manifest dry run succeeded: {}", tally.report());
    assert_eq!(
        tally.by_class["auth"].keys().copied().collect::<Vec<_>>(),
        vec![401]
    );
    assert_eq!(
        fuzz::drive_one(fuzz_hub.hub.router(), "/healthz").await,
        200
    );
    fuzz_hub.hub.shutdown().await;
}
