//! `chaos-agent`: the native injector daemon (DESIGN.md §5).
//!
//! Code map: `inject` (the injector contract: plan → journal → apply → verify → remove), one
//! module per fault family (`network`, `stress`, `process`, `disk`, `file`, `clock`, `host`,
//! `user_defined`), `journal` (faults recorded before they are applied; replayed at start),
//! `daemon` (the fault table, leases, the hub connection with its credential), `rest` (the
//! local REST API, a Unix socket by default), `local_api` (the CLI's client of it), `cli`,
//! `watchdog` (a timed revert over HTTP, for the Docker adapter's engine-side deadlines).
//! Architecture invariant: the agent never needs an inbound port to work with the hub — it dials
//! the hub; its local REST API is a Unix socket (mode 0600) by default, loopback TCP with a
//! bearer token otherwise.

pub mod cli;
pub mod clock;
pub mod daemon;
pub mod disk;
pub mod file;
pub mod host;
pub mod host_injectors;
pub mod inject;
pub mod injectors;
pub mod journal;
pub mod local_api;
pub mod metrics;
pub mod network;
pub mod node_metrics;
pub mod process;
pub mod rest;
pub mod stress;
pub mod user_defined;
pub mod watchdog;
