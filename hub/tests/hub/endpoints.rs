//! `security.allowed_endpoints`: with a list set, registering an environment, a remote catalog
//! or a probe that points outside it is refused with 400 naming the field and the value, and
//! probes are checked again when they are called (placeholders filled). Nothing here reaches
//! the addresses it names: every refused one is refused before any connection.

use std::time::Duration;

use serde_json::json;

use super::support::Sandbox;

const T: Duration = Duration::from_secs(10);

fn locked_down(c: &mut chaoshub::config::HubConfig) {
    c.security.allowed_endpoints = vec![
        "127.0.0.0/8".into(),
        "plugins.lab:8470".into(),
        "unix:///run/chaos/docker.sock".into(),
    ];
}

fn environment(name: &str, adapter: &str, endpoint: Option<&str>) -> String {
    let endpoint = endpoint
        .map(|e| format!("  endpoint: {e}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: {adapter}\n{endpoint}"
    )
}

#[tokio::test]
async fn registrations_outside_the_list_are_refused_naming_the_field_and_the_value() {
    let s = Sandbox::start_with(2, locked_down).await;
    for (name, adapter, endpoint, value) in [
        (
            "far-plugin",
            "webhook",
            Some("http://10.1.2.3:8470"),
            "http://10.1.2.3:8470",
        ),
        (
            "wrong-port",
            "webhook",
            Some("http://plugins.lab:9999"),
            "http://plugins.lab:9999",
        ),
        // The docker adapter's default is the engine's local socket: it counts.
        (
            "local-docker",
            "docker",
            None,
            "unix:///var/run/docker.sock",
        ),
    ] {
        let (code, body) = s
            .post_yaml(
                "/api/v1/environments",
                &environment(name, adapter, endpoint),
            )
            .await;
        assert_eq!(code, 400, "{name}: {body:#}");
        assert_eq!(body["details"][0]["path"], "spec.endpoint", "{body:#}");
        let message = body["details"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(value) && message.contains("security.allowed_endpoints"),
            "{message}"
        );
    }
    for (name, adapter, endpoint) in [
        ("plugin", "webhook", "http://plugins.lab:8470"),
        ("proxies", "toxiproxy", "http://127.0.0.1:8474"),
    ] {
        let (code, body) = s
            .post_yaml(
                "/api/v1/environments",
                &environment(name, adapter, Some(endpoint)),
            )
            .await;
        assert_eq!(code, 201, "{name}: {body:#}");
    }

    let (code, body) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/catalogs",
            Some((
                "application/json",
                json!({"name": "acme", "url": "https://catalog.example.com/index.yaml"})
                    .to_string(),
            )),
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["details"][0]["path"], "url", "{body:#}");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("catalog.example.com"),
        "{body:#}"
    );

    // A stop condition and a suite's probe that would call outside.
    let guarded = super::support::delay_yaml("guarded", Some("5s"), "").replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    chaoshub.dev/stop-conditions: '[{name: up, http: {url: \"http://192.0.2.1/health\"}}]'\n",
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &guarded).await;
    assert_eq!(code, 400, "{body:#}");
    let detail = &body["details"][0];
    assert_eq!(
        detail["path"], "metadata.annotations[\"chaoshub.dev/stop-conditions\"][0]",
        "{body:#}"
    );
    assert!(
        detail["message"]
            .as_str()
            .unwrap()
            .contains("http.url \"http://192.0.2.1/health\""),
        "{body:#}"
    );
    let suite = "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {name: s}\nspec:\n  environments: [mem]\n  steadyState:\n    probes:\n      - {name: db, tcp: {address: '10.0.0.1:5432'}}\n  experiments:\n    - name: d\n      manifest: {apiVersion: chaos-mesh.org/v1alpha1, kind: NetworkChaos, metadata: {name: d}, spec: {action: delay, mode: all, selector: {labelSelectors: {app: web}}, delay: {latency: 10ms}, duration: 1s}}\n";
    let (code, body) = s.post_yaml("/api/v1/suites", suite).await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"], "spec.steadyState.probes[0]",
        "{body:#}"
    );
    let (_, listed) = s.get("/api/v1/experiments").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "{listed:#}");
}

#[tokio::test]
async fn a_probe_whose_filled_target_is_outside_is_not_called_and_stops_its_experiment() {
    let s = Sandbox::start_with(2, locked_down).await;
    // The probe's host comes from the environment's labels: only known when it runs.
    let (code, body) = s
        .post_yaml(
            "/api/v1/environments",
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: lab, labels: {host: 192.0.2.9}}\nspec: {adapter: memory}\n",
        )
        .await;
    assert_eq!(code, 201, "{body:#}");
    let guarded = super::support::delay_yaml("guarded", Some("60s"), "")
        .replace("environment: mem", "environment: lab")
        .replace(
            "  namespace: default\n",
            "  namespace: default\n  annotations:\n    chaoshub.dev/stop-conditions: '[{name: up, http: {url: \"http://{{ environment.labels.host }}/health\"}}]'\n",
        );
    let (code, created) = s.post_yaml("/api/v1/experiments", &guarded).await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let aborted = s.wait_phase(uid, "Aborted", T).await;
    let reason = aborted["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not called")
            && reason.contains("http://192.0.2.9/health")
            && reason.contains("security.allowed_endpoints"),
        "{reason}"
    );
    assert_eq!(s.adapter.active_count(), 0);
}

/// The endpoints an environment reaches without naming them count too: AWS's regional SSM and
/// EC2 endpoints for an ssm environment without `spec.endpoint`, and the API server of a
/// kubernetes environment's kubeconfig context. The hub's own OTLP export must be allowed or
/// the hub does not start.
#[tokio::test]
async fn defaults_an_environment_would_call_and_the_otlp_export_are_checked_too() {
    let s = Sandbox::start_with(2, locked_down).await;
    let (code, body) = s
        .post_yaml(
            "/api/v1/environments",
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: fleet}\nspec:\n  adapter: ssm\n  settings: {region: eu-west-1}\n",
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["details"][0]["path"], "spec.endpoint", "{body:#}");
    let message = body["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("https://ssm.eu-west-1.amazonaws.com"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: prod\n  cluster: {server: 'https://10.20.0.1:6443'}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: me}\nusers:\n- name: me\n  user: {token: x}\n",
    )
    .unwrap();
    let (code, body) = s
        .post_yaml(
            "/api/v1/environments",
            &format!(
                "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: prod}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: '{}'}}\n",
                kubeconfig.display()
            ),
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"], "spec.settings.kubeconfig",
        "{body:#}"
    );
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("https://10.20.0.1:6443"),
        "{body:#}"
    );

    let data = tempfile::tempdir().unwrap();
    let mut config = super::support::config(data.path());
    locked_down(&mut config);
    config.telemetry.endpoint = Some("http://203.0.113.9:4318".into());
    let refused =
        chaoshub::server::start_with(config, chaoshub_adapters::AdapterRegistry::builtin()).await;
    let message = match refused {
        Ok(hub) => {
            hub.shutdown().await;
            panic!("a hub exporting outside its allowed endpoints started");
        }
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("telemetry.endpoint") && message.contains("203.0.113.9"),
        "{message}"
    );
}
