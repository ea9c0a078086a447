//! Privileged fault families (`user_defined`, host power, clock) and command probes through
//! the hub: refused for a non-admin with 403 `forbidden` naming the permission, before
//! anything is stored, on every path that creates experiments (direct, dry run, templates,
//! schedules, workflows, suites); allowed for an admin, and for anyone in scope in an
//! environment registered with `settings.allow`. The memory adapter stands in for an agent
//! started with `--allow …` (the agent's own opt-in is tested end to end in `tests/e2e`).

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{client_with_token, Sandbox};

const T: Duration = Duration::from_secs(10);

/// A caller with its own token, speaking to the sandbox's hub.
struct Caller {
    client: reqwest::Client,
    url: String,
}

impl Caller {
    async fn new(s: &Sandbox, name: &str, role: &str) -> Caller {
        let (code, v) = s
            .request(
                reqwest::Method::POST,
                "/api/v1/tokens",
                Some((
                    "application/json",
                    json!({"name": name, "role": role}).to_string(),
                )),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        Caller {
            client: client_with_token(v["token"].as_str().unwrap()),
            url: s.url.clone(),
        }
    }

    async fn post_yaml(&self, path: &str, yaml: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

fn user_defined(name: &str, env: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: {env}\n  action: user_defined\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  user_defined: {{attackCmd: 'touch /tmp/x', recoverCmd: 'rm /tmp/x'}}\n  duration: 30s\n"
    )
}

fn clock(name: &str, env: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: {env}\n  action: clock\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  clock: {{time-offset: '-5m'}}\n  duration: 30s\n"
    )
}

fn ec2_stop(name: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: AWSChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: mem\n  action: ec2-stop\n  ec2Instance: i-0123456789abcdef0\n  awsRegion: us-east-1\n  duration: 5m\n"
    )
}

fn time_chaos(name: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: TimeChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: mem\n  mode: one\n  selector: {{labelSelectors: {{app: web}}}}\n  timeOffset: '-5m'\n  duration: 30s\n"
    )
}

/// A 403 in the API's error shape naming `permission`.
fn assert_forbidden(code: u16, body: &Value, permission: &str) {
    assert_eq!(code, 403, "{body:#}");
    assert_eq!(body["code"], "forbidden", "{body:#}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(permission), "{message}");
    assert!(message.contains("role admin"), "{message}");
}

/// Every experiment the hub stores (archived or not), as seen by the admin.
async fn stored(s: &Sandbox) -> Vec<String> {
    let (code, v) = s.get("/api/v1/experiments?limit=1000").await;
    assert_eq!(code, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_operator_is_refused_every_privileged_family_and_nothing_is_stored() {
    let s = Sandbox::start(2).await;
    let op = Caller::new(&s, "op", "operator").await;
    for (yaml, permission) in [
        (user_defined("ud", "mem"), "experiments:user-defined"),
        (clock("clk", "mem"), "experiments:clock"),
        (time_chaos("tc"), "experiments:clock"),
        (ec2_stop("ec2"), "experiments:host-power"),
    ] {
        let (code, body) = op.post_yaml("/api/v1/experiments", &yaml).await;
        assert_forbidden(code, &body, permission);
        assert!(
            body["message"].as_str().unwrap().contains("settings.allow"),
            "the message says how an environment opts in: {body}"
        );
        // A dry run reports the same refusal.
        let (code, body) = op.post_yaml("/api/v1/experiments?dryRun=true", &yaml).await;
        assert_forbidden(code, &body, permission);
    }
    // Without an environment, a dry run only validates, and still refuses.
    let (code, body) = op
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &user_defined("ud", "mem").replace("  environment: mem\n", ""),
        )
        .await;
    assert_forbidden(code, &body, "experiments:user-defined");
    assert!(stored(&s).await.is_empty());
    // The operator may still submit ordinary faults.
    let (code, body) = op
        .post_yaml(
            "/api/v1/experiments",
            &super::support::delay_yaml("plain", Some("1s"), ""),
        )
        .await;
    assert_eq!(code, 201, "{body:#}");
    assert_eq!(stored(&s).await, ["plain"]);
    // The refusal is in the audit trail.
    let (_, audit) = s.get("/api/v1/audit?outcome=denied").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["principal"] == "op" && e["status"] == 403),
        "{audit:#}"
    );
}

