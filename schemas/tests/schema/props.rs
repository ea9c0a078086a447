//! Property tests: generated manifests round-trip; mutated examples never panic.

use chaoshub_schema::{manifest_from_value, split_documents};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::support::example_files;

fn mode_and_value() -> impl Strategy<Value = (String, Option<String>)> {
    prop_oneof![
        Just(("one".to_string(), None)),
        Just(("all".to_string(), None)),
        (1u32..50).prop_map(|n| ("fixed".to_string(), Some(n.to_string()))),
        (1u32..=100).prop_map(|n| ("fixed-percent".to_string(), Some(n.to_string()))),
        (1u32..=100).prop_map(|n| ("random-max-percent".to_string(), Some(n.to_string()))),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    (
        1u32..10_000,
        prop::sample::select(vec!["ms", "s", "m", "h"]),
    )
        .prop_map(|(n, u)| format!("{n}{u}"))
}

fn selector() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{1,8}", 0..3),
        prop::collection::vec("[a-z]{1,8}", 0..3),
        prop::option::of((
            "[a-z]{1,6}",
            prop::sample::select(vec!["In", "NotIn", "Exists"]),
        )),
    )
        .prop_map(|(labels, namespaces, expr)| {
            let mut s = Map::new();
            if !labels.is_empty() {
                s.insert("labelSelectors".into(), json!(labels));
            }
            if !namespaces.is_empty() {
                s.insert("namespaces".into(), json!(namespaces));
            }
            if let Some((key, op)) = expr {
                let values = if op == "Exists" {
                    json!([])
                } else {
                    json!(["v"])
                };
                s.insert(
                    "expressionSelectors".into(),
                    json!([{"key": key, "operator": op, "values": values}]),
                );
            }
            Value::Object(s)
        })
}

fn common(
    spec: &mut Map<String, Value>,
    mv: (String, Option<String>),
    sel: Value,
    dur: Option<String>,
) {
    spec.insert("mode".into(), json!(mv.0));
    if let Some(v) = mv.1 {
        spec.insert("value".into(), json!(v));
    }
    spec.insert("selector".into(), sel);
    if let Some(d) = dur {
        spec.insert("duration".into(), json!(d));
    }
}

fn network_chaos() -> impl Strategy<Value = Value> {
    (
        mode_and_value(),
        selector(),
        prop::option::of(duration()),
        duration(),
        0u32..=100,
        prop::sample::select(vec!["delay", "loss", "netem", "partition", "bandwidth"]),
    )
        .prop_map(|(mv, sel, dur, latency, pct, action)| {
            let mut spec = Map::new();
            spec.insert("action".into(), json!(action));
            common(&mut spec, mv, sel, dur);
            match action {
                "delay" | "netem" => {
                    spec.insert(
                        "delay".into(),
                        json!({"latency": latency, "correlation": pct.to_string()}),
                    );
                }
                "loss" => {
                    spec.insert("loss".into(), json!({"loss": pct.to_string()}));
                }
                "bandwidth" => {
                    spec.insert(
                        "bandwidth".into(),
                        json!({"rate": format!("{}kbps", pct + 1), "limit": 100, "buffer": 1000}),
                    );
                }
                _ => {}
            }
            json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
                   "metadata": {"name": "generated", "namespace": "default"}, "spec": spec})
        })
}

fn pod_chaos() -> impl Strategy<Value = Value> {
    (
        mode_and_value(),
        selector(),
        prop::option::of(duration()),
        prop::sample::select(vec!["pod-kill", "pod-failure", "container-kill"]),
        prop::option::of(0i64..600),
    )
        .prop_map(|(mv, sel, dur, action, grace)| {
            let mut spec = Map::new();
            spec.insert("action".into(), json!(action));
            common(&mut spec, mv, sel, dur);
            if action == "container-kill" {
                spec.insert("containerNames".into(), json!(["app"]));
            }
            if let Some(g) = grace {
                spec.insert("gracePeriod".into(), json!(g));
            }
            json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos",
                   "metadata": {"name": "generated"}, "spec": spec})
        })
}

