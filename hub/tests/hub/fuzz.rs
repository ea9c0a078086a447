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
        "control",
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

/// Only the `control` class: the halt switch, remote catalogs and the event stream, which the
/// mixed run meets about twenty times. Answers are 2xx or 4xx, never a 5xx or a stream that
/// cannot be read, and the hub still answers (and is released) afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_catalog_and_event_stream_inputs_get_no_5xx() {
    struct ControlOnly(std::sync::Arc<chaoshub_testkit::fuzz::hub::HubInputs>);
    impl fuzz::Inputs for ControlOnly {
        fn next(&self, rng: &mut fuzz::Rng, _index: u64) -> fuzz::FuzzRequest {
            self.0.control_request(rng)
        }
    }
    let fuzz_hub = crate::fuzz_hub::start().await;
    let options = RunOptions {
        inputs: 1500,
        seed: 61,
        concurrency: 4,
        ..Default::default()
    };
    let inputs = std::sync::Arc::new(ControlOnly(fuzz_hub.inputs.clone()));
    let tally = fuzz::drive(fuzz_hub.hub.router(), inputs, &options).await;
    println!("{}", tally.report());
    assert!(tally.clean(), "{}", tally.report());
    let statuses = &tally.by_class["control"];
    // Each kind of input got through somewhere: halts set and released (200), catalogs
    // added (201) and refused (400/409), streams opened (200).
    for wanted in [200, 201, 400] {
        assert!(statuses.contains_key(&wanted), "no {wanted}: {statuses:?}");
    }
    assert!(
        statuses.keys().all(|s| (200..500).contains(s)),
        "{statuses:?}"
    );
    let router = fuzz_hub.hub.router();
    let release = axum::http::Request::delete("/api/v1/halt")
        .header("authorization", format!("Bearer {}", fuzz_hub.inputs.token))
        .body(axum::body::Body::empty())
        .unwrap();
    use tower::ServiceExt;
    let answer = router.oneshot(release).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        fuzz::drive_one(fuzz_hub.hub.router(), "/healthz").await,
        200
    );
    fuzz_hub.hub.shutdown().await;
}