#[tokio::test]
async fn an_admin_may_submit_privileged_faults_and_a_dry_run_says_why() {
    let s = Sandbox::start(2).await;
    let (code, plan) = s
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &user_defined("ud", "mem"),
        )
        .await;
    assert_eq!(code, 200, "{plan:#}");
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("experiments:user-defined") && warnings.contains("is an admin"),
        "{warnings}"
    );
    let (code, created) = s
        .post_yaml("/api/v1/experiments", &user_defined("ud", "mem"))
        .await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    s.wait_phase(uid, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 1);
}

#[tokio::test]
async fn an_environment_registered_with_settings_allow_lets_operators_submit_that_family() {
    let s = Sandbox::start(2).await;
    let (code, env) = s
        .post_yaml(
            "/api/v1/environments",
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: lab}\nspec:\n  adapter: memory\n  settings: {allow: [user-defined]}\n",
        )
        .await;
    assert_eq!(code, 201, "{env:#}");
    let op = Caller::new(&s, "op", "operator").await;
    let (code, plan) = op
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &user_defined("ud", "lab"),
        )
        .await;
    assert_eq!(code, 200, "{plan:#}");
    assert!(
        plan["warnings"]
            .to_string()
            .contains("settings.allow: [user-defined]"),
        "{plan:#}"
    );
    let (code, created) = op
        .post_yaml("/api/v1/experiments", &user_defined("ud", "lab"))
        .await;
    assert_eq!(code, 201, "{created:#}");
    // Only the family the environment opted into, and only there.
    let (code, body) = op
        .post_yaml("/api/v1/experiments", &clock("clk", "lab"))
        .await;
    assert_forbidden(code, &body, "experiments:clock");
    assert!(
        body["message"].as_str().unwrap().contains("\"lab\""),
        "{body}"
    );
    let (code, body) = op
        .post_yaml("/api/v1/experiments", &user_defined("ud2", "mem"))
        .await;
    assert_forbidden(code, &body, "experiments:user-defined");
    assert_eq!(stored(&s).await, ["ud"]);
    // Real adapters accept the hub's own setting next to theirs.
    for (name, adapter, endpoint) in [
        ("hosts", "native", None),
        ("plugins", "webhook", Some("http://127.0.0.1:8470")),
        // A closed port: the docker preparation that registration starts finds nothing.
        ("engine", "docker", Some("tcp://127.0.0.1:9")),
    ] {
        let endpoint = endpoint
            .map(|e| format!("  endpoint: {e}\n"))
            .unwrap_or_default();
        let (code, body) = s
            .post_yaml(
                "/api/v1/environments",
                &format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: {adapter}\n{endpoint}  settings: {{allow: [clock]}}\n"),
            )
            .await;
        assert_eq!(code, 201, "{adapter}: {body:#}");
    }
    // A name that is not a fault family is refused at registration, with its path.
    let (code, body) = s
        .post_yaml(
            "/api/v1/environments",
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: bad}\nspec:\n  adapter: memory\n  settings: {allow: [user-defined, reboot]}\n",
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"], "spec.settings.allow[1]",
        "{body:#}"
    );
}

