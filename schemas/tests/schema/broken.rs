//! Broken manifests are rejected with the failing field's path, all errors at once.

use super::support::{assert_error, parse_err, parse_ok};

const DELAY: &str = "apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  name: delay
spec:
  action: delay
  mode: one
  selector:
    labelSelectors:
      app: web
  delay:
    latency: 90ms
    correlation: '25'
    jitter: 10ms
  duration: 30s
";

fn replace(from: &str, to: &str) -> String {
    assert!(DELAY.contains(from), "{from:?} not in the base manifest");
    DELAY.replace(from, to)
}

#[test]
fn base_manifest_is_valid() {
    parse_ok(DELAY);
}

#[test]
fn wrong_enum_names_the_allowed_values() {
    let errors = parse_err(&replace("action: delay", "action: bogus"));
    assert_error(&errors, "spec.action", "must be one of: netem, delay, loss");
    assert_error(&errors, "spec.action", "bogus");
}

#[test]
fn bad_duration() {
    let errors = parse_err(&replace("duration: 30s", "duration: 10x"));
    assert_error(&errors, "spec.duration", "must be a duration");
    let errors = parse_err(&replace("latency: 90ms", "latency: fast"));
    assert_error(&errors, "spec.delay.latency", "must be a duration");
}

#[test]
fn wrong_type() {
    let errors = parse_err(&replace("duration: 30s", "duration: 30"));
    assert_error(&errors, "spec.duration", "must be a string, got number");
}

#[test]
fn missing_required_field() {
    let errors = parse_err(&replace("  mode: one\n", ""));
    assert_error(&errors, "spec.mode", "is required");
    let errors = parse_err(&replace("    latency: 90ms\n", ""));
    assert_error(&errors, "spec.delay.latency", "is required");
}

#[test]
fn missing_action_block() {
    let errors = parse_err(&replace("action: delay", "action: loss"));
    assert_error(&errors, "spec.loss", "is required when action is loss");
}

#[test]
fn unknown_field_is_named_with_a_suggestion() {
    let errors = parse_err(&replace("latency: 90ms", "latencyy: 90ms"));
    assert_error(
        &errors,
        "spec.delay.latencyy",
        "unknown field (did you mean latency?)",
    );
    let errors = parse_err(&replace(
        "  duration: 30s\n",
        "  duration: 30s\n  wibble: 1\n",
    ));
    assert_error(
        &errors,
        "spec.wibble",
        "unknown field (allowed: action, mode",
    );
}

#[test]
fn fixed_percent_needs_a_value() {
    let errors = parse_err(&replace("mode: one", "mode: fixed-percent"));
    assert_error(
        &errors,
        "spec.value",
        "is required when mode is fixed-percent",
    );
    let errors = parse_err(&replace("mode: one", "mode: fixed\n  value: '0'"));
    assert_error(&errors, "spec.value", "at least 1");
    let errors = parse_err(&replace(
        "mode: one",
        "mode: random-max-percent\n  value: '101'",
    ));
    assert_error(&errors, "spec.value", "1 to 100");
    parse_ok(&replace("mode: one", "mode: fixed\n  value: '2'"));
}

#[test]
fn bad_expression_operator() {
    let text = replace(
        "    labelSelectors:\n      app: web\n",
        "    expressionSelectors:\n      - {key: app, operator: Maybe, values: [web]}\n      - {key: tier, operator: In}\n      - {key: x, operator: Exists, values: [y]}\n",
    );
    let errors = parse_err(&text);
    assert_error(
        &errors,
        "spec.selector.expressionSelectors[0].operator",
        "In, NotIn, Exists, DoesNotExist",
    );
    assert_error(
        &errors,
        "spec.selector.expressionSelectors[1].values",
        "at least one value",
    );
    assert_error(
        &errors,
        "spec.selector.expressionSelectors[2].values",
        "must be empty",
    );
}

#[test]
fn percent_over_100() {
    let errors = parse_err(&replace("correlation: '25'", "correlation: '101'"));
    assert_error(&errors, "spec.delay.correlation", "0 to 100");
    let loss = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: l}\n\
                spec: {action: loss, mode: all, selector: {}, loss: {loss: '250'}}\n";
    assert_error(&parse_err(loss), "spec.loss.loss", "0 to 100");
}

#[test]
fn array_items_have_indexed_paths() {
    let text = replace(
        "    labelSelectors:\n      app: web\n",
        "    pods:\n      default: [web-0, 7]\n",
    );
    let errors = parse_err(&text);
    assert_error(
        &errors,
        "spec.selector.pods.default[1]",
        "must be a string, got number",
    );
}

