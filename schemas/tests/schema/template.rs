//! The `Template` kind: strict rendering with typed parameters, template validation, the
//! remote index format, and every shipped catalog file under `catalog/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chaoshub_schema::template::{CatalogIndex, RenderOptions, Template, TEMPLATE_LABEL};
use chaoshub_schema::{Kind, ValidationErrors};
use serde_json::{json, Map, Value};

const TEMPLATE: &str = r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Template
metadata: {name: net-delay}
spec:
  title: delay
  description: "Hypothesis: x. Watch: y."
  category: network
  tags: [latency]
  adapters: [native]
  parameters:
    - {name: app, type: string, description: app label, default: web}
    - {name: latency, type: duration, description: delay, default: 100ms, min: 1ms, max: 10s}
    - {name: loss, type: percent, description: loss, default: 10}
    - {name: gap, type: integer, description: gap, default: 5, min: 1, max: 10}
    - {name: mode, type: enum, description: mode, enum: [one, all], default: all}
    - {name: jitter, type: duration, description: optional jitter}
    - {name: target, type: string, description: required, required: true}
  experiment:
    apiVersion: chaos-mesh.org/v1alpha1
    kind: NetworkChaos
    metadata: {generateName: "delay-${app}-"}
    spec:
      action: delay
      mode: ${mode}
      selector: {labelSelectors: {app: "${app}", peer: "${target}"}}
      delay:
        latency: ${latency}
        jitter: ${jitter}
        reorder: {reorder: "${loss:string}", gap: "${gap}"}
      duration: 30s
"#;

