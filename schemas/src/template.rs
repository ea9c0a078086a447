//! Templates as whole documents: a `Template` manifest parsed and rendered into an experiment
//! manifest (with the strict checks described in [`crate::template_spec`], whose items are
//! re-exported here), and the remote catalog index format.
//!
//! Pure: no I/O; the hub fetches and caches, this module only checks and renders.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{join_path, ValidationErrors};
use crate::manifest::{Manifest, Spec, CHAOSHUB_API_VERSION};
use crate::meta::{check_dns_name, ObjectMeta};
use crate::parse::manifest_from_value;
pub use crate::template_spec::*;

/// A parsed, validated template: its metadata and spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub metadata: ObjectMeta,
    pub spec: TemplateSpec,
}

/// Optional overrides applied to a rendered experiment's metadata and environment.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions<'a> {
    /// `metadata.name` (replacing the template's name or `generateName`).
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// `spec.environment`.
    pub environment: Option<&'a str>,
    /// The value of the `chaoshub.dev/template` label; the template's own name when absent.
    pub template_label: Option<&'a str>,
}

impl Template {
    /// Parses and validates a `Template` document (the whole template: parameters, placeholders
    /// and the experiment rendered with defaults).
    pub fn from_value(value: Value) -> Result<Template, ValidationErrors> {
        let manifest = manifest_from_value(value)?;
        Template::from_manifest(manifest)
    }

    pub fn from_manifest(manifest: Manifest) -> Result<Template, ValidationErrors> {
        match manifest.spec {
            Spec::Template(spec) => {
                let name = manifest.metadata.name.clone();
                if name.is_none() {
                    return Err(ValidationErrors::single(
                        "metadata.name",
                        "a template needs metadata.name (generateName is not enough)",
                    ));
                }
                Ok(Template {
                    metadata: manifest.metadata,
                    spec: *spec,
                })
            }
            other => Err(ValidationErrors::single(
                "kind",
                format!(
                    "expected kind Template ({CHAOSHUB_API_VERSION}), got {}",
                    other.kind()
                ),
            )),
        }
    }

    /// Parses text holding exactly one template document (YAML or JSON).
    pub fn from_text(text: &str) -> Result<Template, ValidationErrors> {
        let mut docs = crate::parse::split_documents(text)?;
        match docs.len() {
            1 => Template::from_value(docs.remove(0)),
            0 => Err(ValidationErrors::single("", "the file holds no document")),
            n => Err(ValidationErrors::single(
                "",
                format!("the file holds {n} documents; a template file holds exactly one"),
            )),
        }
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The template as a manifest value.
    pub fn to_value(&self) -> Value {
        json!({
            "apiVersion": CHAOSHUB_API_VERSION,
            "kind": "Template",
            "metadata": self.metadata,
            "spec": self.spec,
        })
    }

    /// Renders the experiment with `supplied` parameters and validates it.
    pub fn render(
        &self,
        supplied: &Map<String, Value>,
        options: &RenderOptions<'_>,
    ) -> Result<Manifest, ValidationErrors> {
        let values = self.spec.resolve_parameters(supplied)?;
        let mut experiment = self.spec.substitute(&values)?;
        let label = options.template_label.unwrap_or(self.name()).to_string();
        apply_overrides(&mut experiment, options, &label);
        let mut manifest = manifest_from_value(experiment).map_err(|errors| {
            ValidationErrors(
                errors
                    .0
                    .into_iter()
                    .map(|mut e| {
                        e.path = join_path("experiment", &e.path);
                        e
                    })
                    .collect(),
            )
        })?;
        if let Some(env) = options.environment {
            manifest.spec.set_environment(env);
        }
        Ok(manifest)
    }

    /// The JSON Schema (draft 2020-12) of the parameters object, for form generation.
    pub fn parameters_schema(&self) -> Value {
        self.spec.parameters_schema(self.name())
    }
}

fn apply_overrides(experiment: &mut Value, options: &RenderOptions<'_>, label: &str) {
    let Some(object) = experiment.as_object_mut() else {
        return;
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if let Some(name) = options.name {
        metadata.insert("name".into(), Value::String(name.into()));
        metadata.remove("generateName");
    }
    if let Some(namespace) = options.namespace {
        metadata.insert("namespace".into(), Value::String(namespace.into()));
    }
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(TEMPLATE_LABEL.into(), Value::String(label.into()));
    }
}

impl TemplateSpec {
    /// The experiment rendered with every parameter's sample value (its default where it has
    /// one), without metadata overrides: what listings describe.
    pub fn render_samples(&self) -> Result<Manifest, ValidationErrors> {
        manifest_from_value(self.sample_experiment()?)
    }
}

// ---- remote catalogs: the index format ----

/// One template listed by a remote catalog index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogIndexEntry {
    /// The template's `metadata.name`; the file must carry the same name.
    pub name: String,
    /// Where the template file is: absolute, or relative to the index URL.
    pub url: String,
}

/// A remote catalog's index file (`kind: CatalogIndex`, see docs/catalog.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogIndex {
    /// `chaoshub.dev/v1alpha1`.
    pub api_version: String,
    /// `CatalogIndex`.
    pub kind: String,
    /// Changes whenever any template changes (an RFC 3339 time or any opaque version string);
    /// the hub fetches the templates again only when it differs from the cached one.
    pub last_change: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub templates: Vec<CatalogIndexEntry>,
}

/// Most templates one index may list.
pub const MAX_INDEX_TEMPLATES: usize = 1000;

impl CatalogIndex {
    /// Parses and checks an index document (YAML or JSON), every problem with its path.
    pub fn from_text(text: &str) -> Result<CatalogIndex, ValidationErrors> {
        let mut docs = crate::parse::split_documents(text)?;
        if docs.len() != 1 {
            return Err(ValidationErrors::single(
                "",
                format!(
                    "an index holds exactly one document, this one holds {}",
                    docs.len()
                ),
            ));
        }
        let value = docs.remove(0);
        let mut errors = ValidationErrors::new();
        crate::structure::check_value::<CatalogIndex>(&value, "", &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let index: CatalogIndex = serde_json::from_value(value)
            .map_err(|e| ValidationErrors::single("", e.to_string()))?;
        if index.api_version != CHAOSHUB_API_VERSION {
            errors.push(
                "apiVersion",
                format!(
                    "must be {CHAOSHUB_API_VERSION}, got {:?}",
                    index.api_version
                ),
            );
        }
        if index.kind != CATALOG_INDEX_KIND {
            errors.push(
                "kind",
                format!("must be {CATALOG_INDEX_KIND}, got {:?}", index.kind),
            );
        }
        if index.last_change.trim().is_empty() {
            errors.push("lastChange", "must not be empty");
        }
        if index.templates.len() > MAX_INDEX_TEMPLATES {
            errors.push(
                "templates",
                format!(
                    "lists {} templates; at most {MAX_INDEX_TEMPLATES} are accepted",
                    index.templates.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, t) in index.templates.iter().enumerate() {
            if let Err(m) = check_dns_name(&t.name) {
                errors.push(format!("templates[{i}].name"), m);
            }
            if !seen.insert(t.name.as_str()) {
                errors.push(
                    format!("templates[{i}].name"),
                    format!("{:?} is listed twice", t.name),
                );
            }
            if t.url.trim().is_empty() {
                errors.push(format!("templates[{i}].url"), "must not be empty");
            }
        }
        errors.into_result().map(|()| index)
    }
}

// ---- REST bodies ----
