//! `chaoshub`: the hub server and its CLI.
//!
//! Code map: `config` (hub.toml), `store` (persistence behind a trait; SQLite), `engine` (the
//! lifecycle reconciler), `selection` (selectors and modes over any inventory), `operations`
//! (what the API does, independent of HTTP), `api` (axum routes and error mapping), `openapi`
//! (the generated API document), `server` (start/stop), `cli` (client commands).
//! Architecture invariants: only this crate owns persistence and the experiment lifecycle; it
//! reaches environments only through `chaoshub_adapters`.

pub mod agents;
pub mod agents_http;
pub mod api;
pub mod auth;
pub mod auth_gate;
pub mod auth_http;
pub mod catalog;
pub mod catalog_http;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod console;
pub mod controllers;
pub mod endpoints;
pub mod engine;
pub mod environment_status;
pub mod error;
pub mod events;
pub mod failpoints;
mod http_params;
pub mod leadership;
pub mod openapi;
pub mod operations;
pub mod orchestration;
pub mod preparation;
pub mod probes;
pub mod schedule;
pub mod secrets;
pub mod selection;
pub mod server;
pub mod store;
pub mod submission;
pub mod suites;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod workflow;
