//! SSM endpoints of the tests' own (feature `ssm`).
//!
//! - [`wire`]: the SSM JSON 1.1 protocol and EC2 DescribeInstances, shared by every SSM
//!   endpoint of the tests;
//! - [`EmulatedSsm`]: an endpoint that *executes* what it is sent, as SSM Run Command and the
//!   SSM Agent on an instance would: each command's script runs for real, asynchronously,
//!   inside a network namespace the test created, with real exit codes and output.
//!
//! Neither is AWS. moto (the local AWS endpoint the adapter's wire tests use) executes nothing
//! and answers `Success` to every command, so nothing run against it can show whether a fault
//! was really applied or removed; [`EmulatedSsm`] can, within what it emulates (see its doc).

mod emulator;
pub mod wire;

pub use emulator::{CommandRecord, EmulatedSsm};