fn template() -> Template {
    Template::from_text(TEMPLATE).unwrap_or_else(|e| panic!("{e}"))
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn has_error(errors: &ValidationErrors, path: &str, needle: &str) -> bool {
    errors
        .iter()
        .any(|e| e.path == path && e.message.contains(needle))
}

fn assert_error(errors: &ValidationErrors, path: &str, needle: &str) {
    assert!(
        has_error(errors, path, needle),
        "expected an error at {path:?} containing {needle:?}, got: {errors:?}"
    );
}

#[test]
fn renders_typed_values_and_drops_unset_optionals() {
    let t = template();
    let m = t
        .render(
            &params(json!({"target": "db", "gap": "7", "loss": "30%"})),
            &RenderOptions::default(),
        )
        .unwrap();
    assert_eq!(m.kind(), Kind::NetworkChaos);
    let v = m.to_value();
    assert_eq!(v["spec"]["mode"], "all");
    assert_eq!(v["spec"]["delay"]["latency"], "100ms");
    // An integer stays a number, a percent under :string becomes text.
    assert_eq!(v["spec"]["delay"]["reorder"]["gap"], 7);
    assert_eq!(v["spec"]["delay"]["reorder"]["reorder"], "30");
    // The optional jitter without a default leaves the field out.
    assert!(v["spec"]["delay"].get("jitter").is_none(), "{v}");
    assert_eq!(v["metadata"]["generateName"], "delay-web-");
    assert_eq!(v["metadata"]["labels"][TEMPLATE_LABEL], "net-delay");
}

#[test]
fn overrides_name_namespace_and_environment() {
    let m = template()
        .render(
            &params(json!({"target": "db"})),
            &RenderOptions {
                name: Some("my-delay"),
                namespace: Some("team-a"),
                environment: Some("staging"),
                template_label: Some("hub/net-delay"),
            },
        )
        .unwrap();
    assert_eq!(m.metadata.name.as_deref(), Some("my-delay"));
    assert!(m.metadata.generate_name.is_none());
    assert_eq!(m.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(m.fault().unwrap().environment(), Some("staging"));
    assert_eq!(m.metadata.labels[TEMPLATE_LABEL], "hub/net-delay");
}

#[test]
fn unknown_missing_and_bad_parameters_are_named() {
    let t = template();
    let errors = t
        .render(
            &params(json!({"latncy": "1s", "gap": 11, "mode": "some", "loss": 120})),
            &RenderOptions::default(),
        )
        .unwrap_err();
    assert_error(&errors, "parameters.latncy", "did you mean \"latency\"");
    assert_error(&errors, "parameters.target", "is required");
    assert_error(&errors, "parameters.gap", "at most 10");
    assert_error(&errors, "parameters.mode", "one of: one, all");
    assert_error(&errors, "parameters.loss", "0 to 100");
    let errors = t
        .render(
            &params(json!({"target": "db", "latency": "fast", "gap": 2.5})),
            &RenderOptions::default(),
        )
        .unwrap_err();
    assert_error(&errors, "parameters.latency", "duration");
    assert_error(&errors, "parameters.gap", "whole number");
    let errors = t
        .render(
            &params(json!({"target": "db", "latency": "11s"})),
            &RenderOptions::default(),
        )
        .unwrap_err();
    assert_error(&errors, "parameters.latency", "at most 10s");
}

#[test]
fn a_rendered_experiment_that_is_invalid_is_refused_with_its_path() {
    // A value the parameter allows but the kind does not: a name that is not a DNS name.
    let errors = template()
        .render(
            &params(json!({"target": "db"})),
            &RenderOptions {
                name: Some("Not A DNS Name"),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_error(&errors, "experiment.metadata.name", "not a valid name");
    assert!(
        errors.iter().any(|e| e.path.starts_with("experiment.")),
        "{errors:?}"
    );
}

#[test]
fn template_validation_names_each_problem() {
    let text = r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Template
metadata: {name: broken}
spec:
  title: ""
  description: d
  category: Network
  adapters: []
  parameters:
    - {name: a, type: integer, description: a, default: x}
    - {name: a, type: string, description: dup, default: y}
    - {name: b, type: string, description: b, min: 1, default: z}
    - {name: c, type: enum, description: c}
    - {name: unused, type: boolean, description: never used, default: true}
  experiment:
    apiVersion: chaos-mesh.org/v1alpha1
    kind: PodChaos
    metadata: {name: x}
    spec: {action: pod-kill, mode: one, selector: {}, gracePeriod: "${a}", x: "${nope}", y: "${c}", z: "${b}"}
"#;
    let errors = Template::from_text(text).unwrap_err();
    assert_error(&errors, "spec.title", "must not be empty");
    assert_error(&errors, "spec.category", "not a valid category");
    assert_error(&errors, "spec.adapters", "at least one adapter");
    assert_error(&errors, "spec.parameters[0].default", "whole number");
    assert_error(&errors, "spec.parameters[1].name", "declared twice");
    assert_error(&errors, "spec.parameters[2].min", "only integer");
    assert_error(
        &errors,
        "spec.parameters[3].enum",
        "lists its allowed values",
    );
    assert_error(
        &errors,
        "spec.parameters[4].name",
        "declared but never used",
    );
    assert_error(
        &errors,
        "spec.experiment.spec.x",
        "refers to no declared parameter",
    );
}

#[test]
fn an_experiment_that_does_not_validate_makes_the_template_invalid() {
    let text = r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Template
metadata: {name: bad-body}
spec:
  title: t
  description: d
  category: pod
  adapters: [docker]
  parameters:
    - {name: mode, type: string, description: m, default: sometimes}
  experiment:
    apiVersion: chaos-mesh.org/v1alpha1
    kind: PodChaos
    metadata: {name: x}
    spec: {action: pod-kill, mode: "${mode}", selector: {}}
"#;
    let errors = Template::from_text(text).unwrap_err();
    assert_error(&errors, "spec.experiment.spec.mode", "must be one of");
}

#[test]
fn parameters_schema_describes_every_parameter() {
    let schema = template().parameters_schema();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["target"]));
    let p = &schema["properties"];
    assert_eq!(p["gap"]["type"], "integer");
    assert_eq!(p["gap"]["minimum"], 1);
    assert_eq!(p["gap"]["maximum"], 10);
    assert_eq!(p["mode"]["enum"], json!(["one", "all"]));
    assert_eq!(p["loss"]["maximum"], 100);
    assert_eq!(p["latency"]["x-chaoshub-type"], "duration");
    assert_eq!(p["latency"]["default"], "100ms");
}

#[test]
fn index_format_is_checked() {
    let ok = CatalogIndex::from_text(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: CatalogIndex\nlastChange: '2024-05-01T00:00:00Z'\ntemplates:\n  - {name: a, url: a.yaml}\n",
    )
    .unwrap();
    assert_eq!(ok.templates.len(), 1);
    let errors = CatalogIndex::from_text(
        "apiVersion: v1\nkind: CatalogIndex\nlastChange: ''\ntemplates:\n  - {name: A, url: a.yaml}\n  - {name: A, url: ''}\n",
    )
    .unwrap_err();
    assert_error(&errors, "apiVersion", "chaoshub.dev/v1alpha1");
    assert_error(&errors, "lastChange", "must not be empty");
    assert_error(&errors, "templates[0].name", "not a valid name");
    assert_error(&errors, "templates[1].name", "listed twice");
    assert_error(&errors, "templates[1].url", "must not be empty");
    let errors = CatalogIndex::from_text("kind: CatalogIndex\ntemplates: 3\n").unwrap_err();
    assert_error(&errors, "templates", "must be an array");
}

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")
}

/// Every `catalog/<category>/<name>.yaml` file.
fn catalog_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for category in std::fs::read_dir(catalog_dir()).unwrap() {
        let category = category.unwrap().path();
        if !category.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&category).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    files.sort();
    files
}

