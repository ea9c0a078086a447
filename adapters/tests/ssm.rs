//! The `ssm` adapter, four ways:
//!
//! - `ssm/moto.rs`: the real AWS SDK against a real local AWS endpoint, `moto_server`
//!   (PyPI `moto[server]`, started per test; the tests fail naming it when it is missing):
//!   wire format, discovery by EC2 tags, document creation, the happy path, asserting on what
//!   moto recorded;
//! - `ssm/lifecycle.rs`: the command state machine (Pending → InProgress → Success / Failed /
//!   TimedOut, Delayed, cancel, throttling) against `ssm/fake_ssm.rs`, a FAKE SSM endpoint of
//!   the tests' own that speaks the same JSON 1.1 protocol with scripted status sequences —
//!   moto always answers `Success` and cannot cancel;
//! - `ssm/host.rs`: the generated shell scripts run for real as root, network faults inside
//!   network namespaces the tests create, with the fault and its scheduled revert measured;
//! - `ssm/emulated.rs`: the whole adapter against `chaoshub_testkit::ssm::EmulatedSsm`, the
//!   tests' own emulation of SSM and its agent that runs each command's script for real inside
//!   such a namespace: the fault in the kernel after inject, gone after recover, cancel kills.

#![cfg(feature = "ssm")]

mod ssm {
    pub mod fake_ssm;
    pub mod support;

    mod emulated;
    mod host;
    mod lifecycle;
    mod moto;
}
