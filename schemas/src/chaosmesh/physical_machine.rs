//! `PhysicalMachine`: a host running chaosd, addressable by `PhysicalMachineChaos` selectors.

use serde::{Deserialize, Serialize};

use crate::error::{join_path, ValidationErrors};
use crate::validate::Validate;

/// `spec` of a `PhysicalMachine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhysicalMachineSpec {
    /// The chaosd server's address, e.g. `http://10.0.0.5:31767`.
    pub address: String,
}

impl Validate for PhysicalMachineSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if !(self.address.starts_with("http://") || self.address.starts_with("https://")) {
            errors.push(
                join_path(path, "address"),
                format!(
                    "must be an http:// or https:// URL of a chaosd server; got {:?}",
                    self.address
                ),
            );
        }
    }
}
