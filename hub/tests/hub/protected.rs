//! Protected targets and the blast-radius cap (docs/security.md, "Protected targets"): a
//! selection that matches a target labelled `chaoshub.dev/protected=true` (or the configured
//! `security.protected_selector`), or one listed in the environment's
//! `settings.protected_targets`, is refused at submission with 422 naming the target, before
//! anything is stored; a selection larger than the environment's `settings.max_targets` (a
//! count or a percentage) is refused naming the cap and the count; the engine checks again
//! when it selects; a dry run reports both. The memory adapter's labelled inventory stands in
//! for an environment's targets.

use std::time::Duration;

use serde_json::Value;

use super::support::{delay_yaml, Sandbox};

const T: Duration = Duration::from_secs(10);

/// Labels one of the memory adapter's targets.
fn label(s: &Sandbox, target: &str, key: &str, value: &str) {
    let mut world = s.adapter.world.lock().unwrap();
    let t = world
        .targets
        .iter_mut()
        .find(|t| t.id == target)
        .expect("the target exists");
    t.labels.insert(key.into(), value.into());
}

/// Registers a memory environment with these settings (YAML flow mapping).
async fn register(s: &Sandbox, name: &str, settings: &str) -> (u16, Value) {
    s.post_yaml(
        "/api/v1/environments",
        &format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec: {{adapter: memory, settings: {settings}}}\n"),
    )
    .await
}

/// A NetworkChaos delay into `env` with this selector and mode.
fn experiment(name: &str, env: &str, labels: &str, mode: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  action: delay\n  {mode}\n  selector:\n    labelSelectors: {labels}\n  delay: {{latency: 100ms}}\n  duration: 30s\n  environment: {env}\n"
    )
}

async fn experiment_count(s: &Sandbox) -> usize {
    let (code, list) = s.get("/api/v1/experiments").await;
    assert_eq!(code, 200, "{list}");
    list["items"].as_array().unwrap().len()
}

fn assert_refused(code: u16, body: &Value, want_code: &str, needles: &[&str]) {
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    let message = body["message"].as_str().unwrap();
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

#[tokio::test]
async fn a_target_with_the_protected_label_is_refused_at_submission() {
    let s = Sandbox::start(4).await;
    // host-0 and host-2 are app=web; host-0 is protected.
    label(&s, "host-0", "chaoshub.dev/protected", "true");
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("hits-it", Some("30s"), ""),
        )
        .await;
    assert_refused(
        code,
        &body,
        "protected_target",
        &["\"host-0\"", "chaoshub.dev/protected=true", "\"mem\""],
    );
    assert_eq!(experiment_count(&s).await, 0, "nothing is stored");
    assert_eq!(s.adapter.world.lock().unwrap().inject_calls, 0);
    // A selector that leaves it out is accepted.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("misses-it", "mem", "{app: db}", "mode: all"),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    // Even mode `one`, which might have drawn another target, is refused: matching is enough.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("one-of-them", "mem", "{app: web}", "mode: one"),
        )
        .await;
    assert_refused(code, &body, "protected_target", &["\"host-0\""]);
}

#[tokio::test]
async fn the_protected_label_is_configurable() {
    let s = Sandbox::start_with(4, |c| c.security.protected_selector = "tier=prod".into()).await;
    label(&s, "host-2", "tier", "prod");
    // The default label no longer protects anything.
    label(&s, "host-0", "chaoshub.dev/protected", "true");
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("hits-prod", Some("30s"), ""),
        )
        .await;
    assert_refused(
        code,
        &body,
        "protected_target",
        &["\"host-2\"", "tier=prod"],
    );
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("index-zero", "mem", "{index: \"0\"}", "mode: all"),
        )
        .await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn targets_listed_in_the_environment_are_refused_by_name_or_id() {
    let s = Sandbox::start(4).await;
    let (code, body) = register(&s, "guarded", "{protected_targets: [host-2]}").await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("web", "guarded", "{app: web}", "mode: all"),
        )
        .await;
    assert_refused(
        code,
        &body,
        "protected_target",
        &["\"host-2\"", "\"guarded\"", "settings.protected_targets"],
    );
    // The list belongs to that environment: the same selector elsewhere is accepted.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("web", "mem", "{app: web}", "mode: all"),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(experiment_count(&s).await, 1);
}

