//! The `toxiproxy` adapter against a Toxiproxy-compatible server started by the tests.
//!
//! Most tests run against `toxiproxy/fake_server.rs`, a fake of Toxiproxy's HTTP API — said
//! in its doc comment — that forwards real TCP traffic and applies real toxics;
//! `toxiproxy/contract.rs` pins it to the documented API. The effects are measured on real
//! sockets through the proxies (`toxiproxy/effects.rs`). The conformance cells are measured
//! against the real Toxiproxy server where one is found (`toxiproxy/real.rs`, see
//! `chaoshub_testkit::toxiproxy_server`).

#![cfg(feature = "toxiproxy")]

mod toxiproxy {
    pub mod fake_server;
    pub mod support;

    mod adapter;
    mod contract;
    mod effects;
    mod real;
}
