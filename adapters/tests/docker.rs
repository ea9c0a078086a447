//! The `docker` adapter against the real Docker engine of this machine (no fake): containers
//! from images built here `FROM scratch` (see `docker/support.rs` for how), faults measured from
//! the host over real sockets, recovery checked with `docker inspect`.

#![cfg(feature = "docker")]

mod docker {
    pub mod support;

    mod deadlines;
    mod lifecycle;
    mod network;
    mod resources;
    mod tls;
}
