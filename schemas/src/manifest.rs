//! The manifest envelope (`apiVersion`, `kind`, `metadata`, `spec`, `status`), the kind registry
//! and the per-kind fault accessors the hub uses.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::chaosmesh::*;
use crate::environment::EnvironmentSpec;
use crate::error::ValidationErrors;
use crate::meta::ObjectMeta;
use crate::proxy::ProxyChaosSpec;

pub const CHAOS_MESH_API_VERSION: &str = "chaos-mesh.org/v1alpha1";
pub const CHAOSHUB_API_VERSION: &str = "chaoshub.dev/v1alpha1";

macro_rules! kinds {
    ($( $variant:ident => $api:expr, $spec:ty, fault = $fault:tt; )*) => {
        /// Every kind the hub understands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $( $variant, )* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[ $( Kind::$variant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( Kind::$variant => stringify!($variant), )* }
            }

            pub fn api_version(self) -> &'static str {
                match self { $( Kind::$variant => $api, )* }
            }

            /// Looks a kind up by `apiVersion` and `kind`.
            pub fn lookup(api_version: &str, kind: &str) -> Option<Kind> {
                Kind::ALL.iter().copied().find(|k| k.as_str() == kind && k.api_version() == api_version)
            }

            /// Whether experiments of this kind inject a fault (as opposed to `Environment`,
            /// `Schedule`, `Workflow`, `StatusCheck`, which orchestrate or describe).
            pub fn is_fault(self) -> bool {
                match self { $( Kind::$variant => kinds!(@bool $fault), )* }
            }

            /// The JSON Schema of the kind's `spec`.
            pub fn spec_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $( Kind::$variant => generator.subschema_for::<$spec>(), )* }
            }
        }

        /// A typed `spec`, one variant per kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec { $( $variant(Box<$spec>), )* }

        impl Spec {
            pub fn kind(&self) -> Kind {
                match self { $( Spec::$variant(_) => Kind::$variant, )* }
            }

            /// Deserializes a `spec` value for `kind` (structure only; see `Validate`).
            pub fn from_value(kind: Kind, value: Value) -> Result<Spec, serde_json::Error> {
                Ok(match kind { $( Kind::$variant => Spec::$variant(Box::new(serde_json::from_value(value)?)), )* })
            }

            pub fn to_value(&self) -> Value {
                match self { $( Spec::$variant(s) => serde_json::to_value(s).unwrap_or(Value::Null), )* }
            }

            /// The fault accessors, for kinds that inject a fault.
            pub fn fault(&self) -> Option<&dyn FaultSpec> {
                match self { $( Spec::$variant(s) => kinds!(@fault $fault, s), )* }
            }

            /// Semantic validation beyond the structure (ranges, mode/value, durations…).
            pub fn validate(&self, errors: &mut crate::error::ValidationErrors) {
                match self { $( Spec::$variant(s) => crate::validate::Validate::validate(s.as_ref(), "spec", errors), )* }
            }

            /// Sets the environment this experiment runs in (`spec.environment`).
            pub fn set_environment(&mut self, env: &str) {
                match self { $( Spec::$variant(s) => kinds!(@setenv $fault, s, env), )* }
            }
        }
    };
    (@bool yes) => { true };
    (@bool no) => { false };
    (@fault yes, $s:ident) => { Some($s.as_ref() as &dyn FaultSpec) };
    (@fault no, $s:ident) => { { let _ = $s; None } };
    (@setenv yes, $s:ident, $env:ident) => { FaultSpec::set_environment($s.as_mut(), $env) };
    (@setenv no, $s:ident, $env:ident) => { { let _ = ($s, $env); } };
}

