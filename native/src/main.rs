//! `chaos-agent`: the native injector daemon.
//!
//! This crate is a skeleton until the native-agent issue lands: the binary exists so the
//! workspace layout matches DESIGN.md §1, and it says clearly that it does nothing yet.

fn main() {
    eprintln!(
        "chaos-agent {}: the native agent is not implemented yet (see the native-agent issue)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
