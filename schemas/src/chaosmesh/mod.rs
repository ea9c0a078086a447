//! Chaos Mesh kinds (`chaos-mesh.org/v1alpha1`), typed after the CRDs' `openAPIV3Schema`.
//!
//! Field names, enums and defaults follow the CRDs in `shared/reference/chaos-mesh/crd/`.
//! Every fault spec also accepts chaoshub's own optional `environment` field (which registered
//! environment runs the experiment); Chaos Mesh's `remoteCluster` is its alias.

pub mod aws;
pub mod azure;
pub mod block;
pub(crate) mod common;
pub mod dns;
pub mod gcp;
pub mod http;
pub mod io;
pub mod jvm;
pub mod kernel;
pub mod network;
pub mod physical_machine;
pub mod physical_machine_chaos;
pub mod pod;
pub mod remote_cluster;
pub mod schedule;
pub mod selector;
pub mod status_check;
pub mod stress;
pub mod time;
pub mod workflow;

pub use aws::{AWSChaosAction, AWSChaosSpec};
pub use azure::{AzureChaosAction, AzureChaosSpec};
pub use block::{BlockChaosAction, BlockChaosSpec, BlockDelaySpec};
pub use dns::{DNSChaosAction, DNSChaosSpec};
pub use gcp::{GCPChaosAction, GCPChaosSpec};
pub use http::{HTTPChaosSpec, HTTPTarget};
pub use io::{IOChaosAction, IOChaosSpec};
pub use jvm::{JVMChaosAction, JVMChaosSpec};
pub use kernel::{FailKernRequest, KernelChaosSpec};
pub use network::{
    BandwidthSpec, CorruptSpec, DelaySpec, Direction, DuplicateSpec, LossSpec, NetworkChaosAction,
    NetworkChaosSpec, NetworkTarget, RateSpec, ReorderSpec,
};
pub use physical_machine::PhysicalMachineSpec;
pub use physical_machine_chaos::{PhysicalMachineChaosAction, PhysicalMachineChaosSpec};
pub use pod::{PodChaosAction, PodChaosSpec};
pub use remote_cluster::RemoteClusterSpec;
pub use schedule::{ConcurrencyPolicy, ScheduleSpec, ScheduleType};
pub use selector::{PhysicalMachineSelectorSpec, PodSelectorSpec};
pub use status_check::{StatusCheckMode, StatusCheckSpec, StatusCheckType};
pub use stress::{CPUStressor, MemoryStressor, StressChaosSpec, Stressors};
pub use time::TimeChaosSpec;
pub use workflow::{WorkflowSpec, WorkflowTemplate, WorkflowTemplateType};
