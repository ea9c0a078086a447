//! The project's own fixture corpus (`tests/fixtures/chaos-mesh`) covers every Chaos Mesh kind
//! and every action the schema crate declares. The declared list is read from the schema crate
//! itself (its kind registry and the JSON Schema of each kind), so a new kind or action without a
//! fixture fails here.

use std::collections::{BTreeMap, BTreeSet};

use chaoshub_schema::{kind_schema, parse_manifests, Kind, Manifest, CHAOS_MESH_API_VERSION};
use serde_json::Value;

use super::support::fixture_files;

/// Fault kinds whose action is not an `action` field but follows from which fields are set
/// (see each spec's `FaultSpec::actions`): (kind, action, the spec property that selects it).
const IMPLICIT_ACTIONS: &[(Kind, &str, &[&str])] = &[
    (Kind::StressChaos, "cpu", &["stressors", "cpu"]),
    (Kind::StressChaos, "memory", &["stressors", "memory"]),
    (Kind::StressChaos, "stress-ng", &["stressngStressors"]),
    (Kind::HTTPChaos, "abort", &["abort"]),
    (Kind::HTTPChaos, "delay", &["delay"]),
    (Kind::HTTPChaos, "replace", &["replace"]),
    (Kind::HTTPChaos, "patch", &["patch"]),
    (Kind::TimeChaos, "time-offset", &["timeOffset"]),
    (Kind::KernelChaos, "fail-kern-request", &["failKernRequest"]),
];

/// Follows `$ref`s into `root`'s `$defs`, and `anyOf: [X, null]` (an optional field) to X.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    loop {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            node = &root["$defs"][name];
            continue;
        }
        if let Some(options) = node.get("anyOf").and_then(Value::as_array) {
            let not_null: Vec<&Value> = options
                .iter()
                .filter(|o| o.get("type") != Some(&Value::String("null".into())))
                .collect();
            if not_null.len() == 1 {
                node = not_null[0];
                continue;
            }
        }
        return node;
    }
}

/// The values of a string enum schema (`enum: [...]`, or `oneOf` of `const`s when variants carry
/// their own documentation); `None` when the schema is not an enum.
fn enum_values(node: &Value) -> Option<Vec<String>> {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        );
    }
    let options = node.get("oneOf").and_then(Value::as_array)?;
    let mut values = Vec::new();
    for option in options {
        values.extend(enum_values(option).or_else(|| {
            option
                .get("const")
                .and_then(Value::as_str)
                .map(|c| vec![c.to_string()])
        })?);
    }
    Some(values)
}

/// The schema of `spec.<path…>` for `kind`.
fn spec_property<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut node = resolve(root, &root["properties"]["spec"]);
    for name in path {
        node = resolve(root, node.get("properties")?.get(*name)?);
    }
    Some(node)
}

/// What one manifest exercises, in the labels [`declared`] uses: a fault kind's actions, and
/// `field=value` for a non-fault kind's enum fields (as serialized, defaults applied).
fn exercised(manifest: &Manifest, enum_fields: &[String]) -> Vec<String> {
    if let Some(fault) = manifest.fault() {
        return fault.actions();
    }
    let spec = manifest.spec.to_value();
    let mut labels = Vec::new();
    for field in enum_fields {
        let values: Vec<&Value> = match field.split_once("[].") {
            Some((list, inner)) => spec[list]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| &item[inner])
                .collect(),
            None => vec![&spec[field.as_str()]],
        };
        for value in values.into_iter().filter_map(Value::as_str) {
            labels.push(format!("{field}={value}"));
        }
    }
    labels
}

