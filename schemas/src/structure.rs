//! Structural checks of a JSON value against a type's JSON Schema, collecting every error.
//! PLACEHOLDER: the schema helper replaces this with a full walker.

use serde_json::Value;

use crate::error::ValidationErrors;
use crate::manifest::Kind;

pub fn check_value<T: schemars::JsonSchema>(_value: &Value, _path: &str, _errors: &mut ValidationErrors) {}

pub fn check_spec(_kind: Kind, _value: &Value, _path: &str, _errors: &mut ValidationErrors) {}
