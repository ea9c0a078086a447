//! The `ProxyChaos` kind (`chaoshub.dev/v1alpha1`): Toxiproxy toxics.
//! PLACEHOLDER until the typed model lands.

pub use crate::chaosmesh::NetworkChaosSpec as ProxyChaosSpec;