/// Every Chaos Mesh kind with what the schema declares for it: a fault kind's actions; for other
/// kinds, `field=value` for each value of each string-enum field of `spec` (and of a workflow's
/// templates); a kind with neither must still have a document.
fn declared() -> BTreeMap<Kind, (Vec<String>, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for kind in Kind::ALL.iter().copied() {
        if kind.api_version() != CHAOS_MESH_API_VERSION {
            continue;
        }
        let root = kind_schema(kind);
        let spec = resolve(&root, &root["properties"]["spec"]);
        let properties = spec["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{kind}: spec schema has no properties"));
        let mut enum_fields = Vec::new();
        let mut labels = BTreeSet::new();
        if kind.is_fault() {
            match properties.get("action") {
                Some(action) => {
                    let values = enum_values(resolve(&root, action))
                        .unwrap_or_else(|| panic!("{kind}: spec.action is not an enum"));
                    labels.extend(values);
                }
                None => {
                    let implicit: Vec<_> = IMPLICIT_ACTIONS
                        .iter()
                        .filter(|(k, _, _)| *k == kind)
                        .collect();
                    assert!(
                        !implicit.is_empty(),
                        "{kind} has no spec.action enum: list its actions in IMPLICIT_ACTIONS"
                    );
                    for (_, action, path) in implicit {
                        assert!(
                            spec_property(&root, path).is_some(),
                            "{kind}: IMPLICIT_ACTIONS names spec.{} for {action}, which the \
                             schema does not have",
                            path.join(".")
                        );
                        labels.insert(action.to_string());
                    }
                }
            }
        } else {
            let mut fields: Vec<(String, &Value)> = properties
                .iter()
                .map(|(name, schema)| (name.clone(), schema))
                .collect();
            if let Some(templates) = properties.get("templates") {
                let item = resolve(&root, &resolve(&root, templates)["items"]);
                for (name, schema) in item["properties"].as_object().into_iter().flatten() {
                    fields.push((format!("templates[].{name}"), schema));
                }
            }
            for (name, schema) in fields {
                let schema = resolve(&root, schema);
                if schema.get("type") == Some(&Value::String("string".into()))
                    || schema.get("oneOf").is_some()
                {
                    if let Some(values) = enum_values(schema) {
                        labels.extend(values.iter().map(|v| format!("{name}={v}")));
                        enum_fields.push(name);
                    }
                }
            }
        }
        out.insert(kind, (enum_fields, labels));
    }
    out
}

#[test]
fn fixtures_cover_every_kind_and_action_the_schema_declares() {
    let declared = declared();
    let mut covered: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    let mut documents = 0;
    for (name, text) in fixture_files() {
        for (i, doc) in parse_manifests(&text).unwrap().into_iter().enumerate() {
            let manifest =
                doc.unwrap_or_else(|e| panic!("{name} document {}: not valid: {e}", i + 1));
            documents += 1;
            // One file per kind, named after it, so a reader finds a kind's fixtures at once.
            let expected = format!("fixtures/{}.yaml", manifest.kind().as_str().to_lowercase());
            assert_eq!(name, expected, "{name} document {}", i + 1);
            let kind = manifest.kind();
            let fields = declared
                .get(&kind)
                .map(|(f, _)| f.as_slice())
                .unwrap_or(&[]);
            covered
                .entry(kind)
                .or_default()
                .extend(exercised(&manifest, fields));
        }
    }

    let mut missing = Vec::new();
    for (kind, (_, labels)) in &declared {
        let Some(seen) = covered.get(kind) else {
            missing.push(format!("{kind}: no document at all"));
            continue;
        };
        for label in labels.difference(seen) {
            missing.push(format!("{kind}: {label}"));
        }
    }
    assert!(
        missing.is_empty(),
        "tests/fixtures/chaos-mesh lacks a document for:\n  {}",
        missing.join("\n  ")
    );

    // The declared list is the real one, not an empty derivation that passes vacuously.
    let count = |kind: Kind| declared[&kind].1.len();
    assert_eq!(count(Kind::NetworkChaos), 7);
    assert_eq!(count(Kind::PhysicalMachineChaos), 39);
    assert!(
        count(Kind::Workflow) >= 20,
        "{:?}",
        declared[&Kind::Workflow]
    );
    assert!(
        count(Kind::Schedule) >= 15,
        "{:?}",
        declared[&Kind::Schedule]
    );
    assert!(declared[&Kind::StatusCheck].1.contains("mode=Continuous"));
    let total: usize = declared.values().map(|(_, l)| l.len()).sum();
    assert!(
        documents >= 100 && total >= 120,
        "{documents} documents, {total} labels"
    );
}

#[test]
fn netem_with_a_rate_limit_is_covered() {
    // `rate` is not an action of its own: netem takes it alongside delay/loss (the CRD's
    // spec.rate), and the bandwidth action has its own rate field.
    let mut netem_rate = false;
    let mut bandwidth_rate = false;
    for (_, text) in fixture_files() {
        for doc in parse_manifests(&text).unwrap() {
            if let chaoshub_schema::Spec::NetworkChaos(n) = &doc.unwrap().spec {
                netem_rate |= n.action.as_str() == "netem" && n.rate.is_some();
                bandwidth_rate |= n.bandwidth.as_ref().is_some_and(|b| !b.rate.is_empty());
            }
        }
    }
    assert!(
        netem_rate && bandwidth_rate,
        "netem {netem_rate}, bandwidth {bandwidth_rate}"
    );
}