/// Parses every shipped catalog file and renders it with its defaults.
#[test]
fn every_shipped_catalog_file_parses_and_renders_with_defaults() {
    let files = catalog_files();
    assert!(
        files.len() >= 40,
        "the catalog ships {} templates",
        files.len()
    );
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut adapters = BTreeSet::new();
    for path in &files {
        let shown = path
            .strip_prefix(catalog_dir())
            .unwrap()
            .display()
            .to_string();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            failures.push(format!("{shown}: catalog files end in .yaml"));
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let template = match Template::from_text(&text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let stem = path.file_stem().unwrap().to_string_lossy();
        let folder = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        if template.name() != stem {
            failures.push(format!(
                "{shown}: metadata.name {:?} differs from the file name",
                template.name()
            ));
        }
        if template.spec.category != folder {
            failures.push(format!(
                "{shown}: spec.category {:?} differs from the folder",
                template.spec.category
            ));
        }
        let description = &template.spec.description;
        if !description.contains("Hypothesis:") || !description.contains("Watch:") {
            failures.push(format!(
                "{shown}: the description states a Hypothesis: and what to Watch:"
            ));
        }
        if !names.insert(template.name().to_string()) {
            failures.push(format!("{shown}: name used twice"));
        }
        for p in &template.spec.parameters {
            if p.default.is_none() {
                failures.push(format!(
                    "{shown}: parameter {} has no default (shipped templates run with defaults)",
                    p.name
                ));
            }
        }
        match template.render(&Map::new(), &RenderOptions::default()) {
            Ok(m) => {
                kinds.insert(m.kind());
            }
            Err(e) => failures.push(format!("{shown}: rendering with defaults: {e}")),
        }
        adapters.extend(template.spec.adapters.iter().cloned());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for kind in [
        Kind::NetworkChaos,
        Kind::StressChaos,
        Kind::PodChaos,
        Kind::PhysicalMachineChaos,
        Kind::IOChaos,
        Kind::TimeChaos,
        Kind::DNSChaos,
        Kind::HTTPChaos,
        Kind::ProxyChaos,
    ] {
        assert!(kinds.contains(&kind), "no template renders a {kind}");
    }
    for adapter in [
        "webhook",
        "native",
        "docker",
        "ssm",
        "toxiproxy",
        "envoy",
        "kubernetes",
    ] {
        assert!(adapters.contains(adapter), "no template suits {adapter}");
    }
}
