//! `chaoshub-schema`: every wire contract of chaoshub.
//!
//! Experiment kinds (Chaos Mesh's `chaos-mesh.org/v1alpha1` and chaoshub's own
//! `chaoshub.dev/v1alpha1`), their validation with field paths, JSON Schema export, and the REST
//! request/response types. Architecture invariant: this crate knows nothing about HTTP servers,
//! databases, async runtimes or any adapter; it does no I/O.

pub mod agent;
pub mod api;
pub mod auth;
pub mod chaosmesh;
pub mod document;
pub mod duration;
pub mod environment;
pub mod error;
pub mod fault;
pub mod manifest;
pub mod meta;
pub mod parse;
pub mod probe;
pub mod proxy;
pub mod selector;
pub mod structure;
pub mod suite;
pub mod target;
pub mod template;
pub mod template_spec;
pub mod validate;

pub use error::{FieldError, ValidationErrors};
pub use fault::FaultSpec;
pub use manifest::{
    kind_schema, Kind, Manifest, Spec, CHAOSHUB_API_VERSION, CHAOS_MESH_API_VERSION,
};
pub use parse::{manifest_from_value, parse_manifests, parse_one, split_documents};
pub use selector::{SelectorMode, TargetSelector};
pub use target::Target;