fn stress_chaos() -> impl Strategy<Value = Value> {
    (
        mode_and_value(),
        selector(),
        prop::option::of(duration()),
        prop::option::of((1i64..16, 0i64..=100)),
        prop::option::of((1i64..16, 1u32..4096, -1000i64..=1000)),
    )
        .prop_filter("needs a stressor", |(_, _, _, cpu, mem)| {
            cpu.is_some() || mem.is_some()
        })
        .prop_map(|(mv, sel, dur, cpu, mem)| {
            let mut spec = Map::new();
            common(&mut spec, mv, sel, dur);
            let mut stressors = Map::new();
            if let Some((workers, load)) = cpu {
                stressors.insert("cpu".into(), json!({"workers": workers, "load": load}));
            }
            if let Some((workers, size, adj)) = mem {
                stressors.insert(
                    "memory".into(),
                    json!({"workers": workers, "size": format!("{size}MB"), "oomScoreAdj": adj}),
                );
            }
            spec.insert("stressors".into(), Value::Object(stressors));
            json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "StressChaos",
                   "metadata": {"name": "generated"}, "spec": spec})
        })
}

fn round_trip(value: Value) -> Result<(), TestCaseError> {
    let first = manifest_from_value(value.clone())
        .map_err(|e| TestCaseError::fail(format!("generated manifest rejected: {e}\n{value}")))?;
    let second = manifest_from_value(first.to_value())
        .map_err(|e| TestCaseError::fail(format!("re-parse rejected: {e}")))?;
    prop_assert_eq!(first, second);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn network_chaos_round_trips(value in network_chaos()) {
        round_trip(value)?;
    }

    #[test]
    fn pod_chaos_round_trips(value in pod_chaos()) {
        round_trip(value)?;
    }

    #[test]
    fn stress_chaos_round_trips(value in stress_chaos()) {
        round_trip(value)?;
    }
}

/// Every value node of a document, as a path of keys / indices.
fn paths(value: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(json!(k));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(json!(i));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(root: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    let mut node = root;
    for step in path {
        node = match step {
            Value::String(k) => node.get_mut(k.as_str())?,
            Value::Number(i) => node.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(node)
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete,
    Replace(Value),
    InsertKey(String, Value),
}

fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!([1, "two", null])),
        Just(json!({"unknown": {"deep": [1]}})),
        Just(json!("-1")),
        Just(json!("101")),
        Just(json!("fixed-percent")),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Delete),
        junk().prop_map(Mutation::Replace),
        ("[a-zA-Z_-]{1,10}", junk()).prop_map(|(k, v)| Mutation::InsertKey(k, v)),
    ]
}

/// The fixtures and shared examples as documents, read once: proptest calls this per case, and
/// the shared corpus's skip line is written once per run rather than once per case.
fn example_documents() -> &'static [Value] {
    static DOCS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        example_files()
            .into_iter()
            .flat_map(|(_, text)| split_documents(&text).unwrap())
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_examples_never_panic(
        doc_index in any::<prop::sample::Index>(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    ) {
        let docs = example_documents();
        let mut doc = docs[doc_index.index(docs.len())].clone();
        for (at, m) in mutations {
            let mut all = Vec::new();
            paths(&doc, &mut Vec::new(), &mut all);
            let path = all[at.index(all.len())].clone();
            match m {
                Mutation::Delete => {
                    if let Some((last, parent)) = path.split_last() {
                        match (node_mut(&mut doc, parent), last) {
                            (Some(Value::Object(map)), Value::String(k)) => { map.remove(k); }
                            (Some(Value::Array(items)), Value::Number(i)) => {
                                let i = i.as_u64().unwrap() as usize;
                                if i < items.len() { items.remove(i); }
                            }
                            _ => {}
                        }
                    }
                }
                Mutation::Replace(v) => {
                    if let Some(node) = node_mut(&mut doc, &path) { *node = v; }
                }
                Mutation::InsertKey(k, v) => {
                    if let Some(Value::Object(map)) = node_mut(&mut doc, &path) { map.insert(k, v); }
                }
            }
        }
        if let Err(errors) = manifest_from_value(doc) {
            prop_assert!(!errors.is_empty());
            for e in errors.iter() {
                prop_assert!(!e.message.trim().is_empty(), "empty message at {}", e.path);
            }
        }
    }
}