kinds! {
    NetworkChaos => CHAOS_MESH_API_VERSION, NetworkChaosSpec, fault = yes;
    PodChaos => CHAOS_MESH_API_VERSION, PodChaosSpec, fault = yes;
    StressChaos => CHAOS_MESH_API_VERSION, StressChaosSpec, fault = yes;
    IOChaos => CHAOS_MESH_API_VERSION, IOChaosSpec, fault = yes;
    TimeChaos => CHAOS_MESH_API_VERSION, TimeChaosSpec, fault = yes;
    HTTPChaos => CHAOS_MESH_API_VERSION, HTTPChaosSpec, fault = yes;
    DNSChaos => CHAOS_MESH_API_VERSION, DNSChaosSpec, fault = yes;
    PhysicalMachineChaos => CHAOS_MESH_API_VERSION, PhysicalMachineChaosSpec, fault = yes;
    KernelChaos => CHAOS_MESH_API_VERSION, KernelChaosSpec, fault = yes;
    JVMChaos => CHAOS_MESH_API_VERSION, JVMChaosSpec, fault = yes;
    AWSChaos => CHAOS_MESH_API_VERSION, AWSChaosSpec, fault = yes;
    GCPChaos => CHAOS_MESH_API_VERSION, GCPChaosSpec, fault = yes;
    AzureChaos => CHAOS_MESH_API_VERSION, AzureChaosSpec, fault = yes;
    BlockChaos => CHAOS_MESH_API_VERSION, BlockChaosSpec, fault = yes;
    Schedule => CHAOS_MESH_API_VERSION, ScheduleSpec, fault = no;
    Workflow => CHAOS_MESH_API_VERSION, WorkflowSpec, fault = no;
    StatusCheck => CHAOS_MESH_API_VERSION, StatusCheckSpec, fault = no;
    PhysicalMachine => CHAOS_MESH_API_VERSION, PhysicalMachineSpec, fault = no;
    RemoteCluster => CHAOS_MESH_API_VERSION, RemoteClusterSpec, fault = no;
    ProxyChaos => CHAOSHUB_API_VERSION, ProxyChaosSpec, fault = yes;
    Environment => CHAOSHUB_API_VERSION, EnvironmentSpec, fault = no;
    Template => CHAOSHUB_API_VERSION, crate::template_spec::TemplateSpec, fault = no;
    Suite => CHAOSHUB_API_VERSION, crate::suite::SuiteSpec, fault = no;
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::fault::FaultSpec;

/// A parsed, structurally valid manifest of any kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub api_version: String,
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

impl Manifest {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    pub fn fault(&self) -> Option<&dyn FaultSpec> {
        self.spec.fault()
    }

    /// The manifest as JSON (no `status`).
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        map.insert("kind".into(), Value::String(self.kind().as_str().into()));
        map.insert(
            "metadata".into(),
            serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
        );
        map.insert("spec".into(), self.spec.to_value());
        Value::Object(map)
    }
}

impl Serialize for Manifest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// The JSON Schema (draft 2020-12) of a whole manifest of `kind`: `apiVersion` and `kind` as
/// constants, `metadata`, the kind's `spec`, and an optional `status` the hub fills in.
pub fn kind_schema(kind: Kind) -> Value {
    let mut generator = schemars::SchemaGenerator::default();
    let metadata = generator.subschema_for::<ObjectMeta>().to_value();
    let spec = kind.spec_schema(&mut generator).to_value();
    let defs = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://chaoshub.dev/schemas/{}.json", kind.as_str().to_ascii_lowercase()),
        "title": kind.as_str(),
        "description": format!("A {} manifest ({}).", kind.as_str(), kind.api_version()),
        "type": "object",
        "properties": {
            "apiVersion": { "type": "string", "const": kind.api_version() },
            "kind": { "type": "string", "const": kind.as_str() },
            "metadata": metadata,
            "spec": spec,
            "status": { "description": "Filled in by the hub; ignored on input." },
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": false,
        "$defs": defs,
    })
}

/// Checks a `spec` value against the schema of `kind`'s spec type, collecting every error.
pub fn check_spec(kind: Kind, value: &Value, path: &str, errors: &mut ValidationErrors) {
    crate::structure::check_against(
        &format!("kind:{}", kind.as_str()),
        || spec_root_schema(kind),
        value,
        path,
        errors,
    );
}

/// The root schema (with `$defs`) of `kind`'s spec type.
fn spec_root_schema(kind: Kind) -> Value {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = kind.spec_schema(&mut generator).to_value();
    let defs = generator.take_definitions(true);
    let mut root = match schema {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("allOf".into(), Value::Array(vec![other]));
            map
        }
    };
    if !defs.is_empty() {
        root.insert("$defs".into(), Value::Object(defs));
    }
    Value::Object(root)
}
