//! Every Chaos Mesh manifest parses and validates, unchanged: the project's fixtures always, the
//! shared Chaos Mesh examples when present.

use chaoshub_schema::chaosmesh::ScheduleType;
use chaoshub_schema::{manifest_from_value, parse_manifests, split_documents, Kind, Spec};

use super::support::example_files;

#[test]
fn every_example_parses_and_validates() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, text) in example_files() {
        match parse_manifests(&text) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(docs) => {
                assert!(!docs.is_empty(), "{name}: no documents");
                for (i, doc) in docs.into_iter().enumerate() {
                    count += 1;
                    if let Err(e) = doc {
                        failures.push(format!("{name} document {}: {e}", i + 1));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples rejected:\n{}",
        failures.join("\n")
    );
    // The fixtures alone hold one document per action of every kind (over a hundred).
    assert!(
        count >= 100,
        "expected the whole fixture corpus, parsed {count} documents"
    );
}

#[test]
fn examples_round_trip_through_to_value() {
    for (name, text) in example_files() {
        for doc in parse_manifests(&text).unwrap() {
            let manifest = doc.unwrap();
            let again = chaoshub_schema::manifest_from_value(manifest.to_value())
                .unwrap_or_else(|e| panic!("{name}: re-parse failed: {e}"));
            assert_eq!(manifest, again, "{name}: round trip changed the manifest");
        }
    }
}

#[test]
fn examples_cover_the_kinds_and_keep_defaults() {
    let mut kinds = std::collections::BTreeSet::new();
    for (name, text) in example_files() {
        for raw in split_documents(&text).unwrap() {
            let manifest =
                manifest_from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            kinds.insert(manifest.kind());
            if let Spec::Schedule(s) = &manifest.spec {
                if s.schedule_type == ScheduleType::PodChaos {
                    let pod = s
                        .pod_chaos
                        .as_ref()
                        .expect("a PodChaos schedule embeds podChaos");
                    assert_eq!(
                        Some(pod.action.as_str()),
                        raw["spec"]["podChaos"]["action"].as_str(),
                        "{name}"
                    );
                }
            }
            if let Spec::StressChaos(s) = &manifest.spec {
                if let Some(mem) = s.stressors.as_ref().and_then(|s| s.memory.as_ref()) {
                    // As written, else the CRD's default 0.
                    let written = raw["spec"]["stressors"]["memory"]["oomScoreAdj"].as_i64();
                    assert_eq!(mem.oom_score_adj, written.unwrap_or(0), "{name}");
                }
            }
        }
    }
    for kind in [
        Kind::NetworkChaos,
        Kind::PodChaos,
        Kind::StressChaos,
        Kind::Workflow,
        Kind::Schedule,
    ] {
        assert!(kinds.contains(&kind), "no example of {kind}");
    }
}

#[test]
fn crd_defaults_are_applied() {
    let m = super::support::parse_ok(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: StatusCheck\nmetadata: {name: s}\n\
         spec:\n  http: {url: 'http://x', criteria: {statusCode: '200-299'}}\n",
    );
    let Spec::StatusCheck(s) = &m.spec else {
        panic!()
    };
    assert_eq!(
        (
            s.timeout_seconds,
            s.interval_seconds,
            s.failure_threshold,
            s.success_threshold
        ),
        (1, 10, 3, 1)
    );
    assert_eq!(s.records_history_limit, 100);
    let m = super::support::parse_ok(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: n}\n\
         spec: {action: partition, mode: all, selector: {}}\n",
    );
    let Spec::NetworkChaos(n) = &m.spec else {
        panic!()
    };
    assert_eq!(n.direction, chaoshub_schema::chaosmesh::Direction::To);
}