#[tokio::test]
async fn max_targets_caps_the_selected_count() {
    let s = Sandbox::start(8).await;
    // Four app=web targets of eight.
    let (code, body) = register(&s, "capped", "{max_targets: 2}").await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("all-web", "capped", "{app: web}", "mode: all"),
        )
        .await;
    assert_refused(
        code,
        &body,
        "blast_radius",
        &["4 target(s) selected", "at most 2", "settings.max_targets"],
    );
    // random-max-percent is judged by its largest draw (75 % of 4 = 3).
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment(
                "maybe",
                "capped",
                "{app: web}",
                "mode: random-max-percent\n  value: \"75\"",
            ),
        )
        .await;
    assert_refused(code, &body, "blast_radius", &["3 target(s) selected"]);
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("two", "capped", "{app: web}", "mode: fixed\n  value: \"2\""),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let uid = body["metadata"]["uid"].as_str().unwrap().to_string();
    let running = s.wait_phase(&uid, "Running", T).await;
    assert_eq!(running["status"]["targets"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn max_targets_as_a_percentage_of_the_environment() {
    let s = Sandbox::start(8).await;
    let (code, body) = register(&s, "quarter", "{max_targets: \"25%\"}").await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment(
                "three",
                "quarter",
                "{app: web}",
                "mode: fixed\n  value: \"3\"",
            ),
        )
        .await;
    assert_refused(
        code,
        &body,
        "blast_radius",
        &["3 target(s) selected", "25% of 8 target(s) = 2"],
    );
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment(
                "two",
                "quarter",
                "{app: web}",
                "mode: fixed\n  value: \"2\"",
            ),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(experiment_count(&s).await, 1);
}

/// The inventory changes after submission: the target the experiment will select becomes
/// protected while the experiment waits for its environment's injection permit. The engine
/// refuses at selection time and the experiment fails naming the target; nothing is injected
/// into it.
#[tokio::test]
async fn the_engine_checks_again_when_it_selects() {
    let mut s = Sandbox::start(4).await;
    s.tweak = |c| c.engine.max_injecting_per_environment = 1;
    s.restart().await;
    s.adapter.world.lock().unwrap().inject_delay = Duration::from_millis(600);
    // The first experiment holds the environment's one permit for 600 ms (app=db targets).
    let (code, first) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("first", "mem", "{app: db}", "mode: one"),
        )
        .await;
    assert_eq!(code, 201, "{first}");
    let (code, second) = s
        .post_yaml(
            "/api/v1/experiments",
            &experiment("second", "mem", "{app: web}", "mode: all"),
        )
        .await;
    assert_eq!(code, 201, "accepted while nothing is protected: {second}");
    let second = second["metadata"]["uid"].as_str().unwrap().to_string();
    let (_, v) = s.get(&format!("/api/v1/experiments/{second}")).await;
    assert_eq!(
        v["status"]["phase"], "Pending",
        "the second experiment must still wait for the permit: {v}"
    );
    label(&s, "host-2", "chaoshub.dev/protected", "true");
    let failed = s.wait_phase(&second, "Failed", T).await;
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused at injection") && reason.contains("\"host-2\""),
        "{reason}"
    );
    assert!(failed["status"]["targets"].as_array().unwrap().is_empty());
    let world = s.adapter.world.lock().unwrap();
    assert!(
        world.log.iter().all(|c| c.experiment_uid != second),
        "nothing was injected for the refused experiment"
    );
}

#[tokio::test]
async fn a_dry_run_reports_protected_targets_and_the_cap() {
    let s = Sandbox::start(8).await;
    label(&s, "host-0", "chaoshub.dev/protected", "true");
    let (code, body) = register(
        &s,
        "both",
        "{max_targets: \"25%\", protected_targets: [host-1]}",
    )
    .await;
    assert_eq!(code, 201, "{body}");
    // app=web: host-0 (protected by label) is matched; host-1 (listed) is app=db, left out.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &experiment("plan", "both", "{app: web}", "mode: all"),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let warnings: Vec<&str> = body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let has = |needles: &[&str]| {
        warnings
            .iter()
            .any(|w| needles.iter().all(|n| w.contains(n)))
    };
    assert!(
        has(&["protected target \"host-0\" is matched", "would be refused"]),
        "{warnings:?}"
    );
    assert!(
        has(&["not selected", "\"host-1\"", "settings.protected_targets"]),
        "{warnings:?}"
    );
    assert!(
        has(&[
            "4 target(s) selected at most",
            "25% of 8 target(s) = 2",
            "would be refused"
        ]),
        "{warnings:?}"
    );
    assert_eq!(body["plan"]["matched"], 4, "{body}");
    // Within the cap and clear of protected targets: the cap is still reported.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &experiment("fine", "both", "{index: \"2\"}", "mode: all"),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let text = body["warnings"].to_string();
    assert!(
        text.contains("1 target(s) selected at most") && text.contains("within the cap"),
        "{text}"
    );
    assert!(!text.contains("is matched by the selector"), "{text}");
    assert_eq!(experiment_count(&s).await, 0, "a dry run stores nothing");
}

