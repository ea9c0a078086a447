//! The uniform target inventory every adapter discovers into (DESIGN.md §2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One thing a fault can be injected into: a host, process, container, instance, proxy,
/// listener, pod… Adapters map their own notions (Docker labels, EC2 tags, agent `--label`
/// flags, Toxiproxy proxy names) onto `labels`, so selectors work the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The environment the target belongs to.
    pub environment: String,
    /// The adapter type that discovered it (`webhook`, `docker`, …).
    pub adapter: String,
    /// What sort of thing it is: `host`, `process`, `container`, `instance`, `proxy`, `listener`,
    /// `pod`, `file`, `port`, … (free text chosen by the adapter).
    pub kind: String,
    /// Stable identifier within the environment (container id, instance id, proxy name…).
    pub id: String,
    /// Human name; what Chaos Mesh name lists (`pods`, `physicalMachines`) match against.
    pub name: String,
    /// Namespace, where the environment has a notion of one; `namespaces` selectors match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}