#[tokio::test]
async fn schedules_workflows_templates_and_suites_are_checked_when_they_are_created() {
    let s = Sandbox::start_with(2, |c| {
        c.catalog_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog").into();
    })
    .await;
    let op = Caller::new(&s, "op", "operator").await;
    let schedule = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {name: nightly}\nspec:\n  schedule: \"@every 1m\"\n  type: PhysicalMachineChaos\n  environment: mem\n  physicalmachineChaos:\n    action: user_defined\n    mode: all\n    selector: {labelSelectors: {app: web}}\n    user_defined: {attackCmd: 'true', recoverCmd: 'true'}\n    duration: 10s\n";
    let (code, body) = op.post_yaml("/api/v1/experiments", schedule).await;
    assert_forbidden(code, &body, "experiments:user-defined");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.physicalmachineChaos"),
        "the message names the embedded chaos: {body}"
    );
    let workflow = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: game-day}\nspec:\n  entry: main\n  environment: mem\n  templates:\n  - {name: main, templateType: Serial, children: [skew]}\n  - name: skew\n    templateType: PhysicalMachineChaos\n    physicalmachineChaos:\n      action: clock\n      mode: all\n      selector: {labelSelectors: {app: web}}\n      clock: {time-offset: '-5m'}\n      duration: 10s\n";
    let (code, body) = op.post_yaml("/api/v1/experiments", workflow).await;
    assert_forbidden(code, &body, "experiments:clock");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.templates[1].physicalmachineChaos"),
        "{body}"
    );
    // The catalog's ec2-stop template stops a machine (a dry run naming no environment: the
    // memory adapter does not run AWSChaos, and the refusal comes first anyway).
    let (code, body) = op
        .post_json("/api/v1/templates/ec2-stop/run", json!({"dryRun": true}))
        .await;
    assert_forbidden(code, &body, "experiments:host-power");
    let suite = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {{name: s}}\nspec:\n  environments: [mem]\n  experiments:\n    - name: custom\n      manifest: {}\n",
        serde_json::to_string(
            &chaoshub_schema::parse_one(&user_defined("ud", "mem"))
                .unwrap()
                .to_value()
        )
        .unwrap()
    );
    let (code, body) = op.post_yaml("/api/v1/suites", &suite).await;
    assert_forbidden(code, &body, "experiments:user-defined");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.experiments[0].manifest (environment mem)"),
        "{body}"
    );
    let (_, runs) = s.get("/api/v1/suites/runs").await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 0, "{runs:#}");
    assert!(stored(&s).await.is_empty());

    // The same documents from an admin are accepted: the schedule is stored, and its children
    // (the hub's own work) are not checked again.
    let (code, body) = s.post_yaml("/api/v1/experiments", schedule).await;
    assert_eq!(code, 201, "{body:#}");
    let (code, body) = s.post_yaml("/api/v1/experiments", workflow).await;
    assert_eq!(code, 201, "{body:#}");
    let (code, body) = s.post_yaml("/api/v1/suites", &suite).await;
    assert_eq!(code, 202, "{body:#}");
}

#[tokio::test]
async fn command_probes_are_for_admins_only() {
    let s = Sandbox::start_with(2, |c| c.limits.allow_command_probes = true).await;
    let op = Caller::new(&s, "op", "operator").await;
    let annotated = |name: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: {name}\n  annotations:\n    chaoshub.dev/stop-conditions: '[{{name: alive, command: {{run: [/bin/true]}}}}]'\nspec:\n  action: delay\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  delay: {{latency: 10ms}}\n  duration: 5s\n  environment: mem\n"
        )
    };
    let (code, body) = op
        .post_yaml("/api/v1/experiments", &annotated("guarded"))
        .await;
    assert_forbidden(code, &body, "probes:command");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("chaoshub.dev/stop-conditions\"][0].command"),
        "{body}"
    );
    let suite = "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {name: s}\nspec:\n  environments: [mem]\n  steadyState:\n    probes:\n      - {name: alive, command: {run: [/bin/true]}}\n  experiments:\n    - name: d\n      manifest: {apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: d}, spec: {action: delay, mode: all, selector: {labelSelectors: {app: web}}, delay: {latency: 10ms}, duration: 1s}}\n";
    let (code, body) = op.post_yaml("/api/v1/suites", suite).await;
    assert_forbidden(code, &body, "probes:command");
    assert!(stored(&s).await.is_empty());
    let (code, body) = s
        .post_yaml("/api/v1/experiments", &annotated("guarded"))
        .await;
    assert_eq!(code, 201, "{body:#}");
}
