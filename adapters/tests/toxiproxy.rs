//! The `toxiproxy` adapter against a Toxiproxy-compatible server started by the tests.
//!
//! No Toxiproxy binary can be installed where these tests run, so `toxiproxy/fake_server.rs`
//! is a fake of Toxiproxy's HTTP API — said in its doc comment — that forwards real TCP
//! traffic and applies real toxics; `toxiproxy/contract.rs` pins it to the documented API. The
//! effects are measured on real sockets through the proxies (`toxiproxy/effects.rs`).

#![cfg(feature = "toxiproxy")]

mod toxiproxy {
    pub mod fake_server;
    pub mod support;

    mod adapter;
    mod contract;
    mod effects;
}