#[tokio::test]
async fn registration_refuses_malformed_guardrail_settings() {
    let s = Sandbox::start(2).await;
    for (settings, path) in [
        (
            "{protected_targets: host-0}",
            "spec.settings.protected_targets",
        ),
        (
            "{protected_targets: [host-0, 3]}",
            "spec.settings.protected_targets[1]",
        ),
        ("{max_targets: 0}", "spec.settings.max_targets"),
        ("{max_targets: \"150%\"}", "spec.settings.max_targets"),
        ("{max_targets: many}", "spec.settings.max_targets"),
        ("{max_targets: [1]}", "spec.settings.max_targets"),
    ] {
        let (code, body) = register(&s, "bad", settings).await;
        assert_eq!(code, 400, "{settings}: {body}");
        assert_eq!(body["code"], "invalid_manifest", "{body}");
        assert_eq!(body["details"][0]["path"], path, "{settings}: {body}");
    }
    let (code, _) = s.get("/api/v1/environments/bad").await;
    assert_eq!(code, 404, "nothing was registered");
    // The accepted forms.
    for (i, settings) in [
        "{max_targets: 3}",
        "{max_targets: \"3\"}",
        "{max_targets: \"100%\", protected_targets: []}",
    ]
    .iter()
    .enumerate()
    {
        let (code, body) = register(&s, &format!("ok-{i}"), settings).await;
        assert_eq!(code, 201, "{settings}: {body}");
    }
}

#[tokio::test]
async fn a_schedule_or_workflow_whose_chaos_hits_a_guardrail_is_refused_at_creation() {
    let s = Sandbox::start(4).await;
    // host-0 and host-2 are app=web; host-0 is protected.
    label(&s, "host-0", "chaoshub.dev/protected", "true");
    let (code, body) = register(&s, "capped", "{max_targets: 1}").await;
    assert_eq!(code, 201, "{body}");
    let schedule = |name: &str, env: &str, labels: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  schedule: \"@every 1h\"\n  type: NetworkChaos\n  environment: {env}\n  networkChaos:\n    action: delay\n    mode: all\n    selector: {{labelSelectors: {labels}}}\n    delay: {{latency: 50ms}}\n    duration: 10s\n"
        )
    };
    // The protected label: refused now, naming the embedded chaos and the target, not at the
    // first run an hour from now.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &schedule("hourly", "mem", "{app: web}"),
        )
        .await;
    assert_refused(
        code,
        &body,
        "protected_target",
        &[
            "spec.networkChaos",
            "\"host-0\"",
            "chaoshub.dev/protected=true",
        ],
    );
    // The cap: app=db is two targets (neither protected), the environment allows one.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &schedule("wide", "capped", "{app: db}"),
        )
        .await;
    assert_refused(
        code,
        &body,
        "blast_radius",
        &["spec.networkChaos", "at most 1"],
    );
    // A workflow: the offending template is named by its path.
    let workflow = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: flow, namespace: default}\nspec:\n  entry: entry\n  environment: mem\n  templates:\n    - name: entry\n      templateType: Serial\n      children: [fine, bad]\n    - name: fine\n      templateType: NetworkChaos\n      deadline: 5s\n      networkChaos: {action: delay, mode: all, selector: {labelSelectors: {app: db}}, delay: {latency: 50ms}}\n    - name: bad\n      templateType: NetworkChaos\n      deadline: 5s\n      networkChaos: {action: delay, mode: one, selector: {labelSelectors: {app: web}}, delay: {latency: 50ms}}\n";
    let (code, body) = s.post_yaml("/api/v1/experiments", workflow).await;
    assert_refused(
        code,
        &body,
        "protected_target",
        &["spec.templates[2].networkChaos", "\"host-0\""],
    );
    assert_eq!(experiment_count(&s).await, 0, "nothing is stored");
    // Its dry run still plans, with the refusal as a warning; one clear of both is created.
    let (code, body) = s
        .post_yaml("/api/v1/experiments?dryRun=true", workflow)
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["warnings"].to_string().contains("would be refused"),
        "{body}"
    );
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &schedule("one-host", "capped", "{index: \"3\"}"),
        )
        .await;
    assert_eq!(code, 201, "{body}");
}
