//! Shared helpers: locating the Chaos Mesh reference data and asserting on errors.

use std::path::PathBuf;

use chaoshub_schema::{parse_one, Manifest, ValidationErrors};

/// `shared/reference/chaos-mesh/examples`, next to the workspace or under
/// `$CHAOSHUB_SHARED_DIR`.
pub fn examples_dir() -> PathBuf {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/chaos-mesh/examples");
    if beside.is_dir() {
        return beside;
    }
    if let Ok(shared) = std::env::var("CHAOSHUB_SHARED_DIR") {
        let dir = PathBuf::from(shared).join("reference/chaos-mesh/examples");
        if dir.is_dir() {
            return dir;
        }
    }
    panic!(
        "Chaos Mesh examples not found at {} — check out the shared reference data next to the \
         workspace or set CHAOSHUB_SHARED_DIR to the folder holding reference/chaos-mesh/examples",
        beside.display()
    );
}

/// Every example file, sorted, with its text.
pub fn example_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(examples_dir())
        .expect("examples folder is readable")
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the examples folder holds no YAML files");
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
