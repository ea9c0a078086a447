//! Semantic validation: rules beyond structure (ranges, mode/value consistency, durations).
//! Pure: never touches the network or the filesystem.

use crate::error::ValidationErrors;

/// Checks a typed value, pushing every problem found (never stopping at the first) with the
/// JSON path of the field under `path`.
pub trait Validate {
    fn validate(&self, path: &str, errors: &mut ValidationErrors);
}
