//! The JSON Schemas in `schemas/json/` are generated; this test fails when they drift.

use std::path::PathBuf;

use chaoshub_schema::{kind_schema, Kind};

#[test]
fn json_schemas_are_up_to_date() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var("CHAOSHUB_UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for kind in Kind::ALL {
        let file = dir.join(format!("{}.json", kind.as_str().to_ascii_lowercase()));
        let text = serde_json::to_string_pretty(&kind_schema(*kind)).unwrap() + "\n";
        if update {
            std::fs::write(&file, &text).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            stale.push(file.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "the JSON Schemas are out of date: {}\nregenerate them with \
         CHAOSHUB_UPDATE_SCHEMAS=1 cargo test -p chaoshub-schema --test schema export",
        stale.join(", ")
    );
}

#[test]
fn every_schema_pins_api_version_and_kind() {
    for kind in Kind::ALL {
        let schema = kind_schema(*kind);
        assert_eq!(schema["properties"]["kind"]["const"], kind.as_str());
        assert_eq!(
            schema["properties"]["apiVersion"]["const"],
            kind.api_version()
        );
        assert!(schema["$defs"].is_object(), "{kind}: no $defs");
    }
}
