//! The rustls crypto provider of the HTTP clients the adapters build.
//!
//! reqwest is built with `rustls-no-provider`: its `rustls` feature would bring aws-lc-rs, which
//! needs cmake and minutes of C, while the rest of the tree (kube, bollard, the AWS SDK, the
//! hub's listener) runs rustls on ring. Without a provider of its own, reqwest takes the
//! process's default and panics when a client is built and none is installed — so every client
//! the adapters build installs ring first, and the hub does it once more at start.

use std::sync::Once;

/// Installs ring as the process's default rustls crypto provider, once. A provider installed
/// earlier (by the hub, or by a program embedding the adapters) is kept; that is the reason the
/// result of `install_default` is not an error here.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
