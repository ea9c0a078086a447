//! `chaoshub-adapters`: the `Adapter` trait, the adapter registry, and one module per adapter,
//! each behind a cargo feature.
//!
//! Architecture invariants: only this crate talks to external systems (plugins, Docker, AWS,
//! Toxiproxy…); adapters are stateless translators — everything they need to recover a fault
//! comes back to them in the `Injection` the hub stored, never from memory.

mod adapter;
pub mod conformance;
#[cfg(any(feature = "webhook", feature = "toxiproxy", feature = "envoy"))]
mod http_clients;
mod registry;
#[cfg(any(feature = "webhook", feature = "toxiproxy", feature = "ssm"))]
mod retry;
#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm",
    feature = "kubernetes"
))]
mod settings;
#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm"
))]
mod tls;

#[cfg(feature = "webhook")]
pub mod webhook;

#[cfg(feature = "toxiproxy")]
pub mod toxiproxy;

#[cfg(feature = "envoy")]
pub mod envoy;

#[cfg(feature = "ssm")]
pub mod ssm;

#[cfg(feature = "docker")]
pub mod docker;

#[cfg(feature = "kubernetes")]
pub mod kubernetes;

/// Registered by the hub itself (it needs the hub's agent connections), not by `builtin()`.
#[cfg(feature = "native")]
pub mod native;

pub use adapter::{
    Adapter, AdapterError, Candidates, Environment, EnvironmentReport, FarSideMatch, FaultRequest,
    Injection, InjectionState, Selection, HUB_SETTINGS,
};
pub use registry::{AdapterRegistry, UnknownAdapter};
#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm"
))]
pub use tls::install_crypto_provider;
