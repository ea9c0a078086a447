//! Integration tests of the hub: the real server in-process on port 0 with its own temporary
//! store. Environments here use `memory`, an in-test adapter whose "faults" are entries in a
//! map: it stands in for external systems so the engine's lifecycle, crash handling and API can
//! be checked exactly. The real plugin path (Python webhook plugin, real side effects, the hub
//! as a killed process) is covered by the workspace tests in `tests/`.
//!
//! The store under every sandbox is SQLite; `CHAOSHUB_TEST_STORE=postgres cargo test --test hub`
//! runs the same tests with each sandbox's hub on a PostgreSQL database of its own
//! (`support::config`). `store_conformance` runs the store's contract on both in any case.

#[path = "fuzz_hub/mod.rs"]
mod fuzz_hub;

mod hub {
    pub mod api_errors;
    pub mod authz;
    pub mod catalog;
    pub mod console;
    pub mod drift;
    pub mod endpoints;
    pub mod fuzz;
    pub mod hostile;
    pub mod jwt;
    pub mod kubernetes;
    pub mod lifecycle;
    pub mod metrics;
    pub mod paging;
    pub mod privileged;
    pub mod probes;
    pub mod protected;
    pub mod schedule;
    pub mod secrets;
    pub mod sse;
    pub mod store;
    pub mod store_conformance;
    pub mod suites;
    pub mod support;
    pub mod telemetry;
    pub mod tls;
    pub mod toxiproxy;
    pub mod workflow;
}
