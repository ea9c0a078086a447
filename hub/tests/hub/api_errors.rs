//! Bad input never produces a 5xx or takes the server down: thousands of random and mutated
//! bodies, generated with proptest's strategies, against every write endpoint.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;

use super::support::Sandbox;

/// Manifests to mutate: the project's fixtures (every Chaos Mesh kind and action) always, and the
/// shared Chaos Mesh examples when present (a `SKIP` line otherwise; required under `CI=true`).
fn examples() -> Vec<Value> {
    let mut dirs = vec![chaoshub_testkit::fixtures_dir()];
    dirs.extend(chaoshub_testkit::shared_dir(
        "reference/chaos-mesh/examples",
    ));
    let mut out = Vec::new();
    for dir in dirs {
        for (_, text) in chaoshub_testkit::manifest_files(&dir) {
            for mut doc in chaoshub_schema::split_documents(&text).unwrap() {
                // Point the examples at the sandbox's environment so mutated bodies get past
                // the environment lookup and exercise capability checks and the engine too.
                if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("environment".into(), Value::String("mem".into()));
                }
                out.push(doc);
            }
        }
    }
    assert!(
        out.len() >= 100,
        "expected the fixture corpus, got {} documents",
        out.len()
    );
    out
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("all"),
            Just("fixed-percent"),
            Just("10x"),
            Just("-1"),
            Just("delay"),
            Just("NetworkChaos")
        ]
        .prop_map(|s| Value::String(s.into())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mutates one random spot of a document: delete a key, replace a value, add an unknown key.
fn mutate(node: &mut Value, path_choice: &[usize], replacement: Value, op: u8) {
    if let Some((&c, rest)) = path_choice.split_first() {
        let index = match &*node {
            Value::Object(map) if !map.is_empty() => Some(c % map.len()),
            Value::Array(items) if !items.is_empty() => Some(c % items.len()),
            _ => None,
        };
        let descend = index.is_some_and(|i| match &*node {
            Value::Object(map) => map
                .values()
                .nth(i)
                .is_some_and(|v| v.is_object() || v.is_array()),
            Value::Array(items) => items[i].is_object() || items[i].is_array(),
            _ => false,
        });
        if let (true, Some(i)) = (descend, index) {
            let child = match node {
                Value::Object(map) => map.values_mut().nth(i).unwrap(),
                Value::Array(items) => &mut items[i],
                _ => unreachable!("checked above"),
            };
            return mutate(child, rest, replacement, op);
        }
    }
    match (node, op % 3) {
        (Value::Object(map), 0) if !map.is_empty() => {
            let key = map.keys().next().unwrap().clone();
            map.remove(&key);
        }
        (Value::Object(map), 1) => {
            map.insert("unexpectedField".into(), replacement);
        }
        (Value::Object(map), _) if !map.is_empty() => {
            let key = map.keys().next_back().unwrap().clone();
            map.insert(key, replacement);
        }
        (Value::Array(items), _) => items.push(replacement),
        (other, _) => *other = replacement,
    }
}

#[tokio::test]
async fn thousands_of_bad_bodies_get_only_4xx() {
    let s = Sandbox::start(3).await;
    let examples = examples();
    let mut runner = TestRunner::deterministic();
    let mut statuses = std::collections::BTreeMap::new();
    let paths = [
        "/api/v1/experiments",
        "/api/v1/experiments?dryRun=true",
        "/api/v1/experiments?env=mem",
        "/api/v1/environments",
        "/api/v1/halt",
    ];
    let mut sent = 0;
    for i in 0..2400usize {
        let body: (String, String) = match i % 4 {
            // Mutated real manifests.
            0 | 1 => {
                let mut doc = examples[i % examples.len()].clone();
                let choice = prop::collection::vec(any::<usize>(), 0..6)
                    .new_tree(&mut runner)
                    .unwrap()
                    .current();
                let replacement = json_value().new_tree(&mut runner).unwrap().current();
                let op = any::<u8>().new_tree(&mut runner).unwrap().current();
                mutate(&mut doc, &choice, replacement, op);
                if i % 2 == 0 {
                    ("application/json".into(), doc.to_string())
                } else {
                    (
                        "application/yaml".into(),
                        serde_saphyr::to_string(&doc).unwrap(),
                    )
                }
            }
            // Arbitrary JSON documents.
            2 => (
                "application/json".into(),
                json_value()
                    .new_tree(&mut runner)
                    .unwrap()
                    .current()
                    .to_string(),
            ),
            // Arbitrary text, including broken YAML and non-UTF-8 turned lossy.
            _ => {
                let bytes = prop::collection::vec(any::<u8>(), 0..200)
                    .new_tree(&mut runner)
                    .unwrap()
                    .current();
                (
                    "application/yaml".into(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            }
        };
        let path = paths[i % paths.len()];
        let (code, value) = s
            .request(reqwest::Method::POST, path, Some((&body.0, body.1.clone())))
            .await;
        *statuses.entry(code).or_insert(0) += 1;
        assert!(code < 500, "{path} answered {code} to {}: {value}", body.1);
        if code >= 400 {
            assert!(
                value["code"].is_string() && value["message"].is_string(),
                "error body without code/message: {value}"
            );
        }
        sent += 1;
        // Anything accepted is stopped at once so the sandbox stays small.
        if code == 201 && path.starts_with("/api/v1/experiments") {
            if let Some(uid) = value["metadata"]["uid"].as_str() {
                s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
            }
        }
        if path == "/api/v1/halt" && code == 200 {
            s.delete("/api/v1/halt").await;
        }
    }
    eprintln!("sent {sent} bodies; statuses: {statuses:?}");
    let (code, _) = s.get("/healthz").await;
    assert_eq!(code, 200, "the server must still answer");
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let s = Sandbox::start(1).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let (code, body) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/experiments",
            Some(("application/yaml", big)),
        )
        .await;
    assert_eq!(code, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    let (code, body) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/experiments",
            Some(("application/xml", "<a/>".into())),
        )
        .await;
    assert_eq!(code, 415, "{body}");
    let (code, body) = s.get("/api/v1/nothing-here").await;
    assert_eq!(code, 404);
    assert_eq!(body["code"], "not_found");
    let (code, body) = s
        .request(reqwest::Method::PUT, "/api/v1/experiments", None)
        .await;
    assert_eq!(code, 405, "{body}");
    let (code, body) = s.get("/api/v1/experiments?phase=Dancing").await;
    assert_eq!(code, 400);
    assert!(body["message"].as_str().unwrap().contains("Dancing"));
    let (code, body) = s.get("/api/v1/experiments?limitt=3").await;
    assert_eq!(code, 400);
    assert!(body["message"].as_str().unwrap().contains("limitt"));
    let (code, _) = s.get("/api/v1/experiments/does-not-exist").await;
    assert_eq!(code, 404);
    let (code, body) = s
        .post_yaml("/api/v1/experiments", "a: b\n---\nc: d\n")
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["code"], "multiple_documents");
    let (code, body) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/experiments",
            Some(("application/json", "{\"apiVersion\": ".into())),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["code"], "invalid_json");
    // Several problems in one document are all reported, each with its path.
    let bad = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: Bad_Name}\nspec:\n  action: delay\n  mode: fixed-percent\n  selector: {labelSelectors: {app: web}}\n  delay: {latency: 10x}\n  duration: soon\n";
    let (code, body) = s.post_yaml("/api/v1/experiments", bad).await;
    assert_eq!(code, 400, "{body}");
    let paths: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"metadata.name"), "{paths:?}");
    assert!(paths.len() >= 2, "{paths:?}");
}
