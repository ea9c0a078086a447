//! ProxyChaos (Toxiproxy toxics): valid and invalid cases.

use chaoshub_schema::Spec;

use super::support::{assert_error, parse_err, parse_ok};

fn proxy(spec: &str) -> String {
    format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: ProxyChaos\nmetadata: {{name: p}}\nspec:\n{spec}"
    )
}

const SELECT: &str = "  mode: all\n  selector: {labelSelectors: {proxy: redis}}\n";

#[test]
fn every_toxic_parses() {
    for block in [
        "  action: latency\n  latency: {latency: 200, jitter: 10}\n",
        "  action: down\n",
        "  action: bandwidth\n  bandwidth: {rate: 100}\n",
        "  action: slow_close\n  slow_close: {delay: 500}\n",
        "  action: timeout\n  timeout: {timeout: 1000}\n",
        "  action: reset_peer\n  reset_peer: {timeout: 0}\n",
        "  action: slicer\n  slicer: {average_size: 64, size_variation: 32, delay: 10}\n",
        "  action: limit_data\n  limit_data: {bytes: 1024}\n",
    ] {
        let m = parse_ok(&proxy(&format!(
            "{block}{SELECT}  duration: 30s\n  environment: toxi\n"
        )));
        let fault = m.fault().unwrap();
        assert_eq!(fault.environment(), Some("toxi"));
        assert_eq!(fault.actions().len(), 1);
    }
}

#[test]
fn defaults_and_attributes() {
    let m = parse_ok(&proxy(&format!(
        "  action: latency\n  latency: {{latency: 200}}\n{SELECT}"
    )));
    let Spec::ProxyChaos(p) = &m.spec else {
        panic!("not a ProxyChaos")
    };
    assert_eq!(p.toxicity, 1.0);
    assert_eq!(p.stream, chaoshub_schema::proxy::ToxicStream::Downstream);
    assert_eq!(
        p.toxic_attributes(),
        serde_json::json!({"latency": 200, "jitter": 0})
    );
    assert_eq!(
        m.fault()
            .unwrap()
            .target_selector()
            .unwrap()
            .label_selectors["proxy"],
        "redis"
    );
}

#[test]
fn invalid_toxics_are_rejected_with_paths() {
    let errors = parse_err(&proxy(&format!("  action: latency\n{SELECT}")));
    assert_error(
        &errors,
        "spec.latency",
        "is required when action is latency",
    );
    let errors = parse_err(&proxy(&format!(
        "  action: down\n  bandwidth: {{rate: 10}}\n{SELECT}"
    )));
    assert_error(
        &errors,
        "spec.bandwidth",
        "only used when action is bandwidth",
    );
    let errors = parse_err(&proxy(&format!(
        "  action: latency\n  latency: {{latency: -5}}\n{SELECT}"
    )));
    assert_error(&errors, "spec.latency.latency", "0 or more");
    let errors = parse_err(&proxy(&format!(
        "  action: latency\n  latency: {{latency: 5}}\n  toxicity: 1.5\n{SELECT}"
    )));
    assert_error(&errors, "spec.toxicity", "1");
    let errors = parse_err(&proxy(&format!("  action: jam\n{SELECT}")));
    assert_error(
        &errors,
        "spec.action",
        "latency, down, bandwidth, slow_close",
    );
    let errors = parse_err(&proxy(&format!(
        "  action: bandwidth\n  bandwidth: {{rate: 1, burst: 2}}\n{SELECT}"
    )));
    assert_error(&errors, "spec.bandwidth.burst", "unknown field");
    let errors = parse_err(&proxy(&format!(
        "  action: slicer\n  slicer: {{average_size: 0}}\n{SELECT}"
    )));
    assert_error(&errors, "spec.slicer.average_size", "at least 1");
    let errors = parse_err(&proxy(&format!(
        "  action: down\n  stream: sideways\n{SELECT}"
    )));
    assert_error(&errors, "spec.stream", "upstream, downstream, both");
    let errors = parse_err(&proxy(
        "  action: down\n  mode: fixed-percent\n  selector: {}\n",
    ));
    assert_error(&errors, "spec.value", "fixed-percent");
    // The Chaos Mesh apiVersion does not own ProxyChaos.
    let wrong =
        proxy(&format!("  action: down\n{SELECT}")).replace("chaoshub.dev", "chaos-mesh.org");
    assert_error(&parse_err(&wrong), "apiVersion", "chaoshub.dev/v1alpha1");
}
