//! The accessors every fault kind's spec offers, whatever its shape: what the envelope and the
//! hub ask of a fault without knowing its kind. Below the kinds, which implement it.

use crate::selector::{SelectorMode, TargetSelector};

/// What the hub needs to know about any fault kind, whatever its shape.
pub trait FaultSpec {
    /// The actions this spec asks for, in Chaos Mesh's names (`delay`, `pod-kill`, `cpu`…).
    /// Most kinds have exactly one; HTTPChaos may combine `abort`, `delay`, `replace`, `patch`,
    /// StressChaos `cpu` and `memory`.
    fn actions(&self) -> Vec<String>;
    /// The selector, converted to the adapter-neutral shape; `None` for kinds that address
    /// their targets otherwise (AWSChaos instance ids, PhysicalMachineChaos `address` lists).
    fn target_selector(&self) -> Option<TargetSelector>;
    fn mode(&self) -> Option<SelectorMode>;
    fn value(&self) -> Option<&str>;
    /// `spec.duration` as written (validated to parse with `duration::parse_duration`).
    fn duration(&self) -> Option<&str>;
    /// `spec.environment`, else Chaos Mesh's `spec.remoteCluster`.
    fn environment(&self) -> Option<&str>;
    fn set_environment(&mut self, env: &str);
}
