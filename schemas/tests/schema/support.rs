//! Shared helpers: the manifests the tests read and assertions on errors.
//!
//! The project's own fixtures (`tests/fixtures/chaos-mesh`) are always read. The shared Chaos
//! Mesh example corpus beside the checkout adds coverage when it is present; when it is missing
//! the tests say so (a `SKIP` line) and run on the fixtures alone, and under `CI=true` they fail.

use std::path::Path;

use chaoshub_schema::{parse_one, Manifest, ValidationErrors};

/// The manifests of `dir` as (`<label>/<file name>`, text).
fn manifest_files(dir: &Path, label: &str) -> Vec<(String, String)> {
    chaoshub_testkit::manifest_files(dir)
        .into_iter()
        .map(|(path, text)| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (format!("{label}/{name}"), text)
        })
        .collect()
}

/// The project's own Chaos Mesh manifests: every kind and action the schema declares.
pub fn fixture_files() -> Vec<(String, String)> {
    manifest_files(&chaoshub_testkit::fixtures_dir(), "fixtures")
}

/// The shared Chaos Mesh examples, when present (a `SKIP` line otherwise; a panic under CI).
pub fn shared_example_files() -> Option<Vec<(String, String)>> {
    chaoshub_testkit::shared_dir("reference/chaos-mesh/examples")
        .map(|dir| manifest_files(&dir, "shared"))
}

/// Every manifest file the tests read: the fixtures, then the shared examples when present.
pub fn example_files() -> Vec<(String, String)> {
    let mut files = fixture_files();
    files.extend(shared_example_files().unwrap_or_default());
    files
}

pub fn parse_ok(text: &str) -> Manifest {
    match parse_one(text) {
        Ok(m) => m,
        Err(e) => panic!("expected the manifest to be valid, got: {e}\n{text}"),
    }
}

pub fn parse_err(text: &str) -> ValidationErrors {
    match parse_one(text) {
        Ok(m) => panic!("expected the manifest to be rejected:\n{text}\nparsed: {m:?}"),
        Err(e) => e,
    }
}

/// Asserts that some error has exactly `path` and a message containing `needle`.
#[track_caller]
pub fn assert_error(errors: &ValidationErrors, path: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "expected an error at {path} containing {needle:?}; got: {errors:#?}"
    );
}
