//! Text → manifests: YAML or JSON, one or many documents, every error with its field path.

use serde_json::Value;

use crate::error::{join_path, FieldError, ValidationErrors};
use crate::manifest::{Kind, Manifest, Spec};
pub use crate::meta::check_dns_name;
use crate::meta::ObjectMeta;
use crate::template_spec::TemplateSpec;

/// Splits YAML (or JSON, which is YAML) text into documents. Empty documents are skipped.
/// Bounds, tags and duplicate keys: see [`crate::document`].
pub fn split_documents(text: &str) -> Result<Vec<Value>, ValidationErrors> {
    crate::document::yaml_documents(text)
}

/// Parses every document of a file; each document gets its own result.
pub fn parse_manifests(
    text: &str,
) -> Result<Vec<Result<Manifest, ValidationErrors>>, ValidationErrors> {
    Ok(split_documents(text)?
        .into_iter()
        .map(manifest_from_value)
        .collect())
}

/// Parses text that must hold exactly one document.
pub fn parse_one(text: &str) -> Result<Manifest, ValidationErrors> {
    let mut docs = split_documents(text)?;
    match docs.len() {
        0 => Err(ValidationErrors::single("", "the body holds no document")),
        1 => manifest_from_value(docs.remove(0)),
        n => Err(ValidationErrors::single(
            "",
            format!("the body holds {n} documents; submit one at a time (the CLI splits files)"),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates one document and builds its typed manifest, reporting every problem at once.
pub fn manifest_from_value(value: Value) -> Result<Manifest, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let Value::Object(mut map) = value else {
        return Err(ValidationErrors::single(
            "",
            format!(
                "a manifest must be an object with apiVersion, kind, metadata and spec; got {}",
                type_name(&value)
            ),
        ));
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            errors.push(
                key.clone(),
                "unknown field (allowed: apiVersion, kind, metadata, spec, status)",
            );
        }
    }
    let api_version = match map.remove("apiVersion") {
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.push(
                "apiVersion",
                format!("must be a string, got {}", type_name(&other)),
            );
            None
        }
        None => {
            errors.push(
                "apiVersion",
                "is required (chaos-mesh.org/v1alpha1 or chaoshub.dev/v1alpha1)",
            );
            None
        }
    };
    let kind_name = match map.remove("kind") {
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.push(
                "kind",
                format!("must be a string, got {}", type_name(&other)),
            );
            None
        }
        None => {
            errors.push("kind", "is required");
            None
        }
    };
    let kind = match (&api_version, &kind_name) {
        (Some(api), Some(kind)) => match Kind::lookup(api, kind) {
            Some(k) => Some(k),
            None => {
                let known: Vec<String> = Kind::ALL
                    .iter()
                    .map(|k| format!("{}/{}", k.api_version(), k.as_str()))
                    .collect();
                match Kind::ALL.iter().find(|k| k.as_str() == kind) {
                    Some(k) => errors.push(
                        "apiVersion",
                        format!(
                            "kind {kind} belongs to apiVersion {}, not {api}",
                            k.api_version()
                        ),
                    ),
                    None => errors.push(
                        "kind",
                        format!(
                            "unknown kind {kind:?} for apiVersion {api:?}; known kinds: {}",
                            known.join(", ")
                        ),
                    ),
                }
                None
            }
        },
        _ => None,
    };
    let metadata = match map.remove("metadata") {
        Some(value) => {
            let before = errors.len();
            crate::structure::check_value::<ObjectMeta>(&value, "metadata", &mut errors);
            if errors.len() == before {
                match serde_json::from_value::<ObjectMeta>(value) {
                    Ok(meta) => {
                        validate_metadata(&meta, &mut errors);
                        Some(meta)
                    }
                    Err(e) => {
                        errors.push("metadata", e.to_string());
                        None
                    }
                }
            } else {
                None
            }
        }
        None => {
            errors.push("metadata", "is required (at least metadata.name)");
            None
        }
    };
    let spec_value = match map.remove("spec") {
        Some(v) => Some(v),
        None => {
            errors.push("spec", "is required");
            None
        }
    };
    let spec = match (kind, spec_value) {
        (Some(kind), Some(value)) => {
            let before = errors.len();
            crate::manifest::check_spec(kind, &value, "spec", &mut errors);
            if errors.len() == before {
                match Spec::from_value(kind, value) {
                    Ok(spec) => {
                        spec.validate(&mut errors);
                        if let Spec::Template(template) = &spec {
                            check_template_sample(template, "spec", &mut errors);
                        }
                        Some(spec)
                    }
                    Err(e) => {
                        errors.push("spec", e.to_string());
                        None
                    }
                }
            } else {
                None
            }
        }
        _ => None,
    };
    match (errors.is_empty(), api_version, metadata, spec) {
        (true, Some(api_version), Some(metadata), Some(spec)) => Ok(Manifest {
            api_version,
            metadata,
            spec,
        }),
        _ => {
            if errors.is_empty() {
                errors
                    .0
                    .push(FieldError::new("", "the manifest is invalid"));
            }
            Err(errors)
        }
    }
}

/// A template's experiment, rendered with sample values, must be a valid manifest of a fault
/// kind or a `Workflow` of faults (what the console's workflow builder saves). This is part of
/// validating a `Template` manifest, and lives here because rendering needs this parser, which
/// sits above every kind's spec.
fn check_template_sample(spec: &TemplateSpec, path: &str, errors: &mut ValidationErrors) {
    if !spec.ready_for_sample() {
        return;
    }
    match spec.sample_experiment().and_then(manifest_from_value) {
        Ok(manifest) => {
            let kind = manifest.kind();
            if !kind.is_fault() && kind != Kind::Workflow {
                errors.push(
                    join_path(path, "experiment.kind"),
                    format!(
                        "a template renders an experiment that injects a fault, or a Workflow of them; {kind} does neither"
                    ),
                );
            }
        }
        Err(e) => {
            for err in e.0 {
                let p = if err.path.starts_with("parameters") {
                    join_path(path, &err.path)
                } else {
                    join_path(&join_path(path, "experiment"), &err.path)
                };
                errors.push(p, err.message);
            }
        }
    }
}

fn validate_metadata(meta: &ObjectMeta, errors: &mut ValidationErrors) {
    match (&meta.name, &meta.generate_name) {
        (Some(name), _) => {
            if let Err(e) = check_dns_name(name) {
                errors.push("metadata.name", e);
            }
        }
        (None, Some(_)) => {}
        (None, None) => errors.push("metadata.name", "is required (or metadata.generateName)"),
    }
    if let Some(ns) = &meta.namespace {
        if let Err(e) = check_dns_name(ns) {
            errors.push("metadata.namespace", e);
        }
    }
}