#[test]
fn several_errors_are_all_reported() {
    let text = "apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  name: many
spec:
  action: bogus
  mode: sometimes
  selector:
    labelSelectors: {app: 3}
  delay:
    latencyy: 10ms
  duration: 30
  extra: true
";
    let errors = parse_err(text);
    for path in [
        "spec.action",
        "spec.mode",
        "spec.selector.labelSelectors.app",
        "spec.delay.latencyy",
        "spec.delay.latency",
        "spec.duration",
        "spec.extra",
    ] {
        assert!(
            errors.iter().any(|e| e.path == path),
            "no error at {path}: {errors:#?}"
        );
    }
    assert!(errors.len() >= 7);
    // Semantic errors are collected together too.
    let text = replace("duration: 30s", "duration: 10x")
        .replace("mode: one", "mode: fixed")
        .replace("jitter: 10ms", "jitter: soon");
    let errors = parse_err(&text);
    assert_error(&errors, "spec.duration", "duration");
    assert_error(&errors, "spec.value", "fixed");
    assert_error(&errors, "spec.delay.jitter", "duration");
}

#[test]
fn envelope_errors() {
    let errors = parse_err(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Nope\nmetadata: {name: x}\nspec: {}\n",
    );
    assert_error(&errors, "kind", "unknown kind");
    let errors = parse_err(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: Bad_Name, colour: red}\nspec: {}\n",
    );
    assert_error(&errors, "metadata.colour", "unknown field");
}

#[test]
fn kind_specific_rules() {
    let pod = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: p}\n\
               spec: {action: container-kill, mode: one, selector: {}}\n";
    assert_error(&parse_err(pod), "spec.containerNames", "container-kill");
    let stress = "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {name: s}\n\
                  spec: {mode: one, selector: {}}\n";
    assert_error(
        &parse_err(stress),
        "spec.stressors",
        "at least one stressor",
    );
    let stress = "apiVersion: chaos-mesh.org/v1alpha1\nkind: StressChaos\nmetadata: {name: s}\n\
                  spec: {mode: one, selector: {}, stressors: {cpu: {workers: 1, load: 150}}}\n";
    assert_error(&parse_err(stress), "spec.stressors.cpu.load", "100");
    let bw = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: b}\n\
              spec: {action: bandwidth, mode: one, selector: {}, bandwidth: {rate: 1mbit}}\n";
    let errors = parse_err(bw);
    assert_error(&errors, "spec.bandwidth.limit", "is required");
    assert_error(&errors, "spec.bandwidth.buffer", "is required");
    let dir = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d}\n\
               spec: {action: partition, mode: one, selector: {}, direction: sideways}\n";
    assert_error(
        &parse_err(dir),
        "spec.direction",
        "must be one of: to, from, both",
    );
    let both = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d}\n\
                spec: {action: partition, mode: one, selector: {}, direction: both}\n";
    assert_error(&parse_err(both), "spec.direction", "spec.target");
    let time = "apiVersion: chaos-mesh.org/v1alpha1\nkind: TimeChaos\nmetadata: {name: t}\n\
                spec: {mode: one, selector: {}, timeOffset: '-1x'}\n";
    assert_error(&parse_err(time), "spec.timeOffset", "duration");
    let schedule = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {name: s}\n\
                    spec: {schedule: 'every now', type: PodChaos}\n";
    let errors = parse_err(schedule);
    assert_error(&errors, "spec.schedule", "cron");
    assert_error(
        &errors,
        "spec.podChaos",
        "is required when type is PodChaos",
    );
    let workflow = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: w}\n\
                    spec: {entry: missing, templates: [{name: a, templateType: Serial, children: [b]}]}\n";
    let errors = parse_err(workflow);
    assert_error(&errors, "spec.entry", "names no template");
    assert_error(
        &errors,
        "spec.templates[0].children[0]",
        "names no template",
    );
    let embedded = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {name: s}\n\
                    spec: {schedule: '@every 5s', type: PodChaos, podChaos: {action: pod-kill, mode: fixed, selector: {}}}\n";
    assert_error(&parse_err(embedded), "spec.podChaos.value", "fixed");
    let pm =
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {name: p}\n\
              spec: {action: network-delay, mode: one, address: ['http://h:31767']}\n";
    assert_error(
        &parse_err(pm),
        "spec.network-delay",
        "is required when action is network-delay",
    );
}
